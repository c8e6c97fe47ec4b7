//! Every page, checked by axe-core in a real browser, in the light and the dark colour scheme
//! (issue 23). axe-core comes from the npm registry (scripts/lib.sh `ensure_axe`) and is
//! injected by the test; the product never serves it. A critical or serious finding fails.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::tests::{
    browser::Browser,
    harness::{Scene, TestApp},
    wa::Gw,
};

fn axe_source() -> String {
    let path = std::env::var("SIGMAAI_AXE_JS").unwrap_or_else(|_| {
        panic!("SIGMAAI_AXE_JS is not set: run the tests with scripts/test (it installs axe-core)")
    });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// axe's critical and serious violations on the current page: (rule, impact, first targets).
async fn violations(b: &Browser, axe: &str) -> Vec<Value> {
    b.client
        .execute(axe, vec![])
        .await
        .expect("inject axe-core");
    let found = b
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               axe.run(document, { resultTypes: ["violations"] })
                 .then(r => done(r.violations
                   .filter(v => v.impact === "critical" || v.impact === "serious")
                   .map(v => ({ rule: v.id, impact: v.impact, help: v.help,
                                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ")) }))))
                 .catch(e => done([{ rule: "axe-error", help: String(e) }]));"#,
            vec![],
        )
        .await
        .expect("run axe-core");
    found.as_array().cloned().unwrap_or_default()
}

/// A tenant with something on every page: knowledge, a conversation with a draft, an
/// escalation, a privacy request, a saved view.
async fn furnished() -> (Scene, Uuid) {
    let gw = TestApp::init()
        .with_knowledge()
        .with_customer("A1", "5511955550001", "Ana", "Quanto custa a limpeza?")
        .with_customer("A2", "5511955550002", "Rui", "Qual é a capital da França?")
        .build()
        .await;
    let conv = gw.conversation_of("A1").await;
    let contact: Uuid = sqlx::query_scalar("SELECT contact_id FROM conversations WHERE id = $1")
        .bind(conv)
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    let r =
        gw.w.owner
            .submit(
                &format!("/t/clinic-a/conversations/{conv}"),
                "/t/clinic-a/privacy/requests",
                &[
                    ("contact", contact.to_string().as_str()),
                    ("kind", "access"),
                    ("legal_basis", "lgpd"),
                ],
            )
            .await;
    assert_eq!(r.status, 303, "{}", r.body);
    (gw, conv)
}

async fn pages(gw: &Gw, conv: Uuid) -> Vec<String> {
    let dsr: Uuid = sqlx::query_scalar("SELECT id FROM dsr_requests LIMIT 1")
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap();
    [
        "/t/clinic-a",
        "/t/clinic-a/conversations",
        &format!("/t/clinic-a/conversations/{conv}"),
        "/t/clinic-a/contacts",
        "/t/clinic-a/review",
        "/t/clinic-a/members",
        "/t/clinic-a/knowledge",
        "/t/clinic-a/canned",
        "/t/clinic-a/ai",
        "/t/clinic-a/integrations",
        "/t/clinic-a/channels",
        "/t/clinic-a/simulator",
        "/t/clinic-a/privacy",
        &format!("/t/clinic-a/privacy/requests/{dsr}"),
        "/t/clinic-a/billing",
        "/t/clinic-a/settings",
        "/t/clinic-a/audit",
        "/account",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect()
}

const PUBLIC: [&str; 9] = [
    "/", "/pricing", "/privacy", "/terms", "/dpa", "/login", "/signup", "/forgot", "/policy",
];

async fn check_every_page(b: Browser, gw: &Gw, conv: Uuid, scheme: &str) {
    let dark = b
        .client
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        dark,
        json!(scheme == "dark"),
        "the browser prefers the {scheme} scheme"
    );
    let axe = axe_source();
    let mut findings = Vec::new();
    for path in PUBLIC {
        b.goto(&gw.w.server.url(path)).await;
        for v in violations(&b, &axe).await {
            findings.push(format!("{path}: {v}"));
        }
    }
    b.log_in(&gw.w.server, "owner@a.test").await;
    for path in pages(gw, conv).await {
        b.goto(&gw.w.server.url(&path)).await;
        let v = violations(&b, &axe).await;
        for v in v {
            findings.push(format!("{path}: {v}"));
        }
    }
    b.close().await;
    assert!(
        findings.is_empty(),
        "axe-core, {scheme} scheme: {} critical/serious finding(s):\n{}",
        findings.len(),
        findings.join("\n")
    );
}

#[tokio::test]
async fn every_page_passes_axe_in_the_light_scheme() {
    let (gw, conv) = furnished().await;
    check_every_page(Browser::start().await, &gw, conv, "light").await;
}

#[tokio::test]
async fn every_page_passes_axe_in_the_dark_scheme() {
    let (gw, conv) = furnished().await;
    check_every_page(Browser::start_dark().await, &gw, conv, "dark").await;
}
