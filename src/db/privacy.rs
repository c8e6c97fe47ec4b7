//! Privacy: settings, data-subject requests and their history, erasure tombstones,
//! retention runs, and the deletions they perform.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub(crate) struct PrivacySettings {
    pub(crate) message_days: i32,
    pub(crate) media_days: Option<i32>,
    pub(crate) ai_trace_days: i32,
    /// `None`: the audit log is kept for the life of the account.
    pub(crate) audit_days: Option<i32>,
    pub(crate) dsr_keywords: Vec<String>,
    pub(crate) default_legal_basis: String,
}

/// Only the request keywords (checked on every inbound text), `None` when never saved.
pub(crate) async fn dsr_keywords(conn: &mut PgConnection) -> sqlx::Result<Option<Vec<String>>> {
    sqlx::query_scalar!(
        "SELECT dsr_keywords FROM privacy_settings WHERE tenant_id = app_current_tenant()"
    )
    .fetch_optional(conn)
    .await
}

/// The tenant's settings, or `None` when never saved (callers apply the plan's defaults).
pub(crate) async fn settings(conn: &mut PgConnection) -> sqlx::Result<Option<PrivacySettings>> {
    sqlx::query_as!(
        PrivacySettings,
        "SELECT message_days, media_days, ai_trace_days, audit_days, dsr_keywords, default_legal_basis FROM privacy_settings WHERE tenant_id = app_current_tenant()"
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn save_settings(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    s: &PrivacySettings,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO privacy_settings (tenant_id, message_days, media_days, ai_trace_days, audit_days, dsr_keywords, default_legal_basis, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (tenant_id) DO UPDATE SET message_days = EXCLUDED.message_days, media_days = EXCLUDED.media_days,
             ai_trace_days = EXCLUDED.ai_trace_days, audit_days = EXCLUDED.audit_days, dsr_keywords = EXCLUDED.dsr_keywords,
             default_legal_basis = EXCLUDED.default_legal_basis, updated_at = EXCLUDED.updated_at"#,
        tenant_id,
        s.message_days,
        s.media_days,
        s.ai_trace_days,
        s.audit_days,
        &s.dsr_keywords,
        s.default_legal_basis,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

// ---- data-subject requests ----

#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) kind: String,
    pub(crate) legal_basis: String,
    pub(crate) status: String,
    pub(crate) source: String,
    pub(crate) received_at: OffsetDateTime,
    pub(crate) due_at: OffsetDateTime,
    pub(crate) completed_at: Option<OffsetDateTime>,
    pub(crate) denial_reason: Option<String>,
}

pub(crate) struct NewRequest<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) kind: &'a str,
    pub(crate) legal_basis: &'a str,
    pub(crate) status: &'a str,
    pub(crate) source: &'a str,
    pub(crate) received_at: OffsetDateTime,
    pub(crate) due_at: OffsetDateTime,
    pub(crate) created_by: Option<Uuid>,
}

pub(crate) async fn insert_request(conn: &mut PgConnection, r: NewRequest<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO dsr_requests (id, tenant_id, contact_id, kind, legal_basis, status, source, received_at, due_at, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        r.id,
        r.tenant_id,
        r.contact_id,
        r.kind,
        r.legal_basis,
        r.status,
        r.source,
        r.received_at,
        r.due_at,
        r.created_by
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn add_event(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    request_id: Uuid,
    actor: &str,
    status: &str,
    note: &str,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO dsr_events (id, tenant_id, request_id, at, actor_label, status, note) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        Uuid::now_v7(),
        tenant_id,
        request_id,
        at,
        actor,
        status,
        note
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get_request(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<Request>> {
    sqlx::query_as!(
        Request,
        "SELECT id, contact_id, kind, legal_basis, status, source, received_at, due_at, completed_at, denial_reason FROM dsr_requests WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn requests(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Request>> {
    sqlx::query_as!(
        Request,
        r#"SELECT id, contact_id, kind, legal_basis, status, source, received_at, due_at, completed_at, denial_reason
           FROM dsr_requests ORDER BY (status IN ('completed', 'denied')), due_at LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Open erasure requests past `due` (the sweep completes them).
pub(crate) async fn erasures_due(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Request>> {
    sqlx::query_as!(
        Request,
        r#"SELECT id, contact_id, kind, legal_basis, status, source, received_at, due_at, completed_at, denial_reason
           FROM dsr_requests WHERE kind = 'erasure' AND status IN ('verified', 'in_progress') AND due_at <= $1"#,
        now
    )
    .fetch_all(conn)
    .await
}

/// Moves a request to `status` unless it is already closed. `false` if it was.
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
    denial_reason: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE dsr_requests SET status = $2, denial_reason = COALESCE($3, denial_reason),
                  completed_at = CASE WHEN $2 IN ('completed', 'denied') THEN $4::timestamptz ELSE completed_at END
           WHERE id = $1 AND status NOT IN ('completed', 'denied')"#,
        id,
        status,
        denial_reason,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) at: OffsetDateTime,
    pub(crate) actor_label: String,
    pub(crate) status: String,
    pub(crate) note: String,
}

pub(crate) async fn events(conn: &mut PgConnection, request_id: Uuid) -> sqlx::Result<Vec<Event>> {
    sqlx::query_as!(Event, "SELECT at, actor_label, status, note FROM dsr_events WHERE request_id = $1 ORDER BY at, id", request_id)
        .fetch_all(conn)
        .await
}

/// An open request of this kind for the contact (a repeated keyword opens no second one).
pub(crate) async fn open_request_for(
    conn: &mut PgConnection,
    contact_id: Uuid,
    kind: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM dsr_requests WHERE contact_id = $1 AND kind = $2 AND status NOT IN ('completed', 'denied') LIMIT 1",
        contact_id,
        kind
    )
    .fetch_optional(conn)
    .await
}

// ---- erasure ----

pub(crate) struct Tombstone<'a> {
    pub(crate) tenant_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) request_id: Option<Uuid>,
    pub(crate) reason: &'a str,
    pub(crate) erased_by: &'a str,
    pub(crate) recipients: Value,
    pub(crate) removed: Value,
}

pub(crate) async fn insert_tombstone(
    conn: &mut PgConnection,
    t: Tombstone<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        r#"INSERT INTO erasure_tombstones (id, tenant_id, contact_id, request_id, reason, erased_at, erased_by, recipients, removed)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        id,
        t.tenant_id,
        t.contact_id,
        t.request_id,
        t.reason,
        now,
        t.erased_by,
        t.recipients,
        t.removed
    )
    .execute(conn)
    .await?;
    Ok(id)
}

#[derive(Clone, Debug)]
pub(crate) struct TombstoneRow {
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) contact_id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) request_id: Option<Uuid>,
    pub(crate) reason: String,
    pub(crate) erased_at: OffsetDateTime,
    pub(crate) erased_by: String,
    pub(crate) recipients: Value,
}

pub(crate) async fn tombstones(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<TombstoneRow>> {
    sqlx::query_as!(
        TombstoneRow,
        "SELECT contact_id, request_id, reason, erased_at, erased_by, recipients FROM erasure_tombstones ORDER BY erased_at DESC LIMIT $1",
        limit
    )
    .fetch_all(conn)
    .await
}

/// The object-storage keys of a contact's stored media (to delete after erasure).
pub(crate) async fn contact_media_keys(
    conn: &mut PgConnection,
    contact_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    let keys = sqlx::query_scalar!(
        "SELECT media_key FROM messages WHERE contact_id = $1 AND media_key IS NOT NULL",
        contact_id
    )
    .fetch_all(conn)
    .await?;
    Ok(keys.into_iter().flatten().collect())
}

/// Deletes a contact and everything that hangs off it (conversations, messages, drafts,
/// recipients cascade). Returns (messages, conversations) removed.
pub(crate) async fn delete_contact(
    conn: &mut PgConnection,
    contact_id: Uuid,
) -> sqlx::Result<(i64, i64)> {
    let messages = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages WHERE contact_id = $1"#,
        contact_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let conversations = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM conversations WHERE contact_id = $1"#,
        contact_id
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM contacts WHERE id = $1", contact_id)
        .execute(conn)
        .await?;
    Ok((messages, conversations))
}

/// Deletes one conversation (and its messages and drafts). Returns the messages removed.
pub(crate) async fn delete_conversation(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<i64> {
    let messages = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM messages WHERE conversation_id = $1"#,
        conversation_id
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!("DELETE FROM conversations WHERE id = $1", conversation_id)
        .execute(conn)
        .await?;
    Ok(messages)
}

pub(crate) async fn conversation_media_keys(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Vec<String>> {
    let keys = sqlx::query_scalar!(
        "SELECT media_key FROM messages WHERE conversation_id = $1 AND media_key IS NOT NULL",
        conversation_id
    )
    .fetch_all(conn)
    .await?;
    Ok(keys.into_iter().flatten().collect())
}

pub(crate) async fn set_restricted(
    conn: &mut PgConnection,
    contact_id: Uuid,
    restricted: bool,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE contacts SET restricted_at = CASE WHEN $2 THEN $3::timestamptz ELSE NULL END, updated_at = $3 WHERE id = $1",
        contact_id,
        restricted,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

// ---- retention ----

/// Media of a conversation's handled turn (messages up to `up_to`), still stored: deleted
/// after triage. Returns (message id, object key).
pub(crate) async fn media_handled(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    up_to: OffsetDateTime,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"SELECT id, media_key AS "media_key!" FROM messages
           WHERE conversation_id = $1 AND direction = 'in' AND media_key IS NOT NULL AND media_deleted_at IS NULL AND sent_at <= $2"#,
        conversation_id,
        up_to
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.media_key)).collect())
}

pub(crate) async fn media_older_than(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"SELECT id, media_key AS "media_key!" FROM messages WHERE media_key IS NOT NULL AND media_deleted_at IS NULL AND sent_at < $1"#,
        before
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.media_key)).collect())
}

/// Marks media deleted (the object is already gone); the message keeps a visible note.
pub(crate) async fn mark_media_deleted(
    conn: &mut PgConnection,
    message_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE messages SET media_key = NULL, media_state = 'deleted', media_deleted_at = $2, media_source_sealed = NULL WHERE id = $1",
        message_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes messages older than `before`. Returns how many.
pub(crate) async fn delete_messages_before(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> sqlx::Result<u64> {
    let r = sqlx::query!("DELETE FROM messages WHERE sent_at < $1", before)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

/// Tool-call logs (arguments and results) older than the AI-trace retention; calls still
/// waiting for approval are kept.
pub(crate) async fn delete_tool_calls_before(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> sqlx::Result<u64> {
    let r = sqlx::query!("DELETE FROM mcp_tool_calls WHERE created_at < $1 AND state NOT IN ('pending', 'approved', 'running')", before)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

pub(crate) async fn delete_drafts_before(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM drafts WHERE created_at < $1 AND state <> 'pending'",
        before
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Contacts with no message left and no activity since `before` (erased by the sweep).
pub(crate) async fn idle_contacts(
    conn: &mut PgConnection,
    before: OffsetDateTime,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        r#"SELECT c.id FROM contacts c
           WHERE c.updated_at < $1 AND c.erased_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.contact_id = c.id)
             AND NOT EXISTS (SELECT 1 FROM dsr_requests r WHERE r.contact_id = c.id AND r.status NOT IN ('completed', 'denied'))"#,
        before
    )
    .fetch_all(conn)
    .await
}

/// What one sweep removed from one tenant (counts, never content).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RunCounts {
    pub(crate) messages: i64,
    pub(crate) media: i64,
    pub(crate) drafts: i64,
    pub(crate) contacts: i64,
    pub(crate) audit_entries: i64,
}

pub(crate) async fn record_run(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    counts: RunCounts,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO retention_runs (id, tenant_id, at, messages, media, drafts, contacts, audit_entries) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        Uuid::now_v7(),
        tenant_id,
        now,
        counts.messages as i32,
        counts.media as i32,
        counts.drafts as i32,
        counts.contacts as i32,
        counts.audit_entries as i32
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) at: OffsetDateTime,
    pub(crate) messages: i32,
    pub(crate) media: i32,
    pub(crate) drafts: i32,
    pub(crate) contacts: i32,
    pub(crate) audit_entries: i32,
}

pub(crate) async fn runs(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Run>> {
    sqlx::query_as!(Run, "SELECT at, messages, media, drafts, contacts, audit_entries FROM retention_runs ORDER BY at DESC LIMIT $1", limit)
        .fetch_all(conn)
        .await
}

/// Tenants whose data the daily sweeps look at (active and terminating).
pub(crate) async fn live_tenants(pool: &sqlx::PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!("SELECT id FROM tenants WHERE status <> 'terminated'")
        .fetch_all(pool)
        .await
}

pub(crate) async fn tenants_to_terminate(
    pool: &sqlx::PgPool,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM tenants WHERE status = 'terminating' AND terminate_at <= $1",
        now
    )
    .fetch_all(pool)
    .await
}

pub(crate) async fn schedule_termination(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE tenants SET status = 'terminating', termination_requested_at = $3, terminate_at = $2 WHERE id = $1 AND status = 'active'",
        tenant_id,
        at,
        now
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn cancel_termination(pool: &sqlx::PgPool, tenant_id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE tenants SET status = 'active', termination_requested_at = NULL, terminate_at = NULL WHERE id = $1 AND status = 'terminating'",
        tenant_id
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Clone, Debug)]
pub(crate) struct Termination {
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) status: String,
    pub(crate) terminate_at: Option<OffsetDateTime>,
}

pub(crate) async fn termination(pool: &sqlx::PgPool, tenant_id: Uuid) -> sqlx::Result<Termination> {
    sqlx::query_as!(
        Termination,
        "SELECT status, terminate_at FROM tenants WHERE id = $1",
        tenant_id
    )
    .fetch_one(pool)
    .await
}
