//! Password guessing: counted before the password is looked at, so concurrency buys the
//! attacker nothing, and locked per (account, IP) so the attacker can't lock the owner out.

use crate::tests::{
    client::{Client, PASSWORD},
    harness::{Server, TestApp},
};

/// A client whose requests come from `ip` (one trusted proxy in front, as in production).
fn client_from(server: &Server, ip: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    Client {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap(),
        base: server.base.clone(),
    }
}

async fn app_with_ana(redis_down: bool) -> (TestApp, Server) {
    let t = TestApp::with_config(|c| {
        c.trusted_proxies = 1;
        if redis_down {
            c.redis_url = Some(secrecy::SecretString::from("redis://127.0.0.1:1/0"));
        }
    })
    .await;
    let server = t.spawn().await;
    let c = client_from(&server, "198.51.100.1");
    assert_eq!(
        c.sign_up("Ana", "ana@x.test", "X Clinic", "x-clinic")
            .await
            .status,
        303
    );
    (t, server)
}

#[tokio::test]
async fn forty_parallel_wrong_passwords_get_at_most_five_checks() {
    for redis_down in [false, true] {
        let (_t, server) = app_with_ana(redis_down).await;
        // Each guess with its own CSRF-bearing login page, then all posted at once.
        let mut guesses = Vec::new();
        for _ in 0..40 {
            let c = client_from(&server, "203.0.113.9");
            let csrf = c.get("/login").await.csrf();
            guesses.push((c, csrf));
        }
        let results = futures::future::join_all(guesses.iter().map(|(c, csrf)| async move {
            c.post(
                "/login",
                &[
                    ("csrf", csrf.as_str()),
                    ("email", "ana@x.test"),
                    ("password", "a wrong guess"),
                ],
            )
            .await
        }))
        .await;
        // 422 is a password that was checked and found wrong; 429 never reached the check.
        let checked = results.iter().filter(|r| r.status == 422).count();
        let refused = results.iter().filter(|r| r.status == 429).count();
        let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
        assert_eq!(checked + refused, 40, "unexpected statuses: {statuses:?}");
        let limit = if redis_down { 3 } else { 5 };
        assert!(
            checked <= limit,
            "{checked} of 40 concurrent guesses reached the password check (redis down: {redis_down})"
        );
        assert!(checked >= 1);
    }
}

#[tokio::test]
async fn an_attacker_locking_the_account_does_not_lock_out_its_owner() {
    let (_t, server) = app_with_ana(false).await;
    let attacker = client_from(&server, "203.0.113.9");
    for _ in 0..5 {
        assert_eq!(attacker.log_in("ana@x.test", "guess").await.status, 422);
    }
    assert_eq!(attacker.log_in("ana@x.test", "guess").await.status, 429);
    // Even the right password is refused to the attacker's address...
    assert_eq!(attacker.log_in("ana@x.test", PASSWORD).await.status, 429);
    // ...while Ana, from her clinic's address, logs in.
    let ana = client_from(&server, "198.51.100.1");
    assert_eq!(ana.log_in("ana@x.test", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn guesses_from_many_addresses_meet_the_slower_account_limit() {
    let (_t, server) = app_with_ana(false).await;
    let mut refused_at = None;
    // Four guesses from each of many addresses: under the per-address limit every time.
    'outer: for n in 0..20 {
        let c = client_from(&server, &format!("203.0.113.{n}"));
        for _ in 0..4 {
            let status = c.log_in("ana@x.test", "guess").await.status;
            if status == 429 {
                refused_at = Some(n);
                break 'outer;
            }
            assert_eq!(status, 422);
        }
    }
    // 30 per hour for the account: the 31st guess, from the 8th address, is refused.
    assert_eq!(refused_at, Some(7), "account-wide limit never reached");
}
