//! The user's own account: password, language, active sessions, two-factor authentication.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    accounts::{self, FormError},
    auth::{CHALLENGE_LIFETIME, tokens},
    db::accounts::{self as db_accounts, SessionRow, User},
    error::AppResult,
    http::{
        extract::{CurrentUser, PageCtx},
        middleware::redirect_with_flash,
        routes::auth::form_error,
        session,
    },
    i18n::Lang,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/language", post(change_language))
        .route("/account/sessions/{id}/revoke", post(revoke_session))
        .route("/account/sessions/revoke-all", post(revoke_all))
}

pub struct SessionView {
    pub id: Uuid,
    pub current: bool,
    pub created: String,
    pub last_seen: String,
    pub user_agent: String,
    pub ip: String,
}

fn fmt_time(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.format(&f).unwrap_or_default()
}

impl SessionView {
    fn from(row: &SessionRow, current: Uuid) -> SessionView {
        SessionView {
            id: row.id,
            current: row.id == current,
            created: fmt_time(row.created_at),
            last_seen: fmt_time(row.last_seen_at),
            user_agent: row.user_agent.clone(),
            ip: row.ip.clone(),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "account/index.html")]
pub struct AccountPage {
    pub ctx: PageCtx,
    pub sessions: Vec<SessionView>,
    pub totp_enabled: bool,
    pub recovery_left: i64,
    pub error: Option<&'static str>,
}

async fn load_page(
    state: &AppState,
    ctx: PageCtx,
    me: &CurrentUser,
    error: Option<&'static str>,
) -> AppResult<AccountPage> {
    let rows = db_accounts::active_sessions(&state.db, me.user.id, state.now()).await?;
    Ok(AccountPage {
        ctx,
        sessions: rows
            .iter()
            .map(|r| SessionView::from(r, me.session_id))
            .collect(),
        totp_enabled: me.user.has_totp(),
        recovery_left: db_accounts::unused_recovery_codes(&state.db, me.user.id).await?,
        error,
    })
}

async fn account_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    me: CurrentUser,
) -> AppResult<AccountPage> {
    load_page(&state, ctx, &me, None).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
}

async fn change_password(
    State(state): State<AppState>,
    ctx: PageCtx,
    me: CurrentUser,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    match accounts::change_password(&state, me.user.id, me.session_id, &f.current, &f.new).await {
        Ok(()) => Ok(redirect_with_flash(
            "/account",
            true,
            "account.password.changed",
        )),
        Err(FormError::Field(key)) => Ok(form_error(load_page(&state, ctx, &me, Some(key)).await?)),
        Err(FormError::Internal(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct LanguageForm {
    language: String,
}

async fn change_language(
    State(state): State<AppState>,
    me: CurrentUser,
    jar: CookieJar,
    Form(f): Form<LanguageForm>,
) -> AppResult<Response> {
    let lang = Lang::parse(&f.language).unwrap_or_default();
    db_accounts::set_user_language(&state.db, me.user.id, lang.code(), state.now()).await?;
    // The cookie wins over the account setting; drop it so the new choice shows.
    let cookie = Cookie::build((crate::http::extract::LANG_COOKIE, lang.code()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::days(365))
        .build();
    Ok((jar.add(cookie), Redirect::to("/account")).into_response())
}

async fn revoke_session(
    State(state): State<AppState>,
    me: CurrentUser,
    jar: CookieJar,
    Path(id): Path<Uuid>,
) -> AppResult<Response> {
    db_accounts::revoke_session(&state.db, me.user.id, id, state.now()).await?;
    if id == me.session_id {
        return Ok((
            jar.add(session::removal_cookie(&state.config)),
            Redirect::to("/login"),
        )
            .into_response());
    }
    Ok(redirect_with_flash(
        "/account",
        true,
        "account.sessions.revoked",
    ))
}

/// Logout everywhere: every session of this user, this one included.
async fn revoke_all(
    State(state): State<AppState>,
    me: CurrentUser,
    jar: CookieJar,
) -> AppResult<Response> {
    let mut conn = state.db.acquire().await?;
    db_accounts::revoke_all_sessions(&mut conn, me.user.id, None, state.now()).await?;
    Ok((
        jar.add(session::removal_cookie(&state.config)),
        Redirect::to("/login"),
    )
        .into_response())
}

/// The cookie that carries a pending second-factor challenge between the two login steps.
pub const CHALLENGE_COOKIE: &str = "login_challenge";

/// After a correct password for an account with two-factor on: a short-lived challenge.
pub async fn start_second_factor(
    state: &AppState,
    user: &User,
    next: &str,
    jar: CookieJar,
) -> AppResult<Response> {
    let (token, hash) = tokens::new_link_token();
    db_accounts::create_challenge(&state.db, user.id, &hash, state.now() + CHALLENGE_LIFETIME)
        .await?;
    let cookie = Cookie::build((CHALLENGE_COOKIE, token))
        .path("/login")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(CHALLENGE_LIFETIME.whole_seconds()))
        .build();
    let to = format!(
        "/login/2fa?next={}",
        url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    Ok((jar.add(cookie), Redirect::to(&to)).into_response())
}
