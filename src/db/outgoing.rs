//! Outgoing webhooks: endpoints, their deliveries (the outbox) and every attempt.
//! See `crate::outgoing` for the rules; everything here runs in a tenant transaction.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::events::DeliveryState;

/// The job kind that delivers one `webhook_deliveries` row.
pub(crate) const WEBHOOK_DELIVER: &str = "webhook_deliver";

/// The `webhook_deliver` job: one attempt at one delivery (its `BackgroundJob` impl, which
/// needs the application state, is in `messaging::webhook_delivery`; `emit` writes its rows
/// in SQL, in this shape: `webhook:{id}` dedupe key, 8 attempts).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct WebhookDeliver {
    pub(crate) tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub(crate) delivery_id: Uuid,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Endpoint {
    pub(crate) id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) tenant_id: Uuid,
    pub(crate) url: String,
    pub(crate) description: String,
    pub(crate) events: Vec<String>,
    pub(crate) include_text: bool,
    pub(crate) secret_sealed: Vec<u8>,
    pub(crate) enabled: bool,
    pub(crate) disabled_reason: Option<String>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) disabled_at: Option<OffsetDateTime>,
    pub(crate) last_success_at: Option<OffsetDateTime>,
    pub(crate) last_failure_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) created_at: OffsetDateTime,
}

const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, events, include_text, secret_sealed, enabled, \
     disabled_reason, disabled_at, last_success_at, last_failure_at, created_at";

pub(crate) struct NewEndpoint<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) url: &'a str,
    pub(crate) description: &'a str,
    pub(crate) events: &'a [String],
    pub(crate) include_text: bool,
    pub(crate) secret_sealed: Vec<u8>,
}

pub(crate) async fn insert_endpoint(
    conn: &mut PgConnection,
    e: NewEndpoint<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"INSERT INTO webhook_endpoints (id, tenant_id, url, description, events, include_text, secret_sealed, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"#,
    )
    .bind(e.id)
    .bind(e.tenant_id)
    .bind(e.url)
    .bind(e.description)
    .bind(e.events)
    .bind(e.include_text)
    .bind(e.secret_sealed)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn endpoints(conn: &mut PgConnection) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as::<_, Endpoint>(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at"
    ))
    .fetch_all(conn)
    .await
}

pub(crate) async fn endpoint(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as::<_, Endpoint>(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Events and the text opt-in; `false` when there is no such endpoint.
pub(crate) async fn set_subscription(
    conn: &mut PgConnection,
    id: Uuid,
    events: &[String],
    include_text: bool,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE webhook_endpoints SET events = $2, include_text = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(events)
    .bind(include_text)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Enables (clearing any alert) or disables (`reason`: `manual` or `failing`) an endpoint.
/// Disabling gives up its pending deliveries.
pub(crate) async fn set_enabled(
    conn: &mut PgConnection,
    id: Uuid,
    enabled: bool,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"UPDATE webhook_endpoints SET enabled = $2,
                  disabled_reason = CASE WHEN $2 THEN NULL ELSE $3 END,
                  disabled_at = CASE WHEN $2 THEN NULL ELSE $4 END, updated_at = $4
           WHERE id = $1"#,
    )
    .bind(id)
    .bind(enabled)
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if !enabled {
        sqlx::query(
            r#"UPDATE webhook_deliveries SET state = 'failed', finished_at = $2, next_attempt_at = NULL,
                      last_error = COALESCE(last_error, 'endpoint disabled')
               WHERE endpoint_id = $1 AND state = 'pending'"#,
        )
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    }
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn delete_endpoint(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Endpoints disabled because they kept failing, with when: `(id, url, disabled_at)`.
pub(crate) async fn disabled_failing(
    conn: &mut PgConnection,
) -> sqlx::Result<Vec<(Uuid, String, OffsetDateTime)>> {
    sqlx::query_as(
        r#"SELECT id, url, disabled_at FROM webhook_endpoints
           WHERE NOT enabled AND disabled_reason = 'failing' AND disabled_at IS NOT NULL"#,
    )
    .fetch_all(conn)
    .await
}

/// The outbox write for one event type: a delivery row per enabled endpoint of this tenant
/// subscribed to `event_type`, for each `(data, dedupe key)`, and a delivery job for each
/// row, in one statement. Costs one index probe when the tenant has no endpoint. Returns how
/// many deliveries were queued (the caller may wake the workers when it is not zero).
pub(crate) async fn emit(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    event_type: &str,
    events: &[(Value, Option<String>)],
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let data: Vec<Value> = events.iter().map(|e| e.0.clone()).collect();
    let keys: Vec<Option<String>> = events.iter().map(|e| e.1.clone()).collect();
    let r = sqlx::query(
        r#"WITH ev AS (SELECT * FROM unnest($3::jsonb[], $4::text[]) AS ev(data, dedupe_key)),
           d AS (
               INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_type, data, occurred_at,
                                               dedupe_key, next_attempt_at, created_at)
               SELECT gen_random_uuid(), e.tenant_id, e.id, $2, ev.data, $5, ev.dedupe_key, $5, $5
               FROM webhook_endpoints e CROSS JOIN ev
               WHERE e.tenant_id = $1 AND e.enabled AND $2 = ANY (e.events)
               ON CONFLICT (endpoint_id, dedupe_key) DO NOTHING
               RETURNING id, tenant_id)
           INSERT INTO jobs (id, kind, tenant_id, subject_id, dedupe_key, run_at, max_attempts, created_at, updated_at)
           SELECT gen_random_uuid(), $6, d.tenant_id, d.id, 'webhook:' || d.id, $5, 8, $5, $5 FROM d"#,
    )
    .bind(tenant_id)
    .bind(event_type)
    .bind(&data)
    .bind(&keys)
    .bind(now)
    .bind(WEBHOOK_DELIVER)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// One delivery to one endpoint whatever it subscribes to (the "send test event" button).
pub(crate) async fn emit_to(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    event_type: &str,
    data: &Value,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        r#"INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_type, data, occurred_at, next_attempt_at, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6, $6)"#,
    )
    .bind(id)
    .bind(tenant_id)
    .bind(endpoint_id)
    .bind(event_type)
    .bind(data)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    enqueue(conn, tenant_id, id, now).await?;
    Ok(id)
}

async fn enqueue(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    delivery_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    super::jobs::enqueue(
        conn,
        &WebhookDeliver {
            tenant_id,
            delivery_id,
        },
        now,
        now,
    )
    .await?;
    Ok(())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Delivery {
    pub(crate) id: Uuid,
    pub(crate) endpoint_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) data: Value,
    pub(crate) occurred_at: OffsetDateTime,
    pub(crate) state: String,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) last_status: Option<i32>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) finished_at: Option<OffsetDateTime>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_type, data, occurred_at, state, attempts, \
     next_attempt_at, last_status, last_error, created_at, finished_at";

pub(crate) async fn delivery(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as::<_, Delivery>(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// An endpoint's newest deliveries (the delivery log).
pub(crate) async fn deliveries(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as::<_, Delivery>(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(endpoint_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Attempt {
    pub(crate) delivery_id: Uuid,
    pub(crate) attempted_at: OffsetDateTime,
    pub(crate) status: Option<i32>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: i32,
}

pub(crate) async fn attempts(
    conn: &mut PgConnection,
    deliveries: &[Uuid],
) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as::<_, Attempt>(
        r#"SELECT delivery_id, attempted_at, status, error, duration_ms FROM webhook_attempts
           WHERE delivery_id = ANY($1) ORDER BY attempted_at, id"#,
    )
    .bind(deliveries)
    .fetch_all(conn)
    .await
}

/// What one attempt came to.
pub(crate) struct AttemptResult<'a> {
    pub(crate) status: Option<i32>,
    pub(crate) error: Option<&'a str>,
    pub(crate) duration_ms: i32,
}

/// Records an attempt and moves the delivery on: `delivered` on success; otherwise `pending`
/// until `retry_at`, or `failed` when there is none (the schedule is used up).
pub(crate) async fn record_attempt(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    d: &Delivery,
    a: &AttemptResult<'_>,
    success: bool,
    retry_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"INSERT INTO webhook_attempts (tenant_id, delivery_id, attempted_at, status, error, duration_ms)
           VALUES ($1, $2, $3, $4, left($5, 300), $6)"#,
    )
    .bind(tenant_id)
    .bind(d.id)
    .bind(now)
    .bind(a.status)
    .bind(a.error)
    .bind(a.duration_ms)
    .execute(&mut *conn)
    .await?;
    let state = DeliveryState::after_attempt(success, retry_at.is_some()).as_str();
    sqlx::query(
        r#"UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, last_status = $3,
                  last_error = left($4, 300), next_attempt_at = $5,
                  finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $6 END
           WHERE id = $1"#,
    )
    .bind(d.id)
    .bind(state)
    .bind(a.status)
    .bind(a.error)
    .bind(retry_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let column = if success {
        "last_success_at"
    } else {
        "last_failure_at"
    };
    sqlx::query(&format!(
        "UPDATE webhook_endpoints SET {column} = $2 WHERE id = $1"
    ))
    .bind(d.endpoint_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives up a delivery without an attempt (its endpoint is disabled or gone).
pub(crate) async fn give_up(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"UPDATE webhook_deliveries SET state = 'failed', last_error = $2, next_attempt_at = NULL, finished_at = $3
           WHERE id = $1 AND state = 'pending'"#,
    )
    .bind(id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sends a delivery again with the same `webhook-id` and a fresh retry schedule; `false`
/// when there is no such delivery (or it is still pending, so already on its way).
pub(crate) async fn replay(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        r#"UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2, finished_at = NULL
           WHERE id = $1 AND state <> 'pending'"#,
    )
    .bind(id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() != 1 {
        return Ok(false);
    }
    enqueue(conn, tenant_id, id, now).await?;
    Ok(true)
}

/// The tenant's slug, for payloads (`tenants` is a global table).
pub(crate) async fn tenant_slug(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT slug FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(conn)
        .await
}
