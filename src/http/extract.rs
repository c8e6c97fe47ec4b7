//! Extractors shared by page handlers.

use std::{collections::HashMap, marker::PhantomData, net::SocketAddr, ops::Deref, sync::Arc};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts, Path},
    http::{HeaderMap, header, request::Parts},
};
use axum_extra::extract::CookieJar;

use crate::{
    config::Config,
    db::{
        self,
        tenants::{Chrome, Tenant},
        users::User,
    },
    domain::account::Role,
    error::AppError,
    http::{csrf::CsrfToken, session::AuthSession},
    i18n::{Lang, Tr},
    state::AppState,
};

/// The name of the language-preference cookie (not a tracking cookie: it holds "en" or "pt-BR").
pub(crate) const LANG_COOKIE: &str = "lang";

/// The visitor's language: the `lang` cookie if set, else the account's choice, else
/// `Accept-Language`, else English.
pub(crate) fn detect_lang(headers: &HeaderMap) -> Lang {
    detect_lang_for(headers, None)
}

pub(crate) fn detect_lang_for(headers: &HeaderMap, user: Option<&User>) -> Lang {
    let jar = CookieJar::from_headers(headers);
    if let Some(lang) = jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
        return lang;
    }
    if let Some(lang) = user
        .and_then(|u| u.language.as_deref())
        .and_then(Lang::parse)
    {
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
pub(crate) struct PageCtx {
    pub(crate) tr: Tr,
    pub(crate) path: String,
    pub(crate) request_id: String,
    /// The anti-forgery token every form on the page carries.
    pub(crate) csrf: String,
    /// The logged-in user, for the header.
    pub(crate) user: Option<Arc<User>>,
    /// A one-shot message from the previous request (after a redirect).
    pub(crate) flash: Option<Flash>,
}

#[derive(Clone, Debug)]
pub(crate) struct Flash {
    pub(crate) ok: bool,
    pub(crate) key: String,
}

/// The cookie carrying a flash message key across a 303 redirect.
pub(crate) const FLASH_COOKIE: &str = "flash";

impl PageCtx {
    pub(crate) fn new(lang: Lang, path: &str, request_id: &str) -> PageCtx {
        PageCtx {
            tr: Tr(lang),
            path: path.to_owned(),
            request_id: request_id.to_owned(),
            csrf: String::new(),
            user: None,
            flash: None,
        }
    }

    pub(crate) fn t(&self, key: &str) -> &'static str {
        self.tr.t(key)
    }

    pub(crate) fn f(&self, key: &str, args: &[&dyn std::fmt::Display]) -> String {
        self.tr.f(key, args)
    }

    /// The message for `key` with its one `{}` filled (templates call this).
    pub(crate) fn f1<T: std::fmt::Display + ?Sized>(&self, key: &str, arg: &T) -> String {
        self.tr.f(key, &[&arg as &dyn std::fmt::Display])
    }

    /// The message for `prefix` + `value` (e.g. a status or kind), for keys chosen by data.
    pub(crate) fn tk(&self, prefix: &str, value: &str) -> &'static str {
        self.tr.t(&format!("{prefix}{value}"))
    }

    pub(crate) fn lang_code(&self) -> &'static str {
        self.tr.lang().code()
    }

    /// A count with the viewer's digit grouping (templates call this).
    pub(crate) fn num<T: Copy + Into<i64>>(&self, n: &T) -> String {
        self.tr.num((*n).into())
    }

    /// A US-dollar price in cents as the viewer's language writes it.
    pub(crate) fn usd<T: Copy + Into<i64>>(&self, cents: &T) -> String {
        self.tr.usd((*cents).into())
    }

    /// An AI provider's display name (`offline` is our knowledge-base answerer); an id we
    /// have no name for is shown as it is.
    pub(crate) fn provider(&self, id: &str) -> String {
        let key = format!("provider.{id}");
        if crate::i18n::Tr::has(&key) {
            self.tr.t(&key).to_owned()
        } else {
            id.to_owned()
        }
    }

    /// The language the switcher offers (the other one).
    pub(crate) fn other_lang(&self) -> Lang {
        match self.tr.lang() {
            Lang::En => Lang::PtBr,
            Lang::PtBr => Lang::En,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageCtx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request_id = crate::http::middleware::request_id_of(&parts.extensions);
        let user = parts
            .extensions
            .get::<AuthSession>()
            .map(|s| s.user.clone());
        let mut ctx = PageCtx::new(
            detect_lang_for(&parts.headers, user.as_deref()),
            parts.uri.path(),
            &request_id,
        );
        ctx.csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        ctx.user = user;
        ctx.flash = CookieJar::from_headers(&parts.headers)
            .get(FLASH_COOKIE)
            .and_then(|c| {
                let (kind, key) = c.value().split_once(':')?;
                crate::i18n::Tr::has(key).then(|| Flash {
                    ok: kind == "ok",
                    key: key.to_owned(),
                })
            });
        Ok(ctx)
    }
}

/// The logged-in user, or a redirect to the login page.
#[derive(Clone, Debug)]
pub(crate) struct CurrentUser {
    pub(crate) session_id: uuid::Uuid,
    pub(crate) user: Arc<User>,
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthSession>()
            .map(|s| CurrentUser {
                session_id: s.session_id,
                user: s.user.clone(),
            })
            .ok_or(AppError::Unauthorized)
    }
}

/// A request inside `/t/{slug}/…`: the tenant and the user's role in it. A tenant the user
/// doesn't belong to (or that doesn't exist, or was terminated) is a 404, never a 403, so
/// tenant names can't be probed.
///
/// Extracting it costs one round trip: `portal_chrome` (migration 0029) answers the tenant,
/// the membership and everything the page frame shows ([`Chrome`]: badges, banners, the
/// tenant switcher, the time zone), so a page's [`Shell`](crate::http::routes::portal::Shell)
/// needs no query of its own.
#[derive(Clone, Debug)]
pub(crate) struct TenantCtx {
    pub(crate) tenant: Tenant,
    pub(crate) role: Role,
    pub(crate) me: CurrentUser,
    /// The page frame's figures, as of the start of the request.
    pub(crate) chrome: Arc<Chrome>,
}

impl TenantCtx {
    pub(crate) fn id(&self) -> uuid::Uuid {
        self.tenant.id
    }

    pub(crate) fn can(&self, needed: Role) -> bool {
        self.role.at_least(needed)
    }

    pub(crate) fn actor(&self) -> db::audit::Actor {
        db::audit::Actor::user(self.me.user.id, &self.me.user.email)
    }

    /// A transaction in this tenant, by this member, stamped with the clock's now.
    pub(crate) async fn begin(&self, state: &AppState) -> sqlx::Result<db::TenantTx> {
        self.begin_at(state, state.now()).await
    }

    /// The same, stamped with a `now` the request already read (its writes use it too).
    pub(crate) async fn begin_at(
        &self,
        state: &AppState,
        now: time::OffsetDateTime,
    ) -> sqlx::Result<db::TenantTx> {
        db::TenantTx::begin(&state.db, self.id(), self.actor(), now).await
    }
}

impl<S> FromRequestParts<S> for TenantCtx
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        if let Some(ctx) = parts.extensions.get::<TenantCtx>() {
            return Ok(ctx.clone());
        }
        let state = &AppState::from_ref(s);
        let me = CurrentUser::from_request_parts(parts, s).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, s)
            .await
            .map_err(|_| AppError::NotFound)?;
        let slug = params.get("slug").ok_or(AppError::NotFound)?;
        let chrome = db::tenants::portal_chrome(
            &state.db,
            slug,
            me.user.id,
            crate::billing::month_start(state.now()),
        )
        .await?
        .ok_or(AppError::NotFound)?;
        let role = Role::try_from(chrome.role.as_str()).map_err(|_| AppError::NotFound)?;
        let ctx = TenantCtx {
            tenant: chrome.tenant(),
            role,
            me,
            chrome: Arc::new(chrome),
        };
        parts.extensions.insert(ctx.clone());
        Ok(ctx)
    }
}

/// Marker types for [`RequireRole`].
pub(crate) trait MinRole: Send + Sync {
    const ROLE: Role;
}
pub(crate) struct Viewer;
pub(crate) struct Reviewer;
pub(crate) struct Admin;
pub(crate) struct Owner;
impl MinRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for Reviewer {
    const ROLE: Role = Role::Reviewer;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}
impl MinRole for Owner {
    const ROLE: Role = Role::Owner;
}

/// A tenant request by a member with at least role `R` (403 otherwise).
pub(crate) struct RequireRole<R: MinRole>(pub TenantCtx, PhantomData<R>);

impl<R: MinRole> Deref for RequireRole<R> {
    type Target = TenantCtx;
    fn deref(&self) -> &TenantCtx {
        &self.0
    }
}

impl<R: MinRole, S> FromRequestParts<S> for RequireRole<R>
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = TenantCtx::from_request_parts(parts, state).await?;
        if !ctx.can(R::ROLE) {
            return Err(AppError::Forbidden);
        }
        Ok(RequireRole(ctx, PhantomData))
    }
}

/// The client's address: the socket peer, or — behind `trusted_proxies` hops — the address
/// that many hops back in `X-Forwarded-For`. Never a raw client-supplied header otherwise.
pub(crate) fn client_ip(
    parts_headers: &HeaderMap,
    peer: Option<SocketAddr>,
    config: &Config,
) -> String {
    let peer_ip = peer
        .map(|p| p.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if config.trusted_proxies == 0 {
        return peer_ip;
    }
    let chain: Vec<&str> = parts_headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    chain
        .len()
        .checked_sub(config.trusted_proxies)
        .and_then(|i| chain.get(i))
        .map(|s| s.to_string())
        .unwrap_or(peer_ip)
}

/// Who is calling: IP (as above) and user agent, for throttling and the sessions list.
#[derive(Clone, Debug)]
pub(crate) struct ClientInfo {
    pub(crate) ip: String,
    pub(crate) user_agent: String,
}

impl<S> FromRequestParts<S> for ClientInfo
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(s);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        Ok(ClientInfo {
            ip: client_ip(&parts.headers, peer, &state.config),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        })
    }
}
