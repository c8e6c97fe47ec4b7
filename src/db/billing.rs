//! Billing state on tenants and Stripe event deduplication (global tables).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub(crate) struct Billing {
    pub(crate) plan: String,
    pub(crate) stripe_customer_id: Option<String>,
    pub(crate) stripe_subscription_id: Option<String>,
    pub(crate) billing_status: String,
    pub(crate) grace_until: Option<OffsetDateTime>,
    /// `created` (Unix seconds) of the newest subscription-state event applied.
    pub(crate) stripe_event_at: Option<i64>,
}

pub(crate) async fn get(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Option<Billing>> {
    sqlx::query_as!(
        Billing,
        "SELECT plan, stripe_customer_id, stripe_subscription_id, billing_status, grace_until, stripe_event_at FROM tenants WHERE id = $1",
        tenant_id
    )
    .fetch_optional(conn)
    .await
}

pub(crate) async fn tenant_by_customer(
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
pub(crate) async fn record_event(
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

pub(crate) async fn link_customer(
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

pub(crate) async fn set_status(
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

pub(crate) async fn set_plan(
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

/// Remembers the newest applied event's `created` (never moves back).
pub(crate) async fn set_event_at(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    at: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE tenants SET stripe_event_at = GREATEST(COALESCE(stripe_event_at, $2), $2) WHERE id = $1",
        tenant_id,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An invoice event whose customer no tenant has yet.
pub(crate) struct PendingEvent {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) customer: String,
    pub(crate) subscription: Option<String>,
    pub(crate) created: i64,
}

pub(crate) async fn keep_pending(
    conn: &mut PgConnection,
    e: &PendingEvent,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO stripe_pending_events (id, type, customer, subscription, created, received_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING"#,
        e.id,
        e.kind,
        e.customer,
        e.subscription,
        e.created,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes (deletes and returns) the customer's kept events, oldest first.
pub(crate) async fn take_pending(
    conn: &mut PgConnection,
    customer: &str,
) -> sqlx::Result<Vec<PendingEvent>> {
    let mut rows = sqlx::query_as!(
        PendingEvent,
        r#"DELETE FROM stripe_pending_events WHERE customer = $1
           RETURNING id, type AS kind, customer, subscription, created"#,
        customer
    )
    .fetch_all(conn)
    .await?;
    rows.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(rows)
}
