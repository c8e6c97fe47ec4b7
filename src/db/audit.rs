//! The append-only audit log: who read, exported, approved, changed or deleted what.
//!
//! Each tenant's entries form a hash chain: an entry's hash covers the previous entry's hash
//! and its own fields, so changing or deleting any entry breaks every later link. The
//! application role cannot UPDATE or DELETE audit rows at all (see the migration).

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Actor {
    pub id: Option<Uuid>,
    /// Shown in the log: the member's e-mail, or "system", or "end user".
    pub label: String,
}

impl Actor {
    pub fn user(id: Uuid, email: &str) -> Actor {
        Actor {
            id: Some(id),
            label: email.to_owned(),
        }
    }

    pub fn system() -> Actor {
        Actor {
            id: None,
            label: "system".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub seq: i64,
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub actor_id: Option<Uuid>,
    pub actor_label: String,
    pub action: String,
    pub subject: String,
    pub detail: Value,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
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

/// Appends an entry in the caller's tenant-scoped transaction (so it commits or rolls back
/// with the action it records). `detail` must hold no message text or phone numbers.
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: Value,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    // One writer per tenant chain at a time.
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7302))",
        tenant_id.to_string()
    )
    .execute(&mut *conn)
    .await?;
    let last = sqlx::query!(
        "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
        tenant_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, prev) = match last {
        Some(r) => (r.seq + 1, r.hash),
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
pub async fn list(
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

/// Walks the whole chain. `Err(seq)` names the first entry that doesn't match.
pub async fn verify_chain(conn: &mut PgConnection) -> sqlx::Result<Result<usize, i64>> {
    let rows = sqlx::query_as!(
        Entry,
        r#"SELECT seq, id, at, actor_id, actor_label, action, subject, detail, prev_hash, hash
           FROM audit_log WHERE tenant_id = app_current_tenant() ORDER BY seq"#
    )
    .fetch_all(conn)
    .await?;
    let mut prev = vec![0u8; 32];
    for (i, e) in rows.iter().enumerate() {
        let expected = entry_hash(&prev, e);
        if e.seq != i as i64 + 1 || e.prev_hash != prev || e.hash != expected {
            return Ok(Err(e.seq));
        }
        prev = e.hash.clone();
    }
    Ok(Ok(rows.len()))
}
