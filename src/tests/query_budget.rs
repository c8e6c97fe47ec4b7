//! What a portal page costs the database (issue 19): the frame every page shares (session,
//! tenant, role, badges, banners, tenant switcher) is a fixed, small number of statements,
//! and the review queue's cost does not grow with the drafts it shows.
//!
//! How statements are counted: the harness's `StatementLog` tracing layer records the
//! `sqlx::query` event sqlx emits for every statement it executes, when the event happens
//! inside the app's `request` span on the test's thread (`harness::statements_of`). That
//! counts exactly what the server sent for the request under test — in process, against the
//! test's own database, on any cluster (a `DATABASE_URL` one too) — and nothing else: not the
//! job runner, not the test's own owner queries, not other tests running in parallel. The
//! alternatives were worse here: `pg_stat_statements` needs `shared_preload_libraries` on the
//! cluster (which a provided `DATABASE_URL` may not have) and aggregates by statement, not
//! by request; `pg_stat_database.xact_commit` counts transactions, and the background
//! workers of the app commit their own. sqlx does not log the BEGIN it sends, so
//! `db::begin_tenant` logs it (its `BEGIN; SELECT set_config(…)` is one simple query, one
//! round trip) and the test checks every COMMIT had one. A statement here is one round trip,
//! except that sqlx's first use of a statement on a connection also prepares it (and the test
//! pool pings a connection on checkout, which the server's pool does not).

use crate::tests::{
    harness::statements_of,
    review::{clinic_knowledge, mock_send_ok, now},
    wa::{Gw, evo_text},
};

/// A page's statements split at its first transaction: before it, the frame (the session
/// middleware and the tenant extractor); from it on, the page's own work.
fn frame_and_rest(stmts: &[String]) -> (&[String], &[String]) {
    // Every transaction is counted from its BEGIN: one begun some other way than
    // `db::begin_tenant` would show only its COMMIT, and be missed.
    let begins = stmts.iter().filter(|s| s.starts_with("BEGIN")).count();
    let ends = stmts
        .iter()
        .filter(|s| s.starts_with("COMMIT") || s.starts_with("ROLLBACK"))
        .count();
    assert_eq!(
        begins,
        ends,
        "a transaction not begun by db::begin_tenant:\n{}",
        stmts.join("\n")
    );
    let i = stmts
        .iter()
        .position(|s| s.starts_with("BEGIN"))
        .unwrap_or(stmts.len());
    stmts.split_at(i)
}

/// The statements of one GET, asked twice: the second, steady-state request is measured (the
/// first warms the key cache and the session's once-a-minute activity write).
async fn cost(gw: &Gw, path: &str) -> (String, Vec<String>) {
    let warm = gw.w.owner.get(path).await;
    assert_eq!(warm.status, 200, "GET {path}: {}", warm.body);
    let (page, stmts) = statements_of(gw.w.owner.get(path)).await;
    assert_eq!(page.status, 200, "GET {path}: {}", page.body);
    (page.body, stmts)
}

fn assert_frame(path: &str, stmts: &[String]) {
    let (frame, rest) = frame_and_rest(stmts);
    assert!(
        frame.len() <= 3,
        "GET {path}: the page frame took {} statements (budget 3):\n{}",
        frame.len(),
        frame.join("\n")
    );
    assert!(
        frame.iter().any(|s| s.contains("portal_chrome(")),
        "GET {path}: the frame is one portal_chrome call:\n{}",
        stmts.join("\n")
    );
    // The frame asks nothing again once the page's own work has begun.
    for s in rest {
        assert!(
            !s.contains("portal_chrome(") && !s.contains("FROM sessions"),
            "GET {path}: a frame statement inside the page's work: {s}\n{}",
            stmts.join("\n")
        );
    }
}

async fn patients(gw: &Gw, from: usize, to: usize) {
    for i in from..to {
        let (status, body) = gw
            .evo(&evo_text(
                &format!("Q{i}"),
                &format!("55119{:08}", 20_000_000 + i),
                &format!("Paciente {i}"),
                now(gw),
                "Quanto custa a limpeza?",
            ))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    gw.run_jobs().await;
    gw.run_jobs().await;
}

fn cards(body: &str) -> usize {
    let doc = scraper::Html::parse_document(body);
    doc.select(&scraper::Selector::parse("[data-review-card]").unwrap())
        .count()
}

#[tokio::test]
async fn a_portal_page_frame_is_two_statements_and_each_page_a_fixed_budget() {
    let gw = Gw::evolution().await;
    clinic_knowledge(&gw.w).await;
    patients(&gw, 0, 3).await;
    // Statements per page in steady state: 2 for the frame (the session and its user in one
    // query; `portal_chrome`), then the page's own transaction, BEGIN … COMMIT included.
    for (path, expected) in [
        // member count, first steps, overview, reject reasons, settings, weekly quality
        ("/t/clinic-a", 2 + 8),
        // list, emergencies, saved views
        ("/t/clinic-a/conversations", 2 + 5),
    ] {
        let (_, stmts) = cost(&gw, path).await;
        assert_frame(path, &stmts);
        assert_eq!(
            stmts.len(),
            expected,
            "GET {path} ran {} statements (budget {expected}):\n{}",
            stmts.len(),
            stmts.join("\n")
        );
    }
    // The figures the frame loaded are the page's badges: three unread messages, three drafts.
    let dashboard = gw.w.owner.get("/t/clinic-a").await.body;
    assert_eq!(badge(&dashboard, "unread-count"), "3");
    assert_eq!(badge(&dashboard, "review-count"), "3");
    // Opening a conversation reads it: its own page already counts it read.
    let conv = gw.conversation_of("Q1").await;
    let thread =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert_eq!(thread.status, 200);
    assert_eq!(badge(&thread.body, "unread-count"), "2");
    let dashboard = gw.w.owner.get("/t/clinic-a").await.body;
    assert_eq!(badge(&dashboard, "unread-count"), "2");
}

fn badge(body: &str, id: &str) -> String {
    let doc = scraper::Html::parse_document(body);
    doc.select(&scraper::Selector::parse(&format!("#{id}")).unwrap())
        .next()
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .unwrap_or_else(|| panic!("no #{id} on the page"))
}

#[tokio::test]
async fn the_review_queue_costs_the_same_for_five_drafts_as_for_fifty() {
    let gw = Gw::evolution().await;
    clinic_knowledge(&gw.w).await;
    patients(&gw, 0, 5).await;
    let (five, with_five) = cost(&gw, "/t/clinic-a/review").await;
    assert_eq!(cards(&five), 5);
    patients(&gw, 5, 50).await;
    let (fifty, with_fifty) = cost(&gw, "/t/clinic-a/review").await;
    assert_eq!(cards(&fifty), 50);
    assert_frame("/t/clinic-a/review", &with_fifty);
    assert_eq!(
        with_five.len(),
        with_fifty.len(),
        "5 drafts:\n{}\n\n50 drafts:\n{}",
        with_five.join("\n"),
        with_fifty.join("\n")
    );
}

/// A live update asks for the region that changed, not the page: each fragment keeps the
/// page's frame (its badges come with it) and runs fewer statements than its page.
#[tokio::test]
async fn a_live_fragment_costs_fewer_statements_than_its_page() {
    let gw = Gw::evolution().await;
    clinic_knowledge(&gw.w).await;
    patients(&gw, 0, 3).await;
    let conv = gw.conversation_of("Q1").await;
    let thread = format!("/t/clinic-a/conversations/{conv}");
    for (page, regions) in [
        ("/t/clinic-a/review".to_owned(), &["review"][..]),
        ("/t/clinic-a/conversations".to_owned(), &["inbox"]),
        (
            thread,
            // A new message (`inbox`), then presence, then the whole set at once.
            &[
                "pane,thread,reply",
                "presence",
                "pane,presence,thread,reply",
            ],
        ),
    ] {
        let (_, whole) = cost(&gw, &page).await;
        for region in regions {
            let path = format!("{page}?fragment={region}");
            let (_, part) = cost(&gw, &path).await;
            assert_frame(&path, &part);
            eprintln!(
                "GET {path}: {} statements, the page {}",
                part.len(),
                whole.len()
            );
            assert!(
                part.len() < whole.len(),
                "GET {path} ran {} statements, the page {}:\n{}\n\npage:\n{}",
                part.len(),
                whole.len(),
                part.join("\n"),
                whole.join("\n")
            );
        }
    }
}

/// The badges as the database would count them (the owner, every row).
async fn counted(gw: &Gw) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT COALESCE(sum(unread_count), 0)::bigint FROM conversations
                  WHERE status = 'open' AND unread_count > 0),
                (SELECT count(*) FROM drafts WHERE state IN ('pending', 'escalated'))",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap()
}

/// What the page frame shows: (unread, waiting for review).
async fn badges(gw: &Gw) -> (i64, i64) {
    let page = gw.w.owner.get("/t/clinic-a").await;
    assert_eq!(page.status, 200);
    (
        badge(&page.body, "unread-count").parse().unwrap(),
        badge(&page.body, "review-count").parse().unwrap(),
    )
}

async fn conversation_of(gw: &Gw, external_id: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT conversation_id FROM messages WHERE external_id = $1")
        .bind(external_id)
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap()
}

/// The badges are maintained counters (migration 0031), not counts: they must follow every
/// change of what they count — ingest, reading, approving, marking resolved, deleting.
#[tokio::test]
async fn the_badges_follow_ingest_reading_approval_resolving_and_deletion() {
    let gw = Gw::evolution().await;
    clinic_knowledge(&gw.w).await;
    mock_send_ok(&gw).await;
    patients(&gw, 0, 4).await;
    assert_eq!(badges(&gw).await, (4, 4));
    assert_eq!(counted(&gw).await, (4, 4));
    // Ingest into a known conversation: one more unread.
    let (status, body) = gw
        .evo(&evo_text(
            "Q0b",
            &format!("55119{:08}", 20_000_000),
            "Paciente 0",
            now(&gw),
            "Ainda estão aí?",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(badges(&gw).await.0, 5);
    assert_eq!(badges(&gw).await, counted(&gw).await);
    // Reading a conversation clears its unread.
    let read = conversation_of(&gw, "Q1").await;
    assert_eq!(
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{read}"))
            .await
            .status,
        200
    );
    assert_eq!(badges(&gw).await, (4, 4));
    // Approving a draft takes it off the review badge.
    let draft: uuid::Uuid = sqlx::query_scalar(
        "SELECT d.id FROM drafts d JOIN messages m ON m.id = d.reply_to_message_id
         WHERE m.external_id = 'Q2' AND d.state = 'pending'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/drafts/{draft}/approve"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(badges(&gw).await.1, 3);
    assert_eq!(badges(&gw).await, counted(&gw).await);
    // A resolved conversation's unread messages leave the badge.
    let resolved = conversation_of(&gw, "Q3").await;
    let thread = format!("/t/clinic-a/conversations/{resolved}");
    sqlx::query("UPDATE conversations SET unread_count = 2 WHERE id = $1")
        .bind(resolved)
        .execute(&gw.w.t.owner)
        .await
        .unwrap();
    let before = badges(&gw).await.0;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("{thread}/status"),
                &[("status", "resolved")],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(badges(&gw).await.0, before - 2);
    assert_eq!(badges(&gw).await, counted(&gw).await);
    // Deleting a conversation (and erasing its only contact) takes its unread and its
    // waiting draft away.
    let gone = conversation_of(&gw, "Q0").await;
    let thread = format!("/t/clinic-a/conversations/{gone}");
    let r =
        gw.w.owner
            .submit("/t/clinic-a/review", &format!("{thread}/delete"), &[])
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (unread, waiting) = badges(&gw).await;
    assert_eq!((unread, waiting), counted(&gw).await);
    assert!(unread <= before - 4, "Q0's two unread messages are gone");
    assert_eq!(waiting, 2, "Q0's draft is gone");
}

/// The conversation page (issue 22): a fixed budget of statements, its opening reads in one,
/// and its `conversation.viewed` entry in a short transaction of its own at the end, so the
/// tenant's audit-chain lock is never held across the page's work (every view still audited,
/// the chain intact).
#[tokio::test]
async fn the_conversation_page_has_a_budget_and_audits_each_view_in_its_own_short_transaction() {
    let gw = Gw::evolution().await;
    clinic_knowledge(&gw.w).await;
    patients(&gw, 0, 3).await;
    let conv = conversation_of(&gw, "Q1").await;
    let path = format!("/t/clinic-a/conversations/{conv}");
    let viewed = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM audit_log WHERE action = 'conversation.viewed' AND subject = $1",
        )
        .bind(conv.to_string())
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap()
    };
    let views_before = viewed().await;
    let (page, stmts) = cost(&gw, &path).await;
    assert!(page.contains("Quanto custa a limpeza?"), "{page}");
    assert_frame(&path, &stmts);
    let budget = 2 + CONVERSATION_PAGE;
    assert_eq!(
        stmts.len(),
        budget,
        "GET {path} ran {} statements (budget {budget}):\n{}",
        stmts.len(),
        stmts.join("\n")
    );
    // The conversation, its contact and its channel: one statement, not three; the reply
    // box's lists and the latest draft one more; the heartbeat and who else is here one.
    for one_by_one in [
        "SELECT id, phone_index, lid_index",
        "SELECT id, tenant_id, route_id",
        "UPDATE conversations SET unread_count = 0",
        "SELECT m.user_id, u.name",
        "SELECT id, title, body FROM canned_replies",
        "SELECT id, name, language, body",
        "SELECT id, conversation_id, contact_id, reply_to_message_id",
        "SELECT editing, draft_id, seen_at",
        "SELECT p.conversation_id",
    ] {
        assert!(
            !stmts.iter().any(|s| s.starts_with(one_by_one)),
            "{}",
            stmts.join("\n")
        );
    }
    // The chain lock's transaction holds the audit entry and nothing else, and it is the
    // request's last; its BEGIN takes the lock in the same round trip.
    let (_, rest) = frame_and_rest(&stmts);
    let last_begin = rest.iter().rposition(|s| s.starts_with("BEGIN")).unwrap();
    let audit_tx = &rest[last_begin..];
    assert!(
        audit_tx[0].contains("pg_advisory_xact_lock"),
        "{}",
        stmts.join("\n")
    );
    assert_eq!(
        audit_tx.len(),
        4,
        "BEGIN with the lock, last entry, insert, COMMIT:\n{}",
        audit_tx.join("\n")
    );
    assert_eq!(
        rest.iter()
            .filter(|s| s.contains("pg_advisory_xact_lock"))
            .count(),
        1,
        "the page's own transaction takes no chain lock:\n{}",
        stmts.join("\n")
    );
    // Both views (the warm-up and the measured one) are in the log, and the chain verifies.
    assert_eq!(viewed().await, views_before + 2);
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    let key = gw.w.t.keys.audit_checkpoint_key(tenant).await.unwrap();
    let mut tx = crate::db::begin_tenant(&gw.w.t.state.db, tenant)
        .await
        .unwrap();
    let verified = crate::db::audit::verify_chain(&mut tx, tenant, &*key)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(verified.is_ok(), "the audit chain verifies");
}

/// Many views of one tenant at once (issue 22): their `conversation.viewed` entries are
/// appended in batches (`db::audit::Batched`), and still each view is in the log exactly once,
/// the sequence has no gap, and the chain verifies.
#[tokio::test]
async fn concurrent_views_are_each_audited_once_and_the_chain_verifies() {
    let gw = Gw::evolution().await;
    clinic_knowledge(&gw.w).await;
    patients(&gw, 0, 3).await;
    let mut convs = Vec::new();
    for q in ["Q0", "Q1", "Q2"] {
        convs.push(conversation_of(&gw, q).await);
    }
    let viewed = |conv: uuid::Uuid| {
        let owner = gw.w.t.owner.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM audit_log WHERE action = 'conversation.viewed' AND subject = $1",
            )
            .bind(conv.to_string())
            .fetch_one(&owner)
            .await
            .unwrap()
        }
    };
    let mut before = Vec::new();
    for c in &convs {
        before.push(viewed(*c).await);
    }
    let paths: Vec<String> = (0..24)
        .map(|i| format!("/t/clinic-a/conversations/{}", convs[i % 3]))
        .collect();
    let pages = futures::future::join_all(paths.iter().map(|p| gw.w.owner.get(p))).await;
    for (page, path) in pages.iter().zip(&paths) {
        assert_eq!(page.status, 200, "GET {path}: {}", page.body);
    }
    for (c, b) in convs.iter().zip(&before) {
        assert_eq!(
            viewed(*c).await,
            b + 8,
            "each of the 8 views of {c} is in the log once"
        );
    }
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    let (count, span): (i64, i64) = sqlx::query_as(
        "SELECT count(*), max(seq) - min(seq) + 1 FROM audit_log WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(count, span, "no gap in the chain's sequence");
    let key = gw.w.t.keys.audit_checkpoint_key(tenant).await.unwrap();
    let mut tx = crate::db::begin_tenant(&gw.w.t.state.db, tenant)
        .await
        .unwrap();
    let verified = crate::db::audit::verify_chain(&mut tx, tenant, &*key)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(verified.is_ok(), "the audit chain verifies");
}

/// The conversation page's own statements after its frame, BEGIN … COMMIT of both of its
/// transactions included. The page's transaction: the opening read with the read mark, the
/// thread, the reply box's lists with the latest draft, the heartbeat with who else is here,
/// the knowledge titles (a pending draft names entries), the pane; the audit entry's
/// transaction: BEGIN with the chain lock, last entry, insert, COMMIT. It was 19: the
/// conversation, contact and channel were three reads, the read mark, members, canned
/// replies, templates and latest draft one each, the heartbeat two and who else is here one,
/// and the chain lock a statement of its own.
const CONVERSATION_PAGE: usize = 12;
