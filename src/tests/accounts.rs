//! Accounts, sessions, CSRF, tenancy and roles (issue 3).

use crate::domain::policy::POLICY_VERSION;
use axum::{body::Body, http::Request};
use time::Duration;

use crate::tests::{
    browser::Browser,
    client::{Client, PASSWORD, Page, World},
    harness::TestApp,
};

#[tokio::test]
async fn sign_up_log_in_dashboard_log_out() {
    let w = World::new().await;
    let dash = w.owner.get("/t/clinic-a").await;
    assert_eq!(dash.status, 200);
    assert!(dash.body.contains("Clinic A"));

    // The accepted policy version is recorded, and the tenant has its owner.
    let (version, role): (String, String) = sqlx::query_as(
        "SELECT u.accepted_policy_version, m.role FROM users u JOIN memberships m ON m.user_id = u.id WHERE u.email = 'owner@a.test'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!((version.as_str(), role.as_str()), (POLICY_VERSION, "owner"));

    let r = w.owner.submit("/t/clinic-a", "/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert!(w.owner.get("/t/clinic-a").await.is_login_redirect());

    let r = w.owner.log_in("owner@a.test", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/app"));
    let home = w.owner.get_follow("/app").await;
    assert!(home.body.contains("Clinic A"));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let w = World::new().await;
    let c = w.client();
    let a = c.log_in("owner@a.test", "wrong password here").await;
    let b = c.log_in("nobody@a.test", "wrong password here").await;
    assert_eq!((a.status, b.status), (422, 422));
    assert!(a.body.contains("E-mail or password is incorrect."));
    assert!(b.body.contains("E-mail or password is incorrect."));
}

#[tokio::test]
async fn sign_up_errors_keep_the_input() {
    let w = World::new().await;
    let c = w.client();
    let r = c
        .sign_up("Bea", "owner@a.test", "Clinic B", "clinic-b")
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body
            .contains("An account with this e-mail already exists")
    );
    assert!(r.body.contains(r#"value="Clinic B""#));
    let r = c.sign_up("Bea", "bea@b.test", "Clinic B", "clinic-a").await;
    assert!(r.body.contains("That address is already in use"));
    // Nothing half-created: no user for the failed sign-up.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'bea@b.test'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn logout_everywhere_and_revocation_take_effect_at_once() {
    let w = World::new().await;
    let laptop = w.client();
    assert_eq!(laptop.log_in("owner@a.test", PASSWORD).await.status, 303);
    assert_eq!(laptop.get("/t/clinic-a").await.status, 200);

    // End the laptop's session from the other one.
    let account = w.owner.get("/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains("sigmaai-tests"));
    let doc = scraper::Html::parse_document(&account.body);
    let sel = scraper::Selector::parse(r#"form[action^="/account/sessions/"][action$="/revoke"]"#)
        .unwrap();
    let actions: Vec<String> = doc
        .select(&sel)
        .map(|f| f.value().attr("action").unwrap().to_owned())
        .collect();
    assert_eq!(actions.len(), 2, "two active sessions listed");
    // The row marked "this one" is the owner's; revoke the other.
    let current_sid: String =
        sqlx::query_scalar("SELECT id::text FROM sessions ORDER BY created_at LIMIT 1")
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    let other = actions
        .iter()
        .find(|a| !a.contains(&current_sid))
        .unwrap()
        .clone();
    let r = w.owner.submit("/account", &other, &[]).await;
    assert_eq!(r.status, 303);
    assert!(
        laptop.get("/t/clinic-a").await.is_login_redirect(),
        "revoked session still works"
    );
    assert_eq!(w.owner.get("/t/clinic-a").await.status, 200);

    // Log out everywhere ends this one too.
    let r = w
        .owner
        .submit("/account", "/account/sessions/revoke-all", &[])
        .await;
    assert_eq!(r.status, 303);
    assert!(w.owner.get("/t/clinic-a").await.is_login_redirect());
}

#[tokio::test]
async fn session_cookie_attributes() {
    let w = World::new().await;
    let r = w.client().log_in("owner@a.test", PASSWORD).await;
    let c = r
        .set_cookies
        .iter()
        .find(|c| c.starts_with("sid="))
        .expect("session cookie");
    assert!(c.contains("HttpOnly"), "{c}");
    assert!(c.contains("SameSite=Lax"), "{c}");
    assert!(c.contains("Path=/"), "{c}");
    assert!(!c.contains("Domain"), "{c}");
    assert!(!c.contains("Secure"), "plain http must not set Secure: {c}");

    // Behind https: __Host- prefix and Secure.
    let t = TestApp::with_config(|c| {
        c.public_url = url::Url::parse("https://app.example.com").unwrap()
    })
    .await;
    let page = t.get("/signup").await;
    let nonce = page
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(nonce.starts_with("__Host-csrf="), "{nonce}");
    let csrf = scrape_csrf(&page.body);
    let body = format!(
        "csrf={csrf}&name=Ana&email=ana%40x.test&password=correct+horse+battery&business=X+Clinic&slug=x-clinic&plan=starter&accept_policy=yes"
    );
    let r = t
        .request(
            Request::post("/signup")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", &nonce)
                .header("sec-fetch-site", "same-origin")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let sid = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-sid="))
        .expect("__Host- session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(sid.contains(attr), "{sid}");
    }
}

fn scrape_csrf(html: &str) -> String {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse(r#"input[name="csrf"]"#).unwrap();
    doc.select(&sel)
        .next()
        .unwrap()
        .value()
        .attr("value")
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn csrf_missing_forged_or_cross_site_is_refused() {
    let w = World::new().await;
    let base = &w.server.base;
    // No token.
    let r = w
        .owner
        .post(
            "/t/clinic-a/members/invite",
            &[("email", "x@a.test"), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body
            .contains("This form expired or came from another site")
    );
    // A token for another session.
    let other = w.client();
    let foreign = other.get("/login").await.csrf();
    let r = w
        .owner
        .post(
            "/t/clinic-a/members/invite",
            &[
                ("csrf", &foreign),
                ("email", "x@a.test"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    // A valid token but sent cross-site (Fetch Metadata), or from a foreign Origin.
    let token = w.owner.get("/t/clinic-a/members").await.csrf();
    for (h, v) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
    ] {
        let r = w
            .owner
            .http
            .post(format!("{base}/t/clinic-a/members/invite"))
            .header(h, v)
            .form(&[
                ("csrf", token.as_str()),
                ("email", "x@a.test"),
                ("role", "viewer"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{h}: {v}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invitations")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(n, 0, "a refused request created something");
    // The same token, same-origin, works.
    let r = w
        .owner
        .http
        .post(format!("{base}/t/clinic-a/members/invite"))
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("csrf", token.as_str()),
            ("email", "x@a.test"),
            ("role", "viewer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn idle_and_absolute_timeouts_use_the_clock() {
    let w = World::new().await;
    assert_eq!(w.owner.get("/t/clinic-a").await.status, 200);
    w.t.clock.advance(Duration::minutes(29));
    assert_eq!(
        w.owner.get("/t/clinic-a").await.status,
        200,
        "active within 30 min"
    );
    w.t.clock.advance(Duration::minutes(31));
    assert!(
        w.owner.get("/t/clinic-a").await.is_login_redirect(),
        "idle 31 min"
    );

    // Active every 20 minutes: still ends at 12 hours.
    let c = w.client();
    assert_eq!(c.log_in("owner@a.test", PASSWORD).await.status, 303);
    for _ in 0..35 {
        w.t.clock.advance(Duration::minutes(20));
        assert_eq!(c.get("/t/clinic-a").await.status, 200);
    }
    w.t.clock.advance(Duration::minutes(20)); // 12 h
    assert!(
        c.get("/t/clinic-a").await.is_login_redirect(),
        "absolute 12 h"
    );
}

#[tokio::test]
async fn reset_link_is_single_use_and_expires() {
    let w = World::new().await;
    let _viewer = w.add_member("vi@a.test", "viewer").await;
    let uid = w.t.user_id("vi@a.test").await;
    let issue = || async {
        let r = w
            .owner
            .submit(
                "/t/clinic-a/members",
                &format!("/t/clinic-a/members/{uid}/reset-link"),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let link = r.input_value("new-link").unwrap();
        format!("/reset/{}", link.rsplit('/').next().unwrap())
    };
    let path = issue().await;
    let c = w.client();
    let r = c
        .submit(&path, &path, &[("password", "a brand new secret")])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        c.log_in("vi@a.test", "a brand new secret").await.status,
        303
    );
    // Used once: gone.
    let again = w.client();
    assert!(
        again
            .get(&path)
            .await
            .body
            .contains("invalid, expired or already used")
    );
    let csrf = again.get("/login").await.csrf();
    let r = again
        .post(
            &path,
            &[("csrf", &csrf), ("password", "another new secret")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("invalid, expired or already used"));
    // A fresh link expires after an hour.
    let path = issue().await;
    w.t.clock.advance(Duration::minutes(61));
    let late = w.client();
    let page = late.get(&path).await;
    assert!(page.body.contains("invalid, expired or already used"));
    // Posting anyway (with a valid token for this visitor) is refused server-side too.
    let csrf = late.get("/login").await.csrf();
    let r = late
        .post(&path, &[("csrf", &csrf), ("password", "too late secret!")])
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        w.client()
            .log_in("vi@a.test", "too late secret!")
            .await
            .status,
        422
    );
}

/// Every tenant URL and form of tenant B answers 404 to a member of tenant A only.
#[tokio::test]
async fn a_user_of_tenant_a_gets_404_on_tenant_b() {
    let w = World::new().await;
    w.other_tenant().await;
    let b_uid = w.t.user_id("bea@b.test").await.to_string();
    let token = w.owner.get("/t/clinic-a").await.csrf();
    for path in [
        "/t/clinic-b",
        "/t/clinic-b/members",
        "/t/clinic-b/settings",
        "/t/clinic-b/audit",
        "/t/no-such-tenant",
    ] {
        let r = w.owner.get(path).await;
        assert_eq!(r.status, 404, "GET {path}");
    }
    let posts = [
        "/t/clinic-b/members/invite".to_owned(),
        format!("/t/clinic-b/members/{b_uid}/role"),
        format!("/t/clinic-b/members/{b_uid}/remove"),
        format!("/t/clinic-b/members/{b_uid}/reset-link"),
        "/t/clinic-b/settings".to_owned(),
    ];
    for path in &posts {
        let r = w
            .owner
            .post(
                path,
                &[
                    ("csrf", &token),
                    ("email", "evil@a.test"),
                    ("role", "owner"),
                    ("name", "Hacked"),
                    ("time_zone", "UTC"),
                    ("language", "en"),
                ],
            )
            .await;
        assert_eq!(r.status, 404, "POST {path}");
    }
    // Nothing changed in B.
    let (name, members): (String, i64) = sqlx::query_as(
        "SELECT t.name, (SELECT count(*) FROM memberships m WHERE m.tenant_id = t.id) FROM tenants t WHERE slug = 'clinic-b'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!((name.as_str(), members), ("Clinic B", 1));
}

#[tokio::test]
async fn row_level_security_is_forced_and_fails_closed() {
    let t = TestApp::new().await;
    // Catalog: every table with a tenant_id column has RLS enabled AND forced, except the
    // global ones DESIGN.md lists.
    let global = [
        "tenants",
        "invitations",
        "password_resets",
        "jobs",
        "channel_routes",
        "stripe_events",
    ];
    let unforced: Vec<String> = sqlx::query_scalar(
        r#"SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
             AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"#,
    )
    .fetch_all(&t.owner)
    .await
    .unwrap();
    let unexpected: Vec<&String> = unforced
        .iter()
        .filter(|t| !global.contains(&t.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "tenant tables without FORCE RLS: {unexpected:?}"
    );
    // The app role can't bypass it.
    let privileged: bool = sqlx::query_scalar(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&t.state.db)
    .await
    .unwrap();
    assert!(!privileged);
    // And the server refuses to run as a role that could.
    assert!(crate::db::refuse_privileged_role(&t.owner).await.is_err());

    // Two tenants with data.
    let w = World::new().await;
    w.other_tenant().await;
    let pool = &w.t.state.db;
    let tenant_tables: Vec<String> = sqlx::query_scalar(
        r#"SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relforcerowsecurity"#,
    )
    .fetch_all(&w.t.owner)
    .await
    .unwrap();
    assert!(tenant_tables.len() >= 3);
    for table in &tenant_tables {
        // No tenant set: nothing visible, on a plain pooled connection.
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} visible without a tenant");
    }
    let a_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-a'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let b_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = 'clinic-b'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let mut tx = crate::db::begin_tenant(pool, a_id).await.unwrap();
    let seen: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM audit_log")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec![a_id]);
    // WITH CHECK: can't write a row into B while scoped to A.
    let err = sqlx::query("INSERT INTO tenant_settings (tenant_id, updated_at) VALUES ($1, now())")
        .bind(b_id)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();
    // After the transaction the setting is gone from the pooled connection.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // The audit log is append-only for the app role.
    let mut tx = crate::db::begin_tenant(pool, a_id).await.unwrap();
    let err = sqlx::query("UPDATE audit_log SET action = 'x'")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
}

#[tokio::test]
async fn viewer_and_reviewer_cannot_reach_admin_actions() {
    let w = World::new().await;
    let viewer = w.add_member("vi@a.test", "viewer").await;
    let reviewer = w.add_member("re@a.test", "reviewer").await;
    let owner_id = w.t.user_id("owner@a.test").await.to_string();
    for c in [&viewer, &reviewer] {
        assert_eq!(c.get("/t/clinic-a").await.status, 200);
        assert_eq!(c.get("/t/clinic-a/members").await.status, 200);
        assert_eq!(c.get("/t/clinic-a/settings").await.status, 403);
        assert_eq!(c.get("/t/clinic-a/audit").await.status, 403);
        let token = c.get("/t/clinic-a").await.csrf();
        for path in [
            "/t/clinic-a/members/invite".to_owned(),
            format!("/t/clinic-a/members/{owner_id}/role"),
            format!("/t/clinic-a/members/{owner_id}/remove"),
            "/t/clinic-a/settings".to_owned(),
        ] {
            let r = c
                .post(
                    &path,
                    &[("csrf", &token), ("email", "z@a.test"), ("role", "viewer")],
                )
                .await;
            assert_eq!(r.status, 403, "{path}");
        }
    }
    // Admin navigation isn't even shown to a viewer.
    assert!(
        !viewer
            .get("/t/clinic-a")
            .await
            .body
            .contains("/t/clinic-a/settings")
    );
}

#[tokio::test]
async fn members_roles_last_owner_and_removal() {
    let w = World::new().await;
    let admin = w.add_member("ad@a.test", "admin").await;
    let rev = w.add_member("re@a.test", "reviewer").await;
    let id = |email: &'static str| {
        let pool = w.t.owner.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT id::text FROM users WHERE email = $1")
                .bind(email)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (owner_id, rev_id) = (id("owner@a.test").await, id("re@a.test").await);

    // An admin can't touch the owner or make owners.
    let r = admin
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{owner_id}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status, 422);
    let r = admin
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{rev_id}/role"),
            &[("role", "owner")],
        )
        .await;
    assert!(r.body.contains("Only an owner can grant"));
    // The last owner can't demote themself.
    let r = w
        .owner
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{owner_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("at least one owner"));
    // Role change works.
    let r = admin
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{rev_id}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(r.status, 303);
    // Removal ends the member's sessions at once.
    assert_eq!(rev.get("/t/clinic-a").await.status, 200);
    let r = admin
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{rev_id}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(rev.get("/t/clinic-a").await.is_login_redirect());
    // Audit trail of it all.
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(&w.t.owner)
        .await
        .unwrap();
    for a in [
        "tenant.created",
        "member.invited",
        "member.joined",
        "member.role_changed",
        "member.removed",
    ] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_revoked_invitation_link_stops_working_at_once() {
    let w = World::new().await;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/members",
            "/t/clinic-a/members/invite",
            &[("email", "new@a.test"), ("role", "reviewer")],
        )
        .await;
    let link = r.input_value("new-link").unwrap();
    let path = format!("/invite/{}", link.rsplit('/').next().unwrap());
    assert!(
        !w.client()
            .get(&path)
            .await
            .body
            .contains("invalid, expired")
    );
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM invitations")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    let action = format!("/t/clinic-a/invitations/{id}/revoke");
    // The pending list offers it, behind a confirmation.
    let page = w.owner.get("/t/clinic-a/members").await;
    let doc = scraper::Html::parse_document(&page.body);
    let sel = scraper::Selector::parse(&format!(r#"form[action="{action}"]"#)).unwrap();
    let form = doc
        .select(&sel)
        .next()
        .expect("a revoke form for the invitation");
    assert!(form.value().attr("data-confirm").is_some());
    // A reviewer cannot withdraw it; another tenant's admin does not even find it.
    let reviewer = w.add_member("re@a.test", "reviewer").await;
    let r = reviewer.submit("/t/clinic-a/members", &action, &[]).await;
    assert_eq!(r.status, 403);
    let b = w.other_tenant().await;
    let r = b
        .submit(
            "/t/clinic-b/members",
            &format!("/t/clinic-b/invitations/{id}/revoke"),
            &[],
        )
        .await;
    assert!(r.set_cookies.join(";").contains("members.invitation_gone"));
    assert!(
        !w.client()
            .get(&path)
            .await
            .body
            .contains("invalid, expired")
    );

    let r = w.owner.submit("/t/clinic-a/members", &action, &[]).await;
    assert_eq!(r.status, 303);
    assert!(
        r.set_cookies
            .join(";")
            .contains("members.invitation_revoked")
    );
    // The link is dead: shown as invalid, and accepting it creates no account.
    let stranger = w.client();
    assert!(stranger.get(&path).await.body.contains("invalid, expired"));
    // (The dead link's page has no form; a token from the login page, as a script would.)
    let csrf = stranger.get("/login").await.csrf();
    let r = stranger
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("name", "New"),
                ("password", PASSWORD),
                ("accept_policy", "yes"),
            ],
        )
        .await;
    assert_ne!(r.status, 303);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'new@a.test'")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(users, 0);
    assert!(
        !w.owner
            .get("/t/clinic-a/members")
            .await
            .body
            .contains(&action)
    );
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT actor_label FROM audit_log WHERE action = 'member.invitation_revoked' AND subject = $1",
    )
    .bind(id.to_string())
    .fetch_all(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(audited, vec!["owner@a.test".to_owned()]);
    // Twice: said plainly, not claimed again.
    let r = w.owner.submit("/t/clinic-a/members", &action, &[]).await;
    assert!(r.set_cookies.join(";").contains("members.invitation_gone"));
}

#[tokio::test]
async fn a_user_in_two_tenants_can_switch() {
    let w = World::new().await;
    let b = w.other_tenant().await;
    // Bea invites Ana (who already has an account) into B.
    let r = b
        .submit(
            "/t/clinic-b/members",
            "/t/clinic-b/members/invite",
            &[("email", "owner@a.test"), ("role", "admin")],
        )
        .await;
    let link = r.input_value("new-link").unwrap();
    let path = format!("/invite/{}", link.rsplit('/').next().unwrap());
    let r = w.owner.submit(&path, &path, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let chooser = w.owner.get("/app").await;
    assert!(chooser.body.contains("/t/clinic-a") && chooser.body.contains("/t/clinic-b"));
    assert_eq!(w.owner.get("/t/clinic-b/settings").await.status, 200);
    // Admin in B can't issue a reset link for Bea... and B's admin can't reset Ana, who also
    // belongs to A (that would let one tenant take over an account with power elsewhere).
    let ana_id = w.t.user_id("owner@a.test").await.to_string();
    let r = b
        .submit(
            "/t/clinic-b/members",
            &format!("/t/clinic-b/members/{ana_id}/reset-link"),
            &[],
        )
        .await;
    assert!(
        r.body.contains("belongs to other workspaces"),
        "{}",
        r.status
    );
}

#[tokio::test]
async fn throttling_kicks_in_and_survives_redis_down() {
    for redis_down in [false, true] {
        let t = TestApp::with_config(|c| {
            if redis_down {
                c.redis_url = Some(secrecy::SecretString::from("redis://127.0.0.1:1/0"));
            }
        })
        .await;
        let server = t.spawn().await;
        let c = Client::new(&server);
        assert_eq!(
            c.sign_up("Ana", "ana@x.test", "X Clinic", "x-clinic")
                .await
                .status,
            303
        );
        let attacker = Client::new(&server);
        let mut throttled_at = None;
        for i in 1..=8 {
            let r = attacker.log_in("ana@x.test", "not the password").await;
            if r.status == 429 {
                throttled_at = Some(i);
                break;
            }
            assert_eq!(r.status, 422);
        }
        let at =
            throttled_at.unwrap_or_else(|| panic!("never throttled (redis down: {redis_down})"));
        // Redis: 5 failures allowed; local fallback is stricter (3).
        assert_eq!(
            at,
            if redis_down { 4 } else { 6 },
            "redis down: {redis_down}"
        );
        // Even the right password is refused while throttled.
        let r = attacker.log_in("ana@x.test", PASSWORD).await;
        assert_eq!(r.status, 429);
    }
}

/// Posts clinic-a's settings form: name "Clínica Ana", `time_zone`, English, and `hours`
/// (`("mon_open", "08:00")`, …).
async fn save_settings(w: &World, time_zone: &str, hours: &[(&str, &str)]) -> Page {
    let mut fields = vec![
        ("name", "Clínica Ana"),
        ("time_zone", time_zone),
        ("language", "en"),
    ];
    fields.extend_from_slice(hours);
    w.owner
        .submit("/t/clinic-a/settings", "/t/clinic-a/settings", &fields)
        .await
}

#[tokio::test]
async fn settings_are_validated_and_saved() {
    let w = World::new().await;
    let r = save_settings(&w, "Mars/Olympus", &[]).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("Unknown time zone"));
    let monday = [("mon_open", "08:00"), ("mon_close", "18:00")];
    let saturday_closing_first = [("sat_open", "09:00"), ("sat_close", "08:00")];
    let r = save_settings(
        &w,
        "America/Recife",
        &[&monday[..], &saturday_closing_first[..]].concat(),
    )
    .await;
    assert!(r.body.contains("Closing time must be after opening time"));
    let r = save_settings(&w, "America/Recife", &monday).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = w.owner.get("/t/clinic-a/settings").await;
    assert!(page.body.contains("Settings saved."));
    assert!(page.body.contains(r#"value="America/Recife""#));
    assert!(page.body.contains(r#"name="mon_open" value="08:00""#));
    assert!(page.body.contains("Clínica Ana"));
}

#[tokio::test]
async fn audit_log_detects_tampering() {
    let w = World::new().await;
    w.add_member("vi@a.test", "viewer").await;
    let page = w.owner.get("/t/clinic-a/audit").await;
    assert!(page.body.contains("Integrity verified"), "{}", page.body);
    assert!(page.body.contains("member.invited"));
    // Someone with database access edits an entry (the app role itself can't).
    sqlx::query(
        "UPDATE audit_log SET subject = 'someone-else@a.test' WHERE action = 'member.invited'",
    )
    .execute(&w.t.owner)
    .await
    .unwrap();
    let page = w.owner.get("/t/clinic-a/audit").await;
    assert!(
        page.body.contains("Integrity check FAILED"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn changed_policy_is_shown_at_next_login_and_acceptance_recorded() {
    let w = World::new().await;
    sqlx::query("UPDATE users SET accepted_policy_version = '2026-03-10'")
        .execute(&w.t.owner)
        .await
        .unwrap();
    let c = w.client();
    let r = c.log_in("owner@a.test", PASSWORD).await;
    assert!(
        r.location.as_deref().unwrap().starts_with("/policy"),
        "{:?}",
        r.location
    );
    let page = c.get(r.location.as_deref().unwrap()).await;
    assert!(page.body.contains("Our privacy policy has changed"));
    let r = c
        .submit(
            r.location.as_deref().unwrap(),
            "/policy",
            &[("next", "/app")],
        )
        .await;
    assert_eq!(r.status, 303);
    let v: String = sqlx::query_scalar(
        "SELECT accepted_policy_version FROM users WHERE email = 'owner@a.test'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(v, POLICY_VERSION);
    let n = w.t.audit_count("policy.accepted").await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn browser_signs_up_invites_a_colleague_who_logs_in() {
    let t = TestApp::new().await;
    let server = t.spawn().await;
    let b = Browser::start().await;
    let c = &b.client;
    c.goto(&server.url("/signup")).await.unwrap();
    for (id, v) in [
        ("name", "Ana"),
        ("email", "ana@clinic.test"),
        ("password", PASSWORD),
        ("business", "Clínica Sol"),
        ("slug", ""),
    ] {
        b.el(&format!("#{id}")).await.send_keys(v).await.unwrap();
    }
    b.el("#accept_policy").await.click().await.unwrap();
    b.screenshot("signup").await;
    b.el("form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(b.wait_text("h1", "Overview").await, "Overview");
    // A new tenant's overview leads with its next steps.
    assert!(
        b.text("#next-steps")
            .await
            .contains("Connect your WhatsApp number")
    );
    b.screenshot("overview-next-steps").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/t/clinica-sol")
    );
    b.screenshot("dashboard").await;

    c.goto(&server.url("/t/clinica-sol/members")).await.unwrap();
    b.el("#invite-email")
        .await
        .send_keys("bea@clinic.test")
        .await
        .unwrap();
    b.el(r#"form[action$="/members/invite"] button"#)
        .await
        .click()
        .await
        .unwrap();
    let link = b
        .el("#new-link")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    b.screenshot("members").await;
    // Log out, then accept as the colleague.
    b.el(r#"form[action="/logout"] button"#)
        .await
        .click()
        .await
        .unwrap();
    // Wait for the logout to land (its response clears the session cookie).
    b.wait_text("h1", "WhatsApp replies your patients can trust")
        .await;
    let path = format!("/invite/{}", link.rsplit('/').next().unwrap());
    c.goto(&server.url(&path)).await.unwrap();
    b.el("#name").await.send_keys("Bea").await.unwrap();
    b.el("#password").await.send_keys(PASSWORD).await.unwrap();
    b.el("#accept_policy").await.click().await.unwrap();
    b.el("form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(b.wait_text("h1", "Overview").await, "Overview");
    // And later logs in with the password they chose.
    b.el(r#"form[action="/logout"] button"#)
        .await
        .click()
        .await
        .unwrap();
    // Wait for the logout to land (its response clears the session cookie).
    b.wait_text("h1", "WhatsApp replies your patients can trust")
        .await;
    c.goto(&server.url("/login")).await.unwrap();
    b.el("#email")
        .await
        .send_keys("bea@clinic.test")
        .await
        .unwrap();
    b.el("#password").await.send_keys(PASSWORD).await.unwrap();
    b.el("form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(b.wait_text("h1", "Overview").await, "Overview");
    assert!(
        b.wait_text(".portal-main", "Reviewer")
            .await
            .contains("Reviewer")
    );
    b.close().await;
}

#[tokio::test]
async fn session_sweep_job_removes_dead_sessions_only() {
    let w = World::new().await;
    let c = w.client();
    assert_eq!(c.log_in("owner@a.test", PASSWORD).await.status, 303);
    crate::jobs::schedule_periodic(&w.t.state).await.unwrap();
    crate::jobs::schedule_periodic(&w.t.state).await.unwrap(); // idempotent
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'session_sweep' AND state = 'pending'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(pending, 1);
    // Revoke one session; a day later the sweep deletes it and the idle one.
    w.owner
        .submit("/account", "/account/sessions/revoke-all", &[])
        .await;
    w.t.clock.advance(Duration::hours(2));
    crate::jobs::run_due(&w.t.state).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, 2, "nothing is deleted before its day has passed");
    w.t.clock.advance(Duration::hours(23));
    crate::jobs::schedule_periodic(&w.t.state).await.unwrap();
    crate::jobs::run_due(&w.t.state).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, 2, "the next session sweep is an hour out");
    w.t.clock.advance(Duration::hours(1));
    crate::jobs::run_due(&w.t.state).await.unwrap();
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'session_sweep' AND state = 'done'",
    )
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(done, 2);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn demo_tenant_is_seeded_once_and_can_log_in() {
    let t = TestApp::new().await;
    assert!(crate::demo::seed(&t.state).await.unwrap());
    assert!(
        !crate::demo::seed(&t.state).await.unwrap(),
        "second run changes nothing"
    );
    let server = t.spawn().await;
    let c = Client::new(&server);
    assert_eq!(
        c.log_in(crate::demo::DEMO_EMAIL, crate::demo::DEMO_PASSWORD)
            .await
            .status,
        303
    );
    assert!(c.get_follow("/app").await.body.contains("Clínica Demo"));
    // Sample conversations and knowledge, once; the worker drafts answers from the knowledge.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&t.owner)
        .await
        .unwrap();
    assert_eq!(n, 4, "seeding twice stored each sample once");
    let k: i64 = sqlx::query_scalar("SELECT count(*) FROM knowledge_entries")
        .fetch_one(&t.owner)
        .await
        .unwrap();
    assert_eq!(k, 5);
    crate::jobs::run_due(&t.state).await.unwrap();
    let review = c.get("/t/demo-clinic/review").await;
    assert!(
        review.body.contains("sábados das 8h às 12h"),
        "the offline answerer drafted from the demo knowledge"
    );
    // Never in production.
    let prod = TestApp::with_config(|c| c.env = crate::config::Environment::Production).await;
    assert!(crate::demo::seed(&prod.state).await.is_err());
}

/// The current TOTP code of `email`'s (sealed) secret, as the authenticator app would show.
async fn current_code(t: &TestApp, email: &str) -> String {
    use crate::clock::Clock;
    let (id, sealed): (uuid::Uuid, Vec<u8>) =
        sqlx::query_as("SELECT id, totp_secret FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(&t.owner)
            .await
            .unwrap();
    let secret = t
        .state
        .keys
        .open_platform(crate::crypto::Aad::new("users", "totp_secret", id), &sealed)
        .await
        .unwrap();
    crate::auth::totp::code_at(&secret, t.clock.now().unix_timestamp() as u64)
}

#[tokio::test]
async fn totp_enrolment_login_replay_and_recovery_codes() {
    let w = World::new().await;
    let setup = w.owner.submit("/account", "/account/2fa/start", &[]).await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    assert!(setup.body.contains("<svg"), "QR code rendered");
    // The secret is stored sealed, not in clear.
    let raw: Vec<u8> =
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE email = 'owner@a.test'")
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    let shown = scraper::Html::parse_document(&setup.body)
        .select(&scraper::Selector::parse("#totp-secret").unwrap())
        .next()
        .unwrap()
        .text()
        .collect::<String>();
    assert!(!String::from_utf8_lossy(&raw).contains(&shown));

    let wrong = w
        .owner
        .submit("/account", "/account/2fa/confirm", &[("code", "000000")])
        .await;
    assert_eq!(wrong.status, 422);
    let code = current_code(&w.t, "owner@a.test").await;
    let done = w
        .owner
        .submit("/account", "/account/2fa/confirm", &[("code", &code)])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let doc = scraper::Html::parse_document(&done.body);
    let codes: Vec<String> = doc
        .select(&scraper::Selector::parse("#recovery-codes code").unwrap())
        .map(|e| e.text().collect())
        .collect();
    assert_eq!(codes.len(), 10);

    // Login now needs the second factor.
    let c = w.client();
    let r = c.log_in("owner@a.test", PASSWORD).await;
    assert!(
        r.location.as_deref().unwrap().starts_with("/login/2fa"),
        "{:?}",
        r.location
    );
    assert!(
        c.get("/t/clinic-a").await.is_login_redirect(),
        "no session before the code"
    );
    // The code used for enrolment can't be replayed.
    let r = c
        .submit("/login/2fa", "/login/2fa", &[("code", &code)])
        .await;
    assert_eq!(r.status, 422, "replayed code accepted");
    w.t.clock.advance(Duration::seconds(30));
    let fresh = current_code(&w.t, "owner@a.test").await;
    let r = c
        .submit("/login/2fa", "/login/2fa", &[("code", &fresh)])
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(c.get("/t/clinic-a").await.status, 200);

    // A recovery code works once.
    for expect_ok in [true, false] {
        let c = w.client();
        c.log_in("owner@a.test", PASSWORD).await;
        let r = c
            .submit(
                "/login/2fa",
                "/login/2fa",
                &[("code", &codes[0].to_uppercase())],
            )
            .await;
        assert_eq!(
            r.status == 303,
            expect_ok,
            "recovery code use #{}",
            if expect_ok { 1 } else { 2 }
        );
    }
}

#[tokio::test]
async fn five_wrong_codes_lock_the_second_factor() {
    let w = World::new().await;
    w.owner.submit("/account", "/account/2fa/start", &[]).await;
    let code = current_code(&w.t, "owner@a.test").await;
    w.owner
        .submit("/account", "/account/2fa/confirm", &[("code", &code)])
        .await;
    w.t.clock.advance(Duration::seconds(60));
    // Five wrong codes, each with a fresh password step (a challenge allows five attempts).
    let c = w.client();
    c.log_in("owner@a.test", PASSWORD).await;
    for _ in 0..5 {
        let r = c
            .submit("/login/2fa", "/login/2fa", &[("code", "123456")])
            .await;
        assert_eq!(r.status, 422);
    }
    let c = w.client();
    c.log_in("owner@a.test", PASSWORD).await;
    let good = current_code(&w.t, "owner@a.test").await;
    let r = c
        .submit("/login/2fa", "/login/2fa", &[("code", &good)])
        .await;
    assert!(r.body.contains("Too many wrong codes"), "{}", r.status);
    // Fifteen minutes later it works.
    w.t.clock.advance(Duration::minutes(16));
    let c = w.client();
    c.log_in("owner@a.test", PASSWORD).await;
    let good = current_code(&w.t, "owner@a.test").await;
    assert_eq!(
        c.submit("/login/2fa", "/login/2fa", &[("code", &good)])
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn two_factor_off_needs_a_current_code() {
    let w = World::new().await;
    w.owner.submit("/account", "/account/2fa/start", &[]).await;
    let code = current_code(&w.t, "owner@a.test").await;
    let done = w
        .owner
        .submit("/account", "/account/2fa/confirm", &[("code", &code)])
        .await;
    let recovery: Vec<String> = scraper::Html::parse_document(&done.body)
        .select(&scraper::Selector::parse("#recovery-codes code").unwrap())
        .map(|e| e.text().collect())
        .collect();
    let enabled = || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT totp_enabled_at IS NOT NULL FROM users WHERE email = 'owner@a.test'",
        )
        .fetch_one(&w.t.owner)
        .await
        .unwrap()
    };
    // A session and the password alone are not enough; nor is a wrong or replayed code.
    w.t.clock.advance(Duration::seconds(30));
    for code in ["", "000000", code.as_str()] {
        let r = w
            .owner
            .submit(
                "/account",
                "/account/2fa/disable",
                &[("password", PASSWORD), ("code", code)],
            )
            .await;
        assert_eq!(r.status, 422, "code {code:?}");
        assert!(enabled().await, "2FA turned off with code {code:?}");
    }
    // A fresh code with a wrong password isn't either.
    let fresh = current_code(&w.t, "owner@a.test").await;
    let r = w
        .owner
        .submit(
            "/account",
            "/account/2fa/disable",
            &[("password", "not it"), ("code", &fresh)],
        )
        .await;
    assert_eq!(r.status, 422);
    // A recovery code with the password is.
    let r = w
        .owner
        .submit(
            "/account",
            "/account/2fa/disable",
            &[("password", PASSWORD), ("code", &recovery[0])],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!enabled().await);
}
