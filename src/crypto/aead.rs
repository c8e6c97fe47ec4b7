//! AES-256-GCM sealing with a versioned header, and key wrapping.
//!
//! A sealed value (stored as `bytea`) is
//! `format(1) | key_id(16) | key_version(4, big-endian) | nonce(12) | ciphertext | tag(16)`.
//! The associated data is the caller's context (tenant, subject, table, column, row: see
//! [`super::Aad`]) followed by the header without the nonce, so a ciphertext only opens in
//! the row, column and tenant it was sealed for, under the key its header names.

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::{RngCore, rngs::OsRng};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::CryptoError;

/// The only record format so far; a new one gets a new byte.
pub(crate) const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Bytes of the header bound as associated data (format, key id, key version).
const BOUND_HEADER_LEN: usize = 1 + KEY_ID_LEN + 4;
pub(crate) const HEADER_LEN: usize = BOUND_HEADER_LEN + NONCE_LEN;
/// What sealing adds to a plaintext.
pub(crate) const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// 256 bits of key material, zeroized on drop and never printed.
pub(crate) struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub(crate) fn random() -> SecretKey {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *key);
        SecretKey(key)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<SecretKey> {
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != key.len() {
            return None;
        }
        key.copy_from_slice(bytes);
        Some(SecretKey(key))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// The parsed header of a sealed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) key_id: Uuid,
    pub(crate) key_version: u32,
}

impl Header {
    /// Reads the header of a sealed value without opening it.
    pub(crate) fn parse(sealed: &[u8]) -> Result<Header, CryptoError> {
        if sealed.len() < OVERHEAD || sealed[0] != FORMAT_V1 {
            return Err(CryptoError::Malformed);
        }
        let key_id =
            Uuid::from_slice(&sealed[1..1 + KEY_ID_LEN]).map_err(|_| CryptoError::Malformed)?;
        let mut ver = [0u8; 4];
        ver.copy_from_slice(&sealed[1 + KEY_ID_LEN..BOUND_HEADER_LEN]);
        Ok(Header {
            key_id,
            key_version: u32::from_be_bytes(ver),
        })
    }
}

/// An unwrapped data key, ready to seal and open. The cipher's key schedule is zeroized on
/// drop (the `zeroize` feature of `aes-gcm`).
pub(crate) struct DataKey {
    key_id: Uuid,
    key_version: u32,
    cipher: Aes256Gcm,
}

impl DataKey {
    pub(crate) fn new(key_id: Uuid, key_version: u32, key: &SecretKey) -> DataKey {
        DataKey {
            key_id,
            key_version,
            cipher: key.cipher(),
        }
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn key_id(&self) -> Uuid {
        self.key_id
    }

    /// Seals `plaintext` bound to `context` (see [`super::Aad::context`]).
    pub(crate) fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.push(FORMAT_V1);
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.key_version.to_be_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        out.extend_from_slice(&nonce);
        let aad = bound_aad(context, &out[..BOUND_HEADER_LEN]);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Internal("plaintext too large to seal"))?;
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a value sealed by [`DataKey::seal`] with the same context.
    pub(crate) fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let header = Header::parse(sealed)?;
        if header.key_id != self.key_id || header.key_version != self.key_version {
            // Sealed under another key: another subject's, or moved from elsewhere.
            return Err(CryptoError::Tampered);
        }
        let aad = bound_aad(context, &sealed[..BOUND_HEADER_LEN]);
        self.cipher
            .decrypt(
                Nonce::from_slice(&sealed[BOUND_HEADER_LEN..HEADER_LEN]),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Tampered)
    }
}

fn bound_aad(context: &[u8], header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context.len() + header.len());
    aad.extend_from_slice(context);
    aad.extend_from_slice(header);
    aad
}

/// Wraps `key` under `wrapping`, bound to `context`: `format(1) | nonce(12) | ct(32) | tag(16)`.
pub(crate) fn wrap_key(
    wrapping: &Aes256Gcm,
    key: &SecretKey,
    context: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ct = wrapping
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: key.expose(),
                aad: context,
            },
        )
        .map_err(|_| CryptoError::Internal("key wrapping failed"))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Unwraps a key wrapped by [`wrap_key`] with the same context.
pub(crate) fn unwrap_key(
    wrapping: &Aes256Gcm,
    wrapped: &[u8],
    context: &[u8],
) -> Result<SecretKey, CryptoError> {
    if wrapped.len() != 1 + NONCE_LEN + 32 + TAG_LEN || wrapped[0] != FORMAT_V1 {
        return Err(CryptoError::Malformed);
    }
    let plain = Zeroizing::new(
        wrapping
            .decrypt(
                Nonce::from_slice(&wrapped[1..1 + NONCE_LEN]),
                Payload {
                    msg: &wrapped[1 + NONCE_LEN..],
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Tampered)?,
    );
    SecretKey::from_slice(&plain).ok_or(CryptoError::Malformed)
}

/// Length-prefixed canonical encoding for associated data, so `("ab","c")` ≠ `("a","bc")`.
#[derive(Default)]
pub(crate) struct ContextBuilder(Vec<u8>);

impl ContextBuilder {
    pub(crate) fn new(label: &str) -> ContextBuilder {
        ContextBuilder::default().bytes(label.as_bytes())
    }

    pub(crate) fn bytes(mut self, b: &[u8]) -> ContextBuilder {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }

    pub(crate) fn uuid(self, id: Uuid) -> ContextBuilder {
        self.bytes(id.as_bytes())
    }

    pub(crate) fn u32(self, n: u32) -> ContextBuilder {
        self.bytes(&n.to_be_bytes())
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::new(Uuid::new_v4(), 1, &SecretKey::random())
    }

    #[test]
    fn round_trip_and_header() {
        let k = key();
        let sealed = k.seal(b"ctx", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + OVERHEAD);
        let h = Header::parse(&sealed).unwrap();
        assert_eq!(h.key_id, k.key_id());
        assert_eq!(h.key_version, 1);
        assert_eq!(k.open(b"ctx", &sealed).unwrap(), b"hello");
        assert_eq!(k.open(b"ctx", &k.seal(b"ctx", b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn nonces_differ() {
        let k = key();
        assert_ne!(
            k.seal(b"c", b"same").unwrap(),
            k.seal(b"c", b"same").unwrap()
        );
    }

    #[test]
    fn every_flipped_bit_fails() {
        let k = key();
        let sealed = k.seal(b"ctx", b"some message").unwrap();
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(k.open(b"ctx", &bad).is_err(), "byte {i} bit {bit}");
            }
        }
        assert!(matches!(
            k.open(b"ctx", &sealed[..sealed.len() - 1]),
            Err(CryptoError::Tampered)
        ));
        assert!(matches!(
            k.open(b"ctx", &sealed[..10]),
            Err(CryptoError::Malformed)
        ));
        assert!(matches!(
            k.open(b"ctX", &sealed),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn another_key_refuses() {
        let sealed = key().seal(b"ctx", b"x").unwrap();
        assert!(matches!(
            key().open(b"ctx", &sealed),
            Err(CryptoError::Tampered)
        ));
    }

    #[test]
    fn wrapping_binds_context() {
        let kek = SecretKey::random().cipher();
        let k = SecretKey::random();
        let w = wrap_key(&kek, &k, b"a").unwrap();
        assert_eq!(unwrap_key(&kek, &w, b"a").unwrap().expose(), k.expose());
        assert!(matches!(
            unwrap_key(&kek, &w, b"b"),
            Err(CryptoError::Tampered)
        ));
        let other = SecretKey::random().cipher();
        assert!(unwrap_key(&other, &w, b"a").is_err());
    }

    #[test]
    fn context_is_unambiguous() {
        let a = ContextBuilder::new("x").bytes(b"ab").bytes(b"c").finish();
        let b = ContextBuilder::new("x").bytes(b"a").bytes(b"bc").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn secret_key_debug_hides_bytes() {
        assert_eq!(format!("{:?}", SecretKey::random()), "SecretKey(..)");
    }
}
