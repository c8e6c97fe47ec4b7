//! Live-update streams over real sockets (issue #22). A connection whose first request is
//! the stream is served by the listener's own path (`http::live_conn`), any later request on
//! a kept-alive connection by hyper: the two must be indistinguishable to a browser. Also:
//! the process keeps ONE Redis subscriber connection for live updates and key invalidation.

use std::{collections::BTreeMap, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use crate::tests::{
    client::World,
    harness::{Server, TestApp, eventually},
};

/// Against a hung test only (a loaded machine is slow, never wrong).
const GUARD: Duration = Duration::from_secs(60);

/// One client connection, read the way a browser's HTTP/1.1 stack reads it.
struct Conn {
    r: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What must match between the two paths: every header but the date and the request
    /// id's value (both differ per response), and the body's length framing.
    fn comparable(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (n, v) in &self.headers {
            let v = match n.as_str() {
                "date" | "content-length" => continue,
                "x-request-id" => "(present)".to_owned(),
                _ => v.clone(),
            };
            out.entry(n.clone()).or_default().push(v);
        }
        out
    }
}

fn get(path: &str, cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n{cookie}\r\n"
    )
}

impl Conn {
    async fn open(server: &Server) -> Conn {
        let s = TcpStream::connect(server.base.trim_start_matches("http://"))
            .await
            .unwrap();
        Conn {
            r: BufReader::new(s),
        }
    }

    async fn send(&mut self, bytes: &str) {
        self.r.get_mut().write_all(bytes.as_bytes()).await.unwrap();
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(GUARD, self.r.read_line(&mut line))
            .await
            .expect("the server went silent")
            .unwrap();
        line
    }

    async fn head(&mut self) -> Head {
        let status_line = self.line().await;
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP/1.1 status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let (n, v) = line.trim_end().split_once(':').unwrap();
            headers.push((n.to_ascii_lowercase(), v.trim().to_owned()));
        }
        Head { status, headers }
    }

    /// One chunk of a chunked body; `None` at the last chunk.
    async fn chunk(&mut self) -> Option<Vec<u8>> {
        let size = self.line().await;
        let size = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {size:?}"));
        let mut data = vec![0u8; size + 2];
        tokio::time::timeout(GUARD, self.r.read_exact(&mut data))
            .await
            .expect("the server went silent")
            .unwrap();
        assert_eq!(&data[size..], b"\r\n", "a chunk ends with CRLF");
        data.truncate(size);
        (size > 0).then_some(data)
    }

    /// A whole (non-stream) body, by its length or its chunks.
    async fn body(&mut self, head: &Head) -> String {
        let mut body = Vec::new();
        if head.get("transfer-encoding") == Some("chunked") {
            while let Some(c) = self.chunk().await {
                body.extend(c);
            }
        } else {
            let len: usize = head.get("content-length").unwrap_or("0").parse().unwrap();
            body.resize(len, 0);
            self.r.read_exact(&mut body).await.unwrap();
        }
        String::from_utf8_lossy(&body).into_owned()
    }

    /// The stream's text until it holds `needle` (SSE frames arrive as chunks).
    async fn stream_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        while !seen.contains(needle) {
            let c = self.chunk().await.expect("the stream ended");
            seen.push_str(&String::from_utf8_lossy(&c));
        }
        seen
    }

    /// Reads until the server closes the connection (EOF or reset); panics if it never does.
    async fn closed_by_server(mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(GUARD, async {
            let mut buf = [0u8; 1024];
            loop {
                match self.r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => rest.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server never closed the connection");
        rest
    }

    /// The same request, but as the second one on a kept-alive connection: hyper serves it.
    async fn through_hyper(server: &Server, request: &str) -> (Conn, Head) {
        let mut c = Conn::open(server).await;
        c.send(&get("/healthz", None)).await;
        let h = c.head().await;
        assert_eq!(h.status, 200);
        c.body(&h).await;
        c.send(request).await;
        let head = c.head().await;
        (c, head)
    }
}

/// The owner's session cookie (`name=value`), as the browser holds it after logging in.
async fn owner_cookie(t: &TestApp) -> String {
    let user = t.user_id("owner@a.test").await;
    let c = crate::http::session::start_session(&t.state, user, "test browser", "127.0.0.1")
        .await
        .unwrap();
    format!("{}={}", c.name(), c.value())
}

async fn tenant_id(t: &TestApp, slug: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(&t.owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stream_has_the_headers_it_has_through_hyper_and_carries_its_tenants_events() {
    let w = World::new().await;
    let cookie = owner_cookie(&w.t).await;
    let request = get("/t/clinic-a/events", Some(&cookie));

    let mut raw = Conn::open(&w.server).await;
    raw.send(&request).await;
    let head = raw.head().await;
    let (_kept, hyper) = Conn::through_hyper(&w.server, &request).await;

    assert_eq!((head.status, hyper.status), (200, 200));
    assert_eq!(head.get("content-type"), Some("text/event-stream"));
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    for security in [
        "content-security-policy",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
    ] {
        assert!(head.get(security).is_some(), "{security} missing: {head:?}");
    }
    assert_ne!(head.get("x-request-id"), hyper.get("x-request-id"));
    assert_eq!(head.comparable(), hyper.comparable());

    // The page hears its own tenant's changes, as SSE frames, and nobody else's.
    let live = &w.t.state.live;
    eventually("the instance listens on Redis", || async {
        live.redis_listening()
    })
    .await;
    let tenant = tenant_id(&w.t, "clinic-a").await;
    let other = uuid::Uuid::new_v4();
    live.publish(other, &crate::live::Event::Inbox).await;
    live.publish(tenant, &crate::live::Event::Review).await;
    let seen = raw.stream_until("\n\n").await;
    assert_eq!(seen, "event: change\ndata: {\"kind\":\"review\"}\n\n");
}

#[tokio::test]
async fn refusals_are_what_hyper_answers_and_the_connection_carries_on() {
    let w = World::new().await;
    w.other_tenant().await;
    let cookie = owner_cookie(&w.t).await;
    for (path, cookie, expected) in [
        // No session: to the login page.
        ("/t/clinic-a/events", None, 303),
        // Another tenant's stream, and a tenant that does not exist.
        ("/t/clinic-b/events", Some(cookie.as_str()), 404),
        ("/t/no-such-clinic/events", Some(cookie.as_str()), 404),
    ] {
        let request = get(path, cookie);
        let mut raw = Conn::open(&w.server).await;
        raw.send(&request).await;
        let head = raw.head().await;
        let body = raw.body(&head).await;
        let (mut kept, hyper) = Conn::through_hyper(&w.server, &request).await;
        let hyper_body = kept.body(&hyper).await;
        assert_eq!(head.status, expected, "{path}: {head:?}");
        assert_eq!(head.status, hyper.status, "{path}");
        assert_eq!(head.comparable(), hyper.comparable(), "{path}");
        assert_eq!(body.len(), hyper_body.len(), "{path}: the same page");
        // The browser's next request on that connection is served as usual.
        raw.send(&get("/healthz", None)).await;
        assert_eq!(raw.head().await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn a_closed_page_frees_its_stream() {
    let w = World::new().await;
    let cookie = owner_cookie(&w.t).await;
    let live = &w.t.state.live;
    let before = live.open_streams();
    let mut raw = Conn::open(&w.server).await;
    raw.send(&get("/t/clinic-a/events", Some(&cookie))).await;
    assert_eq!(raw.head().await.status, 200);
    eventually("the stream is open", || async {
        live.open_streams() == before + 1
    })
    .await;
    // The browser goes away without a word: the stream ends with it, no event needed.
    drop(raw);
    eventually("the stream was freed", || async {
        live.open_streams() == before
    })
    .await;

    // A stream's connection takes no further requests: a byte sent on it closes it too.
    let mut raw = Conn::open(&w.server).await;
    raw.send(&get("/t/clinic-a/events", Some(&cookie))).await;
    assert_eq!(raw.head().await.status, 200);
    raw.send(&get("/healthz", None)).await;
    raw.closed_by_server().await;
    eventually("that stream was freed too", || async {
        live.open_streams() == before
    })
    .await;
}

#[tokio::test]
async fn stopping_ends_open_streams_with_a_last_chunk() {
    let World { t, server, owner } = World::new().await;
    let cookie = owner_cookie(&t).await;
    let mut raw = Conn::open(&server).await;
    raw.send(&get("/t/clinic-a/events", Some(&cookie))).await;
    assert_eq!(raw.head().await.status, 200);
    drop((server, owner)); // shutdown begins
    let rest = raw.closed_by_server().await;
    assert!(
        String::from_utf8_lossy(&rest).ends_with("0\r\n\r\n"),
        "the stream ended properly (the browser reconnects): {rest:?}"
    );
}

#[tokio::test]
async fn half_sent_stream_requests_are_closed_and_others_fall_back_to_hyper() {
    let t = TestApp::with_config(|c| c.limits.header_read_timeout = Duration::from_secs(2)).await;
    let server = t.spawn().await;
    // Slowloris on the stream route: the header-read timeout closes each.
    let mut stalled = Vec::new();
    for _ in 0..100 {
        let mut c = Conn::open(&server).await;
        c.send("GET /t/clinic-a/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        stalled.push(c);
    }
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200, "others are served meanwhile");
    futures::future::join_all(stalled.into_iter().map(Conn::closed_by_server)).await;

    // A head past the raw path's bound, or one with a body, is hyper's, answered as before
    // (here: not logged in, to the login page).
    let big = format!(
        "GET /t/clinic-a/events HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let with_body = "GET /t/clinic-a/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    for request in [big.as_str(), with_body] {
        let mut c = Conn::open(&server).await;
        c.send(request).await;
        let head = c.head().await;
        assert_eq!(head.status, 303, "{head:?}");
        assert!(
            head.get("location")
                .is_some_and(|l| l.starts_with("/login"))
        );
    }
}

/// A Redis server of this test's own, so its client list holds only this process's
/// connections.
struct PrivateRedis {
    url: String,
    _child: tokio::process::Child,
}

async fn private_redis() -> PrivateRedis {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (scripts/test installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    eventually("the private Redis answers", || async {
        client.get_multiplexed_async_connection().await.is_ok()
    })
    .await;
    PrivateRedis { url, _child: child }
}

/// `(id, sub)` of each connection in SUBSCRIBE mode.
async fn subscriber_connections(url: &str) -> Vec<(String, String)> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(k))
                    .unwrap_or_default()
                    .to_owned()
            };
            let (sub, psub) = (field("sub="), field("psub="));
            (sub != "0" || psub != "0").then(|| (field("id="), sub))
        })
        .collect()
}

#[tokio::test]
async fn live_updates_and_key_invalidation_share_one_redis_subscriber_connection() {
    let redis = private_redis().await;
    let url = redis.url.clone();
    let t = TestApp::with_config(move |c| {
        c.redis_url = Some(secrecy::SecretString::from(url));
    })
    .await;
    let listening = || async { t.state.live.redis_listening() && t.state.keys.invalidation_live() };
    eventually("both listeners are subscribed", listening).await;
    let subs = subscriber_connections(&redis.url).await;
    assert_eq!(subs.len(), 1, "one subscriber connection: {subs:?}");
    assert_eq!(subs[0].1, "2", "on both channels");

    // Redis drops it: both listeners come back, still on one connection (a new one).
    let mut admin = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    let old = subs[0].0.clone();
    eventually("resubscribed on one new connection", || async {
        let now = subscriber_connections(&redis.url).await;
        listening().await && now.len() == 1 && now[0].0 != old && now[0].1 == "2"
    })
    .await;

    // And events flow over it again.
    let mut rx = t.state.live.subscribe();
    let tenant = uuid::Uuid::new_v4();
    t.state
        .live
        .publish(tenant, &crate::live::Event::Review)
        .await;
    let got = tokio::time::timeout(GUARD, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (tenant, crate::live::Event::Review));
}
