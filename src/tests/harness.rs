//! The test harness: real PostgreSQL and Redis, one fresh database per test.
//!
//! A template database is migrated once per run (named by a hash of the migrations, under an
//! advisory lock so parallel runs agree), then each test gets `CREATE DATABASE … TEMPLATE`.
//! The key store is templated and cloned the same way (`<test db>_keys` beside each test's
//! database), and each test's keyring writes its own deletion ledger file.
//! Test pools connect as the non-owner application role, so row-level security is really
//! exercised. Redis keys get a per-test prefix. Time is a [`ManualClock`].

use std::{
    sync::{Arc, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    clock::ManualClock,
    config::Config,
    crypto::Keyring,
    db,
    domain::account::Role,
    redis::Redis,
    shutdown::{Shutdown, ShutdownTrigger},
    state::AppState,
    wiring::App,
};
use axum::{Router, body::Body, http::Request};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool, postgres::PgPoolOptions};
use time::OffsetDateTime;
use tower::ServiceExt;
use url::Url;
use uuid::Uuid;

use crate::tests::{
    client::{Client, World},
    wa::Gw,
};

/// The `sigmaai` binary beside this test binary (`target/<profile>/deps/sigmaai-<hash>` →
/// `target/<profile>/sigmaai`): `scripts/test` builds it before the suite, since a library's
/// own tests get no `CARGO_BIN_EXE_*`.
pub(super) fn sigmaai_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps")
        .join(format!("sigmaai{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --bin sigmaai`; scripts/test does)",
        bin.display()
    );
    bin
}

pub(super) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at a PostgreSQL owner role (scripts/test sets it)")
}

pub(super) fn redis_url() -> Option<String> {
    std::env::var("REDIS_URL").ok()
}

pub(super) fn with_db(url: &str, db: &str) -> String {
    let mut u = Url::parse(url).expect("DATABASE_URL is a URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// The migrations' fingerprint (main and key store): a changed migration gets a new template.
fn migrations_hash() -> String {
    let mut h = Sha256::new();
    for m in db::MIGRATOR.iter() {
        h.update(m.version.to_le_bytes());
        h.update(&*m.checksum);
    }
    h.update(b"keystore");
    for m in db::keystore::MIGRATOR.iter() {
        h.update(m.version.to_le_bytes());
        h.update(&*m.checksum);
    }
    hex::encode(&h.finalize()[..6])
}

/// The key store beside a database (what `Config::keystore_owner_url` derives).
pub(super) fn keystore_name(db: &str) -> String {
    format!("{db}_keys")
}

static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

async fn admin_conn() -> PgConnection {
    PgConnection::connect(&with_db(&database_url(), "postgres"))
        .await
        .expect("connect to the test PostgreSQL as owner")
}

/// Migrates the template once per process (and once per migrations hash across processes).
async fn template_name() -> String {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("sigmaai_tpl_{}", migrations_hash());
            let mut admin = admin_conn().await;
            sqlx::query("SELECT pg_advisory_lock(7301)")
                .execute(&mut admin)
                .await
                .unwrap();
            let exists: bool = sqlx::query_scalar(
                "SELECT count(*) = 2 FROM pg_database WHERE datname IN ($1, $2)",
            )
            .bind(&name)
            .bind(keystore_name(&name))
            .fetch_one(&mut admin)
            .await
            .unwrap();
            // Templates of other migration sets are kept: a concurrent run on another branch
            // (sharing the cluster) may be cloning one right now; they are small.
            sweep_ended_runs(&mut admin).await;
            if !exists {
                let building = format!("{name}_building");
                for db in [
                    building.clone(),
                    keystore_name(&building),
                    name.clone(),
                    keystore_name(&name),
                ] {
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                        .unwrap();
                }
                sqlx::query(&format!("CREATE DATABASE {building}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                let cfg = Config::for_tests(&with_db(&database_url(), &building), None, "");
                // Also creates and migrates the key store `<building>_keys`.
                db::migrate(&cfg)
                    .await
                    .expect("migrations apply to a fresh database");
                sqlx::query(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .execute(&mut admin)
                    .await
                    .unwrap();
                sqlx::query(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    keystore_name(&building),
                    keystore_name(&name)
                ))
                .execute(&mut admin)
                .await
                .unwrap();
            }
            sqlx::query("SELECT pg_advisory_unlock(7301)")
                .execute(&mut admin)
                .await
                .unwrap();
            name
        })
        .await
        .clone()
}

/// This process's run: an id, and a session on the test cluster that holds the advisory
/// lock `(7302, id)` until the process exits (the OS closes the socket, PostgreSQL releases
/// the lock). A run's databases are named after its id, so a later run can tell the
/// databases of a run that ended (lock free) from those of one still going (lock held).
fn run_id() -> u32 {
    static RUN: OnceLock<u32> = OnceLock::new();
    *RUN.get_or_init(|| {
        let id = rand::random::<u32>() >> 1;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = admin_conn().await;
                sqlx::query("SELECT pg_advisory_lock(7302, $1)")
                    .bind(id as i32)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                ready_tx.send(()).unwrap();
                // Hold the session (and its lock) for the life of the process.
                std::future::pending::<()>().await;
                drop(conn);
            });
        });
        ready_rx.recv().expect("the run lock was taken");
        id
    })
}

/// Drops the databases of test runs that have ended, whatever the migrations: each run's
/// databases go with the next run's start, so the hundredth run uses the disk of the first.
/// Databases of a run still going (another `cargo test` on this cluster) are kept.
pub(super) async fn sweep_ended_runs(admin: &mut PgConnection) -> Vec<String> {
    let own = run_id();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'sigmaai\\_t\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let mut dropped = Vec::new();
    for name in names {
        let Some(run) = name
            .strip_prefix("sigmaai_t_r")
            .and_then(|rest| rest.split('_').next())
            .and_then(|r| r.parse::<u32>().ok())
        else {
            // Named by an older harness (`sigmaai_t_<unix secs>_…`): gone after two hours.
            if older_format_is_stale(&name)
                && sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut *admin)
                    .await
                    .is_ok()
            {
                dropped.push(name);
            }
            continue;
        };
        if run == own {
            continue;
        }
        let ended: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7302, $1)")
            .bind(run as i32)
            .fetch_one(&mut *admin)
            .await
            .unwrap_or(false);
        if !ended {
            continue;
        }
        let _ = sqlx::query("SELECT pg_advisory_unlock(7302, $1)")
            .bind(run as i32)
            .execute(&mut *admin)
            .await;
        if sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut *admin)
            .await
            .is_ok()
        {
            dropped.push(name);
        }
    }
    dropped
}

fn older_format_is_stale(name: &str) -> bool {
    let cutoff = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .saturating_sub(7200);
    name.strip_prefix("sigmaai_t_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|t| t.parse::<u64>().ok())
        .is_some_and(|t| t < cutoff)
}

/// A fresh migrated database, and its key store `<name>_keys`, cloned from the templates.
/// Returns the main database's name.
pub(super) async fn fresh_database() -> String {
    let template = template_name().await;
    let name = format!("sigmaai_t_r{}_{}", run_id(), Uuid::new_v4().simple());
    let mut admin = admin_conn().await;
    clone_database(&mut admin, &template, &name).await;
    clone_database(&mut admin, &keystore_name(&template), &keystore_name(&name)).await;
    name
}

async fn clone_database(admin: &mut PgConnection, template: &str, name: &str) {
    // No retry loop: nothing ever connects to a template once it is built, and PostgreSQL
    // itself waits a moment for a departing backend before refusing.
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("could not clone the template database {template}: {e}"));
}

/// One test's world: its own database, Redis prefix, clock and application state.
pub(super) struct TestApp {
    pub(crate) state: AppState,
    /// The router's state around `state`: its ingest queue and route cache.
    pub(crate) wiring: App,
    pub(crate) app: Router,
    pub(crate) clock: ManualClock,
    /// Owner pool on the test's database (bypasses nothing: use it to inspect raw rows).
    pub(crate) owner: PgPool,
    /// Owner pool on the test's key store (to copy, inspect or restore raw key rows).
    pub(crate) keystore_owner: PgPool,
    /// The same keyring as `state.keys`.
    pub(crate) keys: Keyring,
    pub(crate) db_name: String,
    pub(crate) config: Config,
}

/// The moment every test starts at (a Monday, 09:00 UTC).
pub(super) fn start_time() -> OffsetDateTime {
    time::macros::datetime!(2026-03-16 09:00 UTC)
}

impl TestApp {
    /// A user's id by email.
    pub(crate) async fn user_id(&self, email: &str) -> Uuid {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    /// How many audit entries with this action there are, every tenant's.
    pub(crate) async fn audit_count(&self, action: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1")
            .bind(action)
            .fetch_one(&self.owner)
            .await
            .unwrap()
    }

    /// `mail`'s context, as the worker hands it to the mail jobs.
    pub(crate) fn mail(&self) -> crate::mail::Mail {
        axum::extract::FromRef::from_ref(&self.state)
    }

    /// `privacy`'s context, as the router hands it to handlers and the sweep job.
    pub(crate) fn privacy(&self) -> crate::privacy::Privacy {
        axum::extract::FromRef::from_ref(&self.state)
    }

    pub(super) async fn new() -> TestApp {
        Self::with_config(|_| {}).await
    }

    /// A test app whose config the caller may adjust first.
    pub(super) async fn with_config(adjust: impl FnOnce(&mut Config)) -> TestApp {
        init_tracing();
        let db_name = fresh_database().await;
        let url = with_db(&database_url(), &db_name);
        let prefix = format!("t:{}:", Uuid::new_v4().simple());
        let mut config = Config::for_tests(&url, redis_url().as_deref(), &prefix);
        adjust(&mut config);
        let clock = ManualClock::new(start_time());
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect(secrecy::ExposeSecret::expose_secret(
                &config.app_database_url().unwrap(),
            ))
            .await
            .expect("connect as the application role");
        let owner = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("connect as owner");
        let keystore_owner = PgPoolOptions::new()
            .max_connections(2)
            .connect(secrecy::ExposeSecret::expose_secret(
                &config.keystore_owner_url().unwrap(),
            ))
            .await
            .expect("connect to the key store as owner");
        let redis = Redis::new(
            config
                .redis_url
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            &config.redis_prefix,
        )
        .unwrap();
        let keys = Keyring::connect(&config, redis.clone(), Arc::new(clock.clone()))
            .await
            .expect("connect the keyring to the key store");
        let state = AppState::new(
            config.clone(),
            pool,
            redis,
            Arc::new(clock.clone()),
            keys.clone(),
        );
        // What `serve` does before serving: in-process requests hear live events too.
        state.live.start();
        let wiring = App::new(state.clone());
        let app = crate::build_app(wiring.clone());
        TestApp {
            state,
            wiring,
            app,
            clock,
            owner,
            keystore_owner,
            keys,
            db_name,
            config,
        }
    }

    /// Another application instance on the same database, key store and Redis.
    pub(super) async fn second_instance(&self) -> AppState {
        let pool = PgPoolOptions::new()
            .max_connections(3)
            .connect(secrecy::ExposeSecret::expose_secret(
                &self.config.app_database_url().unwrap(),
            ))
            .await
            .unwrap();
        let redis = Redis::new(
            self.config
                .redis_url
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            &self.config.redis_prefix,
        )
        .unwrap();
        let clock = ManualClock::new(start_time());
        let keys = self.second_keyring(clock.clone()).await;
        let state = AppState::new(self.config.clone(), pool, redis, Arc::new(clock), keys);
        state.live.start();
        state
    }

    /// Another application instance's keyring: same key store, master key, Redis prefix and
    /// ledger, its own cache and clock.
    pub(super) async fn second_keyring(&self, clock: ManualClock) -> Keyring {
        let redis = Redis::new(
            self.config
                .redis_url
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret),
            &self.config.redis_prefix,
        )
        .unwrap();
        Keyring::connect(&self.config, redis, Arc::new(clock))
            .await
            .expect("connect a second keyring")
    }

    /// Sends one request through the whole middleware stack, in process.
    pub(super) async fn request(&self, req: Request<Body>) -> TestResponse {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        TestResponse::from(resp).await
    }

    pub(super) async fn get(&self, path: &str) -> TestResponse {
        self.request(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// Serves the app on a real listener on port 0 (for cookie, redirect and browser flows).
    pub(super) async fn spawn(&self) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::new();
        let wiring = self.wiring.clone();
        tokio::spawn(async move {
            crate::serve_on(listener, wiring, shutdown).await.unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            _trigger: trigger,
        }
    }
}

pub(super) struct Server {
    pub(crate) base: String,
    _trigger: ShutdownTrigger,
}

impl Server {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self._trigger.trigger();
    }
}

pub(super) struct TestResponse {
    pub(crate) status: u16,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: String,
}

impl TestResponse {
    async fn from(resp: axum::response::Response) -> TestResponse {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Logs go to the test's captured output; `RUST_LOG=debug` shows more. ERROR events are
/// also counted per thread ([`errors_logged`]).
fn init_tracing() {
    use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(
                        tracing_subscriber::EnvFilter::try_from_default_env()
                            .unwrap_or_else(|_| "warn,sigmaai=info".into()),
                    ),
            )
            .with(ErrorCount)
            .with(StatementLog)
            .with(RouteLog::from_env())
            .try_init();
    });
}

thread_local! {
    static ERRORS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts ERROR events on the thread that emits them. Each `#[tokio::test]` runs its
/// runtime, and so the server it spawned, on its own thread: the count is that test's.
struct ErrorCount;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorCount {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if *event.metadata().level() == tracing::Level::ERROR {
            ERRORS.with(|e| e.set(e.get() + 1));
        }
    }
}

thread_local! {
    static STATEMENTS: std::cell::RefCell<Option<Vec<String>>> =
        const { std::cell::RefCell::new(None) };
}

/// Records, while [`statements_of`] runs on this thread, the SQL statements sqlx executed
/// inside a request span (its `sqlx::query` event, one per statement sent), and the BEGINs
/// of `db::begin_tenant` (sqlx does not log the BEGIN it sends; that function does, as
/// `crate::db::tx` — its `BEGIN; SELECT set_config(…)` is one simple query, one round
/// trip). Like [`ErrorCount`], per thread: each
/// `#[tokio::test]` and the app it drives run on one thread. Work outside a request (the job
/// runner, the test's own owner queries) has no request span and is not counted.
struct StatementLog;

/// A logged statement's text: sqlx gives a four-word summary, and the whole SQL beside it
/// when that is longer.
#[derive(Default)]
struct Statement {
    summary: String,
    sql: String,
    /// A BEGIN that took the audit-chain lock with it.
    chain_lock: bool,
}

impl Statement {
    /// One line, whitespace collapsed, at most 160 characters.
    fn line(&self) -> String {
        let text = if self.sql.trim().is_empty() {
            &self.summary
        } else {
            &self.sql
        };
        let one: Vec<&str> = text.split_whitespace().collect();
        one.join(" ").chars().take(160).collect()
    }
}

impl tracing::field::Visit for Statement {
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "chain_lock" {
            self.chain_lock = value;
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.sql = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}"),
            "db.statement" => self.sql = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for StatementLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let target = event.metadata().target();
        if target != "sqlx::query" && target != "sigmaai::db::tx" {
            return;
        }
        let counting = STATEMENTS.with(|s| s.borrow().is_some());
        if !counting {
            return;
        }
        let in_request = ctx
            .event_scope(event)
            .is_some_and(|mut scope| scope.any(|span| span.name() == "request"));
        if !in_request {
            return;
        }
        let mut statement = Statement::default();
        if target == "sigmaai::db::tx" {
            // `db::begin_tenant_chain_locked` marks its BEGIN, which also takes the tenant's
            // audit-chain lock in that round trip.
            event.record(&mut statement);
            statement.summary = if statement.chain_lock {
                "BEGIN (db::begin_tenant_chain_locked: pg_advisory_xact_lock)".into()
            } else {
                "BEGIN (db::begin_tenant)".into()
            };
        } else {
            event.record(&mut statement);
        }
        STATEMENTS.with(|s| {
            if let Some(v) = s.borrow_mut().as_mut() {
                v.push(statement.line());
            }
        });
    }
}

/// Runs `f` and returns what it returned with the statements the app executed for the
/// requests it made (each as one line, in order).
pub(super) async fn statements_of<F: std::future::Future>(f: F) -> (F::Output, Vec<String>) {
    init_tracing();
    STATEMENTS.with(|s| *s.borrow_mut() = Some(Vec::new()));
    let out = f.await;
    let seen = STATEMENTS
        .with(|s| s.borrow_mut().take())
        .unwrap_or_default();
    (out, seen)
}

/// Appends `METHOD route-template` of every request the app served to `$SIGMAAI_TEST_ROUTE_LOG`
/// (one line per request span), for `suite::every_route_was_requested_during_the_run`.
struct RouteLog(Option<std::path::PathBuf>);

impl RouteLog {
    fn from_env() -> RouteLog {
        RouteLog(std::env::var_os("SIGMAAI_TEST_ROUTE_LOG").map(Into::into))
    }
}

#[derive(Default)]
struct RequestFields {
    method: String,
    /// The route template (`/t/{slug}/review`), never the path.
    path: String,
}

impl tracing::field::Visit for RequestFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "method" => self.method = format!("{value:?}"),
            "route" => self.path = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RouteLog {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(file) = &self.0 else { return };
        if attrs.metadata().name() != "request" {
            return;
        }
        let mut f = RequestFields::default();
        attrs.record(&mut f);
        use std::io::Write;
        if let Ok(mut out) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            // One write per line: with O_APPEND, concurrent tests' lines never interleave.
            let _ = out.write_all(format!("{} {}\n", f.method, f.path).as_bytes());
        }
    }
}

/// How many ERROR lines this test's thread has logged so far.
pub(super) fn errors_logged() -> usize {
    ERRORS.with(|e| e.get())
}

/// Polls `cond` until it holds. Not a time limit on the product: the 60 s are only a guard
/// against a hung test, so a loaded CI machine can't fail it by being slow.
pub(super) async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cond().await {
        assert!(std::time::Instant::now() < guard, "never happened: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A test's situation in a few lines, in the style of crates.io's test builders:
///
/// ```ignore
/// let s = TestApp::init().with_knowledge().with_sends_ok()
///     .with_price_question()
///     .with_member("bruno@a.test", Role::Reviewer).build().await;
/// ```
///
/// `build` signs up the owner (`owner@a.test`, tenant `clinic-a`), adds an Evolution channel
/// (or a Meta one), then does the rest in this order: the clinic's knowledge (hours and the
/// cleaning price), the AI settings, the gateway answering sends, each customer's message (jobs run after each one, so the
/// offline answerer drafts), the members, and another tenant.
/// The number most tests' customer, Ana, writes from.
pub(super) const ANA_PHONE: &str = "5511988887777";

/// A config adjustment for [`Setup::with_config`].
type Adjust = Box<dyn FnOnce(&mut Config) + Send>;

#[must_use]
pub(super) struct Setup {
    config: Option<Adjust>,
    meta: bool,
    knowledge: bool,
    ai: Vec<(String, String)>,
    sends_ok: bool,
    customers: Vec<[String; 4]>,
    members: Vec<(String, Role)>,
    other_tenant: bool,
}

impl TestApp {
    /// Starts stating a test's situation ([`Setup`]).
    pub(super) fn init() -> Setup {
        Setup {
            config: None,
            meta: false,
            knowledge: false,
            ai: Vec::new(),
            sends_ok: false,
            customers: Vec::new(),
            members: Vec::new(),
            other_tenant: false,
        }
    }
}

impl Setup {
    /// Adjusts the config first.
    pub(super) fn with_config(
        mut self,
        adjust: impl FnOnce(&mut Config) + Send + 'static,
    ) -> Setup {
        self.config = Some(Box::new(adjust));
        self
    }

    /// A Meta (WhatsApp Cloud API) channel instead of Evolution ([`Gw::meta`]).
    pub(super) fn meta(mut self) -> Setup {
        self.meta = true;
        self
    }

    /// The clinic's knowledge: opening hours (Saturdays too) and the cleaning's price (R$ 180).
    pub(super) fn with_knowledge(mut self) -> Setup {
        self.knowledge = true;
        self
    }

    /// The AI settings form posted with these fields over its defaults (`review_all`,
    /// `offline`), e.g. `&[("policy", "auto_send")]`: after the knowledge, before customers.
    pub(super) fn with_ai(mut self, fields: &[(&str, &str)]) -> Setup {
        self.ai = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    /// The gateway accepts every text sent (`201` with a fresh message id).
    pub(super) fn with_sends_ok(mut self) -> Setup {
        self.sends_ok = true;
        self
    }

    /// Ana ([`ANA_PHONE`]) asks what the cleaning costs (webhook `Q1`), and the jobs run: with
    /// the knowledge, a pending draft quoting R$ 180.
    pub(super) fn with_price_question(self) -> Setup {
        self.with_customer("Q1", ANA_PHONE, "Ana", "Quanto custa a limpeza?")
    }

    /// A customer writes once (webhook `id`), and the jobs it queues run.
    pub(super) fn with_customer(mut self, id: &str, phone: &str, name: &str, text: &str) -> Setup {
        self.customers
            .push([id, phone, name, text].map(str::to_owned));
        self
    }

    /// A member of clinic-a (named "Colleague"), invited by the owner and logged in.
    pub(super) fn with_member(mut self, email: &str, role: Role) -> Setup {
        self.members.push((email.to_owned(), role));
        self
    }

    /// Another tenant (`clinic-b`, owner `bea@b.test`) on the same server.
    pub(super) fn with_other_tenant(mut self) -> Setup {
        self.other_tenant = true;
        self
    }

    pub(super) async fn build(self) -> Scene {
        let w = match self.config {
            Some(adjust) => World::with_config(adjust).await,
            None => World::new().await,
        };
        let gw = match self.meta {
            true => Gw::meta_in(w).await,
            false => Gw::evolution_in(w).await,
        };
        if self.knowledge {
            crate::tests::review::clinic_knowledge(&gw.w).await;
        }
        if !self.ai.is_empty() {
            let fields: Vec<(&str, &str)> = self
                .ai
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            crate::tests::review::set_ai(&gw.w, &fields).await;
        }
        if self.sends_ok {
            crate::tests::review::mock_send_ok(&gw).await;
        }
        for [id, phone, name, text] in &self.customers {
            gw.customer_writes(id, phone, name, text).await;
        }
        let mut members = Vec::new();
        for (email, role) in &self.members {
            members.push(gw.w.add_member(email, role.as_str()).await);
        }
        let other = match self.other_tenant {
            true => Some(gw.w.other_tenant().await),
            false => None,
        };
        let tenant = gw.tenant_id("clinic-a").await;
        Scene {
            gw,
            tenant,
            members,
            other,
        }
    }
}

/// What [`Setup::build`] made: the gateway world (every [`Gw`] method, through `Deref`),
/// clinic-a's id, the members' logged-in clients in the order asked, and the other
/// tenant's owner.
pub(super) struct Scene {
    pub(crate) gw: Gw,
    pub(crate) tenant: Uuid,
    pub(crate) members: Vec<Client>,
    pub(crate) other: Option<Client>,
}

impl std::ops::Deref for Scene {
    type Target = Gw;

    fn deref(&self) -> &Gw {
        &self.gw
    }
}

impl Scene {
    /// The owner's logged-in client.
    pub(super) fn owner(&self) -> &Client {
        &self.gw.w.owner
    }

    /// The other tenant's owner ([`Setup::with_other_tenant`]).
    pub(super) fn other(&self) -> &Client {
        self.other.as_ref().expect("built with_other_tenant()")
    }
}

/// Typed reads of what tests check, instead of the same SQL in every file (as the owner:
/// every tenant's rows).
impl Gw {
    /// One value read as the owner (every tenant's rows): what the typed reads below share.
    async fn one<'a, T, A>(&'a self, sql: &'a str, arg: A) -> T
    where
        T: Send + Unpin,
        (T,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
        A: 'a + Send + sqlx::Encode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        sqlx::query_scalar(sql)
            .bind(arg)
            .fetch_one(&self.w.t.owner)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A customer's message (an Evolution text, sent now) arrives; its jobs wait.
    pub(super) async fn customer_sends(&self, id: &str, phone: &str, name: &str, text: &str) {
        self.customer_sends_at(self.now(), id, phone, name, text)
            .await;
    }

    /// A customer's Evolution text stamped `ts` (unix seconds) arrives; its jobs wait.
    pub(super) async fn customer_sends_at(
        &self,
        ts: i64,
        id: &str,
        phone: &str,
        name: &str,
        text: &str,
    ) {
        let (status, body) = self
            .evo(&crate::tests::wa::evo_text(id, phone, name, ts, text))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A customer writes at `ts` (as [`Gw::customer_sends_at`]), and the jobs it queues run.
    pub(super) async fn customer_writes_at(
        &self,
        ts: i64,
        id: &str,
        phone: &str,
        name: &str,
        text: &str,
    ) {
        self.customer_sends_at(ts, id, phone, name, text).await;
        self.run_jobs().await;
    }

    /// Ana ([`ANA_PHONE`]) sends a text now ([`Gw::customer_sends`]).
    pub(super) async fn ana_sends(&self, id: &str, text: &str) {
        self.customer_sends(id, ANA_PHONE, "Ana", text).await;
    }

    /// Ana sends a text now and its jobs run ([`Gw::customer_writes`]).
    pub(super) async fn ana_writes(&self, id: &str, text: &str) {
        self.customer_writes(id, ANA_PHONE, "Ana", text).await;
    }

    /// Ana sends a text stamped `ts` ([`Gw::customer_sends_at`]).
    pub(super) async fn ana_sends_at(&self, ts: i64, id: &str, text: &str) {
        self.customer_sends_at(ts, id, ANA_PHONE, "Ana", text).await;
    }

    /// Ana sends a text stamped `ts` and its jobs run ([`Gw::customer_writes_at`]).
    pub(super) async fn ana_writes_at(&self, ts: i64, id: &str, text: &str) {
        self.customer_writes_at(ts, id, ANA_PHONE, "Ana", text)
            .await;
    }

    /// The test clock's now, in unix seconds (a webhook's timestamp).
    pub(super) fn now(&self) -> i64 {
        crate::clock::Clock::now(&self.w.t.clock).unix_timestamp()
    }

    /// A customer writes (as [`Gw::customer_sends`]), and the jobs it queues run.
    pub(super) async fn customer_writes(&self, id: &str, phone: &str, name: &str, text: &str) {
        self.customer_sends(id, phone, name, text).await;
        self.run_jobs().await;
    }

    pub(super) async fn tenant_id(&self, slug: &str) -> Uuid {
        self.one("SELECT id FROM tenants WHERE slug = $1", slug)
            .await
    }

    /// The contact whose message has this webhook id.
    pub(super) async fn contact_of(&self, external_id: &str) -> Uuid {
        self.one(
            "SELECT contact_id FROM messages WHERE external_id = $1",
            external_id,
        )
        .await
    }

    /// A contact's conversation (panics unless it has one).
    pub(super) async fn conversation_with(&self, contact: Uuid) -> Uuid {
        self.one(
            "SELECT id FROM conversations WHERE contact_id = $1",
            contact,
        )
        .await
    }

    /// The status of the only privacy request (`received`, `verified`, `completed`, …).
    pub(super) async fn dsr_status(&self) -> String {
        sqlx::query_scalar("SELECT status FROM dsr_requests")
            .fetch_one(&self.w.t.owner)
            .await
            .unwrap()
    }

    /// The conversation the message with this webhook id went to.
    pub(super) async fn conversation_of(&self, external_id: &str) -> Uuid {
        self.one(
            "SELECT conversation_id FROM messages WHERE external_id = $1",
            external_id,
        )
        .await
    }

    /// The drafts waiting for review, oldest first.
    pub(super) async fn pending_drafts(&self) -> Vec<Uuid> {
        sqlx::query_scalar("SELECT id FROM drafts WHERE state = 'pending' ORDER BY created_at")
            .fetch_all(&self.w.t.owner)
            .await
            .unwrap()
    }

    /// The only draft waiting for review (panics unless there is exactly one).
    pub(super) async fn pending_draft(&self) -> Uuid {
        let ids = self.pending_drafts().await;
        assert_eq!(ids.len(), 1, "pending drafts: {ids:?}");
        ids[0]
    }

    /// The draft answering the message with this webhook id.
    pub(super) async fn draft_replying_to(&self, external_id: &str) -> Uuid {
        sqlx::query_scalar(
            "SELECT d.id FROM drafts d JOIN messages m ON m.id = d.reply_to_message_id WHERE m.external_id = $1",
        )
        .bind(external_id)
        .fetch_one(&self.w.t.owner)
        .await
        .unwrap()
    }

    /// Every draft's (state, escalation reason), oldest first.
    pub(super) async fn drafts(&self) -> Vec<(String, Option<String>)> {
        sqlx::query_as("SELECT state, escalation_reason FROM drafts ORDER BY created_at")
            .fetch_all(&self.w.t.owner)
            .await
            .unwrap()
    }

    pub(super) async fn draft_state(&self, id: Uuid) -> String {
        self.one("SELECT state FROM drafts WHERE id = $1", id).await
    }

    /// The email of the member a conversation is assigned to.
    pub(super) async fn assignee(&self, conv: Uuid) -> Option<String> {
        sqlx::query_scalar(
            "SELECT u.email FROM conversations c LEFT JOIN users u ON u.id = c.assigned_to WHERE c.id = $1",
        )
        .bind(conv)
        .fetch_one(&self.w.t.owner)
        .await
        .unwrap()
    }

    /// Whether a member's presence row says they are editing (None: no presence row).
    pub(super) async fn presence_of(&self, email: &str) -> Option<bool> {
        sqlx::query_scalar(
            "SELECT p.editing FROM review_presence p JOIN users u ON u.id = p.user_id WHERE u.email = $1",
        )
        .bind(email)
        .fetch_optional(&self.w.t.owner)
        .await
        .unwrap()
    }

    /// The texts sent through the gateway's sendText, in order.
    pub(super) async fn sent_texts(&self) -> Vec<String> {
        crate::tests::review::gateway_sends(self)
            .await
            .iter()
            .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Every request to the gateway's sendText, accepted or not, as JSON bodies, in order.
    pub(super) async fn send_requests(&self) -> Vec<serde_json::Value> {
        crate::tests::review::gateway_sends(self).await
    }

    /// The gateway answers every sendText with `status` and `body` (after any mock mounted
    /// before it is used up).
    pub(super) async fn mock_send(&self, status: u16, body: serde_json::Value) {
        self.mock_send_n(status, body, None).await;
    }

    /// The gateway answers the next sendText only with `status` and `body`.
    pub(super) async fn mock_send_once(&self, status: u16, body: serde_json::Value) {
        self.mock_send_n(status, body, Some(1)).await;
    }

    async fn mock_send_n(&self, status: u16, body: serde_json::Value, times: Option<u64>) {
        let mut mock = wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/message/sendText/clinic"))
            .respond_with(wiremock::ResponseTemplate::new(status).set_body_json(body));
        if let Some(n) = times {
            mock = mock.up_to_n_times(n);
        }
        mock.mount(&self.gateway).await;
    }

    /// The only outbound message, every tenant's (panics unless there is exactly one).
    pub(super) async fn only_out_message(&self) -> OutMessage {
        let all: Vec<OutMessage> = sqlx::query_as(
            "SELECT id, status, error, external_id FROM messages WHERE direction = 'out'",
        )
        .fetch_all(&self.w.t.owner)
        .await
        .unwrap();
        assert_eq!(all.len(), 1, "outbound messages: {:?}", all.len());
        all.into_iter().next().unwrap()
    }

    /// The only outbound message's status (`queued`, `sent`, `read`, `failed`, …).
    pub(super) async fn out_status(&self) -> String {
        self.only_out_message().await.status
    }

    /// A message's status.
    pub(super) async fn message_status(&self, id: Uuid) -> String {
        self.one("SELECT status FROM messages WHERE id = $1", id)
            .await
    }

    /// How many jobs of this kind there are, in any state.
    pub(super) async fn jobs_of(&self, kind: &str) -> i64 {
        self.one("SELECT count(*) FROM jobs WHERE kind = $1", kind)
            .await
    }

    /// How many jobs of this kind wait to run (state `pending`).
    pub(super) async fn pending_jobs(&self, kind: &str) -> i64 {
        self.one(
            "SELECT count(*) FROM jobs WHERE kind = $1 AND state = 'pending'",
            kind,
        )
        .await
    }

    /// What a conversation is flagged for in the inbox (an escalation reason), if anything.
    pub(super) async fn attention(&self, conv: Uuid) -> Option<String> {
        self.one("SELECT attention FROM conversations WHERE id = $1", conv)
            .await
    }

    /// Who owns a conversation (`ai` or `human`).
    pub(super) async fn ownership(&self, conv: Uuid) -> String {
        self.one("SELECT ownership FROM conversations WHERE id = $1", conv)
            .await
    }
}

/// An outbound message's row, as [`Gw::only_out_message`] reads it.
#[derive(sqlx::FromRow, Debug)]
pub(super) struct OutMessage {
    pub(crate) id: Uuid,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) external_id: Option<String>,
}
