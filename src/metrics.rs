//! Prometheus metrics (`metrics` + `metrics-exporter-prometheus`), served on their own
//! listener (`SIGMAAI_METRICS_BIND`; unset: none), never on the public port.
//!
//! Recorded where things happen (request counts and latency by matched route in
//! `http::middleware::record_metrics`, ingest and group-commit batch sizes, job runs and
//! failures, AI latency and tokens, sends by gateway and outcome, SSE connections, e-mail);
//! what lives in the database (job queue depth and age by kind) and the pool's use are read
//! when the endpoint is scraped. Labels are bounded sets (matched route templates, kinds,
//! providers, gateways, outcomes): never ids, paths, addresses or text.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{shutdown::Shutdown, state::AppState};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds buckets for request, job and AI latency histograms.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Deliveries per group-commit transaction (at most 128).
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Installs the process-wide recorder once (later calls return the same handle). Until it
/// is installed every `metrics::` call is a no-op.
pub(crate) fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("sigmaai_group_commit_batch_size".into()),
                    BATCH,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed");
        }
        handle
    })
}

/// The metrics listener's router: `GET /metrics`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

/// Serves `/metrics` on `listener` until shutdown.
pub(crate) async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    install();
    let handle = install().clone();
    let upkeep_stop = shutdown.clone();
    // Histograms are drained into their buckets by the upkeep; between scrapes too.
    tokio::spawn(async move {
        while !upkeep_stop.is_triggered() {
            handle.run_upkeep();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = upkeep_stop.wait() => {}
            }
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await?;
    Ok(())
}

/// Starts the metrics listener when `SIGMAAI_METRICS_BIND` is set.
pub(crate) async fn spawn_if_configured(
    state: &AppState,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let Some(addr) = state.config.metrics_bind else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("could not listen on {addr} for metrics (SIGMAAI_METRICS_BIND): {e}")
    })?;
    tracing::info!(%addr, "metrics listener");
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = serve_on(listener, state, shutdown).await {
            tracing::error!(error = format!("{e:#}"), "metrics listener failed");
        }
    });
    Ok(())
}

/// Job kinds seen at earlier scrapes, so a kind whose queue emptied reads 0, not its last
/// value.
static SEEN_KINDS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = refresh_gauges(&state).await {
        tracing::warn!(error = %e, "metrics: could not read the job queue");
    }
    let handle = install();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

async fn refresh_gauges(state: &AppState) -> sqlx::Result<()> {
    let pool = &state.db;
    let size = pool.size();
    let idle = pool.num_idle() as u32;
    metrics::gauge!("sigmaai_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("sigmaai_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("sigmaai_db_pool_max_connections")
        .set(f64::from(pool.options().get_max_connections()));

    let now = state.now();
    let rows: Vec<(String, i64, i64, f64)> = sqlx::query_as(
        r#"SELECT kind,
                  count(*),
                  count(*) FILTER (WHERE run_at <= $1),
                  COALESCE(EXTRACT(EPOCH FROM ($1 - min(run_at) FILTER (WHERE run_at <= $1))), 0)::float8
           FROM jobs WHERE state = 'pending' GROUP BY kind"#,
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut seen = SEEN_KINDS.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashSet::new);
    let present: HashSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    for gone in seen.difference(&present) {
        let kind = gone.clone();
        metrics::gauge!("sigmaai_jobs_pending", "kind" => kind.clone()).set(0.0);
        metrics::gauge!("sigmaai_jobs_due", "kind" => kind.clone()).set(0.0);
        metrics::gauge!("sigmaai_jobs_oldest_due_age_seconds", "kind" => kind).set(0.0);
    }
    for (kind, pending, due, age) in rows {
        metrics::gauge!("sigmaai_jobs_pending", "kind" => kind.clone()).set(pending as f64);
        metrics::gauge!("sigmaai_jobs_due", "kind" => kind.clone()).set(due as f64);
        metrics::gauge!("sigmaai_jobs_oldest_due_age_seconds", "kind" => kind.clone())
            .set(age.max(0.0));
        seen.insert(kind);
    }
    Ok(())
}

/// Counts an open live-update stream while it lives.
pub(crate) struct SseGuard;

impl SseGuard {
    pub(crate) fn open() -> SseGuard {
        metrics::gauge!("sigmaai_sse_connections").increment(1.0);
        SseGuard
    }
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        metrics::gauge!("sigmaai_sse_connections").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    /// Every metric the shipped dashboard queries is one the code records (a renamed
    /// metric would leave a panel silently empty).
    #[test]
    fn the_dashboard_only_queries_metrics_we_record() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dash = std::fs::read_to_string(root.join("docs/ops/grafana-dashboard.json")).unwrap();
        let mut src = String::new();
        let mut stack = vec![root.join("src")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    src.push_str(&std::fs::read_to_string(p).unwrap_or_default());
                }
            }
        }
        let mut names: Vec<&str> = dash
            .match_indices("sigmaai_")
            .map(|(i, _)| {
                let rest = &dash[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|n| *n != "sigmaai_overview")
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() >= 10, "{names:?}");
        for n in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            assert!(
                src.contains(&format!("\"{base}\"")),
                "the dashboard queries {n}, which nothing records"
            );
        }
    }
}
