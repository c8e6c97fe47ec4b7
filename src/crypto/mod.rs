//! Encryption at rest and cryptographic deletion.
//!
//! Key hierarchy (see `docs/security.md`):
//! - **master key** (L0, [`master::MasterKeyProvider`]: env/file today, a KMS later) wraps
//! - **tenant keys** (L1, versioned, in the key store), which wrap
//! - **data keys** (L2): one per contact, sealing that contact's data, and one per tenant
//!   (subject = the nil uuid) for tenant-level secrets and, through HKDF, the blind index.
//!
//! Destroying a contact's data key makes every copy of that contact's ciphertext unreadable,
//! backups included (the key store's backups are kept ≤ 7 days). Destroying a tenant key does
//! the same for the whole tenant.

pub(crate) mod aead;
pub(crate) mod blind;
pub(crate) mod cache;
pub(crate) mod checkpoint;
pub(crate) mod ledger;
pub(crate) mod master;

use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;
use uuid::Uuid;

use self::{
    aead::{ContextBuilder, DataKey, Header, SecretKey},
    blind::{BlindIndexKey, derive_key},
    cache::{Cache, Invalidation},
    checkpoint::CheckpointKey,
    ledger::{DestroyedKind, Ledger, LedgerContents, NewEntry},
    master::{LocalMasterKeys, MasterKeyProvider},
};
use crate::{clock::SharedClock, config::Config, db::keystore, redis::Redis};

#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptoError {
    /// The key was destroyed (erasure, tenant termination) or is gone from the key store:
    /// the data is unreadable for good. Show it as "erased", never as a server error.
    #[error("the key for this data was destroyed")]
    KeyDestroyed,
    /// Authentication failed: the ciphertext was altered, or belongs to another row, column,
    /// tenant or contact.
    #[error("the ciphertext failed authentication")]
    Tampered,
    #[error("the ciphertext is malformed or of an unknown format")]
    Malformed,
    #[error(
        "master key {0} is not configured (list it in SIGMAAI_MASTER_KEY_PREVIOUS until rotation is done)"
    )]
    UnknownMasterKey(String),
    #[error("key store: {0}")]
    Store(#[from] sqlx::Error),
    #[error("deletion ledger: {0}")]
    Ledger(String),
    #[error("{0}")]
    Internal(&'static str),
}

/// The pseudo-tenant whose key seals platform-level secrets (never a real tenant's id).
pub(crate) const PLATFORM_TENANT: Uuid = Uuid::nil();

/// Where a sealed value lives. The tenant (and contact) are bound too, by [`Keyring`] itself:
/// a ciphertext copied to another row, column, table, contact or tenant does not open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aad<'a> {
    pub(crate) table: &'a str,
    pub(crate) column: &'a str,
    pub(crate) row_id: Uuid,
}

impl<'a> Aad<'a> {
    pub(crate) fn new(table: &'a str, column: &'a str, row_id: Uuid) -> Aad<'a> {
        Aad {
            table,
            column,
            row_id,
        }
    }

    fn context(&self, tenant_id: Uuid, subject_id: Uuid) -> Vec<u8> {
        ContextBuilder::new("sigmaai/aad/v1")
            .uuid(tenant_id)
            .uuid(subject_id)
            .bytes(self.table.as_bytes())
            .bytes(self.column.as_bytes())
            .uuid(self.row_id)
            .finish()
    }
}

/// The unwrapped versions of one tenant key (wrapping keys for data keys only).
struct TenantKeys {
    /// (version, cipher), ascending; the last is current.
    versions: Vec<(i32, aes_gcm::Aes256Gcm)>,
}

impl TenantKeys {
    fn current(&self) -> Option<&(i32, aes_gcm::Aes256Gcm)> {
        self.versions.last()
    }

    fn version(&self, v: i32) -> Option<&aes_gcm::Aes256Gcm> {
        self.versions
            .iter()
            .find(|(have, _)| *have == v)
            .map(|(_, c)| c)
    }
}

/// An unwrapped data key; the tenant's own also carries its blind-index and audit
/// checkpoint keys.
struct SubjectKey {
    data: DataKey,
    blind: Option<BlindIndexKey>,
    checkpoint: Option<Arc<CheckpointKey>>,
}

/// Outcome of [`Keyring::rotate_master`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MasterRotation {
    pub(crate) rewrapped: usize,
    pub(crate) current_master_key_id: String,
    /// Tenant keys per master key id after the rotation.
    pub(crate) per_master_key: Vec<(String, i64)>,
}

/// Outcome of [`Keyring::rotate_tenant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantRotation {
    pub(crate) new_version: i32,
    pub(crate) rewrapped_data_keys: usize,
}

/// Outcome of [`Keyring::replay_ledger`].
#[derive(Debug, Default)]
pub(crate) struct ReplayReport {
    pub(crate) entries: usize,
    /// Key rows a restore had brought back and that were destroyed again.
    pub(crate) keys_destroyed_again: u64,
    /// Problems in the ledger's hash chain (every parsable entry was still applied).
    pub(crate) chain_problems: Vec<String>,
}

/// Seals, opens and destroys keys. Cheap to clone; one per process (in `AppState`).
#[derive(Clone)]
pub(crate) struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    store: PgPool,
    master: Arc<dyn MasterKeyProvider>,
    redis: Redis,
    clock: SharedClock,
    cache: Arc<Cache<TenantKeys, SubjectKey>>,
    ledger: Ledger,
}

const TENANT_SUBJECT: Uuid = Uuid::nil();
const SEAL_INFO: &str = "sigmaai/tenant-seal/v1";
const BLIND_INFO: &str = "sigmaai/blind-index/v1";
const CHECKPOINT_INFO: &str = "sigmaai/audit-checkpoint/v1";

impl Keyring {
    /// Connects to the key store as the application role and loads the master key(s).
    pub(crate) async fn connect(
        config: &Config,
        redis: Redis,
        clock: SharedClock,
    ) -> anyhow::Result<Keyring> {
        let store = keystore::connect_app(config).await?;
        let master = LocalMasterKeys::from_config(config).context("loading the master key")?;
        Ok(Keyring::new(
            store,
            Arc::new(master),
            redis,
            clock,
            config.key_cache_ttl,
            Ledger::new(&config.deletion_ledger),
        ))
    }

    /// Builds a keyring on an existing key-store pool. Registers the cache's invalidation
    /// listener on `redis`'s shared subscriber connection when Redis is configured (must be
    /// called inside a Tokio runtime); it stops being called when the keyring is dropped.
    pub(crate) fn new(
        store: PgPool,
        master: Arc<dyn MasterKeyProvider>,
        redis: Redis,
        clock: SharedClock,
        cache_ttl: std::time::Duration,
        ledger: Ledger,
    ) -> Keyring {
        let cache = Arc::new(Cache::new(cache_ttl, clock.clone()));
        let subscriber: Arc<dyn crate::redis::Subscriber> = cache.clone();
        redis.subscribe(redis.key(cache::CHANNEL), Arc::downgrade(&subscriber));
        Keyring {
            inner: Arc::new(Inner {
                store,
                master,
                redis,
                clock,
                cache,
                ledger,
            }),
        }
    }

    /// Whether cross-instance invalidation is live (subscribed to Redis).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn invalidation_live(&self) -> bool {
        self.inner.cache.is_listening()
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    pub(crate) fn master(&self) -> &dyn MasterKeyProvider {
        self.inner.master.as_ref()
    }

    // ---- sealing ---------------------------------------------------------------------

    /// Seals a contact's data under the contact's key (created if missing).
    pub(crate) async fn seal(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
        aad: Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.contact_key(tenant_id, contact_id, true).await?;
        key.data
            .seal(&aad.context(tenant_id, contact_id), plaintext)
    }

    /// Opens a contact's data. [`CryptoError::KeyDestroyed`] when the contact was erased.
    pub(crate) async fn open(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
        aad: Aad<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        Header::parse(sealed)?;
        let key = self.contact_key(tenant_id, contact_id, false).await?;
        key.data.open(&aad.context(tenant_id, contact_id), sealed)
    }

    pub(crate) async fn seal_str(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
        aad: Aad<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal(tenant_id, contact_id, aad, plaintext.as_bytes())
            .await
    }

    pub(crate) async fn open_str(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
        aad: Aad<'_>,
        sealed: &[u8],
    ) -> Result<String, CryptoError> {
        let bytes = self.open(tenant_id, contact_id, aad, sealed).await?;
        String::from_utf8(bytes).map_err(|_| CryptoError::Malformed)
    }

    /// Seals a tenant-level secret (API keys, MCP tokens, TOTP secrets) under the tenant's
    /// own data key (created with the tenant key if missing).
    pub(crate) async fn seal_tenant(
        &self,
        tenant_id: Uuid,
        aad: Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self.tenant_data_key(tenant_id, true).await?;
        key.data
            .seal(&aad.context(tenant_id, TENANT_SUBJECT), plaintext)
    }

    pub(crate) async fn open_tenant(
        &self,
        tenant_id: Uuid,
        aad: Aad<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        Header::parse(sealed)?;
        let key = self.tenant_data_key(tenant_id, false).await?;
        key.data
            .open(&aad.context(tenant_id, TENANT_SUBJECT), sealed)
    }

    /// Seals a platform-level secret that belongs to no tenant (a user's TOTP secret) under
    /// the platform's own key, kept in the key store like a tenant's (the nil tenant id).
    pub(crate) async fn seal_platform(
        &self,
        aad: Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal_tenant(PLATFORM_TENANT, aad, plaintext).await
    }

    pub(crate) async fn open_platform(
        &self,
        aad: Aad<'_>,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.open_tenant(PLATFORM_TENANT, aad, sealed).await
    }

    pub(crate) async fn seal_tenant_str(
        &self,
        tenant_id: Uuid,
        aad: Aad<'_>,
        plaintext: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal_tenant(tenant_id, aad, plaintext.as_bytes()).await
    }

    pub(crate) async fn open_tenant_str(
        &self,
        tenant_id: Uuid,
        aad: Aad<'_>,
        sealed: &[u8],
    ) -> Result<String, CryptoError> {
        let bytes = self.open_tenant(tenant_id, aad, sealed).await?;
        String::from_utf8(bytes).map_err(|_| CryptoError::Malformed)
    }

    // ---- blind index -----------------------------------------------------------------

    /// The tenant's token for an exact phone match (pass the normalized number).
    pub(crate) async fn blind_phone(
        &self,
        tenant_id: Uuid,
        normalized_phone: &str,
    ) -> Result<String, CryptoError> {
        Ok(self.blind_key(tenant_id).await?.phone(normalized_phone))
    }

    /// The tenant's tokens for each distinct word of `text` (lowercased, accents folded).
    pub(crate) async fn blind_words(
        &self,
        tenant_id: Uuid,
        text: &str,
    ) -> Result<Vec<String>, CryptoError> {
        Ok(self.blind_key(tenant_id).await?.words(text))
    }

    async fn blind_key(
        &self,
        tenant_id: Uuid,
    ) -> Result<impl std::ops::Deref<Target = BlindIndexKey>, CryptoError> {
        struct Blind(Arc<SubjectKey>);
        impl std::ops::Deref for Blind {
            type Target = BlindIndexKey;
            fn deref(&self) -> &BlindIndexKey {
                match &self.0.blind {
                    Some(b) => b,
                    None => unreachable!("tenant data keys always carry a blind-index key"),
                }
            }
        }
        Ok(Blind(self.tenant_data_key(tenant_id, true).await?))
    }

    // ---- audit checkpoints ------------------------------------------------------------

    /// The tenant's key for signing audit-log checkpoints (created with the tenant key if
    /// missing). Derived from the tenant data key, so it survives `keys rotate --tenant` and
    /// dies with the tenant key.
    pub(crate) async fn audit_checkpoint_key(
        &self,
        tenant_id: Uuid,
    ) -> Result<Arc<CheckpointKey>, CryptoError> {
        self.tenant_data_key(tenant_id, true)
            .await?
            .checkpoint
            .clone()
            .ok_or(CryptoError::Internal(
                "tenant data keys always carry a checkpoint key",
            ))
    }

    // ---- key creation and loading ----------------------------------------------------

    /// Creates the tenant key (and the tenant's data key) unless present. Idempotent and
    /// safe to call concurrently; [`CryptoError::KeyDestroyed`] for a destroyed tenant.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) async fn ensure_tenant_key(&self, tenant_id: Uuid) -> Result<(), CryptoError> {
        self.tenant_data_key(tenant_id, true).await.map(|_| ())
    }

    /// Creates the contact's key unless present (call before the ingest transaction).
    /// Idempotent and safe concurrently; [`CryptoError::KeyDestroyed`] for an erased contact.
    pub(crate) async fn ensure_contact_key(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
    ) -> Result<(), CryptoError> {
        self.contact_key(tenant_id, contact_id, true)
            .await
            .map(|_| ())
    }

    /// Creates the data keys of these new contacts (fresh ids, never used before) in one
    /// key-store statement, one commit, and caches them. Call before the ingest transaction
    /// that inserts the contacts commits: no row may refer to a key that does not exist.
    /// A key whose contact row never commits is an orphan the sweep removes.
    pub(crate) async fn create_contact_keys(
        &self,
        tenant_id: Uuid,
        contact_ids: &[Uuid],
    ) -> Result<(), CryptoError> {
        if contact_ids.is_empty() {
            return Ok(());
        }
        if contact_ids.iter().any(Uuid::is_nil) {
            return Err(CryptoError::Internal("the nil uuid is not a contact"));
        }
        // The tenant's own data key first (created with the tenant key if missing).
        self.tenant_data_key(tenant_id, true).await?;
        let cache = &self.inner.cache;
        let epoch = cache.epoch();
        let tenant_keys = self.tenant_keys(tenant_id).await?;
        let (tk_version, wrapping) = tenant_keys.current().ok_or(CryptoError::KeyDestroyed)?;
        let mut rows = Vec::with_capacity(contact_ids.len());
        let mut keys = Vec::with_capacity(contact_ids.len());
        for &subject_id in contact_ids {
            let key_id = Uuid::new_v4();
            let secret = SecretKey::random();
            let wrapped = aead::wrap_key(
                wrapping,
                &secret,
                &data_key_context(tenant_id, subject_id, key_id, 1, *tk_version),
            )?;
            keys.push((
                subject_id,
                SubjectKey {
                    data: DataKey::new(key_id, 1, &secret),
                    blind: None,
                    checkpoint: None,
                },
            ));
            rows.push(keystore::DataKeyRow {
                subject_id,
                key_id,
                key_version: 1,
                tenant_key_version: *tk_version,
                wrapped,
            });
        }
        keystore::insert_data_keys(&self.inner.store, tenant_id, &rows).await?;
        for (subject_id, key) in keys {
            cache.put_subject(epoch, tenant_id, subject_id, Arc::new(key));
        }
        Ok(())
    }

    async fn contact_key(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
        create: bool,
    ) -> Result<Arc<SubjectKey>, CryptoError> {
        if contact_id.is_nil() {
            return Err(CryptoError::Internal("the nil uuid is not a contact"));
        }
        self.subject_key(tenant_id, contact_id, create).await
    }

    async fn tenant_data_key(
        &self,
        tenant_id: Uuid,
        create: bool,
    ) -> Result<Arc<SubjectKey>, CryptoError> {
        self.subject_key(tenant_id, TENANT_SUBJECT, create).await
    }

    async fn subject_key(
        &self,
        tenant_id: Uuid,
        subject_id: Uuid,
        create: bool,
    ) -> Result<Arc<SubjectKey>, CryptoError> {
        let cache = &self.inner.cache;
        if let Some(k) = cache.subject(tenant_id, subject_id) {
            return Ok(k);
        }
        let epoch = cache.epoch();
        let row = match keystore::data_key(&self.inner.store, tenant_id, subject_id).await? {
            Some(row) => row,
            None if create => self.create_data_key(tenant_id, subject_id).await?,
            None => return Err(CryptoError::KeyDestroyed),
        };
        let tenant_keys = self.tenant_keys(tenant_id).await?;
        let key = self.unwrap_data_key(tenant_id, &tenant_keys, &row)?;
        let key = Arc::new(key);
        cache.put_subject(epoch, tenant_id, subject_id, key.clone());
        Ok(key)
    }

    fn unwrap_data_key(
        &self,
        tenant_id: Uuid,
        tenant_keys: &TenantKeys,
        row: &keystore::DataKeyRow,
    ) -> Result<SubjectKey, CryptoError> {
        let wrapping = tenant_keys
            .version(row.tenant_key_version)
            // Its tenant-key version was retired: only possible if the key store is inconsistent.
            .ok_or(CryptoError::KeyDestroyed)?;
        let secret = aead::unwrap_key(
            wrapping,
            &row.wrapped,
            &data_key_context(
                tenant_id,
                row.subject_id,
                row.key_id,
                row.key_version,
                row.tenant_key_version,
            ),
        )?;
        let version = u32::try_from(row.key_version).map_err(|_| CryptoError::Malformed)?;
        Ok(if row.subject_id == TENANT_SUBJECT {
            let seal = SecretKey::from_slice(derive_key(secret.expose(), SEAL_INFO).as_ref())
                .ok_or(CryptoError::Malformed)?;
            SubjectKey {
                data: DataKey::new(row.key_id, version, &seal),
                blind: Some(BlindIndexKey::new(derive_key(secret.expose(), BLIND_INFO))),
                checkpoint: Some(Arc::new(CheckpointKey::new(derive_key(
                    secret.expose(),
                    CHECKPOINT_INFO,
                )))),
            }
        } else {
            SubjectKey {
                data: DataKey::new(row.key_id, version, &secret),
                blind: None,
                checkpoint: None,
            }
        })
    }

    /// The unwrapped tenant key versions; creates the tenant key first if there is none.
    async fn tenant_keys(&self, tenant_id: Uuid) -> Result<Arc<TenantKeys>, CryptoError> {
        let cache = &self.inner.cache;
        if let Some(k) = cache.tenant(tenant_id) {
            return Ok(k);
        }
        let epoch = cache.epoch();
        let rows = keystore::tenant_keys(&self.inner.store, tenant_id).await?;
        if rows.is_empty() {
            return Err(CryptoError::KeyDestroyed);
        }
        let keys = Arc::new(self.unwrap_tenant_keys(tenant_id, &rows).await?);
        cache.put_tenant(epoch, tenant_id, keys.clone());
        Ok(keys)
    }

    async fn unwrap_tenant_keys(
        &self,
        tenant_id: Uuid,
        rows: &[keystore::TenantKeyRow],
    ) -> Result<TenantKeys, CryptoError> {
        let mut versions = Vec::with_capacity(rows.len());
        for row in rows {
            let key = self
                .inner
                .master
                .unwrap(
                    &row.master_key_id,
                    &row.wrapped,
                    &tenant_key_context(tenant_id, row.version),
                )
                .await?;
            versions.push((row.version, key.cipher()));
        }
        versions.sort_by_key(|(v, _)| *v);
        Ok(TenantKeys { versions })
    }

    /// Creates a data key (and the tenant key, for the tenant's own subject) under locks.
    async fn create_data_key(
        &self,
        tenant_id: Uuid,
        subject_id: Uuid,
    ) -> Result<keystore::DataKeyRow, CryptoError> {
        if subject_id != TENANT_SUBJECT
            && keystore::data_key(&self.inner.store, tenant_id, TENANT_SUBJECT)
                .await?
                .is_none()
        {
            // The tenant key must exist first (its own transaction, its own lock).
            Box::pin(self.create_data_key(tenant_id, TENANT_SUBJECT)).await?;
        }
        let mut tx = self.inner.store.begin().await?;
        keystore::lock_subject(&mut tx, tenant_id, subject_id).await?;
        if keystore::is_destroyed(&mut *tx, tenant_id, subject_id).await? {
            return Err(CryptoError::KeyDestroyed);
        }
        if let Some(row) = keystore::data_key(&mut *tx, tenant_id, subject_id).await? {
            return Ok(row); // created concurrently
        }
        let (tk_version, wrapping) = if subject_id == TENANT_SUBJECT {
            let tk = SecretKey::random();
            let (master_key_id, wrapped) = self
                .inner
                .master
                .wrap(&tk, &tenant_key_context(tenant_id, 1))
                .await?;
            keystore::insert_tenant_key(
                &mut *tx,
                tenant_id,
                &keystore::TenantKeyRow {
                    version: 1,
                    master_key_id,
                    wrapped,
                },
            )
            .await?;
            (1, tk.cipher())
        } else {
            let rows = keystore::tenant_keys(&mut *tx, tenant_id).await?;
            let keys = self.unwrap_tenant_keys(tenant_id, &rows).await?;
            let (v, c) = keys.current().ok_or(CryptoError::KeyDestroyed)?;
            (*v, c.clone())
        };
        let key_id = Uuid::new_v4();
        let secret = SecretKey::random();
        let wrapped = aead::wrap_key(
            &wrapping,
            &secret,
            &data_key_context(tenant_id, subject_id, key_id, 1, tk_version),
        )?;
        let row = keystore::DataKeyRow {
            subject_id,
            key_id,
            key_version: 1,
            tenant_key_version: tk_version,
            wrapped,
        };
        keystore::insert_data_key(&mut *tx, tenant_id, &row).await?;
        tx.commit().await?;
        Ok(row)
    }

    // ---- destruction -----------------------------------------------------------------

    /// Erases a contact: records it in the deletion ledger (fsynced), deletes the contact's
    /// key, then tells every instance to drop its cached copy. Everything sealed for the
    /// contact, in every copy and backup, is unreadable from then on. `reason` is stored in
    /// the ledger: ids only (e.g. the request id), never personal data.
    pub(crate) async fn destroy_contact_key(
        &self,
        tenant_id: Uuid,
        contact_id: Uuid,
        reason: &str,
    ) -> Result<(), CryptoError> {
        if contact_id.is_nil() {
            return Err(CryptoError::Internal("the nil uuid is not a contact"));
        }
        self.destroy(tenant_id, Some(contact_id), reason).await
    }

    /// Destroys a tenant key with every key under it (tenant termination).
    pub(crate) async fn destroy_tenant_key(
        &self,
        tenant_id: Uuid,
        reason: &str,
    ) -> Result<(), CryptoError> {
        self.destroy(tenant_id, None, reason).await
    }

    async fn destroy(
        &self,
        tenant_id: Uuid,
        contact_id: Option<Uuid>,
        reason: &str,
    ) -> Result<(), CryptoError> {
        let key_ids = match contact_id {
            Some(c) => keystore::data_key(&self.inner.store, tenant_id, c)
                .await?
                .map(|r| r.key_id)
                .into_iter()
                .collect(),
            None => keystore::data_key(&self.inner.store, tenant_id, TENANT_SUBJECT)
                .await?
                .map(|r| r.key_id)
                .into_iter()
                .collect(),
        };
        self.inner
            .ledger
            .append(NewEntry {
                kind: if contact_id.is_some() {
                    DestroyedKind::Contact
                } else {
                    DestroyedKind::Tenant
                },
                tenant_id,
                contact_id,
                key_ids,
                reason: reason.to_owned(),
                at: self.inner.clock.now(),
            })
            .await?;
        let mut tx = self.inner.store.begin().await?;
        keystore::lock_subject(&mut tx, tenant_id, contact_id.unwrap_or(TENANT_SUBJECT)).await?;
        keystore::destroy(&mut tx, tenant_id, contact_id).await?;
        tx.commit().await?;
        let what = match contact_id {
            Some(c) => Invalidation::Subject(tenant_id, c),
            None => Invalidation::Tenant(tenant_id),
        };
        self.invalidate_everywhere(what).await;
        tracing::info!(tenant_id = %tenant_id, kind = ?contact_id.map_or("tenant", |_| "contact"), "key destroyed");
        Ok(())
    }

    async fn invalidate_everywhere(&self, what: Invalidation) {
        self.inner.cache.invalidate(what);
        if self.inner.redis.client().is_some() && !cache::publish(&self.inner.redis, what).await {
            tracing::warn!(
                "key invalidation not published: other instances drop the key within the cache TTL"
            );
        }
    }

    /// Re-applies the deletion ledger after a restore of the key store (or of the main
    /// database): every key it lists is destroyed again and its tombstone written back.
    pub(crate) async fn replay_ledger(&self) -> Result<ReplayReport, CryptoError> {
        let LedgerContents { entries, problems } = self.inner.ledger.read().await?;
        let mut report = ReplayReport {
            entries: entries.len(),
            chain_problems: problems,
            ..ReplayReport::default()
        };
        for e in &entries {
            let subject = match e.kind {
                DestroyedKind::Contact => match e.contact_id {
                    Some(c) if !c.is_nil() => Some(c),
                    _ => {
                        report.chain_problems.push(format!(
                            "entry {}: a contact entry without a contact id",
                            e.seq
                        ));
                        continue;
                    }
                },
                DestroyedKind::Tenant => None,
            };
            let mut tx = self.inner.store.begin().await?;
            keystore::lock_subject(&mut tx, e.tenant_id, subject.unwrap_or(TENANT_SUBJECT)).await?;
            report.keys_destroyed_again += keystore::destroy(&mut tx, e.tenant_id, subject).await?;
            tx.commit().await?;
        }
        self.invalidate_everywhere(Invalidation::All).await;
        Ok(report)
    }

    // ---- rotation --------------------------------------------------------------------

    /// Re-wraps every tenant key under the current master key. Data is not re-encrypted.
    /// Once it reports none left under an old master key, that key may be removed from
    /// `SIGMAAI_MASTER_KEY_PREVIOUS`.
    pub(crate) async fn rotate_master(&self) -> Result<MasterRotation, CryptoError> {
        let master = &self.inner.master;
        let current = master.current_key_id().to_owned();
        let mut rewrapped = 0;
        for (tenant_id, row) in keystore::tenant_keys_not_under(&self.inner.store, &current).await?
        {
            let ctx = tenant_key_context(tenant_id, row.version);
            let key = master
                .unwrap(&row.master_key_id, &row.wrapped, &ctx)
                .await?;
            let (new_id, wrapped) = master.wrap(&key, &ctx).await?;
            if keystore::rewrap_tenant_key(&self.inner.store, tenant_id, &row, &new_id, &wrapped)
                .await?
            {
                rewrapped += 1;
            }
        }
        Ok(MasterRotation {
            rewrapped,
            current_master_key_id: current,
            per_master_key: keystore::tenant_keys_per_master(&self.inner.store).await?,
        })
    }

    /// How many tenant keys each master key wraps.
    pub(crate) async fn master_key_usage(&self) -> Result<Vec<(String, i64)>, CryptoError> {
        Ok(keystore::tenant_keys_per_master(&self.inner.store).await?)
    }

    /// Adds a tenant-key version and re-wraps the tenant's data keys under it. Old versions
    /// keep unwrapping until [`Keyring::retire_tenant_versions`]. Data is not re-encrypted.
    pub(crate) async fn rotate_tenant(
        &self,
        tenant_id: Uuid,
    ) -> Result<TenantRotation, CryptoError> {
        let mut tx = self.inner.store.begin().await?;
        keystore::lock_subject(&mut tx, tenant_id, TENANT_SUBJECT).await?;
        let rows = keystore::tenant_keys(&mut *tx, tenant_id).await?;
        if rows.is_empty() {
            return Err(
                if keystore::is_destroyed(&mut *tx, tenant_id, TENANT_SUBJECT).await? {
                    CryptoError::KeyDestroyed
                } else {
                    CryptoError::Internal("this tenant has no key yet")
                },
            );
        }
        let old = self.unwrap_tenant_keys(tenant_id, &rows).await?;
        let new_version = rows.iter().map(|r| r.version).max().unwrap_or(0) + 1;
        let tk = SecretKey::random();
        let (master_key_id, wrapped) = self
            .inner
            .master
            .wrap(&tk, &tenant_key_context(tenant_id, new_version))
            .await?;
        keystore::insert_tenant_key(
            &mut *tx,
            tenant_id,
            &keystore::TenantKeyRow {
                version: new_version,
                master_key_id,
                wrapped,
            },
        )
        .await?;
        let new = tk.cipher();
        let data_keys = keystore::data_keys_of_tenant(&mut *tx, tenant_id).await?;
        for row in &data_keys {
            let wrapping = old
                .version(row.tenant_key_version)
                .ok_or(CryptoError::KeyDestroyed)?;
            let secret = aead::unwrap_key(
                wrapping,
                &row.wrapped,
                &data_key_context(
                    tenant_id,
                    row.subject_id,
                    row.key_id,
                    row.key_version,
                    row.tenant_key_version,
                ),
            )?;
            let rewrapped = aead::wrap_key(
                &new,
                &secret,
                &data_key_context(
                    tenant_id,
                    row.subject_id,
                    row.key_id,
                    row.key_version,
                    new_version,
                ),
            )?;
            keystore::rewrap_data_key(&mut *tx, tenant_id, row.subject_id, new_version, &rewrapped)
                .await?;
        }
        tx.commit().await?;
        self.invalidate_everywhere(Invalidation::Tenant(tenant_id))
            .await;
        Ok(TenantRotation {
            new_version,
            rewrapped_data_keys: data_keys.len(),
        })
    }

    /// Deletes the tenant's older key versions that no longer wrap any data key.
    pub(crate) async fn retire_tenant_versions(&self, tenant_id: Uuid) -> Result<u64, CryptoError> {
        let mut tx = self.inner.store.begin().await?;
        keystore::lock_subject(&mut tx, tenant_id, TENANT_SUBJECT).await?;
        let n = keystore::retire_tenant_versions(&mut *tx, tenant_id).await?;
        tx.commit().await?;
        self.invalidate_everywhere(Invalidation::Tenant(tenant_id))
            .await;
        Ok(n)
    }
}

fn tenant_key_context(tenant_id: Uuid, version: i32) -> Vec<u8> {
    ContextBuilder::new("sigmaai/tenant-key/v1")
        .uuid(tenant_id)
        .u32(version as u32)
        .finish()
}

fn data_key_context(
    tenant_id: Uuid,
    subject_id: Uuid,
    key_id: Uuid,
    key_version: i32,
    tenant_key_version: i32,
) -> Vec<u8> {
    ContextBuilder::new("sigmaai/data-key/v1")
        .uuid(tenant_id)
        .uuid(subject_id)
        .uuid(key_id)
        .u32(key_version as u32)
        .u32(tenant_key_version as u32)
        .finish()
}
