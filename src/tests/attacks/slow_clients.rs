//! Slowloris: hundreds of half-sent requests must neither starve other clients nor hold
//! their sockets past the timeouts.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::tests::harness::TestApp;

/// Reads until the server closes the connection (EOF or reset); panics if it never does.
async fn closed_by_server(mut s: TcpStream) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a 408 or 400 before closing is fine
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a stalled connection was never closed");
}

#[tokio::test]
async fn half_sent_requests_neither_starve_others_nor_stay_open() {
    let t = TestApp::with_config(|c| {
        c.limits.header_read_timeout = Duration::from_secs(2);
        c.limits.body_read_timeout = Duration::from_secs(2);
    })
    .await;
    let server = t.spawn().await;
    let addr = server.base.trim_start_matches("http://").to_owned();

    // 600 connections whose headers never finish, and 50 whose bodies never finish.
    let mut stalled = Vec::new();
    for _ in 0..600 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(s);
    }
    for _ in 0..50 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\nemail=a",
        )
        .await
        .unwrap();
        stalled.push(s);
    }

    // Someone else is served meanwhile.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("/healthz did not answer while 650 requests were stalled");
    assert_eq!(r.status(), 200);

    // And every stalled socket is closed by the server, not held open.
    futures::future::join_all(stalled.into_iter().map(closed_by_server)).await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let t = TestApp::with_config(|c| c.limits.header_read_timeout = Duration::from_secs(2)).await;
    let server = t.spawn().await;
    let mut s = TcpStream::connect(server.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Then silence: the kept-alive connection ends after the idle timeout.
    closed_by_server(s).await;
}
