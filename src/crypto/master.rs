//! The master key (L0) and the provider trait a KMS can implement later.
//!
//! The master key only wraps tenant keys. `SIGMAAI_MASTER_KEY` (or `_FILE`) holds 32 random
//! bytes, base64- or hex-encoded; `SIGMAAI_MASTER_KEY_PREVIOUS` lists retired ones that still
//! unwrap until `sigmaai keys rotate --master` has re-wrapped every tenant key. A key is named
//! by its fingerprint, so nothing needs numbering. In development a missing key is generated
//! once into `<data dir>/master.key` (mode 0600).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use aes_gcm::Aes256Gcm;
use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;
use secrecy::ExposeSecret;

use super::{
    CryptoError,
    aead::{SecretKey, unwrap_key, wrap_key},
};
pub(crate) use crate::config::MasterKeyError;
use crate::config::{Config, decode_master_key, master_key_bytes};

/// Where a KMS (AWS KMS, Vault transit) plugs in: it wraps and unwraps tenant keys and never
/// hands out its own key. `context` is bound to the wrapped key (a KMS "encryption context");
/// it holds ids only, never personal data.
#[async_trait]
pub(crate) trait MasterKeyProvider: Send + Sync + 'static {
    /// The id of the key new wraps use (stored beside each wrapped tenant key).
    fn current_key_id(&self) -> &str;
    /// Ids of every key that can still unwrap (the current one first).
    fn key_ids(&self) -> Vec<String>;
    async fn wrap(&self, key: &SecretKey, context: &[u8])
    -> Result<(String, Vec<u8>), CryptoError>;
    async fn unwrap(
        &self,
        master_key_id: &str,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<SecretKey, CryptoError>;
}

/// Decodes and checks a master key (the text rules are `config::master_key_bytes`, which
/// start-up uses to refuse a bad key before anything connects).
pub(crate) fn parse_master_key(text: &str) -> Result<SecretKey, MasterKeyError> {
    let bytes = master_key_bytes(text)?;
    SecretKey::from_slice(bytes.as_ref()).ok_or(MasterKeyError::Malformed)
}

/// A new random master key, base64-encoded.
pub(crate) fn generate_master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(SecretKey::random().expose())
}

/// The fingerprint naming a master key: not secret, but reveals nothing about the key.
pub(crate) fn fingerprint(key: &SecretKey) -> String {
    let mac = super::blind::hmac_sha256(key.expose(), &[b"sigmaai master key id v1"]);
    format!("local-{}", hex::encode(&mac[..8]))
}

/// Master keys held in process memory (from the environment or a file).
pub(crate) struct LocalMasterKeys {
    /// (id, cipher); the first is current.
    keys: Vec<(String, Aes256Gcm)>,
}

impl LocalMasterKeys {
    pub(crate) fn new(current: &SecretKey, previous: &[SecretKey]) -> LocalMasterKeys {
        let mut keys = vec![(fingerprint(current), current.cipher())];
        for k in previous {
            let id = fingerprint(k);
            if !keys.iter().any(|(have, _)| *have == id) {
                keys.push((id, k.cipher()));
            }
        }
        LocalMasterKeys { keys }
    }

    /// The keys the configuration names; in development, generates the key file if missing.
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<LocalMasterKeys> {
        let current = match &config.master_key {
            Some(k) => parse_master_key(k.expose_secret())
                .or_else(|e| match e {
                    // Config already refused weak keys in production.
                    MasterKeyError::Weak if !config.is_production() => {
                        decode_master_key(k.expose_secret()).and_then(|b| {
                            SecretKey::from_slice(b.as_ref()).ok_or(MasterKeyError::Malformed)
                        })
                    }
                    e => Err(e),
                })
                .context("SIGMAAI_MASTER_KEY")?,
            None if config.is_production() => {
                anyhow::bail!(crate::config::ConfigError::MissingMasterKey)
            }
            None => load_or_create_dev_key(&dev_key_path(config))?,
        };
        let previous = config
            .master_key_previous
            .iter()
            .map(|k| parse_master_key(k.expose_secret()).context("SIGMAAI_MASTER_KEY_PREVIOUS"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(LocalMasterKeys::new(&current, &previous))
    }

    fn cipher(&self, id: &str) -> Result<&Aes256Gcm, CryptoError> {
        self.keys
            .iter()
            .find(|(have, _)| have == id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownMasterKey(id.to_owned()))
    }
}

#[async_trait]
impl MasterKeyProvider for LocalMasterKeys {
    fn current_key_id(&self) -> &str {
        &self.keys[0].0
    }

    fn key_ids(&self) -> Vec<String> {
        self.keys.iter().map(|(id, _)| id.clone()).collect()
    }

    async fn wrap(
        &self,
        key: &SecretKey,
        context: &[u8],
    ) -> Result<(String, Vec<u8>), CryptoError> {
        let (id, cipher) = &self.keys[0];
        let wrapped = wrap_key(cipher, key, &master_context(id, context))?;
        Ok((id.clone(), wrapped))
    }

    async fn unwrap(
        &self,
        master_key_id: &str,
        wrapped: &[u8],
        context: &[u8],
    ) -> Result<SecretKey, CryptoError> {
        let cipher = self.cipher(master_key_id)?;
        unwrap_key(cipher, wrapped, &master_context(master_key_id, context))
    }
}

fn master_context(id: &str, context: &[u8]) -> Vec<u8> {
    super::aead::ContextBuilder::new("sigmaai/master-wrap/v1")
        .bytes(id.as_bytes())
        .bytes(context)
        .finish()
}

pub(crate) fn dev_key_path(config: &Config) -> PathBuf {
    config.data_dir.join("master.key")
}

/// Reads the development key file, creating it (mode 0600) on first start.
fn load_or_create_dev_key(path: &Path) -> anyhow::Result<SecretKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return parse_master_key(&text)
                .with_context(|| format!("master key file {}", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let text = zeroize::Zeroizing::new(generate_master_key());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            tracing::warn!(
                path = %path.display(),
                "development: generated a master key file; back it up separately from the databases"
            );
            Ok(parse_master_key(&text)?)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            Ok(parse_master_key(&text)?)
        }
        Err(e) => Err(e).with_context(|| format!("could not create {}", path.display())),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "master key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_base64_and_hex_and_refuses_weak_or_short() {
        let b64 = generate_master_key();
        let key = parse_master_key(&b64).unwrap();
        let hex = hex::encode(key.expose());
        assert_eq!(parse_master_key(&hex).unwrap().expose(), key.expose());
        assert_eq!(
            parse_master_key(&format!("{b64}\n")).unwrap().expose(),
            key.expose()
        );
        assert!(matches!(
            parse_master_key(&"00".repeat(32)),
            Err(MasterKeyError::Weak)
        ));
        assert!(matches!(
            parse_master_key("hunter2"),
            Err(MasterKeyError::Malformed)
        ));
        assert!(matches!(
            parse_master_key(&"ab".repeat(16)),
            Err(MasterKeyError::Malformed)
        ));
        let weak = base64::engine::general_purpose::STANDARD.encode([b'a'; 32]);
        assert!(matches!(parse_master_key(&weak), Err(MasterKeyError::Weak)));
    }

    #[tokio::test]
    async fn previous_keys_still_unwrap_and_unknown_ids_are_named() {
        let old = SecretKey::random();
        let new = SecretKey::random();
        let before = LocalMasterKeys::new(&old, &[]);
        let tk = SecretKey::random();
        let (id, wrapped) = before.wrap(&tk, b"ctx").await.unwrap();
        assert_eq!(id, fingerprint(&old));
        let after = LocalMasterKeys::new(&new, &[old]);
        assert_eq!(after.current_key_id(), fingerprint(&new));
        assert_eq!(
            after.unwrap(&id, &wrapped, b"ctx").await.unwrap().expose(),
            tk.expose()
        );
        assert!(after.unwrap(&id, &wrapped, b"other").await.is_err());
        let retired = LocalMasterKeys::new(&new, &[]);
        assert!(matches!(
            retired.unwrap(&id, &wrapped, b"ctx").await,
            Err(CryptoError::UnknownMasterKey(_))
        ));
    }

    #[test]
    fn dev_key_file_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("sigmaai-mk-{}", uuid::Uuid::new_v4()));
        let path = dir.join("master.key");
        let a = load_or_create_dev_key(&path).unwrap();
        let b = load_or_create_dev_key(&path).unwrap();
        assert_eq!(a.expose(), b.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
