//! SigmaAI: a multi-tenant WhatsApp AI automation platform.
//!
//! `serve` runs the portal and webhooks, `worker` runs background jobs, `all` runs both.
//! See README.md for the architecture.

// A `pub` item that no path outside its private module reaches is `pub(crate)` or narrower;
// `clippy -D warnings` (CI) makes this an error.
#![warn(unreachable_pub)]

/// mimalloc for every binary linking us: under many concurrent requests glibc's allocator
/// spent a measurable share of the ingest benchmark's CPU in arena locks and consolidation.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing). With them
/// on, the kernel backed partly used heap and stack regions with 2 MiB pages: several MiB of
/// an idle server's resident memory that nothing used (issue #22). Call it first thing in
/// `main`, before threads start; children inherit it.
pub fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

pub mod accounts;
pub mod ai;
pub mod api;
pub mod auth;
pub mod billing;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod gateway;
pub mod http;
pub mod i18n;
pub mod jobs;
pub mod live;
pub mod mail;
pub mod mcp;
pub mod messaging;
pub mod metrics;
pub mod outgoing;
pub mod privacy;
pub mod redis;
pub mod review;
pub mod shutdown;
pub mod smtp;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod wiring;

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

/// The whole application: the portal, webhooks and the tenant API.
pub fn build_app(app: wiring::App) -> axum::Router {
    build_app_with(app, axum::Router::new())
}

/// The application with extra page routes under the same middleware (tests use it to force
/// errors).
pub fn build_app_with(app: wiring::App, extra: axum::Router<wiring::App>) -> axum::Router {
    let api = api::router(&app.state);
    http::build_app_with(app, api::portal::router().merge(extra), api)
}

use crate::{
    clock::{SharedClock, SystemClock},
    config::Config,
    shutdown::Shutdown,
    state::AppState,
};

/// Connects to PostgreSQL and the key store (as the application role) and Redis, loads the
/// master key, and builds the shared state.
pub async fn connect(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
    let db = db::connect_app(&config).await?;
    let redis = redis::Redis::new(
        config.redis_url.as_ref().map(|u| u.expose_secret()),
        &config.redis_prefix,
    )
    .context("REDIS_URL is not a valid Redis URL")?;
    if redis.client().is_some() && redis.status().await != redis::RedisStatus::Ok {
        tracing::warn!("Redis is unreachable: serving in degraded mode (stricter local limits)");
    }
    let keys = crypto::Keyring::connect(&config, redis.clone(), clock.clone()).await?;
    // Bad object-store settings stop start-up here, with the reason.
    let store = storage::Store::from_config(&config)?;
    tracing::info!(kind = store.kind, "media store");
    Ok(AppState::new(config, db, redis, clock, keys))
}

pub async fn connect_system(config: Config) -> anyhow::Result<AppState> {
    connect(config, Arc::new(SystemClock)).await
}

/// Serves HTTP until `shutdown` fires, then finishes in-flight requests.
pub async fn serve(state: AppState, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = bind(&state.config).await?;
    serve_on(listener, wiring::App::new(state), shutdown).await
}

/// Takes the configured port, or says why not and how to pick another.
pub async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = config.bind;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("could not listen on {addr} (is something else using it? set SIGMAAI_BIND to another address)")
    })?;
    tracing::info!(%addr, public_url = %config.public_url, "serving");
    Ok(listener)
}

/// Serves `app` on `listener`; starts this instance's live-update listeners first (the
/// open pages' streams hear every instance's events through them).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: wiring::App,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    app.state.live.start();
    let limits = app.state.config.limits.clone();
    // Live-update streams never finish on their own: end them when shutdown begins, or
    // they hold every restart for the whole drain period.
    let (live, stopping) = (app.state.live.clone(), shutdown.clone());
    tokio::spawn(async move {
        stopping.wait().await;
        live.end_streams();
    });
    http::server::serve(listener, build_app(app), &limits, shutdown).await
}
