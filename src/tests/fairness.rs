//! Fairness between tenants in the ingest queue (issue 22): while one tenant floods, another
//! tenant's delivery goes out in the next batch instead of waiting behind the flood.
//!
//! No timing is involved: the writers are held back by a transaction of the test that locks
//! the noisy tenant's conversation, the flood and then the quiet delivery are queued, and the
//! lock is let go. Which transaction stored each message is its row's `xmin`, and
//! transactions get their ids in the order they start writing, so the number of the noisy
//! tenant's batches that started before the quiet delivery's says where it was served.

use std::collections::HashSet;

use sqlx::Connection;

use crate::tests::{
    client::Client,
    harness::{self, eventually},
    overload::app_queries_waiting,
    wa::{Gw, evo_text},
};

const NOISY_PHONE: &str = "5511988887777";
const QUIET_PHONE: &str = "5521977776666";
/// Five full batches of the noisy tenant's deliveries queue up behind the stalled writers.
const FLOOD: i64 = 5 * 128;

/// A second tenant (clinic-b) with its own Evolution channel: (webhook URL, secret).
async fn quiet_tenant(gw: &Gw) -> (String, String) {
    let b = Client::new(&gw.w.server);
    let r = b
        .sign_up("Bia Owner", "owner@b.test", "Clinic B", "clinic-b")
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b
        .submit(
            "/t/clinic-b/channels",
            "/t/clinic-b/channels/evolution",
            &[
                ("name", "Front desk"),
                ("base_url", &gw.gateway.uri()),
                ("instance", "clinic"),
                ("api_key", "evo-api-key-456"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let url = r.input_value("wh-url").expect("webhook URL shown");
    let secret = r.input_value("wh-secret").expect("webhook secret shown");
    let hook = format!("/webhooks/{}", url.split_once("/webhooks/").unwrap().1);
    (gw.w.server.url(&hook), secret)
}

async fn post(http: &reqwest::Client, url: &str, secret: &str, body: &serde_json::Value) -> u16 {
    http.post(url)
        .header("x-webhook-token", secret)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_quiet_tenant_is_served_in_the_next_batch_while_a_noisy_one_floods() {
    // The queue's bound is out of the way: this is about order, not refusals.
    let gw = std::sync::Arc::new(
        Gw::evolution_with(|c| {
            c.ingest.max_queued = 10_000;
            c.ingest.max_wait = std::time::Duration::from_secs(3600);
        })
        .await,
    );
    let (quiet_url, quiet_secret) = quiet_tenant(&gw).await;
    let noisy_url = gw.w.server.url(&gw.hook);
    let http = reqwest::Client::new();
    let ts = {
        use crate::clock::Clock;
        gw.w.t.clock.now().unix_timestamp()
    };
    // Each tenant's conversation exists.
    let first = evo_text("NOISY-FIRST", NOISY_PHONE, "Ana", ts, "oi");
    assert_eq!(post(&http, &noisy_url, &gw.secret, &first).await, 200);
    let first = evo_text("QUIET-FIRST", QUIET_PHONE, "Caio", ts, "bom dia");
    assert_eq!(post(&http, &quiet_url, &quiet_secret, &first).await, 200);

    // The noisy tenant's conversation is locked; each writer stalls on a batch of one.
    let url = harness::with_db(&harness::database_url(), &gw.w.t.db_name);
    let mut lock = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("SELECT id FROM conversations WHERE channel_id = $1 FOR UPDATE")
        .bind(gw.channel_id)
        .fetch_all(&mut lock)
        .await
        .unwrap();
    let ingest = gw.w.t.wiring.ingest.clone();
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let send = |id: String, url: String, secret: String, body: serde_json::Value| {
        let (http, done) = (http.clone(), done_tx.clone());
        tokio::spawn(async move {
            let status = post(&http, &url, &secret, &body).await;
            let _ = done.send((id, status));
        });
    };
    for i in 0..2 {
        let id = format!("STALLED-{i}");
        let body = evo_text(&id, NOISY_PHONE, "Ana", ts + 1 + i, "espera");
        send(id, noisy_url.clone(), gw.secret.clone(), body);
        eventually("the writer stalls on the locked conversation", || {
            let gw = gw.clone();
            async move { app_queries_waiting(&gw).await > i }
        })
        .await;
    }
    let before = ingest.stats().deliveries;
    for i in 0..FLOOD {
        let id = format!("FLOOD-{i}");
        let body = evo_text(
            &id,
            NOISY_PHONE,
            "Ana",
            ts + 10 + i,
            &format!("mensagem {i}"),
        );
        send(id, noisy_url.clone(), gw.secret.clone(), body);
    }
    eventually("the whole flood is queued", || {
        let ingest = ingest.clone();
        async move { ingest.stats().deliveries - before == FLOOD as u64 }
    })
    .await;
    // Last in the queue: the quiet tenant's one delivery.
    let body = evo_text("QUIET-1", QUIET_PHONE, "Caio", ts + 1, "posso remarcar?");
    send("QUIET-1".into(), quiet_url, quiet_secret, body);
    eventually("the quiet delivery is queued", || {
        let ingest = ingest.clone();
        async move { ingest.stats().deliveries - before == FLOOD as u64 + 1 }
    })
    .await;
    assert_eq!(ingest.stats().refused, 0);
    assert_eq!(
        ingest.queued(),
        FLOOD as usize + 1,
        "all waiting behind the stall"
    );

    // The database lets go: everything is stored and acknowledged.
    lock.close().await.unwrap();
    drop(done_tx);
    let mut answered = Vec::new();
    while let Some((id, status)) = done_rx.recv().await {
        assert_eq!(status, 200, "{id}");
        answered.push(id);
    }
    assert_eq!(answered.len(), FLOOD as usize + 3);

    // Which transaction stored what (xid order = the order batches started writing).
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT external_id, xmin::text::bigint FROM messages WHERE external_id LIKE 'FLOOD-%' OR external_id = 'QUIET-1'",
    )
    .fetch_all(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(rows.len(), FLOOD as usize + 1, "each stored once");
    let quiet_tx = rows.iter().find(|r| r.0 == "QUIET-1").unwrap().1;
    let flood_batches: HashSet<i64> = rows
        .iter()
        .filter(|r| r.0 != "QUIET-1")
        .map(|r| r.1)
        .collect();
    let batches_before: HashSet<i64> = flood_batches
        .iter()
        .copied()
        .filter(|tx| *tx < quiet_tx)
        .collect();
    // First in line it went out with the first batch after the stall (the other writer's
    // batch, taken at the same moment, may have started first). In arrival order it would
    // have waited for about five.
    assert!(
        batches_before.len() <= 1,
        "{} of the flood's {} batches started before the quiet delivery's",
        batches_before.len(),
        flood_batches.len()
    );
    assert!(
        flood_batches.contains(&quiet_tx),
        "the quiet delivery shared a batch with the flood (its unused share went to the noisy tenant)"
    );
    assert!(flood_batches.len() >= 5, "the flood took several batches");
    assert_eq!(harness::errors_logged(), 0);
}
