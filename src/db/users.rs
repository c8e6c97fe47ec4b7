//! Users: the account itself (e-mail, name, password, language, accepted policy).

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::resets::revoke_resets;

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) password_hash: String,
    pub(crate) totp_secret: Option<Vec<u8>>,
    pub(crate) totp_enabled_at: Option<OffsetDateTime>,
    pub(crate) totp_last_step: Option<i64>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) totp_failures: i32,
    pub(crate) totp_locked_until: Option<OffsetDateTime>,
    pub(crate) language: Option<String>,
    pub(crate) accepted_policy_version: String,
}

impl User {
    pub(crate) fn has_totp(&self) -> bool {
        self.totp_enabled_at.is_some() && self.totp_secret.is_some()
    }
}

pub(crate) struct NewUser<'a> {
    pub(crate) id: Uuid,
    pub(crate) email: &'a str,
    pub(crate) name: &'a str,
    pub(crate) password_hash: &'a str,
    pub(crate) policy_version: &'a str,
    pub(crate) language: Option<&'a str>,
}

pub(crate) async fn insert_user(
    conn: &mut PgConnection,
    u: NewUser<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO users (id, email, name, password_hash, language, accepted_policy_version,
                              accepted_policy_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)"#,
        u.id,
        u.email,
        u.name,
        u.password_hash,
        u.language,
        u.policy_version,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn user_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"SELECT id, email, name, password_hash, totp_secret, totp_enabled_at, totp_last_step,
                  totp_failures, totp_locked_until, language, accepted_policy_version
           FROM users WHERE email = $1"#,
        email
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn user_by_id(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        r#"SELECT id, email, name, password_hash, totp_secret, totp_enabled_at, totp_last_step,
                  totp_failures, totp_locked_until, language, accepted_policy_version
           FROM users WHERE id = $1"#,
        id
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn set_password(
    pool: &PgPool,
    user_id: Uuid,
    hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    set_password_in(&mut tx, user_id, hash, now).await?;
    tx.commit().await
}

/// Sets the password inside the caller's transaction; every unused reset link dies with
/// the old password.
pub(crate) async fn set_password_in(
    conn: &mut PgConnection,
    user_id: Uuid,
    hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
        user_id,
        hash,
        now
    )
    .execute(&mut *conn)
    .await?;
    revoke_resets(conn, user_id, now).await
}

pub(crate) async fn accept_policy(
    pool: &PgPool,
    user_id: Uuid,
    version: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET accepted_policy_version = $2, accepted_policy_at = $3, updated_at = $3 WHERE id = $1",
        user_id,
        version,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn set_user_language(
    pool: &PgPool,
    user_id: Uuid,
    language: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET language = $2, updated_at = $3 WHERE id = $1",
        user_id,
        language,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Locks the user's row until the transaction ends. Joining a tenant and using a reset link
/// both take this lock, so a link can't be used while its user is joining somewhere else.
pub(crate) async fn lock_user(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user_id)
        .fetch_optional(conn)
        .await?;
    Ok(())
}
