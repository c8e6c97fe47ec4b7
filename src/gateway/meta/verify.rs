//! Cloud API webhook authentication: the body's HMAC signature and the subscribe handshake.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

// ---------------------------------------------------------------------------------------
// Webhook authentication
// ---------------------------------------------------------------------------------------

/// The header Meta signs every notification with.
pub(crate) const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Checks `X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256(app secret, raw body), in
/// constant time, over the bytes exactly as received (before any JSON parsing).
pub(crate) fn verify_signature(
    app_secret: &[u8],
    raw_body: &[u8],
    header_value: Option<&str>,
) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header_value.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret) else {
        return false;
    };
    mac.update(raw_body);
    // verify_slice compares in constant time and refuses a wrong length.
    mac.verify_slice(&given).is_ok()
}

/// The GET handshake Meta makes when the callback URL is saved: the challenge to echo back
/// (as a text/plain 200) when `hub.mode` is `subscribe` and `hub.verify_token` matches;
/// otherwise `None` (answer 403).
pub(crate) fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Option<String> {
    if expected_token.is_empty() || mode != Some("subscribe") {
        return None;
    }
    let token = token?;
    if !bool::from(token.as_bytes().ct_eq(expected_token.as_bytes())) {
        return None;
    }
    // Meta sends a number; echo nothing that could be markup.
    let challenge = challenge?;
    let plausible = !challenge.is_empty()
        && challenge.len() <= 128
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then(|| challenge.to_owned())
}
