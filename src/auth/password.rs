//! Password hashing with argon2id (the crate's defaults: 19 MiB, t=2, p=1, as OWASP
//! recommends), off the async runtime and with bounded concurrency so a login burst can't
//! exhaust memory or starve request handling.

use std::sync::OnceLock;

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

/// At most this many hashes at once (each takes ~19 MiB and a core for ~20-50 ms).
const CONCURRENT_HASHES: usize = 4;

fn permits() -> &'static Semaphore {
    static S: OnceLock<Semaphore> = OnceLock::new();
    S.get_or_init(|| Semaphore::new(CONCURRENT_HASHES))
}

pub(crate) async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    let _permit = permits().acquire().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// Constant-time verification. `None` for the hash (unknown user) still spends the same
/// work on a dummy hash, so response time doesn't reveal which accounts exist.
pub(crate) async fn verify(password: &str, stored: Option<&str>) -> anyhow::Result<bool> {
    let password = password.to_owned();
    let known = stored.is_some();
    let stored = stored
        .map(str::to_owned)
        .unwrap_or_else(|| dummy_hash().to_owned());
    let _permit = permits().acquire().await?;
    tokio::task::spawn_blocking(move || {
        let parsed =
            PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("bad stored hash: {e}"))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await?
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"dummy password for timing", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn hash_and_verify() {
        let h = super::hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            super::verify("correct horse battery", Some(&h))
                .await
                .unwrap()
        );
        assert!(!super::verify("wrong", Some(&h)).await.unwrap());
        assert!(!super::verify("correct horse battery", None).await.unwrap());
    }
}
