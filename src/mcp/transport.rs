//! rmcp's streamable-HTTP client transport over *our* guarded reqwest 0.12 client.
//!
//! rmcp ships a `StreamableHttpClient` for reqwest 0.13 only (its `reqwest` feature), which
//! would put a second reqwest, hyper stack and — through `reqwest/rustls` — the aws-lc crypto
//! provider into the build next to our reqwest 0.12 + ring. More importantly, we need the
//! client the [`guard`](super::guard) builds (pinned resolver, no redirects, no proxies, time
//! caps). So this module implements rmcp's transport trait over that client:
//!
//! - POST carries the JSON-RPC message; the answer is JSON (`application/json`) or an SSE
//!   stream (`text/event-stream`), both read through a byte counter that fails past
//!   [`MAX_RESPONSE_BYTES`](super::guard::MAX_RESPONSE_BYTES).
//! - A 3xx is an error ([`TransportError::Redirect`]): redirects are never followed.
//! - The optional server-initiated GET stream is declined (`ServerDoesNotSupportSse`): we only
//!   need request/response (initialize, tools/list, tools/call), and an idle long-lived stream
//!   from a tenant's server would hold a connection for nothing.

use std::{
    borrow::Cow,
    collections::HashMap,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::{Stream, StreamExt, stream::BoxStream};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::streamable_http_client::{
        SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    },
};
use sse_stream::{Sse, SseStream};

const SESSION_HEADER: &str = "Mcp-Session-Id";

#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("HTTP error: {0}")]
    Http(#[source] reqwest::Error),
    #[error("the server answered with a redirect ({0}); redirects are not followed")]
    Redirect(u16),
    #[error("the server answered HTTP {0}")]
    Status(u16),
    #[error("the response exceeded {0} bytes")]
    TooLarge(usize),
}

/// The guarded client plus the per-response byte cap. `last_error` keeps a secret-free
/// description of the latest failure, since rmcp wraps transport errors in its own types.
#[derive(Clone)]
pub(crate) struct GuardedHttp {
    pub(crate) client: reqwest::Client,
    pub(crate) max_bytes: usize,
    pub(crate) last_error: Arc<std::sync::Mutex<Option<String>>>,
}

type Result<T> = std::result::Result<T, StreamableHttpError<TransportError>>;

fn http(e: reqwest::Error) -> StreamableHttpError<TransportError> {
    // reqwest's Display of a request error includes the URL: strip it (a URL may carry a
    // tenant's query-string token).
    StreamableHttpError::Client(TransportError::Http(e.without_url()))
}

/// A byte stream that fails once more than `max` bytes went through.
struct Capped<S> {
    inner: S,
    seen: usize,
    max: usize,
}

impl<S> Stream for Capped<S>
where
    S: Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    type Item = std::result::Result<bytes::Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.seen > self.max {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.seen += b.len();
                if self.seen > self.max {
                    let max = self.max;
                    Poll::Ready(Some(Err(std::io::Error::other(TransportError::TooLarge(
                        max,
                    )))))
                } else {
                    Poll::Ready(Some(Ok(b)))
                }
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(std::io::Error::other(e.without_url()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl GuardedHttp {
    fn capped(
        &self,
        resp: reqwest::Response,
    ) -> Capped<BoxStream<'static, reqwest::Result<bytes::Bytes>>> {
        Capped {
            inner: resp.bytes_stream().boxed(),
            seen: 0,
            max: self.max_bytes,
        }
    }

    async fn read_body(&self, resp: reqwest::Response) -> Result<Vec<u8>> {
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(StreamableHttpError::Client(TransportError::TooLarge(
                self.max_bytes,
            )));
        }
        let mut body = Vec::new();
        let mut s = self.capped(resp);
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(b) => body.extend_from_slice(&b),
                Err(_) if s.seen > s.max => {
                    return Err(StreamableHttpError::Client(TransportError::TooLarge(
                        self.max_bytes,
                    )));
                }
                Err(e) => return Err(StreamableHttpError::Io(e)),
            }
        }
        Ok(body)
    }

    fn headers(
        mut req: reqwest::RequestBuilder,
        auth: Option<String>,
        custom: HashMap<HeaderName, HeaderValue>,
    ) -> reqwest::RequestBuilder {
        if let Some(token) = auth {
            req = req.bearer_auth(token);
        }
        for (name, value) in custom {
            req = req.header(name, value);
        }
        req
    }
}

fn is(ct: Option<&HeaderValue>, mime: &str) -> bool {
    ct.and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(mime))
}

impl StreamableHttpClient for GuardedHttp {
    type Error = TransportError;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse> {
        let r = self
            .post_inner(uri, message, session_id, auth_header, custom_headers)
            .await;
        if let Err(e) = &r
            && let Ok(mut last) = self.last_error.lock()
        {
            *last = Some(describe(e).into_owned());
        }
        r
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<()> {
        let req = Self::headers(
            self.client.delete(uri.as_ref()),
            auth_header,
            custom_headers,
        )
        .header(SESSION_HEADER, session_id.as_ref());
        // Best effort: the server also expires idle sessions.
        let _ = req.send().await.map_err(http)?;
        Ok(())
    }

    async fn get_stream(
        &self,
        _uri: Arc<str>,
        _session_id: Option<Arc<str>>,
        _last_event_id: Option<String>,
        _auth_header: Option<String>,
        _custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, std::result::Result<Sse, SseError>>> {
        Err(StreamableHttpError::ServerDoesNotSupportSse)
    }
}

impl GuardedHttp {
    async fn post_inner(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse> {
        let mut req = self
            .client
            .post(uri.as_ref())
            .header(ACCEPT, "application/json, text/event-stream");
        req = Self::headers(req, auth_header, custom_headers);
        let had_session = session_id.is_some();
        if let Some(s) = session_id {
            req = req.header(SESSION_HEADER, s.as_ref());
        }
        let resp = req.json(&message).send().await.map_err(http)?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(StreamableHttpError::Client(TransportError::Redirect(
                status.as_u16(),
            )));
        }
        if status == reqwest::StatusCode::ACCEPTED || status == reqwest::StatusCode::NO_CONTENT {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        if status == reqwest::StatusCode::NOT_FOUND && had_session {
            return Err(StreamableHttpError::SessionExpired);
        }
        let new_session = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let ct = resp.headers().get(CONTENT_TYPE).cloned();
        if is(ct.as_ref(), "text/event-stream") && status.is_success() {
            let events: BoxStream<'static, std::result::Result<Sse, SseError>> =
                SseStream::from_bytes_stream(self.capped(resp)).boxed();
            return Ok(StreamableHttpPostResponse::Sse(events, new_session));
        }
        if is(ct.as_ref(), "application/json") {
            let body = self.read_body(resp).await?;
            if status.is_success() && body.is_empty() {
                return Ok(StreamableHttpPostResponse::Accepted);
            }
            return match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                Ok(msg) if status.is_success() || matches!(msg, ServerJsonRpcMessage::Error(_)) => {
                    Ok(StreamableHttpPostResponse::Json(msg, new_session))
                }
                Ok(_) => Err(StreamableHttpError::Client(TransportError::Status(
                    status.as_u16(),
                ))),
                Err(e) if status.is_success() => Err(StreamableHttpError::Deserialize(e)),
                Err(_) => Err(StreamableHttpError::Client(TransportError::Status(
                    status.as_u16(),
                ))),
            };
        }
        if !status.is_success() {
            return Err(StreamableHttpError::Client(TransportError::Status(
                status.as_u16(),
            )));
        }
        if resp.content_length() == Some(0) {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(
            ct.and_then(|c| c.to_str().ok().map(str::to_owned)),
        ))
    }
}

/// A short, secret-free description of a transport failure for the health column.
pub(crate) fn describe(e: &StreamableHttpError<TransportError>) -> Cow<'static, str> {
    match e {
        StreamableHttpError::Client(TransportError::Redirect(s)) => {
            format!("redirect refused (HTTP {s})").into()
        }
        StreamableHttpError::Client(TransportError::Status(s)) => format!("HTTP {s}").into(),
        StreamableHttpError::Client(TransportError::TooLarge(n)) => {
            format!("response larger than {n} bytes").into()
        }
        StreamableHttpError::Client(TransportError::Http(e)) if e.is_timeout() => {
            "timed out".into()
        }
        StreamableHttpError::Client(TransportError::Http(e)) if e.is_connect() => {
            "connection failed".into()
        }
        StreamableHttpError::Client(TransportError::Http(_)) => "HTTP error".into(),
        StreamableHttpError::SessionExpired => "session expired".into(),
        StreamableHttpError::UnexpectedContentType(_) => "unexpected content type".into(),
        StreamableHttpError::Deserialize(_) => "invalid JSON-RPC response".into(),
        _ => "protocol error".into(),
    }
}
