//! `/metrics` (issue 20): scraped over HTTP from its own listener and parsed with a
//! Prometheus text-format parser; counters must move after real requests. The recorder is
//! process-wide and tests run side by side, so each check is "moved by at least".

use crate::clock::Clock;
use prometheus_parse::{Scrape, Value};

use crate::tests::{
    harness::{Server, eventually},
    wa::{Gw, evo_text},
};

struct Metrics {
    base: String,
    _trigger: crate::shutdown::ShutdownTrigger,
}

impl Metrics {
    async fn start(state: &crate::state::AppState) -> Metrics {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (trigger, shutdown) = crate::shutdown::Shutdown::new();
        let state = state.clone();
        tokio::spawn(async move {
            crate::metrics::serve_on(listener, state, shutdown)
                .await
                .unwrap();
        });
        Metrics {
            base,
            _trigger: trigger,
        }
    }

    async fn scrape(&self) -> Scrape {
        let r = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = r.text().await.unwrap();
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
    }
}

/// The value of `metric` with these labels: counters and gauges as they are, histograms as
/// their observation count (the +Inf bucket). 0 when absent.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b.last().map(|h| h.count).unwrap_or(0.0),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

async fn get(server: &Server, path: &str) -> u16 {
    reqwest::get(server.url(path))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn metrics_count_requests_ingest_jobs_pool_and_live_streams() {
    let gw = Gw::evolution().await;
    let m = Metrics::start(&gw.w.t.state).await;
    let before = m.scrape().await;
    let login = [("method", "GET"), ("route", "/login"), ("status", "200")];
    let conv_route = [("method", "GET"), ("route", "/t/:slug/conversations/:id")];

    for _ in 0..3 {
        assert_eq!(get(&gw.w.server, "/login").await, 200);
    }
    assert_eq!(get(&gw.w.server, "/no/such/page").await, 404);
    let now = gw.w.t.clock.now().unix_timestamp();
    let (status, _) = gw
        .evo(&evo_text("X1", "5511988887777", "Ana", now, "oi"))
        .await;
    assert_eq!(status, 200);
    let conv = gw.only_conversation().await;
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert_eq!(page.status, 200);
    // The turn's job is queued: the queue gauge sees it before the worker runs.
    let queued = m.scrape().await;
    assert!(value(&queued, "sigmaai_jobs_pending", &[("kind", "ai_reply")]) >= 1.0);
    gw.run_jobs().await;

    // A live-update stream counts while it is open.
    let stream =
        gw.w.owner
            .http
            .get(gw.w.server.url("/t/clinic-a/events"))
            .send()
            .await
            .unwrap();
    assert_eq!(stream.status(), 200);
    let after = m.scrape().await;
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    assert!(moved("sigmaai_http_requests_total", &login) >= 3.0);
    assert!(
        moved(
            "sigmaai_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    assert!(
        moved("sigmaai_http_request_duration_seconds", &conv_route) >= 1.0,
        "{:?}",
        after
            .samples
            .iter()
            .filter(|s| s.metric == "sigmaai_http_request_duration_seconds_count")
            .map(|s| format!("{:?}", s.labels))
            .collect::<Vec<_>>()
    );
    assert!(
        !after.samples.iter().any(|s| s
            .labels
            .get("route")
            .is_some_and(|r| r.contains(&conv.to_string()))),
        "route labels are templates, never paths with ids"
    );
    assert!(moved("sigmaai_ingest_deliveries_total", &[]) >= 1.0);
    assert!(moved("sigmaai_group_commit_batch_size", &[]) >= 1.0);
    assert!(
        moved(
            "sigmaai_jobs_run_total",
            &[("kind", "ai_reply"), ("outcome", "done")]
        ) >= 1.0
    );
    assert!(value(&after, "sigmaai_db_pool_max_connections", &[]) >= 1.0);
    assert!(value(&after, "sigmaai_sse_connections", &[]) >= 1.0);
    drop(stream);
    // The stream's end is seen by the server when it next writes; the gauge never goes
    // below zero meanwhile.
    eventually("the SSE gauge stays sane", || async {
        value(&m.scrape().await, "sigmaai_sse_connections", &[]) >= 0.0
    })
    .await;
}

#[tokio::test]
async fn failed_jobs_and_sends_are_counted_by_kind_and_gateway() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path_regex},
    };
    let gw = Gw::evolution().await;
    let m = Metrics::start(&gw.w.t.state).await;
    let before = m.scrape().await;
    // The gateway refuses every send for a while.
    Mock::given(method("POST"))
        .and(path_regex("^/message/sendText/.*"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&gw.gateway)
        .await;
    let now = gw.w.t.clock.now().unix_timestamp();
    gw.ana_writes_at(now, "F1", "oi").await;
    let conv = gw.only_conversation().await;
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                &format!("/t/clinic-a/conversations/{conv}/reply"),
                &[("text", "Olá!")],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    gw.w.t.clock.advance(time::Duration::minutes(1));
    gw.run_jobs().await;
    let after = m.scrape().await;
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        value(&after, metric, labels) - value(&before, metric, labels)
    };
    assert!(
        moved(
            "sigmaai_sends_total",
            &[("gateway", "evolution"), ("outcome", "retryable")]
        ) >= 1.0
    );
    assert!(moved("sigmaai_job_failures_total", &[("kind", "send_message")]) >= 1.0);
}
