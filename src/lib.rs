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
/// on, the kernel backed partly used heap regions with 2 MiB pages: several MiB of an idle
/// server's resident memory that nothing used (issue #22). Called first thing in `cli::main`,
/// before threads start; children inherit it.
pub(crate) fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

pub(crate) mod accounts;
pub(crate) mod ai;
pub(crate) mod api;
pub(crate) mod auth;
#[doc(hidden)]
pub mod bench;
pub(crate) mod billing;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod crypto;
pub(crate) mod db;
pub(crate) mod demo;
pub(crate) mod domain;
pub(crate) mod error;
pub(crate) mod gateway;
pub(crate) mod http;
pub(crate) mod i18n;
pub(crate) mod jobs;
pub(crate) mod live;
pub(crate) mod mail;
pub(crate) mod mcp;
pub(crate) mod messaging;
pub(crate) mod metrics;
pub(crate) mod outgoing;
pub(crate) mod privacy;
pub(crate) mod redis;
pub(crate) mod review;
pub(crate) mod shutdown;
pub(crate) mod smtp;
pub(crate) mod state;
pub(crate) mod storage;
pub(crate) mod telemetry;
pub(crate) mod wiring;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;

/// The whole application: the portal, webhooks and the tenant API.
pub(crate) fn build_app(app: wiring::App) -> axum::Router {
    build_app_with(app, axum::Router::new())
}

/// The application with extra page routes under the same middleware (tests use it to force
/// errors).
pub(crate) fn build_app_with(app: wiring::App, extra: axum::Router<wiring::App>) -> axum::Router {
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
pub(crate) async fn connect(config: Config, clock: SharedClock) -> anyhow::Result<AppState> {
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

pub(crate) async fn connect_system(config: Config) -> anyhow::Result<AppState> {
    connect(config, Arc::new(SystemClock)).await
}

/// Serves HTTP until `shutdown` fires, then finishes in-flight requests.
pub(crate) async fn serve(state: AppState, shutdown: Shutdown) -> anyhow::Result<()> {
    let listener = bind(&state.config).await?;
    serve_on(listener, wiring::App::new(state), shutdown).await
}

/// Takes the configured port, or says why not and how to pick another.
pub(crate) async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = config.bind;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("could not listen on {addr} (is something else using it? set SIGMAAI_BIND to another address)")
    })?;
    tracing::info!(%addr, public_url = %config.public_url, "serving");
    Ok(listener)
}

/// Serves `app` on `listener`; starts this instance's live-update listeners first (the
/// open pages' streams hear every instance's events through them).
pub(crate) async fn serve_on(
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
