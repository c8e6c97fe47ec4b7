//! Channels as an admin meets them: deleting one that has history, gateway errors that say
//! what went wrong, and the overview's first steps (issue 24).

use wiremock::{
    Mock, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::tests::{
    client::World,
    wa::{Gw, evo_text},
};

/// The flash message shown after following a redirect.
async fn flash_after(w: &World, path: &str) -> String {
    let r = w.owner.submit("/t/clinic-a/channels", path, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    w.owner
        .get_follow(r.location.as_deref().unwrap())
        .await
        .body
}

#[tokio::test]
async fn a_channel_with_conversations_is_deleted_and_its_webhook_forgotten() {
    let gw = Gw::evolution().await;
    let (status, _) = gw
        .evo(&evo_text("D1", "5511988887777", "Ana", 1_773_651_600, "Oi"))
        .await;
    assert_eq!(status, 200);
    let page = flash_after(
        &gw.w,
        &format!("/t/clinic-a/channels/{}/delete", gw.channel_id),
    )
    .await;
    assert!(
        !page.contains(&format!("{} · clinic", gw.gateway.uri())),
        "the channel is still listed"
    );
    // Its credentials are gone, its conversation stays readable.
    let secrets: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT secrets_sealed FROM channels WHERE id = $1")
            .bind(gw.channel_id)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert!(secrets.is_none());
    let conv = gw.only_conversation().await;
    let thread =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert_eq!(thread.status, 200);
    assert!(thread.body.contains("Oi"));
    // The webhook URL now names nothing, even with the old secret.
    let (status, _) = gw
        .evo(&evo_text(
            "D2",
            "5511988887777",
            "Ana",
            1_773_651_700,
            "Ainda aí?",
        ))
        .await;
    assert_eq!(status, 404);
    assert_eq!(gw.count("messages").await, 1);
}

#[tokio::test]
async fn setting_the_webhook_gives_evolution_our_url_secret_and_events() {
    let gw = Gw::evolution().await;
    Mock::given(method("POST"))
        .and(path("/webhook/set/clinic"))
        .and(header("apikey", "evo-api-key-123"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({
            "id": "cm0webhook1", "url": "", "enabled": true, "events": ["MESSAGES_UPSERT"],
            "webhookByEvents": false, "webhookBase64": true, "instanceId": "inst-1"
        })))
        .mount(&gw.gateway)
        .await;
    let page = flash_after(
        &gw.w,
        &format!("/t/clinic-a/channels/{}/webhook", gw.channel_id),
    )
    .await;
    assert!(page.contains("Webhook configured in Evolution."), "{page}");
    let reqs = gw.gateway.received_requests().await.unwrap();
    let set = reqs
        .iter()
        .find(|r| r.url.path() == "/webhook/set/clinic")
        .expect("webhook/set was called");
    let body: serde_json::Value = serde_json::from_slice(&set.body).unwrap();
    let hook = &body["webhook"];
    assert_eq!(hook["enabled"], true);
    assert!(hook["url"].as_str().unwrap().ends_with(&gw.hook), "{hook}");
    assert_eq!(hook["headers"]["x-webhook-token"], gw.secret.as_str());
    let events: Vec<&str> = hook["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    for needed in ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "MESSAGES_DELETE"] {
        assert!(events.contains(&needed), "{needed} missing: {events:?}");
    }
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'channel.webhook_set' AND subject = $1",
    )
    .bind(gw.channel_id.to_string())
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn webhook_by_events_urls_are_received_and_still_need_the_secret() {
    // With "Webhook by events" on, Evolution posts to the URL plus the event's kebab name.
    let gw = Gw::evolution().await;
    let url = gw.w.server.url(&format!("{}/messages-upsert", gw.hook));
    let body = evo_text(
        "E1",
        "5511988887777",
        "Ana",
        1_773_651_600,
        "Oi, por evento",
    );
    let post = |secret: &str| {
        reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-webhook-token", secret)
            .body(body.to_string())
            .send()
    };
    let r = post("not-the-secret").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(gw.count("messages").await, 0);
    let r = post(&gw.secret).await.unwrap();
    assert_eq!(r.status(), 200);
    // A retry of the same delivery is stored once.
    assert_eq!(post(&gw.secret).await.unwrap().status(), 200);
    assert_eq!(gw.count("messages").await, 1);
    let conv = gw.only_conversation().await;
    let thread =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(thread.body.contains("Oi, por evento"));
}

#[tokio::test]
async fn gateway_errors_say_whether_it_was_unreachable_or_refused_our_key() {
    let gw = Gw::evolution().await;
    let connect = format!("/t/clinic-a/channels/{}/connect", gw.channel_id);
    // Evolution answers 401 to a wrong apikey.
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string(r#"{"status":401,"error":"Unauthorized"}"#),
        )
        .mount(&gw.gateway)
        .await;
    let page = flash_after(&gw.w, &connect).await;
    assert!(page.contains("refused our API key"), "{page}");
    // A gateway that is not there at all.
    // (A port just released: wiremock's own servers are pooled and keep answering.)
    let url = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    sqlx::query("UPDATE channels SET config = config || jsonb_build_object('base_url', $1::text) WHERE id = $2")
        .bind(&url)
        .bind(gw.channel_id)
        .execute(&gw.w.t.owner)
        .await
        .unwrap();
    gw.w.t.wiring.routes.forget(gw.channel_id);
    let page = flash_after(&gw.w, &connect).await;
    assert!(page.contains("could not reach the gateway"), "{page}");
    assert!(!page.contains("did not accept the request"));
}

#[tokio::test]
async fn a_new_tenant_sees_its_next_steps_until_done() {
    let w = World::new().await;
    let steps = || async {
        let page = w.owner.get("/t/clinic-a").await.body;
        let doc = scraper::Html::parse_document(&page);
        let sel = scraper::Selector::parse("#next-steps li").unwrap();
        doc.select(&sel)
            .map(|li| {
                (
                    li.value().attr("class") == Some("done"),
                    li.text().collect::<String>(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = steps().await;
    assert_eq!(first.len(), 4, "{first:?}");
    assert!(first.iter().all(|(done, _)| !done));
    assert!(first[0].1.contains("Connect your WhatsApp number"));

    // Trying the simulator ticks that step, and the simulator is not a billed channel.
    let r = w
        .owner
        .submit(
            "/t/clinic-a/simulator",
            "/t/clinic-a/simulator",
            &[
                ("phone", "+55 11 90000-0001"),
                ("name", "Maria"),
                ("text", "Oi"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let now = steps().await;
    assert!(now[2].0, "simulator step not ticked: {now:?}");
    assert!(!now[0].0, "the simulator is not a connected number");
    let billing = w.owner.get("/t/clinic-a/billing").await.body;
    assert!(
        billing.contains("<strong>0 /"),
        "simulator counted as a channel"
    );

    // Everything else done: the checklist goes away.
    w.owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge",
            &[("kind", "hours"), ("title", "Hours"), ("body", "8 to 18")],
        )
        .await;
    let _member = w.add_member("vi@a.test", "viewer").await;
    let gw = Gw::evolution_in(w).await;
    let page = gw.w.owner.get("/t/clinic-a").await.body;
    assert!(page.contains("<h1>Overview</h1>"));
    assert!(!page.contains("id=\"next-steps\""), "checklist still shown");
}

/// The conversation side panel: assign, labels, notes — what staff rely on to share work.
#[tokio::test]
async fn staff_assign_label_and_annotate_a_conversation() {
    let gw = Gw::evolution().await;
    gw.ana_sends_at(1_773_651_600, "N1", "Oi").await;
    let conv = gw.only_conversation().await;
    let page = format!("/t/clinic-a/conversations/{conv}");
    let owner_id = gw.w.t.user_id("owner@a.test").await;
    let o = &gw.w.owner;
    let r = o
        .submit(
            &page,
            &format!("{page}/assign"),
            &[("user", &owner_id.to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = o
        .submit(
            &page,
            &format!("{page}/labels"),
            &[("labels", "Urgent, retorno")],
        )
        .await;
    assert_eq!(r.status, 303);
    let r = o
        .submit(
            &page,
            &format!("{page}/notes"),
            &[
                ("name", "Ana Souza"),
                ("notes", "Prefers mornings"),
                ("tags", "vip"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let (assignee, labels): (Option<uuid::Uuid>, Vec<String>) =
        sqlx::query_as("SELECT assigned_to, labels FROM conversations WHERE id = $1")
            .bind(conv)
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(assignee, Some(owner_id));
    assert_eq!(labels, vec!["urgent".to_owned(), "retorno".to_owned()]);
    let shown = o.get(&page).await.body;
    assert!(shown.contains("Prefers mornings") && shown.contains("Ana Souza"));
    // Someone who is not a member can't be assigned.
    let r = o
        .submit(
            &page,
            &format!("{page}/assign"),
            &[("user", &uuid::Uuid::new_v4().to_string())],
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn language_knowledge_and_canned_replies_change_and_go() {
    let w = World::new().await;
    let r = w
        .owner
        .submit("/account", "/account/language", &[("language", "pt-BR")])
        .await;
    assert_eq!(r.status, 303);
    assert!(
        w.owner
            .get("/account")
            .await
            .body
            .contains("lang=\"pt-BR\"")
    );
    w.owner
        .submit("/account", "/account/language", &[("language", "en")])
        .await;

    w.owner
        .submit(
            "/t/clinic-a/knowledge",
            "/t/clinic-a/knowledge",
            &[
                ("kind", "hours"),
                ("title", "Saturday"),
                ("body", "8 to 12"),
            ],
        )
        .await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM knowledge_entries")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let r = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            &format!("/t/clinic-a/knowledge/{id}"),
            &[
                ("kind", "hours"),
                ("title", "Saturday"),
                ("body", "8:00 to 12:30"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        w.owner
            .get("/t/clinic-a/knowledge")
            .await
            .body
            .contains("8:00 to 12:30")
    );
    let r = w
        .owner
        .submit(
            "/t/clinic-a/knowledge",
            &format!("/t/clinic-a/knowledge/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(
        !w.owner
            .get("/t/clinic-a/knowledge")
            .await
            .body
            .contains("8:00 to 12:30")
    );

    w.owner
        .submit(
            "/t/clinic-a/canned",
            "/t/clinic-a/canned",
            &[("title", "Address"), ("body", "Rua das Flores, 10")],
        )
        .await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM canned_replies")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let r = w
        .owner
        .submit(
            "/t/clinic-a/canned",
            &format!("/t/clinic-a/canned/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(
        !w.owner
            .get("/t/clinic-a/canned")
            .await
            .body
            .contains("Rua das Flores")
    );
}
