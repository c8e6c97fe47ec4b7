//! Privacy controls (issue 8): erasure by key destruction, requests and deadlines,
//! restriction, exports, retention, media after triage, termination.

use crate::{clock::Clock, crypto::Aad};
use serde_json::json;
use time::Duration;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::tests::{
    browser::Browser,
    client::PASSWORD,
    harness::TestApp,
    wa::{Gw, evo_upsert},
};

fn now(gw: &Gw) -> i64 {
    gw.w.t.clock.now().unix_timestamp()
}

/// Ana sends a photo of her exam (webhook `M1`, caption "meu exame", the image inline).
async fn ana_sends_an_exam_image(gw: &Gw) {
    let png = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"exam-image");
    let image = json!({ "imageMessage": { "mimetype": "image/png", "caption": "meu exame" }, "base64": png });
    gw.evo(&evo_upsert(
        "M1",
        "5511988887777",
        "Ana",
        now(gw),
        image,
        "imageMessage",
    ))
    .await;
}

async fn media_key_of(gw: &Gw, external_id: &str) -> String {
    sqlx::query_scalar("SELECT media_key FROM messages WHERE external_id = $1")
        .bind(external_id)
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap()
}

/// Opens a request from the conversation page's privacy form; returns the request page path.
async fn open_request(gw: &Gw, contact: uuid::Uuid, kind: &str, basis: &str) -> String {
    let conv = gw.conversation_with(contact).await;
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                "/t/clinic-a/privacy/requests",
                &[
                    ("contact", &contact.to_string()),
                    ("kind", kind),
                    ("legal_basis", basis),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    r.location.unwrap()
}

#[tokio::test]
async fn erasure_destroys_the_key_so_even_a_backup_copy_is_unreadable() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("A1", "meu exame deu alterado").await;
    gw.customer_sends("B1", "5511977776666", "Bia", "quero marcar consulta")
        .await;
    let (ana, bia, t) = (
        gw.contact_of("A1").await,
        gw.contact_of("B1").await,
        gw.tenant,
    );
    // A "backup": copies of the rows taken before the erasure.
    let backup: Vec<(uuid::Uuid, uuid::Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT id, contact_id, body_sealed FROM messages")
            .fetch_all(&gw.w.t.owner)
            .await
            .unwrap();
    let page = open_request(&gw, ana, "erasure", "gdpr").await;
    let r = gw.w.owner.get(&page).await;
    assert!(r.body.contains("Erase this contact now"));
    let id = page.rsplit('/').next().unwrap();
    let r =
        gw.w.owner
            .submit(
                &page,
                &format!("/t/clinic-a/privacy/requests/{id}/erase"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);

    // Ana's rows are gone; Bia's remain.
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT contact_id FROM messages")
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, vec![bia]);
    // The backup copy of Ana's message can't be decrypted any more; Bia's still can.
    for (mid, cid, sealed) in backup {
        let opened =
            gw.w.t
                .state
                .keys
                .open_str(t, cid, Aad::new("messages", "body", mid), &sealed)
                .await;
        if cid == ana {
            assert!(
                matches!(opened, Err(crate::crypto::CryptoError::KeyDestroyed)),
                "erased data still readable: {opened:?}"
            );
        } else {
            assert_eq!(opened.unwrap(), "quero marcar consulta");
        }
    }
    // A tombstone and the audit trail remain; the request is completed with its history.
    let (reason, by): (String, String) =
        sqlx::query_as("SELECT reason, erased_by FROM erasure_tombstones WHERE contact_id = $1")
            .bind(ana)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!((reason.as_str(), by.as_str()), ("request", "owner@a.test"));
    assert_eq!(gw.dsr_status().await, "completed");
    let audited = gw.w.t.audit_count("contact.erased").await;
    assert_eq!(audited, 1);
    let history = gw.w.owner.get(&page).await;
    assert!(history.body.contains("Received") && history.body.contains("Completed"));
}

#[tokio::test]
async fn an_end_user_keyword_opens_a_request_that_the_sweep_completes_within_7_days() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("K0", "oi").await;
    gw.ana_sends_at(gw.now() + 1, "K1", "Apagar meus dados")
        .await;
    gw.ana_sends_at(gw.now() + 2, "K2", "APAGAR MEUS DADOS")
        .await;
    let reqs: Vec<(
        String,
        String,
        String,
        time::OffsetDateTime,
        time::OffsetDateTime,
    )> = sqlx::query_as("SELECT kind, status, source, received_at, due_at FROM dsr_requests")
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(reqs.len(), 1, "a repeated keyword opens no second request");
    let (kind, status, source, received, due) = &reqs[0];
    assert_eq!(
        (kind.as_str(), status.as_str(), source.as_str()),
        ("erasure", "verified", "keyword")
    );
    assert_eq!(*due - *received, Duration::days(7));
    let privacy = gw.w.owner.get("/t/clinic-a/privacy").await;
    assert!(privacy.body.contains("WhatsApp"));
    // Day 6: nothing yet. Day 7: the sweep erases.
    gw.w.t.clock.advance(Duration::days(6));
    crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!(gw.count("contacts").await, 1);
    gw.w.t
        .clock
        .advance(Duration::days(1) + Duration::minutes(1));
    let report = crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!(report.erasures, 1);
    assert_eq!(gw.count("contacts").await, 0);
    assert_eq!(gw.count("messages").await, 0);
    assert_eq!(gw.dsr_status().await, "completed");
}

#[tokio::test]
async fn restriction_stops_drafting_and_sending() {
    let gw = TestApp::init().build().await;
    gw.ana_writes("R1", "oi").await;
    let ana = gw.contact_of("R1").await;
    let page = open_request(&gw, ana, "restriction", "lgpd").await;
    let id = page.rsplit('/').next().unwrap();
    assert_eq!(
        gw.w.owner
            .submit(
                &page,
                &format!("/t/clinic-a/privacy/requests/{id}/restrict"),
                &[]
            )
            .await
            .status,
        303
    );
    let drafts_before = gw.count("drafts").await;
    gw.ana_writes_at(gw.now() + 5, "R2", "qual o horário?")
        .await;
    let drafts_after = gw.count("drafts").await;
    assert_eq!(
        drafts_before, drafts_after,
        "no AI processing of a restricted contact"
    );
    assert_eq!(
        gw.count("messages").await,
        2,
        "messages are still stored, never dropped"
    );
    let conv = gw.only_conversation().await;
    let csrf =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await
            .csrf();
    let r =
        gw.w.owner
            .post(
                &format!("/t/clinic-a/conversations/{conv}/reply"),
                &[("csrf", &csrf), ("text", "olá")],
            )
            .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("restricted"));
}

#[tokio::test]
async fn an_export_holds_everything_about_the_contact_and_nothing_about_others() {
    let gw = TestApp::init().build().await;
    gw.w.add_knowledge("price", "Preço da limpeza", "A limpeza custa R$ 180.")
        .await;
    Mock::given(method("POST"))
        .and(path("/message/sendText/clinic"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "key": { "id": "OUT-1" } })))
        .mount(&gw.gateway)
        .await;
    let png = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"ana-image");
    gw.customer_sends("E1", "5511988887777", "Ana Lima", "Quanto custa a limpeza?")
        .await;
    gw.evo(&evo_upsert(
        "E2",
        "5511988887777",
        "Ana Lima",
        now(&gw) + 1,
        json!({ "imageMessage": { "mimetype": "image/png" }, "base64": png }),
        "imageMessage",
    ))
    .await;
    gw.customer_sends("O1", "5511977776666", "Bia", "segredo da Bia")
        .await;
    // Keep media (not deleted after triage) for this test.
    gw.w.owner
        .submit(
            "/t/clinic-a/privacy",
            "/t/clinic-a/privacy/settings",
            &[
                ("message_days", "365"),
                ("media_days", "30"),
                ("ai_trace_days", "365"),
                ("keywords", "APAGAR MEUS DADOS"),
                ("legal_basis", "lgpd"),
            ],
        )
        .await;
    gw.run_jobs().await;
    let ana = gw.contact_of("E1").await;
    let page = open_request(&gw, ana, "access", "lgpd").await;
    let id = page.rsplit('/').next().unwrap();
    let r =
        gw.w.owner
            .http
            .get(
                gw.w.server
                    .url(&format!("/t/clinic-a/privacy/requests/{id}/export.json")),
            )
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("segredo da Bia"),
        "another contact's data in the export"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["subject"]["name"], "Ana Lima");
    assert_eq!(v["subject"]["phone"], "5511988887777");
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["text"], "Quanto custa a limpeza?");
    assert_eq!(
        messages[1]["media"]["base64"], png,
        "media still held is included"
    );
    assert_eq!(v["manifest"]["sections"]["messages"]["records"], 2);
    assert_eq!(
        v["manifest"]["sections"]["messages"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(v["drafts"].is_array());
    assert!(v["requests"][0]["kind"] == "access");
    // The readable copy, and the download is audited.
    let html =
        gw.w.owner
            .http
            .get(
                gw.w.server
                    .url(&format!("/t/clinic-a/privacy/requests/{id}/export.html")),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(html.contains("Quanto custa a limpeza?") && !html.contains("segredo da Bia"));
    let exports = gw.w.t.audit_count("dsr.exported").await;
    assert_eq!(exports, 2);
}

#[tokio::test]
async fn the_retention_sweep_removes_exactly_what_is_past_retention() {
    let gw = TestApp::init().build().await;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/privacy",
                "/t/clinic-a/privacy/settings",
                &[
                    ("message_days", "30"),
                    ("media_days", ""),
                    ("ai_trace_days", "365"),
                    ("keywords", ""),
                    ("legal_basis", "lgpd"),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    // Too long for the plan: refused.
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/privacy",
                "/t/clinic-a/privacy/settings",
                &[
                    ("message_days", "5000"),
                    ("ai_trace_days", "365"),
                    ("legal_basis", "lgpd"),
                ],
            )
            .await;
    assert_eq!(r.status, 422);
    let t0 = now(&gw);
    gw.ana_sends_at(t0, "OLD", "antiga").await;
    gw.customer_sends_at(t0, "GONE", "5511966665555", "Caio", "só antiga")
        .await;
    gw.ana_sends_at(t0 + 20 * 86400, "NEW", "recente").await;
    gw.w.t.clock.advance(Duration::days(35));
    let report = crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!(report.messages, 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT external_id FROM messages")
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, vec!["NEW".to_owned()]);
    // Caio has nothing left past retention: erased entirely (key destroyed).
    assert_eq!(report.contacts, 1);
    assert_eq!(gw.count("contacts").await, 1);
    let run: (i32, i32) = sqlx::query_as("SELECT messages, contacts FROM retention_runs")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(run, (2, 1), "counts recorded, never content");
    // Running again removes nothing more.
    let again = crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!((again.messages, again.contacts), (0, 0));
}

#[tokio::test]
async fn media_is_deleted_after_triage() {
    let gw = TestApp::init().build().await;
    ana_sends_an_exam_image(&gw).await;
    gw.run_jobs().await;
    let key = media_key_of(&gw, "M1").await;
    assert!(gw.w.t.state.media.get(&key).await.unwrap().is_some());
    // The AI couldn't read the image: escalated; staff take over (the turn is handled).
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
    assert!(
        gw.w.t.state.media.get(&key).await.unwrap().is_none(),
        "media object deleted"
    );
    let (state, deleted_at): (String, Option<time::OffsetDateTime>) = sqlx::query_as(
        "SELECT media_state, media_deleted_at FROM messages WHERE external_id = 'M1'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(state, "deleted");
    assert!(deleted_at.is_some());
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(page.body.contains("media deleted after triage"));
    assert!(page.body.contains("meu exame"), "the caption (text) stays");
}

#[tokio::test]
async fn termination_deletes_everything_after_30_days_and_can_be_cancelled() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("T1", "oi").await;
    let t = gw.tenant;
    let wrong =
        gw.w.owner
            .submit(
                "/t/clinic-a/privacy",
                "/t/clinic-a/terminate",
                &[("confirm", "nope")],
            )
            .await;
    assert_eq!(wrong.status, 303);
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT status FROM tenants WHERE id = $1")
            .bind(t)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap(),
        "active"
    );
    gw.w.owner
        .submit(
            "/t/clinic-a/privacy",
            "/t/clinic-a/terminate",
            &[("confirm", "clinic-a")],
        )
        .await;
    assert!(
        gw.w.owner
            .get("/t/clinic-a/privacy")
            .await
            .body
            .contains("will be permanently deleted")
    );
    gw.w.owner
        .submit("/t/clinic-a/privacy", "/t/clinic-a/terminate/cancel", &[])
        .await;
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT status FROM tenants WHERE id = $1")
            .bind(t)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap(),
        "active"
    );
    gw.w.owner
        .submit(
            "/t/clinic-a/privacy",
            "/t/clinic-a/terminate",
            &[("confirm", "clinic-a")],
        )
        .await;
    // The export stays available during the 30 days.
    gw.w.t.clock.advance(Duration::days(29));
    crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!(
        gw.w.owner.log_in("owner@a.test", PASSWORD).await.status,
        303
    );
    let export =
        gw.w.owner
            .http
            .get(gw.w.server.url("/t/clinic-a/export.json"))
            .send()
            .await
            .unwrap();
    assert_eq!(export.status(), 200);
    assert!(export.text().await.unwrap().contains("\"oi\""));
    gw.w.t
        .clock
        .advance(Duration::days(1) + Duration::minutes(1));
    let report = crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!(report.terminated, 1);
    for table in [
        "tenants",
        "contacts",
        "messages",
        "conversations",
        "memberships",
        "channels",
        "audit_log",
    ] {
        assert_eq!(gw.count(table).await, 0, "{table} not emptied");
    }
    let ledger = std::fs::read_to_string(&gw.w.t.config.deletion_ledger).unwrap();
    assert!(
        ledger.contains(&t.to_string()),
        "the tenant key's destruction is in the ledger"
    );
}

#[tokio::test]
async fn browser_runs_an_erasure_request_end_to_end() {
    let gw = TestApp::init().build().await;
    gw.customer_sends("A1", "5511988887777", "Ana Browser", "APAGAR MEUS DADOS")
        .await;
    let b = Browser::start().await;
    b.log_in(&gw.w.server, "owner@a.test").await;
    let c = &b.client;
    c.goto(&gw.w.server.url("/t/clinic-a/privacy"))
        .await
        .unwrap();
    b.el("#dsr-list a").await.click().await.unwrap();
    assert!(b.wait_text("h1", "Erasure").await.contains("Erasure"));
    b.screenshot("erasure-request").await;
    // Erasing asks first: the confirm dialog must be there, then is accepted.
    b.el("#erase-now").await.click().await.unwrap();
    crate::tests::harness::eventually("the erase confirmation dialog", || async {
        c.get_alert_text().await.is_ok_and(|t| !t.is_empty())
    })
    .await;
    c.accept_alert().await.unwrap();
    assert!(
        b.wait_text("#dsr-status", "Completed")
            .await
            .contains("Completed")
    );
    b.screenshot("erasure-done").await;
    assert_eq!(gw.count("contacts").await, 0);
    // The retention settings (audit log included) and the audit log, for a human to look at.
    c.goto(&gw.w.server.url("/t/clinic-a/privacy"))
        .await
        .unwrap();
    b.wait_text("h1", "Privacy").await;
    c.execute(
        "document.getElementById('audit_days').scrollIntoView({ block: 'center' })",
        vec![],
    )
    .await
    .unwrap();
    b.screenshot("privacy").await;
    c.goto(&gw.w.server.url("/t/clinic-a/audit")).await.unwrap();
    assert!(b.text("main").await.contains("contact.erased"));
    b.screenshot("audit").await;

    b.close().await;
}

#[tokio::test]
async fn a_request_moves_through_its_statuses_and_a_denial_needs_its_reason() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("A1", "quero meus dados").await;
    let ana = gw.contact_of("A1").await;
    let page = open_request(&gw, ana, "access", "lgpd").await;
    let id = page.rsplit('/').next().unwrap();
    let action = format!("/t/clinic-a/privacy/requests/{id}/status");
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM dsr_requests")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap()
    };
    let set = |st: &'static str, note: &'static str| {
        let (page, action) = (page.clone(), action.clone());
        let owner = &gw.w.owner;
        async move {
            owner
                .submit(&page, &action, &[("status", st), ("note", note)])
                .await
        }
    };
    let r = set("verified", "identity checked by phone").await;
    assert_eq!(r.status, 303);
    assert!(r.set_cookies.join(";").contains("privacy.request.updated"));
    assert_eq!(status().await, "verified");
    // A status that does not exist is a 400, and changes nothing.
    let r = set("archived", "").await;
    assert_eq!(r.status, 400);
    assert_eq!(status().await, "verified");
    // Denying needs the reason the data subject will be told.
    let r = set("denied", "   ").await;
    assert!(r.set_cookies.join(";").contains("privacy.deny.reason"));
    assert_eq!(status().await, "verified");
    let r = set("denied", "requester could not prove identity").await;
    assert!(r.set_cookies.join(";").contains("privacy.request.updated"));
    assert_eq!(status().await, "denied");
    let reason: Option<String> = sqlx::query_scalar("SELECT denial_reason FROM dsr_requests")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(
        reason.as_deref(),
        Some("requester could not prove identity")
    );
    // A closed request stays closed.
    let r = set("in_progress", "").await;
    assert!(r.set_cookies.join(";").contains("privacy.request.closed"));
    assert_eq!(status().await, "denied");
    // Its history shows each step with who took it and the note.
    let history = gw.w.owner.get(&page).await.body;
    assert!(history.contains("identity checked by phone"), "{history}");
    assert!(history.contains("requester could not prove identity"));
    assert!(history.contains("owner@a.test"));
    let audited = gw.w.t.audit_count("dsr.status").await;
    assert_eq!(audited, 2);
    // Reviewers cannot move requests.
    let reviewer = gw.w.add_member("re@a.test", "reviewer").await;
    let csrf = reviewer.get("/t/clinic-a").await.csrf();
    let r = reviewer
        .post(&action, &[("csrf", &csrf), ("status", "completed")])
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn erasing_a_contact_from_its_conversation_destroys_its_key_and_spares_others() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("A1", "apaga tudo meu").await;
    gw.customer_sends("B1", "5511977776666", "Bia", "bom dia")
        .await;
    let (ana, bia, t) = (
        gw.contact_of("A1").await,
        gw.contact_of("B1").await,
        gw.tenant,
    );
    let (mid, sealed): (uuid::Uuid, Vec<u8>) =
        sqlx::query_as("SELECT id, body_sealed FROM messages WHERE contact_id = $1")
            .bind(ana)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    let conv = gw.conversation_with(ana).await;
    let thread = format!("/t/clinic-a/conversations/{conv}");
    let action = format!("/t/clinic-a/contacts/{ana}/erase");
    // The button sits with the other irreversible action, behind a confirmation.
    let body = gw.w.owner.get(&thread).await.body;
    let doc = scraper::Html::parse_document(&body);
    let sel =
        scraper::Selector::parse(&format!(r#".danger-zone form[action="{action}"]"#)).unwrap();
    let form = doc
        .select(&sel)
        .next()
        .expect("erase form in the danger zone");
    assert!(form.value().attr("data-confirm").is_some());
    // A reviewer cannot erase.
    let reviewer = gw.w.add_member("re@a.test", "reviewer").await;
    let csrf = reviewer.get(&thread).await.csrf();
    assert_eq!(reviewer.post(&action, &[("csrf", &csrf)]).await.status, 403);

    let r = gw.w.owner.submit(&thread, &action, &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/t/clinic-a/conversations"));
    let opened =
        gw.w.t
            .state
            .keys
            .open_str(t, ana, Aad::new("messages", "body", mid), &sealed)
            .await;
    assert!(
        matches!(opened, Err(crate::crypto::CryptoError::KeyDestroyed)),
        "{opened:?}"
    );
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT contact_id FROM messages")
        .fetch_all(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, vec![bia]);
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM erasure_tombstones WHERE contact_id = $1")
            .bind(ana)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(reason, "direct");
    assert_eq!(gw.w.owner.get(&thread).await.status, 404);
    let inbox = gw.w.owner.get("/t/clinic-a/conversations").await.body;
    assert!(!inbox.contains("apaga tudo meu") && inbox.contains("Bia"));
    // Erasing again finds nothing.
    let csrf = gw.w.owner.get("/t/clinic-a/conversations").await.csrf();
    assert_eq!(
        gw.w.owner.post(&action, &[("csrf", &csrf)]).await.status,
        404
    );
}

#[tokio::test]
async fn deleting_a_contacts_only_conversation_deletes_its_media_and_erases_the_contact() {
    let gw = TestApp::init().build().await;
    ana_sends_an_exam_image(&gw).await;
    gw.customer_writes("B1", "5511977776666", "Bia", "bom dia")
        .await;
    let key = media_key_of(&gw, "M1").await;
    assert!(gw.w.t.state.media.get(&key).await.unwrap().is_some());
    let ana = gw.contact_of("M1").await;
    let conv = gw.conversation_with(ana).await;
    let thread = format!("/t/clinic-a/conversations/{conv}");
    let r =
        gw.w.owner
            .submit(&thread, &format!("{thread}/delete"), &[])
            .await;
    assert_eq!(r.status, 303);
    assert!(
        r.set_cookies
            .join(";")
            .contains("privacy.conversation_deleted")
    );
    assert!(
        gw.w.t.state.media.get(&key).await.unwrap().is_none(),
        "the image is gone from storage"
    );
    assert_eq!(gw.w.owner.get(&thread).await.status, 404);
    let convs: i64 = sqlx::query_scalar("SELECT count(*) FROM conversations")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(convs, 1, "Bia's conversation stays");
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM erasure_tombstones WHERE contact_id = $1")
            .bind(ana)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(reason, "conversation");
}

#[tokio::test]
async fn a_reviewer_marks_media_handled_and_it_leaves_storage() {
    let gw = TestApp::init().build().await;
    ana_sends_an_exam_image(&gw).await;
    gw.run_jobs().await;
    let key = media_key_of(&gw, "M1").await;
    let conv = gw.only_conversation().await;
    let thread = format!("/t/clinic-a/conversations/{conv}");
    let action = format!("{thread}/media-handled");
    let viewer = gw.w.add_member("vi@a.test", "viewer").await;
    let csrf = viewer.get(&thread).await.csrf();
    assert_eq!(viewer.post(&action, &[("csrf", &csrf)]).await.status, 403);
    assert!(gw.w.t.state.media.get(&key).await.unwrap().is_some());

    let reviewer = gw.w.add_member("re@a.test", "reviewer").await;
    let page = reviewer.get(&thread).await.body;
    assert!(page.contains(&action), "the reviewer is offered the button");
    let r = reviewer.submit(&thread, &action, &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some(thread.as_str()));
    assert!(gw.w.t.state.media.get(&key).await.unwrap().is_none());
    let page = reviewer.get(&thread).await.body;
    assert!(page.contains("media deleted after triage"));
    assert!(page.contains("meu exame"), "the caption (text) stays");
    let detail: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'media.handled' AND actor_label = 're@a.test'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(detail["deleted"], 1);
}

#[tokio::test]
async fn the_request_list_says_whose_each_is_and_filters_open_overdue_and_closed() {
    let gw = TestApp::init().build().await;
    gw.ana_sends("A1", "oi").await;
    gw.customer_sends("B1", "5511977776666", "Bia", "oi").await;
    let (ana, bia) = (gw.contact_of("A1").await, gw.contact_of("B1").await);
    let ana_req = open_request(&gw, ana, "access", "gdpr").await;
    // Bia's request is older: past its 15-day LGPD deadline by now.
    let bia_req = open_request(&gw, bia, "access", "lgpd").await;
    sqlx::query("UPDATE dsr_requests SET due_at = $1 WHERE id = $2")
        .bind(gw.w.t.clock.now() - Duration::days(1))
        .bind(uuid::Uuid::parse_str(bia_req.rsplit('/').next().unwrap()).unwrap())
        .execute(&gw.w.t.owner)
        .await
        .unwrap();
    let id = ana_req.rsplit('/').next().unwrap();
    let r =
        gw.w.owner
            .submit(
                &ana_req,
                &format!("/t/clinic-a/privacy/requests/{id}/status"),
                &[("status", "completed"), ("note", "export sent")],
            )
            .await;
    assert_eq!(r.status, 303);
    let owner = &gw.w.owner;
    let rows = |show: &'static str| async move {
        let page = owner
            .get(&format!("/t/clinic-a/privacy?show={show}"))
            .await
            .body;
        let doc = scraper::Html::parse_document(&page);
        let sel = scraper::Selector::parse("#dsr-list tbody tr td:first-child").unwrap();
        doc.select(&sel)
            .map(|td| td.text().collect::<String>().trim().to_owned())
            .collect::<Vec<_>>()
    };
    let mut all = rows("").await;
    all.sort();
    assert_eq!(all, ["Ana", "Bia"], "each request names its contact");
    assert_eq!(rows("overdue").await, ["Bia"]);
    assert_eq!(rows("open").await, ["Bia"]);
    assert_eq!(rows("closed").await, ["Ana"]);
    let page =
        gw.w.owner
            .get("/t/clinic-a/privacy?show=overdue")
            .await
            .body;
    assert!(page.contains(r#"<option value="overdue" selected>"#));
}
