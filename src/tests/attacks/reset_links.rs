//! A reset link is a credential an admin holds for someone else's account. It must die the
//! moment the account could reach beyond the admin's tenant.

use crate::tests::client::{Client, PASSWORD, World};

const CHOSEN_BY_ADMIN: &str = "the admin chose this one";

async fn user_id(w: &World, email: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&w.t.owner)
        .await
        .unwrap()
}

/// clinic-a's owner issues a reset link for `uid` and keeps it.
async fn issue_link(w: &World, uid: uuid::Uuid) -> String {
    let r = w
        .owner
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{uid}/reset-link"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let link = r.input_value("new-link").expect("reset link shown");
    format!("/reset/{}", link.rsplit('/').next().unwrap())
}

/// The admin uses the link themselves, setting a password they know: 303 when it worked,
/// 0 when the link's page no longer even offers the form, else the refusal's status.
async fn admin_uses(w: &World, path: &str) -> u16 {
    let c = w.client();
    let page = c.get(path).await;
    if !page.body.contains(r#"name="csrf""#) {
        assert!(page.body.contains("invalid, expired or already used"));
        return 0;
    }
    c.post(
        path,
        &[("csrf", &page.csrf()), ("password", CHOSEN_BY_ADMIN)],
    )
    .await
    .status
}

/// Clinic B (owned by someone else) invites `email`, who accepts while logged in.
async fn join_clinic_b(w: &World, member: &Client, email: &str) {
    let b = w.client();
    assert_eq!(
        b.sign_up("Bea", "bea@b.test", "Clinic B", "clinic-b")
            .await
            .status,
        303
    );
    let r = b
        .submit(
            "/t/clinic-b/members",
            "/t/clinic-b/members/invite",
            &[("email", email), ("role", "admin")],
        )
        .await;
    let link = r.input_value("new-link").expect("invitation link");
    let path = format!("/invite/{}", link.rsplit('/').next().unwrap());
    let r = member.submit(&path, &path, &[]).await;
    assert_eq!(r.status, 303, "joining B failed: {}", r.body);
}

async fn audit_actions(w: &World) -> Vec<String> {
    sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(&w.t.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_link_dies_when_its_member_joins_another_tenant() {
    let w = World::new().await;
    let member = w.add_member("vi@a.test", "viewer").await;
    let path = issue_link(&w, user_id(&w, "vi@a.test").await).await;
    join_clinic_b(&w, &member, "vi@a.test").await;

    assert_ne!(admin_uses(&w, &path).await, 303, "the link still worked");
    let attacker = w.client();
    assert_eq!(
        attacker.log_in("vi@a.test", CHOSEN_BY_ADMIN).await.status,
        422
    );
    assert!(
        attacker.get("/t/clinic-b").await.is_login_redirect(),
        "the admin of A reached B"
    );
    // The member's own password still works, and their session was not ended.
    assert_eq!(member.get("/t/clinic-b").await.status, 200);
    assert_eq!(w.client().log_in("vi@a.test", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn a_link_dies_when_its_member_leaves_the_tenant() {
    let w = World::new().await;
    let _member = w.add_member("vi@a.test", "viewer").await;
    let uid = user_id(&w, "vi@a.test").await;
    let path = issue_link(&w, uid).await;
    let r = w
        .owner
        .submit(
            "/t/clinic-a/members",
            &format!("/t/clinic-a/members/{uid}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_ne!(admin_uses(&w, &path).await, 303);
    assert_eq!(
        w.client().log_in("vi@a.test", CHOSEN_BY_ADMIN).await.status,
        422
    );
}

#[tokio::test]
async fn a_link_dies_when_the_password_changes() {
    let w = World::new().await;
    let member = w.add_member("vi@a.test", "viewer").await;
    let path = issue_link(&w, user_id(&w, "vi@a.test").await).await;
    let r = member
        .submit(
            "/account",
            "/account/password",
            &[("current", PASSWORD), ("new", "the member's own new one")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_ne!(admin_uses(&w, &path).await, 303);
    assert_eq!(
        w.client()
            .log_in("vi@a.test", "the member's own new one")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn a_link_used_ends_every_session_and_is_audited() {
    let w = World::new().await;
    let member = w.add_member("vi@a.test", "viewer").await;
    assert_eq!(member.get("/t/clinic-a").await.status, 200);
    let path = issue_link(&w, user_id(&w, "vi@a.test").await).await;
    assert_eq!(admin_uses(&w, &path).await, 303);
    assert!(
        member.get("/t/clinic-a").await.is_login_redirect(),
        "the member's session survived a reset"
    );
    assert!(
        audit_actions(&w)
            .await
            .contains(&"member.password_reset".to_owned())
    );
}

#[tokio::test]
async fn a_refused_link_is_spent_and_the_refusal_audited() {
    let w = World::new().await;
    let member = w.add_member("vi@a.test", "viewer").await;
    let uid = user_id(&w, "vi@a.test").await;
    let path = issue_link(&w, uid).await;
    join_clinic_b(&w, &member, "vi@a.test").await;
    assert_ne!(admin_uses(&w, &path).await, 303);
    // Every unused link of the member ended when they joined B.
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM password_resets WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(uid)
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(live, 0);
    // A link minted straight into the table (as if issued before this fix) is refused at
    // use, and that refusal lands in A's audit log.
    let token = "x".repeat(43);
    sqlx::query(
        "INSERT INTO password_resets (id, user_id, tenant_id, token_hash, created_by, created_at, expires_at)
         SELECT gen_random_uuid(), $1, t.id, $2, NULL, now(), now() + interval '1 hour'
         FROM tenants t WHERE t.slug = 'clinic-a'",
    )
    .bind(uid)
    .bind(crate::auth::tokens::hash_link_token(&token))
    .execute(&w.t.owner)
    .await
    .unwrap();
    let path = format!("/reset/{token}");
    assert_ne!(admin_uses(&w, &path).await, 303);
    assert!(
        audit_actions(&w)
            .await
            .contains(&"member.reset_link_refused".to_owned())
    );
}
