//! Overload and database failures (issue 22): webhooks are refused with a retryable 503 and
//! `Retry-After` instead of queueing without bound or answering 500; what was acknowledged
//! is stored exactly once, what was refused is stored when the gateway retries it, and the
//! portal and `/healthz` keep answering meanwhile.
//!
//! The writers are held back the way a slow database holds them: a transaction of the test
//! locks the conversation row every delivery needs, so no timing is involved.

use std::collections::HashSet;

use sqlx::Connection;

use crate::tests::{
    harness::{self, eventually},
    wa::{Gw, evo_text},
};

const PHONE: &str = "5511988887777";

fn now(gw: &Gw) -> i64 {
    use crate::clock::Clock;
    gw.w.t.clock.now().unix_timestamp()
}

/// Locks the channel's conversations until the returned connection's transaction ends.
async fn lock_conversations(gw: &Gw) -> sqlx::PgConnection {
    let url = harness::with_db(&harness::database_url(), &gw.w.t.db_name);
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    let locked: i64 = sqlx::query_scalar(
        "WITH l AS (SELECT id FROM conversations WHERE channel_id = $1 FOR UPDATE) SELECT count(*) FROM l",
    )
    .bind(gw.channel_id)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(locked, 1);
    c
}

/// How many of the application's queries wait on a lock right now.
pub(crate) async fn app_queries_waiting(gw: &Gw) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND usename = 'sigmaai_app' AND wait_event_type = 'Lock'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap()
}

async fn stored_ids(gw: &Gw) -> Vec<String> {
    sqlx::query_scalar("SELECT external_id FROM messages WHERE channel_id = $1 ORDER BY 1")
        .bind(gw.channel_id)
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap()
}

/// A gateway world whose ingest queue holds `max_queued` deliveries (the age bound out of
/// the way), with the conversation of [`PHONE`] stored ("FIRST"); and the time it was sent.
async fn queue_of(max_queued: usize) -> (std::sync::Arc<Gw>, i64) {
    let gw = Gw::evolution_with(move |c| {
        c.ingest.max_queued = max_queued;
        c.ingest.max_wait = std::time::Duration::from_secs(3600);
    })
    .await;
    let ts = now(&gw);
    assert_eq!(
        gw.evo(&evo_text("FIRST", PHONE, "Ana", ts, "oi")).await.0,
        200
    );
    (std::sync::Arc::new(gw), ts)
}

#[tokio::test]
async fn a_full_ingest_queue_answers_503_with_retry_after_and_loses_nothing() {
    // Two deliveries may wait for a writer; the age bound is out of the way.
    let (gw, ts) = queue_of(2).await;

    // The writers stall on the conversation; a burst arrives meanwhile.
    let lock = lock_conversations(&gw).await;
    let before = gw.w.t.wiring.ingest.stats();
    let burst = 12;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..burst {
        let (gw, done) = (gw.clone(), done_tx.clone());
        tokio::spawn(async move {
            let id = format!("BURST-{i}");
            let body = evo_text(&id, PHONE, "Ana", ts + 1 + i, &format!("mensagem {i}"));
            let r = reqwest::Client::new()
                .post(gw.w.server.url(&gw.hook))
                .header("x-webhook-token", &gw.secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let status = r.status().as_u16();
            let json: serde_json::Value = r.json().await.unwrap();
            let _ = done.send((id, status, retry_after, json));
        });
    }
    drop(done_tx);
    // Every delivery of the burst was either queued or refused...
    let ingest = gw.w.t.wiring.ingest.clone();
    eventually("every delivery queued or refused", || {
        let s = ingest.stats();
        let decided = (s.deliveries - before.deliveries) + (s.refused - before.refused);
        async move { decided == burst as u64 }
    })
    .await;
    let refused = (ingest.stats().refused - before.refused) as usize;
    // ...at most two waiting and two batches of at most two in the stalled writers.
    assert!(refused >= burst as usize - 6, "only {refused} refused");
    let mut answered = Vec::new();
    while answered.len() < refused {
        answered.push(done_rx.recv().await.unwrap());
    }
    // The refusals came back while the writers were still stalled: 503, retry later.
    for (id, status, retry_after, json) in &answered {
        assert_eq!(*status, 503, "{id}: {json}");
        let secs: u64 = retry_after
            .as_deref()
            .unwrap_or_else(|| panic!("{id}: no Retry-After"))
            .parse()
            .unwrap();
        assert!(secs >= 1, "{id}: Retry-After {secs}");
        assert_eq!(json["error"], "error.unavailable", "{json}");
    }
    assert!(
        done_rx.try_recv().is_err(),
        "nothing queued was answered before its commit"
    );
    // The rest of the server is unaffected.
    assert_eq!(gw.w.owner.get("/healthz").await.status, 200);
    let inbox = gw.w.owner.get("/t/clinic-a/conversations").await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert_eq!(stored_ids(&gw).await, vec!["FIRST".to_owned()]);

    // The database lets go: every queued delivery is stored and acknowledged.
    lock.close().await.unwrap();
    while let Some(a) = done_rx.recv().await {
        assert_eq!(a.1, 200, "{}: {}", a.0, a.3);
        answered.push(a);
    }
    assert_eq!(answered.len(), burst as usize);
    let acked: HashSet<&str> = answered
        .iter()
        .filter(|a| a.1 == 200)
        .map(|a| a.0.as_str())
        .collect();
    let mut expected: Vec<String> = acked.iter().map(|s| s.to_string()).collect();
    expected.push("FIRST".into());
    expected.sort();
    assert_eq!(
        stored_ids(&gw).await,
        expected,
        "acknowledged = stored, once each"
    );

    // The gateway retries what was refused: now everything is stored, exactly once.
    for (id, status, _, _) in &answered {
        if *status == 503 {
            let i: i64 = id.trim_start_matches("BURST-").parse().unwrap();
            let body = evo_text(id, PHONE, "Ana", ts + 1 + i, &format!("mensagem {i}"));
            assert_eq!(gw.evo(&body).await.0, 200, "{id} retried");
        }
    }
    let all = stored_ids(&gw).await;
    assert_eq!(all.len(), burst as usize + 1);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
    assert_eq!(harness::errors_logged(), 0, "an overload is not an error");
}

/// The database dropping our connection mid-write (what a restart or failover does) is a
/// 503 the gateway retries, never a 500; the retry is stored once.
#[tokio::test]
async fn a_database_connection_lost_mid_write_is_a_retryable_503() {
    let gw = Gw::evolution().await;
    let ts = now(&gw);
    assert_eq!(
        gw.evo(&evo_text("FIRST", PHONE, "Ana", ts, "oi")).await.0,
        200
    );
    let lock = lock_conversations(&gw).await;
    let msg = evo_text("LOST", PHONE, "Ana", ts + 1, "de novo");
    let pending = {
        let (url, secret, body) = (gw.w.server.url(&gw.hook), gw.secret.clone(), msg.clone());
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("x-webhook-token", secret)
                .json(&body)
                .send()
                .await
                .unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.status().as_u16(), retry_after, r.text().await.unwrap())
        })
    };
    eventually("the write waits on the lock", || async {
        app_queries_waiting(&gw).await > 0
    })
    .await;
    // The server goes away under the waiting write, as in a restart.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND usename = 'sigmaai_app' AND wait_event_type = 'Lock') k",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert!(killed >= 1);
    let (status, retry_after, body) = pending.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"), "{body}");
    assert!(!body.contains("terminat"), "no internals: {body}");
    lock.close().await.unwrap();
    assert_eq!(stored_ids(&gw).await, vec!["FIRST".to_owned()]);
    // The gateway's retry is stored, once.
    assert_eq!(gw.evo(&msg).await.0, 200);
    assert_eq!(gw.evo(&msg).await.0, 200);
    assert_eq!(
        stored_ids(&gw).await,
        vec!["FIRST".to_owned(), "LOST".to_owned()]
    );
    assert_eq!(
        harness::errors_logged(),
        0,
        "a lost connection is retryable, not an error"
    );
}

/// A Redis-speaking server on loopback that answers every command with `:1` until told to
/// go silent (a hung Redis: connections stay open, nothing comes back). Counts the PUBLISH
/// commands it received.
struct HungRedis {
    url: String,
    answering: std::sync::Arc<std::sync::atomic::AtomicBool>,
    publishes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// One RESP array command from the front of `buf`: its length and its first word.
fn resp_command(buf: &[u8]) -> Option<(usize, String)> {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    }
    if buf.first() != Some(&b'*') {
        return None;
    }
    let (items, mut at) = line(buf, 0)?;
    let mut first = String::new();
    for i in 0..items {
        if buf.get(at) != Some(&b'$') {
            return None;
        }
        let (len, start) = line(buf, at)?;
        if buf.len() < start + len + 2 {
            return None;
        }
        if i == 0 {
            first = String::from_utf8_lossy(&buf[start..start + len]).to_ascii_uppercase();
        }
        at = start + len + 2;
    }
    Some((at, first))
}

impl HungRedis {
    async fn start() -> HungRedis {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let answering = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let publishes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, p) = (answering.clone(), publishes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (a, p) = (a.clone(), p.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some((len, cmd)) = resp_command(&buf) {
                            buf.drain(..len);
                            if cmd == "PUBLISH" {
                                p.fetch_add(1, Ordering::SeqCst);
                            }
                            if a.load(Ordering::SeqCst) && sock.write_all(b":1\r\n").await.is_err()
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        HungRedis {
            url,
            answering,
            publishes,
        }
    }

    fn publishes(&self) -> usize {
        self.publishes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Redis hanging (not refusing: answering nothing) costs one request its timeout; after
/// that the breaker is open and nothing waits on Redis until it answers again, which a
/// background reconnect notices by itself.
#[tokio::test]
async fn a_hung_redis_is_cut_off_after_one_failure_and_found_again() {
    use std::sync::atomic::Ordering;
    let redis = HungRedis::start().await;
    let url = redis.url.clone();
    let t = harness::TestApp::with_config(|c| {
        c.redis_url = Some(secrecy::SecretString::from(url));
    })
    .await;
    let tenant = uuid::Uuid::now_v7();
    let event = crate::live::Event::Inbox;
    t.state.live.publish(tenant, &event).await;
    assert_eq!(redis.publishes(), 1, "Redis in use while it answers");
    redis.answering.store(false, Ordering::SeqCst);
    // This one waits for the response timeout, fails, and opens the breaker...
    t.state.live.publish(tenant, &event).await;
    assert_eq!(redis.publishes(), 2);
    // ...so these never reach Redis (each falls back to Postgres NOTIFY at once).
    for _ in 0..20 {
        t.state.live.publish(tenant, &event).await;
    }
    assert_eq!(redis.publishes(), 2, "nothing waits on a hung Redis");
    // Redis answers again: a background reconnect finds it, with no request waiting on it.
    redis.answering.store(true, Ordering::SeqCst);
    eventually("Redis is used again", || {
        let (state, event) = (t.state.clone(), event.clone());
        let before = redis.publishes();
        let redis = &redis;
        async move {
            state.live.publish(tenant, &event).await;
            redis.publishes() > before
        }
    })
    .await;
}

/// Past the queue's bound, a flooding tenant's delivery is turned away before anything reads
/// it (no parsing, sealing or blind indexing spent on what is refused): even a body that is
/// not JSON — a 400 once read — gets the 503 and its `Retry-After`. Once the queue drains,
/// the same bytes are read again and refused for what they are.
#[tokio::test]
async fn past_the_bound_a_delivery_is_refused_before_it_is_read() {
    let (gw, ts) = queue_of(1).await;
    let lock = lock_conversations(&gw).await;
    let ingest = gw.w.t.wiring.ingest.clone();
    // Both writers stall on a delivery each; a third waits in the queue: it is full.
    let mut queued = Vec::new();
    for i in 0..3 {
        let gw2 = gw.clone();
        queued.push(tokio::spawn(async move {
            let id = format!("HELD-{i}");
            gw2.evo(&evo_text(&id, PHONE, "Ana", ts + 1 + i, "espera"))
                .await
                .0
        }));
        if i < 2 {
            eventually("the writer stalls on the locked conversation", || {
                let gw = gw.clone();
                async move { app_queries_waiting(&gw).await > i }
            })
            .await;
        }
    }
    eventually("one delivery waits in the queue", || {
        let ingest = ingest.clone();
        async move { ingest.queued() == 1 }
    })
    .await;
    let post = |body: &'static str| {
        reqwest::Client::new()
            .post(gw.w.server.url(&gw.hook))
            .header("x-webhook-token", &gw.secret)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let refused_before = ingest.stats().refused;
    let r = post("{not json").await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "refused before it was read");
    let secs: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs >= 1);
    assert_eq!(ingest.stats().refused, refused_before + 1);
    assert_eq!(ingest.queued(), 1, "nothing of it was queued");

    // The database lets go: the held deliveries are stored; the bad bytes are now read and
    // refused as malformed (the gateway does not retry a 400).
    lock.close().await.unwrap();
    for q in queued {
        assert_eq!(q.await.unwrap(), 200);
    }
    let r = post("{not json").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        stored_ids(&gw).await,
        ["FIRST", "HELD-0", "HELD-1", "HELD-2"]
    );
    assert_eq!(harness::errors_logged(), 0, "an overload is not an error");
}
