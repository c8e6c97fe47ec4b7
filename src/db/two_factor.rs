//! The second factor: a user's TOTP secret and its lockout, recovery codes, and the login
//! challenges that sit between the password and the second factor.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// Stores a pending (not yet confirmed) TOTP secret, sealed.
pub(crate) async fn set_totp_pending(
    pool: &PgPool,
    user_id: Uuid,
    sealed: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE users SET totp_secret = $2, totp_enabled_at = NULL, totp_last_step = NULL,
                  totp_failures = 0, totp_locked_until = NULL, updated_at = $3
           WHERE id = $1 AND totp_enabled_at IS NULL"#,
        user_id,
        sealed,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn enable_totp(
    pool: &PgPool,
    user_id: Uuid,
    step: i64,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET totp_enabled_at = $3, totp_last_step = $2, updated_at = $3 WHERE id = $1",
        user_id,
        step,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn disable_totp(
    pool: &PgPool,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        r#"UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL,
                  totp_failures = 0, totp_locked_until = NULL, updated_at = $2 WHERE id = $1"#,
        user_id,
        now
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// Records a used step only if it is newer than the last (a code is accepted once, even
/// under concurrent submissions).
pub(crate) async fn record_totp_step(
    pool: &PgPool,
    user_id: Uuid,
    step: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE users SET totp_last_step = $2, totp_failures = 0, totp_locked_until = NULL
           WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)"#,
        user_id,
        step
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Counts a wrong code; five in a row lock the factor for 15 minutes.
pub(crate) async fn record_totp_failure(
    pool: &PgPool,
    user_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE users SET totp_failures = totp_failures + 1,
                  totp_locked_until = CASE WHEN totp_failures + 1 >= 5 THEN $2::timestamptz + interval '15 minutes'
                                           ELSE totp_locked_until END
           WHERE id = $1"#,
        user_id,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn replace_recovery_codes(
    pool: &PgPool,
    user_id: Uuid,
    hashes: &[String],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
        .execute(&mut *tx)
        .await?;
    for h in hashes {
        sqlx::query!(
            "INSERT INTO recovery_codes (id, user_id, code_hash) VALUES ($1, $2, $3)",
            Uuid::now_v7(),
            user_id,
            h
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Uses a recovery code once. `true` if it was valid and unused.
pub(crate) async fn use_recovery_code(
    pool: &PgPool,
    user_id: Uuid,
    hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        user_id,
        hash,
        now
    )
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn unused_recovery_codes(pool: &PgPool, user_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"#,
        user_id
    )
    .fetch_one(pool)
    .await
}

// Login challenges (between the password and the second factor).

pub(crate) async fn create_challenge(
    pool: &PgPool,
    user_id: Uuid,
    token_hash: &str,
    expires_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO login_challenges (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        Uuid::now_v7(),
        user_id,
        token_hash,
        expires_at
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The challenge's user, counting this attempt; `None` if unknown, expired or overused.
pub(crate) async fn challenge_user(
    pool: &PgPool,
    token_hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        r#"UPDATE login_challenges SET attempts = attempts + 1
           WHERE token_hash = $1 AND expires_at > $2 AND attempts < 5
           RETURNING user_id"#,
        token_hash,
        now
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn delete_challenge(pool: &PgPool, token_hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM login_challenges WHERE token_hash = $1",
        token_hash
    )
    .execute(pool)
    .await?;
    Ok(())
}
