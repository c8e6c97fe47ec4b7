//! API tokens and idempotency keys for the tenant API (`src/api/`). Runtime-checked queries.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ApiToken {
    pub(crate) id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) tenant_id: Uuid,
    pub(crate) name: String,
    pub(crate) secret_hash: Vec<u8>,
    pub(crate) scopes: Vec<String>,
    pub(crate) created_by: Option<Uuid>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) expires_at: Option<OffsetDateTime>,
    pub(crate) last_used_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
    pub(crate) rate_per_minute: i32,
}

const COLUMNS: &str = "id, tenant_id, name, secret_hash, scopes, created_by, created_at, \
                       expires_at, last_used_at, revoked_at, rate_per_minute";

/// Which tenant a token id belongs to (readable before any tenant scope is set).
pub(crate) async fn tenant_of(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar::<_, Option<Uuid>>("SELECT api_token_tenant($1)")
        .bind(id)
        .fetch_one(conn)
        .await
}

pub(crate) struct NewToken<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) name: &'a str,
    pub(crate) secret_hash: &'a [u8],
    pub(crate) scopes: &'a [String],
    pub(crate) created_by: Uuid,
    pub(crate) expires_at: Option<OffsetDateTime>,
}

pub(crate) async fn insert(
    conn: &mut PgConnection,
    t: &NewToken<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, tenant_id, name, secret_hash, scopes, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(t.id)
    .bind(t.tenant_id)
    .bind(t.name)
    .bind(t.secret_hash)
    .bind(t.scopes)
    .bind(t.created_by)
    .bind(now)
    .bind(t.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One token of the current tenant (RLS), revoked or not.
pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ApiToken>> {
    sqlx::query_as::<_, ApiToken>(&format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The current tenant's tokens, newest first.
pub(crate) async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<ApiToken>> {
    sqlx::query_as::<_, ApiToken>(&format!(
        "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"
    ))
    .fetch_all(conn)
    .await
}

/// Revokes a token (once); false if it does not exist or was already revoked.
pub(crate) async fn revoke(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r =
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Records use, at most once a minute per token (no write on most calls).
pub(crate) async fn touch(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_tokens SET last_used_at = $2
         WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2 - interval '1 minute')",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct StoredResponse {
    pub(crate) request_hash: Vec<u8>,
    pub(crate) status: i16,
    pub(crate) response: serde_json::Value,
}

/// Claims an idempotency key in the caller's transaction. `None`: claimed now (the caller
/// does the work and [`finish_key`]s it before committing). `Some`: used before, with the
/// response stored then. A concurrent claim of the same key waits here until the first
/// transaction ends.
pub(crate) async fn claim_key(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    key: &str,
    token_id: Uuid,
    request_hash: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<StoredResponse>> {
    let inserted = sqlx::query(
        "INSERT INTO api_idempotency (tenant_id, key, token_id, request_hash, status, response, created_at)
         VALUES ($1, $2, $3, $4, 0, 'null', $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(key)
    .bind(token_id)
    .bind(request_hash)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    sqlx::query_as::<_, StoredResponse>(
        "SELECT request_hash, status, response FROM api_idempotency WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub(crate) async fn finish_key(
    conn: &mut PgConnection,
    key: &str,
    status: u16,
    response: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE api_idempotency SET status = $2, response = $3 WHERE key = $1")
        .bind(key)
        .bind(status as i16)
        .bind(response)
        .execute(conn)
        .await?;
    Ok(())
}
