//! Gateway webhooks: verify over the raw bytes → parse → one committed transaction → 2xx.
//!
//! Status codes follow what the gateways do with them: a bad credential or an unparseable
//! body is a 4xx (retrying won't help; nothing is stored); a failure on our side is a 5xx,
//! which both gateways retry, and since nothing was committed the retry stores it once.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::{
    db::{self, channels::Channel},
    error::{AppError, AppResult},
    gateway::{evolution, meta},
    messaging::{channel, ingest},
    wiring::App,
};

/// Evolution can post media inline as base64 (videos included).
pub(crate) const EVOLUTION_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Meta payloads are at most a few megabytes.
pub(crate) const META_BODY_LIMIT: usize = 3 * 1024 * 1024;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route(
            "/webhooks/evolution/{route}",
            post(evolution_hook).layer(DefaultBodyLimit::max(EVOLUTION_BODY_LIMIT)),
        )
        // With "webhook by events" on, Evolution appends the event name to the URL.
        .route(
            "/webhooks/evolution/{route}/{event}",
            post(evolution_hook_by_event).layer(DefaultBodyLimit::max(EVOLUTION_BODY_LIMIT)),
        )
        .route(
            "/webhooks/meta/{route}",
            axum::routing::get(meta_handshake)
                .post(meta_hook)
                .layer(DefaultBodyLimit::max(META_BODY_LIMIT)),
        )
}

/// The channel a webhook URL names, if it is of the expected kind.
async fn channel_for(state: &App, route: &str, kind: &str) -> AppResult<Channel> {
    let route_id = Uuid::parse_str(route).map_err(|_| AppError::NotFound)?;
    let c = match state.routes.get(route_id) {
        Some(c) => c,
        None => {
            let r = db::channels::route(&state.db, route_id)
                .await?
                .ok_or(AppError::NotFound)?;
            let mut tx = db::begin_tenant(&state.db, r.tenant_id).await?;
            let c = db::channels::get(&mut tx, r.channel_id)
                .await?
                .ok_or(AppError::NotFound)?;
            tx.commit().await?;
            state.routes.put(c.clone());
            c
        }
    };
    if c.kind != kind {
        return Err(AppError::NotFound);
    }
    Ok(c)
}

/// Past the ingest queue's bound, a flooding tenant's delivery is refused before anything
/// reads it (503 + `Retry-After`: the gateway retries; see `GroupCommit::admit`).
fn admit(state: &App, channel: &Channel) -> AppResult<()> {
    state
        .ingest
        .admit(channel.tenant_id, state.messaging.config.ingest())
        .map_err(|o| AppError::Unavailable {
            retry_after_secs: o.retry_after_secs,
        })
}

fn reject(status: StatusCode, error: &'static str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn accept(
    state: &App,
    channel: &Channel,
    events: Vec<crate::gateway::InboundEvent>,
) -> AppResult<Response> {
    let out = ingest::ingest(&state.messaging, &state.ingest, channel, events)
        .await
        .map_err(AppError::Internal)?;
    Ok((
        StatusCode::OK,
        Json(json!({ "stored": out.stored, "duplicates": out.duplicates, "statuses": out.statuses, "changes": out.changes, "ignored": out.ignored })),
    )
        .into_response())
}

async fn evolution_hook(
    State(state): State<App>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    evolution_inner(&state, &route, &headers, &body).await
}

async fn evolution_hook_by_event(
    State(state): State<App>,
    Path((route, _event)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    evolution_inner(&state, &route, &headers, &body).await
}

async fn evolution_inner(
    state: &App,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> AppResult<Response> {
    let channel = channel_for(state, route, "evolution").await?;
    admit(state, &channel)?;
    let secret = channel::secrets(&state.messaging, &channel)
        .await?
        .webhook_secret
        .unwrap_or_default();
    if evolution::verify_at(headers, &secret, state.now()).is_none() {
        tracing::warn!(channel = %channel.id, "evolution webhook with a wrong secret refused");
        return Ok(reject(StatusCode::UNAUTHORIZED, "unauthorized"));
    }
    let events = match evolution::parse_webhook(body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(channel = %channel.id, error = %e, "unparseable evolution webhook refused");
            return Ok(reject(StatusCode::BAD_REQUEST, "malformed"));
        }
    };
    // One Evolution server hosts many instances, perhaps of several tenants: a delivery
    // about another instance must not land in this channel, secret or not. 403 is one of
    // the codes Evolution does not retry.
    let ours = channel
        .config
        .get("instance")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if events
        .iter()
        .any(|e| e.account().is_some_and(|a| a != ours))
    {
        tracing::warn!(channel = %channel.id, "evolution webhook for another instance refused");
        return Ok(reject(StatusCode::FORBIDDEN, "wrong instance"));
    }
    accept(state, &channel, events).await
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription check: echo the challenge if the verify token is ours.
async fn meta_handshake(
    State(state): State<App>,
    Path(route): Path<String>,
    Query(q): Query<Handshake>,
) -> AppResult<Response> {
    let channel = channel_for(&state, &route, "meta").await?;
    let expected = channel::secrets(&state.messaging, &channel)
        .await?
        .webhook_secret
        .unwrap_or_default();
    match meta::verify_handshake(
        q.mode.as_deref(),
        q.token.as_deref(),
        q.challenge.as_deref(),
        &expected,
    ) {
        Some(challenge) => Ok((StatusCode::OK, challenge).into_response()),
        None => Ok(reject(StatusCode::FORBIDDEN, "verification failed")),
    }
}

async fn meta_hook(
    State(state): State<App>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let channel = channel_for(&state, &route, "meta").await?;
    admit(&state, &channel)?;
    let app_secret = channel::meta_app_secret(&state.messaging, &channel).await?;
    let signature = headers
        .get(meta::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !meta::verify_signature(channel::expose(&app_secret).as_bytes(), &body, signature) {
        tracing::warn!(channel = %channel.id, "meta webhook with a bad signature refused");
        return Ok(reject(StatusCode::UNAUTHORIZED, "bad signature"));
    }
    let events = match meta::parse_webhook(&body) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(channel = %channel.id, error = %e, "unparseable meta webhook refused");
            return Ok(reject(StatusCode::BAD_REQUEST, "malformed"));
        }
    };
    // A shared Meta app can notify about several numbers: keep only this channel's.
    let ours = channel
        .config
        .get("phone_number_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let events = events
        .into_iter()
        .filter(|e| e.account().is_none_or(|a| a == ours))
        .collect();
    accept(&state, &channel, events).await
}
