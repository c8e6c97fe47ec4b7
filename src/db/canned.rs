//! Canned replies: the tenant's ready-made answers (tenant vocabulary, not personal data).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct Canned {
    pub(crate) id: Uuid,
    pub(crate) title: String,
    pub(crate) body: String,
}

pub(crate) async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Canned>> {
    sqlx::query_as!(
        Canned,
        "SELECT id, title, body FROM canned_replies ORDER BY title"
    )
    .fetch_all(conn)
    .await
}

pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Canned>> {
    sqlx::query_as!(
        Canned,
        "SELECT id, title, body FROM canned_replies WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn insert(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    title: &str,
    body: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO canned_replies (id, tenant_id, title, body, created_at) VALUES ($1, $2, $3, $4, $5)",
        id,
        tenant_id,
        title,
        body,
        now
    )
    .execute(conn)
    .await?;
    Ok(id)
}

pub(crate) async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!("DELETE FROM canned_replies WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}
