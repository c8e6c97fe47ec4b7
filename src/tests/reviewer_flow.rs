//! The reviewer's flow (issue 23): collision safety (presence, the draft lock, assign on
//! open), the AI draft in the conversation's reply box (approve, reject, regenerate), inbox
//! views and saved views, queue filters by age and number, and weekly draft quality.

use serde_json::Value;
use time::Duration;
use uuid::Uuid;

use crate::domain::account::Role;

use crate::tests::{
    client::Client,
    harness::{Setup, TestApp},
    review::{gateway_sends, now},
    wa::Gw,
};

/// A tenant with one conversation whose AI draft waits for review (add to it, then build).
fn pending_draft() -> Setup {
    TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
}

/// The conversation and its pending draft.
async fn conv_and_draft(gw: &Gw) -> (Uuid, Uuid) {
    (gw.only_conversation().await, gw.pending_draft().await)
}

/// A heartbeat as the page's script sends it.
async fn beat(c: &Client, conv: Uuid, draft: Uuid, editing: bool) -> (u16, Value) {
    let csrf = c.get("/t/clinic-a").await.csrf();
    let r = c
        .post(
            &format!("/t/clinic-a/conversations/{conv}/presence"),
            &[
                ("csrf", csrf.as_str()),
                ("draft", &draft.to_string()),
                ("editing", if editing { "1" } else { "" }),
            ],
        )
        .await;
    let json = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, json)
}

async fn leave(c: &Client, conv: Uuid) -> u16 {
    let csrf = c.get("/t/clinic-a").await.csrf();
    c.post(
        &format!("/t/clinic-a/conversations/{conv}/presence"),
        &[("csrf", csrf.as_str()), ("leave", "1")],
    )
    .await
    .status
}

async fn approve(c: &Client, draft: Uuid, text: &str) -> crate::tests::client::Page {
    let csrf = c.get("/t/clinic-a").await.csrf();
    c.post(
        &format!("/t/clinic-a/drafts/{draft}/approve"),
        &[("csrf", csrf.as_str()), ("text", text)],
    )
    .await
}

fn select_text(body: &str, css: &str) -> String {
    let doc = scraper::Html::parse_document(body);
    let sel = scraper::Selector::parse(css).unwrap();
    doc.select(&sel)
        .map(|e| e.text().collect::<String>())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn two_reviewers_see_each_other_and_never_both_decide_one_draft() {
    let gw = pending_draft()
        .with_member("bruno@a.test", Role::Reviewer)
        .build()
        .await;
    let (conv, draft) = conv_and_draft(&gw).await;
    let (owner, bruno) = (gw.owner(), &gw.members[0]);
    let page = format!("/t/clinic-a/conversations/{conv}");

    // The first reviewer to open an unassigned conversation gets it, and sees the draft in
    // the reply box.
    let first = owner.get(&page).await;
    assert_eq!(first.status, 200);
    assert!(
        select_text(&first.body, "#ai-draft textarea").contains("R$ 180"),
        "the draft is in the reply box:\n{}",
        first.body
    );
    assert_eq!(gw.assignee(conv).await.as_deref(), Some("owner@a.test"));
    let on_open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'conversation.assigned' AND detail->>'on_open' = 'true'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(on_open, 1);

    // The second sees the first is here; opening it does not take it away.
    let second = bruno.get(&page).await;
    assert!(
        select_text(&second.body, "#presence").contains("Ana Owner"),
        "presence shown:\n{}",
        second.body
    );
    assert_eq!(gw.assignee(conv).await.as_deref(), Some("owner@a.test"));

    // Ana starts editing: she holds the draft. Bruno is told, and his decisions are refused.
    let (status, mine) = beat(owner, conv, draft, true).await;
    assert_eq!(status, 200);
    assert!(mine["locked_by"].is_null(), "{mine}");
    assert_eq!(mine["others"][0]["name"], "Colleague");
    let (_, his) = beat(bruno, conv, draft, true).await;
    assert_eq!(his["locked_by"], "Ana Owner", "{his}");
    let refused = approve(bruno, draft, "Bruno's answer").await;
    assert_eq!(refused.status, 303);
    let csrf = bruno.get("/t/clinic-a/review").await.csrf();
    for action in ["reject", "regenerate"] {
        let r = bruno
            .post(
                &format!("/t/clinic-a/drafts/{draft}/{action}"),
                &[("csrf", csrf.as_str()), ("reason", "no")],
            )
            .await;
        assert_eq!(r.status, 303, "{action}");
    }
    assert_eq!(gw.draft_state(draft).await, "pending", "nothing decided");
    let queue = bruno.get("/t/clinic-a/review").await.body;
    let doc = scraper::Html::parse_document(&queue);
    let approve_btn = scraper::Selector::parse(&format!(
        "#draft-{draft} button[data-action=approve][disabled]"
    ))
    .unwrap();
    assert!(
        doc.select(&approve_btn).next().is_some(),
        "the card is disarmed for Bruno:\n{queue}"
    );
    assert!(
        select_text(&queue, &format!("#draft-{draft} [data-presence-line]")).contains("Ana Owner")
    );

    // Ana closes the page: the draft is free at once, and Bruno can take it.
    assert_eq!(leave(owner, conv).await, 204);
    let (_, his) = beat(bruno, conv, draft, true).await;
    assert!(his["locked_by"].is_null(), "{his}");
    // Now Ana is the one refused...
    approve(owner, draft, "Ana's answer").await;
    assert_eq!(gw.draft_state(draft).await, "pending");
    // ...until Bruno's heartbeat goes stale (a closed laptop does not hold a draft for long).
    gw.w.t.clock.advance(Duration::seconds(46));
    let ok = approve(owner, draft, "Ana's answer").await;
    assert_eq!(ok.status, 303);
    assert!(
        ok.location.as_deref().unwrap_or("").contains("undo="),
        "{:?}",
        ok.location
    );
    assert_eq!(gw.draft_state(draft).await, "approved");
    gw.w.t.clock.advance(Duration::seconds(11));
    gw.run_jobs().await;
    let sends = gateway_sends(&gw).await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0]["text"], "Ana's answer");
}

#[tokio::test]
async fn the_reply_box_approves_rejects_and_regenerates_and_comes_back_to_the_conversation() {
    let gw = pending_draft().build().await;
    let (conv, draft) = conv_and_draft(&gw).await;
    let owner = gw.owner();
    let page = format!("/t/clinic-a/conversations/{conv}");
    let csrf = owner.get(&page).await.csrf();

    // Regenerate: the draft is set aside and the AI writes the same turn again.
    let r = owner
        .post(
            &format!("/t/clinic-a/drafts/{draft}/regenerate"),
            &[("csrf", csrf.as_str()), ("back", page.as_str())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some(page.as_str()));
    assert_eq!(gw.draft_state(draft).await, "superseded");
    gw.run_jobs().await;
    let fresh = gw.pending_draft().await;
    assert_ne!(fresh, draft);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'draft.regenerated'")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(audited, 1);
    // An already decided draft cannot be regenerated again.
    let again = owner
        .post(
            &format!("/t/clinic-a/drafts/{draft}/regenerate"),
            &[("csrf", csrf.as_str()), ("back", page.as_str())],
        )
        .await;
    assert_eq!(again.status, 303);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM drafts")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap(),
        2
    );

    // A "back" to somewhere else is ignored: decisions never redirect off the tenant's pages.
    let shown = owner.get(&page).await;
    assert!(select_text(&shown.body, "#ai-draft textarea").contains("R$ 180"));
    let r = owner
        .post(
            &format!("/t/clinic-a/drafts/{fresh}/approve"),
            &[
                ("csrf", csrf.as_str()),
                ("back", "https://evil.example/t/clinic-a/conversations/x"),
                ("text", "Custa R$ 180."),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(
        r.location
            .as_deref()
            .unwrap()
            .starts_with("/t/clinic-a/review"),
        "{:?}",
        r.location
    );
    // Undo it from the queue, then approve from the reply box: back to the conversation,
    // with the undo offer there.
    let undo = owner
        .post(
            &format!("/t/clinic-a/drafts/{fresh}/undo"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(undo.status, 303);
    assert_eq!(gw.draft_state(fresh).await, "pending");
    let r = owner
        .post(
            &format!("/t/clinic-a/drafts/{fresh}/approve"),
            &[
                ("csrf", csrf.as_str()),
                ("back", page.as_str()),
                ("text", "Custa R$ 180."),
            ],
        )
        .await;
    let to = r.location.clone().unwrap();
    assert!(to.starts_with(&format!("{page}?undo={fresh}")), "{to}");
    let after = owner.get(&to).await;
    assert!(
        after.body.contains("id=\"undo-offer\""),
        "the undo offer is in the conversation:\n{}",
        after.body
    );
    gw.w.t.clock.advance(Duration::seconds(11));
    gw.run_jobs().await;
    assert_eq!(gateway_sends(&gw).await.len(), 1);
}

#[tokio::test]
async fn presence_is_for_reviewers_of_the_tenant_only() {
    let gw = pending_draft()
        .with_member("vi@a.test", Role::Viewer)
        .build()
        .await;
    let (conv, draft) = conv_and_draft(&gw).await;
    let viewer = &gw.members[0];
    let (status, _) = beat(viewer, conv, draft, true).await;
    assert_eq!(status, 403);
    // A viewer opening the conversation is not assigned it.
    assert_eq!(
        viewer
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await
            .status,
        200
    );
    assert_eq!(gw.assignee(conv).await, None);
    // Another tenant's reviewer cannot mark itself on this conversation.
    let b = gw.w.other_tenant().await;
    let csrf = b.get("/t/clinic-b").await.csrf();
    let r = b
        .post(
            &format!("/t/clinic-b/conversations/{conv}/presence"),
            &[
                ("csrf", csrf.as_str()),
                ("draft", &draft.to_string()),
                ("editing", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 404);
    // A malformed draft id is a 400, not a 500.
    let csrf = gw.w.owner.get("/t/clinic-a/review").await.csrf();
    let r =
        gw.w.owner
            .post(
                &format!("/t/clinic-a/conversations/{conv}/presence"),
                &[
                    ("csrf", csrf.as_str()),
                    ("draft", "not-a-uuid"),
                    ("editing", "1"),
                ],
            )
            .await;
    assert_eq!(r.status, 400);
    // Nothing of Bea's reached clinic A.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM review_presence")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn assign_on_open_can_be_turned_off() {
    let gw = pending_draft()
        .with_member("bruno@a.test", Role::Reviewer)
        .build()
        .await;
    let conv = gw.only_conversation().await;
    let settings = gw.w.owner.get("/t/clinic-a/settings").await;
    assert!(settings.body.contains("id=\"assign_on_open\""));
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/settings",
                "/t/clinic-a/settings",
                &[
                    ("name", "Clinic A"),
                    ("time_zone", "America/Sao_Paulo"),
                    ("language", "pt-BR"),
                    ("review_alert_minutes", "60"),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        gw.members[0]
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await
            .status,
        200
    );
    assert_eq!(gw.assignee(conv).await, None, "left unassigned");
}

/// Time moved on past the session's idle limit: the owner logs in again.
async fn relog(gw: &Gw) {
    let r =
        gw.w.owner
            .log_in("owner@a.test", crate::tests::client::PASSWORD)
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

/// The contacts listed on an inbox page.
async fn listed(c: &Client, query: &str) -> String {
    let page = c.get(&format!("/t/clinic-a/conversations?{query}")).await;
    assert_eq!(page.status, 200, "{query}: {}", page.body);
    select_text(&page.body, "#inbox .who")
}

#[tokio::test]
async fn inbox_views_find_the_waiting_the_urgent_the_unassigned_and_mine_and_save_per_member() {
    let gw = TestApp::init().with_knowledge().build().await;
    let owner = &gw.w.owner;
    gw.customer_sends("A1", "5511911110001", "Alice", "Quanto custa a limpeza?")
        .await;
    gw.w.t.clock.advance(Duration::hours(2));
    relog(&gw).await;
    gw.customer_sends("B1", "5511911110002", "Bruna", "Quanto custa a limpeza?")
        .await;
    gw.customer_writes(
        "E1",
        "5511911110003",
        "Rui",
        "socorro meu cachorro foi atropelado, vcs atendem agora??",
    )
    .await;

    // Unanswered for more than an hour: only Alice.
    let waiting = listed(owner, "view=waiting&wait=60").await;
    assert!(
        waiting.contains("Alice") && !waiting.contains("Bruna"),
        "{waiting}"
    );
    // An emergency is urgent and needs a person; a plain draft is neither.
    let urgent = listed(owner, "view=urgent").await;
    assert!(
        urgent.contains("Rui") && !urgent.contains("Alice"),
        "{urgent}"
    );
    let escalated = listed(owner, "view=escalated").await;
    assert!(
        escalated.contains("Rui") && !escalated.contains("Bruna"),
        "{escalated}"
    );
    // Opening Alice's conversation makes it the owner's.
    let alice: Uuid = sqlx::query_scalar(
        "SELECT cv.id FROM conversations cv JOIN messages m ON m.conversation_id = cv.id WHERE m.external_id = 'A1'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    owner
        .get(&format!("/t/clinic-a/conversations/{alice}"))
        .await;
    let mine = listed(owner, "view=mine").await;
    assert!(mine.contains("Alice") && !mine.contains("Bruna"), "{mine}");
    let unassigned = listed(owner, "view=unassigned").await;
    assert!(
        !unassigned.contains("Alice") && unassigned.contains("Bruna"),
        "{unassigned}"
    );
    // The conversation page lists the view the reviewer came from beside the thread, and
    // its links stay in that view.
    let pane = owner
        .get(&format!(
            "/t/clinic-a/conversations/{alice}?view=unassigned"
        ))
        .await
        .body;
    let listed_beside = select_text(&pane, "#pane-list .who");
    assert!(
        listed_beside.contains("Bruna") && !listed_beside.contains("Alice"),
        "{listed_beside}"
    );
    assert!(
        pane.contains("?view=unassigned\""),
        "pane links keep the view"
    );
    // Junk in the query is ignored, not a 500.
    assert!(
        listed(owner, "view=%27%3Bdrop&wait=abc")
            .await
            .contains("Alice")
    );

    // A saved view keeps the filters, never the search text (it may be a patient's name).
    let csrf = owner.get("/t/clinic-a/conversations").await.csrf();
    let r = owner
        .post(
            "/t/clinic-a/conversations/views",
            &[
                ("csrf", csrf.as_str()),
                ("name", "Waiting long"),
                ("query", "view=waiting&wait=60&q=Alice"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let (id, query): (Uuid, String) = sqlx::query_as("SELECT id, query FROM saved_views")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(query, "view=waiting&wait=60");
    let page = owner.get("/t/clinic-a/conversations").await.body;
    assert!(select_text(&page, ".views .saved-view").contains("Waiting long"));
    // Views are the member's own: a colleague neither sees nor removes it.
    let colleague = gw.w.add_member("co@a.test", "reviewer").await;
    let theirs = colleague.get("/t/clinic-a/conversations").await;
    assert!(!theirs.body.contains("Waiting long"));
    let r = colleague
        .post(
            &format!("/t/clinic-a/conversations/views/{id}/delete"),
            &[("csrf", theirs.csrf().as_str())],
        )
        .await;
    assert_eq!(r.status, 404);
    // A nameless view is refused with a message.
    let r = owner
        .post(
            "/t/clinic-a/conversations/views",
            &[
                ("csrf", csrf.as_str()),
                ("name", "  "),
                ("query", "view=mine"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let r = owner
        .post(
            &format!("/t/clinic-a/conversations/views/{id}/delete"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(r.status, 303);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM saved_views")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_closing_window_view_lists_meta_conversations_near_24_hours() {
    let gw = Gw::meta().await;
    let owner = &gw.w.owner;
    let (status, _) = gw
        .meta_post(&crate::tests::wa::meta_text(
            "wamid.C1",
            "5511922220001",
            "Carla",
            now(&gw),
            "Oi",
        ))
        .await;
    assert_eq!(status, 200);
    assert!(
        !listed(owner, "view=closing").await.contains("Carla"),
        "fresh: not closing"
    );
    gw.w.t.clock.advance(Duration::hours(21));
    relog(&gw).await;
    assert!(
        listed(owner, "view=closing").await.contains("Carla"),
        "3 hours left"
    );
    gw.w.t.clock.advance(Duration::hours(4));
    relog(&gw).await;
    assert!(
        !listed(owner, "view=closing").await.contains("Carla"),
        "closed already"
    );
}

#[tokio::test]
async fn the_queue_filters_by_how_long_a_draft_waits_and_by_number() {
    let gw = TestApp::init().with_knowledge().build().await;
    gw.customer_writes("O1", "5511933330001", "Olga", "Quanto custa a limpeza?")
        .await;
    gw.w.t.clock.advance(Duration::hours(2));
    relog(&gw).await;
    gw.customer_writes("N1", "5511933330002", "Nina", "Quanto custa a limpeza?")
        .await;
    let cards = |body: &str| select_text(body, "[data-review-card] h2");
    let owner = &gw.w.owner;
    let old = owner.get("/t/clinic-a/review?age=60").await.body;
    assert!(
        cards(&old).contains("Olga") && !cards(&old).contains("Nina"),
        "{}",
        cards(&old)
    );
    let ours = owner
        .get(&format!("/t/clinic-a/review?channel={}", gw.channel_id))
        .await
        .body;
    assert!(cards(&ours).contains("Olga") && cards(&ours).contains("Nina"));
    // Unknown values are ignored rather than failing the page.
    let junk = owner
        .get(&format!(
            "/t/clinic-a/review?channel={}&age=7",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!(junk.status, 200);
    assert!(cards(&junk.body).contains("Nina"));
}

/// Drafts the waiting turn, then approves it five minutes later (with `text` if given).
async fn approve_next(gw: &Gw, text: Option<&str>) {
    gw.run_jobs().await;
    let id = gw.pending_draft().await;
    gw.w.t.clock.advance(Duration::minutes(5));
    let mut fields = vec![];
    if let Some(t) = text {
        fields.push(("text", t));
    }
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{id}/approve"),
                &fields,
            )
            .await;
    assert_eq!(r.status, 303);
}

#[tokio::test]
async fn the_overview_shows_draft_quality_week_by_week() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .build()
        .await;
    let owner = &gw.w.owner;
    // Last week: a draft approved after the reviewer rewrote it.
    gw.customer_sends("W1", "5511944440001", "Ana", "Quanto custa a limpeza?")
        .await;
    approve_next(&gw, Some("Olá! A limpeza custa R$ 180.")).await;
    // This week: one approved as written.
    gw.w.t.clock.advance(Duration::days(7));
    relog(&gw).await;
    gw.customer_sends("W2", "5511944440002", "Bia", "Quanto custa a limpeza?")
        .await;
    approve_next(&gw, None).await;

    let page = owner.get("/t/clinic-a").await.body;
    let doc = scraper::Html::parse_document(&page);
    let rows: Vec<Vec<String>> = doc
        .select(&scraper::Selector::parse("#draft-quality tbody tr").unwrap())
        .map(|tr| {
            tr.select(&scraper::Selector::parse("th, td").unwrap())
                .map(|c| c.text().collect::<String>().trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "two weeks with reviews: {rows:?}");
    // Newest first: reviewed, approved %, edited %, words changed, time to approve.
    assert_eq!(rows[0][1..5], ["1", "100%", "0%", "0.0"], "{rows:?}");
    assert_eq!(rows[0][5], "5 min");
    assert_eq!(rows[1][3], "100%", "{rows:?}");
    let words: f64 = rows[1][4].parse().unwrap();
    assert!(words >= 3.0, "the rewrite changed several words: {rows:?}");
}
