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

use crate::wiring::App;
use crate::{
    accounts::{self, FormError},
    auth::{CHALLENGE_LIFETIME, tokens, totp},
    db::{self, sessions::SessionRow, users::User},
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

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/account", get(account_page))
        .route("/account/password", post(change_password))
        .route("/account/language", post(change_language))
        .route("/account/sessions/{id}/revoke", post(revoke_session))
        .route("/account/sessions/revoke-all", post(revoke_all))
        .route("/account/2fa/start", post(totp_start))
        .route("/account/2fa/confirm", post(totp_confirm))
        .route("/account/2fa/disable", post(totp_disable))
        .route("/login/2fa", get(second_factor_page).post(second_factor))
}

pub(crate) struct SessionView {
    pub(crate) id: Uuid,
    pub(crate) current: bool,
    pub(crate) created: String,
    pub(crate) last_seen: String,
    pub(crate) user_agent: String,
    pub(crate) ip: String,
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
pub(crate) struct AccountPage {
    pub(crate) ctx: PageCtx,
    pub(crate) sessions: Vec<SessionView>,
    pub(crate) totp_enabled: bool,
    pub(crate) recovery_left: i64,
    pub(crate) error: Option<&'static str>,
}

async fn load_page(
    state: &AppState,
    ctx: PageCtx,
    me: &CurrentUser,
    error: Option<&'static str>,
) -> AppResult<AccountPage> {
    let rows = db::sessions::active_sessions(&state.db, me.user.id, state.now()).await?;
    Ok(AccountPage {
        ctx,
        sessions: rows
            .iter()
            .map(|r| SessionView::from(r, me.session_id))
            .collect(),
        totp_enabled: me.user.has_totp(),
        recovery_left: db::two_factor::unused_recovery_codes(&state.db, me.user.id).await?,
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
pub(crate) struct PasswordForm {
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
pub(crate) struct LanguageForm {
    language: String,
}

async fn change_language(
    State(state): State<AppState>,
    me: CurrentUser,
    jar: CookieJar,
    Form(f): Form<LanguageForm>,
) -> AppResult<Response> {
    let lang = Lang::parse(&f.language).unwrap_or_default();
    db::users::set_user_language(&state.db, me.user.id, lang.code(), state.now()).await?;
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
    db::sessions::revoke_session(&state.db, me.user.id, id, state.now()).await?;
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
    db::sessions::revoke_all_sessions(&mut conn, me.user.id, None, state.now()).await?;
    Ok((
        jar.add(session::removal_cookie(&state.config)),
        Redirect::to("/login"),
    )
        .into_response())
}

/// The cookie that carries a pending second-factor challenge between the two login steps.
pub(crate) const CHALLENGE_COOKIE: &str = "login_challenge";

/// After a correct password for an account with two-factor on: a short-lived challenge.
pub(crate) async fn start_second_factor(
    state: &AppState,
    user: &User,
    next: &str,
    jar: CookieJar,
) -> AppResult<Response> {
    let (token, hash) = tokens::new_link_token();
    db::two_factor::create_challenge(&state.db, user.id, &hash, state.now() + CHALLENGE_LIFETIME)
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

// ---- two-factor authentication ----

fn totp_aad(user_id: Uuid) -> crate::crypto::Aad<'static> {
    crate::crypto::Aad::new("users", "totp_secret", user_id)
}

#[derive(Template, WebTemplate)]
#[template(path = "account/totp_setup.html")]
pub(crate) struct TotpSetupPage {
    pub(crate) ctx: PageCtx,
    pub(crate) qr_svg: String,
    pub(crate) secret: String,
    pub(crate) error: Option<&'static str>,
}

async fn totp_setup_view(
    state: &AppState,
    ctx: PageCtx,
    me: &CurrentUser,
    error: Option<&'static str>,
) -> AppResult<Response> {
    let user = db::users::user_by_id(&state.db, me.user.id)
        .await?
        .ok_or(crate::error::AppError::NotFound)?;
    let sealed = user
        .totp_secret
        .ok_or(crate::error::AppError::BadRequest("error.bad_request"))?;
    let secret = state.keys.open_platform(totp_aad(user.id), &sealed).await?;
    let uri = totp::otpauth_uri(&secret, &user.email)?;
    let page = TotpSetupPage {
        ctx,
        qr_svg: totp::qr_svg(&uri)?,
        secret: totp::secret_base32(&secret),
        error,
    };
    Ok(match error {
        Some(_) => form_error(page),
        None => page.into_response(),
    })
}

/// Step 1: a new secret (pending until a code from it is confirmed).
async fn totp_start(
    State(state): State<AppState>,
    ctx: PageCtx,
    me: CurrentUser,
) -> AppResult<Response> {
    if me.user.has_totp() {
        return Ok(Redirect::to("/account").into_response());
    }
    let secret = totp::new_secret();
    let sealed = state
        .keys
        .seal_platform(totp_aad(me.user.id), &secret)
        .await?;
    db::two_factor::set_totp_pending(&state.db, me.user.id, &sealed, state.now()).await?;
    totp_setup_view(&state, ctx, &me, None).await
}

#[derive(Template, WebTemplate)]
#[template(path = "account/recovery_codes.html")]
pub(crate) struct RecoveryCodesPage {
    pub(crate) ctx: PageCtx,
    pub(crate) codes: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct CodeForm {
    code: String,
    #[serde(default)]
    next: String,
}

/// Step 2: a correct code turns two-factor on; recovery codes are shown once.
async fn totp_confirm(
    State(state): State<AppState>,
    ctx: PageCtx,
    me: CurrentUser,
    Form(f): Form<CodeForm>,
) -> AppResult<Response> {
    let user = db::users::user_by_id(&state.db, me.user.id)
        .await?
        .ok_or(crate::error::AppError::NotFound)?;
    if user.has_totp() {
        return Ok(Redirect::to("/account").into_response());
    }
    let Some(sealed) = user.totp_secret.as_deref() else {
        return Ok(Redirect::to("/account").into_response());
    };
    let secret = state.keys.open_platform(totp_aad(user.id), sealed).await?;
    let now = state.now();
    let Some(step) = totp::verify(&secret, &f.code, now.unix_timestamp() as u64, None) else {
        return totp_setup_view(&state, ctx, &me, Some("totp.wrong_code")).await;
    };
    db::two_factor::enable_totp(&state.db, user.id, step, now).await?;
    let codes = recovery::generate();
    let hashes: Vec<String> = codes.iter().map(|c| recovery::hash(c)).collect();
    db::two_factor::replace_recovery_codes(&state.db, user.id, &hashes).await?;
    accounts::audit_user_event(&state, user.id, &user.email, "auth.2fa_enabled").await?;
    Ok(RecoveryCodesPage { ctx, codes }.into_response())
}

#[derive(Deserialize)]
pub(crate) struct DisableForm {
    password: String,
    #[serde(default)]
    code: String,
}

/// Turning two-factor off takes both factors: a stolen session plus a phished password
/// must not be enough to remove the second one.
async fn totp_disable(
    State(state): State<AppState>,
    ctx: PageCtx,
    me: CurrentUser,
    Form(f): Form<DisableForm>,
) -> AppResult<Response> {
    if !crate::auth::password::verify(&f.password, Some(&me.user.password_hash)).await? {
        return Ok(form_error(
            load_page(&state, ctx, &me, Some("account.password.wrong")).await?,
        ));
    }
    let user = db::users::user_by_id(&state.db, me.user.id)
        .await?
        .ok_or(crate::error::AppError::NotFound)?;
    let now = state.now();
    if user.totp_locked_until.is_some_and(|t| t > now) {
        return Ok(form_error(
            load_page(&state, ctx, &me, Some("totp.locked")).await?,
        ));
    }
    if !second_factor_ok(&state, &user, &f.code, now).await? {
        db::two_factor::record_totp_failure(&state.db, user.id, now).await?;
        return Ok(form_error(
            load_page(&state, ctx, &me, Some("totp.wrong_code")).await?,
        ));
    }
    db::two_factor::disable_totp(&state.db, me.user.id, state.now()).await?;
    accounts::audit_user_event(&state, me.user.id, &me.user.email, "auth.2fa_disabled").await?;
    Ok(redirect_with_flash("/account", true, "totp.disabled"))
}

/// Recovery codes: 60 random bits each, shown once, stored as SHA-256 hashes. (A fast hash
/// suffices for random codes of this entropy; argon2 protects low-entropy passwords.)
pub(crate) mod recovery {
    use rand::Rng;
    use sha2::{Digest, Sha256};

    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    pub(crate) const COUNT: usize = 10;

    pub(crate) fn generate() -> Vec<String> {
        let mut rng = rand::rngs::OsRng;
        (0..COUNT)
            .map(|_| {
                let chars: String = (0..12)
                    .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                    .collect();
                format!("{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12])
            })
            .collect()
    }

    /// Dashes, spaces and case don't matter when typing a code back.
    pub(crate) fn normalize(code: &str) -> String {
        code.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase()
    }

    pub(crate) fn hash(code: &str) -> String {
        hex::encode(Sha256::digest(normalize(code).as_bytes()))
    }

    pub(crate) fn looks_like(code: &str) -> bool {
        normalize(code).len() == 12
    }
}

// ---- the second login step ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/second_factor.html")]
pub(crate) struct SecondFactorPage {
    pub(crate) ctx: PageCtx,
    pub(crate) next: String,
    pub(crate) error: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

async fn second_factor_page(
    ctx: PageCtx,
    jar: CookieJar,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    if jar.get(CHALLENGE_COOKIE).is_none() {
        return Redirect::to("/login").into_response();
    }
    SecondFactorPage {
        ctx,
        next: q.next.unwrap_or_else(|| "/app".into()),
        error: None,
    }
    .into_response()
}

/// Whether `code` is the user's current TOTP code (each step accepted once) or an unused
/// recovery code (spent by this).
async fn second_factor_ok(
    state: &AppState,
    user: &db::users::User,
    code: &str,
    now: time::OffsetDateTime,
) -> AppResult<bool> {
    if recovery::looks_like(code) {
        return Ok(db::two_factor::use_recovery_code(
            &state.db,
            user.id,
            &recovery::hash(code),
            now,
        )
        .await?);
    }
    let Some(sealed) = user.totp_secret.as_deref() else {
        return Ok(false);
    };
    let secret = state.keys.open_platform(totp_aad(user.id), sealed).await?;
    Ok(
        match totp::verify(
            &secret,
            code,
            now.unix_timestamp() as u64,
            user.totp_last_step,
        ) {
            // Recorded atomically: the same code can't be accepted twice, even concurrently.
            Some(step) => db::two_factor::record_totp_step(&state.db, user.id, step).await?,
            None => false,
        },
    )
}

async fn second_factor(
    State(state): State<AppState>,
    ctx: PageCtx,
    client: crate::http::extract::ClientInfo,
    jar: CookieJar,
    Form(f): Form<CodeForm>,
) -> AppResult<Response> {
    let next = if crate::http::routes::public::is_local_path(&f.next) {
        f.next.clone()
    } else {
        "/app".into()
    };
    let retry = |key: &'static str| {
        form_error(SecondFactorPage {
            ctx: ctx.clone(),
            next: next.clone(),
            error: Some(key),
        })
    };
    let Some(token) = jar.get(CHALLENGE_COOKIE).map(|c| c.value().to_owned()) else {
        return Ok(Redirect::to("/login").into_response());
    };
    let hash = tokens::hash_link_token(&token);
    let now = state.now();
    // Each attempt counts; after five the challenge is spent and the password is needed again.
    let Some(user_id) = db::two_factor::challenge_user(&state.db, &hash, now).await? else {
        return Ok(redirect_with_flash("/login", false, "totp.expired"));
    };
    let user = db::users::user_by_id(&state.db, user_id)
        .await?
        .ok_or(crate::error::AppError::NotFound)?;
    if user.totp_locked_until.is_some_and(|t| t > now) {
        return Ok(retry("totp.locked"));
    }
    if !second_factor_ok(&state, &user, &f.code, now).await? {
        db::two_factor::record_totp_failure(&state.db, user.id, now).await?;
        return Ok(retry("totp.wrong_code"));
    }
    db::two_factor::delete_challenge(&state.db, &hash).await?;
    let mut removal = Cookie::build((CHALLENGE_COOKIE, "")).path("/login").build();
    removal.make_removal();
    crate::http::routes::auth::finish_login(
        &state,
        &user,
        "password+totp",
        &client,
        &next,
        jar.add(removal),
    )
    .await
}
