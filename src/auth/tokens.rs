//! Session JWTs, CSRF tokens and one-time link tokens.
//!
//! Keys are derived from the configured session secret with HMAC so each use has its own
//! key (a CSRF token can never be replayed as a session token and vice versa).

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use super::JWT_LIFETIME;

type HmacSha256 = Hmac<Sha256>;

fn derive(secret: &SecretString, purpose: &str) -> [u8; 32] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().into()
}

const ISSUER: &str = "sigmaai";
const SESSION_TYPE: &str = "session";

/// What the session cookie carries: a signed pointer to a sessions row. The row is the
/// source of truth (revocation, idle and absolute timeouts).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SessionClaims {
    pub(crate) sid: Uuid,
    pub(crate) uid: Uuid,
    pub(crate) iat: i64,
    pub(crate) exp: i64,
    pub(crate) iss: String,
    pub(crate) typ: String,
}

pub(crate) fn issue_session_jwt(
    secret: &SecretString,
    sid: Uuid,
    uid: Uuid,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let claims = SessionClaims {
        sid,
        uid,
        iat: now.unix_timestamp(),
        exp: (now + JWT_LIFETIME).unix_timestamp(),
        iss: ISSUER.into(),
        typ: SESSION_TYPE.into(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&derive(secret, "session-jwt")),
    )?)
}

/// Verifies signature, algorithm (HS256 only), issuer and type. Expiry is returned, not
/// enforced here: an expired token still names its session, which is re-issued if the row
/// is valid (the idle timeout is longer than the token's life).
pub(crate) fn decode_session_jwt(secret: &SecretString, token: &str) -> Option<SessionClaims> {
    let mut v = Validation::new(Algorithm::HS256);
    v.validate_exp = false;
    v.required_spec_claims = ["exp", "iss"].iter().map(|s| s.to_string()).collect();
    v.set_issuer(&[ISSUER]);
    let data = jsonwebtoken::decode::<SessionClaims>(
        token,
        &DecodingKey::from_secret(&derive(secret, "session-jwt")),
        &v,
    )
    .ok()?;
    (data.claims.typ == SESSION_TYPE).then_some(data.claims)
}

/// The CSRF token for a binding (a session id, or a pre-session nonce).
pub(crate) fn csrf_token(secret: &SecretString, binding: &str) -> String {
    let key = derive(secret, "csrf");
    let mut mac = <HmacSha256 as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
    mac.update(binding.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn csrf_valid(secret: &SecretString, binding: &str, presented: &str) -> bool {
    let expected = csrf_token(secret, binding);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// A fresh one-time token for a link, and the hash we store (never the token itself).
pub(crate) fn new_link_token() -> (String, String) {
    let token = crate::config::random_token(32);
    let hash = hash_link_token(&token);
    (token, hash)
}

pub(crate) fn hash_link_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn session_jwt_round_trip_and_tamper() {
        let now = OffsetDateTime::now_utc();
        let (sid, uid) = (Uuid::new_v4(), Uuid::new_v4());
        let t = issue_session_jwt(&secret(), sid, uid, now).unwrap();
        let c = decode_session_jwt(&secret(), &t).unwrap();
        assert_eq!((c.sid, c.uid), (sid, uid));
        assert!(
            decode_session_jwt(&SecretString::from("another-secret-another-secret-xx"), &t)
                .is_none()
        );
        let mut bad = t.clone();
        bad.push('x');
        assert!(decode_session_jwt(&secret(), &bad).is_none());
        // alg=none is refused.
        let parts: Vec<&str> = t.split('.').collect();
        let none_header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        assert!(decode_session_jwt(&secret(), &format!("{none_header}.{}.", parts[1])).is_none());
    }

    #[test]
    fn csrf_tokens_are_bound() {
        let t = csrf_token(&secret(), "s:abc");
        assert!(csrf_valid(&secret(), "s:abc", &t));
        assert!(!csrf_valid(&secret(), "s:abd", &t));
        assert!(!csrf_valid(&secret(), "s:abc", ""));
    }

    #[test]
    fn link_tokens_store_only_hashes() {
        let (token, hash) = new_link_token();
        assert_ne!(token, hash);
        assert_eq!(hash_link_token(&token), hash);
        assert!(token.len() >= 40);
    }
}
