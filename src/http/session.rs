//! Sessions: a short HS256 JWT in an HttpOnly, SameSite=Lax cookie names a row in
//! `sessions`, which is checked on every request — so logout, logout-everywhere, member
//! removal and password changes take effect at once. The row enforces the idle (30 min) and
//! absolute (12 h) timeouts; the JWT is re-issued while the row is valid.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use time::Duration;
use uuid::Uuid;

use crate::{
    auth::tokens,
    config::Config,
    db::{self, users::User},
    domain::account::ABSOLUTE_TIMEOUT,
    state::AppState,
};

/// The logged-in user of this request (put in request extensions by [`load_session`]).
#[derive(Clone, Debug)]
pub(crate) struct AuthSession {
    pub(crate) session_id: Uuid,
    pub(crate) user: Arc<User>,
}

/// `__Host-` prefixed (Secure, no Domain, Path=/) when users reach us over https.
pub(crate) fn session_cookie_name(config: &Config) -> &'static str {
    if config.is_https() {
        "__Host-sid"
    } else {
        "sid"
    }
}

pub(crate) fn session_cookie(config: &Config, jwt: String) -> Cookie<'static> {
    Cookie::build((session_cookie_name(config), jwt))
        .path("/")
        .http_only(true)
        .secure(config.is_https())
        .same_site(SameSite::Lax)
        .max_age(time::Duration::seconds(ABSOLUTE_TIMEOUT.whole_seconds()))
        .build()
}

pub(crate) fn removal_cookie(config: &Config) -> Cookie<'static> {
    let mut c = Cookie::build((session_cookie_name(config), ""))
        .path("/")
        .http_only(true)
        .secure(config.is_https())
        .same_site(SameSite::Lax)
        .build();
    c.make_removal();
    c
}

/// Starts a session for `user_id` and returns the cookie to set.
pub(crate) async fn start_session(
    state: &AppState,
    user_id: Uuid,
    user_agent: &str,
    ip: &str,
) -> anyhow::Result<Cookie<'static>> {
    let now = state.now();
    let sid = db::sessions::create_session(&state.db, user_id, user_agent, ip, now).await?;
    crate::accounts::note_device(state, user_id, user_agent, ip).await?;
    let jwt = tokens::issue_session_jwt(&state.config.session_secret, sid, user_id, now)?;
    Ok(session_cookie(&state.config, jwt))
}

/// Re-issue the JWT when less than this much of its life is left.
const REISSUE_BEFORE: Duration = Duration::minutes(5);
/// Record activity at most this often (one write per minute per session, not per request).
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// What a session cookie turned out to be.
enum Resolved {
    Valid {
        session: AuthSession,
        reissue: Option<Cookie<'static>>,
    },
    /// Bad signature, revoked, expired or idle: clear the cookie.
    Invalid,
    /// The database failed: neither trust nor clear the cookie.
    Unknown,
}

async fn resolve(state: &AppState, token: &str) -> Resolved {
    let Some(claims) = tokens::decode_session_jwt(&state.config.session_secret, token) else {
        return Resolved::Invalid;
    };
    let now = state.now();
    // The session and its user in one round trip.
    let (row, user) = match db::sessions::valid_session_with_user(&state.db, claims.sid, now).await
    {
        Ok(Some((row, user))) if row.user_id == claims.uid => (row, user),
        Ok(_) => return Resolved::Invalid,
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            return Resolved::Unknown;
        }
    };
    if row.last_seen_at + TOUCH_EVERY < now
        && let Err(e) = db::sessions::touch_session(&state.db, row.id, now).await
    {
        tracing::warn!(error = %e, "could not record session activity");
    }
    let mut reissue = None;
    if claims.exp - now.unix_timestamp() < REISSUE_BEFORE.whole_seconds() {
        match tokens::issue_session_jwt(&state.config.session_secret, row.id, row.user_id, now) {
            Ok(jwt) => reissue = Some(session_cookie(&state.config, jwt)),
            Err(e) => tracing::error!(error = %e, "could not re-issue session token"),
        }
    }
    Resolved::Valid {
        session: AuthSession {
            session_id: row.id,
            user: Arc::new(user),
        },
        reissue,
    }
}

pub(crate) async fn load_session(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let name = session_cookie_name(&state.config);
    let token = CookieJar::from_headers(req.headers())
        .get(name)
        .map(|c| c.value().to_owned());
    let mut set: Option<Cookie<'static>> = None;
    if let Some(token) = token {
        match resolve(&state, &token).await {
            Resolved::Valid { session, reissue } => {
                req.extensions_mut().insert(session);
                set = reissue;
            }
            Resolved::Invalid => set = Some(removal_cookie(&state.config)),
            Resolved::Unknown => {}
        }
    }
    let mut resp = next.run(req).await;
    // A handler that logs in or out sets the cookie itself; don't override it.
    let handler_set_it = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.starts_with(&format!("{name}="))));
    if !handler_set_it
        && let Some(c) = set
        && let Ok(v) = HeaderValue::from_str(&c.to_string())
    {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
