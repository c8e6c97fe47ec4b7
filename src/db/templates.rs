//! Meta message templates approved for use outside the 24-hour window (synced per channel).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Template {
    pub id: Uuid,
    pub name: String,
    pub language: String,
    pub body: String,
    pub param_count: i32,
}

/// Replaces the channel's approved templates with the listed ones.
pub async fn replace(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    channel_id: Uuid,
    list: &[(String, String, String, String, i32)],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM message_templates WHERE channel_id = $1",
        channel_id
    )
    .execute(&mut *conn)
    .await?;
    for (name, language, category, body, params) in list {
        sqlx::query!(
            r#"INSERT INTO message_templates (id, tenant_id, channel_id, name, language, category, body, param_count, status, synced_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'APPROVED', $9)"#,
            Uuid::now_v7(),
            tenant_id,
            channel_id,
            name,
            language,
            category,
            body,
            params,
            now
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn for_channel(conn: &mut PgConnection, channel_id: Uuid) -> sqlx::Result<Vec<Template>> {
    sqlx::query_as!(
        Template,
        "SELECT id, name, language, body, param_count FROM message_templates WHERE channel_id = $1 ORDER BY name, language",
        channel_id
    )
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Template>> {
    sqlx::query_as!(
        Template,
        "SELECT id, name, language, body, param_count FROM message_templates WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn set_template_payload(
    conn: &mut PgConnection,
    message_id: Uuid,
    sealed: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE messages SET template_sealed = $2 WHERE id = $1",
        message_id,
        sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn template_payload(
    conn: &mut PgConnection,
    message_id: Uuid,
) -> sqlx::Result<Option<Vec<u8>>> {
    Ok(sqlx::query_scalar!(
        "SELECT template_sealed FROM messages WHERE id = $1",
        message_id
    )
    .fetch_optional(conn)
    .await?
    .flatten())
}
