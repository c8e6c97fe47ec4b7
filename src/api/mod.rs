//! The tenant API: `/api/v1/…`, JSON in and out, authenticated by API tokens.
//!
//! - `tokens` — minting, hashing, creating and revoking tokens (`sgm_<id>_<secret>`).
//! - `scopes` — what a token may do.
//! - `auth` — the route middleware: bearer token → [`auth::ApiCtx`], rate limit per token,
//!   one audit entry per call.
//! - `problem` — errors as RFC 9457 problem details.
//! - one file per resource (`conversations`, `contacts`, `drafts`, `knowledge`, `privacy`), calling
//!   the same services the portal does, always inside `db::begin_tenant` (RLS).
//! - `openapi` — the OpenAPI 3.1 document generated from the handlers (utoipa) and the
//!   docs page that lists it.
//!
//! - `portal` — the admins' API page (tokens) and the public docs page.
//!
//! [`router`] is merged outside the session and CSRF layers, [`portal::router`] inside
//! them (`crate::build_app` → `http::build_app_with`). Nothing in `http` depends on this
//! module, so it stays out of the module cycle.

pub(crate) mod auth;
pub(crate) mod contacts;
pub(crate) mod conversations;
pub(crate) mod drafts;
pub(crate) mod knowledge;
pub(crate) mod openapi;
pub(crate) mod portal;
pub(crate) mod privacy;
pub(crate) mod problem;
pub(crate) mod scopes;
pub(crate) mod tokens;

use axum::response::IntoResponse;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Request},
    http::StatusCode,
    middleware::from_fn_with_state,
    routing::{get, post},
};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};

use crate::wiring::App;
use crate::{api::problem::ApiError, state::AppState};

/// JSON bodies: knowledge entries are the largest (8,000 characters of body).
pub(crate) const BODY_LIMIT: usize = 256 * 1024;

pub(crate) fn router(state: &AppState) -> Router<App> {
    let authed = Router::new()
        .route("/api/v1/conversations", get(conversations::list))
        .route("/api/v1/conversations/{id}", get(conversations::show))
        .route(
            "/api/v1/conversations/{id}/messages",
            post(conversations::send),
        )
        .route(
            "/api/v1/contacts/{id}",
            get(contacts::show).patch(contacts::update),
        )
        .route("/api/v1/drafts", get(drafts::list))
        .route("/api/v1/drafts/{id}/approve", post(drafts::approve))
        .route("/api/v1/drafts/{id}/reject", post(drafts::reject))
        .route(
            "/api/v1/knowledge",
            get(knowledge::list).post(knowledge::create),
        )
        .route(
            "/api/v1/knowledge/{id}",
            get(knowledge::show)
                .put(knowledge::update)
                .delete(knowledge::delete),
        )
        .route("/api/v1/privacy/requests", post(privacy::open))
        .route("/api/v1/privacy/requests/{id}", get(privacy::show))
        .route("/api/v1/privacy/requests/{id}/export", get(privacy::export))
        .route_layer(from_fn_with_state(state.clone(), auth::require_token));
    Router::new()
        .merge(authed)
        .route("/api/v1/openapi.json", get(openapi::spec))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.limits.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
}

/// A JSON body. Unreadable, malformed or mistyped JSON is a 4xx problem (warned about,
/// never echoed), and a NUL character anywhere is refused (PostgreSQL text can't hold one).
pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "api.problem.too_large")
            } else {
                ApiError::bad_request("api.problem.body_unreadable")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("api.problem.invalid_json"))?;
    if text.contains('\0') || text.to_ascii_lowercase().contains("\\u0000") {
        return Err(ApiError::bad_request("api.problem.nul"));
    }
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable("api.problem.invalid_fields")
        } else {
            ApiError::bad_request("api.problem.invalid_json")
        }
    })
}

/// RFC 3339 timestamps in every response.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Keyset cursor "<unix nanos>_<uuid>" (the inbox's own format).
pub(crate) fn parse_cursor(c: &str) -> Result<(OffsetDateTime, uuid::Uuid), ApiError> {
    let bad = || ApiError::bad_request("api.problem.invalid_cursor");
    let (t, id) = c.split_once('_').ok_or_else(bad)?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(t.parse().map_err(|_| bad())?)
        .map_err(|_| bad())?;
    Ok((t, uuid::Uuid::parse_str(id).map_err(|_| bad())?))
}

pub(crate) fn cursor(t: OffsetDateTime, id: uuid::Uuid) -> String {
    format!("{}_{id}", t.unix_timestamp_nanos())
}

/// A panic is logged (without its payload) and becomes a 500 problem.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    tracing::error!("api handler panicked");
    ApiError::App(crate::error::AppError::Internal(anyhow::anyhow!(
        "handler panicked"
    )))
    .into_response()
}
