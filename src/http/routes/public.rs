//! The public pages: landing, pricing, legal texts, sign-up and login forms.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::Query,
    response::{IntoResponse, Redirect},
    routing::get,
};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use serde::Deserialize;

use crate::wiring::App;
use crate::{
    domain::{
        plans::{self, Plan},
        policy::POLICY_VERSION,
    },
    http::extract::{LANG_COOKIE, PageCtx},
    i18n::Lang,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/", get(landing))
        .route("/pricing", get(pricing))
        .route("/privacy", get(privacy))
        .route("/terms", get(terms))
        .route("/dpa", get(dpa))
        .route("/lang", get(switch_lang))
}

#[derive(Template, WebTemplate)]
#[template(path = "public/landing.html")]
pub(crate) struct LandingPage {
    pub(crate) ctx: PageCtx,
}

async fn landing(ctx: PageCtx) -> LandingPage {
    LandingPage { ctx }
}

#[derive(Template, WebTemplate)]
#[template(path = "public/pricing.html")]
pub(crate) struct PricingPage {
    pub(crate) ctx: PageCtx,
    pub(crate) plans: &'static [Plan],
}

async fn pricing(ctx: PageCtx) -> PricingPage {
    PricingPage {
        ctx,
        plans: plans::PLANS,
    }
}

/// Which legal document a page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegalDoc {
    Privacy,
    Terms,
    Dpa,
}

#[derive(Template, WebTemplate)]
#[template(path = "public/legal.html")]
pub(crate) struct LegalPage {
    pub(crate) ctx: PageCtx,
    pub(crate) doc: LegalDoc,
    pub(crate) version: &'static str,
}

async fn privacy(ctx: PageCtx) -> LegalPage {
    LegalPage {
        ctx,
        doc: LegalDoc::Privacy,
        version: POLICY_VERSION,
    }
}

async fn terms(ctx: PageCtx) -> LegalPage {
    LegalPage {
        ctx,
        doc: LegalDoc::Terms,
        version: POLICY_VERSION,
    }
}

async fn dpa(ctx: PageCtx) -> LegalPage {
    LegalPage {
        ctx,
        doc: LegalDoc::Dpa,
        version: POLICY_VERSION,
    }
}

#[derive(Deserialize)]
struct SwitchLang {
    to: String,
    next: Option<String>,
}

/// Sets the language-preference cookie and returns to the page the visitor was on.
async fn switch_lang(jar: CookieJar, Query(q): Query<SwitchLang>) -> impl IntoResponse {
    let lang = Lang::parse(&q.to).unwrap_or_default();
    let next = q
        .next
        .as_deref()
        .filter(|n| is_local_path(n))
        .unwrap_or("/");
    let cookie = Cookie::build((LANG_COOKIE, lang.code()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::days(365))
        .build();
    (jar.add(cookie), Redirect::to(next))
}

/// Only same-site paths: never `//evil.example` or `https://…` (no open redirect).
pub(crate) fn is_local_path(p: &str) -> bool {
    p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") && !p.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::is_local_path;

    #[test]
    fn redirects_stay_on_site() {
        assert!(is_local_path("/pricing"));
        assert!(!is_local_path("//evil.example"));
        assert!(!is_local_path("https://evil.example"));
        assert!(!is_local_path("/\\evil.example"));
    }
}
