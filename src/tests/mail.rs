//! E-mail (issue 20): every message goes through a real SMTP server (aiosmtpd, started by
//! scripts/test, writing each message it accepts as an .eml file), and the tests read what
//! was delivered and follow its links.

use std::path::PathBuf;

use crate::clock::Clock;
use serde_json::json;
use time::Duration;

use crate::tests::{
    client::{Client, PASSWORD, World},
    harness::{TestApp, errors_logged},
    wa::Gw,
};

/// One delivered message, parsed with `mail-parser`.
pub(super) struct Delivered {
    pub(crate) subject: String,
    pub(crate) text: String,
    pub(crate) html: String,
    pub(crate) message_id: String,
    pub(crate) from: String,
}

/// What this test's app sends carries a unique sender address, so tests sharing the sink
/// (and earlier runs' messages in it) never read each other's mail.
pub(super) struct Mailbox {
    tag: String,
    dir: PathBuf,
}

impl Mailbox {
    pub(super) fn new() -> Mailbox {
        let dir = std::env::var_os("SIGMAAI_TEST_MAILDIR")
            .map(PathBuf::from)
            .expect("SIGMAAI_TEST_MAILDIR is unset: run the tests with scripts/test, which starts the SMTP sink");
        Mailbox {
            tag: format!("t{}", uuid::Uuid::new_v4().simple()),
            dir,
        }
    }

    /// Turns e-mail on in a test config, pointed at the sink.
    pub(super) fn configure(&self, c: &mut crate::config::Config) {
        let url = std::env::var("SIGMAAI_TEST_SMTP_URL")
            .expect("SIGMAAI_TEST_SMTP_URL is unset: run the tests with scripts/test");
        c.smtp_url = Some(secrecy::SecretString::from(url));
        c.mail_from = format!("SigmaAI <no-reply@{}.test>", self.tag);
    }

    /// Every message this test's app delivered to `to`, oldest first.
    pub(super) fn to(&self, to: &str) -> Vec<Delivered> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for path in names {
            let raw = std::fs::read(&path).unwrap();
            let Some(msg) = mail_parser::MessageParser::default().parse(&raw) else {
                continue;
            };
            let from = msg
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.address())
                .unwrap_or("")
                .to_owned();
            if !from.ends_with(&format!("@{}.test", self.tag)) {
                continue;
            }
            let rcpts: Vec<String> = msg
                .header_values("X-Sink-To")
                .filter_map(|v| v.as_text().map(|s| s.trim().to_owned()))
                .collect();
            if !rcpts.iter().any(|r| r == to) {
                continue;
            }
            out.push(Delivered {
                subject: msg.subject().unwrap_or("").to_owned(),
                text: msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
                html: msg.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
                message_id: msg.message_id().unwrap_or("").to_owned(),
                from,
            });
        }
        out
    }
}

/// The path of the first link in a text body that starts with `prefix` (e.g. `/reset/`).
fn link_path(text: &str, prefix: &str) -> String {
    let i = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{text}"));
    text[i..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_owned()
}

async fn mail_world(mb: &Mailbox) -> World {
    let t = TestApp::with_config(|c| mb.configure(c)).await;
    let server = t.spawn().await;
    let owner = Client::new(&server);
    let r = owner
        .sign_up("Ana Owner", "owner@a.test", "Clinic A", "clinic-a")
        .await;
    assert_eq!(r.status, 303, "sign-up failed: {}", r.body);
    World { t, server, owner }
}

async fn run_jobs(w: &World) {
    crate::jobs::run_due(&w.t.state).await.unwrap();
}

#[tokio::test]
async fn forgot_password_mails_a_link_that_sets_a_new_password() {
    let mb = Mailbox::new();
    let w = mail_world(&mb).await;
    let login = w.client().get("/login").await;
    assert!(
        login.body.contains(r#"href="/forgot""#),
        "login page links to /forgot"
    );

    // The same answer for an address with an account and one without.
    let c = w.client();
    let known = c
        .submit("/forgot", "/forgot", &[("email", "Owner@A.test")])
        .await;
    let unknown = c
        .submit("/forgot", "/forgot", &[("email", "nobody@a.test")])
        .await;
    assert_eq!((known.status, unknown.status), (200, 200));
    assert!(known.body.contains(r#"id="forgot-sent""#));
    assert_eq!(
        known.body, unknown.body,
        "the answer tells whether the account exists"
    );
    // Asked twice within minutes: one e-mail.
    c.submit("/forgot", "/forgot", &[("email", "owner@a.test")])
        .await;
    run_jobs(&w).await;
    run_jobs(&w).await;
    let mails = mb.to("owner@a.test");
    assert_eq!(mails.len(), 1, "one e-mail for repeated requests");
    assert!(mb.to("nobody@a.test").is_empty());
    let m = &mails[0];
    assert!(m.from.starts_with("no-reply@"));
    assert!(
        !m.html.is_empty() && !m.text.is_empty(),
        "HTML and text parts"
    );
    // In the user's language (English: the test client's default).
    assert_eq!(m.subject, "Reset your SigmaAI password");
    assert!(m.message_id.contains('@'));

    // The link sets a new password once; the new password logs in, the old one no longer.
    let path = link_path(&m.text, "/reset/");
    assert!(
        m.html.contains(&path),
        "the HTML part carries the same link"
    );
    let me = w.client();
    let page = me.get(&path).await;
    assert_eq!(page.status, 200);
    let r = me
        .post(
            &path,
            &[
                ("csrf", &page.csrf()),
                ("password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(r.location.unwrap().starts_with("/login"));
    assert_eq!(
        w.client()
            .log_in("owner@a.test", "a brand new passphrase")
            .await
            .status,
        303
    );
    assert_eq!(
        w.client().log_in("owner@a.test", PASSWORD).await.status,
        422
    );
    // Spent: the page no longer offers the form.
    assert!(!w.client().get(&path).await.body.contains(r#"name="csrf""#));
    // The owner's old session ended with the reset.
    assert!(w.owner.get("/t/clinic-a").await.is_login_redirect());
    let audited = w.t.audit_count("member.password_reset").await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn forgot_password_is_throttled_per_address() {
    let mb = Mailbox::new();
    let w = mail_world(&mb).await;
    let c = w.client();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            c.submit("/forgot", "/forgot", &[("email", "owner@a.test")])
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    assert_eq!(statuses[5], 429, "{statuses:?}");
    // Over-long input is answered like any other address (no 500).
    let long = format!("{}@a.test", "x".repeat(400));
    let before = errors_logged();
    let r = w
        .client()
        .submit("/forgot", "/forgot", &[("email", &long)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(errors_logged(), before);
}

#[tokio::test]
async fn a_self_service_link_dies_with_a_newer_one_and_with_a_password_change() {
    let mb = Mailbox::new();
    let w = mail_world(&mb).await;
    let c = w.client();
    c.submit("/forgot", "/forgot", &[("email", "owner@a.test")])
        .await;
    run_jobs(&w).await;
    // A later request (past the window) mints a new link; the first one dies.
    w.t.clock
        .advance(crate::accounts::FORGOT_WINDOW + Duration::seconds(1));
    c.submit("/forgot", "/forgot", &[("email", "owner@a.test")])
        .await;
    run_jobs(&w).await;
    let mails = mb.to("owner@a.test");
    assert_eq!(mails.len(), 2);
    let first = link_path(&mails[0].text, "/reset/");
    let second = link_path(&mails[1].text, "/reset/");
    assert_ne!(first, second);
    assert!(!w.client().get(&first).await.body.contains(r#"name="csrf""#));
    // The owner changes the password by hand: the newest link dies too.
    let r = w
        .owner
        .submit(
            "/account",
            "/account/password",
            &[("current", PASSWORD), ("new", "another new passphrase")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !w.client()
            .get(&second)
            .await
            .body
            .contains(r#"name="csrf""#)
    );
}

#[tokio::test]
async fn an_invitation_is_mailed_once_and_its_link_joins_the_tenant() {
    let mb = Mailbox::new();
    let w = mail_world(&mb).await;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/members",
            "/t/clinic-a/members/invite",
            &[("email", "Rita@A.test"), ("role", "reviewer")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#"id="invite-mailed""#));
    assert!(
        r.input_value("new-link").is_none(),
        "the link is e-mailed, not shown"
    );
    run_jobs(&w).await;
    // The job again (as after a crash before it was marked done): still one message.
    sqlx::query("UPDATE jobs SET state = 'pending', run_at = now() - interval '1 day', locked_until = NULL WHERE kind = 'send_mail'")
        .execute(&w.t.owner)
        .await
        .unwrap();
    run_jobs(&w).await;
    let mails = mb.to("rita@a.test");
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert!(m.subject.contains("Clinic A"), "{}", m.subject);
    // In the tenant's language (English: the owner signed up with an English browser).
    assert!(
        m.text.contains("invited you to join Clinic A"),
        "{}",
        m.text
    );
    let path = link_path(&m.text, "/invite/");
    let c = w.client();
    let r = c
        .submit(
            &path,
            &path,
            &[
                ("name", "Rita"),
                ("password", PASSWORD),
                ("accept_policy", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "accepting failed: {}", r.body);
    let role: String = sqlx::query_scalar(
        "SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'rita@a.test'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(role, "reviewer");
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_mailed_once() {
    let mb = Mailbox::new();
    let w = mail_world(&mb).await;
    // The device the owner signed up from: no e-mail.
    assert_eq!(
        w.client().log_in("owner@a.test", PASSWORD).await.status,
        303
    );
    run_jobs(&w).await;
    assert!(mb.to("owner@a.test").is_empty());
    let phone = Client {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/5.0 (Linux; Android 14) <script>x</script>")
            .build()
            .unwrap(),
        base: w.server.base.clone(),
    };
    assert_eq!(phone.log_in("owner@a.test", PASSWORD).await.status, 303);
    assert_eq!(phone.log_in("owner@a.test", PASSWORD).await.status, 303);
    run_jobs(&w).await;
    let mails = mb.to("owner@a.test");
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.contains("Android 14"));
    assert!(mails[0].text.contains("127.0.0.1"));
    assert!(
        !mails[0].html.contains("<script>"),
        "the user agent is escaped in HTML"
    );
    assert!(mails[0].text.contains("/account"));
}

#[tokio::test]
async fn billing_trouble_mails_the_owner_once_per_event() {
    let mb = Mailbox::new();
    let t = TestApp::with_config(|c| {
        mb.configure(c);
        c.stripe_secret_key = Some(secrecy::SecretString::from("sk_test_123"));
        c.stripe_webhook_secret = Some(secrecy::SecretString::from("whsec_mail"));
    })
    .await;
    let server = t.spawn().await;
    let owner = Client::new(&server);
    assert_eq!(
        owner
            .sign_up("Ana Owner", "owner@a.test", "Clinic A", "clinic-a")
            .await
            .status,
        303
    );
    let w = World { t, server, owner };
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let event = json!({
        "id": "evt_fail_1", "object": "event", "type": "invoice.payment_failed",
        "created": w.t.clock.now().unix_timestamp(),
        "data": { "object": { "object": "invoice", "client_reference_id": tenant, "customer": "cus_1" } }
    });
    for _ in 0..2 {
        let body = event.to_string();
        let sig = crate::billing::stripe::sign(
            "whsec_mail",
            body.as_bytes(),
            w.t.clock.now().unix_timestamp(),
        );
        let r = reqwest::Client::new()
            .post(w.server.url("/webhooks/stripe"))
            .header("stripe-signature", sig)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    run_jobs(&w).await;
    let mails = mb.to("owner@a.test");
    assert_eq!(mails.len(), 1, "a replayed event sends nothing more");
    assert!(
        mails[0].text.contains("/t/clinic-a/billing"),
        "{}",
        mails[0].text
    );
}

#[tokio::test]
async fn waiting_reviews_and_due_requests_alert_by_mail_once() {
    let mb = Mailbox::new();
    let gw = Gw::evolution_in(mail_world(&mb).await).await;
    let now = gw.w.t.clock.now().unix_timestamp();
    gw.ana_writes_at(now, "M1", "qual o horário?").await;
    let waiting: i64 = gw.count("drafts").await;
    assert_eq!(waiting, 1, "the turn waits for review");
    // Not long enough yet.
    crate::mail::alerts::run(&gw.w.t.mail()).await.unwrap();
    gw.run_jobs().await;
    assert!(mb.to("owner@a.test").is_empty());
    gw.w.t.clock.advance(Duration::minutes(61));
    for _ in 0..2 {
        crate::mail::alerts::run(&gw.w.t.mail()).await.unwrap();
        gw.run_jobs().await;
    }
    let mails = mb.to("owner@a.test");
    assert_eq!(mails.len(), 1, "one alert per waiting draft");
    assert!(mails[0].text.contains("/t/clinic-a/review"));

    // A data-subject request: alerted once it is due within 3 days. (The owner's session
    // went idle while the clock moved.)
    assert_eq!(
        gw.w.owner.log_in("owner@a.test", PASSWORD).await.status,
        303
    );
    let contact: uuid::Uuid =
        sqlx::query_scalar("SELECT contact_id FROM messages WHERE external_id = 'M1'")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    let conv = gw.only_conversation().await;
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                "/t/clinic-a/privacy/requests",
                &[
                    ("contact", &contact.to_string()),
                    ("kind", "access"),
                    ("legal_basis", "lgpd"),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let request = r.location.unwrap();
    let due: time::OffsetDateTime = sqlx::query_scalar("SELECT due_at FROM dsr_requests")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    crate::mail::alerts::run(&gw.w.t.mail()).await.unwrap();
    gw.run_jobs().await;
    let before = mb.to("owner@a.test").len();
    let to_wait = due - Duration::days(2) - gw.w.t.clock.now();
    gw.w.t.clock.advance(to_wait);
    for _ in 0..2 {
        crate::mail::alerts::run(&gw.w.t.mail()).await.unwrap();
        gw.run_jobs().await;
    }
    let mails = mb.to("owner@a.test");
    let dsr: Vec<_> = mails[before..]
        .iter()
        .filter(|m| m.text.contains("/privacy/requests/"))
        .collect();
    assert_eq!(dsr.len(), 1, "one alert per due request");
    assert!(dsr[0].text.contains(&request), "{}", dsr[0].text);
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_retried_and_the_mail_sent_once_it_answers() {
    let mb = Mailbox::new();
    let mut t = TestApp::with_config(|c| {
        mb.configure(c);
        // Nothing listens on port 1.
        c.smtp_url = Some(secrecy::SecretString::from("smtp://127.0.0.1:1"));
    })
    .await;
    let server = t.spawn().await;
    let c = Client::new(&server);
    assert_eq!(
        c.sign_up("Ana Owner", "owner@a.test", "Clinic A", "clinic-a")
            .await
            .status,
        303
    );
    let r = c
        .submit("/forgot", "/forgot", &[("email", "owner@a.test")])
        .await;
    assert_eq!(r.status, 200);
    let before = errors_logged();
    crate::jobs::run_due(&t.state).await.unwrap();
    let (state, attempts, error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT state, attempts, last_error FROM jobs WHERE kind = 'send_mail'")
            .fetch_one(&t.owner)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(error.unwrap().contains("SMTP"));
    assert_eq!(
        errors_logged(),
        before,
        "a failed send is a warning, not an error"
    );
    assert!(mb.to("owner@a.test").is_empty());
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL")
        .fetch_one(&t.owner)
        .await
        .unwrap();
    assert_eq!(unsent, 1);

    // Another worker, with a reachable server, picks the retry up once it is due.
    t.config.smtp_url = Some(secrecy::SecretString::from(
        std::env::var("SIGMAAI_TEST_SMTP_URL").unwrap(),
    ));
    let worker = t.second_instance().await;
    sqlx::query("UPDATE jobs SET run_at = run_at - interval '1 hour' WHERE kind = 'send_mail'")
        .execute(&t.owner)
        .await
        .unwrap();
    crate::jobs::run_due(&worker).await.unwrap();
    crate::jobs::run_due(&worker).await.unwrap();
    assert_eq!(mb.to("owner@a.test").len(), 1);
}

#[tokio::test]
async fn without_smtp_the_forgot_page_says_whom_to_ask() {
    let w = World::new().await;
    let c = w.client();
    let page = c.get("/forgot").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("does not send e-mail"));
    // A post (with a token from the login form) gets the same page, and nothing is queued.
    let csrf = c.get("/login").await.csrf();
    let r = c
        .post("/forgot", &[("csrf", &csrf), ("email", "owner@a.test")])
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("does not send e-mail"));
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM mail_outbox")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(queued, 0);
}

#[tokio::test]
async fn the_review_alert_threshold_is_the_tenants_setting() {
    let mb = Mailbox::new();
    let gw = Gw::evolution_in(mail_world(&mb).await).await;
    let settings = |minutes: &'static str| {
        vec![
            ("name", "Clinic A"),
            ("time_zone", "America/Sao_Paulo"),
            ("language", "en"),
            ("review_alert_minutes", minutes),
        ]
    };
    let before = errors_logged();
    for bad in ["4", "10081", "soon"] {
        let r =
            gw.w.owner
                .submit(
                    "/t/clinic-a/settings",
                    "/t/clinic-a/settings",
                    &settings(bad),
                )
                .await;
        assert_eq!(r.status, 422, "{bad}");
        assert!(r.body.contains("between 5 and 10080"));
    }
    assert_eq!(errors_logged(), before);
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/settings",
                "/t/clinic-a/settings",
                &settings("15"),
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = gw.w.owner.get("/t/clinic-a/settings").await;
    assert_eq!(
        page.input_value("review_alert_minutes").as_deref(),
        Some("15")
    );

    let now = gw.w.t.clock.now().unix_timestamp();
    gw.ana_writes_at(now, "R1", "oi").await;
    gw.w.t.clock.advance(Duration::minutes(14));
    crate::mail::alerts::run(&gw.w.t.mail()).await.unwrap();
    gw.run_jobs().await;
    assert!(
        mb.to("owner@a.test").is_empty(),
        "not yet: 14 of 15 minutes"
    );
    gw.w.t.clock.advance(Duration::minutes(2));
    crate::mail::alerts::run(&gw.w.t.mail()).await.unwrap();
    gw.run_jobs().await;
    let mails = mb.to("owner@a.test");
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].text.contains("more than 15 minutes"),
        "{}",
        mails[0].text
    );
}
