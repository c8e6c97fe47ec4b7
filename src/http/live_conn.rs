//! Live-update streams without hyper's per-connection buffers (issue #22).
//!
//! An idle SSE stream served by hyper keeps its connection's read and write buffers (8 KiB
//! each, with no setting to shrink them) for as long as the page is open: most of a
//! stream's memory. So the listener looks at each new connection's first request itself:
//!
//! - when it is `GET /t/{slug}/events HTTP/1.1` without a body, the head is parsed here
//!   (`httparse`) into an `http::Request` that runs through the SAME application as every
//!   other request (request id, session, CSRF, role checks, security headers, metrics);
//!   - an event stream (200, `text/event-stream`) is then written to the socket here, chunk
//!     by chunk, until the stream ends or the client goes away (EOF, or any byte it sends:
//!     a stream takes no further requests on its connection);
//!   - any other answer (a redirect to the login page, a 403/404) is written here with its
//!     length, and the connection continues under hyper for the requests that follow;
//! - everything else (another path, HTTP/1.0, a body, an unparseable or oversized head) goes
//!   to hyper untouched: the bytes read so far are replayed to it first ([`Replay`]).
//!
//! The head is read under the same header-read timeout hyper applies, and is bounded by
//! [`MAX_HEAD`] (past it hyper gets the connection and answers as it does today).

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{self, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version, header},
};
use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
};
use tower::ServiceExt;

use crate::shutdown::Shutdown;

/// The live-update route (`routes::events`): `/t/{slug}/events`.
const PREFIX: &[u8] = b"GET /t/";
const SUFFIX: &str = "/events";
/// A stream request's head bigger than this goes to hyper (which applies its own bounds).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Headers a stream request may carry here (more: hyper handles it).
const MAX_HEADERS: usize = 64;
/// A client that takes no bytes for this long is gone: its stream is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the listener needs to serve one connection.
pub(crate) struct Conn {
    pub(crate) app: Router,
    pub(crate) http: hyper::server::conn::http1::Builder,
    pub(crate) graceful: hyper_util::server::graceful::Watcher,
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown: Shutdown,
}

/// Serves one accepted connection: live-update streams here, the rest through hyper.
pub(crate) async fn serve(conn: Conn, mut stream: TcpStream, peer: SocketAddr) {
    let mut buf = BytesMut::new();
    let sniffed = tokio::select! {
        s = tokio::time::timeout(conn.header_read_timeout, sniff(&mut stream, &mut buf)) => s,
        // Stopping: a connection that sent no complete request yet is simply closed.
        () = conn.shutdown.wait() => return,
    };
    let head = match sniffed {
        Ok(Ok(Sniffed::Stream(head))) => head,
        Ok(Ok(Sniffed::Other)) => {
            return Box::pin(hyper_serve(conn, stream, buf.freeze(), peer)).await;
        }
        // Too slow (the header-read timeout), reset, or closed before a request: done.
        Ok(Err(_)) | Err(_) => return,
    };
    let Some(request) = to_request(&buf[..head], peer) else {
        return Box::pin(hyper_serve(conn, stream, buf.freeze(), peer)).await;
    };
    buf.advance(head);
    let close_after = wants_close(request.headers());
    let response = match Box::pin(conn.app.clone().oneshot(request)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if is_event_stream(&response) {
        drop(buf);
        // Pipelined requests behind a stream would wait for its end, which never comes: a
        // stream's connection serves only the stream.
        let _ = stream_out(&mut stream, response).await;
        let _ = stream.shutdown().await;
        return;
    }
    if write_whole(&mut stream, response).await.is_err() {
        return;
    }
    if close_after {
        let _ = stream.shutdown().await;
        return;
    }
    // The page's next requests on this connection: hyper's.
    Box::pin(hyper_serve(conn, stream, buf.freeze(), peer)).await;
}

enum Sniffed {
    /// A live-update request's whole head: its length in the buffer.
    Stream(usize),
    /// Anything else: hyper's.
    Other,
}

/// Reads until the first request is known to be a live-update one (then until its head is
/// complete) or known not to be.
async fn sniff(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<Sniffed> {
    let mut line_checked = false;
    loop {
        if !line_checked {
            let n = buf.len().min(PREFIX.len());
            if buf[..n] != PREFIX[..n] {
                return Ok(Sniffed::Other);
            }
            if let Some(end) = find(buf, b"\r\n") {
                if !is_stream_line(&buf[..end]) {
                    return Ok(Sniffed::Other);
                }
                line_checked = true;
            }
        }
        if line_checked && let Some(end) = find(buf, b"\r\n\r\n") {
            return Ok(Sniffed::Stream(end + 4));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Sniffed::Other);
        }
        buf.reserve(1024);
        if stream.read_buf(buf).await? == 0 {
            // Closed mid-head: hyper answers a partial request as it always has.
            return if buf.is_empty() {
                Err(io::ErrorKind::UnexpectedEof.into())
            } else {
                Ok(Sniffed::Other)
            };
        }
    }
}

/// `GET /t/{slug}/events HTTP/1.1` (a query string allowed, as the router allows it).
fn is_stream_line(line: &[u8]) -> bool {
    let Ok(line) = std::str::from_utf8(line) else {
        return false;
    };
    let Some(target) = line
        .strip_prefix("GET ")
        .and_then(|l| l.strip_suffix(" HTTP/1.1"))
    else {
        return false;
    };
    let path = target.split('?').next().unwrap_or_default();
    path.strip_prefix("/t/")
        .and_then(|p| p.strip_suffix(SUFFIX))
        .is_some_and(|slug| !slug.is_empty() && !slug.contains('/'))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The request as hyper would have built it; `None` for anything this path leaves to hyper
/// (a body, an upgrade, a header it could not carry).
fn to_request(head: &[u8], peer: SocketAddr) -> Option<Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        _ => return None,
    }
    if parsed.method != Some("GET") || parsed.version != Some(1) {
        return None;
    }
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(parsed.path?)
        .version(Version::HTTP_11)
        .body(Body::empty())
        .ok()?;
    let map = request.headers_mut();
    for h in parsed.headers.iter() {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let has_body = map.contains_key(header::TRANSFER_ENCODING)
        || map
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes() != b"0");
    if has_body || map.contains_key(header::UPGRADE) || !map.contains_key(header::HOST) {
        return None;
    }
    request.extensions_mut().insert(ConnectInfo(peer));
    Some(request)
}

fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"))
}

fn is_event_stream(response: &Response<Body>) -> bool {
    response.status() == StatusCode::OK
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The status line and headers, as hyper writes them (plus its `date`).
fn head_bytes(status: StatusCode, headers: &HeaderMap, framing: (&str, &str)) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let (name, value) = framing;
    if !name.is_empty() {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

async fn write_timed(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

/// Writes the stream's head, then each frame as an HTTP/1.1 chunk, until the body ends (the
/// instance is stopping) or the client sends anything or goes away.
async fn stream_out(stream: &mut TcpStream, response: Response<Body>) -> io::Result<()> {
    let (parts, mut body) = response.into_parts();
    write_timed(
        stream,
        &head_bytes(
            parts.status,
            &parts.headers,
            ("transfer-encoding", "chunked"),
        ),
    )
    .await?;
    drop(parts);
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    let mut chunk = Vec::with_capacity(data.len() + 16);
                    chunk.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    chunk.extend_from_slice(&data);
                    chunk.extend_from_slice(b"\r\n");
                    write_timed(stream, &chunk).await?;
                }
                // The stream ended: the browser reconnects (to another instance if this one
                // is stopping).
                None => return write_timed(stream, b"0\r\n\r\n").await,
                Some(Err(e)) => return Err(io::Error::other(e)),
            },
            // EOF, a reset, or bytes a stream's connection never takes: the page went away.
            _ = stream.read(&mut probe) => return Ok(()),
        }
    }
}

/// A complete (non-stream) response with its length: redirects and refusals are small.
async fn write_whole(stream: &mut TcpStream, response: Response<Body>) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let len = bytes.len().to_string();
    let bodyless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let framing = if bodyless {
        ("", "")
    } else {
        ("content-length", len.as_str())
    };
    let mut out = head_bytes(parts.status, &parts.headers, framing);
    if !bodyless {
        out.extend_from_slice(&bytes);
    }
    write_timed(stream, &out).await
}

/// The connection under hyper, the bytes already read replayed first.
async fn hyper_serve(conn: Conn, stream: TcpStream, read: Bytes, peer: SocketAddr) {
    let svc = conn
        .app
        .map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
    let io = hyper_util::rt::TokioIo::new(Replay { read, stream });
    let served = conn
        .http
        .serve_connection(io, hyper_util::service::TowerToHyperService::new(svc));
    // A timed-out or reset connection is the client's business, not an error of ours.
    if let Err(e) = conn.graceful.watch(served).await {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// A socket whose first bytes were already read: they are read again first.
struct Replay {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(out.remaining());
            out.put_slice(&self.read[..n]);
            self.read.advance(n);
            if self.read.is_empty() {
                // Give the memory back now, not when the connection ends.
                self.read = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, out)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_stream_route_is_taken() {
        assert!(is_stream_line(b"GET /t/clinic-a/events HTTP/1.1"));
        assert!(is_stream_line(b"GET /t/clinic-a/events?x=1 HTTP/1.1"));
        for other in [
            &b"GET /t/clinic-a/events HTTP/1.0"[..],
            b"GET /t//events HTTP/1.1",
            b"GET /t/a/b/events HTTP/1.1",
            b"GET /t/clinic-a/inbox HTTP/1.1",
            b"POST /t/clinic-a/events HTTP/1.1",
            b"GET /t/clinic-a/events/x HTTP/1.1",
        ] {
            assert!(!is_stream_line(other), "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn requests_with_a_body_or_an_upgrade_are_left_to_hyper() {
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let ok = b"GET /t/a/events HTTP/1.1\r\nHost: x\r\nCookie: s=1\r\n\r\n";
        let r = to_request(ok, peer).unwrap();
        assert_eq!(r.uri(), "/t/a/events");
        assert_eq!(r.headers()["cookie"], "s=1");
        for head in [
            &b"GET /t/a/events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"[..],
            b"GET /t/a/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /t/a/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n",
            b"GET /t/a/events HTTP/1.1\r\n\r\n",
        ] {
            assert!(to_request(head, peer).is_none());
        }
    }
}
