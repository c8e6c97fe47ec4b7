//! The privacy policy we serve, and its version.
//!
//! The text lives in `templates/legal/privacy.<lang>.html`. Changing it means bumping
//! [`POLICY_VERSION`]: sign-up records the version accepted, and tenants see a changed version
//! on their next login.

/// The version of the privacy policy (its effective date).
pub(crate) const POLICY_VERSION: &str = "2026-11-26";
