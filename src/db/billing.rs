//! Billing state on tenants and Stripe event deduplication (global tables).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Billing {
    pub plan: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub billing_status: String,
    pub grace_until: Option<OffsetDateTime>,
}

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Option<Billing>> {
    sqlx::query_as!(
        Billing,
        "SELECT plan, stripe_customer_id, stripe_subscription_id, billing_status, grace_until FROM tenants WHERE id = $1",
        tenant_id
    )
    .fetch_optional(conn)
    .await
}

pub async fn tenant_by_customer(
    conn: &mut PgConnection,
    customer: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "SELECT id FROM tenants WHERE stripe_customer_id = $1",
        customer
    )
    .fetch_optional(conn)
    .await
}

/// Records an event id; `false` if it was seen before (a replay changes nothing).
pub async fn record_event(
    conn: &mut PgConnection,
    id: &str,
    kind: &str,
    tenant_id: Option<Uuid>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "INSERT INTO stripe_events (id, type, tenant_id, received_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        id,
        kind,
        tenant_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn link_customer(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    customer: &str,
    subscription: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenants SET stripe_customer_id = $2, stripe_subscription_id = COALESCE($3, stripe_subscription_id) WHERE id = $1",
        tenant_id,
        customer,
        subscription
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    status: &str,
    grace_until: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenants SET billing_status = $2, grace_until = $3 WHERE id = $1",
        tenant_id,
        status,
        grace_until
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_plan(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    plan: &str,
    subscription: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenants SET plan = $2, stripe_subscription_id = COALESCE($3, stripe_subscription_id) WHERE id = $1",
        tenant_id,
        plan,
        subscription
    )
    .execute(conn)
    .await?;
    Ok(())
}
