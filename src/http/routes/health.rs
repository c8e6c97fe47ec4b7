//! Liveness and readiness for load balancers and orchestrators.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::json;

use crate::state::AppState;
use crate::wiring::App;

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// Ready when PostgreSQL answers. Redis is reported but does not make us unready: without it
/// we serve in degraded mode and lose no data.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let postgres = sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(&state.db)
        .await
        .is_ok();
    let redis = state.redis.status().await;
    let status = if postgres {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if postgres { "ready" } else { "unavailable" },
            "postgres": if postgres { "ok" } else { "down" },
            "redis": redis.as_str(),
        })),
    )
}
