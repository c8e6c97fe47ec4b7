//! Live regions as fragments (issue 19 step 4): a page asked for `?fragment=<region>` answers
//! with that region alone (and the navigation badges), under the page's own log-in, tenant
//! and role checks, never cached. What it costs is in `query_budget`.

use crate::domain::account::Role;

use crate::tests::{client::Page, harness::TestApp};

/// The ids of the elements in a fragment or page, in document order.
fn ids(body: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(body);
    doc.select(&scraper::Selector::parse("[id]").unwrap())
        .filter_map(|e| e.value().attr("id").map(str::to_owned))
        .collect()
}

fn has(body: &str, id: &str) -> bool {
    ids(body).iter().any(|i| i == id)
}

/// A fragment: 200, HTML, `no-store`, and no page frame around it.
fn fragment(path: &str, r: &Page) {
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"), "GET {path}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "GET {path}"
    );
    for frame in ["<!DOCTYPE", "<main", "portal-nav", "live-status"] {
        assert!(
            !r.body.contains(frame),
            "GET {path} has {frame}:\n{}",
            r.body
        );
    }
}

#[tokio::test]
async fn each_live_region_comes_alone_from_its_own_page() {
    let s = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .build()
        .await;
    let (conv, draft) = (s.only_conversation().await, s.pending_draft().await);
    let owner = s.owner();

    let path = "/t/clinic-a/review?fragment=review";
    let r = owner.get(path).await;
    fragment(path, &r);
    assert!(has(&r.body, "review-list") && has(&r.body, &format!("draft-{draft}")));
    assert!(r.body.contains("R$ 180"), "{}", r.body);
    // Not the filters or the pager; the badges and the tab title follow the list.
    assert!(!has(&r.body, "queue-filter") && !has(&r.body, "new-drafts"));
    let doc = scraper::Html::parse_document(&r.body);
    let title = doc
        .select(&scraper::Selector::parse("title").unwrap())
        .next()
        .map(|t| t.text().collect::<String>())
        .unwrap_or_default();
    assert!(title.starts_with("(1) Review"), "{title}");
    assert!(has(&r.body, "review-count") && has(&r.body, "unread-count"));

    let path = "/t/clinic-a/conversations?fragment=inbox";
    let r = owner.get(path).await;
    fragment(path, &r);
    assert!(has(&r.body, "inbox") && has(&r.body, &format!("row-{conv}")));
    assert!(
        !has(&r.body, "view-all") && !has(&r.body, "q"),
        "{}",
        r.body
    );

    // The conversation page's regions, one or several at a time; nothing else of the page.
    let page = format!("/t/clinic-a/conversations/{conv}");
    for (asked, shown) in [
        ("thread", &["thread"][..]),
        ("reply", &["reply"]),
        ("pane", &["pane-list"]),
        ("presence", &["presence"]),
        ("thread,reply", &["thread", "reply"]),
    ] {
        let path = format!("{page}?fragment={asked}");
        let r = owner.get(&path).await;
        fragment(&path, &r);
        for region in ["thread", "reply", "pane-list", "presence"] {
            assert_eq!(
                has(&r.body, region),
                shown.contains(&region),
                "GET {path}: #{region}:\n{}",
                r.body
            );
        }
        assert!(!has(&r.body, "conv-title") && !has(&r.body, "c-notes"));
    }
    let r = owner.get(&format!("{page}?fragment=thread")).await;
    assert!(r.body.contains("Quanto custa a limpeza?"), "{}", r.body);
    let r = owner.get(&format!("{page}?fragment=reply")).await;
    assert!(has(&r.body, "ai-draft") && r.body.contains("R$ 180"));
    // The thread marks the conversation read, as the page does: the badge says so.
    let badge =
        scraper::Html::parse_document(&owner.get(&format!("{page}?fragment=pane")).await.body)
            .select(&scraper::Selector::parse("#unread-count").unwrap())
            .next()
            .map(|e| e.value().attr("hidden").is_some())
            .unwrap();
    assert!(badge, "no unread messages left");

    let path = "/t/clinic-a/simulator?fragment=thread";
    let r = owner.get(path).await;
    fragment(path, &r);
    assert!(has(&r.body, "thread") && !has(&r.body, "sim-text"));

    // A region the page does not have is a 404.
    for path in [
        format!("{page}?fragment=contact"),
        format!("{page}?fragment="),
        "/t/clinic-a/review?fragment=thread".to_owned(),
    ] {
        assert_eq!(owner.get(&path).await.status, 404, "GET {path}");
    }
}

#[tokio::test]
async fn a_fragment_is_checked_like_its_page_and_shows_only_the_tenants_own() {
    let s = TestApp::init()
        .with_knowledge()
        .with_price_question()
        .with_member("vi@a.test", Role::Viewer)
        .with_other_tenant()
        .build()
        .await;
    let (conv, draft) = (s.only_conversation().await, s.pending_draft().await);
    let (viewer, b) = (&s.members[0], s.other());

    // Tenant B's owner: A's fragments are 404s, and B's own show nothing of A.
    for path in [
        "/t/clinic-a/review?fragment=review".to_owned(),
        "/t/clinic-a/conversations?fragment=inbox".to_owned(),
        format!("/t/clinic-a/conversations/{conv}?fragment=thread"),
        format!("/t/clinic-b/conversations/{conv}?fragment=thread,reply"),
        format!("/t/clinic-b/conversations/{conv}?fragment=presence"),
    ] {
        assert_eq!(b.get(&path).await.status, 404, "GET {path}");
    }
    for path in [
        "/t/clinic-b/review?fragment=review",
        "/t/clinic-b/conversations?fragment=inbox",
    ] {
        let r = b.get(path).await;
        fragment(path, &r);
        for a in [
            conv.to_string(),
            draft.to_string(),
            "Ana".into(),
            "R$ 180".into(),
        ] {
            assert!(!r.body.contains(&a), "GET {path} shows {a}:\n{}", r.body);
        }
    }
    // A viewer of A: no review list, and the conversation's fragments without the reply box.
    assert_eq!(
        viewer
            .get("/t/clinic-a/review?fragment=review")
            .await
            .status,
        403
    );
    let path = format!("/t/clinic-a/conversations/{conv}?fragment=thread,reply");
    let r = viewer.get(&path).await;
    fragment(&path, &r);
    assert!(has(&r.body, "thread") && !has(&r.body, "reply") && !has(&r.body, "ai-draft"));
    // Logged out: the log-in page, as for the page.
    let anon = s.w.client();
    assert!(
        anon.get("/t/clinic-a/review?fragment=review")
            .await
            .is_login_redirect()
    );
}
