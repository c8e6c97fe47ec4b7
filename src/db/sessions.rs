//! Login sessions: created at sign-in, checked and touched on every request, revoked and swept.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::users::User;
use crate::domain::account::{ABSOLUTE_TIMEOUT, IDLE_TIMEOUT};

#[derive(Clone, Debug)]
pub(crate) struct SessionRow {
    pub(crate) id: Uuid,
    pub(crate) user_id: Uuid,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) last_seen_at: OffsetDateTime,
    pub(crate) user_agent: String,
    pub(crate) ip: String,
}

pub(crate) async fn create_session(
    pool: &PgPool,
    user_id: Uuid,
    user_agent: &str,
    ip: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let ua: String = user_agent.chars().take(200).collect();
    sqlx::query!(
        r#"INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, user_agent, ip)
           VALUES ($1, $2, $3, $3, $4, $5, $6)"#,
        id,
        user_id,
        now,
        now + ABSOLUTE_TIMEOUT,
        ua,
        ip
    )
    .execute(pool)
    .await?;
    Ok(id)
}

/// The session if it is neither revoked, idle too long, nor past its absolute lifetime.
#[derive(sqlx::FromRow)]
struct SessionUser {
    session_id: Uuid,
    session_created_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    user_agent: String,
    ip: String,
    #[sqlx(flatten)]
    user: User,
}

/// A session still valid at `now` (not revoked, not expired, not idle) and its user, in one
/// round trip; every request with a session cookie asks this.
pub(crate) async fn valid_session_with_user(
    pool: &PgPool,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Option<(SessionRow, User)>> {
    let row = sqlx::query_as::<_, SessionUser>(
        r#"SELECT s.id AS session_id, s.created_at AS session_created_at, s.last_seen_at,
                  s.user_agent, s.ip,
                  u.id, u.email, u.name, u.password_hash, u.totp_secret, u.totp_enabled_at,
                  u.totp_last_step, u.totp_failures, u.totp_locked_until, u.language,
                  u.accepted_policy_version
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 AND s.last_seen_at > $3"#,
    )
    .bind(id)
    .bind(now)
    .bind(now - IDLE_TIMEOUT)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        (
            SessionRow {
                id: r.session_id,
                user_id: r.user.id,
                created_at: r.session_created_at,
                last_seen_at: r.last_seen_at,
                user_agent: r.user_agent,
                ip: r.ip,
            },
            r.user,
        )
    }))
}

pub(crate) async fn touch_session(
    pool: &PgPool,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
        id,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn revoke_session(
    pool: &PgPool,
    user_id: Uuid,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        id,
        user_id,
        now
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Revokes every session of a user, optionally keeping one (the current).
pub(crate) async fn revoke_all_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        r#"UPDATE sessions SET revoked_at = $3
           WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)"#,
        user_id,
        keep,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

pub(crate) async fn active_sessions(
    pool: &PgPool,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        r#"SELECT id, user_id, created_at, last_seen_at, user_agent, ip FROM sessions
           WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3
           ORDER BY last_seen_at DESC"#,
        user_id,
        now,
        now - IDLE_TIMEOUT
    )
    .fetch_all(pool)
    .await
}

/// Deletes sessions that can no longer be used (the session sweep job).
pub(crate) async fn delete_dead_sessions(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1 - interval '1 day' OR last_seen_at < $1 - interval '1 day'",
        now
    )
    .execute(pool)
    .await?;
    sqlx::query!("DELETE FROM login_challenges WHERE expires_at < $1", now)
        .execute(pool)
        .await?;
    Ok(r.rows_affected())
}
