//! AI drafting and review before delivery (issue 6).

use crate::clock::Clock;
use crate::domain::account::Role;
use crate::messaging::Messaging;
use axum::extract::FromRef;
use serde_json::json;
use time::Duration;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

use crate::tests::{
    browser::Browser,
    client::{Client, World},
    harness::{TestApp, eventually},
    wa::Gw,
};

pub(crate) async fn clinic_knowledge(w: &World) {
    w.add_knowledge(
        "hours",
        "Horário de funcionamento",
        "Atendemos de segunda a sexta das 8h às 18h e aos sábados das 8h às 12h.",
    )
    .await;
    w.add_knowledge(
        "price",
        "Preço da limpeza",
        "A limpeza dental custa R$ 180, com avaliação incluída.",
    )
    .await;
}

pub(crate) async fn set_ai(w: &World, fields: &[(&str, &str)]) {
    let mut all = vec![("policy", "review_all"), ("provider", "offline")];
    for (k, v) in fields {
        all.retain(|(a, _)| a != k);
        all.push((k, v));
    }
    let r = w
        .owner
        .submit("/t/clinic-a/ai", "/t/clinic-a/ai", &all)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

pub(crate) fn now(gw: &Gw) -> i64 {
    gw.w.t.clock.now().unix_timestamp()
}

pub(crate) async fn gateway_sends(gw: &Gw) -> Vec<serde_json::Value> {
    gw.gateway
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/message/sendText/clinic")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

pub(crate) async fn mock_send_ok(gw: &Gw) {
    Mock::given(method("POST"))
        .and(path("/message/sendText/clinic"))
        .respond_with(ResponseTemplate::new(201).set_body_json(
            json!({ "key": { "id": format!("OUT-{}", uuid::Uuid::new_v4().simple()) } }),
        ))
        .mount(&gw.gateway)
        .await;
}

/// The review page's first draft id.
async fn first_draft(c: &Client) -> String {
    let page = c.get("/t/clinic-a/review").await;
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse("article[data-review-card]").unwrap();
    doc.select(&sel)
        .next()
        .unwrap_or_else(|| panic!("no draft on the review page:\n{}", page.body))
        .value()
        .attr("id")
        .unwrap()
        .trim_start_matches("draft-")
        .to_owned()
}

#[tokio::test]
async fn offline_answerer_drafts_a_match_and_escalates_the_unrelated() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_customer(
            "Q1",
            "5511988887777",
            "Ana",
            "Vocês abrem no sábado? Qual o horário?",
        )
        .build()
        .await;
    assert_eq!(gw.drafts().await, vec![("pending".to_owned(), None)]);
    let page = gw.w.owner.get("/t/clinic-a/review").await;
    assert!(
        page.body.contains("aos sábados das 8h às 12h"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Horário de funcionamento"),
        "provenance names the knowledge entry"
    );
    assert!(
        page.body
            .contains("Drafted by Offline knowledge-base answerer"),
        "the provider by its name, not its id"
    );
    assert!(
        page.body.contains("Vocês abrem no sábado?"),
        "conversation context beside the draft"
    );
    // Nothing was sent: the draft waits.
    assert!(gateway_sends(&gw).await.is_empty());

    let other = TestApp::init()
        .with_knowledge()
        .with_customer("Q2", "5511977776666", "Bia", "Qual é a capital da França?")
        .build()
        .await;
    assert_eq!(
        other.drafts().await,
        vec![(
            "escalated".to_owned(),
            Some("no_matching_knowledge".to_owned())
        )]
    );
    let conv = other.only_conversation().await;
    assert_eq!(
        other.attention(conv).await.as_deref(),
        Some("no_matching_knowledge")
    );
    let page = other.w.owner.get("/t/clinic-a/review").await;
    assert!(page.body.contains("nothing in the knowledge base matches"));
}

#[tokio::test]
async fn dismissing_an_escalation_clears_it_once_and_sends_nothing() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_customer("Q2", "5511977776666", "Bia", "Qual é a capital da França?")
        .build()
        .await;
    let id = first_draft(&gw.w.owner).await;
    let action = format!("/t/clinic-a/drafts/{id}/dismiss");
    let page = gw.w.owner.get("/t/clinic-a/review").await;
    assert!(page.body.contains(&action), "the escalation offers dismiss");
    let r = gw.w.owner.submit("/t/clinic-a/review", &action, &[]).await;
    assert_eq!(r.status, 303);
    assert!(r.set_cookies.join(";").contains("review.dismissed"));
    assert_eq!(gw.drafts().await[0].0, "dismissed");
    let conv = gw.only_conversation().await;
    assert_eq!(
        gw.attention(conv).await,
        None,
        "the inbox no longer flags the conversation"
    );
    let page = gw.w.owner.get("/t/clinic-a/review").await;
    assert!(!page.body.contains(&action), "gone from the queue");
    // A second click (another tab) finds it decided; nothing was ever sent.
    let again = gw.w.owner.submit("/t/clinic-a/review", &action, &[]).await;
    assert!(
        again
            .set_cookies
            .join(";")
            .contains("review.already_decided")
    );
    gw.run_jobs().await;
    assert!(gateway_sends(&gw).await.is_empty());
}

#[tokio::test]
async fn review_all_sends_nothing_before_approval_and_a_double_approval_sends_once() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
        .build()
        .await;
    gw.run_jobs().await;
    assert!(
        gateway_sends(&gw).await.is_empty(),
        "nothing reaches the gateway before approval"
    );
    let id = first_draft(&gw.w.owner).await;
    // Two reviewers (or a double click) approve at once.
    let other = gw.w.add_member("re@a.test", "reviewer").await;
    let (csrf_a, csrf_b) = (
        gw.w.owner.get("/t/clinic-a/review").await.csrf(),
        other.get("/t/clinic-a/review").await.csrf(),
    );
    let action = format!("/t/clinic-a/drafts/{id}/approve");
    let (fa, fb) = ([("csrf", csrf_a.as_str())], [("csrf", csrf_b.as_str())]);
    let (a, b) = tokio::join!(gw.w.owner.post(&action, &fa), other.post(&action, &fb));
    assert_eq!((a.status, b.status), (303, 303));
    // Past the undo window: the send job comes due.
    gw.w.t.clock.advance(Duration::seconds(11));
    gw.run_jobs().await;
    let sends = gateway_sends(&gw).await;
    assert_eq!(sends.len(), 1, "sent exactly once");
    assert!(sends[0]["text"].as_str().unwrap().contains("R$ 180"));
    let (state, by): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT state, decided_by FROM drafts")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(state, "approved");
    assert!(by.is_some());
    assert_eq!(gw.w.t.audit_count("draft.approved").await, 1);
}

#[tokio::test]
async fn an_edited_draft_sends_the_edited_text_and_keeps_the_diff() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
        .build()
        .await;
    let id = first_draft(&gw.w.owner).await;
    let edited = "Olá Ana! A limpeza custa R$ 150 neste mês, com avaliação incluída.";
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{id}/approve"),
                &[("text", edited)],
            )
            .await;
    assert_eq!(r.status, 303);
    gw.w.t.clock.advance(Duration::seconds(11));
    gw.run_jobs().await;
    assert_eq!(gateway_sends(&gw).await[0]["text"], edited);
    let (was_edited, draft_id): (bool, uuid::Uuid) =
        sqlx::query_as("SELECT edited, id FROM drafts")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert!(was_edited);
    // The thread says who approved the reply and that they changed it.
    let conv = gw.only_conversation().await;
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(
        page.body.contains("approved by Ana Owner, edited"),
        "{}",
        page.body
    );
    let d = {
        let mut tx = crate::db::begin_tenant(&gw.w.t.state.db, gw.tenant)
            .await
            .unwrap();
        crate::db::ai::get_draft(&mut tx, draft_id)
            .await
            .unwrap()
            .unwrap()
    };
    let tenant = gw.tenant;
    let original =
        crate::messaging::view::original_text(&Messaging::from_ref(&gw.w.t.state), tenant, &d)
            .await
            .unwrap()
            .unwrap();
    let fin = crate::messaging::view::final_text(&Messaging::from_ref(&gw.w.t.state), tenant, &d)
        .await
        .unwrap()
        .unwrap();
    assert!(original.contains("R$ 180"));
    assert_eq!(fin, edited);
    let diff = crate::review::diff::words(&original, &fin);
    assert!(
        diff.iter()
            .any(|op| matches!(op, crate::review::diff::Op::Added(a) if a.contains("150"))),
        "{diff:?}"
    );
}

#[tokio::test]
async fn a_reviewer_of_tenant_a_cannot_see_or_approve_tenant_b_drafts() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .with_member("vi@a.test", Role::Viewer)
        .with_other_tenant()
        .build()
        .await;
    let id = first_draft(gw.owner()).await;
    let b = gw.other();
    assert!(!b.get("/t/clinic-b/review").await.body.contains(&id));
    assert_eq!(b.get("/t/clinic-a/review").await.status, 404);
    let csrf = b.get("/t/clinic-b/review").await.csrf();
    for action in [
        format!("/t/clinic-b/drafts/{id}/approve"),
        format!("/t/clinic-a/drafts/{id}/approve"),
        format!("/t/clinic-b/drafts/{id}/reject"),
    ] {
        let r = b.post(&action, &[("csrf", &csrf)]).await;
        assert!(r.status == 404, "{action}: {}", r.status);
    }
    assert_eq!(gw.drafts().await[0].0, "pending");
    // A viewer of A can't approve either.
    let viewer = &gw.members[0];
    let csrf = viewer.get("/t/clinic-a").await.csrf();
    assert_eq!(
        viewer
            .post(
                &format!("/t/clinic-a/drafts/{id}/approve"),
                &[("csrf", &csrf)]
            )
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn a_human_takeover_stops_drafting_until_handed_back() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .build()
        .await;
    let conv = gw.only_conversation().await;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/conversations/{conv}/take-over"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        gw.drafts().await[0].0,
        "superseded",
        "the pending draft is withdrawn"
    );
    gw.ana_writes_at(gw.now() + 5, "Q2", "E o horário de sábado?")
        .await;
    assert_eq!(
        gw.drafts().await.len(),
        1,
        "no draft while staff own the conversation"
    );
    // Handing back resumes drafting with the next message.
    gw.w.owner
        .on_conversation(conv, "status", &[("ownership", "ai")])
        .await;
    gw.ana_writes_at(gw.now() + 10, "Q3", "Qual o horário de sábado?")
        .await;
    assert_eq!(gw.drafts().await.last().unwrap().0, "pending");
    // Staff replying from the phone takes the conversation too.
    let from_phone = json!({ "event": "messages.upsert", "instance": "clinic", "data": { "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "id": "PHONE1" }, "message": { "conversation": "Respondi pelo celular" }, "messageType": "conversation", "messageTimestamp": now(&gw) + 20 } });
    gw.evo(&from_phone).await;
    assert_eq!(gw.ownership(conv).await, "human");
}

/// A local server speaking OpenAI's chat-completions format.
async fn openai_server(reply: &str) -> MockServer {
    let s = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .and(header("authorization", "Bearer tenant-openai-key"))
        .and(body_partial_json(json!({ "store": false })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": reply }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 321, "completion_tokens": 17, "total_tokens": 338 }
        })))
        .mount(&s)
        .await;
    s
}

#[tokio::test]
async fn an_llm_provider_drafts_with_provenance_and_is_recorded_as_a_recipient() {
    let ai = openai_server("Olá, Ana! A limpeza custa R$ 180.").await;
    let gw = TestApp::init()
        .with_knowledge()
        .with_ai(&[
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("base_url", &ai.uri()),
            ("api_key", "tenant-openai-key"),
            ("instructions", "Seja breve."),
            ("tone", "acolhedor"),
        ])
        .build()
        .await;
    // The key is sealed, never stored in clear or shown.
    let page = gw.w.owner.get("/t/clinic-a/ai").await;
    assert!(!page.body.contains("tenant-openai-key"));
    gw.ana_writes("Q1", "Quanto custa a limpeza?").await;
    let (state, provider, model, input, output, knowledge): (
        String,
        String,
        String,
        i32,
        i32,
        Vec<uuid::Uuid>,
    ) = sqlx::query_as(
        "SELECT state, provider, model, input_tokens, output_tokens, knowledge_ids FROM drafts",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!((state.as_str(), input, output), ("pending", 321, 17));
    assert_eq!(provider, "openai");
    assert_eq!(model, "gpt-4o-mini-2024");
    assert!(
        !knowledge.is_empty(),
        "the knowledge entries used are recorded"
    );
    // What the provider received: the conversation, our instructions, the knowledge.
    let req = &ai.received_requests().await.unwrap()[0];
    let body = String::from_utf8_lossy(&req.body);
    for expected in [
        "Quanto custa a limpeza?",
        "Seja breve.",
        "acolhedor",
        "R$ 180",
    ] {
        assert!(body.contains(expected), "request lacks {expected}");
    }
    let recipients: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, name FROM data_recipients")
            .fetch_all(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(
        recipients,
        vec![("ai_provider".to_owned(), "openai".to_owned())]
    );
    let usage = gw.w.owner.get("/t/clinic-a/ai").await;
    assert!(usage.body.contains("321 / 17"), "usage page shows tokens");
}

#[tokio::test]
async fn a_provider_outage_ends_in_a_flagged_conversation_not_a_send() {
    let ai = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&ai)
        .await;
    let gw = TestApp::init()
        .with_ai(&[
            ("provider", "openai"),
            ("model", "gpt-4o-mini"),
            ("base_url", &ai.uri()),
            ("api_key", "tenant-openai-key"),
        ])
        .with_sends_ok()
        .build()
        .await;
    gw.ana_sends("Q1", "Quanto custa?").await;
    for _ in 0..6 {
        gw.run_jobs().await;
        gw.w.t.clock.advance(Duration::hours(1));
    }
    assert_eq!(
        gw.drafts().await,
        vec![(
            "escalated".to_owned(),
            Some("provider_unavailable".to_owned())
        )]
    );
    let conv = gw.only_conversation().await;
    assert_eq!(
        gw.attention(conv).await.as_deref(),
        Some("provider_unavailable")
    );
    assert!(
        gateway_sends(&gw).await.is_empty(),
        "an error never sends anything"
    );
    assert_eq!(gw.count("messages").await, 1);
    let failures: i64 = sqlx::query_scalar("SELECT sum(failures)::bigint FROM ai_usage")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert!(failures >= 4, "failures counted: {failures}");
}

#[tokio::test]
async fn a_burst_of_messages_becomes_one_ai_turn() {
    let gw = TestApp::init()
        .with_config(|c| c.ai_debounce = Duration::seconds(3))
        .with_knowledge()
        .build()
        .await;
    for (i, text) in ["Oi", "tudo bem?", "quanto custa a limpeza?"]
        .iter()
        .enumerate()
    {
        gw.ana_sends_at(gw.now() + i as i64, &format!("B{i}"), text)
            .await;
        gw.w.t.clock.advance(Duration::seconds(1));
    }
    assert_eq!(
        gw.pending_jobs("ai_reply").await,
        1,
        "one turn for the burst"
    );
    // The turn comes due 3 s after the first message but waits for the burst to end.
    gw.run_jobs().await;
    assert!(gw.drafts().await.is_empty(), "not before the debounce");
    gw.w.t.clock.advance(Duration::seconds(1));
    gw.run_jobs().await;
    assert!(gw.drafts().await.is_empty(), "not before the debounce");
    gw.w.t.clock.advance(Duration::seconds(2));
    gw.run_jobs().await;
    let d = gw.drafts().await;
    assert_eq!(
        d,
        vec![("pending".to_owned(), None)],
        "one draft answering the whole burst"
    );
}

#[tokio::test]
async fn auto_send_sends_without_review_and_off_drafts_nothing() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_ai(&[("policy", "auto_send")])
        .with_sends_ok()
        .build()
        .await;
    gw.ana_writes("Q1", "Quanto custa a limpeza?").await;
    gw.run_jobs().await;
    assert_eq!(gateway_sends(&gw).await.len(), 1);
    let (state, auto): (String, bool) = sqlx::query_as("SELECT state, auto_sent FROM drafts")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!((state.as_str(), auto), ("approved", true));

    // One conversation set to "off" while the tenant auto-sends: nothing drafted there.
    let conv = gw.only_conversation().await;
    let r =
        gw.w.owner
            .on_conversation(conv, "policy", &[("policy", "off")])
            .await;
    assert_eq!(r.status, 303);
    gw.ana_writes_at(gw.now() + 2, "Q1b", "E quanto custa a limpeza?")
        .await;
    assert_eq!(
        gw.drafts().await.len(),
        1,
        "conversation override: no draft"
    );
    gw.w.owner
        .on_conversation(conv, "policy", &[("policy", "")])
        .await;

    set_ai(&gw.w, &[("policy", "off")]).await;
    gw.ana_writes_at(gw.now() + 5, "Q2", "E o horário de sábado?")
        .await;
    assert_eq!(gw.drafts().await.len(), 1, "policy off: no draft");
}

#[tokio::test]
async fn browser_approves_a_draft_with_the_keyboard() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
        .build()
        .await;
    let b = Browser::start().await;
    b.log_in(&gw.w.server, "owner@a.test").await;
    let c = &b.client;
    c.goto(&gw.w.server.url("/t/clinic-a/review"))
        .await
        .unwrap();
    assert!(
        b.wait_text("#review-list", "R$ 180")
            .await
            .contains("R$ 180")
    );
    b.screenshot("review-queue").await;
    // "a" approves the focused draft (the first, focused on load).
    b.press("a").await;
    assert!(
        b.wait_text("main", "Approved")
            .await
            .contains("Approved: the reply is on its way.")
    );
    gw.w.t.clock.advance(Duration::seconds(11));
    gw.run_jobs().await;
    let sends = gateway_sends(&gw).await;
    assert_eq!(sends.len(), 1);
    assert!(sends[0]["text"].as_str().unwrap().contains("R$ 180"));
    b.close().await;
}

/// A custom AI endpoint is tenant input the platform connects to: private and metadata
/// addresses are refused when saved (and vetted again before each call).
#[tokio::test]
async fn ai_base_urls_to_private_or_metadata_addresses_are_refused() {
    let w = World::new().await;
    for bad in ["http://10.1.2.3:11434/v1", "http://169.254.169.254/v1"] {
        let r = w
            .owner
            .submit(
                "/t/clinic-a/ai",
                "/t/clinic-a/ai",
                &[
                    ("policy", "review_all"),
                    ("provider", "openai_compatible"),
                    ("model", "llama3"),
                    ("base_url", bad),
                ],
            )
            .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert!(r.body.contains("This destination is not allowed"), "{bad}");
    }
    let saved: Option<String> = sqlx::query_scalar("SELECT base_url FROM ai_settings")
        .fetch_optional(&w.t.owner)
        .await
        .unwrap()
        .flatten();
    assert_eq!(saved, None);
}

/// An HTTP server that answers every request with a JSON body that never ends (chunked, no
/// length): what a hostile or broken OpenAI-compatible endpoint can do. Counts what it wrote.
async fn endless_json_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
                chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
                chunk.extend_from_slice(b"\r\n");
                let mut first = b"7\r\n{\"a\": \"\r\n".to_vec();
                first.extend_from_slice(&chunk);
                if sock.write_all(&first).await.is_err() {
                    return;
                }
                while sock.write_all(&chunk).await.is_ok() {
                    count.fetch_add(chunk.len(), Ordering::Relaxed);
                }
            });
        }
    });
    (format!("http://{addr}/v1"), written)
}

#[tokio::test]
async fn an_endless_ai_response_is_cut_at_the_cap_and_escalated_with_the_reason() {
    let (url, written) = endless_json_server().await;
    let gw = TestApp::init()
        .with_ai(&[
            ("provider", "openai_compatible"),
            ("model", "llama3.1"),
            ("base_url", &url),
        ])
        .build()
        .await;
    gw.ana_writes("Q1", "Quanto custa?").await;
    assert_eq!(
        gw.drafts().await,
        vec![(
            "escalated".to_owned(),
            Some("provider_response_too_large".to_owned())
        )]
    );
    // Reading stopped near the cap (the server could write on into socket buffers only).
    let sent = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes");
    let page = gw.w.owner.get("/t/clinic-a/review").await;
    assert!(
        page.body.contains("too large to read (over 4 MiB)"),
        "{}",
        page.body
    );
}

/// A draft written on a message the customer then edits or deletes is flagged for the
/// reviewer (issue 16): the draft answered words that are no longer there.
#[tokio::test]
async fn a_draft_on_a_message_later_edited_or_deleted_is_flagged() {
    for (event, data, flag, shown) in [
        (
            "messages.edited",
            serde_json::json!({ "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "Q1" },
                                "type": "MESSAGE_EDIT", "editedMessage": { "conversation": "Vocês abrem no domingo?" },
                                "timestampMs": "1773651700000" }),
            "edited",
            "The customer edited a message after this draft was written",
        ),
        (
            "messages.delete",
            serde_json::json!({ "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "Q1" }),
            "deleted",
            "The customer deleted a message after this draft was written",
        ),
    ] {
        let gw = TestApp::init()
            .with_knowledge()
            .with_customer(
                "Q1",
                "5511988887777",
                "Ana",
                "Vocês abrem no sábado? Qual o horário?",
            )
            .build()
            .await;
        assert_eq!(gw.drafts().await, vec![("pending".to_owned(), None)]);
        let (status, body) = gw
            .evo(&serde_json::json!({ "event": event, "instance": "clinic", "data": data }))
            .await;
        assert_eq!(status, 200, "{body}");
        let changed: Option<String> = sqlx::query_scalar("SELECT source_changed FROM drafts")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
        assert_eq!(changed.as_deref(), Some(flag), "{event}");
        let page = gw.w.owner.get("/t/clinic-a/review").await;
        assert!(page.body.contains(shown), "{event}: {}", page.body);
    }
}

/// Approve → send has no polling interval on its path: the worker's fallback poll is an
/// hour here, so only the NOTIFY the approval commits (and, for the drafting turn, the one
/// ingestion sends after its commit) can wake it.
#[tokio::test]
async fn an_idle_worker_is_woken_by_the_approval_not_by_its_poll() {
    let gw = TestApp::init()
        .with_config(|c| c.worker_poll = std::time::Duration::from_secs(3600))
        .with_knowledge()
        .with_ai(&[("undo_seconds", "0")])
        .with_sends_ok()
        .build()
        .await;
    let wake = std::sync::Arc::new(crate::jobs::Wake::default());
    let (stop, shutdown) = crate::shutdown::Shutdown::new();
    let worker = tokio::spawn(crate::jobs::run_worker_with(
        gw.w.t.state.clone(),
        2,
        shutdown,
        wake.clone(),
    ));
    eventually("the worker listens", || {
        let w = wake.clone();
        async move { w.listening() }
    })
    .await;
    gw.ana_sends("Q1", "Quanto custa a limpeza?").await;
    // Ingestion wakes the worker for the turn: the draft appears without a poll.
    eventually("the turn is drafted", || async {
        gw.drafts().await.len() == 1
    })
    .await;
    let id = first_draft(&gw.w.owner).await;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{id}/approve"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    eventually("the approved reply reaches the gateway", || async {
        gateway_sends(&gw).await.len() == 1
    })
    .await;
    stop.trigger();
    worker.await.unwrap();
    assert_eq!(gateway_sends(&gw).await.len(), 1);
}

#[tokio::test]
async fn the_overview_says_what_waits_and_how_review_went_this_week() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .build()
        .await;
    for (id, phone, name, text) in [
        ("Q1", "5511988887777", "Ana", "Quanto custa a limpeza?"),
        ("Q2", "5511977776666", "Bia", "Quanto custa a limpeza?"),
        ("Q3", "5511966665555", "Caio", "Qual é a capital da França?"),
    ] {
        gw.customer_sends(id, phone, name, text).await;
    }
    gw.run_jobs().await;
    gw.run_jobs().await;
    let (ana, bia) = (
        gw.draft_replying_to("Q1").await,
        gw.draft_replying_to("Q2").await,
    );
    // Three minutes later one draft is approved after an edit, one rejected with a reason.
    gw.w.t.clock.advance(Duration::minutes(3));
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{ana}/approve"),
                &[("text", "Olá Ana! A limpeza custa R$ 180.")],
            )
            .await;
    assert_eq!(r.status, 303);
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{bia}/reject"),
                &[("reason", "  Preço   desatualizado ")],
            )
            .await;
    assert_eq!(r.status, 303);
    // A new question arrives and waits twelve minutes.
    gw.customer_writes("Q4", "5511955554444", "Dani", "Quanto custa a limpeza?")
        .await;
    gw.run_jobs().await;
    gw.w.t.clock.advance(Duration::minutes(12));

    let page = gw.w.owner.get("/t/clinic-a").await.body;
    let doc = scraper::Html::parse_document(&page);
    let text = |sel: &str| {
        doc.select(&scraper::Selector::parse(sel).unwrap())
            .next()
            .map(|e| e.text().collect::<String>())
            .unwrap_or_else(|| panic!("no {sel} on the overview"))
    };
    let pending = text("#ov-pending");
    assert!(
        pending.contains('1') && pending.contains("The oldest has waited 12 min"),
        "{pending}"
    );
    assert!(text("#ov-escalated").contains('1'));
    let week = text("#overview-week");
    assert!(week.contains("100% edited first"), "{week}");
    assert!(week.contains("50% approved"), "{week}");
    assert!(week.contains("3 min"), "median time to review: {week}");
    let reasons = text("#reject-reasons");
    assert!(reasons.contains("Preço desatualizado (1)"), "{reasons}");
    // Viewers see their role, not the review figures.
    let viewer = gw.w.add_member("vi@a.test", "viewer").await;
    assert!(!viewer.get("/t/clinic-a").await.body.contains("ov-pending"));
}

#[tokio::test]
async fn an_edited_reply_becomes_a_knowledge_entry_after_the_admin_checks_it() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
        .build()
        .await;
    let id = first_draft(&gw.w.owner).await;
    let edited = "A limpeza custa R$ 150 neste mês, com avaliação incluída.";
    gw.w.owner
        .submit(
            "/t/clinic-a/review",
            &format!("/t/clinic-a/drafts/{id}/approve"),
            &[("text", edited)],
        )
        .await;
    gw.w.t.clock.advance(Duration::seconds(11));
    gw.run_jobs().await;
    let conv = gw.only_conversation().await;
    let thread = format!("/t/clinic-a/conversations/{conv}");
    let page = gw.w.owner.get(&thread).await.body;
    let doc = scraper::Html::parse_document(&page);
    let action = doc
        .select(&scraper::Selector::parse("form.save-knowledge").unwrap())
        .next()
        .and_then(|f| f.value().attr("action").map(str::to_owned))
        .expect("an edited reply offers to become knowledge");
    // A reviewer is not offered it and may not use it.
    let reviewer = gw.w.add_member("re@a.test", "reviewer").await;
    assert!(!reviewer.get(&thread).await.body.contains("save-knowledge"));
    let csrf = reviewer.get(&thread).await.csrf();
    assert_eq!(reviewer.post(&action, &[("csrf", &csrf)]).await.status, 403);

    let r = gw.w.owner.submit(&thread, &action, &[]).await;
    assert_eq!(r.status, 200);
    let doc = scraper::Html::parse_document(&r.body);
    let value = |sel: &str| {
        doc.select(&scraper::Selector::parse(sel).unwrap())
            .next()
            .map(|e| {
                e.value()
                    .attr("value")
                    .map(str::to_owned)
                    .unwrap_or_else(|| e.text().collect())
            })
            .unwrap_or_default()
    };
    assert_eq!(value("#k-title"), "Quanto custa a limpeza?");
    assert_eq!(value("#k-body"), edited);
    assert!(r.body.contains("check the question and the answer"));
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM knowledge_entries")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    // The admin saves it as filled in.
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/knowledge",
                "/t/clinic-a/knowledge",
                &[
                    ("kind", "faq"),
                    ("title", &value("#k-title")),
                    ("body", &value("#k-body")),
                ],
            )
            .await;
    assert_eq!(r.status, 303);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM knowledge_entries")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(after, before + 1);
    // Another tenant cannot turn this reply into its knowledge.
    let b = gw.w.other_tenant().await;
    let reply = action.split('/').nth(4).unwrap().to_owned();
    let csrf = b.get("/t/clinic-b/knowledge").await.csrf();
    let r = b
        .post(
            &format!("/t/clinic-b/messages/{reply}/to-knowledge"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn the_queue_pages_past_fifty_filters_and_puts_emergencies_first() {
    let gw = TestApp::init().with_knowledge().build().await;
    for i in 0..52 {
        gw.customer_sends(
            &format!("P{i}"),
            &format!("55119{:08}", 10_000_000 + i),
            &format!("Paciente {i}"),
            "Quanto custa a limpeza?",
        )
        .await;
    }
    gw.customer_sends_at(
        gw.now() + 60,
        "E1",
        "5511900000001",
        "Rui",
        "socorro meu cachorro foi atropelado, vcs atendem agora??",
    )
    .await;
    gw.run_jobs().await;
    gw.run_jobs().await;
    let cards = |body: &str| {
        let doc = scraper::Html::parse_document(body);
        doc.select(&scraper::Selector::parse("[data-review-card]").unwrap())
            .map(|c| c.text().collect::<String>())
            .collect::<Vec<_>>()
    };
    let first = gw.w.owner.get("/t/clinic-a/review").await.body;
    let on_first = cards(&first);
    assert_eq!(on_first.len(), 50);
    assert!(
        on_first[0].contains("Rui"),
        "the emergency leads: {}",
        on_first[0]
    );
    assert!(
        first.contains("1–50 of 53"),
        "the header says how many wait"
    );
    let doc = scraper::Html::parse_document(&first);
    let next = doc
        .select(&scraper::Selector::parse(r#"a[rel="next"]"#).unwrap())
        .next()
        .and_then(|a| a.value().attr("href").map(str::to_owned))
        .expect("a link to the next 50");
    let second =
        gw.w.owner
            .get(&format!("/t/clinic-a/review{}", next.replace("&amp;", "&")))
            .await
            .body;
    assert_eq!(cards(&second).len(), 3);
    assert!(second.contains("51–53 of 53") && second.contains(r#"rel="prev""#));
    // Escalations only: the emergency alone.
    let esc =
        gw.w.owner
            .get("/t/clinic-a/review?show=escalations")
            .await
            .body;
    let esc = cards(&esc);
    assert_eq!(esc.len(), 1, "{esc:?}");
    assert!(esc[0].contains("Rui"));
    // Assigned to me: the one conversation I took.
    let conv = gw.conversation_of("P7").await;
    let me = gw.w.t.user_id("owner@a.test").await.to_string();
    let r =
        gw.w.owner
            .on_conversation(conv, "assign", &[("user", &me)])
            .await;
    assert_eq!(r.status, 303);
    let mine = gw.w.owner.get("/t/clinic-a/review?who=mine").await.body;
    let mine = cards(&mine);
    assert_eq!(mine.len(), 1);
    assert!(mine[0].contains("Paciente 7"));
    let nobody =
        gw.w.owner
            .get("/t/clinic-a/review?who=unassigned&show=drafts")
            .await
            .body;
    assert!(
        nobody.contains("1–50 of 51"),
        "52 drafts less the assigned one"
    );
}
