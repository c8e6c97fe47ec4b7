//! Middleware: request ids, access logs without personal data, security headers, and the
//! error-page renderer.

use std::time::Instant;

use askama::Template;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{Extensions, HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::{
    request_id::{MakeRequestId, RequestId},
    trace::{MakeSpan, OnResponse},
};
use uuid::Uuid;

use crate::{
    error::ErrorInfo,
    http::extract::{FLASH_COOKIE, PageCtx, detect_lang},
    state::AppState,
};

/// Our request ids (UUIDv7), for tower-http's `SetRequestIdLayer`: in every log line, the
/// `X-Request-Id` header and every error page. A client-supplied `X-Request-Id` is dropped
/// before (`drop_client_request_id`): it would let anyone write into our logs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MakeRequestIdV7;

impl MakeRequestId for MakeRequestIdV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&Uuid::now_v7().simple().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// Removes a request id the client sent, so `SetRequestIdLayer` always makes our own.
pub(crate) async fn drop_client_request_id(mut req: Request) -> Request {
    req.headers_mut().remove(REQUEST_ID_HEADER);
    req
}

pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// This request's id ("" outside the request-id layer).
pub(crate) fn request_id_of(extensions: &Extensions) -> String {
    extensions
        .get::<RequestId>()
        .and_then(|r| r.header_value().to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The route template, never the path: bounded labels, and no ids or tokens (reset and
/// invitation links carry secrets in their path) in logs or metrics.
fn matched_route(extensions: &Extensions) -> String {
    extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// The span of one request for tower-http's `TraceLayer`, with an allow-list of fields:
/// request id, method and route template. Never headers, cookies, bodies, query strings or
/// raw paths.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> tracing::Span {
        tracing::info_span!(
            "request",
            request_id = %request_id_of(req.extensions()),
            method = %req.method(),
            route = %matched_route(req.extensions()),
        )
    }
}

/// The response line: status and latency, at ERROR only for a 5xx that is not the retryable
/// 503 (overload, a database restart: its cause was warned about where it happened).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ResponseLog;

impl<B> OnResponse<B> for ResponseLog {
    fn on_response(
        self,
        resp: &axum::http::Response<B>,
        latency: std::time::Duration,
        _span: &tracing::Span,
    ) {
        let status = resp.status().as_u16();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if status == 503 {
            tracing::warn!(status, latency_ms, "response");
        } else if status >= 500 {
            tracing::error!(status, latency_ms, "response");
        } else {
            tracing::info!(status, latency_ms, "response");
        }
    }
}

/// Request counts and latencies by method, route template and status (Prometheus).
pub(crate) async fn record_metrics(req: Request, next: Next) -> Response {
    let matched = route_label(&matched_route(req.extensions()));
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    metrics::counter!("sigmaai_http_requests_total", "method" => method.clone(), "route" => matched.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("sigmaai_http_request_duration_seconds", "method" => method, "route" => matched)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// `/t/{slug}/x/{*rest}` → `/t/:slug/x/:rest`: braces in label values are legal but trip
/// simple text-format parsers and regexes in alert rules.
fn route_label(template: &str) -> String {
    template
        .split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!(":{}", name.trim_start_matches('*')),
                None => seg.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// Refuses a NUL byte in the path, the query or a form body with a 400. PostgreSQL can't
/// store U+0000 in text, so such input used to surface as a 500 from deep inside a query;
/// no legitimate form, slug or e-mail holds one. JSON bodies (webhooks) are left to their
/// parsers, which clean the text they keep.
pub(crate) async fn refuse_nul(req: Request, next: Next) -> Response {
    let refuse = || {
        tracing::warn!("request with a NUL byte refused");
        let mut resp = StatusCode::BAD_REQUEST.into_response();
        resp.extensions_mut()
            .insert(ErrorInfo::for_status(StatusCode::BAD_REQUEST));
        resp
    };
    let uri = req.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return refuse();
    }
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::http::FORM_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            // Too large, stalled past the body timeout, or cut off: the client's fault.
            let status = if is_length_limit(&e) {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            tracing::warn!(status = status.as_u16(), "form body not readable");
            let mut resp = status.into_response();
            resp.extensions_mut().insert(ErrorInfo::for_status(status));
            return resp;
        }
    };
    if bytes.contains(&0) || bytes.windows(3).any(|w| w == b"%00") {
        return refuse();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Content-Security-Policy allowing only our own origin: no third-party script, style,
/// font, image, frame or connection can load, which also makes "no third-party analytics"
/// something the browser enforces.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; media-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// The security headers on every response, as tower-http `SetResponseHeaderLayer`s: a
/// handler may set a stricter CSP (media downloads are sandboxed) or its own caching (static
/// files are immutable); HSTS only when we are served over https.
pub(crate) fn with_security_headers<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    https: bool,
) -> axum::Router<S> {
    use tower_http::set_header::SetResponseHeaderLayer as Set;
    let hsts = https.then(|| HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    router
        .layer(Set::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(Set::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(Set::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(Set::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(Set::overriding(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(Set::overriding(
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        .layer(Set::overriding(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), interest-cohort=()",
            ),
        ))
        .layer(Set::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &Response| hsts.clone(),
        ))
        .layer(Set::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: PageCtx,
    status: u16,
    message_key: &'static str,
}

/// Turns error markers (and bare error statuses from the framework, like 404 and 413) into a
/// page in the visitor's language, or JSON on machine routes. Never shows internals.
pub(crate) async fn render_errors(
    State(_state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let lang = detect_lang(req.headers());
    let request_id = request_id_of(req.extensions());
    let path = req.uri().path().to_owned();
    let had_flash = req.headers().get_all(header::COOKIE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.contains(&format!("{FLASH_COOKIE}=")))
    });
    let is_get = req.method() == axum::http::Method::GET;
    // The tenant API answers every error as RFC 9457 problem+json (`api::problem`).
    let api = path.starts_with("/api/");
    let machine = api || path.starts_with("/webhooks/") || path == "/readyz" || path == "/healthz";
    let resp = next.run(req).await;

    let status = resp.status();
    // Not logged in: to the login page, and back here afterwards.
    if status == StatusCode::UNAUTHORIZED && !machine {
        let next = if is_get { path.as_str() } else { "/app" };
        let to = format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        return axum::response::Redirect::to(&to).into_response();
    }
    if had_flash && status == StatusCode::OK {
        let mut resp = resp;
        resp.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
        );
        return resp;
    }
    let info = match resp.extensions().get::<ErrorInfo>() {
        Some(info) => info.clone(),
        None if status.is_client_error() || status.is_server_error() => {
            if has_body_of_our_own(resp.headers()) && !api {
                return resp;
            }
            if api && status.is_client_error() {
                // The framework refused it (no such route, wrong method, a bad path id).
                tracing::warn!(status = status.as_u16(), "api request refused");
            }
            ErrorInfo::for_status(status)
        }
        None => return resp,
    };
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = if api {
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        Body::from(
            problem_document(
                crate::i18n::Tr(lang),
                info.status,
                info.message_key,
                &request_id,
            )
            .to_string(),
        )
    } else if machine {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Body::from(
            serde_json::json!({ "error": info.message_key, "request_id": request_id }).to_string(),
        )
    } else {
        let page = ErrorPage {
            ctx: PageCtx::new(lang, &path, &request_id),
            status: info.status.as_u16(),
            message_key: info.message_key,
        };
        match page.render() {
            Ok(html) => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                Body::from(html)
            }
            Err(e) => {
                tracing::error!(error = %e, "error page failed to render");
                Body::from(format!(
                    "Error {}. Request id: {request_id}",
                    info.status.as_u16()
                ))
            }
        }
    };
    Response::from_parts(parts, body)
}

/// The media type of RFC 9457 problem details (the tenant API's errors).
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// The problem document for a status and a detail key, in `tr`'s language: `type` names
/// the problem (`urn:sigmaai:problem:<last part of the key>`), `title` the status.
pub(crate) fn problem_document(
    tr: crate::i18n::Tr,
    status: StatusCode,
    key: &str,
    request_id: &str,
) -> serde_json::Value {
    use crate::i18n::Tr;
    let code = key.rsplit('.').next().unwrap_or("error");
    let title_key = format!("api.status.{}", status.as_u16());
    let title = if Tr::has(&title_key) {
        tr.t(&title_key).to_owned()
    } else {
        status.canonical_reason().unwrap_or("Error").to_owned()
    };
    let detail = if Tr::has(key) {
        tr.t(key).to_owned()
    } else {
        title.clone()
    };
    serde_json::json!({
        "type": format!("urn:sigmaai:problem:{code}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "request_id": request_id,
    })
}

/// HTML or JSON a handler produced deliberately (a form re-rendered with a 422, say).
fn has_body_of_our_own(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html") || ct.starts_with("application/json"))
}

/// A panic is logged (without its payload, which might hold data) and becomes a 500 page.
pub(crate) fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    resp.extensions_mut()
        .insert(ErrorInfo::for_status(StatusCode::INTERNAL_SERVER_ERROR));
    resp
}

/// A 303 to `to` that shows a one-line message (a translation key) on the next page.
pub(crate) fn redirect_with_flash(to: &str, ok: bool, key: &str) -> Response {
    let mut resp = axum::response::Redirect::to(to).into_response();
    let value = format!(
        "{FLASH_COOKIE}={}:{key}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60",
        if ok { "ok" } else { "err" }
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_have_no_braces() {
        assert_eq!(
            route_label("/t/{slug}/conversations/{id}"),
            "/t/:slug/conversations/:id"
        );
        assert_eq!(route_label("/static/{*path}"), "/static/:path");
    }
}
