//! Password reset links: issued by a tenant admin or self-service, used once.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) async fn create_reset(
    pool: &PgPool,
    user_id: Uuid,
    tenant_id: Uuid,
    token_hash: &str,
    created_by: Uuid,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO password_resets (id, user_id, tenant_id, token_hash, created_by, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)"#,
        Uuid::now_v7(),
        user_id,
        tenant_id,
        token_hash,
        created_by,
        now,
        expires_at
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The user a usable reset token belongs to.
pub(crate) async fn reset_user(
    pool: &PgPool,
    token_hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        token_hash,
        now
    )
    .fetch_optional(pool)
    .await
}

/// A reset link being used: the user it is for and the tenant whose admin issued it.
pub(crate) struct ResetGrant {
    pub(crate) user_id: Uuid,
    pub(crate) tenant_id: Option<Uuid>,
}

/// Uses a reset token once (the row stays locked until the caller's transaction ends).
pub(crate) async fn consume_reset(
    conn: &mut PgConnection,
    token_hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Option<ResetGrant>> {
    sqlx::query_as!(
        ResetGrant,
        r#"UPDATE password_resets SET used_at = $2
           WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
           RETURNING user_id, tenant_id"#,
        token_hash,
        now
    )
    .fetch_optional(conn)
    .await
}

/// Ends every unused reset link of a user: on any password change and any membership
/// change, since the membership that justified a link may be the one that changed.
pub(crate) async fn revoke_resets(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
        user_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores a self-service reset link for `user_id` (the e-mail job mints it as it sends, so
/// no usable token waits in the outbox; see `mail`). The user's earlier self-service links
/// die: only the newest e-mail works. `false` when the user no longer exists.
///
/// Such a link names no tenant: it went to the account's own address, so the rules for
/// admin-issued links (the member must belong to the issuing tenant alone) do not apply;
/// the rest of `accounts::complete_reset` does (once, an hour, dies with a password change,
/// ends every session).
pub(crate) async fn insert_self_service_reset(
    db: &PgPool,
    user_id: Uuid,
    token_hash: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND self_service AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let made = sqlx::query(
        r#"INSERT INTO password_resets (id, user_id, tenant_id, token_hash, created_by, created_at, expires_at, self_service)
           SELECT $1, id, NULL, $3, NULL, $4, $5, true FROM users WHERE id = $2"#,
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(made == 1)
}
