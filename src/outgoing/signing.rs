//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, symmetric `v1`):
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the key
//! is the base64 part of the `whsec_…` secret the tenant was shown once.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

pub(crate) const SECRET_PREFIX: &str = "whsec_";
/// 24 random bytes (the spec asks for 24–64).
const SECRET_BYTES: usize = 24;

/// A new signing secret as shown to the tenant: `whsec_` + base64 of the key bytes.
pub(crate) fn new_secret() -> Zeroizing<String> {
    let mut key = Zeroizing::new([0u8; SECRET_BYTES]);
    rand::rngs::OsRng.fill_bytes(key.as_mut());
    Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(key.as_ref())))
}

/// The key bytes of a `whsec_…` secret.
pub(crate) fn key_of(secret: &str) -> Option<Zeroizing<Vec<u8>>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = STANDARD.decode(b64).ok()?;
    (!key.is_empty()).then(|| Zeroizing::new(key))
}

/// The `webhook-signature` header value for one message.
pub(crate) fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-id` of a delivery: the same on every retry and replay of it.
pub(crate) fn message_id(delivery_id: uuid::Uuid) -> String {
    format!("msg_{}", delivery_id.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_specs_example() {
        // The example used by the Standard Webhooks reference libraries' tests.
        let key = key_of("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn new_secrets_are_prefixed_random_and_decode() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with(SECRET_PREFIX));
        assert_ne!(*a, *b);
        assert_eq!(key_of(&a).unwrap().len(), SECRET_BYTES);
        assert!(key_of("whsec_").is_none());
        assert!(key_of("whsec_not base64!").is_none());
    }
}
