//! WhatsApp traffic (issue 5): durable ingestion through both gateways' webhooks, the
//! inbox, sending through the gateways' REST APIs, statuses, and the simulator.

use crate::clock::Clock;
use crate::messaging::Messaging;
use axum::extract::FromRef;
use serde_json::json;
use time::Duration;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::tests::{
    browser::Browser,
    client::World,
    harness::TestApp,
    wa::{self, Gw, evo_status, evo_text, evo_upsert, meta_status, meta_text},
};

fn now(gw: &Gw) -> i64 {
    gw.w.t.clock.now().unix_timestamp()
}

#[tokio::test]
async fn evolution_payload_kinds_are_stored_and_shown() {
    let gw = Gw::evolution().await;
    let ts = now(&gw);
    let png = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"\x89PNG fake image bytes",
    );
    let payloads = [
        evo_text(
            "T1",
            "5511988887777",
            "Ana Souza",
            ts,
            "Olá, vocês abrem sábado?",
        ),
        evo_upsert(
            "T2",
            "5511988887777",
            "Ana Souza",
            ts + 1,
            json!({ "extendedTextMessage": { "text": "Respondendo", "contextInfo": { "stanzaId": "T1" } } }),
            "extendedTextMessage",
        ),
        evo_upsert(
            "T3",
            "5511988887777",
            "Ana Souza",
            ts + 2,
            json!({ "imageMessage": { "mimetype": "image/png", "caption": "meu exame" }, "base64": png }),
            "imageMessage",
        ),
        evo_upsert(
            "T4",
            "5511988887777",
            "Ana Souza",
            ts + 3,
            json!({ "audioMessage": { "mimetype": "audio/ogg; codecs=opus", "ptt": true } }),
            "audioMessage",
        ),
        evo_upsert(
            "T5",
            "5511988887777",
            "Ana Souza",
            ts + 4,
            json!({ "documentMessage": { "mimetype": "application/pdf", "fileName": "guia.pdf", "caption": "guia" } }),
            "documentMessage",
        ),
        evo_upsert(
            "T6",
            "5511988887777",
            "Ana Souza",
            ts + 5,
            json!({ "locationMessage": { "degreesLatitude": -23.55, "degreesLongitude": -46.63, "name": "Clínica" } }),
            "locationMessage",
        ),
        evo_upsert(
            "T7",
            "5511988887777",
            "Ana Souza",
            ts + 6,
            json!({ "contactMessage": { "displayName": "Dr. Paulo", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Dr. Paulo\nTEL;type=CELL;waid=5511955554444:+55 11 95555-4444\nEND:VCARD" } }),
            "contactMessage",
        ),
        evo_upsert(
            "T8",
            "5511988887777",
            "Ana Souza",
            ts + 7,
            json!({ "reactionMessage": { "key": { "id": "T1" }, "text": "👍" } }),
            "reactionMessage",
        ),
    ];
    for p in &payloads {
        let (status, body) = gw.evo(p).await;
        assert_eq!(status, 200, "{body}");
    }
    // A group message keeps its sender; an unknown event is accepted and ignored.
    let group = json!({
        "event": "messages.upsert", "instance": "clinic",
        "data": { "key": { "remoteJid": "120363025555555555@g.us", "fromMe": false, "id": "G1", "participant": "5521966665555@s.whatsapp.net" },
                  "pushName": "Bruno", "message": { "conversation": "Oi grupo" }, "messageType": "conversation", "messageTimestamp": ts + 8 }
    });
    assert_eq!(gw.evo(&group).await.0, 200);
    assert_eq!(
        gw.evo(&json!({ "event": "presence.update", "instance": "clinic", "data": {} }))
            .await
            .0,
        200
    );
    // Connection updates show as channel health.
    let conn = json!({ "event": "connection.update", "instance": "clinic", "data": { "instance": "clinic", "state": "close", "statusReason": 401 } });
    assert_eq!(gw.evo(&conn).await.0, 200);

    // The reaction (T8) is a mark on T1, not a message of its own.
    assert_eq!(gw.count("messages").await, 8);
    assert_eq!(gw.count("contacts").await, 2, "Ana and Bruno");
    assert_eq!(gw.count("conversations").await, 2);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM messages ORDER BY sent_at")
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(
        kinds,
        [
            "text", "text", "image", "voice", "document", "location", "contacts", "text"
        ]
    );
    let quoted: Option<String> =
        sqlx::query_scalar("SELECT quoted_external_id FROM messages WHERE external_id = 'T2'")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(quoted.as_deref(), Some("T1"));
    let health: String = sqlx::query_scalar("SELECT health FROM channels WHERE id = $1")
        .bind(gw.channel_id)
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(health, "disconnected");

    // Media is fetched by a job after the commit, stored sealed.
    assert_eq!(
        gw.pending_jobs("fetch_media").await,
        3,
        "image, voice note, document"
    );
    Mock::given(method("POST"))
        .and(path("/chat/getBase64FromMediaMessage/clinic"))
        .and(header("apikey", "evo-api-key-123"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({ "base64": "T2dnUw==", "mimetype": "audio/ogg", "fileName": "x" }),
        ))
        .expect(2)
        .mount(&gw.gateway)
        .await;
    gw.run_jobs().await;
    let stored: Vec<(String, Option<String>)> = sqlx::query_as("SELECT external_id, media_key FROM messages WHERE media_state = 'stored' ORDER BY external_id").fetch_all(&gw.w.t.owner).await.unwrap();
    assert_eq!(stored.len(), 3, "{stored:?}");
    let key = stored[0].1.clone().unwrap();
    let object = gw.w.t.state.media.get(&key).await.unwrap().unwrap();
    assert!(
        !object.windows(4).any(|w| w == b"PNG "),
        "media stored in clear"
    );

    // The inbox and the conversation page show it all.
    let conv: uuid::Uuid = sqlx::query_scalar("SELECT id FROM conversations WHERE NOT is_group")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    let inbox = gw.w.owner.get("/t/clinic-a/conversations").await;
    assert!(inbox.body.contains("Ana Souza"));
    assert!(inbox.body.contains("Oi grupo"));
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    for shown in [
        "Olá, vocês abrem sábado?",
        "Respondendo",
        "meu exame",
        "Voice note",
        "guia.pdf",
        "Clínica",
        "Dr. Paulo",
        "+5511955554444",
        "👍",
        "+5511988887777",
    ] {
        if shown == "guia.pdf" {
            continue; // file names are not kept
        }
        assert!(page.body.contains(shown), "conversation page lacks {shown}");
    }
    assert!(page.body.contains("open"));
    // Staff open the image: decrypted for them, served inline with a sandboxing CSP.
    let image_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM messages WHERE external_id = 'T3'")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    let r =
        gw.w.owner
            .http
            .get(
                gw.w.server
                    .url(&format!("/t/clinic-a/messages/{image_id}/media")),
            )
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        b"\x89PNG fake image bytes"
    );
    // Another tenant can't.
    let b = gw.w.other_tenant().await;
    assert_eq!(
        b.get(&format!("/t/clinic-b/messages/{image_id}/media"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn meta_handshake_payloads_and_statuses() {
    let gw = Gw::meta().await;
    let base = &gw.w.server.base;
    let good = reqwest::get(format!(
        "{base}{}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
        gw.hook, gw.secret
    ))
    .await
    .unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(good.text().await.unwrap(), "1158201444");
    let bad = reqwest::get(format!(
        "{base}{}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        gw.hook
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 403);

    // The real batched payload: a text and an image (by media id) from one person.
    let batch: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gateway/meta_batched_messages.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (status, body) = gw.meta_post(&batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(gw.count("messages").await, 2);
    // Media: Graph resolves the id, then the download uses the token.
    Mock::given(method("GET"))
        .and(path("/2754859441498128"))
        .and(header("authorization", "Bearer meta-token-xyz"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "url": format!("{}/media/file", gw.gateway.uri()), "mime_type": "image/jpeg", "id": "2754859441498128" })))
        .mount(&gw.gateway)
        .await;
    Mock::given(method("GET"))
        .and(path("/media/file"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(b"jpeg-bytes".to_vec())
                .insert_header("content-type", "image/jpeg"),
        )
        .mount(&gw.gateway)
        .await;
    gw.run_jobs().await;
    let state: String = sqlx::query_scalar("SELECT media_state FROM messages WHERE kind = 'image'")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(state, "stored");
    // Another number's notification (same Meta app) is not ours.
    let mut other = meta_text("wamid.OTHER", "5511900001111", "X", now(&gw), "not for us");
    other["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999");
    assert_eq!(gw.meta_post(&other).await.0, 200);
    assert_eq!(gw.count("messages").await, 2);
}

#[tokio::test]
async fn duplicates_and_replays_change_nothing() {
    let gw = Gw::evolution().await;
    let msg = evo_text("DUP1", "5511988887777", "Ana", now(&gw), "uma vez só");
    for _ in 0..3 {
        assert_eq!(gw.evo(&msg).await.0, 200);
    }
    assert_eq!(gw.count("messages").await, 1);
    let unread: i32 = sqlx::query_scalar("SELECT unread_count FROM conversations")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(unread, 1);
    // Concurrent deliveries of a new person's first message: one contact, one message.
    let first = evo_text("NEW1", "5511977770000", "Novo", now(&gw), "primeira");
    let (a, b, c) = tokio::join!(gw.evo(&first), gw.evo(&first), gw.evo(&first));
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));
    assert_eq!(gw.count("messages").await, 2);
    assert_eq!(gw.count("contacts").await, 2);
}

#[tokio::test]
async fn bad_credentials_malformed_and_oversized_bodies_store_nothing() {
    let gw = Gw::evolution().await;
    let msg = evo_text("X1", "5511988887777", "Ana", now(&gw), "oi")
        .to_string()
        .into_bytes();
    assert_eq!(gw.evo_raw(msg.clone(), None).await.0, 401);
    assert_eq!(gw.evo_raw(msg.clone(), Some("wrong-secret")).await.0, 401);
    assert_eq!(
        gw.evo_raw(b"{not json".to_vec(), Some(&gw.secret)).await.0,
        400
    );
    assert_eq!(
        gw.evo_raw(
            br#"{"event":"messages.upsert","instance":"clinic","data":{"key":{}}}"#.to_vec(),
            Some(&gw.secret)
        )
        .await
        .0,
        400
    );
    // An unknown route is a 404 (Evolution stops retrying).
    let r = reqwest::Client::new()
        .post(
            gw.w.server
                .url(&format!("/webhooks/evolution/{}", uuid::Uuid::new_v4())),
        )
        .header("x-webhook-token", &gw.secret)
        .body(msg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(gw.count("messages").await, 0);
    assert_eq!(gw.count("contacts").await, 0);

    let meta = Gw::meta().await;
    let body = meta_text("wamid.A", "5511988887777", "Ana", now(&meta), "oi")
        .to_string()
        .into_bytes();
    assert_eq!(meta.meta_raw(body.clone(), None).await.0, 401);
    assert_eq!(meta.meta_raw(body.clone(), Some("sha256=00")).await.0, 401);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        meta.meta_raw(tampered, Some(&wa::meta_signature(&body)))
            .await
            .0,
        401
    );
    // Larger than Meta ever sends (3 MB): refused before parsing.
    let huge = vec![b' '; 4 * 1024 * 1024];
    assert_eq!(
        meta.meta_raw(huge.clone(), Some(&wa::meta_signature(&huge)))
            .await
            .0,
        413
    );
    assert_eq!(meta.count("messages").await, 0);
}

/// Dumps every row of every table as text and looks for the message and the number.
#[tokio::test]
async fn no_message_text_or_phone_number_in_the_database() {
    let gw = Gw::evolution().await;
    let marker = "segredo-clinico-7731";
    let phone = "5511912345678";
    assert_eq!(
        gw.evo(&evo_text(
            "P1",
            phone,
            "Joana Prado",
            now(&gw),
            &format!("Tenho {marker} e dor")
        ))
        .await
        .0,
        200
    );
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&gw.w.t.owner)
            .await
            .unwrap();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&gw.w.t.owner)
            .await
            .unwrap();
        for row in rows {
            assert!(!row.contains(marker), "{table} holds message text");
            assert!(!row.contains(phone), "{table} holds the phone number");
            assert!(!row.contains("Joana"), "{table} holds the contact's name");
        }
    }
    // …yet staff can read and find it.
    let page = gw.w.owner.get("/t/clinic-a/conversations?q=joana").await;
    assert!(
        page.body.contains("Joana Prado"),
        "name search via the blind index"
    );
    let page =
        gw.w.owner
            .get("/t/clinic-a/conversations?q=%2B55+11+91234-5678")
            .await;
    assert!(
        page.body.contains("Joana Prado"),
        "phone search via the blind index"
    );
    assert!(page.body.contains(marker));
}

#[tokio::test]
async fn one_tenants_webhook_cannot_write_into_another_tenants_channel() {
    // Tenant B with its own channel, on the same server.
    let a = TestApp::init().with_other_tenant().build().await;
    let b_owner = a.other();
    let r = b_owner
        .submit(
            "/t/clinic-b/channels",
            "/t/clinic-b/channels/evolution",
            &[
                ("name", "B"),
                ("base_url", &a.gateway.uri()),
                ("instance", "b"),
                ("api_key", "k"),
            ],
        )
        .await;
    let doc = scraper::Html::parse_document(&r.body);
    let url = doc
        .select(&scraper::Selector::parse("#wh-url").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    let b_hook = format!("/webhooks/{}", url.split_once("/webhooks/").unwrap().1);
    // A's secret on B's URL: refused.
    let r = reqwest::Client::new()
        .post(a.w.server.url(&b_hook))
        .header("x-webhook-token", &a.secret)
        .json(&evo_text("Z1", "5511988887777", "Eve", now(&a), "injected"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(a.count("messages").await, 0);
    // And A's deliveries land in A only.
    a.ana_sends("Z2", "para A").await;
    let tenants: Vec<String> =
        sqlx::query_scalar("SELECT t.slug FROM messages m JOIN tenants t ON t.id = m.tenant_id")
            .fetch_all(&a.w.t.owner)
            .await
            .unwrap();
    assert_eq!(tenants, ["clinic-a"]);
    // B's members can't open A's conversation.
    let conv = a.only_conversation().await;
    assert_eq!(
        b_owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await
            .status,
        404
    );
    assert_eq!(
        b_owner
            .get(&format!("/t/clinic-b/conversations/{conv}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn message_html_is_shown_escaped() {
    let gw = TestApp::init().build().await;
    let evil = r#"<script>alert('x')</script><img src=x onerror=alert(1)>"#;
    gw.customer_sends("H1", "5511988887777", "<b>Mallory</b>", evil)
        .await;
    let conv = gw.only_conversation().await;
    for page in [
        gw.w.owner.get("/t/clinic-a/conversations").await,
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await,
    ] {
        assert!(!page.body.contains("<script>alert"), "unescaped script");
        assert!(!page.body.contains("<img src=x"), "unescaped tag");
        assert!(
            page.body.contains("&lt;script&gt;")
                || page.body.contains("&#60;script&#62;")
                || page.body.contains("&lt;script"),
            "text not shown"
        );
        assert!(!page.body.contains("<b>Mallory</b>"));
    }
}

#[tokio::test]
async fn a_send_retried_after_a_gateway_500_reaches_it_exactly_once() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("IN1", "oi").await;
    let conv = gw.only_conversation().await;
    let r =
        gw.w.owner
            .reply(conv, "Abrimos sábado das 8h às 12h.")
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // The gateway fails once, then accepts.
    Mock::given(method("POST"))
        .and(path("/message/sendText/clinic"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(1)
        .mount(&gw.gateway)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/sendText/clinic"))
        .and(header("apikey", "evo-api-key-123"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "key": { "id": "OUT-1", "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true }, "status": "PENDING" })))
        .mount(&gw.gateway)
        .await;
    gw.run_jobs().await;
    assert_eq!(
        gw.out_status().await,
        "queued",
        "a 5xx leaves it queued for a retry"
    );
    gw.w.t.clock.advance(Duration::minutes(2));
    gw.run_jobs().await;
    gw.w.t.clock.advance(Duration::hours(1));
    gw.run_jobs().await;
    let out = gw.only_out_message().await;
    assert_eq!(
        (out.status.as_str(), out.external_id.as_deref()),
        ("sent", Some("OUT-1"))
    );
    let sends = gw.send_requests().await;
    assert_eq!(
        sends.len(),
        2,
        "one refused attempt, one accepted: never a duplicate"
    );
    let body = &sends[1];
    assert_eq!(body["number"], "5511988887777");
    assert_eq!(body["text"], "Abrimos sábado das 8h às 12h.");
    // The gateway's echo of our send doesn't add a message; its receipts move it forward only.
    let echo = json!({ "event": "send.message", "instance": "clinic", "data": { "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "id": "OUT-1" }, "message": { "conversation": "Abrimos sábado das 8h às 12h." }, "messageType": "conversation", "messageTimestamp": now(&gw) } });
    assert_eq!(gw.evo(&echo).await.0, 200);
    assert_eq!(gw.count("messages").await, 2);
    for s in ["READ", "DELIVERY_ACK", "SERVER_ACK"] {
        assert_eq!(gw.evo(&evo_status("OUT-1", s)).await.0, 200);
    }
    assert_eq!(
        gw.out_status().await,
        "read",
        "out-of-order receipts never move it backwards"
    );
}

#[tokio::test]
async fn rejected_sends_fail_visibly_and_can_be_retried() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("IN1", "oi").await;
    let conv = gw.only_conversation().await;
    gw.w.owner.reply(conv, "teste").await;
    gw.mock_send_once(400, json!({ "status": 400, "error": "Bad Request", "response": { "message": [{ "exists": false, "number": "5511988887777" }] } }))
        .await;
    gw.run_jobs().await;
    let out = gw.only_out_message().await;
    assert_eq!(out.status, "failed");
    assert!(out.error.is_some());
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(page.body.contains("Retry"));
    let mid = gw.only_out_message().await.id;
    gw.mock_send(201, json!({ "key": { "id": "OUT-2" } })).await;
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                &format!("/t/clinic-a/messages/{mid}/retry"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);
    gw.run_jobs().await;
    assert_eq!(gw.out_status().await, "sent");
}

/// A worker that dies mid-job: its job comes back after the lease; a send that may have
/// reached the gateway is marked unknown, never sent again automatically.
#[tokio::test]
async fn a_worker_killed_mid_job_leaves_the_job_to_be_retried() {
    // The AI turn for the inbound message runs first.
    let gw = TestApp::init()
        .with_customer("IN1", "5511988887777", "Ana", "oi")
        .build()
        .await;
    let conv = gw.only_conversation().await;
    gw.w.owner.reply(conv, "teste").await;
    // A worker claims the send job… and dies before doing anything.
    let claimed = crate::db::jobs::claim(&gw.w.t.state.db, gw.w.t.clock.now(), crate::jobs::LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.kind, "send_message");
    assert_eq!(gw.run_jobs().await, 0, "leased: nobody else takes it");
    gw.mock_send(201, json!({ "key": { "id": "OUT-9" } })).await;
    gw.w.t
        .clock
        .advance(crate::jobs::LEASE + Duration::seconds(1));
    assert_eq!(
        gw.run_jobs().await,
        1,
        "the lease expired: the job runs again"
    );
    assert_eq!(gw.out_status().await, "sent");

    // Now a worker that died after marking the message "sending" (the call may have gone out).
    gw.w.owner.reply(conv, "segunda").await;
    let claimed = crate::db::jobs::claim(&gw.w.t.state.db, gw.w.t.clock.now(), crate::jobs::LEASE)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE messages SET status = 'sending', status_rank = 2 WHERE id = $1")
        .bind(claimed.subject_id)
        .execute(&gw.w.t.owner)
        .await
        .unwrap();
    gw.w.t
        .clock
        .advance(crate::jobs::LEASE + Duration::seconds(1));
    gw.run_jobs().await;
    assert_eq!(
        gw.message_status(claimed.subject_id.expect("a send job names its message"))
            .await,
        "unknown"
    );
    assert_eq!(
        gw.send_requests().await.len(),
        1,
        "the possibly-sent message was not sent again"
    );
}

#[tokio::test]
async fn meta_window_is_shown_and_free_text_outside_it_refused() {
    let gw = TestApp::init().meta().build().await;
    gw.meta_post(&meta_text(
        "wamid.IN1",
        "5511988887777",
        "Ana",
        now(&gw),
        "oi",
    ))
    .await;
    let conv = gw.only_conversation().await;
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(page.body.contains("The 24-hour window closes at"));
    Mock::given(method("POST"))
        .and(path(format!("/{}/messages", wa::META_PHONE_ID)))
        .and(header("authorization", "Bearer meta-token-xyz"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "messaging_product": "whatsapp", "contacts": [{ "input": "5511988887777", "wa_id": "5511988887777" }], "messages": [{ "id": "wamid.OUT1" }] })))
        .mount(&gw.gateway)
        .await;
    let r = gw.w.owner.reply(conv, "Olá!").await;
    assert_eq!(r.status, 303);
    gw.run_jobs().await;
    assert_eq!(gw.out_status().await, "sent");
    // Statuses out of order: read, then a late delivered.
    gw.meta_post(&meta_status("wamid.OUT1", "read", now(&gw)))
        .await;
    gw.meta_post(&meta_status("wamid.OUT1", "delivered", now(&gw)))
        .await;
    assert_eq!(gw.out_status().await, "read");

    // 25 hours later the window is closed: free text is refused with the reason.
    gw.w.t.clock.advance(Duration::hours(25));
    assert_eq!(
        gw.w.owner
            .log_in("owner@a.test", crate::tests::client::PASSWORD)
            .await
            .status,
        303,
        "the session expired meanwhile"
    );
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(page.body.contains("customer-service window is closed"));
    let csrf = page.csrf();
    let r =
        gw.w.owner
            .post(
                &format!("/t/clinic-a/conversations/{conv}/reply"),
                &[("csrf", &csrf), ("text", "ainda aí?")],
            )
            .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("approved template"));
    assert_eq!(gw.count("messages").await, 2);
}

#[tokio::test]
async fn simulator_goes_through_ingestion_and_shows_replies() {
    let w = World::new().await;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/simulator",
            "/t/clinic-a/simulator",
            &[
                ("phone", "+55 11 90000-0001"),
                ("name", "Maria"),
                ("text", "Vocês aceitam convênio?"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let conv: uuid::Uuid = sqlx::query_scalar("SELECT id FROM conversations")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let inbox = w.owner.get("/t/clinic-a/conversations").await;
    assert!(inbox.body.contains("Maria"));
    assert!(inbox.body.contains("Vocês aceitam convênio?"));
    w.owner
        .submit(
            &format!("/t/clinic-a/conversations/{conv}"),
            &format!("/t/clinic-a/conversations/{conv}/reply"),
            &[("text", "Sim, aceitamos.")],
        )
        .await;
    crate::jobs::run_due(&w.t.state).await.unwrap();
    let sim = w
        .owner
        .get("/t/clinic-a/simulator?phone=5511900000001")
        .await;
    assert!(sim.body.contains("Sim, aceitamos."));
    assert!(sim.body.contains("Vocês aceitam convênio?"));
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE direction = 'out'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(status, "sent");
}

#[tokio::test]
async fn inbox_filters_and_keyset_pagination() {
    let gw = Gw::evolution().await;
    let t0 = now(&gw);
    for i in 0..60 {
        let phone = format!("55119000{i:05}");
        gw.customer_sends_at(
            t0 + i,
            &format!("M{i}"),
            &phone,
            &format!("Paciente {i}"),
            &format!("mensagem {i}"),
        )
        .await;
    }
    let first = gw.w.owner.get("/t/clinic-a/conversations").await;
    assert!(first.body.contains("Paciente 59"), "newest first");
    assert!(!first.body.contains("Paciente 9<"), "only one page");
    let doc = scraper::Html::parse_document(&first.body);
    let older = doc
        .select(&scraper::Selector::parse("a.button.ghost").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("href")
        .unwrap()
        .replace("&amp;", "&");
    let second =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations{older}"))
            .await;
    let rows = |b: &str| {
        scraper::Html::parse_document(b)
            .select(&scraper::Selector::parse(".inbox-row").unwrap())
            .count()
    };
    assert_eq!(rows(&first.body), 50);
    assert_eq!(rows(&second.body), 10);
    assert!(second.body.contains("Paciente 0"));
    assert!(!second.body.contains("Paciente 59"));
    // Unread filter, resolve, and status filter.
    let conv: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM conversations ORDER BY last_message_at DESC LIMIT 1")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    gw.w.owner
        .get(&format!("/t/clinic-a/conversations/{conv}"))
        .await; // reading clears unread
    gw.w.owner
        .submit(
            &format!("/t/clinic-a/conversations/{conv}"),
            &format!("/t/clinic-a/conversations/{conv}/status"),
            &[("status", "resolved")],
        )
        .await;
    let resolved =
        gw.w.owner
            .get("/t/clinic-a/conversations?status=resolved")
            .await;
    assert_eq!(rows(&resolved.body), 1);
    let unread = gw.w.owner.get("/t/clinic-a/conversations?unread=1").await;
    assert!(!unread.body.contains("Paciente 59"));
}

#[tokio::test]
async fn live_updates_reach_other_instances_with_and_without_redis() {
    for redis_down in [false, true] {
        let t = TestApp::with_config(|c| {
            if redis_down {
                c.redis_url = Some(secrecy::SecretString::from("redis://127.0.0.1:1/0"));
            }
        })
        .await;
        // A second instance on the same database (and Redis, when there is one).
        let other = t.second_instance().await;
        let mut rx = other.live.subscribe();
        // The other instance must be listening on the path the event will take.
        crate::tests::harness::eventually("the other instance's listener", || async {
            if redis_down {
                other.live.pg_listening()
            } else {
                other.live.redis_listening()
            }
        })
        .await;
        let tenant = uuid::Uuid::new_v4();
        t.state
            .live
            .publish(tenant, &crate::live::Event::Inbox)
            .await;
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        let (for_tenant, event) = got
            .unwrap_or_else(|_| panic!("no live event (redis down: {redis_down})"))
            .unwrap();
        assert_eq!((for_tenant, event), (tenant, crate::live::Event::Inbox));
    }
}

#[tokio::test]
async fn browser_opens_a_conversation_and_sends_a_reply() {
    let gw = TestApp::init().build().await;
    gw.customer_sends(
        "B1",
        "5511988887777",
        "Ana Souza",
        "Qual o horário de sábado?",
    )
    .await;
    let conv = gw.only_conversation().await;
    gw.mock_send(201, json!({ "key": { "id": "OUT-B" } })).await;
    let b = Browser::start().await;
    b.log_in(&gw.w.server, "owner@a.test").await;
    let c = &b.client;
    c.goto(&gw.w.server.url("/t/clinic-a/conversations"))
        .await
        .unwrap();
    b.el(&format!(r#"a[href="/t/clinic-a/conversations/{conv}"]"#))
        .await
        .click()
        .await
        .unwrap();
    assert!(
        b.wait_text("#thread", "Qual o horário")
            .await
            .contains("Qual o horário de sábado?")
    );
    b.el("#text")
        .await
        .send_keys("Sábado das 8h às 12h.")
        .await
        .unwrap();
    b.screenshot("conversation").await;
    b.el(".reply-form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert!(
        b.wait_text("#thread", "Sábado das 8h")
            .await
            .contains("Sábado das 8h às 12h.")
    );
    gw.run_jobs().await;
    assert_eq!(gw.send_requests().await[0]["text"], "Sábado das 8h às 12h.");
    c.refresh().await.unwrap();
    b.wait_text("#thread", "✓").await;
    b.screenshot("conversation-sent").await;
    b.close().await;
}

#[tokio::test]
async fn canned_replies_are_managed_by_admins_and_sent_by_reviewers() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("C1", "oi").await;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/canned",
                "/t/clinic-a/canned",
                &[
                    ("title", "Endereço"),
                    ("body", "Rua das Flores, 100 — sala 2."),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let canned_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM canned_replies")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    let reviewer = gw.w.add_member("re@a.test", "reviewer").await;
    assert_eq!(
        reviewer.get("/t/clinic-a/canned").await.status,
        403,
        "only admins manage them"
    );
    let conv = gw.only_conversation().await;
    let page = reviewer
        .get(&format!("/t/clinic-a/conversations/{conv}"))
        .await;
    assert!(page.body.contains("Endereço"));
    gw.mock_send(201, json!({ "key": { "id": "OUT-C" } })).await;
    // Chosen with an empty text box (no JavaScript needed).
    let r = reviewer
        .on_conversation(
            conv,
            "reply",
            &[("text", ""), ("canned", &canned_id.to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    gw.run_jobs().await;
    let sent = gw.send_requests().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["text"], "Rua das Flores, 100 — sala 2.");
}

#[tokio::test]
async fn meta_templates_are_synced_and_offered_outside_the_window() {
    let gw = Gw::meta().await;
    gw.meta_post(&meta_text(
        "wamid.IN1",
        "5511988887777",
        "Ana",
        now(&gw),
        "oi",
    ))
    .await;
    let conv = gw.only_conversation().await;
    Mock::given(method("GET"))
        .and(path("/102290129340398/message_templates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": [
            { "id": "1", "name": "lembrete_consulta", "language": "pt_BR", "status": "APPROVED", "category": "UTILITY",
              "components": [{ "type": "BODY", "text": "Olá {{1}}, sua consulta é {{2}}." }] },
            { "id": "2", "name": "promo", "language": "pt_BR", "status": "REJECTED", "category": "MARKETING",
              "components": [{ "type": "BODY", "text": "Promoção!" }] }
        ] })))
        .mount(&gw.gateway)
        .await;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/channels",
                &format!("/t/clinic-a/channels/{}/templates", gw.channel_id),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM message_templates")
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(names, ["lembrete_consulta"], "only approved templates");
    // 25 hours later the window is closed: free text refused, the template offered and sent.
    gw.w.t.clock.advance(Duration::hours(25));
    assert_eq!(
        gw.w.owner
            .log_in("owner@a.test", crate::tests::client::PASSWORD)
            .await
            .status,
        303
    );
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(page.body.contains("lembrete_consulta"));
    let template_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM message_templates")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path(format!("/{}/messages", wa::META_PHONE_ID)))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({ "messaging_product": "whatsapp", "messages": [{ "id": "wamid.TPL1" }] }),
        ))
        .mount(&gw.gateway)
        .await;
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                &format!("/t/clinic-a/conversations/{conv}/template"),
                &[
                    ("template", &template_id.to_string()),
                    ("params", "Ana\namanhã às 9h"),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    gw.run_jobs().await;
    let sent = gw.gateway.received_requests().await.unwrap();
    let req = sent
        .iter()
        .find(|r| r.url.path().ends_with("/messages"))
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "lembrete_consulta");
    assert_eq!(body["template"]["language"]["code"], "pt_BR");
    assert_eq!(
        body["template"]["components"][0]["parameters"][1]["text"],
        "amanhã às 9h"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE kind = 'template'")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    assert!(
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await
            .body
            .contains("Olá Ana, sua consulta é amanhã às 9h.")
    );
}

/// The channel of this kind of the tenant with this slug.
async fn channel_of(gw: &Gw, slug: &str, kind: &str) -> crate::db::channels::Channel {
    let (tenant, id): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT c.tenant_id, c.id FROM channels c JOIN tenants t ON t.id = c.tenant_id
         WHERE t.slug = $1 AND c.kind = $2",
    )
    .bind(slug)
    .bind(kind)
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    let mut tx = crate::db::begin_tenant(&gw.w.t.state.db, tenant)
        .await
        .unwrap();
    let c = crate::db::channels::get(&mut tx, id)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    c
}

/// Prepares one text delivery per (channel, i), then submits them all at once: every
/// submission is queued before a writer runs (the test runtime is single-threaded), so
/// they form one batch.
async fn submit_together(
    gw: &Gw,
    deliveries: &[(&crate::db::channels::Channel, String)],
) -> Vec<anyhow::Result<crate::messaging::ingest::IngestOutcome>> {
    let messages: Vec<_> = deliveries
        .iter()
        .enumerate()
        .map(|(n, (channel, id))| (*channel, id.clone(), format!("5511977{n:06}")))
        .collect();
    submit_batch(gw, &messages).await
}

/// As `submit_together`, with each delivery's sender (channel, message id, phone).
async fn submit_batch(
    gw: &Gw,
    deliveries: &[(&crate::db::channels::Channel, String, String)],
) -> Vec<anyhow::Result<crate::messaging::ingest::IngestOutcome>> {
    let state = &gw.w.t.wiring.messaging;
    let mut prepared = Vec::new();
    for (n, (channel, id, phone)) in deliveries.iter().enumerate() {
        let msg = evo_text(id, phone, "Paciente", now(gw) + n as i64, "olá");
        let events = crate::gateway::evolution::parse_webhook(msg.to_string().as_bytes()).unwrap();
        let d = crate::messaging::ingest::prepare_delivery(state, channel, events)
            .await
            .unwrap();
        prepared.push(d);
    }
    let ingest = &gw.w.t.wiring.ingest;
    futures::future::join_all(prepared.into_iter().map(|d| ingest.submit(state, d))).await
}

/// Inside one batch (written set-based: one insert for all its messages): a new person's
/// burst makes one contact and one conversation, counted unread once per message and given
/// one AI turn; a gateway retry queued beside its original is a duplicate; each message is
/// sealed under the key of the contact it was stored for.
#[tokio::test]
async fn one_batch_stores_a_burst_once_per_person() {
    let gw = Gw::evolution().await;
    let state = &gw.w.t.state;
    let ch = channel_of(&gw, "clinic-a", "evolution").await;
    let (ana, bia) = ("5511911110001".to_owned(), "5511911110002".to_owned());
    let batch = [
        (&ch, "ANA-1".to_owned(), ana.clone()),
        (&ch, "BIA-1".to_owned(), bia.clone()),
        (&ch, "ANA-2".to_owned(), ana.clone()),
        (&ch, "ANA-1".to_owned(), ana.clone()), // the gateway's retry of the first
        (&ch, "ANA-3".to_owned(), ana.clone()),
    ];
    let before = gw.w.t.wiring.ingest.stats();
    let results: Vec<_> = submit_batch(&gw, &batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        gw.w.t.wiring.ingest.stats().transactions - before.transactions,
        1
    );
    let stored: Vec<_> = results.iter().map(|r| (r.stored, r.duplicates)).collect();
    assert_eq!(stored, [(1, 0), (1, 0), (1, 0), (0, 1), (1, 0)]);

    assert_eq!(gw.count("contacts").await, 2);
    assert_eq!(gw.count("messages").await, 4);
    let rows: Vec<(i32, i64, bool)> = sqlx::query_as(
        "SELECT c.unread_count, count(m.id), c.last_inbound_at = max(m.sent_at)
         FROM conversations c JOIN messages m ON m.conversation_id = c.id
         GROUP BY c.id ORDER BY 2",
    )
    .fetch_all(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(rows, [(1, 1, true), (3, 3, true)]);
    assert_eq!(gw.jobs_of("ai_reply").await, 2);
    // Every stored message opens under its contact's key: Ana's three in her thread.
    let mut tx = crate::db::begin_tenant(&state.db, ch.tenant_id)
        .await
        .unwrap();
    let conversation: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM conversations WHERE unread_count = 3")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let thread = crate::db::messages::thread(&mut tx, conversation, None, 10)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(thread.len(), 3);
    for m in thread {
        let body = state
            .keys
            .open_str(
                ch.tenant_id,
                m.contact_id,
                crate::crypto::Aad::new("messages", "body", m.id),
                m.body_sealed.as_deref().unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(body, "olá");
    }
}

/// Group commit: deliveries arriving together share one transaction even across tenants
/// (row-level security switches tenant per delivery), each lands in its own tenant exactly
/// once, and a delivery that can't be written fails alone while the rest are stored.
#[tokio::test]
async fn concurrent_deliveries_share_a_commit_and_a_bad_one_fails_alone() {
    let a = TestApp::init().with_other_tenant().build().await;
    let state = &a.w.t.state;
    let ch_a = channel_of(&a, "clinic-a", "evolution").await;
    let tenant_b = a.tenant_id("clinic-b").await;
    let ch_b = crate::messaging::channel::simulator(
        &Messaging::from_ref(state),
        tenant_b,
        &crate::db::audit::Actor::system(),
    )
    .await
    .unwrap();
    // Not a channel anywhere: its delivery prepares fine but can't be written.
    let mut bogus = ch_a.clone();
    bogus.id = uuid::Uuid::now_v7();
    let round = |r: u32| {
        (0..10)
            .flat_map(|i| [(&ch_a, format!("A{r}-{i}")), (&ch_b, format!("B{r}-{i}"))])
            .collect::<Vec<_>>()
    };

    let before = a.w.t.wiring.ingest.stats();
    let mut first = round(1);
    first.push((&bogus, "X1".to_owned()));
    let results = submit_together(&a, &first).await;
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!((ok.len(), failed.len()), (20, 1));
    assert!(ok.iter().all(|r| r.as_ref().unwrap().stored == 1));
    let after = a.w.t.wiring.ingest.stats();
    // One batch of 21 failed, then 21 one-delivery transactions.
    assert_eq!(after.failed_batches - before.failed_batches, 1);
    assert_eq!(after.transactions - before.transactions, 22);

    let results = submit_together(&a, &round(2)).await;
    assert!(results.iter().all(|r| r.as_ref().unwrap().stored == 1));
    let last = a.w.t.wiring.ingest.stats();
    assert_eq!(
        last.transactions - after.transactions,
        1,
        "20 deliveries, one commit"
    );
    assert_eq!(last.failed_batches, after.failed_batches);

    // Each message is in its own tenant, once; the bogus one nowhere.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT t.slug, m.external_id FROM messages m JOIN tenants t ON t.id = m.tenant_id
         WHERE m.external_id IS NOT NULL ORDER BY 2",
    )
    .fetch_all(&a.w.t.owner)
    .await
    .unwrap();
    assert_eq!(rows.len(), 40);
    for (slug, id) in &rows {
        let expected = if id.starts_with('A') {
            "clinic-a"
        } else {
            "clinic-b"
        };
        assert_eq!(slug, expected, "{id}");
    }
    let distinct: std::collections::HashSet<_> = rows.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), 40);
    // Conversations, contacts and AI turns followed their messages into the right tenant.
    let mismatched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
         JOIN contacts ct ON ct.id = m.contact_id
         WHERE c.tenant_id <> m.tenant_id OR ct.tenant_id <> m.tenant_id",
    )
    .fetch_one(&a.w.t.owner)
    .await
    .unwrap();
    assert_eq!(mismatched, 0);
    // Both rounds came from the same 20 people: 20 conversations, one pending AI turn each.
    assert_eq!(a.count("conversations").await, 20);
    assert_eq!(a.jobs_of("ai_reply").await, 20);
}

/// Gateway URLs are tenant input the platform connects to: they pass the SSRF guard (no
/// private, link-local or metadata addresses; http only to a local development server).
#[tokio::test]
async fn evolution_urls_to_private_or_metadata_addresses_are_refused() {
    let w = crate::tests::client::World::new().await;
    for bad in [
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.5/",
        "http://[::ffff:192.168.1.1]:8080/",
        "https://metadata.google.internal/",
        "https://user:pw@evolution.example.com/",
    ] {
        let r = w
            .owner
            .submit(
                "/t/clinic-a/channels",
                "/t/clinic-a/channels/evolution",
                &[
                    ("name", "Evil"),
                    ("base_url", bad),
                    ("instance", "x"),
                    ("api_key", "k"),
                ],
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert!(
            r.body.contains("This destination is not allowed")
                || r.body.contains("Enter a valid URL without credentials")
                || r.body.contains("The URL must use https"),
            "{bad}: {}",
            r.body
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM channels WHERE kind = 'evolution'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

/// The batch's sender lookup sees only the tenant its transaction belongs to: the same
/// token (as if another tenant's key had produced it) finds nothing from another tenant.
#[tokio::test]
async fn the_sender_lookup_sees_only_its_transactions_tenant() {
    let a = TestApp::init().build().await;
    a.ana_sends("L1", "oi").await;
    let state = &a.w.t.state;
    let (tenant_a, phone_index): (uuid::Uuid, String) =
        sqlx::query_as("SELECT tenant_id, phone_index FROM contacts")
            .fetch_one(&a.w.t.owner)
            .await
            .unwrap();
    let tokens = [phone_index];
    let mut tx = crate::db::begin_tenant(&state.db, tenant_a).await.unwrap();
    let found = crate::db::contacts::find_many(&mut tx, &tokens, &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].has_name);
    let mut tx = crate::db::begin_tenant(&state.db, uuid::Uuid::now_v7())
        .await
        .unwrap();
    let found = crate::db::contacts::find_many(&mut tx, &tokens, &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(found.is_empty());
}

/// Name search follows renames (the token table is kept in step with the contact) and
/// needs every word of the query.
#[tokio::test]
async fn name_search_follows_renames_and_needs_every_word() {
    use crate::db::{self, conversations::ListFilter};
    let gw = TestApp::init().build().await;
    gw.customer_sends("N1", "5511988887777", "Joana Prado", "oi")
        .await;
    gw.customer_sends("N2", "5511977776666", "Joana Lima", "olá")
        .await;
    let state = &gw.w.t.state;
    let tenant = gw.tenant;
    let search = |q: &'static str| async move {
        let tokens = state.keys.blind_words(tenant, q).await.unwrap();
        let mut tx = db::begin_tenant(&state.db, tenant).await.unwrap();
        let rows = db::conversations::list(
            &mut tx,
            &ListFilter {
                name_tokens: Some(tokens),
                limit: 50,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        rows.len()
    };
    assert_eq!(search("joana").await, 2);
    assert_eq!(search("joana prado").await, 1);
    assert_eq!(
        search("prado lima").await,
        0,
        "every word must match one contact"
    );
    // Rectified: the old name no longer finds them, the new one does.
    let contact: uuid::Uuid = sqlx::query_scalar(
        "SELECT c.id FROM contacts c JOIN messages m ON m.contact_id = c.id WHERE m.external_id = 'N1'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    let tokens = state.keys.blind_words(tenant, "Joana Souza").await.unwrap();
    let mut tx = db::begin_tenant(&state.db, tenant).await.unwrap();
    db::contacts::set_name(
        &mut tx,
        contact,
        b"sealed",
        &tokens,
        true,
        gw.w.t.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(search("prado").await, 0);
    assert_eq!(search("souza").await, 1);
    assert_eq!(search("joana").await, 2);
}

/// Ingestion's batch reads cost per key, not per tenant size: finding two senders and
/// their conversations among a tenant's thousand touches a handful of rows. (The planner
/// once turned these reads into scans of every contact and conversation of the tenant;
/// that made each batch slower as the clinic grew.) Counted with PostgreSQL's own
/// per-transaction row counters, before any ANALYZE, as on a busy day.
#[tokio::test]
async fn batch_reads_touch_only_their_keys_however_large_the_tenant() {
    let gw = Gw::evolution().await;
    let state = &gw.w.t.state;
    let ch = channel_of(&gw, "clinic-a", "evolution").await;
    sqlx::query(
        "INSERT INTO contacts (id, tenant_id, phone_index, name_tokens, created_at, updated_at)
         SELECT gen_random_uuid(), $1, 'many-' || g, '{}', now(), now() FROM generate_series(1, 1000) g",
    )
    .bind(ch.tenant_id)
    .execute(&gw.w.t.owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO conversations (id, tenant_id, channel_id, contact_id, chat_index, last_message_at, created_at)
         SELECT gen_random_uuid(), $1, $2, c.id, 'contact:' || c.id, now(), now()
         FROM contacts c WHERE c.tenant_id = $1",
    )
    .bind(ch.tenant_id)
    .bind(ch.id)
    .execute(&gw.w.t.owner)
    .await
    .unwrap();
    let wanted: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT id, phone_index FROM contacts WHERE phone_index IN ('many-7', 'many-700')",
    )
    .fetch_all(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(wanted.len(), 2);

    // Rows fetched from a table so far in this transaction, by any kind of scan.
    async fn touched(tx: &mut sqlx::PgConnection, table: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT pg_stat_get_xact_tuples_returned($1::regclass) + pg_stat_get_xact_tuples_fetched($1::regclass)",
        )
        .bind(table)
        .fetch_one(tx)
        .await
        .unwrap()
    }
    let mut tx = crate::db::begin_tenant(&state.db, ch.tenant_id)
        .await
        .unwrap();
    let before = touched(&mut tx, "contacts").await;
    let tokens: Vec<String> = wanted.iter().map(|(_, t)| t.clone()).collect();
    let found = crate::db::contacts::find_many(&mut tx, &tokens, &["lid:none".to_owned()])
        .await
        .unwrap();
    let contacts_touched = touched(&mut tx, "contacts").await - before;
    assert_eq!(found.len(), 2);
    assert!(
        contacts_touched <= 4,
        "finding 2 senders touched {contacts_touched} contacts"
    );

    let before = touched(&mut tx, "conversations").await;
    let mut keys: Vec<(uuid::Uuid, String)> = wanted
        .iter()
        .map(|(id, _)| (ch.id, format!("contact:{id}")))
        .collect();
    keys.sort();
    let found = crate::db::conversations::find_many_for_update(&mut tx, ch.tenant_id, &keys)
        .await
        .unwrap();
    let conversations_touched = touched(&mut tx, "conversations").await - before;
    tx.commit().await.unwrap();
    assert_eq!(found.len(), 2);
    // In the keys' order (the lock order concurrent writers share).
    let order: Vec<&str> = found.iter().map(|(_, chat, _)| chat.as_str()).collect();
    let expected: Vec<&str> = keys.iter().map(|(_, chat)| chat.as_str()).collect();
    assert_eq!(order, expected);
    assert!(
        conversations_touched <= 4,
        "finding 2 conversations touched {conversations_touched} conversations"
    );
}
