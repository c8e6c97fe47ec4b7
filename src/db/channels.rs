//! WhatsApp channels and the global webhook routes that lead to them.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub(crate) struct Channel {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) route_id: Uuid,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) config: Value,
    pub(crate) secrets_sealed: Option<Vec<u8>>,
    pub(crate) health: String,
    pub(crate) health_detail: String,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) last_event_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) created_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) tenant_id: Uuid,
    pub(crate) channel_id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) kind: String,
}

pub(crate) struct NewChannel<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) route_id: Uuid,
    pub(crate) kind: &'a str,
    pub(crate) name: &'a str,
    pub(crate) config: Value,
    pub(crate) secrets_sealed: Option<Vec<u8>>,
}

/// In a tenant-scoped transaction: the route (global) and the channel.
pub(crate) async fn create(
    conn: &mut PgConnection,
    c: NewChannel<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO channel_routes (id, tenant_id, channel_id, kind) VALUES ($1, $2, $3, $4)",
        c.route_id,
        c.tenant_id,
        c.id,
        c.kind
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"INSERT INTO channels (id, tenant_id, route_id, kind, name, config, secrets_sealed, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        c.id,
        c.tenant_id,
        c.route_id,
        c.kind,
        c.name,
        c.config,
        c.secrets_sealed,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Which tenant and channel a webhook URL id belongs to (no tenant context needed).
pub(crate) async fn route(pool: &PgPool, route_id: Uuid) -> sqlx::Result<Option<Route>> {
    sqlx::query_as!(
        Route,
        "SELECT tenant_id, channel_id, kind FROM channel_routes WHERE id = $1",
        route_id
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Channel>> {
    sqlx::query_as!(
        Channel,
        r#"SELECT id, tenant_id, route_id, kind, name, config, secrets_sealed,
                  health, health_detail, last_event_at, created_at
           FROM channels WHERE id = $1 AND deleted_at IS NULL"#,
        id
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Channel>> {
    sqlx::query_as!(
        Channel,
        r#"SELECT id, tenant_id, route_id, kind, name, config, secrets_sealed,
                  health, health_detail, last_event_at, created_at
           FROM channels WHERE deleted_at IS NULL ORDER BY created_at"#
    )
    .fetch_all(conn)
    .await
}

/// Channels that count against the plan: the built-in simulator is not a WhatsApp number.
pub(crate) async fn count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM channels WHERE deleted_at IS NULL AND kind <> 'simulator'"#
    )
    .fetch_one(conn)
    .await
}

/// The built-in simulator channel, if the tenant has one.
pub(crate) async fn simulator(conn: &mut PgConnection) -> sqlx::Result<Option<Channel>> {
    sqlx::query_as!(
        Channel,
        r#"SELECT id, tenant_id, route_id, kind, name, config, secrets_sealed,
                  health, health_detail, last_event_at, created_at
           FROM channels WHERE kind = 'simulator' AND deleted_at IS NULL LIMIT 1"#
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn set_health(
    conn: &mut PgConnection,
    id: Uuid,
    health: &str,
    detail: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE channels SET health = $2, health_detail = left($3, 200), last_event_at = $4 WHERE id = $1",
        id,
        health,
        detail,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn touch(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE channels SET last_event_at = $2 WHERE id = $1 AND (last_event_at IS NULL OR last_event_at < $2)",
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a channel: its credentials are dropped at once, the row stays (soft) because its
/// conversations still point at it. Its webhook route stays as a tombstone: the URL then
/// names a deleted channel, which webhooks answer 404. (Deleting the route used to cascade
/// to the channel row and fail on those conversations.)
pub(crate) async fn delete(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE channels SET deleted_at = $2, secrets_sealed = NULL WHERE id = $1 AND deleted_at IS NULL",
        id,
        now
    )
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
