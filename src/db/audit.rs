//! The append-only audit log: who read, exported, approved, changed or deleted what.
//!
//! Each tenant's entries form a hash chain: an entry's hash covers the previous entry's hash
//! and its own fields, so changing or deleting any entry breaks every later link. The
//! application role cannot UPDATE or DELETE audit rows at all (see the migration).
//!
//! A tenant may choose to keep entries a limited time (`privacy_settings.audit_days`). The
//! sweep then drops the oldest entries — always a prefix of the chain, never the newest — and
//! keeps a signed [`Checkpoint`]: the hash of the last dropped entry, which the first kept
//! entry links to. Verification starts from the latest checkpoint, so a pruned log still
//! verifies, while a deletion without a genuine checkpoint shows as tampering.

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use tracing::Instrument;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub(crate) id: Option<Uuid>,
    /// Shown in the log: the member's e-mail, or "system", or "end user".
    pub(crate) label: String,
}

impl Actor {
    pub(crate) fn user(id: Uuid, email: &str) -> Actor {
        Actor {
            id: Some(id),
            label: email.to_owned(),
        }
    }

    pub(crate) fn system() -> Actor {
        Actor {
            id: None,
            label: "system".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) seq: i64,
    pub(crate) id: Uuid,
    pub(crate) at: OffsetDateTime,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) actor_label: String,
    pub(crate) action: String,
    pub(crate) subject: String,
    pub(crate) detail: Value,
    pub(crate) prev_hash: Vec<u8>,
    pub(crate) hash: Vec<u8>,
}

/// The hash of an entry: the previous entry's hash and every field, length-prefixed.
fn entry_hash(prev: &[u8], e: &Entry) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(e.seq.to_be_bytes());
    h.update(e.id.as_bytes());
    h.update(e.at.unix_timestamp_nanos().to_be_bytes());
    h.update(e.actor_id.map(|a| *a.as_bytes()).unwrap_or([0; 16]));
    for s in [&e.actor_label, &e.action, &e.subject] {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    }
    let d = e.detail.to_string();
    h.update((d.len() as u64).to_be_bytes());
    h.update(d.as_bytes());
    h.finalize().to_vec()
}

/// PostgreSQL keeps timestamps to the microsecond: hash and sign exactly what is read back.
fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Takes the tenant's chain lock until the transaction ends: one writer per chain
/// (`audit_prune()` in the database takes the same lock).
pub(crate) async fn lock_chain(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7302))",
        tenant_id.to_string()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The entry that follows `last` (the chain's newest `(seq, hash)`, `None` for an empty
/// chain), hashed. Its caller holds the chain lock from before it read `last` until its
/// insert commits ([`record`], or a statement that inserts it with other writes).
pub(crate) fn next_entry(
    last: Option<(i64, Vec<u8>)>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: Value,
    now: OffsetDateTime,
) -> Entry {
    let (seq, prev) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, vec![0u8; 32]),
    };
    let mut entry = Entry {
        seq,
        id: Uuid::now_v7(),
        at: to_micros(now),
        actor_id: actor.id,
        actor_label: actor.label.clone(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail,
        prev_hash: prev,
        hash: Vec::new(),
    };
    entry.hash = entry_hash(&entry.prev_hash, &entry);
    entry
}

/// The SQL of [`lock_chain`] for `tenant_id`, to run in the same round trip as `BEGIN`
/// (the tenant id is a formatted UUID: hex digits and dashes only).
pub(crate) fn lock_chain_sql(tenant_id: Uuid) -> String {
    format!(
        "SELECT pg_advisory_xact_lock(hashtextextended('{}', 7302))",
        tenant_id.hyphenated()
    )
}

/// Appends an entry in the caller's tenant-scoped transaction (so it commits or rolls back
/// with the action it records). `detail` must hold no message text or phone numbers.
pub(crate) async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: Value,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    lock_chain(conn, tenant_id).await?;
    let last = sqlx::query!(
        "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        tenant_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let entry = next_entry(
        last.map(|r| (r.seq, r.hash)),
        actor,
        action,
        subject,
        detail,
        now,
    );
    sqlx::query!(
        r#"INSERT INTO audit_log (tenant_id, seq, id, at, actor_id, actor_label, action, subject, detail, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"#,
        tenant_id,
        entry.seq,
        entry.id,
        entry.at,
        entry.actor_id,
        entry.actor_label,
        entry.action,
        entry.subject,
        entry.detail,
        entry.prev_hash,
        entry.hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Newest first, optionally filtered by action prefix.
pub(crate) async fn list(
    conn: &mut PgConnection,
    action_prefix: Option<&str>,
    before_seq: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as!(
        Entry,
        r#"SELECT seq, id, at, actor_id, actor_label, action, subject, detail, prev_hash, hash
           FROM audit_log
           WHERE tenant_id = app_current_tenant()
             AND ($1::text IS NULL OR action LIKE $1 || '%')
             AND ($2::bigint IS NULL OR seq < $2)
           ORDER BY seq DESC LIMIT $3"#,
        action_prefix,
        before_seq,
        limit
    )
    .fetch_all(conn)
    .await
}

/// What verification found when nothing was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verified {
    /// Entries present, each checked.
    pub(crate) entries: usize,
    /// What retention pruned, from the latest checkpoint.
    pub(crate) pruned: Option<Pruned>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Entries 1..=through_seq are gone (so this is also how many).
    pub(crate) through_seq: i64,
    /// When the last of them was written.
    pub(crate) through_at: OffsetDateTime,
}

/// Evidence that the log was altered outside the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tampering {
    /// This entry does not match its own hash or its predecessor's.
    Entry(i64),
    /// These entries are gone and no genuine checkpoint accounts for them.
    Missing { from: i64, to: i64 },
    /// The checkpoint through this entry is not signed with the tenant's key.
    Checkpoint(i64),
}

/// Walks the chain from the latest checkpoint (or from entry 1 with a zero hash when nothing
/// was ever pruned). Every checkpoint's signature is checked first: a forged or altered one
/// is tampering even if a genuine one follows it.
pub(crate) async fn verify_chain(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    key: &dyn CheckpointSigner,
) -> sqlx::Result<Result<Verified, Tampering>> {
    let checkpoints = checkpoints(&mut *conn).await?;
    if let Some(bad) = checkpoints.iter().find(|c| !c.is_genuine(tenant_id, key)) {
        return Ok(Err(Tampering::Checkpoint(bad.through_seq)));
    }
    let latest = checkpoints.last();
    let (mut expected, mut prev) = match latest {
        Some(c) => (c.through_seq + 1, c.head_hash.clone()),
        None => (1, vec![0u8; 32]),
    };
    let rows = sqlx::query_as!(
        Entry,
        r#"SELECT seq, id, at, actor_id, actor_label, action, subject, detail, prev_hash, hash
           FROM audit_log WHERE tenant_id = app_current_tenant() ORDER BY seq"#
    )
    .fetch_all(conn)
    .await?;
    if rows.is_empty() && latest.is_some() {
        // Pruning always keeps the newest entry.
        return Ok(Err(Tampering::Entry(expected)));
    }
    for e in &rows {
        if e.seq > expected {
            return Ok(Err(Tampering::Missing {
                from: expected,
                to: e.seq - 1,
            }));
        }
        if e.seq != expected || e.prev_hash != prev || e.hash != entry_hash(&prev, e) {
            return Ok(Err(Tampering::Entry(e.seq)));
        }
        prev = e.hash.clone();
        expected += 1;
    }
    Ok(Ok(Verified {
        entries: rows.len(),
        pruned: latest.map(|c| Pruned {
            through_seq: c.through_seq,
            through_at: c.through_at,
        }),
    }))
}

// ---- retention: pruning with checkpoints ----

/// Left by a prune: entries 1..=through_seq are gone; the first kept entry's `prev_hash` is
/// `head_hash`. Signed with the tenant's checkpoint key (see `crypto::checkpoint`).
#[derive(Clone, Debug)]
pub(crate) struct Checkpoint {
    pub(crate) through_seq: i64,
    pub(crate) through_at: OffsetDateTime,
    pub(crate) head_hash: Vec<u8>,
    /// How many entries this prune dropped.
    pub(crate) dropped: i64,
    pub(crate) at: OffsetDateTime,
    pub(crate) signature: Vec<u8>,
}

impl Checkpoint {
    /// Calls `f` with what the signature covers: every field but the signature, and the tenant.
    fn with_signed_parts<R>(&self, tenant_id: Uuid, f: impl FnOnce(&[&[u8]]) -> R) -> R {
        let through_seq = self.through_seq.to_be_bytes();
        let through_at = self.through_at.unix_timestamp_nanos().to_be_bytes();
        let dropped = self.dropped.to_be_bytes();
        let at = self.at.unix_timestamp_nanos().to_be_bytes();
        f(&[
            b"sigmaai/audit-checkpoint/v1",
            tenant_id.as_bytes(),
            &through_seq,
            &through_at,
            &self.head_hash,
            &dropped,
            &at,
        ])
    }

    pub(crate) fn is_genuine(&self, tenant_id: Uuid, key: &dyn CheckpointSigner) -> bool {
        self.with_signed_parts(tenant_id, |parts| key.verify(parts, &self.signature))
    }
}

/// Signs and checks checkpoints: the tenant's checkpoint key (`crypto::checkpoint`), kept
/// behind a trait so this SQL layer needs no cryptography.
pub(crate) trait CheckpointSigner: Send + Sync {
    /// The signature of length-prefixed `parts`.
    fn sign(&self, parts: &[&[u8]]) -> Vec<u8>;
    /// Whether `signature` is this key's signature of `parts` (constant time).
    fn verify(&self, parts: &[&[u8]], signature: &[u8]) -> bool;
}

/// The tenant's checkpoints, oldest first.
pub(crate) async fn checkpoints(conn: &mut PgConnection) -> sqlx::Result<Vec<Checkpoint>> {
    sqlx::query_as!(
        Checkpoint,
        r#"SELECT through_seq, through_at, head_hash, dropped, at, signature
           FROM audit_checkpoints WHERE tenant_id = app_current_tenant() ORDER BY through_seq"#
    )
    .fetch_all(conn)
    .await
}

/// What a prune would drop: entries `first_seq..=through_seq`.
#[derive(Clone, Debug)]
pub(crate) struct PrunePlan {
    pub(crate) first_seq: i64,
    pub(crate) through_seq: i64,
    pub(crate) through_at: OffsetDateTime,
    pub(crate) head_hash: Vec<u8>,
    /// The moment the window is measured from (to the microsecond, as stored).
    pub(crate) now: OffsetDateTime,
}

/// The longest prefix of the chain written more than `days` before `now`, without the
/// newest entry (the chain's head always survives). `None` when there is nothing to drop.
/// Call with the chain locked ([`lock_chain`]).
pub(crate) async fn prune_plan(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    days: i32,
) -> sqlx::Result<Option<PrunePlan>> {
    let now = to_micros(now);
    let cutoff = now - time::Duration::days(i64::from(days));
    // LEAST ignores a NULL first_kept (every entry is old): keep just the newest then.
    let row = sqlx::query!(
        r#"WITH bounds AS (
             SELECT min(seq) AS first, max(seq) AS newest,
                    min(seq) FILTER (WHERE at >= $1) AS first_kept
             FROM audit_log WHERE tenant_id = app_current_tenant())
           SELECT b.first AS "first!", a.seq, a.at, a.hash
           FROM bounds b
           JOIN audit_log a ON a.tenant_id = app_current_tenant()
                           AND a.seq = LEAST(b.first_kept, b.newest) - 1
           WHERE a.seq >= b.first"#,
        cutoff
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| PrunePlan {
        first_seq: r.first,
        through_seq: r.seq,
        through_at: r.at,
        head_hash: r.hash,
        now,
    }))
}

/// Drops the planned entries and stores the signed checkpoint, in the caller's transaction
/// (through `audit_prune()`, which re-checks the plan against the rows: the app role cannot
/// delete audit rows itself). Returns the checkpoint.
pub(crate) async fn prune(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    plan: &PrunePlan,
    key: &dyn CheckpointSigner,
) -> sqlx::Result<Checkpoint> {
    let mut cp = Checkpoint {
        through_seq: plan.through_seq,
        through_at: plan.through_at,
        head_hash: plan.head_hash.clone(),
        dropped: plan.through_seq - plan.first_seq + 1,
        at: plan.now,
        signature: Vec::new(),
    };
    cp.signature = cp.with_signed_parts(tenant_id, |parts| key.sign(parts));
    sqlx::query_scalar!(
        r#"SELECT audit_prune($1, $2, $3, $4, $5, $6) AS "deleted!""#,
        cp.through_seq,
        cp.head_hash,
        cp.through_at,
        cp.dropped,
        cp.at,
        cp.signature
    )
    .fetch_one(conn)
    .await?;
    Ok(cp)
}

/// Entries many requests of one tenant write at once (each conversation view), appended in
/// batches: every entry still commits before its request goes on, but one transaction (chain
/// lock, last entry, one insert, one commit) holds all the entries that queued while the
/// previous batch was being written. Written one by one, each view held the tenant's chain
/// lock across its round trips and its commit's flush, which capped a tenant's views at one
/// per lock hold (`scripts/bench pages`: 14 ms of lock wait per conversation page at 1M).
/// Per process; instances still take turns on the chain lock, batch by batch.
#[derive(Default)]
pub(crate) struct Batched {
    tenants: std::sync::Mutex<std::collections::HashMap<Uuid, std::sync::Arc<TenantQueue>>>,
}

#[derive(Default)]
struct TenantQueue {
    pending: std::sync::Mutex<Vec<Pending>>,
    /// Held by the request writing this tenant's batch.
    writer: tokio::sync::Mutex<()>,
}

struct Pending {
    actor: Actor,
    action: String,
    subject: String,
    detail: Value,
    now: OffsetDateTime,
    /// Whether the batch holding this entry committed.
    done: tokio::sync::oneshot::Sender<bool>,
}

impl Batched {
    /// Appends an entry (as [`record`] in a transaction of its own) and returns once it is
    /// committed, in this request's batch or in the one being written when it arrived. Should
    /// its batch fail, the entry is written alone, and that transaction's error is returned.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record(
        &self,
        pool: &sqlx::PgPool,
        tenant_id: Uuid,
        actor: &Actor,
        action: &str,
        subject: &str,
        detail: Value,
        now: OffsetDateTime,
    ) -> sqlx::Result<()> {
        let queue = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(tenant_id)
            .or_default()
            .clone();
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        queue
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Pending {
                actor: actor.clone(),
                action: action.to_owned(),
                subject: subject.to_owned(),
                detail: detail.clone(),
                now,
                done,
            });
        // Either a batch written meanwhile answers (this entry was in it), or this request
        // gets to write the next batch. An answered request returns at once: it does not
        // wait its turn on the writer lock, which its batch's other requests hand on.
        let writing = tokio::select! {
            biased;
            answered = &mut outcome => Err(answered.unwrap_or(false)),
            writing = queue.writer.lock() => Ok(writing),
        };
        let committed = match writing {
            Err(committed) => committed,
            Ok(writing) => {
                // The batch written while this request waited may have held its entry: a
                // writer answers all of its batch before it lets the next one in.
                let committed = match outcome.try_recv() {
                    Ok(committed) => committed,
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => false,
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                        let batch = std::mem::take(
                            &mut *queue
                                .pending
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner),
                        );
                        // Written by a task of its own, so a request cancelled meanwhile (its
                        // client gone) cannot leave the others' entries unwritten and
                        // unanswered.
                        let pool = pool.clone();
                        let write = tokio::spawn(
                            async move {
                                let committed = match append_batch(&pool, tenant_id, &batch).await
                                {
                                    Ok(()) => true,
                                    Err(e) => {
                                        tracing::warn!(error = %e, entries = batch.len(),
                                            "audit batch failed; its entries are written one by one");
                                        false
                                    }
                                };
                                for p in batch {
                                    let _ = p.done.send(committed);
                                }
                            }
                            .instrument(tracing::Span::current()),
                        );
                        let _ = write.await;
                        outcome.await.unwrap_or(false)
                    }
                };
                drop(writing);
                committed
            }
        };
        if committed {
            return Ok(());
        }
        // The batch failed (or its task died): this entry alone, as `record` writes it. Should
        // the batch have committed after all, the view is in the log twice, never missing.
        let mut tx = super::begin_tenant(pool, tenant_id).await?;
        record(&mut tx, tenant_id, actor, action, subject, detail, now).await?;
        tx.commit().await
    }
}

/// One transaction for a batch: BEGIN with the chain lock, the last entry, one insert of
/// every entry (chained in order), COMMIT.
async fn append_batch(pool: &sqlx::PgPool, tenant_id: Uuid, batch: &[Pending]) -> sqlx::Result<()> {
    let mut tx = super::begin_tenant_chain_locked(pool, tenant_id).await?;
    let mut last = sqlx::query!(
        "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| (r.seq, r.hash));
    let mut entries = Vec::with_capacity(batch.len());
    for p in batch {
        let e = next_entry(
            last.take(),
            &p.actor,
            &p.action,
            &p.subject,
            p.detail.clone(),
            p.now,
        );
        last = Some((e.seq, e.hash.clone()));
        entries.push(e);
    }
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, seq, id, at, actor_id, actor_label, action, subject, detail, prev_hash, hash)
         SELECT $1, * FROM unnest($2::bigint[], $3::uuid[], $4::timestamptz[], $5::uuid[], $6::text[],
                                  $7::text[], $8::text[], $9::jsonb[], $10::bytea[], $11::bytea[])",
    )
    .bind(tenant_id)
    .bind(entries.iter().map(|e| e.seq).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.at).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.actor_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.actor_label.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.action.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.subject.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.detail.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.prev_hash.clone()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.hash.clone()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
