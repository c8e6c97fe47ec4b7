//! Outgoing webhooks' I/O (the rules and the signing are in `crate::outgoing`): adding an
//! endpoint (URL through the SSRF guard, secret sealed under the tenant key) and the
//! `webhook_deliver` job, one attempt at one delivery at a time.

use std::time::Instant;

use serde_json::{Value, json};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::Messaging;
use crate::domain::events::DeliveryState;
use crate::{
    crypto::Aad,
    db::{
        self, ai as db_ai,
        audit::Actor,
        jobs::{BackgroundJob, JobMeta, Outcome},
        messages,
        outgoing::{self as db_out, AttemptResult, NewEndpoint, WebhookDeliver},
    },
    domain::events,
    mcp::guard::{CONNECT_TIMEOUT, Guard, REQUEST_TIMEOUT, pinned},
    outgoing::{self, signing},
};

impl BackgroundJob for WebhookDeliver {
    const KIND: &'static str = db_out::WEBHOOK_DELIVER;
    type Context = Messaging;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("webhook:{}", self.delivery_id))
    }

    async fn run(self, state: &Messaging, _: &JobMeta) -> anyhow::Result<Outcome> {
        Ok(match run(state, self.tenant_id, self.delivery_id).await? {
            Some(at) => Outcome::Later(at),
            None => Outcome::Done,
        })
    }
}

pub(crate) fn secret_aad(endpoint_id: Uuid) -> Aad<'static> {
    Aad::new("webhook_endpoints", "secret", endpoint_id)
}

/// The SSRF guard for endpoints: https on the usual ports to public addresses only in
/// production; plain http to loopback in development and tests (the same switch as MCP).
pub(crate) fn guard(state: &Messaging) -> Guard {
    state.config.guard()
}

/// Checks an endpoint URL as typed (at save time; delivery checks again).
pub(crate) async fn check_url(
    state: &Messaging,
    tenant_id: Uuid,
    raw: &str,
) -> Result<Url, &'static str> {
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

pub(crate) struct NewEndpointInput {
    pub(crate) url: String,
    pub(crate) description: String,
    pub(crate) events: Vec<String>,
    pub(crate) include_text: bool,
}

/// Validates and stores an endpoint. Returns its id and the signing secret, to show once.
pub(crate) async fn add_endpoint(
    state: &Messaging,
    tenant_id: Uuid,
    actor: &Actor,
    input: &NewEndpointInput,
) -> Result<(Uuid, zeroize::Zeroizing<String>), &'static str> {
    let description = input.description.trim();
    if description.chars().count() > 200 {
        return Err("webhooks.description.long");
    }
    let events = outgoing::parse_events(&input.events)?;
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
        let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
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
        tx.audit(
            "webhook.endpoint_added",
            &id.to_string(),
            json!({ "host": url.host_str(), "events": events, "include_text": input.include_text }),
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

/// One attempt. `Ok(Some(at))`: try again at `at` (the job defers itself); `Ok(None)`: done.
async fn run(
    state: &Messaging,
    tenant_id: Uuid,
    delivery_id: Uuid,
) -> anyhow::Result<Option<OffsetDateTime>> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(d) = db_out::delivery(&mut tx, delivery_id).await? else {
        return Ok(None); // its endpoint was deleted
    };
    if DeliveryState::parse(&d.state) != Some(DeliveryState::Pending) {
        return Ok(None);
    }
    if let Some(at) = d.next_attempt_at
        && at > now
    {
        return Ok(Some(at));
    }
    let Some(ep) = db_out::endpoint(&mut tx, d.endpoint_id).await? else {
        return Ok(None);
    };
    if !ep.enabled {
        db_out::give_up(&mut tx, d.id, "endpoint disabled", now).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let mut data = d.data.clone();
    if let Value::Object(m) = &mut data {
        m.insert(
            "tenant".into(),
            db_out::tenant_slug(&mut tx, tenant_id).await?.into(),
        );
    }
    // Message text only on the tenant's opt-in, opened now from the sealed message (an
    // erased contact's message is gone or unreadable, and then no text goes out; nor for a
    // restricted contact).
    let mut text_of = None;
    if ep.include_text && events::carries_message(&d.event_type) {
        let message_id = data
            .get("message_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        if let Some(m) = match message_id {
            Some(id) => messages::get(&mut tx, id).await?,
            None => None,
        } && let Some(sealed) = &m.body_sealed
            // A restricted contact's data goes nowhere new (the processing stopped).
            && db::contacts::get(&mut tx, m.contact_id)
                .await?
                .is_some_and(|c| c.restricted_at.is_none() && c.erased_at.is_none())
            && let Ok(text) = state
                .keys
                .open_str(
                    tenant_id,
                    m.contact_id,
                    Aad::new("messages", "body", m.id),
                    sealed,
                )
                .await
            && let Value::Object(o) = &mut data
        {
            o.insert("text".into(), text.into());
            text_of = Some(m.contact_id);
        }
    }
    let secret = state
        .keys
        .open_tenant_str(tenant_id, secret_aad(ep.id), &ep.secret_sealed)
        .await?;
    tx.commit().await?;
    let key =
        signing::key_of(&secret).ok_or_else(|| anyhow::anyhow!("unreadable signing secret"))?;
    drop(secret);

    let body = outgoing::body(&d.event_type, d.occurred_at, &data);
    let msg_id = signing::message_id(d.id);
    let timestamp = now.unix_timestamp();
    let signature = signing::sign(&key, &msg_id, timestamp, &body);
    let started = Instant::now();
    let sent = post(state, &ep.url, &msg_id, timestamp, &signature, body).await;
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let (status, error) = match &sent {
        Ok(s) => (Some(i32::from(*s)), None),
        Err(reason) => (None, Some(*reason)),
    };
    let ok = matches!(sent, Ok(s) if (200..300).contains(&s));
    let now = state.now();
    let retry_at = if ok {
        None
    } else {
        outgoing::retry_at(d.attempts, now)
    };
    let result = if let Some(s) = status {
        metrics::counter!("sigmaai_webhook_attempts_total", "outcome" => if ok { "ok" } else { "status" })
            .increment(1);
        format!("status {s}")
    } else {
        metrics::counter!("sigmaai_webhook_attempts_total", "outcome" => "error").increment(1);
        error.unwrap_or_default().to_owned()
    };
    tracing::info!(endpoint = %ep.id, delivery = %d.id, attempt = d.attempts + 1, result, duration_ms, "webhook attempt");

    let mut tx = db::TenantTx::begin(&state.db, tenant_id, Actor::system(), now).await?;
    db_out::record_attempt(
        &mut tx,
        tenant_id,
        &d,
        &AttemptResult {
            status,
            error,
            duration_ms,
        },
        ok,
        retry_at,
        now,
    )
    .await?;
    if ok && let Some(contact_id) = text_of {
        db_ai::record_recipient(
            &mut tx,
            tenant_id,
            contact_id,
            "webhook",
            &outgoing::recipient_name(&ep.url),
            &d.event_type,
            now,
        )
        .await?;
    }
    let give_up = !ok && retry_at.is_none();
    if give_up {
        db_out::set_enabled(&mut tx, ep.id, false, Some("failing"), now).await?;
        tx.audit(
            "webhook.endpoint_disabled",
            &ep.id.to_string(),
            json!({ "reason": "failing", "attempts": d.attempts + 1, "delivery": d.id }),
        )
        .await?;
        tracing::warn!(tenant = %tenant_id, endpoint = %ep.id, "webhook endpoint disabled after a day of failed deliveries");
    }
    tx.commit().await?;
    Ok(retry_at)
}

/// One POST through the SSRF guard (checked again now: DNS may have changed since the
/// endpoint was saved), pinned to the vetted addresses, no redirects, 10 s cap. The status
/// code, or a short reason without the URL.
async fn post(
    state: &Messaging,
    url: &str,
    msg_id: &str,
    timestamp: i64,
    signature: &str,
    body: Vec<u8>,
) -> Result<u16, &'static str> {
    let vetted = match guard(state).check(url).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(reason = %e, "webhook destination refused at delivery");
            return Err("destination not allowed");
        }
    };
    let client = pinned(&vetted)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("SigmaAI-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|_| "client error")?;
    let resp = client
        .post(vetted.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            }
        })?;
    // The answer's body is not read: only its status counts.
    Ok(resp.status().as_u16())
}
