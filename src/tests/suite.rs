//! The test suite's own promises: it cleans up after itself, and the binary fails fast.

use sqlx::Connection;

use crate::tests::harness;

#[tokio::test]
async fn databases_of_ended_runs_are_dropped_and_those_of_live_runs_kept() {
    // Make sure this process's run (and its lock) exists.
    let _ = harness::fresh_database().await;
    let url = harness::database_url();
    let admin_url = {
        let mut u = url::Url::parse(&url).unwrap();
        u.set_path("/postgres");
        u.to_string()
    };
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    // Two earlier runs: one still going (another session holds its lock), one ended.
    let (live_run, ended_run) = (2_000_000_001u32, 2_000_000_002u32);
    let mut other_process = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock(7302, $1)")
        .bind(live_run as i32)
        .execute(&mut other_process)
        .await
        .unwrap();
    let live_db = format!("sigmaai_t_r{live_run}_{}", uuid::Uuid::new_v4().simple());
    let ended_db = format!("sigmaai_t_r{ended_run}_{}", uuid::Uuid::new_v4().simple());
    for db in [&live_db, &ended_db] {
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let dropped = harness::sweep_ended_runs(&mut admin).await;
    assert!(dropped.contains(&ended_db), "{dropped:?}");
    assert!(!dropped.contains(&live_db));
    let left: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname = ANY($1)")
            .bind(vec![live_db.clone(), ended_db.clone()])
            .fetch_all(&mut admin)
            .await
            .unwrap();
    assert_eq!(left, vec![live_db.clone()]);
    // The live run ends; the next sweep takes its databases too.
    other_process.close().await.unwrap();
    harness::eventually("the ended run's databases are swept", || async {
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        harness::sweep_ended_runs(&mut admin)
            .await
            .contains(&live_db)
    })
    .await;
}

#[tokio::test]
async fn sigmaai_all_on_a_busy_port_exits_at_once_with_the_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let data = std::env::temp_dir().join(format!("sigmaai-busy-{}", uuid::Uuid::new_v4()));
    let child = tokio::process::Command::new(crate::tests::harness::sigmaai_bin())
        .arg("all")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", harness::database_url())
        .env("SIGMAAI_BIND", addr.to_string())
        .env("SIGMAAI_DATA_DIR", &data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The 60 s only guard against a hang (which is what this used to do).
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("sigmaai all hung on a busy port")
        .unwrap();
    let _ = std::fs::remove_dir_all(&data);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&addr.to_string()) && err.contains("SIGMAAI_BIND"),
        "{err}"
    );
    drop(taken);
}

/// Every `.route("…", get(..).post(..))` in `src/http` and `src/api`: (METHOD, pattern).
pub(super) fn routes_in_source() -> Vec<(String, String)> {
    let mut all = routes_under("src/http");
    all.extend(routes_under("src/api"));
    all.sort();
    all.dedup();
    all
}

/// The routes declared in the `.rs` files under `dir` (relative to the crate).
pub(super) fn routes_under(dir: &str) -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        &mut files,
    );
    let mut routes = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        for chunk in src.split(".route(").skip(1) {
            let Some(start) = chunk.find('"') else {
                continue;
            };
            let rest = &chunk[start + 1..];
            let Some(end) = rest.find('"') else { continue };
            let pattern = &rest[..end];
            // The handlers: the rest of this `.route(` call, up to its closing parenthesis.
            let mut depth = 1;
            let close = chunk
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(chunk.len(), |(i, _)| i);
            let Some(body) = chunk.get(start + 1 + end..close) else {
                continue;
            };
            for m in ["get", "post", "put", "patch", "delete"] {
                let called = body.match_indices(&format!("{m}(")).any(|(i, _)| {
                    i == 0
                        || !body.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && body.as_bytes()[i - 1] != b'_'
                });
                if called {
                    routes.push((m.to_uppercase(), pattern.to_owned()));
                }
            }
        }
    }
    routes.sort();
    routes.dedup();
    routes
}

/// Whether a concrete path matches a route pattern (`{param}` is one segment).
fn matches(pattern: &str, path: &str) -> bool {
    let (p, q): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == q.len()
        && p.iter()
            .zip(&q)
            .all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
}

/// Run by `scripts/test` after the whole suite with `SIGMAAI_TEST_ROUTE_LOG` set: every
/// route in the router was requested by some test.
#[tokio::test]
#[ignore = "run by scripts/test after the whole suite"]
async fn every_route_was_requested_during_the_run() {
    let log_file = std::env::var("SIGMAAI_TEST_ROUTE_LOG")
        .expect("SIGMAAI_TEST_ROUTE_LOG names the log the suite wrote (scripts/test sets it)");
    let log = std::fs::read_to_string(&log_file).expect("the route log of the run");
    let requested: Vec<(&str, &str)> = log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(m, p)| (m, p.split('?').next().unwrap_or(p)))
        .collect();
    let routes = routes_in_source();
    assert!(routes.len() > 50, "route parsing found only {routes:?}");
    let missing: Vec<(String, String)> = routes
        .into_iter()
        .filter(|(m, pat)| !requested.iter().any(|(rm, rp)| rm == m && matches(pat, rp)))
        .collect();
    assert!(
        missing.is_empty(),
        "routes no test requested (add a test that uses each): {missing:#?}"
    );
}
