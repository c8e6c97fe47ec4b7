//! Tenants: the row, its settings, the user's list of tenants and a portal page's frame.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::begin_user;

#[derive(Clone, Debug)]
pub(crate) struct Tenant {
    pub(crate) id: Uuid,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) plan: String,
}

pub(crate) async fn insert_tenant(
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
pub(crate) async fn insert_tenant_settings(
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

pub(crate) async fn tenant_by_slug(pool: &PgPool, slug: &str) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, slug, name, status, plan FROM tenants WHERE slug = $1",
        slug
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn tenant_by_id(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as!(
        Tenant,
        "SELECT id, slug, name, status, plan FROM tenants WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn rename_tenant(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
) -> sqlx::Result<()> {
    sqlx::query!("UPDATE tenants SET name = $2 WHERE id = $1", id, name)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct MyTenant {
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) role: String,
}

/// The tenants a user belongs to (user-scoped RLS).
pub(crate) async fn tenants_of_user(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Vec<MyTenant>> {
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
pub(crate) struct Chrome {
    pub(crate) tenant_id: Uuid,
    pub(crate) slug: String,
    pub(crate) name: String,
    pub(crate) status: String,
    pub(crate) plan: String,
    pub(crate) role: String,
    /// Unread messages in open conversations.
    pub(crate) unread: i64,
    /// Drafts and escalations waiting for review.
    pub(crate) waiting: i64,
    pub(crate) billing_status: String,
    pub(crate) grace_until: Option<OffsetDateTime>,
    /// AI drafts made since the month start passed in.
    pub(crate) drafts_this_month: i64,
    pub(crate) time_zone: Option<String>,
    /// The tenants the user belongs to (not terminated), by name.
    pub(crate) my_tenants: sqlx::types::Json<Vec<MyTenant>>,
}

impl Chrome {
    pub(crate) fn tenant(&self) -> Tenant {
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
pub(crate) async fn portal_chrome(
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

#[derive(Clone, Debug)]
pub(crate) struct TenantSettings {
    pub(crate) time_zone: String,
    pub(crate) language: String,
    pub(crate) business_hours: serde_json::Value,
}

pub(crate) async fn settings(conn: &mut PgConnection) -> sqlx::Result<TenantSettings> {
    sqlx::query_as!(
        TenantSettings,
        "SELECT time_zone, language, business_hours FROM tenant_settings WHERE tenant_id = app_current_tenant()"
    )
    .fetch_one(conn)
    .await
}

pub(crate) async fn save_settings(
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
