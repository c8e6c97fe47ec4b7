//! Signing the audit log's checkpoints.
//!
//! When the retention sweep prunes the oldest audit entries it keeps a checkpoint: the hash
//! of the last dropped entry, so the first remaining entry still links to something. The
//! checkpoint is signed with HMAC-SHA256 under a key derived (HKDF) from the tenant's data
//! key, which lives wrapped in the key store: write access to the main database alone is not
//! enough to forge a checkpoint that hides deleted or altered entries.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::blind::hmac_sha256;

/// One tenant's checkpoint-signing key.
pub(crate) struct CheckpointKey(Zeroizing<[u8; 32]>);

impl CheckpointKey {
    pub(crate) fn new(key: Zeroizing<[u8; 32]>) -> CheckpointKey {
        CheckpointKey(key)
    }

    /// The signature of a checkpoint, given as length-prefixed parts.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        hmac_sha256(self.0.as_ref(), parts).to_vec()
    }

    /// Whether `signature` is this key's signature of `parts` (constant time).
    pub(crate) fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        self.sign(parts).ct_eq(signature).into()
    }
}

impl crate::db::audit::CheckpointSigner for CheckpointKey {
    fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        CheckpointKey::sign(self, parts)
    }

    fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool {
        CheckpointKey::verify(self, parts, signature)
    }
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::blind::derive_key;

    #[test]
    fn a_signature_holds_only_for_its_key_and_parts() {
        let k = CheckpointKey::new(derive_key(&[1; 32], "test"));
        let sig = k.sign(&[b"a", b"bc"]);
        assert!(k.verify(&[b"a", b"bc"], &sig));
        // Length-prefixed: moving a byte between parts changes the signature.
        assert!(!k.verify(&[b"ab", b"c"], &sig));
        assert!(!k.verify(&[b"a", b"bc"], &sig[..31]));
        let other = CheckpointKey::new(derive_key(&[2; 32], "test"));
        assert!(!other.verify(&[b"a", b"bc"], &sig));
    }
}
