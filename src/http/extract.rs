//! Extractors shared by page handlers.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};
use axum_extra::extract::CookieJar;

use crate::{
    http::middleware::RequestId,
    i18n::{Lang, Tr},
};

/// The name of the language-preference cookie (not a tracking cookie: it holds "en" or "pt-BR").
pub const LANG_COOKIE: &str = "lang";

/// The visitor's language: the `lang` cookie if set, else `Accept-Language`, else English.
pub fn detect_lang(headers: &HeaderMap) -> Lang {
    let jar = CookieJar::from_headers(headers);
    if let Some(lang) = jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
        return lang;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default()
}

/// What every page template needs: the translator, the current path (for the language
/// switcher) and the request id.
#[derive(Clone, Debug)]
pub struct PageCtx {
    pub tr: Tr,
    pub path: String,
    pub request_id: String,
}

impl PageCtx {
    pub fn new(lang: Lang, path: &str, request_id: &str) -> PageCtx {
        PageCtx {
            tr: Tr(lang),
            path: path.to_owned(),
            request_id: request_id.to_owned(),
        }
    }

    pub fn t(&self, key: &str) -> &'static str {
        self.tr.t(key)
    }

    pub fn f(&self, key: &str, args: &[&dyn std::fmt::Display]) -> String {
        self.tr.f(key, args)
    }

    /// The message for `key` with its one `{}` filled (templates call this).
    pub fn f1<T: std::fmt::Display + ?Sized>(&self, key: &str, arg: &T) -> String {
        self.tr.f(key, &[&arg as &dyn std::fmt::Display])
    }

    pub fn lang_code(&self) -> &'static str {
        self.tr.lang().code()
    }

    /// The language the switcher offers (the other one).
    pub fn other_lang(&self) -> Lang {
        match self.tr.lang() {
            Lang::En => Lang::PtBr,
            Lang::PtBr => Lang::En,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(PageCtx::new(detect_lang(&parts.headers), parts.uri.path(), &request_id))
    }
}
