//! A cookie-keeping HTTP client against a real listener, submitting forms the way a browser
//! does: it reads the CSRF token out of the page that holds the form.

use reqwest::{Response, redirect::Policy};

use crate::tests::harness::{Server, TestApp};

pub(super) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

pub(super) struct Page {
    pub(crate) status: u16,
    pub(crate) location: Option<String>,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Page {
    async fn from(r: Response) -> Page {
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let headers = r.headers().clone();
        Page {
            status,
            location,
            set_cookies,
            headers,
            body: r.text().await.unwrap_or_default(),
        }
    }

    /// The CSRF token of the first form on the page.
    pub(super) fn csrf(&self) -> String {
        let doc = scraper::Html::parse_document(&self.body);
        let sel = scraper::Selector::parse(r#"input[name="csrf"]"#).unwrap();
        doc.select(&sel)
            .next()
            .and_then(|e| e.value().attr("value"))
            .unwrap_or_else(|| panic!("no csrf field on page:\n{}", self.body))
            .to_owned()
    }

    /// The value of the (read-only) input with this id.
    pub(super) fn input_value(&self, id: &str) -> Option<String> {
        let doc = scraper::Html::parse_document(&self.body);
        let sel = scraper::Selector::parse(&format!("#{id}")).unwrap();
        doc.select(&sel)
            .next()
            .and_then(|e| e.value().attr("value"))
            .map(str::to_owned)
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn is_login_redirect(&self) -> bool {
        self.status == 303
            && self
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with("/login"))
    }
}

impl Client {
    pub(super) fn new(server: &Server) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .user_agent("sigmaai-tests")
                .build()
                .unwrap(),
            base: server.base.clone(),
        }
    }

    pub(super) async fn get(&self, path: &str) -> Page {
        Page::from(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Follows redirects (GET) until a non-redirect page.
    pub(super) async fn get_follow(&self, path: &str) -> Page {
        let mut p = self.get(path).await;
        let mut n = 0;
        while p.status == 303 || p.status == 302 || p.status == 307 {
            let to = p.location.clone().unwrap();
            p = self.get(&to).await;
            n += 1;
            assert!(n < 10, "redirect loop");
        }
        p
    }

    pub(super) async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Page::from(
            self.http
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Loads `page`, then posts `fields` plus that page's CSRF token to `action`.
    pub(super) async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get_follow(page).await.csrf();
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    /// Loads clinic-a's conversation page and posts one of its forms to
    /// `/t/clinic-a/conversations/{conv}/{action}` with that page's CSRF token.
    pub(super) async fn on_conversation(
        &self,
        conv: uuid::Uuid,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let page = format!("/t/clinic-a/conversations/{conv}");
        self.submit(&page, &format!("{page}/{action}"), fields)
            .await
    }

    /// Replies `text` from clinic-a's conversation page.
    pub(super) async fn reply(&self, conv: uuid::Uuid, text: &str) -> Page {
        self.on_conversation(conv, "reply", &[("text", text)]).await
    }

    pub(super) async fn sign_up(
        &self,
        name: &str,
        email: &str,
        business: &str,
        slug: &str,
    ) -> Page {
        self.submit(
            "/signup",
            "/signup",
            &[
                ("name", name),
                ("email", email),
                ("password", PASSWORD),
                ("business", business),
                ("slug", slug),
                ("plan", "clinic"),
                ("accept_policy", "yes"),
            ],
        )
        .await
    }

    pub(super) async fn log_in(&self, email: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("email", email), ("password", password)],
        )
        .await
    }
}

pub(super) const PASSWORD: &str = "correct horse battery";

/// A running app with one signed-up owner (`owner@a.test`, tenant `clinic-a`).
pub(super) struct World {
    pub(crate) t: TestApp,
    pub(crate) server: Server,
    pub(crate) owner: Client,
}

impl World {
    pub(super) async fn new() -> World {
        Self::with_config(|_| {}).await
    }

    /// A world whose config the caller adjusts first.
    pub(super) async fn with_config(adjust: impl FnOnce(&mut crate::config::Config)) -> World {
        let t = TestApp::with_config(adjust).await;
        let server = t.spawn().await;
        let owner = Client::new(&server);
        let r = owner
            .sign_up("Ana Owner", "owner@a.test", "Clinic A", "clinic-a")
            .await;
        assert_eq!(r.status, 303, "sign-up failed: {}", r.body);
        World { t, server, owner }
    }

    pub(super) fn client(&self) -> Client {
        Client::new(&self.server)
    }

    /// Another tenant on the same server: `clinic-b`, signed up by Bea (`bea@b.test`), whose
    /// logged-in client this returns.
    pub(super) async fn other_tenant(&self) -> Client {
        let b = self.client();
        let r = b.sign_up("Bea", "bea@b.test", "Clinic B", "clinic-b").await;
        assert_eq!(r.status, 303, "sign-up of clinic-b failed: {}", r.body);
        b
    }

    /// The owner adds a knowledge entry to clinic-a (`kind`: hours, price, …).
    pub(super) async fn add_knowledge(&self, kind: &str, title: &str, body: &str) {
        let r = self
            .owner
            .submit(
                "/t/clinic-a/knowledge",
                "/t/clinic-a/knowledge",
                &[("kind", kind), ("title", title), ("body", body)],
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
    }

    /// Invites `email` with `role` into clinic-a and has them accept with a new account.
    pub(super) async fn add_member(&self, email: &str, role: &str) -> Client {
        let r = self
            .owner
            .submit(
                "/t/clinic-a/members",
                "/t/clinic-a/members/invite",
                &[("email", email), ("role", role)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let link = r.input_value("new-link").expect("invitation link shown");
        let path = link
            .split_once("/invite/")
            .map(|(_, t)| format!("/invite/{t}"))
            .unwrap();
        let c = self.client();
        let r = c
            .submit(
                &path,
                &path,
                &[
                    ("name", "Colleague"),
                    ("password", PASSWORD),
                    ("accept_policy", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, 303, "accepting failed: {}", r.body);
        c
    }
}
