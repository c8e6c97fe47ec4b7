//! Plans and billing. Plans are static (`domain::plans`); Stripe subscriptions map onto
//! them. Webhook events are verified, deduplicated by id and applied idempotently; without
//! Stripe keys (the demo) billing only shows the plan and usage.

pub mod stripe;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    db::{
        audit::{self, Actor},
        billing as dbb, privacy as dbp,
    },
    domain::plans,
    privacy::retention::TERMINATION_GRACE,
    state::AppState,
};

/// After a failed payment, the tenant keeps working this long (a banner shows the date).
pub const GRACE: Duration = Duration::days(7);

pub fn configured(state: &AppState) -> bool {
    state.config.stripe_secret_key.is_some()
}

pub fn client(state: &AppState) -> Option<stripe::Client> {
    let key = state.config.stripe_secret_key.clone()?;
    stripe::Client::new(&state.config.stripe_api_url, key).ok()
}

/// The plan a Stripe price id stands for.
pub fn plan_for_price(state: &AppState, price: &str) -> Option<&'static plans::Plan> {
    let id = state
        .config
        .stripe_prices
        .iter()
        .find(|(_, p)| p.as_str() == price)
        .map(|(plan, _)| plan.clone())?;
    plans::by_id(&id)
}

#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Handled,
    Duplicate,
    Ignored,
}

fn customer_of(obj: &Value) -> Option<&str> {
    obj["customer"]
        .as_str()
        .or_else(|| obj["customer"]["id"].as_str())
}

/// Applies one verified Stripe event, once.
pub async fn apply_event(state: &AppState, event: &Value) -> anyhow::Result<Applied> {
    let id = event["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("event without id"))?;
    let kind = event["type"].as_str().unwrap_or("");
    let obj = &event["data"]["object"];
    let now = state.now();
    let mut tx = state.db.begin().await?;
    // Which tenant: our reference on the checkout/subscription, else the customer id.
    let by_ref = obj["client_reference_id"]
        .as_str()
        .or(obj["metadata"]["tenant_id"].as_str())
        .and_then(|s| Uuid::parse_str(s).ok());
    let tenant = match by_ref {
        Some(t) => Some(t),
        None => match customer_of(obj) {
            Some(c) => dbb::tenant_by_customer(&mut tx, c).await?,
            None => None,
        },
    };
    if !dbb::record_event(&mut tx, id, kind, tenant, now).await? {
        return Ok(Applied::Duplicate);
    }
    let Some(tenant) = tenant.filter(|_| !kind.is_empty()) else {
        tx.commit().await?;
        return Ok(Applied::Ignored);
    };
    let Some(current) = dbb::get(&mut tx, tenant).await? else {
        tx.commit().await?;
        return Ok(Applied::Ignored);
    };
    let mut outcome = Applied::Handled;
    let mut detail = json!({ "event": kind });
    match kind {
        "checkout.session.completed" => {
            if let Some(c) = customer_of(obj) {
                dbb::link_customer(&mut tx, tenant, c, obj["subscription"].as_str()).await?;
            }
            dbb::set_status(&mut tx, tenant, "active", None).await?;
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            if let Some(c) = customer_of(obj) {
                dbb::link_customer(&mut tx, tenant, c, obj["id"].as_str()).await?;
            }
            if let Some(plan) = obj["items"]["data"][0]["price"]["id"]
                .as_str()
                .and_then(|p| plan_for_price(state, p))
            {
                dbb::set_plan(&mut tx, tenant, plan.id, obj["id"].as_str()).await?;
                detail["plan"] = json!(plan.id);
            }
            let (status, grace) = match obj["status"].as_str().unwrap_or("") {
                "active" | "trialing" => ("active", None),
                "past_due" | "unpaid" => ("past_due", current.grace_until.or(Some(now + GRACE))),
                "canceled" | "incomplete_expired" => ("canceled", None),
                _ => (current.billing_status.as_str(), current.grace_until),
            };
            dbb::set_status(&mut tx, tenant, status, grace).await?;
        }
        "customer.subscription.deleted" => {
            dbb::set_status(&mut tx, tenant, "canceled", None).await?;
            tx.commit().await?;
            // The subscription ended: the termination flow starts (export window, then deletion).
            dbp::schedule_termination(&state.db, tenant, now + TERMINATION_GRACE, now).await?;
            tx = state.db.begin().await?;
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            dbb::set_status(&mut tx, tenant, "active", None).await?
        }
        "invoice.payment_failed" => {
            let grace = current.grace_until.unwrap_or(now + GRACE);
            dbb::set_status(&mut tx, tenant, "past_due", Some(grace)).await?;
        }
        _ => outcome = Applied::Ignored,
    }
    if outcome == Applied::Handled {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            tenant,
            &Actor {
                id: None,
                label: "stripe".into(),
            },
            "billing.event",
            id,
            detail,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// What the plan's limits look like this period (the billing page and banners).
pub struct Usage {
    pub drafts: i64,
    pub draft_limit: u32,
    pub members: i64,
    pub channels: i64,
}

pub fn over(usage: &Usage) -> bool {
    usage.drafts >= i64::from(usage.draft_limit)
}

pub fn month_start(now: OffsetDateTime) -> time::Date {
    now.date().replace_day(1).unwrap_or(now.date())
}
