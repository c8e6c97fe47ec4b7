//! Cross-site request forgery defence, for every state-changing request outside webhooks:
//!
//! 1. Fetch Metadata: `Sec-Fetch-Site: cross-site` or `same-site` is refused; when the
//!    header is absent, an `Origin` header must be our own.
//! 2. A token bound to the session (or, before login, to a random nonce cookie) must come in
//!    the form field `csrf` or the `X-CSRF-Token` header.
//!
//! SameSite=Lax on the session cookie is a third layer.

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};

use crate::{
    auth::tokens,
    config::{Config, random_token},
    error::ErrorInfo,
    http::{FORM_BODY_LIMIT, session::AuthSession},
    state::AppState,
};

/// The token to put in this request's forms.
#[derive(Clone, Debug)]
pub(crate) struct CsrfToken(pub String);

fn nonce_cookie_name(config: &Config) -> &'static str {
    if config.is_https() {
        "__Host-csrf"
    } else {
        "csrf"
    }
}

fn refuse() -> Response {
    let mut r = StatusCode::FORBIDDEN.into_response();
    r.extensions_mut().insert(ErrorInfo {
        status: StatusCode::FORBIDDEN,
        message_key: "error.csrf",
    });
    r
}

/// Whether the browser says this request came from our own origin.
fn same_origin(headers: &HeaderMap, config: &Config) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser cross-origin request; the token still decides
    };
    let ours = config.public_url.origin().ascii_serialization();
    let host_origin = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| format!("{}://{h}", config.public_url.scheme()));
    origin == ours || host_origin.as_deref() == Some(origin)
}

pub(crate) async fn protect(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let config = &state.config;
    let jar = CookieJar::from_headers(req.headers());
    let mut new_nonce: Option<String> = None;
    let binding = match req.extensions().get::<AuthSession>() {
        Some(s) => format!("s:{}", s.session_id),
        None => {
            let nonce = match jar.get(nonce_cookie_name(config)) {
                Some(c) if c.value().len() >= 20 => c.value().to_owned(),
                _ => {
                    let n = random_token(24);
                    new_nonce = Some(n.clone());
                    n
                }
            };
            format!("n:{nonce}")
        }
    };
    let secret = &config.session_secret;
    req.extensions_mut()
        .insert(CsrfToken(tokens::csrf_token(secret, &binding)));

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if unsafe_method {
        if !same_origin(req.headers(), config) {
            tracing::warn!("cross-site write refused");
            return refuse();
        }
        let header_token = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let presented = match header_token {
            Some(t) => Some(t),
            None if is_form => {
                let (parts, body) = req.into_parts();
                let bytes = match to_bytes(body, FORM_BODY_LIMIT).await {
                    Ok(b) => b,
                    Err(_) => {
                        let mut r = StatusCode::PAYLOAD_TOO_LARGE.into_response();
                        r.extensions_mut()
                            .insert(ErrorInfo::for_status(StatusCode::PAYLOAD_TOO_LARGE));
                        return r;
                    }
                };
                let token = url::form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == "csrf")
                    .map(|(_, v)| v.into_owned());
                req = Request::from_parts(parts, Body::from(bytes));
                token
            }
            None => None,
        };
        let ok = presented.is_some_and(|t| tokens::csrf_valid(secret, &binding, &t));
        if !ok {
            tracing::warn!("write without a valid CSRF token refused");
            return refuse();
        }
    }

    let mut resp = next.run(req).await;
    if let Some(n) = new_nonce {
        let c = Cookie::build((nonce_cookie_name(config), n))
            .path("/")
            .http_only(true)
            .secure(config.is_https())
            .same_site(SameSite::Lax)
            .build();
        if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}
