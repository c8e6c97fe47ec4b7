//! Webhook ingestion and inbox benchmarks against a running server on real PostgreSQL
//! (fsync on). Not a test: it prints figures. Run with `scripts/bench ingest`.
//!
//! 1. Ingest: N Evolution webhook deliveries (distinct ids, many senders) on loopback,
//!    either from a bounded number of concurrent clients (`BENCH_CONCURRENCY`, closed loop)
//!    or offered at a fixed rate (`BENCH_RATE` messages/s, open loop: latency counts from
//!    when each request was due, so a server falling behind shows in it); throughput and
//!    latency percentiles of acknowledged deliveries; then a check that every acknowledged
//!    message is stored once.
//! 2. Inbox: 1,000,000 messages in one tenant (seeded in bulk with placeholder ciphertext —
//!    the list query never decrypts in SQL), then the inbox query's latency percentiles as
//!    the application role inside a tenant transaction, first page and keyset pages.

use crate::messaging::Messaging;
use axum::extract::FromRef;
use std::{sync::Arc, time::Instant};

use crate::{
    accounts::{self, Signup},
    clock::SystemClock,
    config::Config,
    db::{self, audit::Actor, conversations::ListFilter},
    messaging::channel::{self, NewChannelInput},
    shutdown::Shutdown,
};
use serde_json::json;
use sqlx::Connection;
use tokio::sync::Semaphore;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name:<34} n={:<6} p50={:>7.2} ms  p90={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        ms.len(),
        pct(&ms, 0.50),
        pct(&ms, 0.90),
        pct(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
}

/// `cargo bench --bench ingest -- MODE`: see the module documentation.
#[tokio::main]
pub async fn main() -> anyhow::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    // The `sse` bench's browsers, in a process of their own (so the server's memory is measured
    // alone).
    if which == SSE_CLIENTS {
        return sse_clients().await;
    }
    let url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("DATABASE_URL (scripts/bench sets it)"))?;
    let redis = std::env::var("REDIS_URL").ok();
    let n: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rate: Option<f64> = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok());

    // A fresh database for each run.
    let mut admin = sqlx::PgConnection::connect(&url).await?;
    let db_name = format!("sigmaai_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&mut admin)
        .await?;
    let mut u = url::Url::parse(&url)?;
    u.set_path(&format!("/{db_name}"));
    let mut config = Config::for_tests(u.as_str(), redis.as_deref(), "bench:");
    config.db_max_connections = 32;
    config.data_dir = std::env::temp_dir().join(format!("sigmaai-bench-{}", std::process::id()));
    // The sse bench holds thousands of streams open (the fd limit still caps it).
    config.limits.max_connections = 30_000;
    // Measure ingestion, not drafting (the approve bench drafts at once).
    config.ai_debounce = if which == "approve" {
        time::Duration::ZERO
    } else {
        time::Duration::hours(1)
    };
    // The overload bounds as the server reads them (`SIGMAAI_INGEST_*`).
    if let Ok(v) = std::env::var("SIGMAAI_INGEST_QUEUE_MAX") {
        config.ingest.max_queued = v.parse()?;
    }
    if let Ok(v) = std::env::var("SIGMAAI_INGEST_MAX_WAIT_MS") {
        config.ingest.max_wait = std::time::Duration::from_millis(v.parse()?);
    }
    db::migrate(&config).await?;
    // `BENCH_NO_BADGE_TRIGGERS=1`: without the triggers that maintain the badge counters
    // (migration 0031), to measure what they cost ingest. The badges are then wrong.
    if std::env::var("BENCH_NO_BADGE_TRIGGERS").is_ok_and(|v| v == "1") {
        let mut owner = sqlx::PgConnection::connect(u.as_str()).await?;
        for (table, trigger) in [
            ("conversations", "conversations_unread_ins"),
            ("conversations", "conversations_unread_upd"),
            ("conversations", "conversations_unread_del"),
            ("drafts", "drafts_waiting_ins"),
            ("drafts", "drafts_waiting_upd"),
            ("drafts", "drafts_waiting_del"),
        ] {
            sqlx::query(&format!("DROP TRIGGER {trigger} ON {table}"))
                .execute(&mut owner)
                .await?;
        }
        println!("badge counter triggers dropped (BENCH_NO_BADGE_TRIGGERS=1)");
    }
    // Before this process connects (its own keyring would subscribe to the bench Redis).
    if which == "idle" {
        return idle(u.as_str(), redis.as_deref()).await;
    }
    let state = crate::connect(config, Arc::new(SystemClock)).await?;

    let created = accounts::sign_up(
        &crate::accounts::Accounts::from_ref(&state),
        Signup {
            name: "Bench",
            email: "bench@bench.test",
            password: "bench password 123",
            business: "Bench Clinic",
            slug: "bench",
            plan: "enterprise",
            accept_policy: true,
            language: "pt-BR",
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = created.tenant_id;
    let actor = Actor::system();

    if which == "all" || which.starts_with("ingest") {
        let mode = match which.as_str() {
            "ingest-new" => Mode::New,
            "ingest-open" => Mode::Open(
                std::env::args()
                    .nth(2)
                    .and_then(|v| v.parse().ok())
                    .or(rate)
                    .ok_or_else(|| anyhow::anyhow!("usage: scripts/bench ingest-open RATE"))?,
            ),
            _ => match rate {
                Some(r) => Mode::Open(r),
                None => Mode::Closed,
            },
        };
        ingest(&state, tenant, &actor, mode, n, concurrency).await?;
    }

    if which == "fairness" {
        fairness(&state, tenant, &actor).await?;
    }

    if which == "sse" {
        let n: usize = std::env::args()
            .nth(2)
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        return sse(&state, tenant, created.user_id, n).await;
    }

    if which == "all" || which == "approve" {
        approve(&state, tenant, created.user_id, u.as_str()).await?;
    }

    if which == "all" || which == "inbox" || which == "portal" || which == "pages" {
        let conversations: i64 = std::env::var("BENCH_CONVERSATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000);
        let total: i64 = std::env::var("BENCH_INBOX_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let (channel_id, _) = channel::create(
            &Messaging::from_ref(&state),
            tenant,
            &actor,
            "Inbox bench",
            NewChannelInput::Simulator,
        )
        .await
        .or_else(|_| -> anyhow::Result<_> { Ok((uuid::Uuid::nil(), None)) })?;
        let mut owner = sqlx::PgConnection::connect(u.as_str()).await?;
        let t0 = Instant::now();
        // Bulk seed as the owner: contacts, conversations, then messages spread over them.
        sqlx::query(
            "INSERT INTO contacts (id, tenant_id, phone_index, name_tokens, name_sealed, phone_sealed, created_at, updated_at)
             SELECT gen_random_uuid(), $1, 'bench-' || g, ARRAY['tok' || (g % 1000)], '\\x00'::bytea, '\\x00'::bytea, now(), now()
             FROM generate_series(1, $2) g",
        )
        .bind(tenant)
        .bind(conversations)
        .execute(&mut owner)
        .await?;
        sqlx::query(
            "INSERT INTO conversations (id, tenant_id, channel_id, contact_id, chat_index, status, last_message_at, last_inbound_at, created_at, unread_count)
             SELECT gen_random_uuid(), $1, $2, c.id, 'contact:' || c.id, CASE WHEN random() < 0.3 THEN 'resolved' ELSE 'open' END,
                    now() - (random() * interval '365 days'), now(), now(), (random() * 3)::int
             FROM contacts c WHERE c.tenant_id = $1 AND c.phone_index LIKE 'bench-%'",
        )
        .bind(tenant)
        .bind(channel_id)
        .execute(&mut owner)
        .await?;
        sqlx::query(
            "INSERT INTO messages (id, tenant_id, conversation_id, channel_id, contact_id, direction, kind, body_sealed, status, sent_at, created_at)
             SELECT gen_random_uuid(), cv.tenant_id, cv.id, cv.channel_id, cv.contact_id, CASE WHEN g % 2 = 0 THEN 'in' ELSE 'out' END, 'text',
                    decode(repeat('ab', 120), 'hex'), 'received', cv.last_message_at - (g * interval '1 minute'), now()
             FROM (SELECT *, row_number() OVER () AS rn FROM conversations WHERE tenant_id = $1 AND channel_id = $2) cv,
                  generate_series(1, ($3 / $4)::int) g",
        )
        .bind(tenant)
        .bind(channel_id)
        .bind(total)
        .bind(conversations)
        .execute(&mut owner)
        .await?;
        // Drafts: most decided long ago, one in ten conversations waiting for review.
        sqlx::query(
            "INSERT INTO drafts (id, tenant_id, conversation_id, contact_id, reply_to_message_id, state, provider, created_at)
             SELECT gen_random_uuid(), cv.tenant_id, cv.id, cv.contact_id, gen_random_uuid(),
                    CASE WHEN random() < 0.1 THEN 'pending' ELSE 'approved' END, 'offline', now()
             FROM conversations cv, generate_series(1, 4) g
             WHERE cv.tenant_id = $1 AND cv.channel_id = $2 AND (g = 1 OR random() < 0.5)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(channel_id)
        .execute(&mut owner)
        .await?;
        // No manual ANALYZE: the per-table autovacuum settings must keep the planner right
        // (`BENCH_ANALYZE=1` runs one, to compare).
        if std::env::var("BENCH_ANALYZE").is_ok_and(|v| v == "1") {
            sqlx::query("ANALYZE").execute(&mut owner).await?;
        } else {
            // Give autovacuum a moment to notice the bulk load, as it would in production.
            let t0 = Instant::now();
            loop {
                let analyzed: bool = sqlx::query_scalar(
                    "SELECT bool_and(last_autoanalyze IS NOT NULL) FROM pg_stat_user_tables
                     WHERE relname IN ('conversations', 'contacts', 'messages', 'drafts')",
                )
                .fetch_one(&mut owner)
                .await?;
                if analyzed || t0.elapsed().as_secs() > 120 {
                    println!(
                        "autoanalyze {} after {:.0} s",
                        if analyzed { "ran" } else { "had not run" },
                        t0.elapsed().as_secs_f64()
                    );
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&mut owner)
            .await?;
        println!(
            "inbox: seeded {count} messages in {conversations} conversations in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        // What the seed occupies against the cluster's buffer cache.
        let (size, buffers): (String, String) = sqlx::query_as(
            "SELECT pg_size_pretty(pg_database_size(current_database())), current_setting('shared_buffers')",
        )
        .fetch_one(&mut owner)
        .await?;
        println!("database size {size}, shared_buffers {buffers}");
        if which == "pages" {
            pages(&state, created.user_id, u.as_str()).await?;
        }

        let runs = 200;
        for (name, status, tokens) in [
            ("inbox first page", None, None),
            ("inbox open filter", Some("open".to_owned()), None),
            ("inbox name search", None, Some(vec!["tok7".to_owned()])),
        ] {
            let mut lat = Vec::with_capacity(runs);
            let mut cursor = None;
            for i in 0..runs {
                let t0 = Instant::now();
                let mut tx = db::begin_tenant(&state.db, tenant).await?;
                let rows = db::conversations::list(
                    &mut tx,
                    &ListFilter {
                        status: status.clone(),
                        name_tokens: tokens.clone(),
                        before: cursor,
                        limit: 50,
                        ..Default::default()
                    },
                )
                .await?;
                tx.commit().await?;
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
                // Walk keyset pages, restarting at the top now and then.
                cursor = if i % 20 == 19 {
                    None
                } else {
                    rows.last().map(|r| (r.last_message_at, r.id))
                };
            }
            summary(name, lat);
        }
        // The navigation badges every portal page shows.
        for name in ["badge: drafts waiting", "badge: unread"] {
            let mut lat = Vec::with_capacity(runs);
            let mut value = 0;
            for _ in 0..runs {
                let t0 = Instant::now();
                let mut tx = db::begin_tenant(&state.db, tenant).await?;
                value = if name.ends_with("waiting") {
                    db::ai::queue_count(&mut tx).await?
                } else {
                    db::conversations::unread_total(&mut tx).await?
                };
                tx.commit().await?;
                lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            summary(&format!("{name} ({value})"), lat);
        }
        // A portal page's frame (issue 19): what the tenant extractor and `Shell` asked before
        // (seven calls, five transactions), then the one `portal_chrome` statement now.
        let month = crate::billing::month_start(time::OffsetDateTime::now_utc());
        let user = created.user_id;
        let mut lat = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t0 = Instant::now();
            let t = db::tenants::tenant_by_slug(&state.db, "bench").await?;
            anyhow::ensure!(t.is_some());
            let mut tx = db::begin_tenant(&state.db, tenant).await?;
            db::memberships::role_in_tenant(&mut tx, user).await?;
            tx.commit().await?;
            db::tenants::tenants_of_user(&state.db, user).await?;
            for step in 0..3 {
                let mut tx = db::begin_tenant(&state.db, tenant).await?;
                match step {
                    0 => db::conversations::unread_total(&mut tx).await?,
                    1 => db::ai::queue_count(&mut tx).await?,
                    _ => db::ai::drafts_since(&mut tx, month).await?,
                };
                tx.commit().await?;
            }
            let mut conn = state.db.acquire().await?;
            db::billing::get(&mut conn, tenant).await?;
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        summary("frame, before (7 calls)", lat);
        let mut lat = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t0 = Instant::now();
            let c = db::tenants::portal_chrome(&state.db, "bench", user, month).await?;
            anyhow::ensure!(c.is_some(), "the bench owner sees the bench tenant");
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        summary("frame: portal_chrome", lat);
        // The review queue's rows for a page of 50 cards: the page, then the batched card
        // queries (conversations, contacts, last 6 messages each, tool calls), one transaction.
        let mut lat = Vec::with_capacity(runs);
        let mut queue_convs = Vec::new();
        for i in 0..runs {
            let t0 = Instant::now();
            let mut tx = db::begin_tenant(&state.db, tenant).await?;
            let (drafts, _) = db::ai::queue_page(
                &mut tx,
                &db::ai::QueueFilter {
                    state: None,
                    assigned_to: None,
                    unassigned: false,
                    channel: None,
                    created_before: None,
                    limit: 50,
                    offset: (i as i64 % 10) * 50,
                },
            )
            .await?;
            let conv_ids: Vec<uuid::Uuid> = drafts.iter().map(|d| d.conversation_id).collect();
            let convs = db::conversations::get_many(&mut tx, &conv_ids).await?;
            let contact_ids: Vec<uuid::Uuid> = convs.iter().map(|c| c.contact_id).collect();
            db::contacts::get_many(&mut tx, &contact_ids).await?;
            db::messages::latest_of_many(&mut tx, &conv_ids, 6).await?;
            let draft_ids: Vec<uuid::Uuid> = drafts.iter().map(|d| d.id).collect();
            db::mcp::calls_for_drafts(&mut tx, &draft_ids).await?;
            tx.commit().await?;
            lat.push(t0.elapsed().as_secs_f64() * 1000.0);
            queue_convs = conv_ids;
        }
        summary("review queue rows (50 cards)", lat);
        // The plans, as the application role sees them (RLS on).
        let mut tx = db::begin_tenant(&state.db, tenant).await?;
        let ids = format!(
            "ARRAY[{}]::uuid[]",
            queue_convs
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(",")
        );
        for (what, sql) in [
            (
                "review queue: last messages (LATERAL)",
                format!(
                    "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT m.id FROM (SELECT DISTINCT unnest({ids}) AS id) c CROSS JOIN LATERAL (SELECT * FROM messages WHERE tenant_id = app_current_tenant() AND conversation_id = c.id ORDER BY sent_at DESC, id DESC LIMIT 6) m"
                ),
            ),
            (
                "review queue: page",
                "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT d.id FROM drafts d JOIN conversations c ON c.tenant_id = d.tenant_id AND c.id = d.conversation_id WHERE d.tenant_id = app_current_tenant() AND d.state IN ('pending', 'escalated') ORDER BY d.urgent DESC, d.created_at, d.id LIMIT 50".to_owned(),
            ),
            (
                "review queue: total",
                "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT count(*) FROM drafts d WHERE d.tenant_id = app_current_tenant() AND d.state IN ('pending', 'escalated')".to_owned(),
            ),
            (
                "review queue: conversations",
                format!("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT id FROM conversations WHERE id = ANY({ids})"),
            ),
        ] {
            let plan: Vec<String> = sqlx::query_scalar(&sql).fetch_all(&mut *tx).await?;
            println!("EXPLAIN {what}:");
            for line in plan {
                println!("    {line}");
            }
        }
        for (what, sql) in [
            (
                "inbox first page",
                "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT cv.id, ct.name_sealed FROM conversations cv JOIN LATERAL (SELECT c.name_sealed FROM contacts c WHERE c.id = cv.contact_id AND c.tenant_id = cv.tenant_id LIMIT 1) ct ON true ORDER BY cv.last_message_at DESC, cv.id DESC LIMIT 50",
            ),
            (
                "badge: drafts waiting",
                "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT count(*) FROM drafts WHERE tenant_id = app_current_tenant() AND state IN ('pending', 'escalated')",
            ),
            (
                "badge: unread",
                "EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) SELECT COALESCE(sum(unread_count), 0)::bigint FROM conversations WHERE tenant_id = app_current_tenant() AND status = 'open' AND unread_count > 0",
            ),
        ] {
            let plan: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *tx).await?;
            println!("EXPLAIN {what}:");
            for line in plan {
                println!("    {line}");
            }
        }
        tx.commit().await?;
    }
    state.db.close().await;
    // `BENCH_KEEP_DB=1` keeps the seeded database (to EXPLAIN a page's statements on it).
    if std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1") {
        println!("kept databases {db_name} and {db_name}_keys (BENCH_KEEP_DB=1)");
        return Ok(());
    }
    let _ = sqlx::query(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    let _ = sqlx::query(&format!("DROP DATABASE {db_name}_keys WITH (FORCE)"))
        .execute(&mut admin)
        .await;
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `concurrency` clients, each sending one request after another (2,000 known senders).
    Closed,
    /// Offered at a fixed rate (messages/s), however many are open (2,000 known senders).
    Open(f64),
    /// Closed loop, every message from a new person (contact, key, conversation each).
    New,
}

/// What became of one request.
enum Outcome {
    Acked,
    /// 503 with a Retry-After header (the gateway retries it).
    Refused,
    Failed,
}

async fn ingest(
    state: &crate::state::AppState,
    tenant: uuid::Uuid,
    actor: &Actor,
    mode: Mode,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    let base = url::Url::parse("http://127.0.0.1:9")?;
    let (channel_id, secret) = channel::create(
        &Messaging::from_ref(state),
        tenant,
        actor,
        "Bench",
        NewChannelInput::Evolution {
            base_url: base,
            instance: "bench".into(),
            api_key: "k".into(),
        },
    )
    .await?;
    let secret = secret.unwrap_or_default();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let ch = db::channels::get(&mut tx, channel_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("channel"))?;
    tx.commit().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = Shutdown::new();
    let wiring = crate::wiring::App::new(state.clone());
    let server_state = wiring.clone();
    let server =
        tokio::spawn(async move { crate::serve_on(listener, server_state, shutdown).await });
    let hook = format!("http://{addr}/webhooks/evolution/{}", ch.route_id);

    // A gateway's patience: past it the request counts as failed (and the gateway retries).
    let patience_ms: u64 = std::env::var("BENCH_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let open = matches!(mode, Mode::Open(_));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(if open { 4096 } else { concurrency })
        .timeout(std::time::Duration::from_millis(patience_ms))
        .build()?;
    let permits = Arc::new(Semaphore::new(concurrency));
    // Known senders (warmed up first), or every message a new person.
    let senders = if mode == Mode::New { n } else { 2_000usize };
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    match mode {
        Mode::Open(r) => println!(
            "ingest: {n} deliveries offered at {r:.0}/s (open loop), {senders} senders (warm-up creates the contacts first), patience {patience_ms} ms"
        ),
        Mode::Closed => println!(
            "ingest: {n} deliveries, {concurrency} concurrent clients, {senders} senders (warm-up creates the contacts first)"
        ),
        Mode::New => println!(
            "ingest-new: {n} deliveries, {concurrency} concurrent clients, every one from a new sender (contact + data key each)"
        ),
    }
    // Open loop: requests go out on schedule, however many are in flight (bounded only
    // to keep a stalled server from exhausting the machine's descriptors).
    let offered = Arc::new(Semaphore::new(16_384));
    let mut acked_ids = Vec::with_capacity(n + senders);
    let phases: &[usize] = if mode == Mode::New { &[1] } else { &[0, 1] };
    for &phase in phases {
        let count = if phase == 0 { senders } else { n };
        let started = Instant::now();
        let mut handles = Vec::with_capacity(count);
        let mut behind = 0usize;
        for i in 0..count {
            let due = match mode {
                Mode::Open(r) if phase == 1 => {
                    let due = started + std::time::Duration::from_secs_f64(i as f64 / r);
                    if Instant::now() > due + std::time::Duration::from_millis(5) {
                        behind += 1;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    Some(due)
                }
                _ => None,
            };
            let permit = match due {
                Some(_) => offered.clone().acquire_owned().await?,
                None => permits.clone().acquire_owned().await?,
            };
            let (http, hook, secret) = (http.clone(), hook.clone(), secret.clone());
            let id = format!("BENCH{phase}-{i}");
            let phone = format!("55119{:08}", i % senders);
            let body = evolution_text(&phone, &id, ts + i as i64);
            handles.push(tokio::spawn(async move {
                let t0 = due.unwrap_or_else(Instant::now);
                let r = http
                    .post(&hook)
                    .header("x-webhook-token", secret)
                    .json(&body)
                    .send()
                    .await;
                drop(permit);
                let outcome = match &r {
                    Ok(resp) if resp.status().is_success() => Outcome::Acked,
                    Ok(resp)
                        if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                            && resp.headers().contains_key("retry-after") =>
                    {
                        Outcome::Refused
                    }
                    _ => Outcome::Failed,
                };
                (id, outcome, t0.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut lat = Vec::with_capacity(count);
        let mut refused_lat = Vec::new();
        let mut failed = 0usize;
        let mut acked = Vec::with_capacity(count);
        for h in handles {
            let (id, outcome, ms) = h.await?;
            match outcome {
                Outcome::Acked => {
                    lat.push(ms);
                    acked.push(id);
                }
                Outcome::Refused => refused_lat.push(ms),
                Outcome::Failed => failed += 1,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        if phase == 1 {
            println!(
                "ingest throughput: {:.0} acknowledged messages/s ({} of {} acknowledged in {:.2} s)",
                acked.len() as f64 / secs,
                acked.len(),
                count,
                secs
            );
            if open {
                println!(
                    "open loop: {} acknowledged, {} refused with 503 + Retry-After, {failed} errors or time-outs; {behind} requests sent > 5 ms late by the load generator",
                    acked.len(),
                    refused_lat.len(),
                );
                summary("503 answers", refused_lat);
            } else if failed > 0 || !refused_lat.is_empty() {
                println!("{} refused (503), {failed} failed", refused_lat.len());
            }
            summary("ingest latency (acknowledged)", lat);
        } else {
            // Every warm-up message is a new person: contact, key and conversation.
            println!(
                "warm-up (new senders): {:.0} messages/s ({} in {:.2} s)",
                acked.len() as f64 / secs,
                acked.len(),
                secs
            );
        }
        acked_ids.extend(acked);
    }
    let stats = wiring.ingest.stats();
    println!(
        "group commit: {} deliveries in {} transactions ({:.1} per commit), {} failed batches retried one by one, {} refused",
        stats.deliveries,
        stats.transactions,
        stats.deliveries as f64 / stats.transactions.max(1) as f64,
        stats.failed_batches,
        stats.refused
    );
    // Exactly once: every acknowledged id is stored once. A request that timed out on the
    // client may still have been stored (the gateway's retry then finds it a duplicate).
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let stored: Vec<(String, i64)> = sqlx::query_as(
        "SELECT external_id, count(*) FROM messages WHERE channel_id = $1 GROUP BY external_id",
    )
    .bind(channel_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let dupes = stored.iter().filter(|(_, c)| *c > 1).count();
    let stored_ids: std::collections::HashSet<&str> =
        stored.iter().map(|(id, _)| id.as_str()).collect();
    let missing = acked_ids
        .iter()
        .filter(|id| !stored_ids.contains(id.as_str()))
        .count();
    let unacked = stored.len().saturating_sub(acked_ids.len() - missing);
    println!(
        "exactly-once check: {} acknowledged, {} stored, {missing} acknowledged but missing, {dupes} duplicated, {unacked} stored but not acknowledged (client gave up)",
        acked_ids.len(),
        stored.len()
    );
    anyhow::ensure!(missing == 0 && dupes == 0, "durability check failed");
    if !open {
        anyhow::ensure!(stored.len() == acked_ids.len(), "stored ≠ acknowledged");
    }
    trigger.trigger();
    let _ = server.await;
    Ok(())
}

/// An Evolution channel of `tenant` on a server at `addr`: (webhook URL, secret).
async fn bench_channel(
    state: &crate::state::AppState,
    tenant: uuid::Uuid,
    actor: &Actor,
    addr: std::net::SocketAddr,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let (channel_id, secret) = channel::create(
        &Messaging::from_ref(state),
        tenant,
        actor,
        name,
        NewChannelInput::Evolution {
            base_url: url::Url::parse("http://127.0.0.1:9")?,
            instance: "bench".into(),
            api_key: "k".into(),
        },
    )
    .await?;
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let ch = db::channels::get(&mut tx, channel_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("channel"))?;
    tx.commit().await?;
    Ok((
        format!("http://{addr}/webhooks/evolution/{}", ch.route_id),
        secret.unwrap_or_default(),
    ))
}

/// What an open-loop sender saw: latencies of acknowledged deliveries (ms, from when each
/// was due), refusals (503 + Retry-After), errors.
#[derive(Default)]
struct Offered {
    acked: Vec<f64>,
    refused: usize,
    failed: usize,
    late: usize,
}

/// Offers `rate` deliveries a second for `secs` seconds on a fixed schedule (open loop),
/// from `senders` senders whose first messages were sent before (warm-up).
#[allow(clippy::too_many_arguments)]
async fn offer(
    http: reqwest::Client,
    hook: String,
    secret: String,
    rate: f64,
    secs: f64,
    tag: String,
    senders: usize,
    phone_base: u64,
) -> Offered {
    let count = (rate * secs) as usize;
    let started = Instant::now();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let in_flight = Arc::new(Semaphore::new(8_192));
    let mut handles = Vec::with_capacity(count);
    let mut late = 0;
    for i in 0..count {
        let due = started + std::time::Duration::from_secs_f64(i as f64 / rate);
        if Instant::now() > due + std::time::Duration::from_millis(5) {
            late += 1;
        }
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let phone = phone_base + (i % senders) as u64;
        let id = format!("{tag}-{i}");
        let body = evolution_text(&phone.to_string(), &id, ts + i as i64);
        let (http, hook, secret) = (http.clone(), hook.clone(), secret.clone());
        handles.push(tokio::spawn(async move {
            let r = http
                .post(&hook)
                .header("x-webhook-token", secret)
                .json(&body)
                .send()
                .await;
            drop(permit);
            let ms = due.elapsed().as_secs_f64() * 1000.0;
            match r {
                Ok(resp) if resp.status().is_success() => (Outcome::Acked, ms),
                Ok(resp)
                    if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        && resp.headers().contains_key("retry-after") =>
                {
                    (Outcome::Refused, ms)
                }
                _ => (Outcome::Failed, ms),
            }
        }));
    }
    let mut out = Offered {
        late,
        ..Offered::default()
    };
    for h in handles {
        match h.await {
            Ok((Outcome::Acked, ms)) => out.acked.push(ms),
            Ok((Outcome::Refused, _)) => out.refused += 1,
            _ => out.failed += 1,
        }
    }
    out
}

/// `scripts/bench fairness`: a quiet tenant at a low rate (`BENCH_QUIET_RATE`, 50/s) alone,
/// then while a noisy tenant offers `BENCH_NOISY_RATE` (default 20,000/s, the figure;
/// past this machine's capacity, so much of it is refused) — both open loop, both
/// `BENCH_SECONDS` (10) long. Prints the quiet tenant's latency in both runs.
async fn fairness(
    state: &crate::state::AppState,
    noisy: uuid::Uuid,
    actor: &Actor,
) -> anyhow::Result<()> {
    let env_f = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(d)
    };
    let quiet_rate = env_f("BENCH_QUIET_RATE", 50.0);
    let noisy_rate = env_f("BENCH_NOISY_RATE", 20_000.0);
    let secs = env_f("BENCH_SECONDS", 10.0);
    let quiet = accounts::sign_up(
        &crate::accounts::Accounts::from_ref(state),
        Signup {
            name: "Quiet",
            email: "quiet@bench.test",
            password: "bench password 123",
            business: "Quiet Clinic",
            slug: "quiet",
            plan: "enterprise",
            accept_policy: true,
            language: "pt-BR",
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?
    .tenant_id;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = Shutdown::new();
    let wiring = crate::wiring::App::new(state.clone());
    let server_state = wiring.clone();
    let server =
        tokio::spawn(async move { crate::serve_on(listener, server_state, shutdown).await });
    let (noisy_hook, noisy_secret) = bench_channel(state, noisy, actor, addr, "noisy").await?;
    let (quiet_hook, quiet_secret) = bench_channel(state, quiet, actor, addr, "quiet").await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let (noisy_senders, quiet_senders) = (2_000usize, 50usize);
    const NOISY_PHONES: u64 = 5511_9000_0000;
    const QUIET_PHONES: u64 = 5521_9000_0000;
    // Warm-up: every sender's contact and conversation exist.
    let w = offer(
        http.clone(),
        noisy_hook.clone(),
        noisy_secret.clone(),
        500.0,
        noisy_senders as f64 / 500.0,
        "WARM-N".into(),
        noisy_senders,
        NOISY_PHONES,
    )
    .await;
    let q = offer(
        http.clone(),
        quiet_hook.clone(),
        quiet_secret.clone(),
        100.0,
        quiet_senders as f64 / 100.0,
        "WARM-Q".into(),
        quiet_senders,
        QUIET_PHONES,
    )
    .await;
    println!(
        "warm-up (new senders): noisy {} of {noisy_senders} acknowledged ({} refused), quiet {} of {quiet_senders}",
        w.acked.len(),
        w.refused,
        q.acked.len()
    );
    println!(
        "fairness: quiet tenant at {quiet_rate:.0}/s ({quiet_senders} senders), noisy tenant at {noisy_rate:.0}/s offered ({noisy_senders} senders), {secs:.0} s each, open loop"
    );
    let alone = offer(
        http.clone(),
        quiet_hook.clone(),
        quiet_secret.clone(),
        quiet_rate,
        secs,
        "ALONE".into(),
        quiet_senders,
        QUIET_PHONES,
    )
    .await;
    println!(
        "quiet alone: {} acknowledged, {} refused, {} errors",
        alone.acked.len(),
        alone.refused,
        alone.failed
    );
    let before = wiring.ingest.stats();
    let noisy_run = tokio::spawn(offer(
        http.clone(),
        noisy_hook,
        noisy_secret,
        noisy_rate,
        secs,
        "NOISY".into(),
        noisy_senders,
        NOISY_PHONES,
    ));
    // The noisy tenant's flood is under way before the quiet one is measured.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let with = offer(
        http.clone(),
        quiet_hook,
        quiet_secret,
        quiet_rate,
        secs,
        "WITH".into(),
        quiet_senders,
        QUIET_PHONES,
    )
    .await;
    let n = noisy_run.await?;
    let after = wiring.ingest.stats();
    println!(
        "quiet with the noisy one: {} acknowledged, {} refused, {} errors",
        with.acked.len(),
        with.refused,
        with.failed
    );
    println!(
        "noisy: {} acknowledged ({:.0}/s), {} refused with 503, {} errors, {} sent > 5 ms late by the load generator; {:.1} deliveries per commit",
        n.acked.len(),
        n.acked.len() as f64 / secs,
        n.refused,
        n.failed,
        n.late,
        (after.deliveries - before.deliveries) as f64
            / (after.transactions - before.transactions).max(1) as f64
    );
    let p99 = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        pct(&v, 0.99)
    };
    let (p_alone, p_with) = (p99(&alone.acked), p99(&with.acked));
    summary("quiet tenant alone", alone.acked);
    summary("quiet tenant, noisy flooding", with.acked);
    summary("noisy tenant (acknowledged)", n.acked);
    println!(
        "quiet p99 with the noisy tenant / alone: {:.2}× (target ≤ 2×)",
        p_with / p_alone.max(0.001)
    );
    trigger.trigger();
    let _ = server.await;
    Ok(())
}

/// Approve → gateway request: drafts waiting for review (offline answerer), approved one
/// after another with the undo window at 0, by a worker running as `sigmaai all` runs it;
/// each latency is from the approval's call to the moment a local Evolution-speaking
/// server receives the send.
async fn approve(
    state: &crate::state::AppState,
    tenant: uuid::Uuid,
    user: uuid::Uuid,
    db_url: &str,
) -> anyhow::Result<()> {
    use std::{collections::HashMap, sync::Mutex};
    let n: usize = std::env::var("BENCH_APPROVALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // The gateway: records when each number's send arrived.
    let arrived: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let gw_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gw_url = format!("http://{}", gw_listener.local_addr()?);
    {
        let arrived = arrived.clone();
        let app = axum::Router::new().route(
            "/message/sendText/{instance}",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let arrived = arrived.clone();
                async move {
                    let number: String = body["number"]
                        .as_str()
                        .unwrap_or_default()
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    arrived.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(number, Instant::now());
                    (
                        axum::http::StatusCode::CREATED,
                        axum::Json(json!({ "key": { "id": format!("OUT-{}", uuid::Uuid::new_v4().simple()) } })),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(gw_listener, app).await });
    }
    let actor = Actor::user(user, "bench@bench.test");
    let (channel_id, secret) = channel::create(
        &Messaging::from_ref(state),
        tenant,
        &actor,
        "Approve bench",
        NewChannelInput::Evolution {
            base_url: url::Url::parse(&gw_url)?,
            instance: "approve".into(),
            api_key: "k".into(),
        },
    )
    .await?;
    let secret = secret.unwrap_or_default();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let ch = db::channels::get(&mut tx, channel_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("channel"))?;
    // The knowledge the review tests answer this question from (src/tests/review.rs).
    for (kind, title, body) in [
        (
            crate::domain::knowledge::KnowledgeKind::Hours,
            "Horário de funcionamento",
            "Atendemos de segunda a sexta das 8h às 18h e aos sábados das 8h às 12h.",
        ),
        (
            crate::domain::knowledge::KnowledgeKind::Price,
            "Preço da limpeza",
            "A limpeza dental custa R$ 180, com avaliação incluída.",
        ),
    ] {
        db::ai::insert_knowledge(
            &mut tx,
            tenant,
            &crate::domain::knowledge::KnowledgeEntry {
                id: uuid::Uuid::now_v7(),
                title: title.into(),
                body: body.into(),
                kind,
            },
            state.now(),
        )
        .await?;
    }
    tx.commit().await?;
    let mut owner = sqlx::PgConnection::connect(db_url).await?;
    sqlx::query(
        "INSERT INTO ai_settings (tenant_id, undo_seconds, updated_at) VALUES ($1, 0, now())
         ON CONFLICT (tenant_id) DO UPDATE SET undo_seconds = 0",
    )
    .bind(tenant)
    .execute(&mut owner)
    .await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = Shutdown::new();
    let server = {
        let (s, shutdown) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            crate::serve_on(listener, crate::wiring::App::new(s), shutdown).await
        })
    };
    let worker = tokio::spawn(crate::jobs::run_worker(state.clone(), 4, shutdown));
    let hook = format!("http://{addr}/webhooks/evolution/{}", ch.route_id);
    let http = reqwest::Client::new();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let phones: Vec<String> = (0..n).map(|i| format!("55219{i:08}")).collect();
    for (i, phone) in phones.iter().enumerate() {
        let body = json!({
            "event": "messages.upsert", "instance": "approve",
            "data": { "key": { "remoteJid": format!("{phone}@s.whatsapp.net"), "fromMe": false, "id": format!("APPROVE-{i}") },
                      "pushName": "Paciente", "message": { "conversation": "Quanto custa a limpeza?" },
                      "messageType": "conversation", "messageTimestamp": ts + i as i64 }
        });
        let r = http
            .post(&hook)
            .header("x-webhook-token", &secret)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "webhook {}", r.status());
    }
    // Wait for the worker to draft them all.
    let t0 = Instant::now();
    let drafts: Vec<(uuid::Uuid, String)> = loop {
        let mut tx = db::begin_tenant(&state.db, tenant).await?;
        let rows: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
            "SELECT d.id, d.contact_id FROM drafts d JOIN conversations c ON c.id = d.conversation_id
             WHERE d.state = 'pending' AND c.channel_id = $1",
        )
        .bind(channel_id)
        .fetch_all(&mut *tx)
        .await?;
        if rows.len() >= n || t0.elapsed().as_secs() > 120 {
            // Which phone each draft answers: the contact's blind index.
            let mut out = Vec::new();
            for (draft, contact) in rows {
                let idx: String =
                    sqlx::query_scalar("SELECT phone_index FROM contacts WHERE id = $1")
                        .bind(contact)
                        .fetch_one(&mut *tx)
                        .await?;
                for p in &phones {
                    if state.keys.blind_phone(tenant, p).await? == idx {
                        out.push((draft, p.clone()));
                        break;
                    }
                }
            }
            tx.commit().await?;
            break out;
        }
        tx.commit().await?;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    println!(
        "approve: {} drafts ready in {:.1} s; approving one after another (undo window 0, worker fallback poll {} ms)",
        drafts.len(),
        t0.elapsed().as_secs_f64(),
        state.config.worker_poll.as_millis()
    );
    if drafts.len() < n {
        // Escalated turns have no draft to approve: a figure over them measures nothing.
        let mut owner = sqlx::PgConnection::connect(db_url).await?;
        let states: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT state, escalation_reason, count(*) FROM drafts GROUP BY 1, 2 ORDER BY 3 DESC",
        )
        .fetch_all(&mut owner)
        .await?;
        anyhow::bail!(
            "approve: only {} of {n} turns drafted: {states:?}",
            drafts.len()
        );
    }
    let mut lat = Vec::with_capacity(drafts.len());
    let mut calls = Vec::with_capacity(drafts.len());
    let mut windows = Vec::with_capacity(drafts.len());
    // `BENCH_TRACE=1`: every statement's round trip, on the approval's side and the worker's,
    // for the step breakdown printed at the end (the figures above then include the tracing).
    let steps = std::env::var("BENCH_TRACE")
        .is_ok_and(|v| v == "1")
        .then(steps::install)
        .flatten();
    let review = crate::review::Review::from_ref(state);
    for (draft, phone) in &drafts {
        // Idle first, as a reviewer's clicks are: the worker is asleep when the click comes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let t = Instant::now();
        {
            use tracing::Instrument;
            crate::review::decide::approve(&review, tenant, &actor, *draft, None)
                .instrument(tracing::info_span!("approve"))
                .await
                .map_err(|e| anyhow::anyhow!("approve: {e:?}"))?;
        }
        calls.push(t.elapsed().as_secs_f64() * 1000.0);
        let arrived_at = loop {
            if let Some(at) = arrived
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(phone.as_str())
            {
                break Some(*at);
            }
            if t.elapsed().as_secs() > 10 {
                break None;
            }
            tokio::time::sleep(std::time::Duration::from_micros(200)).await;
        };
        if let Some(at) = arrived_at {
            windows.push((t, at));
        }
        match arrived_at {
            Some(at) => lat.push(at.duration_since(t).as_secs_f64() * 1000.0),
            None => println!("approve: a send never reached the gateway"),
        }
    }
    anyhow::ensure!(
        lat.len() == n,
        "approve: {} of {n} sends arrived",
        lat.len()
    );
    summary("approve → gateway request", lat);
    // The part spent in the approval's own call (its transaction and commit, then the live
    // event and media triage after the commit, while the worker already runs).
    summary("  of which decide::approve returns", calls);
    if let Some(steps) = steps {
        steps::report(&steps, &windows);
    }
    trigger.trigger();
    let _ = server.await;
    let _ = worker.await;
    Ok(())
}

const SSE_CLIENTS: &str = "sse-clients";

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `scripts/bench sse N`: N logged-in browsers hold the live-update stream open (idle), in a
/// child process; this process's extra resident memory is the server's cost of them. Then one
/// event is published and each stream's arrival time is taken (same machine, same clock):
/// fan-out latency percentiles. Also counts this instance's Redis subscriptions.
async fn sse(
    state: &crate::state::AppState,
    tenant: uuid::Uuid,
    user: uuid::Uuid,
    n: usize,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    // As `sigmaai serve` does first thing (this process is the server measured).
    crate::disable_transparent_huge_pages();
    let cookie = crate::http::session::start_session(state, user, "bench", "127.0.0.1").await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = Shutdown::new();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        crate::serve_on(listener, crate::wiring::App::new(server_state), shutdown).await
    });
    // `serve_on` starts this instance's listeners (waiting for them before it ran is what
    // hung this bench: nothing had started them yet).
    let subscribing = Instant::now();
    while !state.live.redis_listening() {
        anyhow::ensure!(
            subscribing.elapsed() < std::time::Duration::from_secs(30),
            "the live-update listener never subscribed to Redis"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Warm the path once (allocator arenas, templates, pools), then settle.
    let warm = reqwest::get(format!("http://{addr}/healthz")).await?;
    anyhow::ensure!(warm.status().is_success(), "healthz: {}", warm.status());
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = rss_kib();

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg(SSE_CLIENTS)
        .arg(n.to_string())
        .arg(addr.to_string())
        .arg("/t/bench/events")
        .arg(format!("{}={}", cookie.name(), cookie.value()))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let started = Instant::now();
    let ready = lines.next_line().await?.unwrap_or_default();
    if ready != format!("ready {n}") {
        let _ = child.kill().await;
        anyhow::bail!("not every stream opened ({ready:?} of {n})");
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after = rss_kib();

    let sent = std::time::SystemTime::now();
    state
        .live
        .publish(tenant, &crate::live::Event::Review)
        .await;
    let times = lines.next_line().await?.unwrap_or_default();
    let arrivals: Vec<f64> = times
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse::<u128>().ok())
        .map(|nanos| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos as u64);
            at.duration_since(sent).unwrap_or_default().as_secs_f64() * 1000.0
        })
        .collect();
    let _ = child.wait().await;
    // Redis connections in SUBSCRIBE mode (this process is the bench Redis's only client).
    let subscriptions = match std::env::var("REDIS_URL") {
        Ok(url) => redis_subscribers(&url).await?,
        Err(_) => 0,
    };
    trigger.trigger();
    let _ = server.await;

    let extra_kib = after.saturating_sub(before);
    let how = if std::env::var("BENCH_SSE_REUSE").is_ok_and(|v| v == "1") {
        " (BENCH_SSE_REUSE=1: each the second request of its connection)"
    } else {
        ""
    };
    println!(
        "sse{how}: {n} idle streams connected in {connect_secs:.1} s; server RSS {:.1} MiB → {:.1} MiB: +{:.1} MiB, {:.1} KiB per stream; {subscriptions} Redis subscriber connection(s)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        extra_kib as f64 / 1024.0,
        extra_kib as f64 / n.max(1) as f64,
    );
    anyhow::ensure!(
        arrivals.len() == n,
        "only {} of {n} streams got the event",
        arrivals.len()
    );
    summary(&format!("sse fan-out of one event to {n}"), arrivals);
    Ok(())
}

/// `VmRSS`, `RssAnon` and `RssFile` of a process, in KiB (Linux).
fn rss_of(pid: u32) -> [u64; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    ["VmRSS:", "RssAnon:", "RssFile:"].map(|key| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// Redis connections in SUBSCRIBE mode (the bench Redis has no other clients).
async fn redis_subscribers(url: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await?;
    Ok(list
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .any(|f| (f.starts_with("sub=") || f.starts_with("psub=")) && !f.ends_with("=0"))
        })
        .count())
}

/// `scripts/bench idle`: the resident memory of a real `sigmaai serve` process
/// (`BENCH_SIGMAAI_BIN`, the release build) on this database and Redis, once it is ready,
/// and again after it served one page and settled; plus its Redis subscriber connections.
async fn idle(database_url: &str, redis: Option<&str>) -> anyhow::Result<()> {
    let bin = std::env::var("BENCH_SIGMAAI_BIN")
        .map_err(|_| anyhow::anyhow!("BENCH_SIGMAAI_BIN (scripts/bench idle sets it)"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("sigmaai-idle-{}", std::process::id()));
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("SIGMAAI_BIND", format!("127.0.0.1:{port}"))
        .env("SIGMAAI_DATA_DIR", &dir)
        .env("SIGMAAI_REDIS_PREFIX", "idle:")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(r) = redis {
        cmd.env("REDIS_URL", r);
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("serve exited at once"))?;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "serve never became ready"
        );
        anyhow::ensure!(child.try_wait()?.is_none(), "serve exited");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let [ready, ready_anon, ready_file] = rss_of(pid);
    let page = reqwest::get(format!("{base}/login")).await?;
    anyhow::ensure!(page.status().is_success(), "/login: {}", page.status());
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let [served, served_anon, served_file] = rss_of(pid);
    let subscribers = match redis {
        Some(r) => redis_subscribers(r).await?,
        None => 0,
    };
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "idle: sigmaai serve RSS {:.1} MiB when ready (anon {:.1}, file {:.1}); {:.1} MiB after one page and 5 s (anon {:.1}, file {:.1}); {subscribers} Redis subscriber connection(s)",
        mib(ready),
        mib(ready_anon),
        mib(ready_file),
        mib(served),
        mib(served_anon),
        mib(served_file),
    );
    // SAFETY: signals our own child, which we still hold (not yet reaped).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The child process of [`sse`]: opens N streams, prints `ready K` (K of them open; a refused
/// or stalled one counts as not open, so a bad run ends instead of waiting forever), then
/// waits for one `change` event on each open one and prints `times` with each arrival (Unix
/// nanoseconds). With `BENCH_SSE_REUSE=1` each stream is the second request on a kept-alive
/// connection (after a `/healthz`), as when a page's stream reuses the page's connection:
/// hyper serves those, not the listener's own stream path.
async fn sse_clients() -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let mut args = std::env::args().skip(2);
    let n: usize = args.next().unwrap_or_default().parse()?;
    let addr = args.next().unwrap_or_default();
    let path = args.next().unwrap_or_default();
    let cookie = args.next().unwrap_or_default();
    let reuse = std::env::var("BENCH_SSE_REUSE").is_ok_and(|v| v == "1");
    raise_fd_limit();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<bool>(n.max(1));
    let (at_tx, mut at_rx) = tokio::sync::mpsc::channel::<u128>(n.max(1));
    let connecting = Arc::new(Semaphore::new(128));
    for _ in 0..n {
        let (addr, path, cookie) = (addr.clone(), path.clone(), cookie.clone());
        let (ready_tx, at_tx, connecting) = (ready_tx.clone(), at_tx.clone(), connecting.clone());
        tokio::spawn(async move {
            let permit = connecting.acquire_owned().await;
            let opened = tokio::time::timeout(std::time::Duration::from_secs(60), async {
                let mut stream = tokio::net::TcpStream::connect(&addr).await.ok()?;
                if reuse {
                    let warm = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                    stream.write_all(warm.as_bytes()).await.ok()?;
                }
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.ok()?;
                let mut reader = BufReader::with_capacity(512, stream);
                let mut line = String::new();
                if reuse {
                    // The /healthz answer: its head, then its body by length.
                    let mut len = 0usize;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.ok()? == 0 {
                            return None;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().ok()?;
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).await.ok()?;
                }
                // The stream's status line and headers.
                line.clear();
                if reader.read_line(&mut line).await.is_err() || !line.contains(" 200 ") {
                    eprintln!("stream refused: {line:?}");
                    return None;
                }
                loop {
                    line.clear();
                    match reader.read_line(&mut line).await {
                        Ok(0) | Err(_) => return None,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                Some((reader, line))
            })
            .await
            .ok()
            .flatten();
            drop(permit);
            let Some((mut reader, mut line)) = opened else {
                let _ = ready_tx.send(false).await;
                return;
            };
            let _ = ready_tx.send(true).await;
            drop(ready_tx);
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line.contains("event: change") => {
                        let at = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_nanos();
                        let _ = at_tx.send(at).await;
                        return;
                    }
                    Ok(_) => {}
                }
            }
        });
    }
    drop((ready_tx, at_tx));
    let mut open = 0;
    for _ in 0..n {
        match ready_rx.recv().await {
            Some(true) => open += 1,
            Some(false) => {}
            None => break,
        }
    }
    println!("ready {open}");
    let mut times = Vec::with_capacity(open);
    while times.len() < open {
        match tokio::time::timeout(std::time::Duration::from_secs(30), at_rx.recv()).await {
            Ok(Some(at)) => times.push(at.to_string()),
            _ => break,
        }
    }
    println!("times {}", times.join(" "));
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (N client sockets need N descriptors).
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Whole portal pages over HTTP (issue 22), logged in, on the data the inbox/portal seeding
/// left: the inbox, one conversation, the review queue. Closed loop (`BENCH_PAGE_CONCURRENCY`
/// clients, `BENCH_PAGE_REQUESTS` each), then open loop at `BENCH_PAGE_RATE` pages/s for
/// `BENCH_PAGE_SECS` s (latency from when each request was due). Any non-200 fails the run.
/// After each closed loop, the statements the page's requests ran, from `pg_stat_statements`
/// (the bench cluster preloads it): calls and execution time per page, buffers per call.
async fn pages(
    state: &crate::state::AppState,
    user: uuid::Uuid,
    owner_url: &str,
) -> anyhow::Result<()> {
    let env = |k: &str, d: f64| -> f64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let concurrency = env("BENCH_PAGE_CONCURRENCY", 8.0) as usize;
    let per_client = env("BENCH_PAGE_REQUESTS", 100.0) as usize;
    let rate = env("BENCH_PAGE_RATE", 200.0);
    let secs = env("BENCH_PAGE_SECS", 15.0);
    let cookie = crate::http::session::start_session(state, user, "bench", "127.0.0.1").await?;
    let cookie = format!("{}={}", cookie.name(), cookie.value());
    let tenant = db::tenants::tenant_by_slug(&state.db, "bench")
        .await?
        .ok_or_else(|| anyhow::anyhow!("bench tenant"))?;
    let mut tx = db::begin_tenant(&state.db, tenant.id).await?;
    // 200 recent conversations, taken in turn: one conversation opened by every request at
    // once would measure its own row locks (the viewer's presence row), not the page.
    let convs: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations ORDER BY last_message_at DESC, id DESC LIMIT 200",
    )
    .fetch_all(&mut *tx)
    .await?;
    let pending: i64 = db::ai::queue_count(&mut tx).await?;
    tx.commit().await?;
    println!(
        "pages: {pending} drafts waiting for review; {} conversations opened in turn",
        convs.len()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (trigger, shutdown) = Shutdown::new();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        crate::serve_on(listener, crate::wiring::App::new(server_state), shutdown).await
    });
    let http = reqwest::Client::builder()
        .user_agent("bench")
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let pages: [(String, Vec<String>); 3] = [
        (
            "inbox".to_owned(),
            vec![format!("http://{addr}/t/bench/conversations")],
        ),
        (
            "conversation".to_owned(),
            convs
                .iter()
                .map(|c| format!("http://{addr}/t/bench/conversations/{c}"))
                .collect(),
        ),
        (
            "review".to_owned(),
            vec![format!("http://{addr}/t/bench/review")],
        ),
    ];
    // One GET: Ok(ms) on 200 with the whole body read, Err(description) otherwise.
    async fn get(http: &reqwest::Client, url: &str, cookie: &str) -> Result<f64, String> {
        let t0 = Instant::now();
        let r = http
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| e.to_string())?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("{status}"));
        }
        if body.len() < 200 {
            return Err(format!("short body ({} bytes)", body.len()));
        }
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    }
    // Warm-up (templates, pools, caches), and a check that every page answers 200.
    for (name, urls) in &pages {
        for url in urls.iter().cycle().take(5.max(urls.len())) {
            get(&http, url, &cookie)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
    }
    let report = |label: String, results: Vec<Result<f64, String>>, wall: f64| {
        let total = results.len();
        let mut errors = Vec::new();
        let ms: Vec<f64> = results
            .into_iter()
            .filter_map(|r| r.map_err(|e| errors.push(e)).ok())
            .collect();
        if errors.is_empty() {
            summary(&label, ms);
            println!("{:<34} {:.0} pages/s", "", total as f64 / wall);
        } else {
            println!(
                "{label}: {} of {total} pages failed (first: {}): no figure",
                errors.len(),
                errors[0]
            );
        }
        errors.len()
    };
    let mut owner = sqlx::PgConnection::connect(owner_url).await?;
    let stats = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut owner)
        .await
        .is_ok()
        && sqlx::query("SELECT pg_stat_statements_reset()")
            .execute(&mut owner)
            .await
            .is_ok();
    if !stats {
        println!("pg_stat_statements not loaded (restart the bench cluster): no statement table");
    }
    let mut failed = 0;
    for (name, urls) in &pages {
        if stats {
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&mut owner)
                .await?;
        }
        // (1) Closed loop.
        let started = Instant::now();
        let mut handles = Vec::new();
        for client in 0..concurrency {
            let (http, urls, cookie) = (http.clone(), urls.clone(), cookie.clone());
            handles.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(per_client);
                for k in 0..per_client {
                    let url = &urls[(client * per_client + k) % urls.len()];
                    out.push(get(&http, url, &cookie).await);
                }
                out
            }));
        }
        let mut results = Vec::new();
        for h in handles {
            results.extend(h.await?);
        }
        let served = results.len();
        failed += report(
            format!("page {name}, closed c={concurrency}"),
            results,
            started.elapsed().as_secs_f64(),
        );
        if stats {
            statement_table(&mut owner, served).await?;
        }
        // (2) Open loop: on schedule, latency counted from when each request was due.
        let n = (rate * secs) as usize;
        let started = Instant::now();
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let due = started + std::time::Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let (http, url, cookie) = (http.clone(), urls[i % urls.len()].clone(), cookie.clone());
            handles.push(tokio::spawn(async move {
                get(&http, &url, &cookie)
                    .await
                    .map(|_| due.elapsed().as_secs_f64() * 1000.0)
            }));
        }
        let mut results = Vec::with_capacity(n);
        for h in handles {
            results.push(h.await?);
        }
        failed += report(
            format!("page {name}, open {rate:.0}/s"),
            results,
            started.elapsed().as_secs_f64(),
        );
    }
    trigger.trigger();
    let _ = server.await;
    anyhow::ensure!(failed == 0, "{failed} page(s) failed");
    Ok(())
}

/// What the database did for `pages` pages, from `pg_stat_statements` (reset before them):
/// each statement's calls and execution time per page, its buffer hits and reads per call,
/// and the totals. Execution time only: parse, bind and the round trips are not in it.
async fn statement_table(owner: &mut sqlx::PgConnection, pages: usize) -> anyhow::Result<()> {
    let rows: Vec<(i64, f64, f64, i64, i64, String)> = sqlx::query_as(
        "SELECT calls, total_exec_time, mean_exec_time, shared_blks_hit, shared_blks_read,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 80)
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%pg_stat_statements%'
         ORDER BY total_exec_time DESC",
    )
    .fetch_all(&mut *owner)
    .await?;
    let per = |x: f64| x / pages.max(1) as f64;
    let (calls, ms): (i64, f64) = rows.iter().fold((0, 0.0), |(c, t), r| (c + r.0, t + r.1));
    println!(
        "  database: {:.1} statements and {:.2} ms of execution per page ({} distinct)",
        per(calls as f64),
        per(ms),
        rows.len()
    );
    println!(
        "  {:>6} {:>8} {:>8} {:>7} {:>6}  statement",
        "/page", "ms/page", "mean ms", "hit", "read"
    );
    for (calls, total, mean, hit, read, query) in rows.iter().take(14) {
        let c = (*calls).max(1) as f64;
        println!(
            "  {:>6.2} {:>8.3} {:>8.3} {:>7.1} {:>6.1}  {query}",
            per(*calls as f64),
            per(*total),
            mean,
            *hit as f64 / c,
            *read as f64 / c
        );
    }
    Ok(())
}

/// One signed-webhook body as Evolution sends a text from a contact (`messages.upsert`).
fn evolution_text(phone: &str, id: &str, timestamp: i64) -> serde_json::Value {
    json!({
        "event": "messages.upsert", "instance": "bench",
        "data": { "key": { "remoteJid": format!("{phone}@s.whatsapp.net"), "fromMe": false, "id": id },
                  "pushName": "Paciente", "message": { "conversation": "Olá, gostaria de marcar uma consulta para amanhã." },
                  "messageType": "conversation", "messageTimestamp": timestamp }
    })
}

/// The approve bench's step breakdown (`BENCH_TRACE=1`): a tracing layer that keeps each
/// statement sqlx runs (its summary, its round trip, when it ended, and whether it ran in the
/// approval's call or in the worker), then for every approval the statements between its call
/// and the gateway's receipt, as medians in the order they ran.
mod steps {
    use std::{
        collections::BTreeMap,
        sync::{Arc, Mutex},
        time::Instant,
    };
    use tracing_subscriber::{layer::Context, prelude::*, registry::LookupSpan};

    #[derive(Clone)]
    pub(super) struct Step {
        at: Instant,
        side: &'static str,
        what: String,
        secs: f64,
    }

    pub(super) type Steps = Arc<Mutex<Vec<Step>>>;

    struct Layer(Steps);

    #[derive(Default)]
    struct Fields {
        summary: String,
        secs: f64,
    }

    impl tracing::field::Visit for Fields {
        fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
            if f.name() == "summary" {
                self.summary = v.chars().take(70).collect();
            }
        }
        fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
            if f.name() == "elapsed_secs" {
                self.secs = v;
            }
        }
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            if f.name() == "summary" {
                self.summary = format!("{v:?}").chars().take(70).collect();
            }
        }
    }

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Layer {
        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            let target = event.metadata().target();
            if target != "sqlx::query" && target != "crate::db::tx" {
                return;
            }
            let mut f = Fields::default();
            event.record(&mut f);
            let side = match ctx.event_scope(event).and_then(|s| s.from_root().next()) {
                Some(root) if root.name() == "approve" => "approve",
                _ => "worker",
            };
            let what = if target == "crate::db::tx" {
                "BEGIN (+ tenant)".to_owned()
            } else {
                f.summary
            };
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Step {
                    at: Instant::now(),
                    side,
                    what,
                    secs: f.secs,
                });
        }
    }

    pub(super) fn install() -> Option<Steps> {
        let steps: Steps = Arc::default();
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::DEBUG)
            .with_target("crate::db::tx", tracing::Level::TRACE)
            .with_target("sigmaai", tracing::Level::INFO)
            .with_target("ingest", tracing::Level::INFO);
        tracing_subscriber::registry()
            .with(Layer(steps.clone()).with_filter(filter))
            .try_init()
            .ok()?;
        Some(steps)
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }

    /// Per approval, its statements in the order they ran (`side` and the n-th occurrence of
    /// the same summary name a step); printed with the median end time after the approval's
    /// call and the median round trip.
    pub(super) fn report(steps: &Steps, windows: &[(Instant, Instant)]) {
        let all = steps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        // (side, statement, n-th of its kind) → (end offsets ms, round trips ms)
        type Key = (&'static str, String, usize);
        let mut table: BTreeMap<Key, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        let mut counts: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for (t, arrived) in windows {
            let mut seen: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
            let mut n: BTreeMap<&'static str, f64> = BTreeMap::new();
            for s in all.iter().filter(|s| s.at >= *t && s.at <= *arrived) {
                let k = seen.entry((s.side, s.what.clone())).or_default();
                *k += 1;
                *n.entry(s.side).or_default() += 1.0;
                let e = table.entry((s.side, s.what.clone(), *k)).or_default();
                e.0.push(s.at.duration_since(*t).as_secs_f64() * 1000.0);
                e.1.push(s.secs * 1000.0);
            }
            for (side, c) in n {
                counts.entry(side).or_default().push(c);
            }
        }
        let mut rows: Vec<_> = table.into_iter().collect();
        rows.sort_by(|a, b| median(a.1.0.clone()).total_cmp(&median(b.1.0.clone())));
        println!("step breakdown (median over approvals; ends = ms after the approval's call):");
        for ((side, what, k), (ends, rts)) in rows {
            if ends.len() * 2 < windows.len() {
                continue; // a statement in fewer than half the approvals (the periodic jobs)
            }
            println!(
                "  {side:<7} ends {:>6.2} ms  round trip {:>5.2} ms  ×{:<4} {what}{}",
                median(ends.clone()),
                median(rts),
                ends.len(),
                if k > 1 {
                    format!(" (#{k})")
                } else {
                    String::new()
                }
            );
        }
        for (side, c) in counts {
            println!("  {side}: {} statements per approval (median)", median(c));
        }
        let arrive: Vec<f64> = windows
            .iter()
            .map(|(t, a)| a.duration_since(*t).as_secs_f64() * 1000.0)
            .collect();
        println!("  gateway receives at {:.2} ms (median)", median(arrive));
    }
}
