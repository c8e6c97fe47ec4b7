//! Outgoing webhooks, against a local receiver that verifies every request with the Standard
//! Webhooks reference library (`standardwebhooks` from PyPI, scripts/webhook_receiver.py).

use std::process::Stdio;

use crate::clock::Clock as _;

use serde_json::{Value, json};
use time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::tests::{
    client::{Client, World},
    wa::{Gw, evo_text},
};

/// One receiver process for one test, on a free port; killed when dropped.
struct Receiver {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Receiver {
    async fn start() -> Receiver {
        let cmd = std::env::var("SIGMAAI_TEST_WEBHOOK_RECEIVER")
            .expect("SIGMAAI_TEST_WEBHOOK_RECEIVER is not set: run the tests through scripts/test");
        let mut parts = cmd.split_whitespace();
        let mut child = tokio::process::Command::new(parts.next().unwrap())
            .args(parts)
            .args(["127.0.0.1", "0"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the webhook receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .await
            .unwrap();
        let port: u16 = line.trim().parse().expect("the receiver prints its port");
        Receiver {
            _child: child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn control(&self, c: Value) {
        let r = self
            .http
            .post(self.url("/_control"))
            .json(&c)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// The receiver checks timestamps against the test's clock, not the wall's.
    async fn sync_clock(&self, w: &World) {
        self.control(json!({ "now": w.t.clock.now().unix_timestamp() }))
            .await;
    }

    async fn received(&self) -> Vec<Value> {
        self.http
            .get(self.url("/_received"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Adds an endpoint on the portal; returns its id and the secret shown once.
async fn add_endpoint(w: &World, url: &str, events: &[&str], include_text: bool) -> (Uuid, String) {
    let mut fields = vec![("url", url), ("description", "CRM")];
    fields.extend(events.iter().map(|e| ("event", *e)));
    if include_text {
        fields.push(("include_text", "1"));
    }
    let r = w
        .owner
        .submit("/t/clinic-a/webhooks", "/t/clinic-a/webhooks", &fields)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let secret = r
        .input_value("wh-secret")
        .expect("the secret is shown once");
    assert!(secret.starts_with("whsec_"));
    let id: Uuid = sqlx::query_scalar("SELECT id FROM webhook_endpoints ORDER BY id DESC LIMIT 1")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    // Shown once: the page does not show it again, and the row holds only ciphertext.
    let again = w.owner.get("/t/clinic-a/webhooks").await;
    assert!(!again.body.contains(&secret));
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT secret_sealed FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&secret[6..]));
    (id, secret)
}

async fn run_jobs(w: &World, rx: &Receiver) {
    rx.sync_clock(w).await;
    crate::jobs::run_due(&w.t.state).await.unwrap();
}

async fn send_test(w: &World, id: Uuid) {
    let page = format!("/t/clinic-a/webhooks/{id}");
    let r = w
        .owner
        .submit(&page, &format!("/t/clinic-a/webhooks/{id}/test"), &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

async fn delivery_states(w: &World) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT state, attempts FROM webhook_deliveries ORDER BY created_at")
        .fetch_all(&w.t.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_inbound_message_is_posted_signed_and_the_reference_library_verifies_it() {
    let gw = Gw::evolution().await;
    let w = &gw.w;
    let rx = Receiver::start().await;
    let (_id, secret) = add_endpoint(w, &rx.url("/hook"), &["message.received"], false).await;
    rx.control(json!({ "secret": secret })).await;
    let now = w.t.clock.now().unix_timestamp();
    let (status, _) = gw
        .evo(&evo_text(
            "IN1",
            "5511988887777",
            "Ana",
            now,
            "quero marcar",
        ))
        .await;
    assert_eq!(status, 200);
    run_jobs(w, &rx).await;
    let got = rx.received().await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let r = &got[0];
    assert_eq!(r["verified"], true, "{r:#?}");
    let p = &r["payload"];
    assert_eq!(p["type"], "message.received");
    assert_eq!(p["data"]["tenant"], "clinic-a");
    assert_eq!(p["data"]["status"], "received");
    let conv = gw.only_conversation().await;
    assert_eq!(p["data"]["conversation_id"], conv.to_string());
    assert!(p["data"]["message_id"].is_string());
    // Minimal by default: no text, no phone, no name anywhere in the body.
    assert!(p["data"].get("text").is_none());
    for leak in ["quero marcar", "5511988887777", "Ana"] {
        assert!(!r["body"].as_str().unwrap().contains(leak), "{leak} sent");
    }
    let id = r["headers"]["webhook-id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(r["headers"]["webhook-timestamp"], now.to_string());
    assert_eq!(delivery_states(w).await, [("delivered".into(), 1)]);

    // The same request under another secret does not verify: the check can fail.
    rx.control(json!({ "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }))
        .await;
    gw.ana_sends_at(now + 1, "IN2", "oi").await;
    run_jobs(w, &rx).await;
    let got = rx.received().await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["verified"], false);
    assert!(
        got[1]["error"]
            .as_str()
            .unwrap()
            .contains("No matching signature")
    );
    assert_eq!(crate::tests::harness::errors_logged(), 0);
}

#[tokio::test]
async fn a_500_is_retried_on_the_schedule_and_a_success_ends_it() {
    let w = World::new().await;
    let rx = Receiver::start().await;
    let (id, secret) = add_endpoint(&w, &rx.url("/hook"), &["dsr.created"], false).await;
    rx.control(json!({ "secret": secret, "statuses": [500, 503] }))
        .await;
    send_test(&w, id).await;
    run_jobs(&w, &rx).await;
    assert_eq!(rx.received().await.len(), 1);
    assert_eq!(delivery_states(&w).await, [("pending".into(), 1)]);
    // Not before its time.
    w.t.clock.advance(Duration::seconds(4));
    run_jobs(&w, &rx).await;
    assert_eq!(rx.received().await.len(), 1);
    w.t.clock.advance(Duration::seconds(1));
    run_jobs(&w, &rx).await;
    assert_eq!(rx.received().await.len(), 2);
    w.t.clock.advance(Duration::minutes(5));
    run_jobs(&w, &rx).await;
    let got = rx.received().await;
    assert_eq!(got.len(), 3);
    assert_eq!(delivery_states(&w).await, [("delivered".into(), 3)]);
    // Every attempt: the same webhook-id, a fresh timestamp, a valid signature.
    for r in &got {
        assert_eq!(r["verified"], true, "{r:#?}");
        assert_eq!(r["headers"]["webhook-id"], got[0]["headers"]["webhook-id"]);
        assert_eq!(r["payload"]["type"], "webhook.test");
    }
    assert_ne!(
        got[0]["headers"]["webhook-timestamp"],
        got[2]["headers"]["webhook-timestamp"]
    );
    // The log shows each response code and its timing.
    let log = w.owner.get(&format!("/t/clinic-a/webhooks/{id}")).await;
    assert_eq!(log.status, 200);
    for code in [
        "data-status=\"500\"",
        "data-status=\"503\"",
        "data-status=\"200\"",
    ] {
        assert!(log.body.contains(code), "{code} not in the log");
    }
    assert!(log.body.contains(" ms</li>"));
    // Nothing more once delivered.
    w.t.clock.advance(Duration::hours(12));
    run_jobs(&w, &rx).await;
    assert_eq!(rx.received().await.len(), 3);
}

#[tokio::test]
async fn an_endpoint_failing_for_a_day_is_disabled_with_an_alert_then_enabled_and_replayed() {
    let mb = crate::tests::mail::Mailbox::new();
    let w = World::with_config(|c| mb.configure(c)).await;
    let rx = Receiver::start().await;
    let (id, secret) = add_endpoint(&w, &rx.url("/hook"), &["message.sent"], false).await;
    rx.control(json!({ "secret": secret, "statuses": vec![500; 8] }))
        .await;
    send_test(&w, id).await;
    let started = w.t.clock.now();
    for wait in std::iter::once(Duration::ZERO).chain(crate::outgoing::RETRY_SCHEDULE) {
        w.t.clock.advance(wait);
        run_jobs(&w, &rx).await;
    }
    assert_eq!(rx.received().await.len(), 8);
    assert!(w.t.clock.now() - started > Duration::hours(24));
    assert_eq!(delivery_states(&w).await, [("failed".into(), 8)]);
    let (enabled, reason): (bool, Option<String>) =
        sqlx::query_as("SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert!(!enabled);
    assert_eq!(reason.as_deref(), Some("failing"));
    let r = w
        .owner
        .log_in("owner@a.test", crate::tests::client::PASSWORD)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = w.owner.get("/t/clinic-a/webhooks").await;
    assert!(
        page.body.contains("id=\"webhooks-failing\""),
        "{}",
        page.body
    );
    // The owner is e-mailed once, however often the alerts run.
    crate::mail::alerts::run(&w.t.mail()).await.unwrap();
    crate::mail::alerts::run(&w.t.mail()).await.unwrap();
    run_jobs(&w, &rx).await;
    let mails = mb.to("owner@a.test");
    let alerts: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("webhook"))
        .collect();
    assert_eq!(
        alerts.len(),
        1,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(alerts[0].text.contains("127.0.0.1"));
    assert!(
        alerts[0]
            .text
            .contains(&format!("/t/clinic-a/webhooks/{id}"))
    );
    let detail = format!("/t/clinic-a/webhooks/{id}");
    assert!(
        w.owner
            .get(&detail)
            .await
            .body
            .contains("id=\"endpoint-failing\"")
    );
    // Disabled: nothing more goes out, not even a test event.
    let r = w
        .owner
        .submit(&detail, &format!("{detail}/test"), &[])
        .await;
    assert_eq!(r.status, 303);
    w.t.clock.advance(Duration::hours(1));
    run_jobs(&w, &rx).await;
    assert_eq!(rx.received().await.len(), 8);
    // Hours later the session has expired: sign in again.
    let r = w
        .owner
        .log_in("owner@a.test", crate::tests::client::PASSWORD)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);

    // The admin fixes the receiver, enables the endpoint (the alert goes) and replays.
    let r = w
        .owner
        .submit(&detail, &format!("{detail}/enabled"), &[("enabled", "1")])
        .await;
    assert_eq!(r.status, 303);
    assert!(
        !w.owner
            .get("/t/clinic-a/webhooks")
            .await
            .body
            .contains("webhooks-failing")
    );
    let delivery: Uuid = sqlx::query_scalar("SELECT id FROM webhook_deliveries")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let r = w
        .owner
        .submit(
            &detail,
            &format!("{detail}/deliveries/{delivery}/replay"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    run_jobs(&w, &rx).await;
    let got = rx.received().await;
    assert_eq!(got.len(), 9);
    assert_eq!(got[8]["verified"], true);
    assert_eq!(got[8]["status"], 200);
    assert_eq!(
        got[8]["headers"]["webhook-id"],
        got[0]["headers"]["webhook-id"]
    );
    assert_eq!(delivery_states(&w).await, [("delivered".into(), 1)]);
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'webhook.%' ORDER BY seq",
    )
    .fetch_all(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "webhook.endpoint_added",
            "webhook.endpoint_disabled",
            "webhook.endpoint_enabled",
            "webhook.delivery_replayed"
        ]
    );
}

#[tokio::test]
async fn private_and_plain_http_endpoints_are_refused_in_production() {
    let w = World::with_config(|c| c.env = crate::config::Environment::Production).await;
    let rx = Receiver::start().await;
    for url in [
        rx.url("/hook"),
        "https://10.0.0.5/hook".to_owned(),
        "https://169.254.169.254/latest/meta-data/".to_owned(),
        "https://[::ffff:127.0.0.1]/hook".to_owned(),
        "https://localhost/hook".to_owned(),
    ] {
        let r = w
            .owner
            .submit(
                "/t/clinic-a/webhooks",
                "/t/clinic-a/webhooks",
                &[("url", &url), ("event", "message.received")],
            )
            .await;
        assert_eq!(r.status, 422, "{url} accepted");
        assert!(r.body.contains("id=\"form-error\""));
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // And at delivery: an endpoint whose address is (now) private is never called.
    let tenant: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let sealed =
        w.t.keys
            .seal_tenant_str(
                tenant,
                crate::messaging::webhook_delivery::secret_aad(id),
                &crate::outgoing::signing::new_secret(),
            )
            .await
            .unwrap();
    sqlx::query(
        r#"INSERT INTO webhook_endpoints (id, tenant_id, url, events, secret_sealed, created_at, updated_at)
           VALUES ($1, $2, $3, ARRAY['message.received'], $4, now(), now())"#,
    )
    .bind(id)
    .bind(tenant)
    .bind(rx.url("/hook"))
    .bind(sealed)
    .execute(&w.t.owner)
    .await
    .unwrap();
    send_test(&w, id).await;
    run_jobs(&w, &rx).await;
    assert!(
        rx.received().await.is_empty(),
        "a private address was called"
    );
    let error: Option<String> = sqlx::query_scalar("SELECT error FROM webhook_attempts")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(error.as_deref(), Some("destination not allowed"));
}

#[tokio::test]
async fn message_text_goes_only_to_an_opted_in_endpoint_which_becomes_a_recipient() {
    let gw = Gw::evolution().await;
    let w = &gw.w;
    let plain = Receiver::start().await;
    let texty = Receiver::start().await;
    let (_p, s1) = add_endpoint(w, &plain.url("/a"), &["message.received"], false).await;
    let (t_id, s2) = add_endpoint(w, &texty.url("/b"), &["message.received"], true).await;
    plain.control(json!({ "secret": s1 })).await;
    texty.control(json!({ "secret": s2 })).await;
    let now = w.t.clock.now().unix_timestamp();
    gw.ana_sends_at(now, "IN1", "dor de dente forte").await;
    texty.sync_clock(w).await;
    run_jobs(w, &plain).await;
    let a = plain.received().await;
    let b = texty.received().await;
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(a[0]["verified"], true);
    assert_eq!(b[0]["verified"], true);
    assert!(a[0]["payload"]["data"].get("text").is_none());
    assert_eq!(b[0]["payload"]["data"]["text"], "dor de dente forte");
    // The text is never stored in the outbox.
    let stored: Vec<String> = sqlx::query_scalar("SELECT data::text FROM webhook_deliveries")
        .fetch_all(&w.t.owner)
        .await
        .unwrap();
    assert!(stored.iter().all(|d| !d.contains("dente")));
    // The opted-in endpoint received the contact's data: the processing record says so.
    let recipients: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, name FROM data_recipients WHERE kind = 'webhook'")
            .fetch_all(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(recipients, [("webhook".into(), "127.0.0.1".into())]);
    let privacy = w.owner.get("/t/clinic-a/privacy").await;
    assert!(
        privacy.body.contains("Webhook endpoint"),
        "{}",
        privacy.body
    );

    // A restricted contact's text goes nowhere new.
    sqlx::query("UPDATE contacts SET restricted_at = now()")
        .execute(&w.t.owner)
        .await
        .unwrap();
    gw.ana_sends_at(now + 1, "IN1R", "restrito").await;
    plain.sync_clock(w).await;
    run_jobs(w, &texty).await;
    let b = texty.received().await;
    assert_eq!(b.len(), 2, "{b:#?}");
    assert_eq!(b[1]["verified"], true);
    assert!(b[1]["payload"]["data"].get("text").is_none(), "{b:#?}");
    sqlx::query("UPDATE contacts SET restricted_at = NULL")
        .execute(&w.t.owner)
        .await
        .unwrap();

    // Opting out on the page stops the text (and is audited).
    let detail = format!("/t/clinic-a/webhooks/{t_id}");
    let r = w
        .owner
        .submit(
            &detail,
            &format!("{detail}/settings"),
            &[("event", "message.received")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some(detail.as_str()));
    let include_text: bool =
        sqlx::query_scalar("SELECT include_text FROM webhook_endpoints WHERE id = $1")
            .bind(t_id)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert!(!include_text);
    gw.ana_sends_at(now + 2, "IN2", "ainda dói").await;
    plain.sync_clock(w).await;
    run_jobs(w, &texty).await;
    let b = texty.received().await;
    assert_eq!(b.len(), 3);
    assert!(b[2]["payload"]["data"].get("text").is_none(), "{b:#?}");
    let opt_out = w.t.audit_count("webhook.text_opt_out").await;
    assert_eq!(opt_out, 1);
}

#[tokio::test]
async fn every_event_is_emitted_where_it_happens() {
    let gw = Gw::evolution().await;
    let w = &gw.w;
    let rx = Receiver::start().await;
    let all = [
        "message.received",
        "message.sent",
        "message.failed",
        "draft.created",
        "draft.approved",
        "conversation.assigned",
        "dsr.created",
        "dsr.due",
    ];
    let (_id, secret) = add_endpoint(w, &rx.url("/hook"), &all, false).await;
    rx.control(json!({ "secret": secret })).await;
    Mock::given(method("POST"))
        .and(path("/message/sendText/clinic"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({ "key": { "id": "OUT-1", "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true }, "status": "PENDING" })))
        .mount(&gw.gateway)
        .await;
    let now = w.t.clock.now().unix_timestamp();
    gw.ana_sends_at(now, "IN1", "vocês abrem sábado?").await;
    run_jobs(w, &rx).await; // message.received, then the AI turn: draft.created
    let conv = gw.only_conversation().await;
    let page = format!("/t/clinic-a/conversations/{conv}");
    let r = w
        .owner
        .submit(
            &page,
            &format!("{page}/reply"),
            &[("text", "Sim, das 8h às 12h.")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let owner_id = w.t.user_id("owner@a.test").await;
    let r = w
        .owner
        .submit(
            &page,
            &format!("{page}/assign"),
            &[("user", &owner_id.to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let contact: Uuid = sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
        .bind(conv)
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let r = w
        .owner
        .submit(
            &page,
            "/t/clinic-a/privacy/requests",
            &[
                ("contact", &contact.to_string()),
                ("kind", "access"),
                ("legal_basis", "lgpd"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    w.t.clock.advance(Duration::seconds(61));
    run_jobs(w, &rx).await; // the send: message.sent
    // LGPD: due in 15 days; the alert looks 3 days ahead, and says so once.
    w.t.clock.advance(Duration::days(13));
    crate::mail::alerts::run(&w.t.mail()).await.unwrap();
    crate::mail::alerts::run(&w.t.mail()).await.unwrap();
    run_jobs(w, &rx).await;
    let got = rx.received().await;
    let mut types: Vec<String> = got
        .iter()
        .map(|r| {
            assert_eq!(r["verified"], true, "{r:#?}");
            r["payload"]["type"].as_str().unwrap().to_owned()
        })
        .collect();
    types.sort();
    // Opening the conversation assigned it already (assign on open), then the form did:
    // two `conversation.assigned` events.
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "conversation.assigned")
            .count(),
        2,
        "{types:?}"
    );
    types.dedup();
    assert_eq!(
        types,
        [
            "conversation.assigned",
            "draft.created",
            "dsr.created",
            "dsr.due",
            "message.received",
            "message.sent"
        ],
        "{got:#?}"
    );
    let by_type = |t: &str| {
        got.iter()
            .find(|r| r["payload"]["type"] == t)
            .map(|r| r["payload"]["data"].clone())
            .unwrap()
    };
    assert_eq!(
        by_type("conversation.assigned")["assigned_to"],
        owner_id.to_string()
    );
    assert_eq!(by_type("message.sent")["status"], "sent");
    assert_eq!(by_type("dsr.created")["kind"], "access");
    assert_eq!(
        by_type("dsr.due")["request_id"],
        by_type("dsr.created")["request_id"]
    );
}

#[tokio::test]
async fn only_admins_of_the_tenant_reach_its_webhooks() {
    let w = World::new().await;
    let rx = Receiver::start().await;
    let (id, _secret) = add_endpoint(&w, &rx.url("/hook"), &["dsr.due"], false).await;
    send_test(&w, id).await;
    let delivery: Uuid = sqlx::query_scalar("SELECT id FROM webhook_deliveries")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let detail = format!("/t/clinic-a/webhooks/{id}");
    let reviewer = w.add_member("rev@a.test", "reviewer").await;
    let csrf = reviewer.get("/t/clinic-a").await.csrf();
    assert_eq!(reviewer.get("/t/clinic-a/webhooks").await.status, 403);
    assert_eq!(reviewer.get(&detail).await.status, 403);
    for action in ["/test", "/delete", "/enabled", "/settings"] {
        let r = reviewer
            .post(
                &format!("{detail}{action}"),
                &[("csrf", &csrf), ("enabled", "0")],
            )
            .await;
        assert_eq!(r.status, 403, "{action}");
    }
    let r = reviewer
        .post(
            "/t/clinic-a/webhooks",
            &[
                ("csrf", &csrf),
                ("url", &rx.url("/x")),
                ("event", "dsr.due"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);

    // Another tenant's owner: not even that the tenant or endpoint exists.
    let other = Client::new(&w.server);
    let r = other
        .sign_up("Bia Owner", "owner@b.test", "Clinic B", "clinic-b")
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(other.get(&detail).await.status, 404);
    assert_eq!(other.get("/t/clinic-a/webhooks").await.status, 404);
    assert_eq!(
        other
            .get(&format!("/t/clinic-b/webhooks/{id}"))
            .await
            .status,
        404
    );
    let page = other.get("/t/clinic-b/webhooks").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(&id.to_string()));
    let csrf_b = page.csrf();
    let r = other
        .post(
            &format!("/t/clinic-b/webhooks/{id}/deliveries/{delivery}/replay"),
            &[("csrf", &csrf_b)],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = other
        .post(
            &format!("/t/clinic-b/webhooks/{id}/delete"),
            &[("csrf", &csrf_b)],
        )
        .await;
    assert_eq!(r.status, 404);

    // The owner deletes it (its log goes with it).
    let r = w
        .owner
        .submit(&detail, &format!("{detail}/delete"), &[])
        .await;
    assert_eq!(r.status, 303);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(w.owner.get(&detail).await.status, 404);
}
