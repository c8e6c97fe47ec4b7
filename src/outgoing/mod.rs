//! Outgoing webhooks (issue 21): a tenant subscribes HTTPS endpoints to events, and each
//! event is POSTed to them as JSON signed per the Standard Webhooks specification.
//!
//! - **Emitting** happens where the thing happens, inside its transaction:
//!   `db::outgoing::emit` writes one `webhook_deliveries` row per subscribed endpoint plus a
//!   `webhook_deliver` job, in one statement (one index probe when the tenant has none).
//!   The callers: `messaging::ingest::apply` (`message.received`), `messaging::send::run`
//!   (`message.sent` / `message.failed`), `review::draft` (`draft.created`),
//!   `review::decide::approve` (`draft.approved`), the inbox's assign route
//!   (`conversation.assigned`), `privacy::open_request` / `keyword_request` (`dsr.created`)
//!   and `mail::alerts` (`dsr.due`, once per request).
//! - **Payloads** carry ids and minimal data (`type`, `timestamp`, `data` with the tenant
//!   slug, conversation, message, status). Message text is added at delivery time, opened
//!   from the sealed message, only for endpoints whose tenant opted in; each such delivery
//!   records the endpoint as a recipient of the contact's data (`data_recipients`, kind
//!   `webhook`), so the processing record and erasure requests name it.
//! - **Delivery** (`deliver::run`): the SSRF guard (`mcp::guard`) vets the URL again and pins
//!   the addresses; POST with a 10 s cap; 2xx is done; anything else retries on
//!   [`deliver::RETRY_SCHEDULE`] (about a day). A delivery that used up the schedule disables
//!   its endpoint (`disabled_reason = 'failing'`), which the portal shows as an alert.

pub mod deliver;
pub mod signing;

use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::{
    crypto::Aad,
    db::{
        self,
        audit::{self, Actor},
        outgoing::{self as db_out, NewEndpoint},
    },
    domain::events,
    mcp::guard::Guard,
    state::AppState,
};

pub fn secret_aad(endpoint_id: Uuid) -> Aad<'static> {
    Aad::new("webhook_endpoints", "secret", endpoint_id)
}

/// The SSRF guard for endpoints: https on the usual ports to public addresses only in
/// production; plain http to loopback in development and tests (the same switch as MCP).
pub fn guard(state: &AppState) -> Guard {
    Guard::for_config(&state.config)
}

/// Checks an endpoint URL as typed (at save time; delivery checks again).
pub async fn check_url(state: &AppState, tenant_id: Uuid, raw: &str) -> Result<Url, &'static str> {
    if raw.trim().is_empty() || raw.trim().len() > 2000 {
        return Err("mcp.url.invalid");
    }
    match guard(state).check(raw).await {
        Ok(v) => Ok(v.url),
        Err(e) => {
            tracing::warn!(tenant = %tenant_id, reason = %e, "webhook endpoint URL refused");
            Err(e.message_key())
        }
    }
}

/// The events picked on the form: known names only, each once, in the portal's order.
pub fn parse_events(picked: &[String]) -> Result<Vec<String>, &'static str> {
    if let Some(bad) = picked.iter().find(|e| !events::is_event(e)) {
        tracing::warn!(event = %bad.chars().take(60).collect::<String>(), "unknown webhook event refused");
        return Err("webhooks.events.invalid");
    }
    let out: Vec<String> = events::ALL
        .iter()
        .filter(|e| picked.iter().any(|p| p == *e))
        .map(|e| (*e).to_owned())
        .collect();
    if out.is_empty() {
        return Err("webhooks.events.none");
    }
    Ok(out)
}

pub struct NewEndpointInput {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub include_text: bool,
}

/// Validates and stores an endpoint. Returns its id and the signing secret, to show once.
pub async fn add_endpoint(
    state: &AppState,
    tenant_id: Uuid,
    actor: &Actor,
    input: &NewEndpointInput,
) -> Result<(Uuid, zeroize::Zeroizing<String>), &'static str> {
    let description = input.description.trim();
    if description.chars().count() > 200 {
        return Err("webhooks.description.long");
    }
    let events = parse_events(&input.events)?;
    let url = check_url(state, tenant_id, &input.url).await?;
    let id = Uuid::now_v7();
    let secret = signing::new_secret();
    let sealed = state
        .keys
        .seal_tenant_str(tenant_id, secret_aad(id), &secret)
        .await
        .map_err(|_| "error.internal")?;
    let now = state.now();
    let stored = async {
        let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
        db_out::insert_endpoint(
            &mut tx,
            NewEndpoint {
                id,
                tenant_id,
                url: url.as_str(),
                description,
                events: &events,
                include_text: input.include_text,
                secret_sealed: sealed,
            },
            now,
        )
        .await?;
        // The host only: a path or query may carry a token.
        audit::record(
            &mut tx,
            tenant_id,
            actor,
            "webhook.endpoint_added",
            &id.to_string(),
            json!({ "host": url.host_str(), "events": events, "include_text": input.include_text }),
            now,
        )
        .await?;
        tx.commit().await
    };
    match stored.await {
        Ok(()) => Ok((id, secret)),
        Err(e) => {
            tracing::error!(error = %e, "storing a webhook endpoint failed");
            Err("error.internal")
        }
    }
}

/// Scheme, host and path of an endpoint URL: a query string may carry a token.
pub fn display_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// The name an endpoint goes by as a recipient of personal data: its host.
pub fn recipient_name(raw: &str) -> String {
    Url::parse(raw)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "webhook".into())
}
