//! Evolution webhook authentication: the shared-secret header or a short-lived HS256 JWT.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------
// Webhook authentication (§1.7): Evolution signs nothing; it can send our static header,
// or an HS256 JWT when the webhook headers carry `jwt_key`.
// ---------------------------------------------------------------------------------------

/// The header carrying our per-channel secret ([`super::EvolutionClient::set_webhook`] sets it).
pub(crate) const SECRET_HEADER: &str = "x-webhook-token";

/// How a webhook proved it came from the channel's Evolution instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WebhookAuth {
    /// `x-webhook-token` equals the channel secret.
    Header,
    /// `Authorization: Bearer <JWT>` signed with the channel secret as `jwt_key`.
    Jwt,
}

/// Evolution mints a token per request valid for 600 s; allow some clock skew.
///
/// The JWT signs nothing of the body: it is a **bearer token**, and anyone who sees one
/// (a proxy log, say) can post any body with it until it expires. So the window is capped
/// at Evolution's own 600 s plus the skew: a token claiming a longer life is refused, and
/// one without `iat` is taken to have been issued 600 s before its expiry. Replays of the
/// same message inside the window are absorbed by the per-message dedupe key.
const JWT_LEEWAY_SECS: i64 = 60;
const JWT_MAX_LIFETIME_SECS: i64 = 600;

/// Whether a webhook request carries the channel secret, by header or JWT.
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn verify(headers: &HeaderMap, expected_secret: &str) -> bool {
    verify_at(headers, expected_secret, OffsetDateTime::now_utc()).is_some()
}

/// [`verify`] at a given time (the clock is injected elsewhere in the app).
pub(crate) fn verify_at(
    headers: &HeaderMap,
    expected_secret: &str,
    now: OffsetDateTime,
) -> Option<WebhookAuth> {
    if expected_secret.is_empty() {
        return None;
    }
    if let Some(given) = headers.get(SECRET_HEADER)
        && bool::from(given.as_bytes().ct_eq(expected_secret.as_bytes()))
    {
        return Some(WebhookAuth::Header);
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    verify_jwt(token.trim(), expected_secret, now.unix_timestamp()).then_some(WebhookAuth::Jwt)
}

#[derive(serde::Deserialize)]
struct EvolutionClaims {
    iat: Option<i64>,
    exp: i64,
    app: String,
    action: String,
}

fn verify_jwt(token: &str, secret: &str, now: i64) -> bool {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let mut validation = Validation::new(Algorithm::HS256);
    // Expiry is checked below against the injected clock.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let Ok(data) = decode::<EvolutionClaims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    ) else {
        return false;
    };
    let c = data.claims;
    let iat = c.iat.unwrap_or(c.exp - 600);
    c.app == "evolution"
        && c.action == "webhook"
        && c.exp + JWT_LEEWAY_SECS >= now
        && iat - JWT_LEEWAY_SECS <= now
        && c.exp - iat <= JWT_MAX_LIFETIME_SECS
}
