//! Meta message templates approved for use outside the 24-hour window (synced per channel).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct Template {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) language: String,
    pub(crate) body: String,
    pub(crate) param_count: i32,
}

/// Replaces the channel's approved templates with the listed ones.
pub(crate) async fn replace(
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

pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Template>> {
    sqlx::query_as!(
        Template,
        "SELECT id, name, language, body, param_count FROM message_templates WHERE id = $1",
        id
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn set_template_payload(
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
