//! Users, tenants, memberships, sessions and one-time tokens.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    auth::{ABSOLUTE_TIMEOUT, IDLE_TIMEOUT},
    domain::account::Role,
};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub totp_secret: Option<Vec<u8>>,
    pub totp_enabled_at: Option<OffsetDateTime>,
    pub totp_last_step: Option<i64>,
    pub totp_failures: i32,
    pub totp_locked_until: Option<OffsetDateTime>,
    pub language: Option<String>,
    pub accepted_policy_version: String,
}

impl User {
    pub fn has_totp(&self) -> bool {
        self.totp_enabled_at.is_some() && self.totp_secret.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub plan: String,
}

/// A transaction that sees one user's own memberships (and nothing tenant-scoped).
pub async fn begin_user(
    pool: &PgPool,
    user_id: Uuid,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.user_id', $1, true)")
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

pub fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation() && d.constraint() == Some(constraint))
}

// ---- users ----

pub struct NewUser<'a> {
    pub id: Uuid,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub policy_version: &'a str,
    pub language: Option<&'a str>,
}

pub async fn insert_user(
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

pub async fn user_by_email(pool: &PgPool, email: &str) -> sqlx::Result<Option<User>> {
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

pub async fn user_by_id(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<User>> {
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

pub async fn set_password(
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
pub async fn set_password_in(
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

pub async fn accept_policy(
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

pub async fn set_user_language(
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

// ---- two-factor ----

/// Stores a pending (not yet confirmed) TOTP secret, sealed.
pub async fn set_totp_pending(
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

pub async fn enable_totp(
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

pub async fn disable_totp(pool: &PgPool, user_id: Uuid, now: OffsetDateTime) -> sqlx::Result<()> {
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
pub async fn record_totp_step(pool: &PgPool, user_id: Uuid, step: i64) -> sqlx::Result<bool> {
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
pub async fn record_totp_failure(
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

pub async fn replace_recovery_codes(
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
pub async fn use_recovery_code(
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

pub async fn unused_recovery_codes(pool: &PgPool, user_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL"#,
        user_id
    )
    .fetch_one(pool)
    .await
}

// ---- login challenges (between password and second factor) ----

pub async fn create_challenge(
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
pub async fn challenge_user(
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

pub async fn delete_challenge(pool: &PgPool, token_hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM login_challenges WHERE token_hash = $1",
        token_hash
    )
    .execute(pool)
    .await?;
    Ok(())
}

// ---- sessions ----

#[derive(Clone, Debug)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub user_agent: String,
    pub ip: String,
}

pub async fn create_session(
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
pub async fn valid_session_with_user(
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

pub async fn touch_session(pool: &PgPool, id: Uuid, now: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
        id,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn revoke_session(
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
pub async fn revoke_all_sessions(
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

pub async fn active_sessions(
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
pub async fn delete_dead_sessions(pool: &PgPool, now: OffsetDateTime) -> sqlx::Result<u64> {
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

// ---- tenants and memberships ----

pub async fn insert_tenant(
    conn: &mut PgConnection,
    id: Uuid,
    slug: &str,
    name: &str,
    plan: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO tenants (id, slug, name, plan, created_at) VALUES ($1, $2, $3, $4, $5)",
        id,
        slug,
        name,
        plan,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// In a tenant-scoped transaction: the default settings row.
pub async fn insert_tenant_settings(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    language: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO tenant_settings (tenant_id, language, updated_at) VALUES ($1, $2, $3)",
        tenant_id,
        language,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn tenant_by_slug(pool: &PgPool, slug: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, slug, name, status, plan FROM tenants WHERE slug = $1",
        slug
    )
    .fetch_optional(pool)
    .await
}

pub async fn tenant_by_id(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, slug, name, status, plan FROM tenants WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

pub async fn rename_tenant(conn: &mut PgConnection, id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query!("UPDATE tenants SET name = $2 WHERE id = $1", id, name)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct MyTenant {
    pub slug: String,
    pub name: String,
    pub role: String,
}

/// The tenants a user belongs to (user-scoped RLS).
pub async fn tenants_of_user(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Vec<MyTenant>> {
    let mut tx = begin_user(pool, user_id).await?;
    let rows = sqlx::query_as!(
        MyTenant,
        r#"SELECT t.slug, t.name, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
           WHERE m.user_id = $1 AND t.status <> 'terminated' ORDER BY t.name"#,
        user_id
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Everything a portal page's frame shows, as `portal_chrome` (migration 0029) answers it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Chrome {
    pub tenant_id: Uuid,
    pub slug: String,
    pub name: String,
    pub status: String,
    pub plan: String,
    pub role: String,
    /// Unread messages in open conversations.
    pub unread: i64,
    /// Drafts and escalations waiting for review.
    pub waiting: i64,
    pub billing_status: String,
    pub grace_until: Option<OffsetDateTime>,
    /// AI drafts made since the month start passed in.
    pub drafts_this_month: i64,
    pub time_zone: Option<String>,
    /// The tenants the user belongs to (not terminated), by name.
    pub my_tenants: sqlx::types::Json<Vec<MyTenant>>,
}

impl Chrome {
    pub fn tenant(&self) -> Tenant {
        Tenant {
            id: self.tenant_id,
            slug: self.slug.clone(),
            name: self.name.clone(),
            status: self.status.clone(),
            plan: self.plan.clone(),
        }
    }
}

/// A portal page's frame in one statement and one round trip: the tenant by slug, the
/// user's membership, the badges, the billing state, the month's drafts, the time zone and
/// the user's tenants. `None` for an unknown or terminated tenant, or one the user is not a
/// member of. Call it on the pool, not in a transaction: the function scopes the tenant
/// and user settings to itself.
pub async fn portal_chrome(
    pool: &PgPool,
    slug: &str,
    user_id: Uuid,
    month_start: time::Date,
) -> sqlx::Result<Option<Chrome>> {
    sqlx::query_as::<_, Chrome>("SELECT * FROM portal_chrome($1, $2, $3)")
        .bind(slug)
        .bind(user_id)
        .bind(month_start)
        .fetch_optional(pool)
        .await
}

/// In a tenant-scoped transaction: the user's role there, if a member.
pub async fn role_in_tenant(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Option<Role>> {
    let role = sqlx::query_scalar!(
        "SELECT role FROM memberships WHERE user_id = $1 AND tenant_id = app_current_tenant()",
        user_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(role.and_then(|r| Role::try_from(r.as_str()).ok()))
}

pub async fn add_member(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
    role: Role,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    lock_user(&mut *conn, user_id).await?;
    revoke_resets(&mut *conn, user_id, now).await?;
    sqlx::query!(
        "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        tenant_id,
        user_id,
        role.as_str(),
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    pub role: String,
    pub created_at: OffsetDateTime,
}

pub async fn members(conn: &mut PgConnection) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as!(
        Member,
        r#"SELECT m.user_id, u.name, u.email, m.role, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = app_current_tenant()
           ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 WHEN 'reviewer' THEN 2 ELSE 3 END, u.name"#
    )
    .fetch_all(conn)
    .await
}

pub async fn member_count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM memberships WHERE tenant_id = app_current_tenant()"#
    )
    .fetch_one(conn)
    .await
}

/// Locks the tenant's owner rows and counts them (so two concurrent demotions can't both
/// pass the "not the last owner" check).
pub async fn lock_owner_count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    let owners = sqlx::query_scalar!(
        "SELECT user_id FROM memberships WHERE tenant_id = app_current_tenant() AND role = 'owner' FOR UPDATE"
    )
    .fetch_all(conn)
    .await?;
    Ok(owners.len() as i64)
}

pub async fn set_member_role(
    conn: &mut PgConnection,
    user_id: Uuid,
    role: Role,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE memberships SET role = $2 WHERE tenant_id = app_current_tenant() AND user_id = $1",
        user_id,
        role.as_str()
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn remove_member(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "DELETE FROM memberships WHERE tenant_id = app_current_tenant() AND user_id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

// ---- first steps ----

/// What a new tenant has done of its set-up (the overview's checklist), in one query.
pub struct FirstSteps {
    pub connected_number: bool,
    pub added_knowledge: bool,
    pub tried_simulator: bool,
    pub invited_staff: bool,
}

impl FirstSteps {
    pub fn all_done(&self) -> bool {
        self.connected_number && self.added_knowledge && self.tried_simulator && self.invited_staff
    }
}

pub async fn first_steps(conn: &mut PgConnection) -> sqlx::Result<FirstSteps> {
    sqlx::query_as!(
        FirstSteps,
        r#"SELECT
             EXISTS (SELECT 1 FROM channels WHERE tenant_id = app_current_tenant()
                     AND kind <> 'simulator' AND deleted_at IS NULL) AS "connected_number!",
             EXISTS (SELECT 1 FROM knowledge_entries WHERE tenant_id = app_current_tenant()) AS "added_knowledge!",
             EXISTS (SELECT 1 FROM messages m JOIN channels c ON c.id = m.channel_id
                     WHERE m.tenant_id = app_current_tenant() AND c.tenant_id = app_current_tenant()
                       AND c.kind = 'simulator') AS "tried_simulator!",
             (EXISTS (SELECT 1 FROM invitations WHERE tenant_id = app_current_tenant())
              OR (SELECT count(*) FROM memberships WHERE tenant_id = app_current_tenant()) > 1) AS "invited_staff!""#
    )
    .fetch_one(conn)
    .await
}

// ---- settings ----

#[derive(Clone, Debug)]
pub struct TenantSettings {
    pub time_zone: String,
    pub language: String,
    pub business_hours: serde_json::Value,
}

pub async fn settings(conn: &mut PgConnection) -> sqlx::Result<TenantSettings> {
    sqlx::query_as!(
        TenantSettings,
        "SELECT time_zone, language, business_hours FROM tenant_settings WHERE tenant_id = app_current_tenant()"
    )
    .fetch_one(conn)
    .await
}

pub async fn save_settings(
    conn: &mut PgConnection,
    s: &TenantSettings,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE tenant_settings SET time_zone = $1, language = $2, business_hours = $3, updated_at = $4
           WHERE tenant_id = app_current_tenant()"#,
        s.time_zone,
        s.language,
        s.business_hours,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

// ---- invitations ----

#[derive(Clone, Debug)]
pub struct Invitation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: String,
    pub role: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub accepted_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl Invitation {
    pub fn usable(&self, now: OffsetDateTime) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

pub struct NewInvitation<'a> {
    pub tenant_id: Uuid,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: &'a str,
    pub invited_by: Uuid,
    pub expires_at: OffsetDateTime,
}

pub async fn create_invitation(
    pool: &PgPool,
    i: NewInvitation<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        r#"INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        id,
        i.tenant_id,
        i.email,
        i.role.as_str(),
        i.token_hash,
        i.invited_by,
        now,
        i.expires_at
    )
    .execute(pool)
    .await?;
    Ok(id)
}

pub async fn pending_invitations(
    pool: &PgPool,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"SELECT id, tenant_id, email, role, created_at, expires_at, accepted_at, revoked_at
           FROM invitations WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2
           ORDER BY created_at DESC"#,
        tenant_id,
        now
    )
    .fetch_all(pool)
    .await
}

pub async fn pending_invitation_count(
    pool: &PgPool,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM invitations
           WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"#,
        tenant_id,
        now
    )
    .fetch_one(pool)
    .await
}

pub async fn invitation_by_token(
    pool: &PgPool,
    token_hash: &str,
) -> sqlx::Result<Option<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"SELECT id, tenant_id, email, role, created_at, expires_at, accepted_at, revoked_at
           FROM invitations WHERE token_hash = $1"#,
        token_hash
    )
    .fetch_optional(pool)
    .await
}

/// Marks an invitation used; `false` if it was already used, revoked or expired (so a link
/// is accepted once, even under concurrent clicks).
pub async fn consume_invitation(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE invitations SET accepted_at = $2
           WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"#,
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn revoke_invitation(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE invitations SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        id,
        tenant_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

// ---- password resets ----

pub async fn create_reset(
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
pub async fn reset_user(
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
pub struct ResetGrant {
    pub user_id: Uuid,
    pub tenant_id: Option<Uuid>,
}

/// Uses a reset token once (the row stays locked until the caller's transaction ends).
pub async fn consume_reset(
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
pub async fn revoke_resets(
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

/// Locks the user's row until the transaction ends. Joining a tenant and using a reset link
/// both take this lock, so a link can't be used while its user is joining somewhere else.
pub async fn lock_user(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query!("SELECT id FROM users WHERE id = $1 FOR UPDATE", user_id)
        .fetch_optional(conn)
        .await?;
    Ok(())
}

/// Every tenant the user belongs to, whatever its status, seen as that user (row-level
/// security shows a user their own memberships). Switches the transaction's user.
pub async fn membership_tenants(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query("SELECT set_config('app.user_id', $1, true)")
        .bind(user_id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query_scalar!(
        "SELECT tenant_id FROM memberships WHERE user_id = $1 ORDER BY tenant_id",
        user_id
    )
    .fetch_all(conn)
    .await
}

/// Stores a self-service reset link for `user_id` (the e-mail job mints it as it sends, so
/// no usable token waits in the outbox; see `mail`). The user's earlier self-service links
/// die: only the newest e-mail works. `false` when the user no longer exists.
///
/// Such a link names no tenant: it went to the account's own address, so the rules for
/// admin-issued links (the member must belong to the issuing tenant alone) do not apply;
/// the rest of `accounts::complete_reset` does (once, an hour, dies with a password change,
/// ends every session).
pub async fn insert_self_service_reset(
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
