//! More than one instance (issue 20): the real `sigmaai` binary started as two `serve` and
//! two `worker` processes on one database, one Redis and one S3-compatible store (moto,
//! started by scripts/test), with a local Evolution gateway. Each process has its own data
//! directory, so nothing can pass through a shared disk. What the test shows:
//! - a webhook delivered to both instances is stored once;
//! - every job runs once, and the two workers really share the queue;
//! - a live update published by one instance reaches a browser on the other;
//! - media downloaded by a worker is served by either instance;
//! - a rolling restart (SIGTERM, wait, start) of every process under webhook load loses no
//!   acknowledged message, refuses only with 503 or at the socket, never with a 500, and
//!   ends open live-update streams so browsers reconnect (to the other instance).

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use futures::StreamExt;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::tests::{
    client::Client,
    harness::{self, eventually},
    wa::{evo_text, evo_upsert},
};

fn s3_url() -> String {
    std::env::var("SIGMAAI_TEST_S3_URL")
        .expect("SIGMAAI_TEST_S3_URL is unset: run the tests with scripts/test, which starts moto")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

// ---------------------------------------------------------------------------------------
// The gateway: a local Evolution API server that records sends and serves media.

const MEDIA_BYTES: &[u8] = b"exam-image-bytes-MULTI-INSTANCE-MARKER";

#[derive(Default)]
struct Gateway {
    /// The `sendText` bodies, in arrival order.
    sends: Mutex<Vec<Value>>,
    media_downloads: AtomicUsize,
    /// The first send waits (up to 15 s) for a second one to arrive: with one claimer per
    /// worker, only the other worker process can send it.
    arrivals: AtomicUsize,
    second_arrived: tokio::sync::Notify,
    overlapped: AtomicBool,
}

async fn send_text(
    State(g): State<Arc<Gateway>>,
    Json(body): Json<Value>,
) -> impl axum::response::IntoResponse {
    let n = g.arrivals.fetch_add(1, Ordering::SeqCst);
    if n == 0 {
        let met = tokio::time::timeout(Duration::from_secs(15), g.second_arrived.notified())
            .await
            .is_ok();
        g.overlapped.store(met, Ordering::SeqCst);
    } else if n == 1 {
        g.second_arrived.notify_one();
    }
    let id = {
        let mut sends = g.sends.lock().unwrap();
        sends.push(body.clone());
        format!("OUT-{}", sends.len())
    };
    (
        StatusCode::CREATED,
        Json(json!({
            "key": { "id": id, "remoteJid": format!("{}@s.whatsapp.net", body["number"].as_str().unwrap_or_default()), "fromMe": true },
            "status": "PENDING"
        })),
    )
}

async fn media(State(g): State<Arc<Gateway>>, Json(_): Json<Value>) -> Json<Value> {
    g.media_downloads.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "base64": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, MEDIA_BYTES),
        "mimetype": "image/png",
        "fileName": "exam.png"
    }))
}

async fn start_gateway() -> (String, Arc<Gateway>) {
    let g = Arc::new(Gateway::default());
    let app = Router::new()
        .route("/message/sendText/{instance}", post(send_text))
        .route("/chat/getBase64FromMediaMessage/{instance}", post(media))
        .with_state(g.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, g)
}

// ---------------------------------------------------------------------------------------
// The processes.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Serve,
    Worker,
}

/// One `sigmaai` process (restartable: same name, port and data directory).
struct Proc {
    name: String,
    port: Option<u16>,
    child: Option<tokio::process::Child>,
    starts: usize,
}

/// Everything the processes share, as an operator would configure N instances.
struct Cluster {
    dir: PathBuf,
    env: Vec<(String, String)>,
    serves: Vec<Proc>,
    workers: Vec<Proc>,
}

impl Cluster {
    async fn start(database_url: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("sigmaai-multi-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let bucket = format!("media-{}", uuid::Uuid::new_v4().simple());
        let r = reqwest::Client::new()
            .put(format!("{}/{bucket}", s3_url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "could not create the bucket");
        let ports = [free_port(), free_port()];
        let env = vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("DATABASE_URL", database_url.to_owned()),
            (
                "REDIS_URL",
                harness::redis_url().expect("REDIS_URL (scripts/test sets it)"),
            ),
            (
                "SIGMAAI_REDIS_PREFIX",
                format!("t:{}:", uuid::Uuid::new_v4().simple()),
            ),
            (
                "SIGMAAI_MASTER_KEY",
                crate::crypto::master::generate_master_key(),
            ),
            (
                "SIGMAAI_SESSION_SECRET",
                format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
            ),
            (
                "SIGMAAI_DELETION_LEDGER",
                dir.join("ledger.jsonl").display().to_string(),
            ),
            // The address users (and the gateway) use: the load balancer's, here the first.
            (
                "SIGMAAI_PUBLIC_URL",
                format!("http://127.0.0.1:{}", ports[0]),
            ),
            ("SIGMAAI_OBJECT_STORE_URL", format!("s3://{bucket}/sigmaai")),
            ("SIGMAAI_S3_ENDPOINT", s3_url()),
            ("SIGMAAI_S3_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("SIGMAAI_DB_MAX_CONNECTIONS", "6".to_owned()),
            ("SIGMAAI_WORKER_POLL_MS", "250".to_owned()),
            ("SIGMAAI_AI_DEBOUNCE_MS", "300".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut c = Cluster {
            dir,
            env,
            serves: (0..2)
                .map(|i| Proc {
                    name: format!("serve{i}"),
                    port: Some(ports[i]),
                    child: None,
                    starts: 0,
                })
                .collect(),
            workers: (0..2)
                .map(|i| Proc {
                    name: format!("worker{i}"),
                    port: None,
                    child: None,
                    starts: 0,
                })
                .collect(),
        };
        for i in 0..2 {
            c.spawn(Kind::Serve, i);
            c.spawn(Kind::Worker, i);
        }
        for i in 0..2 {
            c.wait_ready(i).await;
        }
        c
    }

    fn proc_mut(&mut self, kind: Kind, i: usize) -> &mut Proc {
        match kind {
            Kind::Serve => &mut self.serves[i],
            Kind::Worker => &mut self.workers[i],
        }
    }

    fn spawn(&mut self, kind: Kind, i: usize) {
        let dir = self.dir.clone();
        let env = self.env.clone();
        let p = self.proc_mut(kind, i);
        p.starts += 1;
        let log = std::fs::File::create(dir.join(format!("{}-{}.log", p.name, p.starts))).unwrap();
        let mut cmd = tokio::process::Command::new(crate::tests::harness::sigmaai_bin());
        cmd.env_clear()
            .envs(env)
            .env("SIGMAAI_DATA_DIR", dir.join(&p.name))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        match kind {
            Kind::Serve => {
                cmd.arg("serve")
                    .env("SIGMAAI_BIND", format!("127.0.0.1:{}", p.port.unwrap()));
            }
            // One claimer each: two jobs in flight at once means both processes work.
            Kind::Worker => {
                cmd.args(["worker", "--concurrency", "1"]);
            }
        }
        p.child = Some(cmd.spawn().unwrap());
    }

    fn base(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.serves[i].port.unwrap())
    }

    async fn wait_ready(&self, i: usize) {
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.base(i));
        eventually(&format!("serve{i} answers /readyz"), || async {
            http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await;
    }

    /// SIGTERM, then the process must exit cleanly on its own; returns how long it took.
    async fn stop(&mut self, kind: Kind, i: usize) -> Duration {
        let p = self.proc_mut(kind, i);
        let child = p.child.as_mut().unwrap();
        let pid = child.id().unwrap() as libc::pid_t;
        let started = Instant::now();
        // SAFETY: signals our own child, which we still hold (not yet reaped).
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(Duration::from_secs(40), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 40 s of SIGTERM", p.name))
            .unwrap();
        assert!(status.success(), "{} exited with {status}", p.name);
        p.child = None;
        started.elapsed()
    }

    /// Every log line at ERROR level, from every process.
    fn error_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "log") {
                for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
                    if line.contains("\"level\":\"ERROR\"") {
                        out.push(format!("{}: {line}", path.display()));
                    }
                }
            }
        }
        out
    }

    fn local_media_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.components().any(|c| c.as_os_str() == "media") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // kill_on_drop ends the children; the logs stay for a look when the test failed.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("process logs kept in {}", self.dir.display());
        }
    }
}

// ---------------------------------------------------------------------------------------
// Webhooks as the gateway sends them.

/// What one webhook delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    /// Nobody listening: the instance is down (a real gateway retries).
    Refused,
    /// The connection was closed before any response: never acknowledged (a connection the
    /// stopping instance had not yet accepted is reset when it closes its listener).
    ClosedUnanswered,
    Other(String),
}

struct Hooks {
    http: reqwest::Client,
    path: String,
    secret: String,
}

impl Hooks {
    async fn post(&self, base: &str, body: &Value) -> Outcome {
        match self
            .http
            .post(format!("{base}{}", self.path))
            .header("content-type", "application/json")
            .header("x-webhook-token", &self.secret)
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) => Outcome::Status(r.status().as_u16()),
            Err(e) if e.is_connect() => Outcome::Refused,
            Err(e) if e.is_request() && !e.is_timeout() => Outcome::ClosedUnanswered,
            Err(e) => Outcome::Other(format!("{e:?}")),
        }
    }
}

impl Hooks {
    /// Posts until accepted, the way a gateway retries a 503 (a loaded machine may refuse
    /// for a moment); anything but 503 or a refused connection is returned at once.
    async fn deliver(&self, base: &str, body: &Value) -> Outcome {
        let mut tries = 0;
        loop {
            let o = self.post(base, body).await;
            tries += 1;
            if !matches!(o, Outcome::Status(503) | Outcome::Refused) || tries == 20 {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

async fn stored_ids(owner: &PgPool, like: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT external_id FROM messages WHERE external_id LIKE $1")
        .bind(like)
        .fetch_all(owner)
        .await
        .unwrap()
}

fn page_field(body: &str, id: &str) -> String {
    let doc = scraper::Html::parse_document(body);
    let sel = scraper::Selector::parse(&format!("#{id}")).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .unwrap_or_else(|| panic!("no #{id} in:\n{body}"))
        .to_owned()
}

/// Reads an SSE stream until a `change` event whose data contains `want`, or `within`.
async fn next_change(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    want: &str,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(at) = seen.find("event: change\ndata: ") {
            let rest = &seen[at + "event: change\ndata: ".len()..];
            if let Some(end) = rest.find('\n') {
                let data = rest[..end].to_owned();
                *seen = rest[end..].to_owned();
                if data.contains(want) {
                    return true;
                }
                continue;
            }
        }
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => return false,
        }
    }
}

#[tokio::test]
async fn two_serves_and_two_workers_share_one_database_redis_and_store() {
    let started = Instant::now();
    let db = harness::fresh_database().await;
    let db_url = harness::with_db(&harness::database_url(), &db);
    let owner = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db_url)
        .await
        .unwrap();
    let (gateway_base, gateway) = start_gateway().await;
    let mut cluster = Cluster::start(&db_url).await;
    let (a, b) = (cluster.base(0), cluster.base(1));

    // One browser (one cookie jar: cookies are per host, not per port, as behind a load
    // balancer) signs up on A and creates the channel on B: sessions and CSRF tokens hold
    // across instances.
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("sigmaai-tests")
        .build()
        .unwrap();
    let on = |base: &str| Client {
        http: http.clone(),
        base: base.to_owned(),
    };
    let r = on(&a)
        .sign_up("Ana Owner", "owner@a.test", "Clinic A", "clinic-a")
        .await;
    assert_eq!(r.status, 303, "sign-up failed: {}", r.body);
    let r = on(&b)
        .submit(
            "/t/clinic-a/channels",
            "/t/clinic-a/channels/evolution",
            &[
                ("name", "Reception"),
                ("base_url", &gateway_base),
                ("instance", "clinic"),
                ("api_key", "evo-api-key-123"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = page_field(&r.body, "wh-url");
    let hooks = Hooks {
        // A fresh connection per delivery, as a gateway behind a load balancer makes them.
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        path: format!("/webhooks/{}", url.split_once("/webhooks/").unwrap().1),
        secret: page_field(&r.body, "wh-secret"),
    };

    eprintln!("instances: setup done at {:?}", started.elapsed());
    // 1. The same delivery to both instances at once (a gateway retry racing the first
    // try), from new senders: each message and contact is stored once.
    for i in 0..12 {
        let body = evo_text(
            &format!("D{i}"),
            &format!("55119800000{i:02}"),
            "Dup",
            now(),
            &format!("oi {i}"),
        );
        let (x, y) = tokio::join!(hooks.deliver(&a, &body), hooks.deliver(&b, &body));
        assert_eq!((x, y), (Outcome::Status(200), Outcome::Status(200)), "D{i}");
    }
    let mut dups = stored_ids(&owner, "D%").await;
    dups.sort();
    let mut want: Vec<String> = (0..12).map(|i| format!("D{i}")).collect();
    want.sort();
    assert_eq!(dups, want, "each delivery stored exactly once");
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(contacts, 12, "one contact per sender");

    eprintln!("instances: dedupe done at {:?}", started.elapsed());
    // 2. A live update published by A (its webhook commit) reaches a browser on B.
    let events = http
        .get(format!("{b}/t/clinic-a/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut stream = Box::pin(events.bytes_stream());
    let mut seen = String::new();
    let mut reached = false;
    for n in 0..30 {
        // B's subscription may still be on its way: publish until one arrives.
        let body = evo_text(&format!("E{n}"), "5511988887777", "Ana", now(), "chegou?");
        assert_eq!(hooks.deliver(&a, &body).await, Outcome::Status(200));
        if next_change(&mut stream, &mut seen, "inbox", Duration::from_secs(1)).await {
            reached = true;
            break;
        }
    }
    assert!(reached, "no live update from A reached the browser on B");

    eprintln!("instances: sse done at {:?}", started.elapsed());
    // 3. Media: the webhook goes to A, a worker downloads it from the gateway and seals it
    // into the shared store; B (which downloaded nothing) serves it.
    let body = evo_upsert(
        "M1",
        "5511977770000",
        "Bia",
        now(),
        json!({ "imageMessage": { "mimetype": "image/png", "caption": "meu exame" } }),
        "imageMessage",
    );
    assert_eq!(hooks.deliver(&a, &body).await, Outcome::Status(200));
    eventually("a worker stored the media", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messages WHERE external_id = 'M1' AND media_state = 'stored'",
        )
        .fetch_one(&owner)
        .await
        .unwrap()
            == 1
    })
    .await;
    let media_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM messages WHERE external_id = 'M1'")
            .fetch_one(&owner)
            .await
            .unwrap();
    for base in [&b, &a] {
        let r = http
            .get(format!("{base}/t/clinic-a/messages/{media_id}/media"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{base}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), MEDIA_BYTES, "{base}");
    }
    assert_eq!(
        gateway.media_downloads.load(Ordering::SeqCst),
        1,
        "downloaded once"
    );
    assert!(
        cluster.local_media_files().is_empty(),
        "media went to a local disk: {:?}",
        cluster.local_media_files()
    );

    eprintln!("instances: media done at {:?}", started.elapsed());
    // 4. Every job runs once: replies typed on either instance, sent by two workers.
    let convs: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT c.id FROM conversations c JOIN messages m ON m.conversation_id = c.id \
         WHERE m.external_id LIKE 'D%' ORDER BY m.external_id",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(convs.len(), 12);
    let mut texts = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let text = format!("Resposta {i}");
        let base = if i % 2 == 0 { &a } else { &b };
        let r = on(base)
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                &format!("/t/clinic-a/conversations/{conv}/reply"),
                &[("text", &text)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        texts.push(text);
    }
    eventually("every reply reached the gateway", || async {
        gateway.sends.lock().unwrap().len() >= texts.len()
    })
    .await;
    eventually("every reply is recorded as sent", || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'sent'",
        )
        .fetch_one(&owner)
        .await
        .unwrap()
            == texts.len() as i64
    })
    .await;
    // A moment more for any duplicate to show itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent: Vec<String> = gateway
        .sends
        .lock()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    sent.sort();
    texts.sort();
    assert_eq!(sent, texts, "each reply sent exactly once");
    assert!(
        gateway.overlapped.load(Ordering::SeqCst),
        "the two workers never had sends in flight together"
    );

    eprintln!("instances: jobs done at {:?}", started.elapsed());
    // 5. Rolling restart of every process while a gateway posts webhooks to both.
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<(String, Outcome)>>> = Arc::default();
    let hooks = Arc::new(hooks);
    let mut load = Vec::new();
    for poster in 0..3 {
        let (stop, log, hooks) = (stop.clone(), log.clone(), hooks.clone());
        let bases = [a.clone(), b.clone()];
        load.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("L{poster}-{n}");
                let body = evo_text(
                    &id,
                    &format!("551197000000{}", n % 4),
                    "Load",
                    now(),
                    "carga",
                );
                let outcome = hooks.post(&bases[(n + poster) % 2], &body).await;
                log.lock().unwrap().push((id, outcome));
                n += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }));
    }
    // A browser stays connected to B's live updates through the restarts.
    let mut events = http
        .get(format!("{b}/t/clinic-a/events"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut stop_times = BTreeMap::new();
    for (kind, i) in [
        (Kind::Serve, 0),
        (Kind::Serve, 1),
        (Kind::Worker, 0),
        (Kind::Worker, 1),
    ] {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let took = cluster.stop(kind, i).await;
        stop_times.insert(cluster.proc_mut(kind, i).name.clone(), took);
        if kind == Kind::Serve && i == 1 {
            // B ended the browser's stream when told to stop (its EventSource reconnects,
            // to A behind a load balancer) instead of holding the restart for the whole
            // drain period.
            assert!(
                took < Duration::from_secs(10),
                "B took {took:?} to stop with a live-update stream open"
            );
            assert!(
                tokio::time::timeout(Duration::from_secs(1), async {
                    while let Some(Ok(_)) = events.next().await {}
                })
                .await
                .is_ok(),
                "the stream did not end"
            );
        }
        cluster.spawn(kind, i);
        if kind == Kind::Serve {
            cluster.wait_ready(i).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let log = log.lock().unwrap().clone();
    let acked: Vec<&String> = log
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Status(s) if (200..300).contains(s)))
        .map(|(id, _)| id)
        .collect();
    let refused: Vec<&(String, Outcome)> = log
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Status(s) if (200..300).contains(s)))
        .collect();
    for (id, o) in &refused {
        assert!(
            matches!(
                o,
                Outcome::Status(503) | Outcome::Refused | Outcome::ClosedUnanswered
            ),
            "{id}: {o:?} (only 503 or a refused/unanswered connection may happen in a restart)"
        );
    }
    let stored: HashSet<String> = stored_ids(&owner, "L%").await.into_iter().collect();
    let lost: Vec<&&String> = acked.iter().filter(|id| !stored.contains(**id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        acked.len() >= 20,
        "too little load got through: {}",
        acked.len()
    );
    eprintln!(
        "rolling restart: {} deliveries, {} acknowledged, {} refused ({:?}); stop times {:?}",
        log.len(),
        acked.len(),
        refused.len(),
        refused.iter().map(|(_, o)| o).collect::<Vec<_>>(),
        stop_times
    );

    eprintln!("instances: restart done at {:?}", started.elapsed());
    // After the restarts, the restarted workers still send, once.
    let conv = convs[0];
    let r = on(&b)
        .submit(
            &format!("/t/clinic-a/conversations/{conv}"),
            &format!("/t/clinic-a/conversations/{conv}/reply"),
            &[("text", "Depois do reinício")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    eventually("the reply after the restarts is sent", || async {
        gateway
            .sends
            .lock()
            .unwrap()
            .iter()
            .any(|s| s["text"] == "Depois do reinício")
    })
    .await;
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'dead'")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(dead, 0);
    assert_eq!(gateway.sends.lock().unwrap().len(), texts.len() + 1);
    let errors = cluster.error_lines();
    assert!(errors.is_empty(), "ERROR lines:\n{}", errors.join("\n"));
    eprintln!("multi-instance test took {:?}", started.elapsed());
}
