//! The tenant API (issue 21): tokens, scopes, tenancy, revocation, expiry, idempotent sends,
//! problem details, audit, rate limits and the OpenAPI document — all over HTTP, with the
//! gateway a local server that counts what it is asked to send.

use crate::clock::Clock;
use crate::tests::{
    client::{Client, World},
    review::mock_send_ok,
    wa::Gw,
};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::Duration;

const ALL: &[&str] = &[
    "conversations:read",
    "messages:send",
    "contacts:write",
    "review",
    "knowledge:manage",
    "privacy:manage",
];

/// Creates a token on the tenant's API page; returns the token shown (once).
async fn make_token(c: &Client, slug: &str, name: &str, scopes: &[&str], days: &str) -> String {
    let page = format!("/t/{slug}/api");
    let mut fields: Vec<(String, String)> = vec![
        ("name".into(), name.into()),
        ("expires_in_days".into(), days.into()),
    ];
    for s in scopes {
        fields.push((format!("scope:{s}"), "on".into()));
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = c.submit(&page, &page, &fields).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.input_value("new-token").expect("the new token is shown")
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem document with this status.
    fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{:?}",
            self.headers
        );
        assert_eq!(self.body["status"], status);
        for f in ["type", "title", "detail"] {
            assert!(
                self.body[f]
                    .as_str()
                    .is_some_and(|s| !s.is_empty() && s != "??"),
                "{f} in {}",
                self.body
            );
        }
    }
}

async fn call(
    w: &World,
    m: Method,
    p: &str,
    token: Option<&str>,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Resp {
    let mut req = reqwest::Client::new().request(m, w.server.url(p));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Resp {
        status,
        headers,
        body,
    }
}

async fn get(w: &World, p: &str, token: &str) -> Resp {
    call(w, Method::GET, p, Some(token), None, &[]).await
}

/// A second tenant (clinic-b) with its own owner.
async fn tenant_b(w: &World) -> Client {
    let b = w.client();
    let r = b
        .sign_up("Bia Owner", "owner@b.test", "Clinic B", "clinic-b")
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    b
}

async fn one_inbound(gw: &Gw, text: &str) -> uuid::Uuid {
    gw.customer_sends("IN-1", "5511988887777", "Maria Silva", text)
        .await;
    gw.only_conversation().await
}

async fn gateway_sends(gw: &Gw) -> usize {
    gw.send_requests().await.len()
}

#[tokio::test]
async fn a_token_is_shown_once_and_only_a_hash_of_its_secret_is_stored() {
    let w = World::new().await;
    let token = make_token(&w.owner, "clinic-a", "n8n flows", &["review"], "30").await;
    assert!(token.starts_with("sgm_"), "{token}");
    // Shown once: the page never shows it again.
    let page = w.owner.get("/t/clinic-a/api").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("n8n flows"));
    assert!(!page.body.contains(&token));
    // `sgm_` + 32 hex digits of id + `_` + the secret (base64url, which may hold `_`).
    let secret = &token["sgm_".len() + 32 + 1..];
    let (hash, scopes, expires): (Vec<u8>, Vec<String>, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT secret_hash, scopes, expires_at FROM api_tokens")
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(hash, Sha256::digest(secret.as_bytes()).to_vec());
    assert_eq!(scopes, vec!["review".to_owned()]);
    assert_eq!(expires, Some(w.t.clock.now() + Duration::days(30)));
    // No column anywhere in the row holds the secret itself.
    let leaked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_tokens t WHERE position($1 in t::text) > 0")
            .bind(secret)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(leaked, 0);
    // The token works; a reviewer can't reach the page; a form without scopes is refused.
    assert_eq!(get(&w, "/api/v1/drafts", &token).await.status, 200);
    let r = w
        .owner
        .submit(
            "/t/clinic-a/api",
            "/t/clinic-a/api",
            &[("name", "x"), ("expires_in_days", "30")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let reviewer = w.add_member("rev@a.test", "reviewer").await;
    assert_eq!(reviewer.get("/t/clinic-a/api").await.status, 403);
}

#[tokio::test]
async fn scopes_tenants_revocation_and_expiry_are_enforced_on_every_call() {
    let gw = Gw::evolution().await;
    let w = &gw.w;
    let conv = one_inbound(&gw, "Olá, quero marcar uma consulta").await;
    let reader = make_token(&w.owner, "clinic-a", "crm", &["conversations:read"], "7").await;
    let other = make_token(&w.owner, "clinic-a", "kb", &["knowledge:manage"], "0").await;

    // The list, with filters and a page size.
    let r = get(w, "/api/v1/conversations?status=open&limit=10", &reader).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"][0]["id"], conv.to_string());
    assert_eq!(r.body["data"][0]["contact_label"], "Maria Silva");
    let resolved = get(w, "/api/v1/conversations?status=resolved", &reader).await;
    assert_eq!(resolved.body["data"], json!([]));
    get(w, "/api/v1/conversations?limit=0", &reader)
        .await
        .assert_problem(400);
    // One conversation with its messages, recorded as access.
    let r = get(w, &format!("/api/v1/conversations/{conv}"), &reader).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["messages"][0]["text"],
        "Olá, quero marcar uma consulta"
    );
    assert_eq!(r.body["contact"]["phone"], "5511988887777");
    let viewed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'conversation.viewed' AND subject = $1 AND actor_label = 'api token \"crm\"'",
    )
    .bind(conv.to_string())
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(viewed, 1);
    let contact = r.body["contact"]["id"].as_str().unwrap().to_owned();
    let r = get(w, &format!("/api/v1/contacts/{contact}"), &reader).await;
    assert_eq!(r.body["name"], "Maria Silva", "{}", r.body);

    // Without the scope: 403 on each.
    for p in [
        "/api/v1/conversations".to_owned(),
        format!("/api/v1/conversations/{conv}"),
        format!("/api/v1/contacts/{contact}"),
    ] {
        get(w, &p, &other).await.assert_problem(403);
    }
    get(w, "/api/v1/drafts", &reader).await.assert_problem(403);
    get(w, "/api/v1/knowledge", &reader)
        .await
        .assert_problem(403);

    // Tenant B's token never sees tenant A: 404 by id, nothing in its list.
    let b = tenant_b(w).await;
    let b_token = make_token(&b, "clinic-b", "b-crm", ALL, "30").await;
    get(w, &format!("/api/v1/conversations/{conv}"), &b_token)
        .await
        .assert_problem(404);
    get(w, &format!("/api/v1/contacts/{contact}"), &b_token)
        .await
        .assert_problem(404);
    let r = call(
        w,
        Method::POST,
        &format!("/api/v1/conversations/{conv}/messages"),
        Some(&b_token),
        Some(json!({ "text": "intruder" })),
        &[],
    )
    .await;
    r.assert_problem(404);
    assert_eq!(
        get(w, "/api/v1/conversations", &b_token).await.body["data"],
        json!([])
    );

    // Revoked on the page: the very next call is refused.
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'crm'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let page = w.owner.get("/t/clinic-a/api").await;
    let action = format!("/t/clinic-a/api/{id}/revoke");
    assert!(page.body.contains(&action));
    let r = w.owner.submit("/t/clinic-a/api", &action, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = get(w, "/api/v1/conversations", &reader).await;
    r.assert_problem(401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    // A token with a wrong secret, and no token at all.
    let forged = format!("{}{}", &reader[..reader.len() - 4], "AAAA");
    get(w, "/api/v1/knowledge", &forged)
        .await
        .assert_problem(401);
    call(w, Method::GET, "/api/v1/knowledge", None, None, &[])
        .await
        .assert_problem(401);

    // Expired: a 7-day token stops working after a week; the one without expiry doesn't.
    let week = make_token(&w.owner, "clinic-a", "weekly", &["knowledge:manage"], "7").await;
    assert_eq!(get(w, "/api/v1/knowledge", &week).await.status, 200);
    w.t.clock.advance(Duration::days(7) + Duration::seconds(1));
    get(w, "/api/v1/knowledge", &week).await.assert_problem(401);
    assert_eq!(get(w, "/api/v1/knowledge", &other).await.status, 200);
    // (A week idle ended the owner's portal session too.)
    w.owner
        .log_in("owner@a.test", crate::tests::client::PASSWORD)
        .await;
    let page = w.owner.get("/t/clinic-a/api").await;
    assert!(
        page.body.contains("data-state=\"expired\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-state=\"revoked\""));
    assert_eq!(crate::tests::harness::errors_logged(), 0);
}

#[tokio::test]
async fn an_idempotent_send_replayed_twice_sends_once() {
    let gw = Gw::evolution().await;
    mock_send_ok(&gw).await;
    let w = &gw.w;
    let conv = one_inbound(&gw, "Qual o horário?").await;
    let token = make_token(&w.owner, "clinic-a", "scheduler", &["messages:send"], "30").await;
    let p = format!("/api/v1/conversations/{conv}/messages");
    let body = json!({ "text": "Sua consulta está confirmada para amanhã às 9h." });
    let key = [("idempotency-key", "booking-4711")];
    let first = call(w, Method::POST, &p, Some(&token), Some(body.clone()), &key).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = call(w, Method::POST, &p, Some(&token), Some(body.clone()), &key).await;
    let third = call(w, Method::POST, &p, Some(&token), Some(body.clone()), &key).await;
    for r in [&again, &third] {
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body, first.body);
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
    }
    // The same key for another request is refused, not silently replayed.
    call(
        w,
        Method::POST,
        &p,
        Some(&token),
        Some(json!({ "text": "something else" })),
        &key,
    )
    .await
    .assert_problem(422);
    gw.run_jobs().await;
    assert_eq!(gateway_sends(&gw).await, 1);
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(uuid::Uuid::parse_str(first.body["message_id"].as_str().unwrap()).unwrap())
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(status, "sent");
    // A new key is a new message; the outbox rules still apply (empty text refused).
    let r = call(
        w,
        Method::POST,
        &p,
        Some(&token),
        Some(json!({ "text": "Até amanhã!" })),
        &[("idempotency-key", "booking-4712")],
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    call(
        w,
        Method::POST,
        &p,
        Some(&token),
        Some(json!({ "text": "  " })),
        &[],
    )
    .await
    .assert_problem(422);
    gw.run_jobs().await;
    assert_eq!(gateway_sends(&gw).await, 2);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'message.sent' AND actor_label = 'api token \"scheduler\"'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn errors_are_problem_details_and_every_call_is_audited_with_the_token_name() {
    let w = &World::new().await;
    let token = make_token(&w.owner, "clinic-a", "zapier", ALL, "30").await;
    // Not JSON, mistyped JSON, a NUL, a bad id, an unknown route, a wrong method.
    let r = reqwest::Client::new()
        .post(w.server.url("/api/v1/knowledge"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "application/problem+json"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["type"], "urn:sigmaai:problem:invalid_json");
    call(
        w,
        Method::POST,
        "/api/v1/knowledge",
        Some(&token),
        Some(json!({ "kind": 3 })),
        &[],
    )
    .await
    .assert_problem(422);
    call(
        w,
        Method::POST,
        "/api/v1/knowledge",
        Some(&token),
        Some(json!({ "kind": "faq", "title": "a\u{0}b", "body": "x" })),
        &[],
    )
    .await
    .assert_problem(400);
    get(w, "/api/v1/knowledge/not-a-uuid", &token)
        .await
        .assert_problem(400);
    get(w, "/api/v1/nothing-here", &token)
        .await
        .assert_problem(404);
    call(w, Method::DELETE, "/api/v1/drafts", Some(&token), None, &[])
        .await
        .assert_problem(405);
    // In the caller's language.
    let r = call(
        w,
        Method::GET,
        "/api/v1/drafts",
        None,
        None,
        &[("accept-language", "pt-BR")],
    )
    .await;
    r.assert_problem(401);
    assert_eq!(r.body["title"], "Não autorizado");

    let calls: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT actor_label, subject, detail FROM audit_log WHERE action = 'api.call' ORDER BY seq",
    )
    .fetch_all(&w.t.owner)
    .await
    .unwrap();
    // Every authenticated call, refused ones included, named by the token.
    assert!(calls.len() >= 4, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|(who, _, _)| who == "api token \"zapier\"")
    );
    assert!(
        calls
            .iter()
            .any(|(_, what, d)| what == "POST /api/v1/knowledge" && d["status"] == 422)
    );
    assert_eq!(crate::tests::harness::errors_logged(), 0);
}

#[tokio::test]
async fn a_token_over_its_rate_limit_gets_429_with_retry_after() {
    let w = World::new().await;
    let token = make_token(&w.owner, "clinic-a", "busy", &["knowledge:manage"], "30").await;
    sqlx::query("UPDATE api_tokens SET rate_per_minute = 3")
        .execute(&w.t.owner)
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(get(&w, "/api/v1/knowledge", &token).await.status, 200);
    }
    let r = get(&w, "/api/v1/knowledge", &token).await;
    r.assert_problem(429);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Per token: another token of the same tenant is not limited by it.
    let calm = make_token(&w.owner, "clinic-a", "calm", &["knowledge:manage"], "30").await;
    assert_eq!(get(&w, "/api/v1/knowledge", &calm).await.status, 200);
}

#[tokio::test]
async fn knowledge_entries_can_be_managed_through_the_api() {
    let w = World::new().await;
    let token = make_token(&w.owner, "clinic-a", "kb-sync", &["knowledge:manage"], "30").await;
    let r = call(
        &w,
        Method::POST,
        "/api/v1/knowledge",
        Some(&token),
        Some(json!({ "kind": "price", "title": "Clareamento", "body": "O clareamento custa R$ 900." })),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/knowledge/{id}");
    assert_eq!(get(&w, &one, &token).await.body["title"], "Clareamento");
    let r = call(
        &w,
        Method::PUT,
        &one,
        Some(&token),
        Some(json!({ "kind": "price", "title": "Clareamento dental", "body": "R$ 950." })),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The portal shows what the API wrote.
    let page = w.owner.get("/t/clinic-a/knowledge").await;
    assert!(page.body.contains("Clareamento dental"));
    call(
        &w,
        Method::PUT,
        &one,
        Some(&token),
        Some(json!({ "kind": "nope", "title": "x", "body": "y" })),
        &[],
    )
    .await
    .assert_problem(422);
    let list = get(&w, "/api/v1/knowledge", &token).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    let r = call(&w, Method::DELETE, &one, Some(&token), None, &[]).await;
    assert_eq!(r.status, 204);
    get(&w, &one, &token).await.assert_problem(404);
    call(&w, Method::DELETE, &one, Some(&token), None, &[])
        .await
        .assert_problem(404);
    // Another tenant can't touch it either.
    let b = tenant_b(&w).await;
    let b_token = make_token(&b, "clinic-b", "b-kb", &["knowledge:manage"], "30").await;
    let r = call(
        &w,
        Method::POST,
        "/api/v1/knowledge",
        Some(&token),
        Some(json!({ "kind": "faq", "title": "Estacionamento", "body": "Temos estacionamento." })),
        &[],
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    get(&w, &format!("/api/v1/knowledge/{id}"), &b_token)
        .await
        .assert_problem(404);
    call(
        &w,
        Method::DELETE,
        &format!("/api/v1/knowledge/{id}"),
        Some(&b_token),
        None,
        &[],
    )
    .await
    .assert_problem(404);
}

#[tokio::test]
async fn contacts_profiles_are_updated_with_the_portals_limits() {
    let gw = Gw::evolution().await;
    let w = &gw.w;
    let conv = one_inbound(&gw, "Oi").await;
    let token = make_token(
        &w.owner,
        "clinic-a",
        "crm-sync",
        &["conversations:read", "contacts:write"],
        "30",
    )
    .await;
    let reader = make_token(
        &w.owner,
        "clinic-a",
        "read-only",
        &["conversations:read"],
        "30",
    )
    .await;
    let c = get(w, &format!("/api/v1/conversations/{conv}"), &token).await;
    let contact = c.body["contact"]["id"].as_str().unwrap().to_owned();
    let p = format!("/api/v1/contacts/{contact}");
    let patch = json!({ "name": "Maria S. Souza", "notes": "Prefere manhãs", "tags": ["VIP", "ortodontia"] });
    call(
        w,
        Method::PATCH,
        &p,
        Some(&reader),
        Some(patch.clone()),
        &[],
    )
    .await
    .assert_problem(403);
    let r = call(w, Method::PATCH, &p, Some(&token), Some(patch), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"], "Maria S. Souza");
    assert_eq!(r.body["notes"], "Prefere manhãs");
    assert_eq!(r.body["tags"], json!(["vip", "ortodontia"]));
    // The inbox search finds the new name.
    let r = get(w, "/api/v1/conversations?q=souza", &token).await;
    assert_eq!(r.body["data"][0]["id"], conv.to_string(), "{}", r.body);
    let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    call(
        w,
        Method::PATCH,
        &p,
        Some(&token),
        Some(json!({ "tags": many })),
        &[],
    )
    .await
    .assert_problem(422);
    call(
        w,
        Method::PATCH,
        &p,
        Some(&token),
        Some(json!({ "phone": "1" })),
        &[],
    )
    .await
    .assert_problem(422);
}

#[tokio::test]
async fn drafts_are_approved_edited_and_rejected_by_the_review_rules() {
    let gw = Gw::evolution().await;
    mock_send_ok(&gw).await;
    let w = &gw.w;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge",
            &[
                ("kind", "hours"),
                ("title", "Horário de funcionamento"),
                ("body", "Atendemos de segunda a sexta das 8h às 18h."),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    one_inbound(&gw, "Qual o horário de funcionamento?").await;
    gw.run_jobs().await;
    let token = make_token(&w.owner, "clinic-a", "review-bot", &["review"], "30").await;
    let list = get(w, "/api/v1/drafts?state=pending", &token).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["total"], 1, "{}", list.body);
    let draft = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        list.body["data"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("8h"))
    );

    // Another tenant's token can't decide it.
    let b = tenant_b(w).await;
    let b_token = make_token(&b, "clinic-b", "b-review", &["review"], "30").await;
    call(
        w,
        Method::POST,
        &format!("/api/v1/drafts/{draft}/approve"),
        Some(&b_token),
        Some(json!({})),
        &[],
    )
    .await
    .assert_problem(404);

    let approve = format!("/api/v1/drafts/{draft}/approve");
    let r = call(
        w,
        Method::POST,
        &approve,
        Some(&token),
        Some(json!({ "text": "Atendemos de segunda a sexta, das 8h às 18h. Até logo!" })),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Decided once: a second approval or a rejection now conflicts.
    call(
        w,
        Method::POST,
        &approve,
        Some(&token),
        Some(json!({})),
        &[],
    )
    .await
    .assert_problem(409);
    call(
        w,
        Method::POST,
        &format!("/api/v1/drafts/{draft}/reject"),
        Some(&token),
        Some(json!({ "reason": "late" })),
        &[],
    )
    .await
    .assert_problem(409);
    let (state, edited): (String, bool) =
        sqlx::query_as("SELECT state, edited FROM drafts WHERE id = $1::uuid")
            .bind(&draft)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!((state.as_str(), edited), ("approved", true));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'draft.approved' AND actor_label = 'api token \"review-bot\"'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // The reply waits out the undo window, then goes out once.
    w.t.clock.advance(Duration::seconds(61));
    gw.run_jobs().await;
    assert_eq!(gateway_sends(&gw).await, 1);

    // A second question: this draft is rejected and the conversation left to a person.
    gw.customer_writes(
        "IN-2",
        "5511988887777",
        "Maria Silva",
        "E no sábado, qual o horário?",
    )
    .await;
    let list = get(w, "/api/v1/drafts", &token).await;
    let Some(second) = list.body["data"][0]["id"].as_str().map(str::to_owned) else {
        panic!("no second draft: {}", list.body);
    };
    let r = call(
        w,
        Method::POST,
        &format!("/api/v1/drafts/{second}/reject"),
        Some(&token),
        Some(json!({ "reason": "a person should answer" })),
        &[],
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        get(w, "/api/v1/drafts?state=pending", &token).await.body["total"],
        0
    );
}

#[tokio::test]
async fn the_openapi_document_validates_and_covers_every_api_route() {
    let w = World::new().await;
    let r = reqwest::get(w.server.url("/api/v1/openapi.json"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );

    // The reference validator (openapi-spec-validator from PyPI, installed by scripts/lib.sh).
    let validator = std::env::var("SIGMAAI_TEST_OPENAPI_VALIDATOR")
        .expect("scripts/test sets SIGMAAI_TEST_OPENAPI_VALIDATOR (ensure_openapi_validator)");
    let file = std::env::temp_dir().join(format!("sigmaai-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, &text).unwrap();
    let out = tokio::process::Command::new(&validator)
        .arg(&file)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the spec does not validate:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator is not a rubber stamp: a broken copy fails.
    let mut broken = spec.clone();
    broken["paths"]["/api/v1/drafts"]["get"]["responses"] = json!("nope");
    let file = std::env::temp_dir().join(format!("sigmaai-openapi-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, broken.to_string()).unwrap();
    let bad = tokio::process::Command::new(&validator)
        .arg(&file)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(!bad.status.success());

    // Every token-authenticated route of the API router is in the document, and nothing else.
    let routes: Vec<(String, String)> = crate::tests::suite::routes_under("src/api")
        .into_iter()
        .filter(|(_, p)| {
            p.starts_with("/api/v1/") && p != "/api/v1/openapi.json" && p != "/api/v1/docs"
        })
        .collect();
    assert!(routes.len() >= 13, "{routes:?}");
    let mut documented = Vec::new();
    for (p, item) in spec["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            documented.push((m.to_uppercase(), p.clone()));
        }
    }
    documented.sort();
    assert_eq!(documented, routes);
    // Each operation names the scope it needs.
    for (m, p) in &documented {
        let op = &spec["paths"][p][m.to_lowercase()];
        assert!(op["security"][0]["bearer"][0].is_string(), "{m} {p}");
    }

    // The docs page lists them, with no script from anywhere else.
    let page = w.client().get("/api/v1/docs").await;
    assert_eq!(page.status, 200);
    for (m, p) in &documented {
        assert!(
            page.body
                .contains(&format!("<code>{m}</code></td><td><code>{p}</code>")),
            "{m} {p}"
        );
    }
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse("script[src]").unwrap();
    for s in doc.select(&sel) {
        assert!(s.value().attr("src").unwrap().starts_with("/static/"));
    }
}

#[tokio::test]
async fn data_subject_requests_are_opened_followed_and_exported() {
    let gw = Gw::evolution().await;
    let w = &gw.w;
    let conv = one_inbound(&gw, "Quero uma cópia dos meus dados").await;
    let token = make_token(
        &w.owner,
        "clinic-a",
        "dpo-tool",
        &["privacy:manage", "conversations:read"],
        "30",
    )
    .await;
    let c = get(w, &format!("/api/v1/conversations/{conv}"), &token).await;
    let contact = c.body["contact"]["id"].as_str().unwrap().to_owned();
    let body = json!({ "contact_id": contact, "kind": "access", "legal_basis": "lgpd" });
    let reader = make_token(
        &w.owner,
        "clinic-a",
        "reader",
        &["conversations:read"],
        "30",
    )
    .await;
    call(
        w,
        Method::POST,
        "/api/v1/privacy/requests",
        Some(&reader),
        Some(body.clone()),
        &[],
    )
    .await
    .assert_problem(403);
    let r = call(
        w,
        Method::POST,
        "/api/v1/privacy/requests",
        Some(&token),
        Some(body),
        &[],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "received");
    assert_eq!(r.body["source"], "api");
    // LGPD: 15 days.
    let due = time::OffsetDateTime::parse(
        r.body["due_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(due, w.t.clock.now() + Duration::days(15));
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = get(w, &format!("/api/v1/privacy/requests/{id}"), &token).await;
    assert_eq!(r.body["kind"], "access", "{}", r.body);
    // The portal lists it too.
    let page = w.owner.get("/t/clinic-a/privacy").await;
    assert!(page.body.contains(&id));
    let r = get(w, &format!("/api/v1/privacy/requests/{id}/export"), &token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-disposition")
            .is_some_and(|v| v.starts_with("attachment"))
    );
    assert!(
        r.body
            .to_string()
            .contains("Quero uma cópia dos meus dados"),
        "{}",
        r.body
    );
    let exported: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'dsr.exported' AND actor_label = 'api token \"dpo-tool\"'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(exported, 1);
    // Bad input, unknown contact, other tenant.
    call(
        w,
        Method::POST,
        "/api/v1/privacy/requests",
        Some(&token),
        Some(json!({ "contact_id": contact, "kind": "everything", "legal_basis": "lgpd" })),
        &[],
    )
    .await
    .assert_problem(422);
    call(
        w,
        Method::POST,
        "/api/v1/privacy/requests",
        Some(&token),
        Some(
            json!({ "contact_id": uuid::Uuid::new_v4(), "kind": "access", "legal_basis": "gdpr" }),
        ),
        &[],
    )
    .await
    .assert_problem(404);
    let b = tenant_b(w).await;
    let b_token = make_token(&b, "clinic-b", "b-dpo", &["privacy:manage"], "30").await;
    get(w, &format!("/api/v1/privacy/requests/{id}"), &b_token)
        .await
        .assert_problem(404);
    get(
        w,
        &format!("/api/v1/privacy/requests/{id}/export"),
        &b_token,
    )
    .await
    .assert_problem(404);
    assert_eq!(crate::tests::harness::errors_logged(), 0);
}
