//! Plans and billing. Plans are static (`domain::plans`); Stripe subscriptions map onto
//! them. Webhook events are verified, deduplicated by id and applied idempotently; without
//! Stripe keys (the demo) billing only shows the plan and usage.

pub(crate) mod stripe;

use std::sync::Arc;

use axum::extract::FromRef;
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    clock::SharedClock,
    config::Config,
    db::{
        audit::{self, Actor},
        billing as dbb, privacy as dbp,
    },
    domain::plans,
    privacy::retention::TERMINATION_GRACE,
    state::AppState,
};

/// After a failed payment, the tenant keeps working this long (a banner shows the date).
pub(crate) const GRACE: Duration = Duration::days(7);

/// What billing uses, and nothing else: the pool, the clock, the Stripe settings (a view of
/// the process's configuration) and whether e-mail is on (a payment problem mails the
/// owners). Built from the process's state with `FromRef`: `State<Billing>` in a handler.
#[derive(Clone)]
pub(crate) struct Billing {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) clock: SharedClock,
    config: Arc<Config>,
    mail_on: bool,
}

impl Billing {
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Billing {
    fn from_ref(state: &AppState) -> Billing {
        Billing {
            db: state.db.clone(),
            clock: state.clock.clone(),
            config: state.config.clone(),
            mail_on: crate::mail::enabled(state),
        }
    }
}

pub(crate) fn configured(state: &Billing) -> bool {
    state.config.stripe_secret_key.is_some()
}

pub(crate) fn client(state: &Billing) -> Option<stripe::Client> {
    let key = state.config.stripe_secret_key.clone()?;
    stripe::Client::new(&state.config.stripe_api_url, key).ok()
}

/// The plan a Stripe price id stands for.
pub(crate) fn plan_for_price(state: &Billing, price: &str) -> Option<&'static plans::Plan> {
    let id = state
        .config
        .stripe_prices
        .iter()
        .find(|(_, p)| p.as_str() == price)
        .map(|(plan, _)| plan.clone())?;
    plans::by_id(&id)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Applied {
    Handled,
    Duplicate,
    Ignored,
    /// Older than what was already applied for this subscription, or about a subscription
    /// that has ended: recorded, changes nothing.
    Stale,
    /// An invoice event for a customer no tenant has yet: kept, applied once it is linked.
    Kept,
}

fn customer_of(obj: &Value) -> Option<&str> {
    obj["customer"]
        .as_str()
        .or_else(|| obj["customer"]["id"].as_str())
}

/// What an event says, in the fields we use.
struct Incoming {
    id: String,
    kind: String,
    /// The event's `created` (Unix seconds): Stripe's order, not delivery order.
    created: i64,
    customer: Option<String>,
    subscription: Option<String>,
    /// The subscription's status, on subscription events.
    status: Option<String>,
    price: Option<String>,
}

impl Incoming {
    fn parse(event: &Value, id: &str, now: OffsetDateTime) -> Incoming {
        let kind = event["type"].as_str().unwrap_or("").to_owned();
        let obj = &event["data"]["object"];
        let subscription = if kind.starts_with("customer.subscription.") {
            obj["id"].as_str()
        } else {
            // Invoices name it under `parent.subscription_details` since 2025-03-31.basil.
            obj["subscription"]
                .as_str()
                .or_else(|| obj["subscription"]["id"].as_str())
                .or_else(|| obj["parent"]["subscription_details"]["subscription"].as_str())
        };
        Incoming {
            id: id.to_owned(),
            created: event["created"]
                .as_i64()
                .unwrap_or_else(|| now.unix_timestamp()),
            customer: customer_of(obj).map(str::to_owned),
            subscription: subscription.map(str::to_owned),
            status: kind
                .starts_with("customer.subscription.")
                .then(|| obj["status"].as_str().map(str::to_owned))
                .flatten(),
            price: obj["items"]["data"][0]["price"]["id"]
                .as_str()
                .map(str::to_owned),
            kind,
        }
    }
}

/// Our tenant reference on a checkout, subscription or invoice (from the metadata we set
/// when creating the checkout).
fn tenant_ref(obj: &Value) -> Option<Uuid> {
    obj["client_reference_id"]
        .as_str()
        .or(obj["metadata"]["tenant_id"].as_str())
        .or(obj["parent"]["subscription_details"]["metadata"]["tenant_id"].as_str())
        .or(obj["subscription_details"]["metadata"]["tenant_id"].as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

/// Applies one verified Stripe event, once. Stripe does not deliver in order: an event older
/// (by `created`) than the newest applied for the same subscription changes nothing, an
/// ended subscription is never revived by its own late events, and invoice events for a
/// customer not linked yet are kept until it is.
pub(crate) async fn apply_event(state: &Billing, event: &Value) -> anyhow::Result<Applied> {
    let id = event["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("event without id"))?;
    let now = state.now();
    let inc = Incoming::parse(event, id, now);
    let obj = &event["data"]["object"];
    let mut tx = state.db.begin().await?;
    // Which tenant: our reference on the checkout/subscription, else the customer id.
    let tenant = match tenant_ref(obj) {
        Some(t) => Some(t),
        None => match inc.customer.as_deref() {
            Some(c) => dbb::tenant_by_customer(&mut tx, c).await?,
            None => None,
        },
    };
    if !dbb::record_event(&mut tx, id, &inc.kind, tenant, now).await? {
        return Ok(Applied::Duplicate);
    }
    let Some(tenant) = tenant.filter(|_| !inc.kind.is_empty()) else {
        let outcome = match (&inc.customer, inc.kind.starts_with("invoice.")) {
            (Some(customer), true) => {
                dbb::keep_pending(
                    &mut tx,
                    &dbb::PendingEvent {
                        id: inc.id.clone(),
                        kind: inc.kind.clone(),
                        customer: customer.clone(),
                        subscription: inc.subscription.clone(),
                        created: inc.created,
                    },
                    now,
                )
                .await?;
                Applied::Kept
            }
            _ => Applied::Ignored,
        };
        tx.commit().await?;
        return Ok(outcome);
    };
    let (outcome, effects) = apply_to(state, &mut tx, tenant, &inc, now).await?;
    // Invoice events that waited for this customer apply now, in Stripe's order.
    if let Some(customer) = &effects.linked {
        for p in dbb::take_pending(&mut tx, customer).await? {
            let kept = Incoming {
                id: p.id,
                kind: p.kind,
                created: p.created,
                customer: Some(p.customer),
                subscription: p.subscription,
                status: None,
                price: None,
            };
            apply_to(state, &mut tx, tenant, &kept, now).await?;
        }
    }
    tx.commit().await?;
    if effects.terminate {
        // The subscription ended: the termination flow starts (export window, then deletion).
        dbp::schedule_termination(&state.db, tenant, now + TERMINATION_GRACE, now).await?;
    }
    Ok(outcome)
}

#[derive(Default)]
struct Effects {
    /// The customer linked to the tenant by this event.
    linked: Option<String>,
    terminate: bool,
}

/// What a subscription status means for the tenant.
fn status_for(
    stripe_status: &str,
    current: &dbb::Billing,
    now: OffsetDateTime,
) -> (String, Option<OffsetDateTime>) {
    let (s, grace) = match stripe_status {
        "active" | "trialing" => ("active", None),
        "past_due" | "unpaid" => ("past_due", current.grace_until.or(Some(now + GRACE))),
        "canceled" | "incomplete_expired" => ("canceled", None),
        // Limited access (drafting pauses), nothing lost: a paused trial waiting for a
        // payment method, a first payment that needs action.
        "paused" => ("paused", None),
        "incomplete" => ("incomplete", None),
        _ => (current.billing_status.as_str(), current.grace_until),
    };
    (s.to_owned(), grace)
}

async fn apply_to(
    state: &Billing,
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    inc: &Incoming,
    now: OffsetDateTime,
) -> anyhow::Result<(Applied, Effects)> {
    let mut effects = Effects::default();
    let Some(current) = dbb::get(tx, tenant).await? else {
        return Ok((Applied::Ignored, effects));
    };
    let kind = inc.kind.as_str();
    let state_event = matches!(
        kind,
        "checkout.session.completed"
            | "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.paused"
            | "customer.subscription.resumed"
            | "customer.subscription.deleted"
            | "invoice.paid"
            | "invoice.payment_succeeded"
            | "invoice.payment_failed"
    );
    if !state_event {
        return Ok((Applied::Ignored, effects));
    }
    // Same subscription as the stored one (or one side unknown).
    let same_sub = match (&inc.subscription, &current.stripe_subscription_id) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let older = current.stripe_event_at.is_some_and(|at| inc.created < at);
    let ended = current.billing_status == "canceled";
    let ends = kind == "customer.subscription.deleted"
        || matches!(
            inc.status.as_deref(),
            Some("canceled" | "incomplete_expired")
        );
    let stale = if same_sub {
        if ended {
            // A deleted subscription stays deleted: only a new checkout revives the tenant.
            kind != "checkout.session.completed" || older
        } else {
            // History. The deletion itself is final whenever it arrives.
            older && kind != "customer.subscription.deleted"
        }
    } else {
        // Another (old) subscription ending does not end the current one, and no invoice
        // revives an ended tenant: only a new subscription does.
        ends || (ended && kind.starts_with("invoice."))
    };
    if stale {
        tracing::info!(event = %inc.kind, "stale Stripe event recorded, not applied");
        return Ok((Applied::Stale, effects));
    }
    let mut detail = json!({ "event": kind, "created": inc.created });
    // A status that needs the tenant's owners, newly entered by this event.
    let mut problem: Option<String> = None;
    match kind {
        "checkout.session.completed" => {
            if let Some(c) = &inc.customer {
                dbb::link_customer(tx, tenant, c, inc.subscription.as_deref()).await?;
                effects.linked = Some(c.clone());
            }
            dbb::set_status(tx, tenant, "active", None).await?;
        }
        "customer.subscription.deleted" => {
            dbb::set_status(tx, tenant, "canceled", None).await?;
            effects.terminate = true;
        }
        k if k.starts_with("customer.subscription.") => {
            if let Some(c) = &inc.customer {
                dbb::link_customer(tx, tenant, c, inc.subscription.as_deref()).await?;
                effects.linked = Some(c.clone());
            }
            if let Some(plan) = inc.price.as_deref().and_then(|p| plan_for_price(state, p)) {
                dbb::set_plan(tx, tenant, plan.id, inc.subscription.as_deref()).await?;
                detail["plan"] = json!(plan.id);
            }
            let (status, grace) = status_for(inc.status.as_deref().unwrap_or(""), &current, now);
            dbb::set_status(tx, tenant, &status, grace).await?;
            if matches!(status.as_str(), "past_due" | "paused" | "incomplete")
                && status != current.billing_status
            {
                problem = Some(status.clone());
            }
            if status == "canceled" {
                effects.terminate = true;
            }
        }
        "invoice.paid" | "invoice.payment_succeeded" => {
            // Payment settles a past-due or incomplete subscription; it does not resume a
            // paused one (Stripe says so with customer.subscription.resumed).
            if current.billing_status != "paused" {
                dbb::set_status(tx, tenant, "active", None).await?;
            }
        }
        "invoice.payment_failed" => {
            let grace = current.grace_until.unwrap_or(now + GRACE);
            dbb::set_status(tx, tenant, "past_due", Some(grace)).await?;
            if current.billing_status != "past_due" {
                problem = Some("past_due".into());
            }
        }
        _ => return Ok((Applied::Ignored, effects)),
    }
    dbb::set_event_at(tx, tenant, inc.created).await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    audit::record(
        tx,
        tenant,
        &Actor {
            id: None,
            label: "stripe".into(),
        },
        "billing.event",
        &inc.id,
        detail,
        now,
    )
    .await?;
    if let Some(status) = problem
        && state.mail_on
    {
        crate::mail::notify_billing_problem(tx, tenant, &inc.id, &status, now).await?;
    }
    Ok((Applied::Handled, effects))
}

/// Whether the tenant's subscription leaves drafting paused (paused or incomplete: limited
/// access until Stripe says it is active again; messages are stored all the same).
pub(crate) fn drafting_paused(billing_status: &str) -> bool {
    matches!(billing_status, "paused" | "incomplete")
}

/// What the plan's limits look like this period (the billing page and banners).
pub(crate) struct Usage {
    pub(crate) drafts: i64,
    pub(crate) draft_limit: u32,
    pub(crate) members: i64,
    pub(crate) channels: i64,
}

pub(crate) fn month_start(now: OffsetDateTime) -> time::Date {
    now.date().replace_day(1).unwrap_or(now.date())
}
