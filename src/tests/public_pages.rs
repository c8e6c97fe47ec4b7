//! Skeleton: health, public pages in both languages, security headers, error pages.

use crate::{error::AppError, i18n::Lang};
use axum::{Router, body::Body, http::Request, routing::get};

use crate::tests::{browser::Browser, harness::TestApp};

const PUBLIC_PAGES: &[&str] = &["/", "/pricing", "/privacy", "/terms", "/dpa"];

fn get_in(path: &str, lang: Lang) -> Request<Body> {
    Request::get(path)
        .header("accept-language", lang.code())
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn health_and_readiness_report_real_dependencies() {
    let t = TestApp::new().await;
    let r = t.get("/healthz").await;
    assert_eq!(r.status, 200);
    let r = t.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["postgres"], "ok");
    assert_eq!(
        v["redis"],
        if harness_has_redis() {
            "ok"
        } else {
            "not_configured"
        }
    );

    // Redis unreachable: still ready (no data lives only in Redis), and the state is reported.
    let t = TestApp::with_config(|c| {
        c.redis_url = Some(secrecy::SecretString::from("redis://127.0.0.1:1/0"))
    })
    .await;
    let v = t.get("/readyz").await.json();
    assert_eq!(v["redis"], "down");
    assert_eq!(v["postgres"], "ok");

    // PostgreSQL gone: not ready.
    t.state.db.close().await;
    let r = t.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["postgres"], "down");
}

fn harness_has_redis() -> bool {
    crate::tests::harness::redis_url().is_some()
}

#[tokio::test]
async fn every_public_page_renders_in_both_languages() {
    let t = TestApp::new().await;
    for path in PUBLIC_PAGES {
        let en = t.request(get_in(path, Lang::En)).await;
        let pt = t.request(get_in(path, Lang::PtBr)).await;
        assert_eq!(en.status, 200, "{path}");
        assert_eq!(pt.status, 200, "{path}");
        assert!(en.body.contains(r#"<html lang="en">"#), "{path}");
        assert!(pt.body.contains(r#"<html lang="pt-BR">"#), "{path}");
        assert!(!en.body.contains("??"), "{path} has a missing translation");
        assert!(!pt.body.contains("??"), "{path} has a missing translation");
        assert_ne!(en.body, pt.body, "{path} is not translated");
    }
    let en = t.request(get_in("/", Lang::En)).await.body;
    let pt = t.request(get_in("/", Lang::PtBr)).await.body;
    assert!(en.contains("WhatsApp replies your patients can trust"));
    assert!(pt.contains("Respostas de WhatsApp em que seus pacientes podem confiar"));
}

#[tokio::test]
async fn language_switch_sets_a_cookie_and_returns_to_the_page() {
    let t = TestApp::new().await;
    let r = t.get("/lang?to=pt-BR&next=/pricing").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/pricing"));
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with("lang=pt-BR"), "{cookie}");
    // The cookie wins over the browser's Accept-Language.
    let page = t
        .request(
            Request::get("/pricing")
                .header("accept-language", "en")
                .header("cookie", "lang=pt-BR")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(page.body.contains("Planos e preços"));
    // No open redirect.
    let r = t.get("/lang?to=en&next=//evil.example/").await;
    assert_eq!(r.header("location"), Some("/"));
}

#[tokio::test]
async fn pricing_comes_from_the_static_plans_with_retention() {
    let t = TestApp::new().await;
    let body = t.request(get_in("/pricing", Lang::En)).await.body;
    let pt = t.request(get_in("/pricing", Lang::PtBr)).await.body;
    // Prices and counts written the way each language writes them.
    for (en, pt_br) in [("$49", "US$ 49"), ("$149", "US$ 149"), ("$499", "US$ 499")] {
        assert!(body.contains(en) && pt.contains(pt_br), "{en} / {pt_br}");
    }
    assert!(body.contains("100,000") && pt.contains("100.000"));
    for plan in crate::domain::plans::PLANS {
        assert!(body.contains(&format!("plan-{}", plan.id)), "{}", plan.id);
        assert!(body.contains(&format!(
            "Messages kept for {} year(s) by default",
            plan.retention_years
        )));
    }
}

#[tokio::test]
async fn privacy_policy_is_served_complete_and_versioned() {
    let t = TestApp::new().await;
    let body = t.request(get_in("/privacy", Lang::En)).await.body;
    assert!(body.contains(&format!(
        "Version {}",
        crate::domain::policy::POLICY_VERSION
    )));
    // Promises of the seed policy that the served text must keep.
    for promise in [
        "Data Processor",
        "Cryptographic deletion",
        "within 7 days",
        "90 days",
        "30 days",
        "AES-256",
        "TLS 1.2",
        "support@sigmaintel.io",
        "Evolution API",
        "Meta",
        "Stripe",
        "MCP",
        "does not use Tenant conversation data to train",
    ] {
        assert!(body.contains(promise), "privacy policy lost: {promise}");
    }
    let pt = t.request(get_in("/privacy", Lang::PtBr)).await.body;
    assert!(pt.contains("Política de privacidade"));
    assert!(pt.contains("LGPD"));
}

/// No page may load anything from another host: no script, style, font, image or analytics.
#[tokio::test]
async fn no_page_references_a_third_party_host() {
    let t = TestApp::new().await;
    let attr = regex_lite_attr();
    for path in PUBLIC_PAGES.iter().chain(["/nope"].iter()) {
        for lang in Lang::ALL {
            let body = t.request(get_in(path, lang)).await.body;
            for url in attr(&body) {
                let local = url.starts_with('/') && !url.starts_with("//")
                    || url.starts_with('#')
                    || url.starts_with("mailto:");
                assert!(local, "{path} references {url}");
            }
        }
    }
}

/// Every src= and href= value in a page.
fn regex_lite_attr() -> impl Fn(&str) -> Vec<String> {
    |html: &str| {
        let doc = scraper::Html::parse_document(html);
        let sel = scraper::Selector::parse("[src], [href], [action]").unwrap();
        doc.select(&sel)
            .flat_map(|e| {
                ["src", "href", "action"]
                    .into_iter()
                    .filter_map(|a| e.value().attr(a).map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let t = TestApp::new().await;
    for path in ["/", "/nope", "/static/app.css", "/healthz"] {
        let r = t.get(path).await;
        let csp = r.header("content-security-policy").expect(path);
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("http"), "CSP names another origin: {csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        assert!(r.header("x-request-id").is_some());
        // Plain-http public URL: no HSTS.
        assert!(r.header("strict-transport-security").is_none());
    }
    let t = TestApp::with_config(|c| {
        c.public_url = url::Url::parse("https://app.example.com").unwrap()
    })
    .await;
    let r = t.get("/").await;
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains")
    );
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_replaced_by_ours() {
    let t = TestApp::new().await;
    let r = t
        .request(
            axum::http::Request::get("/nope")
                .header("x-request-id", "forged-id-0000")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let id = r.header("x-request-id").unwrap().to_owned();
    assert_ne!(id, "forged-id-0000");
    assert_eq!(id.len(), 32, "a UUIDv7 in simple form: {id}");
    assert!(r.body.contains(&id), "the error page shows our id");
    assert!(!r.body.contains("forged-id-0000"));
}

#[tokio::test]
async fn not_found_renders_a_friendly_page_with_request_id() {
    let t = TestApp::new().await;
    let r = t.request(get_in("/no/such/page", Lang::PtBr)).await;
    assert_eq!(r.status, 404);
    assert!(
        r.body.contains("Não encontramos essa página."),
        "{}",
        r.body
    );
    let id = r.header("x-request-id").unwrap();
    assert!(r.body.contains(id), "request id not shown");
}

#[tokio::test]
async fn a_500_shows_only_a_request_id() {
    let t = TestApp::new().await;
    let extra: Router<crate::wiring::App> = Router::new()
        .route(
            "/boom",
            get(|| async {
                Err::<(), _>(AppError::Internal(anyhow::anyhow!(
                    "db password=hunter2 at /srv/secret.rs:42"
                )))
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret panic payload hunter2");
                }
                "unreachable"
            }),
        );
    let app = crate::build_app_with(t.wiring.clone(), extra);
    for path in ["/boom", "/panic"] {
        let resp = tower::ServiceExt::oneshot(
            app.clone(),
            Request::get(path).body(Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 500, "{path}");
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("Something went wrong on our side."), "{body}");
        assert!(body.contains(&id));
        assert!(!body.contains("hunter2"), "{path} leaked internals");
        assert!(!body.contains("secret.rs"));
    }
}

#[tokio::test]
async fn webhook_errors_are_json_not_pages() {
    let t = TestApp::new().await;
    let r = t.get("/webhooks/unknown/x").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "error.not_found");
    assert!(r.json()["request_id"].is_string());
}

#[tokio::test]
async fn browser_loads_the_landing_page() {
    let t = TestApp::new().await;
    let server = t.spawn().await;
    let b = Browser::start().await;
    b.goto(&server.url("/")).await;
    let h1 = b.text("h1").await;
    assert_eq!(h1, "WhatsApp replies your patients can trust");
    b.screenshot("landing").await;
    b.goto(&server.url("/pricing")).await;
    assert!(b.text("main").await.contains("Enterprise"));
    b.screenshot("pricing").await;
    b.close().await;
}

#[tokio::test]
async fn a_binary_copied_alone_serves_its_files_hashed_immutable_and_compressed() {
    // The built binary, alone in an empty directory: what it serves is what it carries.
    let dir = std::env::temp_dir().join(format!("sigmaai-alone-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("sigmaai");
    std::fs::copy(crate::tests::harness::sigmaai_bin(), &bin).unwrap();
    let db = crate::tests::harness::fresh_database().await;
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let _child = tokio::process::Command::new(&bin)
        .arg("serve")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            crate::tests::harness::with_db(&crate::tests::harness::database_url(), &db),
        )
        .env("SIGMAAI_BIND", addr.to_string())
        .env("SIGMAAI_DATA_DIR", dir.join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    crate::tests::harness::eventually("the copied binary answers /readyz", || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let doc = scraper::Html::parse_document(&page);
    let href = |sel: &str, attr: &str| {
        doc.select(&scraper::Selector::parse(sel).unwrap())
            .next()
            .and_then(|e| e.value().attr(attr).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {sel}"))
    };
    let css = href(r#"link[rel="stylesheet"]"#, "href");
    let js = href("script[src]", "src");
    for (url, file, kind) in [
        (&css, "app.css", "text/css"),
        (&js, "app.js", "text/javascript"),
    ] {
        let (stem, ext) = file.split_once('.').unwrap();
        let hash = url
            .strip_prefix(&format!("/static/{stem}."))
            .and_then(|r| r.strip_suffix(&format!(".{ext}")))
            .unwrap_or_else(|| panic!("{url} does not name its content"));
        assert!(hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_hexdigit()));
        let r = http.get(format!("{base}{url}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert!(
            h("content-type").starts_with(kind),
            "{url}: {}",
            h("content-type")
        );
        assert_eq!(h("cache-control"), "public, max-age=31536000, immutable");
        let etag = h("etag");
        let on_disk =
            std::fs::read(format!("{}/static/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert_eq!(r.bytes().await.unwrap().to_vec(), on_disk, "{file}");
        // A revalidation with the ETag costs no body.
        let r = http
            .get(format!("{base}{url}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
    }
    assert!(js.ends_with(".js") && css.ends_with(".css"));
    assert_eq!(
        http.get(format!("{base}/static/app.00000000.css"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // HTML and CSS travel compressed to a browser that accepts it.
    for (path, enc) in [("/", "br"), ("/privacy", "gzip"), (css.as_str(), "gzip")] {
        let r = http
            .get(format!("{base}{path}"))
            .header("accept-encoding", enc)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers()
                .get("content-encoding")
                .and_then(|v| v.to_str().ok()),
            Some(enc),
            "{path}"
        );
        let body = r.bytes().await.unwrap();
        if enc == "gzip" {
            assert_eq!(&body[..2], &[0x1f, 0x8b], "{path} is gzip");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
