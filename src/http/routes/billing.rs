//! The billing page (owners): plan, usage against limits, invoices, Checkout and the
//! customer portal; and the Stripe webhook.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use crate::wiring::App;
use crate::{
    billing::{self, Billing, stripe},
    db::{self, ai as db_ai, billing as dbb},
    domain::plans::{self, Plan},
    error::{AppError, AppResult},
    http::{
        extract::{Owner, PageCtx, RequireRole, TenantCtx},
        middleware::redirect_with_flash,
        routes::portal::Shell,
    },
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/billing", get(page))
        .route("/t/{slug}/billing/checkout", post(checkout))
        .route("/t/{slug}/billing/portal", post(portal))
}

/// Stripe's webhook: authenticated by its signature, so it sits with the gateway webhooks,
/// outside the portal's session and CSRF layers.
pub(crate) fn webhook_router() -> Router<App> {
    Router::new().route(
        "/webhooks/stripe",
        post(webhook).layer(DefaultBodyLimit::max(512 * 1024)),
    )
}

pub(crate) struct InvoiceRow {
    pub(crate) number: String,
    pub(crate) amount: String,
    pub(crate) status: String,
    pub(crate) url: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "billing/index.html")]
pub(crate) struct BillingPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) plan: &'static Plan,
    pub(crate) plans: &'static [Plan],
    pub(crate) status: String,
    pub(crate) configured: bool,
    pub(crate) has_customer: bool,
    pub(crate) usage: billing::Usage,
    pub(crate) invoices: Vec<InvoiceRow>,
    /// Names this page's checkout action (its Stripe idempotency key is derived from it).
    pub(crate) action_id: String,
}

async fn page(
    State(state): State<AppState>,
    State(bill): State<Billing>,
    ctx: PageCtx,
    t: RequireRole<Owner>,
) -> AppResult<BillingPage> {
    let tenant = t.id();
    let mut conn = state.db.acquire().await?;
    let b = dbb::get(&mut conn, tenant)
        .await?
        .ok_or(AppError::NotFound)?;
    drop(conn);
    let plan = plans::by_id(&b.plan).unwrap_or(&plans::PLANS[0]);
    let usage = usage(&state, &t, plan).await?;
    let invoices = match (billing::client(&bill), b.stripe_customer_id.as_deref()) {
        (Some(c), Some(customer)) => c
            .invoices(customer)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|i| InvoiceRow {
                number: i["number"].as_str().unwrap_or("").to_owned(),
                amount: format!(
                    "{:.2} {}",
                    i["amount_due"].as_i64().unwrap_or(0) as f64 / 100.0,
                    i["currency"].as_str().unwrap_or("").to_uppercase()
                ),
                status: i["status"].as_str().unwrap_or("").to_owned(),
                url: i["hosted_invoice_url"]
                    .as_str()
                    .filter(|u| u.starts_with("https://"))
                    .unwrap_or("")
                    .to_owned(),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(BillingPage {
        ctx,
        shell: Shell::load(&state, &t, "billing").await?,
        plan,
        plans: plans::PLANS,
        status: b.billing_status,
        configured: billing::configured(&bill),
        has_customer: b.stripe_customer_id.is_some(),
        usage,
        invoices,
        action_id: uuid::Uuid::new_v4().to_string(),
    })
}

pub(crate) async fn usage(
    state: &AppState,
    t: &TenantCtx,
    plan: &Plan,
) -> AppResult<billing::Usage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let drafts = db_ai::drafts_since(&mut tx, billing::month_start(state.now())).await?;
    let members = db::memberships::member_count(&mut tx).await?;
    let channels = db::channels::count(&mut tx).await?;
    tx.commit().await?;
    Ok(billing::Usage {
        drafts,
        draft_limit: plan.ai_messages_per_month,
        members,
        channels,
    })
}

#[derive(Deserialize)]
pub(crate) struct CheckoutForm {
    plan: String,
    /// From the page; absent (an old page): this submission is its own action.
    #[serde(default)]
    action_id: Option<String>,
}

/// Sends the owner to Stripe Checkout for the chosen plan.
async fn checkout(
    State(state): State<AppState>,
    State(bill): State<Billing>,
    t: RequireRole<Owner>,
    Form(f): Form<CheckoutForm>,
) -> AppResult<Response> {
    let back = format!("/t/{}/billing", t.tenant.slug);
    let Some(client) = billing::client(&bill) else {
        return Ok(redirect_with_flash(&back, false, "billing.not_configured"));
    };
    let plan = plans::by_id(&f.plan).ok_or(AppError::BadRequest("error.bad_request"))?;
    let Some(price) = state.config.stripe_prices.get(plan.id) else {
        return Ok(redirect_with_flash(&back, false, "billing.no_price"));
    };
    let mut conn = state.db.acquire().await?;
    let customer = dbb::get(&mut conn, t.id())
        .await?
        .and_then(|b| b.stripe_customer_id);
    drop(conn);
    let base = state.config.public_url.as_str().trim_end_matches('/');
    let action = f
        .action_id
        .as_deref()
        .and_then(|a| uuid::Uuid::parse_str(a).ok())
        .unwrap_or_else(uuid::Uuid::new_v4);
    let key = stripe::checkout_key(&t.id().to_string(), plan.id, &action.to_string());
    let url = client
        .checkout(
            price,
            &t.id().to_string(),
            customer.as_deref(),
            &format!("{base}{back}?paid=1"),
            &format!("{base}{back}"),
            &key,
        )
        .await;
    match url {
        Ok(u) if u.starts_with("https://") || !state.config.is_production() => {
            Ok(Redirect::to(&u).into_response())
        }
        Ok(_) => Ok(redirect_with_flash(&back, false, "billing.error")),
        Err(e) => {
            tracing::warn!(error = %e, "stripe checkout failed");
            Ok(redirect_with_flash(&back, false, "billing.error"))
        }
    }
}

async fn portal(
    State(state): State<AppState>,
    State(bill): State<Billing>,
    t: RequireRole<Owner>,
) -> AppResult<Response> {
    let back = format!("/t/{}/billing", t.tenant.slug);
    let (Some(client), Some(customer)) = (billing::client(&bill), {
        let mut conn = state.db.acquire().await?;
        dbb::get(&mut conn, t.id())
            .await?
            .and_then(|b| b.stripe_customer_id)
    }) else {
        return Ok(redirect_with_flash(&back, false, "billing.not_configured"));
    };
    let base = state.config.public_url.as_str().trim_end_matches('/');
    match client.portal(&customer, &format!("{base}{back}")).await {
        Ok(u) => Ok(Redirect::to(&u).into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "stripe portal failed");
            Ok(redirect_with_flash(&back, false, "billing.error"))
        }
    }
}

/// Stripe's webhook: signature over the raw body (5-minute tolerance), events applied once.
async fn webhook(
    State(state): State<AppState>,
    State(bill): State<Billing>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let Some(secret) = state.config.stripe_webhook_secret.as_ref() else {
        return Ok((
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "billing not configured" })),
        )
            .into_response());
    };
    let sig = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    if !stripe::verify_signature(
        secret.expose_secret(),
        sig,
        &body,
        state.now().unix_timestamp(),
    ) {
        tracing::warn!("stripe webhook with a bad or stale signature refused");
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "bad signature" })),
        )
            .into_response());
    }
    // Signed is not the same as well-formed: an event must be an object with an id and a
    // type, or it is refused with a 400 (a 500 would have Stripe retry it for days).
    let event = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .filter(|e| e["id"].is_string() && e["type"].is_string());
    let Some(event) = event else {
        tracing::warn!("signed stripe webhook refused: not an event object with id and type");
        return Ok((
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "malformed" })),
        )
            .into_response());
    };
    let applied = billing::apply_event(&bill, &event)
        .await
        .map_err(AppError::Internal)?;
    Ok((
        StatusCode::OK,
        Json(json!({ "result": format!("{applied:?}").to_lowercase() })),
    )
        .into_response())
}
