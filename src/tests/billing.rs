//! Plans and billing with Stripe (issue 9).

use crate::clock::Clock;
use serde_json::{Value, json};
use time::Duration;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::tests::{client::World, wa::Gw};

const WHSEC: &str = "whsec_test_secret";

async fn stripe_world(stripe: Option<&MockServer>) -> World {
    let base = stripe.map(|s| s.uri());
    World::with_config(|c| {
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
    .await
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
        crate::billing::stripe::sign(WHSEC, body.as_bytes(), w.t.clock.now().unix_timestamp())
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
    let events = w.t.audit_count("billing.event").await;
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
        crate::billing::stripe::sign("whsec_wrong", body.as_bytes(), now),
        crate::billing::stripe::sign(WHSEC, body.as_bytes(), now - 301),
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
async fn the_customer_portal_opens_for_the_paying_customer_only() {
    let stripe = MockServer::start().await;
    // Stripe's billing_portal.session resource (API reference shape).
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .and(header("authorization", "Bearer sk_test_123"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "bps_1", "object": "billing_portal.session", "configuration": "bpc_1",
            "created": 1_700_000_000, "customer": "cus_1", "flow": null, "livemode": false,
            "locale": null, "on_behalf_of": null,
            "return_url": "http://localhost/t/clinic-a/billing",
            "url": "https://billing.stripe.test/p/session/test_1"
        })))
        .mount(&stripe)
        .await;
    let w = stripe_world(Some(&stripe)).await;
    // Before any payment there is no Stripe customer to manage: said, and Stripe not called.
    let r = w
        .owner
        .submit("/t/clinic-a/billing", "/t/clinic-a/billing/portal", &[])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/t/clinic-a/billing"));
    assert!(stripe.received_requests().await.unwrap().is_empty());

    let t = tenant_id(&w).await;
    let (s, _) = deliver(
        &w,
        "evt_1",
        "checkout.session.completed",
        w.t.clock.now().unix_timestamp(),
        checkout_completed(t, "cus_1"),
    )
    .await;
    assert_eq!(s, 200);
    let r = w
        .owner
        .submit("/t/clinic-a/billing", "/t/clinic-a/billing/portal", &[])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.location.as_deref(),
        Some("https://billing.stripe.test/p/session/test_1")
    );
    // (The billing page itself lists invoices from Stripe; only portal sessions count here.)
    let portal_requests = || async {
        stripe
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/v1/billing_portal/sessions")
            .collect::<Vec<_>>()
    };
    let reqs = portal_requests().await;
    assert_eq!(reqs.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&reqs[0].body)
        .into_owned()
        .collect();
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    assert_eq!(get("customer").as_deref(), Some("cus_1"));
    let back = get("return_url").unwrap();
    assert!(back.ends_with("/t/clinic-a/billing"), "{back}");
    assert!(reqs[0].headers.get("idempotency-key").is_some());
    // Only the owner manages the subscription.
    let admin = w.add_member("ad@a.test", "admin").await;
    let csrf = admin.get("/t/clinic-a").await.csrf();
    let r = admin
        .post("/t/clinic-a/billing/portal", &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(portal_requests().await.len(), 1);
}

#[tokio::test]
async fn a_stripe_outage_on_the_portal_is_a_message_not_a_500() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/billing_portal/sessions"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "error": { "type": "api_error", "message": "An unknown error occurred" }
        })))
        .mount(&stripe)
        .await;
    let w = stripe_world(Some(&stripe)).await;
    let t = tenant_id(&w).await;
    deliver(
        &w,
        "evt_1",
        "checkout.session.completed",
        w.t.clock.now().unix_timestamp(),
        checkout_completed(t, "cus_1"),
    )
    .await;
    let r = w
        .owner
        .submit("/t/clinic-a/billing", "/t/clinic-a/billing/portal", &[])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/t/clinic-a/billing"));
    assert!(r.set_cookies.join(";").contains("billing.error"));
    let tried = stripe.received_requests().await.unwrap();
    assert!(
        tried
            .iter()
            .any(|r| r.url.path() == "/v1/billing_portal/sessions")
    );
}

#[tokio::test]
async fn without_stripe_billing_shows_the_plan_and_usage() {
    let w = World::new().await;
    let page = w.owner.get("/t/clinic-a/billing").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Payments are not configured"));
    assert!(page.body.contains("Clinic"), "the plan chosen at sign-up");
    assert!(
        page.body.contains("0 / 10,000"),
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
    gw.ana_writes("L1", "Quanto custa?").await;
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
    gw.ana_sends_at(old, "OLD", "antiga").await;
    gw.ana_sends("NEW", "nova").await;
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
    crate::privacy::retention::run_sweep(&gw.w.t.privacy())
        .await
        .unwrap();
    assert_eq!(gw.count("messages").await, 1);
}

// ---------- Stripe's own fixtures, delivered out of order ----------

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/stripe/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An event as Stripe sends it, around one of its fixture objects.
/// Posts a correctly signed Stripe event built by [`stripe_event`].
async fn deliver(w: &World, id: &str, kind: &str, created: i64, object: Value) -> (u16, Value) {
    post_event(w, &stripe_event(id, kind, created, object), None).await
}

fn stripe_event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut e = fixture_event();
    e["id"] = json!(id);
    e["type"] = json!(kind);
    e["created"] = json!(created);
    e["data"] = json!({ "object": object });
    e
}

fn fixture_event() -> Value {
    json!({ "object": "event", "api_version": crate::billing::stripe::STRIPE_VERSION,
            "livemode": false, "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null } })
}

fn subscription(tenant: uuid::Uuid, status: &str, price: &str) -> Value {
    let mut s = fixture("subscription");
    s["id"] = json!("sub_1");
    s["customer"] = json!("cus_1");
    s["status"] = json!(status);
    s["metadata"] = json!({ "tenant_id": tenant });
    s["items"]["data"][0]["price"]["id"] = json!(price);
    s
}

fn invoice(customer: &str) -> Value {
    let mut i = fixture("invoice");
    i["customer"] = json!(customer);
    i["status"] = json!("paid");
    i["parent"] = json!({ "type": "subscription_details",
        "subscription_details": { "subscription": "sub_1", "metadata": null }, "quote_details": null });
    i
}

fn checkout_completed(tenant: uuid::Uuid, customer: &str) -> Value {
    let mut c = fixture("checkout_session");
    c["mode"] = json!("subscription");
    c["client_reference_id"] = json!(tenant);
    c["customer"] = json!(customer);
    c["subscription"] = json!("sub_1");
    c["status"] = json!("complete");
    c
}

#[tokio::test]
async fn out_of_order_deliveries_never_revive_a_canceled_subscription() {
    let w = stripe_world(None).await;
    let t = tenant_id(&w).await;
    let t0 = w.t.clock.now().unix_timestamp() - 1_000;
    for (id, kind, at, obj) in [
        (
            "evt_a",
            "checkout.session.completed",
            t0,
            checkout_completed(t, "cus_1"),
        ),
        (
            "evt_b",
            "customer.subscription.updated",
            t0 + 10,
            subscription(t, "active", "price_clinic"),
        ),
        (
            "evt_del",
            "customer.subscription.deleted",
            t0 + 300,
            subscription(t, "canceled", "price_clinic"),
        ),
    ] {
        let (s, v) = deliver(&w, id, kind, at, obj).await;
        assert_eq!((s, v["result"].as_str()), (200, Some("handled")), "{id}");
    }
    assert_eq!(billing_row(&w).await.1, "canceled");
    // Then an older update (still "active" when it was sent) and an older invoice.paid.
    let (s, v) = deliver(
        &w,
        "evt_old_upd",
        "customer.subscription.updated",
        t0 + 200,
        subscription(t, "active", "price_enterprise"),
    )
    .await;
    assert_eq!((s, v["result"].as_str()), (200, Some("stale")));
    let (_, v) = deliver(
        &w,
        "evt_old_paid",
        "invoice.paid",
        t0 + 100,
        invoice("cus_1"),
    )
    .await;
    assert_eq!(v["result"].as_str(), Some("stale"));
    // Even a newer invoice.paid does not bring an ended subscription back.
    let (_, v) = deliver(
        &w,
        "evt_new_paid",
        "invoice.paid",
        t0 + 400,
        invoice("cus_1"),
    )
    .await;
    assert_eq!(v["result"].as_str(), Some("stale"));
    let (plan, status, _, _) = billing_row(&w).await;
    assert_eq!((plan.as_str(), status.as_str()), ("clinic", "canceled"));
    let (tstatus, terminate_at): (String, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT status, terminate_at FROM tenants WHERE id = $1")
            .bind(t)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(tstatus, "terminating");
    assert!(terminate_at.is_some());
    // Every delivery is recorded (replays stay duplicates); only the applied ones audited.
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(seen, 6);
    let audited = w.t.audit_count("billing.event").await;
    assert_eq!(audited, 3);
}

#[tokio::test]
async fn an_older_update_after_a_newer_one_changes_nothing() {
    let w = stripe_world(None).await;
    let t = tenant_id(&w).await;
    let t0 = w.t.clock.now().unix_timestamp() - 1_000;
    deliver(
        &w,
        "evt_a",
        "checkout.session.completed",
        t0,
        checkout_completed(t, "cus_1"),
    )
    .await;
    deliver(
        &w,
        "evt_new",
        "customer.subscription.updated",
        t0 + 60,
        subscription(t, "past_due", "price_enterprise"),
    )
    .await;
    let (_, v) = deliver(
        &w,
        "evt_old",
        "customer.subscription.updated",
        t0 + 30,
        subscription(t, "active", "price_starter"),
    )
    .await;
    assert_eq!(v["result"].as_str(), Some("stale"));
    let (plan, status, _, grace) = billing_row(&w).await;
    assert_eq!((plan.as_str(), status.as_str()), ("enterprise", "past_due"));
    assert!(grace.is_some());
}

#[tokio::test]
async fn paused_and_incomplete_pause_drafting_and_lose_nothing() {
    let gw = Gw::evolution_in(stripe_world(None).await).await;
    let t = tenant_id(&gw.w).await;
    let t0 = gw.w.t.clock.now().unix_timestamp() - 1_000;
    deliver(
        &gw.w,
        "evt_a",
        "checkout.session.completed",
        t0,
        checkout_completed(t, "cus_1"),
    )
    .await;
    deliver(
        &gw.w,
        "evt_p",
        "customer.subscription.paused",
        t0 + 10,
        subscription(t, "paused", "price_clinic"),
    )
    .await;
    assert_eq!(billing_row(&gw.w).await.1, "paused");
    // A payment does not resume a paused subscription.
    deliver(&gw.w, "evt_i", "invoice.paid", t0 + 20, invoice("cus_1")).await;
    assert_eq!(billing_row(&gw.w).await.1, "paused");
    gw.ana_writes("P1", "Quanto custa?").await;
    assert_eq!(gw.count("messages").await, 1, "the message is stored");
    let reason: Option<String> = sqlx::query_scalar("SELECT escalation_reason FROM drafts")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(reason.as_deref(), Some("billing_inactive"));
    deliver(
        &gw.w,
        "evt_r",
        "customer.subscription.resumed",
        t0 + 30,
        subscription(t, "active", "price_clinic"),
    )
    .await;
    assert_eq!(billing_row(&gw.w).await.1, "active");
    deliver(
        &gw.w,
        "evt_inc",
        "customer.subscription.updated",
        t0 + 40,
        subscription(t, "incomplete", "price_clinic"),
    )
    .await;
    assert_eq!(billing_row(&gw.w).await.1, "incomplete");
    // The first invoice paid settles an incomplete subscription.
    deliver(&gw.w, "evt_i2", "invoice.paid", t0 + 50, invoice("cus_1")).await;
    assert_eq!(billing_row(&gw.w).await.1, "active");
}

#[tokio::test]
async fn invoice_events_before_the_customer_is_linked_apply_once_it_is() {
    let w = stripe_world(None).await;
    let t = tenant_id(&w).await;
    let t0 = w.t.clock.now().unix_timestamp() - 1_000;
    // The failed payment is delivered before the checkout's completion.
    let (s, v) = deliver(
        &w,
        "evt_fail",
        "invoice.payment_failed",
        t0 + 50,
        invoice("cus_new"),
    )
    .await;
    assert_eq!((s, v["result"].as_str()), (200, Some("kept")));
    assert_eq!(billing_row(&w).await.1, "none");
    let (_, v) = deliver(
        &w,
        "evt_done",
        "checkout.session.completed",
        t0,
        checkout_completed(t, "cus_new"),
    )
    .await;
    assert_eq!(v["result"].as_str(), Some("handled"));
    let (_, status, customer, grace) = billing_row(&w).await;
    assert_eq!(
        (status.as_str(), customer.as_deref()),
        ("past_due", Some("cus_new"))
    );
    assert!(grace.is_some());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_pending_events")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

/// Stripe's idempotency as documented: a repeated `Idempotency-Key` gets the first answer
/// back and creates nothing. Counts the sessions really created.
#[derive(Default)]
struct IdempotentCheckout {
    sessions: std::sync::Mutex<std::collections::HashMap<String, String>>,
    created: std::sync::atomic::AtomicUsize,
}

struct Shared(std::sync::Arc<IdempotentCheckout>);

impl wiremock::Respond for Shared {
    fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
        let this = &self.0;
        let Some(key) = req
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
        else {
            // Without a key every request is a new session.
            let n = this
                .created
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return ResponseTemplate::new(200).set_body_json(json!({ "id": format!("cs_{n}"),
                "object": "checkout.session", "url": format!("https://checkout.stripe.test/c/pay/cs_{n}") }));
        };
        let mut sessions = this.sessions.lock().unwrap();
        let id = sessions
            .entry(key.to_owned())
            .or_insert_with(|| {
                let n = this
                    .created
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                format!("cs_{n}")
            })
            .clone();
        let mut session = fixture("checkout_session");
        session["id"] = json!(id);
        session["mode"] = json!("subscription");
        session["url"] = json!(format!("https://checkout.stripe.test/c/pay/{id}"));
        ResponseTemplate::new(200).set_body_json(session)
    }
}

#[tokio::test]
async fn a_double_submitted_checkout_creates_one_session_with_one_key() {
    let stripe = MockServer::start().await;
    let idem = std::sync::Arc::new(IdempotentCheckout::default());
    Mock::given(method("POST"))
        .and(path("/v1/checkout/sessions"))
        .and(header(
            "stripe-version",
            crate::billing::stripe::STRIPE_VERSION,
        ))
        .respond_with(Shared(idem.clone()))
        .mount(&stripe)
        .await;
    let w = stripe_world(Some(&stripe)).await;
    // The owner clicks twice on the page they see (same page, same hidden fields).
    let page = w.owner.get("/t/clinic-a/billing").await;
    let csrf = page.csrf();
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse("input[name=action_id]").unwrap();
    let action_id = doc
        .select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .expect("the checkout form names its action")
        .to_owned();
    let form = [
        ("csrf", csrf.as_str()),
        ("plan", "enterprise"),
        ("action_id", action_id.as_str()),
    ];
    let first = w.owner.post("/t/clinic-a/billing/checkout", &form).await;
    let second = w.owner.post("/t/clinic-a/billing/checkout", &form).await;
    assert_eq!((first.status, second.status), (303, 303));
    assert_eq!(first.location, second.location);
    let received = stripe.received_requests().await.unwrap();
    assert_eq!(received.len(), 2, "both submissions reached Stripe");
    let keys: Vec<&str> = received
        .iter()
        .map(|r| r.headers.get("idempotency-key").unwrap().to_str().unwrap())
        .collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(
        idem.created.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one Checkout session"
    );
    // A later visit to the page is a new action: a new key.
    let r = w
        .owner
        .submit(
            "/t/clinic-a/billing",
            "/t/clinic-a/billing/checkout",
            &[("plan", "enterprise")],
        )
        .await;
    assert_eq!(r.status, 303);
    let received = stripe.received_requests().await.unwrap();
    assert_ne!(
        received[2].headers.get("idempotency-key").unwrap(),
        received[0].headers.get("idempotency-key").unwrap()
    );
}
