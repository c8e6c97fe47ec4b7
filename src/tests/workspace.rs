//! The reviewer's workspace in a real browser (issue 23): keys act on the focused card, live
//! updates never wipe an edit or move focus, and every portal page fits a 390 px phone.

use std::time::Duration;

use crate::domain::account::Role;
use fantoccini::key::Key;
use serde_json::json;

use crate::tests::{browser::Browser, harness::TestApp, wa::Gw};

/// A browser with the owner logged in, on the review queue once it shows the R$ 180 draft.
async fn owner_at_the_queue(gw: &Gw) -> Browser {
    let b = Browser::start().await;
    b.log_in(&gw.w.server, "owner@a.test").await;
    b.goto(&gw.w.server.url("/t/clinic-a/review")).await;
    b.wait_text("#review-list", "R$ 180").await;
    b
}

#[tokio::test]
async fn tab_into_the_second_card_then_a_approves_that_card_not_the_first() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
        .with_customer(
            "Q2",
            "5511977776666",
            "Bruno",
            "Vocês abrem no sábado? Qual o horário?",
        )
        .build()
        .await;
    let ids = gw.pending_drafts().await;
    assert_eq!(ids.len(), 2);
    let b = owner_at_the_queue(&gw).await;
    let (a, second) = (&ids[0], &ids[1]);
    // The first card is current on load; Tab from its last control lands in the second.
    b.el(&format!("#draft-{a} [data-action=take-over]"))
        .await
        .send_keys(&Key::Tab)
        .await
        .unwrap();
    assert!(
        b.until(&format!(
            "return document.activeElement.closest('[data-review-card]')?.id === 'draft-{second}'"
        ))
        .await,
        "Tab moved focus into the second card"
    );
    assert_eq!(
        b.js("return Array.from(document.querySelectorAll('.draft.current')).map(e => e.id)")
            .await,
        json!([format!("draft-{second}")]),
        "the focused card is the one marked current"
    );
    b.press("a").await;
    assert!(
        b.wait_text("main", "Approved")
            .await
            .contains("Approved: the reply is on its way.")
    );
    gw.w.t.clock.advance(time::Duration::seconds(11));
    gw.run_jobs().await;
    let sent = gw.sent_texts().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("sábados"),
        "the second card's draft: {sent:?}"
    );
    assert_eq!(gw.pending_drafts().await, vec![*a], "A still waits");
    b.close().await;
}

#[tokio::test]
async fn a_draft_arriving_during_an_edit_keeps_the_text_and_focus_and_updates_counts() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .build()
        .await;
    let ids = gw.pending_drafts().await;
    let b = owner_at_the_queue(&gw).await;
    assert_eq!(b.text("#review-count").await, "1");
    let area = b.el(&format!("#text-{}", ids[0])).await;
    area.send_keys(" Até breve!").await.unwrap();
    // Let the EventSource connect before anything changes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    gw.customer_writes(
        "Q2",
        "5511977776666",
        "Bruno",
        "Vocês abrem no sábado? Qual o horário?",
    )
    .await;
    assert!(
        b.until("return document.querySelectorAll('[data-review-card]').length === 2")
            .await,
        "the new draft merged in"
    );
    let state = b
        .js(&format!(
            "const t = document.getElementById('text-{}');
             return {{ value: t.value, focused: document.activeElement === t,
                       count: document.getElementById('review-count').textContent,
                       title: document.title,
                       status: document.getElementById('live-status').textContent }};",
            ids[0]
        ))
        .await;
    assert!(
        state["value"].as_str().unwrap().ends_with(" Até breve!"),
        "{state}"
    );
    assert_eq!(state["focused"], json!(true), "{state}");
    assert_eq!(state["count"], json!("2"), "{state}");
    assert!(
        state["title"].as_str().unwrap().starts_with("(2) "),
        "{state}"
    );
    assert!(
        b.until("return document.getElementById('live-status').textContent === '1 new draft'")
            .await,
        "arrival announced politely"
    );
    assert!(b.text("#new-drafts").await.contains("1 new draft"));
    b.screenshot("review-live-arrival").await;
    b.close().await;
}

#[tokio::test]
async fn every_portal_page_fits_a_390px_phone() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .build()
        .await;
    let conv = gw.only_conversation().await;
    let b = owner_at_the_queue(&gw).await;
    b.screenshot("review-queue-desktop").await;
    b.client.set_window_size(390, 844).await.unwrap();
    let width = b
        .js("return document.documentElement.clientWidth")
        .await
        .as_i64()
        .unwrap();
    assert!(width <= 390, "viewport is {width} px");
    let mut pages: Vec<String> = b.js("return Array.from(document.querySelectorAll('.portal-nav a')).map(a => a.getAttribute('href'))",
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|v| v.as_str().unwrap().to_owned())
    .collect();
    assert!(pages.len() >= 10, "{pages:?}");
    pages.push(format!("/t/clinic-a/conversations/{conv}"));
    pages.push("/account".to_owned());
    let mut too_wide = Vec::new();
    for p in &pages {
        b.goto(&gw.w.server.url(p)).await;
        b.el("main").await;
        // The visible width (less a scrollbar, if the page has one) against the laid-out one.
        let seen = b
            .js("return document.documentElement.clientWidth")
            .await
            .as_i64()
            .unwrap();
        let w = b
            .js("return document.documentElement.scrollWidth")
            .await
            .as_i64()
            .unwrap();
        if w > seen {
            // Name the elements that stick out, to say what to fix.
            let culprits = b.js("const w = document.documentElement.clientWidth;
                 return Array.from(document.querySelectorAll('body *'))
                   .filter(e => e.getBoundingClientRect().right > w + 0.5)
                   .filter(e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement)
                       if (getComputedStyle(p).overflowX !== 'visible') return false; return true; })
                   .slice(0, 6)
                   .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className
                     + ' ' + Math.round(e.getBoundingClientRect().right));",
            )
            .await;
            too_wide.push(format!("{p}: {w} {culprits}"));
        }
        if p.ends_with("/review") {
            b.screenshot("review-queue-phone").await;
        }
        if p.contains("/conversations/") {
            b.screenshot("conversation-phone").await;
        }
    }
    assert!(
        too_wide.is_empty(),
        "wider than the {width} px phone: {too_wide:?}"
    );
    b.close().await;
}

#[tokio::test]
async fn undo_within_the_window_sends_nothing_and_after_it_the_reply_goes_once() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_sends_ok()
        .with_price_question()
        .build()
        .await;
    let id = gw.pending_drafts().await.remove(0);
    let owner = &gw.w.owner;
    let approve = format!("/t/clinic-a/drafts/{id}/approve");
    let undo = format!("/t/clinic-a/drafts/{id}/undo");
    let r = owner.submit("/t/clinic-a/review", &approve, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let back = r.location.unwrap();
    assert!(back.ends_with(&format!("?undo={id}")), "{back}");
    let page = owner.get(&back).await;
    assert!(page.body.contains(&undo), "the queue offers the undo");
    gw.run_jobs().await;
    assert!(
        gw.sent_texts().await.is_empty(),
        "nothing leaves in the window"
    );

    gw.w.t.clock.advance(time::Duration::seconds(5));
    let r = owner.submit(&back, &undo, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        owner
            .get("/t/clinic-a/review")
            .await
            .body
            .contains("Approval undone")
    );
    assert_eq!(gw.draft_state(id).await, "pending", "back in the queue");
    gw.w.t.clock.advance(time::Duration::seconds(60));
    gw.run_jobs().await;
    assert!(
        gw.sent_texts().await.is_empty(),
        "an undone reply never goes"
    );

    // Approved again and left alone: it goes once the window has passed, and only once.
    let r = owner.submit("/t/clinic-a/review", &approve, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    gw.w.t.clock.advance(time::Duration::seconds(11));
    gw.run_jobs().await;
    gw.run_jobs().await;
    let sent = gw.sent_texts().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("R$ 180"));
    assert!(
        !owner.get(&back).await.body.contains(&undo),
        "no undo offer once sent"
    );
    let conv = gw.only_conversation().await;
    let thread = owner
        .get(&format!("/t/clinic-a/conversations/{conv}"))
        .await
        .body;
    assert!(thread.contains("approved by Ana Owner"), "{thread}");
    assert!(!thread.contains("approved by Ana Owner, edited"));
    let r = owner.submit("/t/clinic-a/review", &undo, &[]).await;
    assert_eq!(r.status, 303);
    assert!(
        owner
            .get("/t/clinic-a/review")
            .await
            .body
            .contains("Too late to undo")
    );
    assert_eq!(gw.draft_state(id).await, "approved");
    assert_eq!(gw.sent_texts().await.len(), 1);
}

#[tokio::test]
async fn the_undo_window_is_the_tenants_setting() {
    let gw = Gw::evolution().await;
    let form = |secs: &'static str| {
        vec![
            ("policy", "review_all"),
            ("provider", "offline"),
            ("undo_seconds", secs),
        ]
    };
    for bad in ["61", "-1", "soon"] {
        let r =
            gw.w.owner
                .submit("/t/clinic-a/ai", "/t/clinic-a/ai", &form(bad))
                .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert!(r.body.contains("from 0 to 60"), "{bad}");
    }
    let r =
        gw.w.owner
            .submit("/t/clinic-a/ai", "/t/clinic-a/ai", &form("0"))
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    crate::tests::review::clinic_knowledge(&gw.w).await;
    crate::tests::review::mock_send_ok(&gw).await;
    gw.ana_writes("Q1", "Quanto custa a limpeza?").await;
    let id = gw.pending_drafts().await.remove(0);
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{id}/approve"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);
    gw.run_jobs().await;
    assert_eq!(gw.sent_texts().await.len(), 1, "0 s: sent at once");
}

/// The field with this id: (its value or text, aria-invalid, the text of what describes it).
fn field(page: &str, id: &str) -> (String, Option<String>, String) {
    let doc = scraper::Html::parse_document(page);
    let sel = scraper::Selector::parse(&format!(r#"[id="{id}"]"#)).unwrap();
    let el = doc
        .select(&sel)
        .next()
        .unwrap_or_else(|| panic!("no #{id}"));
    let value = el
        .value()
        .attr("value")
        .map(str::to_owned)
        .unwrap_or_else(|| el.text().collect());
    let described: String = el
        .value()
        .attr("aria-describedby")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|d| {
            let s = scraper::Selector::parse(&format!(r#"[id="{d}"]"#)).unwrap();
            doc.select(&s).next().map(|e| e.text().collect::<String>())
        })
        .collect::<Vec<_>>()
        .join(" | ");
    (
        value,
        el.value().attr("aria-invalid").map(str::to_owned),
        described,
    )
}

#[tokio::test]
async fn a_refused_canned_reply_keeps_what_was_typed_and_marks_each_field() {
    let gw = Gw::evolution().await;
    let long_title = "T".repeat(81);
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/canned",
                "/t/clinic-a/canned",
                &[("title", &long_title), ("body", "   ")],
            )
            .await;
    assert_eq!(r.status, 422);
    let (title, invalid, why) = field(&r.body, "c-title");
    assert_eq!(title, long_title, "the typed title is kept");
    assert_eq!(invalid.as_deref(), Some("true"));
    assert!(why.contains("at most 80 characters"), "{why}");
    let (_, invalid, why) = field(&r.body, "c-body");
    assert_eq!(invalid.as_deref(), Some("true"));
    assert!(why.contains("Write the reply"), "{why}");
    // Both errors in the summary at once, each linking to its field.
    let doc = scraper::Html::parse_document(&r.body);
    let links: Vec<String> = doc
        .select(&scraper::Selector::parse("#form-error a").unwrap())
        .filter_map(|a| a.value().attr("href").map(str::to_owned))
        .collect();
    assert_eq!(links, ["#c-title", "#c-body"]);
    // Fixed, it is saved; the new form is empty again and unmarked.
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/canned",
                "/t/clinic-a/canned",
                &[("title", "Endereço"), ("body", "Rua das Flores, 100")],
            )
            .await;
    assert_eq!(r.status, 303);
    let page = gw.w.owner.get("/t/clinic-a/canned").await.body;
    assert_eq!(field(&page, "c-title").1, None);
    assert!(page.contains("Rua das Flores, 100"));
}

#[tokio::test]
async fn a_refused_retention_setting_keeps_every_typed_value_and_names_each_error() {
    let gw = Gw::evolution().await;
    let r =
        gw.w.owner
            .submit("/account", "/account/language", &[("language", "pt-BR")])
            .await;
    assert_eq!(r.status, 303);
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/privacy",
                "/t/clinic-a/privacy/settings",
                &[
                    ("message_days", "5"),
                    ("media_days", "7"),
                    ("ai_trace_days", "abc"),
                    ("audit_days", ""),
                    ("keywords", "apagar\nexcluir meus dados"),
                    ("legal_basis", "gdpr"),
                ],
            )
            .await;
    assert_eq!(r.status, 422);
    let (days, invalid, why) = field(&r.body, "message_days");
    assert_eq!((days.as_str(), invalid.as_deref()), ("5", Some("true")));
    assert!(why.contains("dias"), "in the viewer's language: {why}");
    let (trace, invalid, _) = field(&r.body, "ai_trace_days");
    assert_eq!((trace.as_str(), invalid.as_deref()), ("abc", Some("true")));
    // The valid fields keep what was typed and are not marked.
    let (media, invalid, _) = field(&r.body, "media_days");
    assert_eq!((media.as_str(), invalid), ("7", None));
    assert!(field(&r.body, "keywords").0.contains("excluir meus dados"));
    let doc = scraper::Html::parse_document(&r.body);
    let basis = doc
        .select(&scraper::Selector::parse("#legal_basis option[selected]").unwrap())
        .next()
        .and_then(|o| o.value().attr("value").map(str::to_owned));
    assert_eq!(basis.as_deref(), Some("gdpr"));
    // Nothing was saved.
    let page = gw.w.owner.get("/t/clinic-a/privacy").await.body;
    assert_ne!(field(&page, "message_days").0, "5");
    assert!(!page.contains("excluir meus dados"));
}

#[tokio::test]
async fn question_mark_lists_the_shortcuts_and_e_never_resolves_a_conversation() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .build()
        .await;
    let conv = gw.only_conversation().await;
    let b = owner_at_the_queue(&gw).await;
    // `?` opens the list as a modal dialog; keys do nothing behind it; Esc closes it.
    b.el("body").await.send_keys("?").await.unwrap();
    assert!(
        b.until("return document.getElementById('shortcuts').open")
            .await
    );
    let listed = b
        .js("return document.getElementById('shortcuts').innerText")
        .await;
    let listed = listed.as_str().unwrap();
    for key in [
        "Approve the focused draft",
        "Mark resolved",
        "Search conversations",
    ] {
        assert!(listed.contains(key), "{key} not in: {listed}");
    }
    b.press("a").await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(&Key::Escape)
        .await
        .unwrap();
    assert!(
        b.until("return !document.getElementById('shortcuts').open")
            .await
    );
    assert_eq!(
        gw.pending_drafts().await.len(),
        1,
        "`a` behind the dialog approved nothing"
    );
    // In a conversation `e` (edit, in the queue) does nothing; `x` resolves.
    b.goto(
        &gw.w
            .server
            .url(&format!("/t/clinic-a/conversations/{conv}")),
    )
    .await;
    b.wait_text("main", "Quanto custa a limpeza?").await;
    let status = || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM conversations")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap()
    };
    b.el("body").await.send_keys("e").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status().await, "open");
    b.el("body").await.send_keys("x").await.unwrap();
    harness_resolved(&gw).await;
    b.close().await;
}

async fn harness_resolved(gw: &Gw) {
    crate::tests::harness::eventually("x resolves the conversation", || async {
        sqlx::query_scalar::<_, String>("SELECT status FROM conversations")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap()
            == "resolved"
    })
    .await;
}

#[tokio::test]
async fn a_refused_knowledge_entry_keeps_the_typed_answer_in_its_own_form() {
    let gw = Gw::evolution().await;
    let answer = "Atendemos aos sábados das 8h às 12h30.";
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/knowledge",
                "/t/clinic-a/knowledge",
                &[("kind", "hours"), ("title", " "), ("body", answer)],
            )
            .await;
    assert_eq!(r.status, 422);
    let (title, invalid, why) = field(&r.body, "k-title");
    assert_eq!((title.as_str(), invalid.as_deref()), (" ", Some("true")));
    assert!(why.contains("Give the entry a title"), "{why}");
    let (body, invalid, _) = field(&r.body, "k-body");
    assert_eq!(
        (body.as_str(), invalid),
        (answer, None),
        "the answer is kept"
    );
    // An entry that exists, edited with a title too long: its own form keeps the edit.
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/knowledge",
                "/t/clinic-a/knowledge",
                &[("kind", "hours"), ("title", "Sábado"), ("body", answer)],
            )
            .await;
    assert_eq!(r.status, 303);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM knowledge_entries")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    let long = "S".repeat(201);
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/knowledge",
                &format!("/t/clinic-a/knowledge/{id}"),
                &[
                    ("kind", "hours"),
                    ("title", &long),
                    ("body", "Novo horário"),
                ],
            )
            .await;
    assert_eq!(r.status, 422);
    let (title, invalid, why) = field(&r.body, &format!("{id}-title"));
    assert_eq!(title, long);
    assert_eq!(invalid.as_deref(), Some("true"));
    assert!(why.contains("at most 200 characters"), "{why}");
    assert_eq!(field(&r.body, &format!("{id}-body")).0, "Novo horário");
    let doc = scraper::Html::parse_document(&r.body);
    let open = doc
        .select(&scraper::Selector::parse("details.knowledge-entry[open]").unwrap())
        .count();
    assert_eq!(open, 1, "the entry being edited is open");
    assert_eq!(
        field(&r.body, "k-title").1,
        None,
        "the new-entry form is not marked"
    );
    let stored: String = sqlx::query_scalar("SELECT title FROM knowledge_entries")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    assert_eq!(stored, "Sábado", "nothing was saved");
}

#[tokio::test]
async fn typing_in_the_reply_box_holds_the_draft_and_a_colleague_sees_it_live() {
    let gw = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .with_member("bruno@a.test", Role::Reviewer)
        .build()
        .await;
    let (draft, conv) = (gw.pending_draft().await, gw.only_conversation().await);
    let page = format!("/t/clinic-a/conversations/{conv}");
    let bruno = &gw.members[0];
    let b = Browser::start().await;
    b.log_in(&gw.w.server, "owner@a.test").await;
    b.goto(&gw.w.server.url(&page)).await;
    b.wait_text("#ai-draft", "R$ 180").await;
    // Let the EventSource connect before anything changes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A colleague opens the same conversation: the owner's page shows it without a reload.
    assert_eq!(bruno.get(&page).await.status, 200);
    b.wait_text("#presence", "Colleague").await;

    // The owner starts typing in the draft: the page tells the server at once.
    b.el("#draft-text")
        .await
        .send_keys(" Até breve!")
        .await
        .unwrap();
    crate::tests::harness::eventually("the owner's page reports editing", || async {
        gw.presence_of("owner@a.test").await == Some(true)
    })
    .await;
    // So the colleague's approval is refused, and nothing is sent.
    let csrf = bruno.get(&page).await.csrf();
    let r = bruno
        .post(
            &format!("/t/clinic-a/drafts/{draft}/approve"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(gw.draft_state(draft).await, "pending");
    let typed = b
        .js("return document.getElementById('draft-text').value")
        .await;
    assert!(typed.as_str().unwrap().ends_with("Até breve!"), "{typed}");
    b.screenshot("conversation-presence").await;

    // Leaving the page says goodbye: the draft is free for the colleague at once.
    b.goto(&gw.w.server.url("/t/clinic-a")).await;
    crate::tests::harness::eventually("the owner's presence is gone", || async {
        gw.presence_of("owner@a.test").await.is_none()
    })
    .await;
    b.close().await;
}

/// A customer writes while the reviewer types a reply: the message joins the open thread
/// live, fetched as the page's regions alone (`?fragment=…`, never the whole page again),
/// and the typed reply and its focus stay.
#[tokio::test]
async fn a_new_message_joins_the_open_thread_as_a_fragment_and_the_typed_reply_stays() {
    let gw = TestApp::init()
        .with_customer("Q1", "5511988887777", "Ana", "Oi, tudo bem?")
        .build()
        .await;
    let conv = gw.only_conversation().await;
    let b = Browser::start().await;
    b.log_in(&gw.w.server, "owner@a.test").await;
    b.goto(
        &gw.w
            .server
            .url(&format!("/t/clinic-a/conversations/{conv}")),
    )
    .await;
    b.wait_text("#thread", "Oi, tudo bem?").await;
    b.el("#text").await.send_keys("Já respondo").await.unwrap();
    // Let the EventSource connect before anything changes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    gw.ana_writes("Q2", "Vocês abrem amanhã?").await;
    b.wait_text("#thread", "Vocês abrem amanhã?").await;
    let state = b
        .js("return { typed: document.getElementById('text').value,
                      focused: document.activeElement.id,
                      fetched: performance.getEntriesByType('resource').map(e => e.name)
                        .filter(n => n.includes('/conversations/') && !n.endsWith('/presence')) };")
        .await;
    assert_eq!(state["typed"], json!("Já respondo"), "{state}");
    assert_eq!(state["focused"], json!("text"), "{state}");
    let fetched = state["fetched"].as_array().unwrap();
    assert!(!fetched.is_empty(), "{state}");
    assert!(
        fetched
            .iter()
            .all(|u| u.as_str().unwrap().contains("fragment=")),
        "only fragments were fetched: {state}"
    );
    assert!(
        fetched
            .iter()
            .any(|u| u.as_str().unwrap().contains("thread")),
        "{state}"
    );
    b.close().await;
}
