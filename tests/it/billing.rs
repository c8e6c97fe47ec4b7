//! Plans and billing with Stripe (issue 9).

use serde_json::{Value, json};
use sigmaai::clock::Clock;
use time::Duration;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::{
    client::{Client, World},
    harness::TestApp,
    wa::{Gw, evo_text},
};

const WHSEC: &str = "whsec_test_secret";

async fn stripe_world(stripe: Option<&MockServer>) -> World {
    let base = stripe.map(|s| s.uri());
    let t = TestApp::with_config(|c| {
        c.stripe_secret_key = Some(secrecy::SecretString::from("sk_test_123"));
        c.stripe_webhook_secret = Some(secrecy::SecretString::from(WHSEC));
        if let Some(b) = base {
            c.stripe_api_url = b;
        }
        for (plan, price) in [
            ("starter", "price_starter"),
            ("clinic", "price_clinic"),
            ("enterprise", "price_enterprise"),
        ] {
            c.stripe_prices.insert(plan.into(), price.into());
        }
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
    World { t, server, owner }
}

async fn tenant_id(w: &World) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap()
}

async fn post_event(w: &World, event: &Value, signature: Option<String>) -> (u16, Value) {
    let body = event.to_string();
    let sig = signature.unwrap_or_else(|| {
        sigmaai::billing::stripe::sign(WHSEC, body.as_bytes(), w.t.clock.now().unix_timestamp())
    });
    let r = reqwest::Client::new()
        .post(w.server.url("/webhooks/stripe"))
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({ "id": id, "object": "event", "type": kind, "data": { "object": object } })
}

async fn billing_row(w: &World) -> (String, String, Option<String>, Option<time::OffsetDateTime>) {
    sqlx::query_as("SELECT plan, billing_status, stripe_customer_id, grace_until FROM tenants WHERE slug = 'clinic-a'").fetch_one(&w.t.owner).await.unwrap()
}

#[tokio::test]
async fn signed_events_move_plan_and_status_and_replays_change_nothing() {
    let w = stripe_world(None).await;
    let t = tenant_id(&w).await;
    let (s, v) = post_event(&w, &event("evt_1", "checkout.session.completed", json!({ "object": "checkout.session", "client_reference_id": t, "customer": "cus_1", "subscription": "sub_1" })), None).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("handled")));
    assert_eq!(billing_row(&w).await.1, "active");
    assert_eq!(billing_row(&w).await.2.as_deref(), Some("cus_1"));

    let upgrade = event(
        "evt_2",
        "customer.subscription.updated",
        json!({ "object": "subscription", "id": "sub_1", "customer": "cus_1", "status": "active", "items": { "data": [{ "price": { "id": "price_enterprise" } }] } }),
    );
    post_event(&w, &upgrade, None).await;
    assert_eq!(billing_row(&w).await.0, "enterprise");
    // A replay of an older event changes nothing.
    let downgrade = event(
        "evt_3",
        "customer.subscription.updated",
        json!({ "object": "subscription", "id": "sub_1", "customer": "cus_1", "status": "active", "items": { "data": [{ "price": { "id": "price_starter" } }] } }),
    );
    post_event(&w, &downgrade, None).await;
    let (s, v) = post_event(&w, &upgrade, None).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("duplicate")));
    assert_eq!(billing_row(&w).await.0, "starter");

    // A failed payment: past due with a grace period and a banner; paid again: active.
    post_event(
        &w,
        &event(
            "evt_4",
            "invoice.payment_failed",
            json!({ "object": "invoice", "customer": "cus_1" }),
        ),
        None,
    )
    .await;
    let (_, status, _, grace) = billing_row(&w).await;
    assert_eq!(status, "past_due");
    assert_eq!(grace.unwrap(), w.t.clock.now() + Duration::days(7));
    assert!(
        w.owner
            .get("/t/clinic-a")
            .await
            .body
            .contains("A payment failed")
    );
    post_event(
        &w,
        &event(
            "evt_5",
            "invoice.paid",
            json!({ "object": "invoice", "customer": "cus_1" }),
        ),
        None,
    )
    .await;
    assert_eq!(billing_row(&w).await.1, "active");
    assert!(
        !w.owner
            .get("/t/clinic-a")
            .await
            .body
            .contains("A payment failed")
    );

    // A deleted subscription starts the termination flow (export window, deletion in 30 days).
    post_event(&w, &event("evt_6", "customer.subscription.deleted", json!({ "object": "subscription", "id": "sub_1", "customer": "cus_1", "status": "canceled" })), None).await;
    let (status, terminate_at): (String, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT status, terminate_at FROM tenants WHERE id = $1")
            .bind(t)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(status, "terminating");
    assert_eq!(terminate_at.unwrap(), w.t.clock.now() + Duration::days(30));
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'billing.event'")
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(events, 6);
}

#[tokio::test]
async fn bad_or_stale_signatures_are_refused_and_store_nothing() {
    let w = stripe_world(None).await;
    let t = tenant_id(&w).await;
    let e = event(
        "evt_x",
        "invoice.payment_failed",
        json!({ "object": "invoice", "client_reference_id": t, "customer": "cus_1" }),
    );
    let body = e.to_string();
    let now = w.t.clock.now().unix_timestamp();
    for sig in [
        sigmaai::billing::stripe::sign("whsec_wrong", body.as_bytes(), now),
        sigmaai::billing::stripe::sign(WHSEC, body.as_bytes(), now - 301),
        format!("t={now}"),
        "garbage".to_owned(),
    ] {
        let (s, _) = post_event(&w, &e, Some(sig)).await;
        assert_eq!(s, 400);
    }
    let r = reqwest::Client::new()
        .post(w.server.url("/webhooks/stripe"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no signature at all");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    assert_eq!(billing_row(&w).await.1, "none");
}

#[tokio::test]
async fn checkout_sends_the_right_price_and_tenant_reference() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .and(header("authorization", "Bearer sk_test_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "cs_1", "object": "checkout.session", "url": "https://checkout.stripe.test/c/pay/cs_1" })))
        .mount(&stripe)
        .await;
    let w = stripe_world(Some(&stripe)).await;
    let t = tenant_id(&w).await;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/billing",
            "/t/clinic-a/billing/checkout",
            &[("plan", "enterprise")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("https://checkout.stripe.test/c/pay/cs_1")
    );
    let req = &stripe.received_requests().await.unwrap()[0];
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect();
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    assert_eq!(get("mode").as_deref(), Some("subscription"));
    assert_eq!(
        get("line_items[0][price]").as_deref(),
        Some("price_enterprise")
    );
    assert_eq!(get("client_reference_id"), Some(t.to_string()));
    assert_eq!(get("metadata[tenant_id]"), Some(t.to_string()));
    // Only owners manage billing.
    let admin = w.add_member("ad@a.test", "admin").await;
    assert_eq!(admin.get("/t/clinic-a/billing").await.status, 403);
}

#[tokio::test]
async fn without_stripe_billing_shows_the_plan_and_usage() {
    let w = World::new().await;
    let page = w.owner.get("/t/clinic-a/billing").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Payments are not configured"));
    assert!(page.body.contains("Clinic"), "the plan chosen at sign-up");
    assert!(
        page.body.contains("0 / 10000"),
        "AI drafts used against the plan's limit"
    );
    let r = w
        .owner
        .submit(
            "/t/clinic-a/billing",
            "/t/clinic-a/billing/checkout",
            &[("plan", "enterprise")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/t/clinic-a/billing"));
    // The webhook is off too.
    let r = reqwest::Client::new()
        .post(w.server.url("/webhooks/stripe"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn limits_pause_drafting_without_losing_a_message_and_cap_seats() {
    let gw = Gw::evolution().await;
    let t: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    // This month's drafts are used up (Clinic plan: 10,000).
    sqlx::query(
        "INSERT INTO ai_usage (tenant_id, day, provider, drafts) VALUES ($1, $2, 'offline', 10000)",
    )
    .bind(t)
    .bind(gw.w.t.clock.now().date())
    .execute(&gw.w.t.owner)
    .await
    .unwrap();
    gw.evo(&evo_text(
        "L1",
        "5511988887777",
        "Ana",
        gw.w.t.clock.now().unix_timestamp(),
        "Quanto custa?",
    ))
    .await;
    gw.run_jobs().await;
    assert_eq!(
        gw.count("messages").await,
        1,
        "the customer's message is stored"
    );
    let reason: Option<String> = sqlx::query_scalar("SELECT escalation_reason FROM drafts")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("ai_limit_month"));
    assert!(
        gw.w.owner
            .get("/t/clinic-a")
            .await
            .body
            .contains("drafting is paused")
    );

    // Seats: the Clinic plan has 10; invitations count too.
    for i in 0..9 {
        let r =
            gw.w.owner
                .submit(
                    "/t/clinic-a/members",
                    "/t/clinic-a/members/invite",
                    &[("email", &format!("m{i}@a.test")), ("role", "viewer")],
                )
                .await;
        assert_eq!(r.status, 200, "invite {i}");
    }
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/members",
                "/t/clinic-a/members/invite",
                &[("email", "extra@a.test"), ("role", "viewer")],
            )
            .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("All seats of your plan are taken"));
}

#[tokio::test]
async fn lowering_the_plan_says_what_the_sweep_will_remove_before_it_does() {
    let w = stripe_world(None).await;
    let t = tenant_id(&w).await;
    post_event(
        &w,
        &event(
            "evt_1",
            "checkout.session.completed",
            json!({ "client_reference_id": t, "customer": "cus_1", "subscription": "sub_1" }),
        ),
        None,
    )
    .await;
    post_event(&w, &event("evt_2", "customer.subscription.updated", json!({ "id": "sub_1", "customer": "cus_1", "status": "active", "items": { "data": [{ "price": { "id": "price_enterprise" } }] } })), None).await;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/privacy",
            "/t/clinic-a/privacy/settings",
            &[
                ("message_days", "1000"),
                ("ai_trace_days", "365"),
                ("keywords", ""),
                ("legal_basis", "lgpd"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let gw = Gw::evolution_in(w).await;
    let old = gw.w.t.clock.now().unix_timestamp() - 500 * 86400;
    gw.evo(&evo_text("OLD", "5511988887777", "Ana", old, "antiga"))
        .await;
    gw.evo(&evo_text(
        "NEW",
        "5511988887777",
        "Ana",
        gw.w.t.clock.now().unix_timestamp(),
        "nova",
    ))
    .await;
    // Downgrade to Starter (1 year).
    post_event(&gw.w, &event("evt_3", "customer.subscription.updated", json!({ "id": "sub_1", "customer": "cus_1", "status": "active", "items": { "data": [{ "price": { "id": "price_starter" } }] } })), None).await;
    let page = gw.w.owner.get("/t/clinic-a/privacy").await;
    assert!(
        page.body.contains("Your plan now keeps messages 365 days."),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("The next daily sweep will remove 1 older messages.")
    );
    assert_eq!(
        gw.count("messages").await,
        2,
        "nothing removed before the sweep"
    );
    sigmaai::privacy::retention::run_sweep(&gw.w.t.state)
        .await
        .unwrap();
    assert_eq!(gw.count("messages").await, 1);
}
