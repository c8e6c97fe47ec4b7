//! Keyed blind indexes: search sealed data by equality without decrypting it.
//!
//! A token is `HMAC-SHA256(index key, kind | value)`, truncated to 128 bits and hex-encoded.
//! The index key is derived per tenant (HKDF from the tenant's data key), so the same phone
//! in two tenants gives unrelated tokens. What it leaks, by design: within one tenant, equal
//! phones and equal words give equal tokens (documented in `docs/security.md`).

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
use zeroize::Zeroizing;

/// HMAC-SHA256 over the concatenation of length-prefixed `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for p in parts {
        mac.update(&(p.len() as u32).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// A 256-bit subkey of `ikm` for one purpose (`info`).
pub(crate) fn derive_key(ikm: &[u8], info: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    if Hkdf::<Sha256>::new(Some(b"sigmaai/hkdf/v1"), ikm)
        .expand(info.as_bytes(), out.as_mut())
        .is_err()
    {
        unreachable!("32 bytes is a valid HKDF-SHA256 output length");
    }
    out
}

/// One tenant's blind-index key.
pub(crate) struct BlindIndexKey(Zeroizing<[u8; 32]>);

impl BlindIndexKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> BlindIndexKey {
        BlindIndexKey(key)
    }

    fn token(&self, kind: &[u8], value: &str) -> String {
        hex::encode(&hmac_sha256(self.0.as_ref(), &[kind, value.as_bytes()])[..16])
    }

    /// The token of an already normalized phone number (E.164 digits).
    pub(crate) fn phone(&self, normalized_phone: &str) -> String {
        self.token(b"phone", normalized_phone.trim())
    }

    /// One token per distinct word of `text` (lowercased, accents folded), in order.
    pub(crate) fn words(&self, text: &str) -> Vec<String> {
        normalize_words(text)
            .iter()
            .map(|w| self.token(b"word", w))
            .collect()
    }
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(..)")
    }
}

/// Splits `text` into distinct search words: compatibility-decomposed, combining marks
/// dropped ("José" → "jose"), lowercased, split on anything not a letter or digit.
pub(crate) fn normalize_words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let mut words: Vec<String> = Vec::new();
    for w in folded.split(|c: char| !c.is_alphanumeric()) {
        if !w.is_empty() && !words.iter().any(|have| have == w) {
            words.push(w.to_owned());
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> BlindIndexKey {
        BlindIndexKey::new(derive_key(&[seed; 32], "test"))
    }

    #[test]
    fn words_fold_case_and_accents() {
        assert_eq!(
            normalize_words("  José  da SILVA-Conceição, josé "),
            vec!["jose", "da", "silva", "conceicao"]
        );
        assert_eq!(normalize_words("ÅNGSTRÖM Ærø"), vec!["angstrom", "ærø"]);
        assert!(normalize_words(" -- ").is_empty());
    }

    #[test]
    fn equal_words_give_equal_tokens_per_key_only() {
        let a = key(1);
        assert_eq!(a.words("José"), a.words("JOSE"));
        assert_ne!(a.words("José"), key(2).words("José"));
        assert_eq!(a.phone("5511999990000"), a.phone("5511999990000"));
        assert_ne!(a.phone("5511999990000"), a.phone("5511999990001"));
        assert_ne!(a.phone("5511999990000"), key(2).phone("5511999990000"));
        // A phone token never equals a word token of the same text.
        assert_ne!(vec![a.phone("123")], a.words("123"));
        assert_eq!(a.phone("123").len(), 32);
    }
}
