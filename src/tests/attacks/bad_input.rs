//! Malformed input gets a clear 4xx and no ERROR line: NUL bytes (which PostgreSQL can't
//! store), signed-but-malformed Stripe events, and WhatsApp text beyond WhatsApp's limits.

use crate::clock::Clock;
use serde_json::json;

use crate::tests::{
    client::World,
    harness::{TestApp, errors_logged},
    wa::{Gw, evo_text},
};

const NUL: &str = "evil\0value";

/// A page holding a form, the form's action and the fields to post.
type Form<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

#[tokio::test]
async fn a_nul_byte_in_any_form_or_in_the_slug_is_a_400() {
    let w = World::new().await;
    let errors_before = errors_logged();
    let anon = w.client();
    // Anonymous forms: sign-up and login (the e-mail field especially).
    let csrf = anon.get("/signup").await.csrf();
    for field in ["name", "email", "business", "slug"] {
        let mut f = vec![
            ("csrf", csrf.as_str()),
            ("name", "Bea"),
            ("email", "bea@b.test"),
            ("password", "a long enough password"),
            ("business", "Clinic B"),
            ("slug", "clinic-b"),
            ("accept_policy", "yes"),
        ];
        for kv in f.iter_mut() {
            if kv.0 == field {
                kv.1 = NUL;
            }
        }
        assert_eq!(anon.post("/signup", &f).await.status, 400, "signup {field}");
    }
    let csrf = anon.get("/login").await.csrf();
    let r = anon
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "owner@a.test\0"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, 400);

    // The slug in the path, logged in or not.
    assert_eq!(w.owner.get("/t/clinic%00-a").await.status, 400);
    assert_eq!(
        w.owner
            .get("/t/clinic-a/conversations?q=a%00b")
            .await
            .status,
        400
    );

    // A tenant admin's forms.
    let forms: &[Form] = &[
        (
            "/t/clinic-a/settings",
            "/t/clinic-a/settings",
            &[("name", NUL), ("time_zone", "UTC"), ("language", "en")],
        ),
        (
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge",
            &[("title", NUL), ("body", "Opening hours")],
        ),
        (
            "/t/clinic-a/canned",
            "/t/clinic-a/canned",
            &[("title", "Hi"), ("body", NUL)],
        ),
        (
            "/t/clinic-a/members",
            "/t/clinic-a/members/invite",
            &[("email", NUL), ("role", "viewer")],
        ),
        (
            "/account",
            "/account/password",
            &[("current", NUL), ("new", "whatever it is now")],
        ),
    ];
    for (page, action, fields) in forms {
        let r = w.owner.submit(page, action, fields).await;
        assert_eq!(r.status, 400, "{action}: {}", r.body);
    }
    assert_eq!(errors_logged(), errors_before, "bad input logged at ERROR");
}

const WHSEC: &str = "whsec_attack";

async fn post_signed(server: &crate::tests::harness::Server, t: &TestApp, body: &str) -> u16 {
    let sig = crate::billing::stripe::sign(WHSEC, body.as_bytes(), t.clock.now().unix_timestamp());
    reqwest::Client::new()
        .post(server.url("/webhooks/stripe"))
        .header("stripe-signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn signed_but_malformed_stripe_events_are_a_400() {
    let t = TestApp::with_config(|c| {
        c.stripe_secret_key = Some(secrecy::SecretString::from("sk_test_123"));
        c.stripe_webhook_secret = Some(secrecy::SecretString::from(WHSEC));
    })
    .await;
    let server = t.spawn().await;
    let errors_before = errors_logged();
    let no_id = json!({ "object": "event", "type": "invoice.paid", "data": { "object": {} } });
    let numeric_id = json!({ "id": 42, "type": "invoice.paid", "data": { "object": {} } });
    for body in [
        no_id.to_string(),
        numeric_id.to_string(),
        "[]".to_owned(),
        "[{\"id\":\"evt_1\"}]".to_owned(),
        "\"evt_1\"".to_owned(),
        "{\"id\":\"evt_1\"}".to_owned(),
        "not json".to_owned(),
    ] {
        assert_eq!(post_signed(&server, &t, &body).await, 400, "{body}");
    }
    assert_eq!(errors_logged(), errors_before);
}

#[tokio::test]
async fn oversize_whatsapp_text_and_names_are_bounded_not_refused() {
    let gw = Gw::evolution().await;
    let long_text = format!("START{}", "a".repeat(100_000));
    let long_name = format!("\u{202E}{}", "N".repeat(50_000));
    let (status, _) = gw
        .evo(&evo_text(
            "OVERSIZE1",
            "5511988887777",
            &long_name,
            1_773_651_600,
            &long_text,
        ))
        .await;
    assert_eq!(status, 200);
    let conv = gw.only_conversation().await;
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("START"), "the start of the text is kept");
    assert!(
        page.body
            .contains("cut by SigmaAI: 100005 characters received, the first 4096 kept"),
        "the stored row says it was cut"
    );
    assert!(!page.body.contains(&"a".repeat(4097)));
    assert!(!page.body.contains(&"N".repeat(101)), "the name is capped");
    assert!(!page.body.contains('\u{202E}'), "bidi override shown raw");
}
