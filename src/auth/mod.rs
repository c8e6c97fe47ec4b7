//! Authentication primitives: password hashing, session tokens, CSRF tokens, one-time
//! links, login throttling and two-factor codes. HTTP wiring lives in `http::session`.

pub(crate) mod password;
pub(crate) mod throttle;
pub(crate) mod tokens;
pub(crate) mod totp;

use time::Duration;

// A session's idle and absolute timeouts are `domain::account::{IDLE_TIMEOUT, ABSOLUTE_TIMEOUT}`.
/// The JWT in the cookie lives this long and is re-issued while the session row is valid.
pub(crate) const JWT_LIFETIME: Duration = Duration::minutes(15);
/// Invitation links expire after a week; reset links after an hour.
pub(crate) const INVITATION_LIFETIME: Duration = Duration::days(7);
pub(crate) const RESET_LIFETIME: Duration = Duration::hours(1);
/// The window for typing a second-factor code after the password.
pub(crate) const CHALLENGE_LIFETIME: Duration = Duration::minutes(5);
