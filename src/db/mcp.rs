//! MCP servers, their pinned tools, and the tool calls recorded on drafts.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::mcp::CallState;

#[derive(Clone, Debug)]
pub(crate) struct Server {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) auth_kind: String,
    pub(crate) auth_header: Option<String>,
    pub(crate) secret_sealed: Option<Vec<u8>>,
    pub(crate) enabled: bool,
    pub(crate) last_success_at: Option<OffsetDateTime>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_error_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) created_at: OffsetDateTime,
}

pub(crate) struct NewServer<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) name: &'a str,
    pub(crate) url: &'a str,
    pub(crate) auth_kind: &'a str,
    pub(crate) auth_header: Option<&'a str>,
    pub(crate) secret_sealed: Option<Vec<u8>>,
}

/// `false` when the tenant already has a server with this name.
pub(crate) async fn insert_server(
    conn: &mut PgConnection,
    s: NewServer<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"INSERT INTO mcp_servers (id, tenant_id, name, url, auth_kind, auth_header, secret_sealed, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (tenant_id, name) DO NOTHING"#,
        s.id,
        s.tenant_id,
        s.name,
        s.url,
        s.auth_kind,
        s.auth_header,
        s.secret_sealed,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn servers(conn: &mut PgConnection) -> sqlx::Result<Vec<Server>> {
    sqlx::query_as!(
        Server,
        r#"SELECT id, tenant_id, name, url, auth_kind, auth_header, secret_sealed, enabled, last_success_at,
                  last_error, last_error_at, created_at
           FROM mcp_servers ORDER BY name"#
    )
    .fetch_all(conn)
    .await
}

pub(crate) async fn server(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Server>> {
    sqlx::query_as!(
        Server,
        r#"SELECT id, tenant_id, name, url, auth_kind, auth_header, secret_sealed, enabled, last_success_at,
                  last_error, last_error_at, created_at
           FROM mcp_servers WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn set_enabled(
    conn: &mut PgConnection,
    id: Uuid,
    enabled: bool,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE mcp_servers SET enabled = $2, updated_at = $3 WHERE id = $1",
        id,
        enabled,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn delete_server(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!("DELETE FROM mcp_servers WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Health: a success clears nothing but stamps `last_success_at`; an error keeps its text.
pub(crate) async fn record_health(
    conn: &mut PgConnection,
    id: Uuid,
    error: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    match error {
        None => {
            sqlx::query!(
                "UPDATE mcp_servers SET last_success_at = $2 WHERE id = $1",
                id,
                now
            )
            .execute(conn)
            .await?
        }
        Some(e) => {
            sqlx::query!(
                "UPDATE mcp_servers SET last_error = $2, last_error_at = $3 WHERE id = $1",
                id,
                e,
                now
            )
            .execute(conn)
            .await?
        }
    };
    Ok(())
}

// ---- tools ----

#[derive(Clone, Debug)]
pub(crate) struct Tool {
    pub(crate) server_id: Uuid,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) input_schema: Value,
    pub(crate) fingerprint: String,
    pub(crate) allowed: bool,
    pub(crate) risk: String,
    pub(crate) changed_description: Option<String>,
    pub(crate) changed_schema: Option<Value>,
    pub(crate) changed_fingerprint: Option<String>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) changed_at: Option<OffsetDateTime>,
    pub(crate) removed_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) approved_at: Option<OffsetDateTime>,
}

impl Tool {
    /// Offered to the model: allowed, unchanged since approval, still listed by the server.
    pub(crate) fn usable(&self) -> bool {
        self.allowed && self.changed_fingerprint.is_none() && self.removed_at.is_none()
    }
}

/// All tools of the tenant (optionally of one server), by server then name.
pub(crate) async fn tools(
    conn: &mut PgConnection,
    server_id: Option<Uuid>,
) -> sqlx::Result<Vec<Tool>> {
    sqlx::query_as!(
        Tool,
        r#"SELECT server_id, name, description, input_schema, fingerprint, allowed, risk, changed_description,
                  changed_schema, changed_fingerprint, changed_at, removed_at, approved_at
           FROM mcp_tools WHERE ($1::uuid IS NULL OR server_id = $1) ORDER BY server_id, name"#,
        server_id
    )
    .fetch_all(conn)
    .await
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_tool(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    server_id: Uuid,
    name: &str,
    description: &str,
    schema: &Value,
    fingerprint: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO mcp_tools (tenant_id, server_id, name, description, input_schema, fingerprint, first_seen_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING"#,
        tenant_id,
        server_id,
        name,
        description,
        schema,
        fingerprint,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The server now lists something else under this name: keep the pin, remember the new
/// listing, and disable the tool until an admin re-approves.
pub(crate) async fn mark_changed(
    conn: &mut PgConnection,
    server_id: Uuid,
    name: &str,
    description: &str,
    schema: &Value,
    fingerprint: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE mcp_tools SET changed_description = $3, changed_schema = $4, changed_fingerprint = $5,
                  changed_at = $6, allowed = false, removed_at = NULL
           WHERE server_id = $1 AND name = $2"#,
        server_id,
        name,
        description,
        schema,
        fingerprint,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The listing matches the pin again (or the tool is back): forget the pending change.
/// The tool stays disabled if the change had disabled it.
pub(crate) async fn clear_changed(
    conn: &mut PgConnection,
    server_id: Uuid,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE mcp_tools SET changed_description = NULL, changed_schema = NULL, changed_fingerprint = NULL,
                  changed_at = NULL, removed_at = NULL
           WHERE server_id = $1 AND name = $2"#,
        server_id,
        name
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn mark_removed(
    conn: &mut PgConnection,
    server_id: Uuid,
    name: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE mcp_tools SET removed_at = COALESCE(removed_at, $3) WHERE server_id = $1 AND name = $2",
        server_id,
        name,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An admin's decision on a tool. Allowing a changed tool approves its new listing: the
/// change becomes the pin. Allowing needs `seen`, the fingerprint of the version the admin
/// was shown: if the stored listing differs (it changed again since), nothing is updated
/// and `false` comes back. Disallowing is always accepted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_policy(
    conn: &mut PgConnection,
    server_id: Uuid,
    name: &str,
    allowed: bool,
    risk: &str,
    seen: &str,
    by: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE mcp_tools SET
             allowed = $3, risk = $4, approved_by = $5, approved_at = $6,
             description = CASE WHEN $3 AND changed_fingerprint IS NOT NULL THEN changed_description ELSE description END,
             input_schema = CASE WHEN $3 AND changed_fingerprint IS NOT NULL THEN changed_schema ELSE input_schema END,
             fingerprint = CASE WHEN $3 AND changed_fingerprint IS NOT NULL THEN changed_fingerprint ELSE fingerprint END,
             changed_description = CASE WHEN $3 THEN NULL ELSE changed_description END,
             changed_schema = CASE WHEN $3 THEN NULL ELSE changed_schema END,
             changed_at = CASE WHEN $3 THEN NULL ELSE changed_at END,
             changed_fingerprint = CASE WHEN $3 THEN NULL ELSE changed_fingerprint END
           WHERE server_id = $1 AND name = $2 AND removed_at IS NULL
             AND (NOT $3 OR COALESCE(changed_fingerprint, fingerprint) = $7)"#,
        server_id,
        name,
        allowed,
        risk,
        by,
        now,
        seen
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

// ---- calls ----

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Call {
    pub(crate) id: Uuid,
    pub(crate) draft_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) server_id: Option<Uuid>,
    pub(crate) server_name: String,
    pub(crate) tool: String,
    pub(crate) risk: String,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) seq: i32,
    pub(crate) state: String,
    pub(crate) arguments_sealed: Vec<u8>,
    pub(crate) result_sealed: Option<Vec<u8>>,
    pub(crate) error: Option<String>,
    pub(crate) latency_ms: i32,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) decided_by: Option<Uuid>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) decided_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) executed_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) created_at: OffsetDateTime,
}

pub(crate) struct NewCall<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) draft_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) server_id: Uuid,
    pub(crate) server_name: &'a str,
    pub(crate) tool: &'a str,
    pub(crate) risk: &'a str,
    pub(crate) seq: i32,
    pub(crate) state: &'a str,
    pub(crate) arguments_sealed: Vec<u8>,
    pub(crate) result_sealed: Option<Vec<u8>>,
    pub(crate) error: Option<&'a str>,
    pub(crate) latency_ms: i32,
}

pub(crate) async fn insert_call(
    conn: &mut PgConnection,
    c: NewCall<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO mcp_tool_calls (id, tenant_id, draft_id, conversation_id, contact_id, server_id, server_name, tool,
                                       risk, seq, state, arguments_sealed, result_sealed, error, latency_ms, created_at, executed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::timestamptz,
                   CASE WHEN $11 = 'pending' THEN NULL ELSE $16::timestamptz END)"#,
        c.id,
        c.tenant_id,
        c.draft_id,
        c.conversation_id,
        c.contact_id,
        c.server_id,
        c.server_name,
        c.tool,
        c.risk,
        c.seq,
        c.state,
        c.arguments_sealed,
        c.result_sealed,
        c.error,
        c.latency_ms,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The calls of several drafts in one round trip, by draft then in order (the review queue).
pub(crate) async fn calls_for_drafts(
    conn: &mut PgConnection,
    draft_ids: &[Uuid],
) -> sqlx::Result<Vec<Call>> {
    sqlx::query_as::<_, Call>(
        r#"SELECT id, draft_id, conversation_id, contact_id, server_id, server_name, tool, risk, seq, state,
                  arguments_sealed, result_sealed, error, latency_ms, decided_by, decided_at, executed_at, created_at
           FROM mcp_tool_calls
           WHERE tenant_id = app_current_tenant() AND draft_id = ANY($1)
           ORDER BY draft_id, seq"#,
    )
    .bind(draft_ids)
    .fetch_all(conn)
    .await
}

/// Write calls waiting for staff, oldest first.
pub(crate) async fn pending_calls(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Call>> {
    sqlx::query_as!(
        Call,
        r#"SELECT id, draft_id, conversation_id, contact_id, server_id, server_name, tool, risk, seq, state,
                  arguments_sealed, result_sealed, error, latency_ms, decided_by, decided_at, executed_at, created_at
           FROM mcp_tool_calls WHERE state = 'pending' ORDER BY created_at, seq LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}

pub(crate) async fn call(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Call>> {
    sqlx::query_as!(
        Call,
        r#"SELECT id, draft_id, conversation_id, contact_id, server_id, server_name, tool, risk, seq, state,
                  arguments_sealed, result_sealed, error, latency_ms, decided_by, decided_at, executed_at, created_at
           FROM mcp_tool_calls WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Moves a call from `from` to `to` at most once (a conditional update): `false` when it was
/// not in `from` any more — a double click, a second reviewer, a job run twice.
pub(crate) async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    from: CallState,
    to: CallState,
    by: Option<Uuid>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    if !from.may_become(to) {
        tracing::warn!(
            from = from.as_str(),
            to = to.as_str(),
            "tool call move refused"
        );
        return Ok(false);
    }
    let r = sqlx::query!(
        r#"UPDATE mcp_tool_calls SET state = $3,
             decided_by = COALESCE($4, decided_by),
             decided_at = CASE WHEN $4::uuid IS NULL THEN decided_at ELSE $5 END
           WHERE id = $1 AND state = $2"#,
        id,
        from.as_str(),
        to.as_str(),
        by,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn finish_call(
    conn: &mut PgConnection,
    id: Uuid,
    state: CallState,
    result_sealed: Option<&[u8]>,
    error: Option<&str>,
    latency_ms: i32,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE mcp_tool_calls SET state = $2, result_sealed = $3, error = $4, latency_ms = $5, executed_at = $6
           WHERE id = $1 AND state = 'running'"#,
        id,
        state.as_str(),
        result_sealed,
        error,
        latency_ms,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}
