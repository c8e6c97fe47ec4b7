//! Sign-up, login, logout, password reset links, invitations and policy acceptance.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::wiring::App;
use crate::{
    accounts::{self, Accounts, FormError, Signup},
    auth::{password, throttle},
    db,
    domain::{
        plans::{self, Plan},
        policy::POLICY_VERSION,
    },
    error::{AppError, AppResult},
    http::{
        extract::{ClientInfo, CurrentUser, PageCtx},
        routes::public::is_local_path,
        session::{self, AuthSession},
    },
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/signup", get(signup_page).post(signup))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/app", get(app_home))
        .route("/reset/{token}", get(reset_page).post(reset))
        .route("/forgot", get(forgot_page).post(forgot))
        .route("/invite/{token}", get(invite_page).post(invite_accept))
        .route("/policy", get(policy_page).post(policy_accept))
}

/// Renders a form page again with a 422 and its message (the input is kept).
pub(crate) fn form_error<T: Template>(page: T) -> Response {
    match page.render() {
        Ok(html) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => AppError::Internal(e.into()).into_response(),
    }
}

fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| is_local_path(n))
        .unwrap_or("/app")
        .to_owned()
}

// ---- sign-up ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/signup.html")]
pub(crate) struct SignupPage {
    pub(crate) ctx: PageCtx,
    pub(crate) plans: &'static [Plan],
    pub(crate) plan: String,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) business: String,
    pub(crate) slug: String,
    pub(crate) error: Option<&'static str>,
    pub(crate) policy_version: &'static str,
}

#[derive(Deserialize, Default)]
pub(crate) struct PlanQuery {
    plan: Option<String>,
}

async fn signup_page(ctx: PageCtx, Query(q): Query<PlanQuery>) -> Response {
    if ctx.user.is_some() {
        return Redirect::to("/app").into_response();
    }
    SignupPage {
        ctx,
        plans: plans::PLANS,
        plan: q
            .plan
            .filter(|p| plans::by_id(p).is_some())
            .unwrap_or_else(|| plans::DEFAULT_PLAN.into()),
        name: String::new(),
        email: String::new(),
        business: String::new(),
        slug: String::new(),
        error: None,
        policy_version: POLICY_VERSION,
    }
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignupForm {
    name: String,
    email: String,
    password: String,
    business: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    plan: String,
    accept_policy: Option<String>,
}

async fn signup(
    State(state): State<AppState>,
    State(acct): State<Accounts>,
    ctx: PageCtx,
    client: ClientInfo,
    jar: CookieJar,
    Form(f): Form<SignupForm>,
) -> AppResult<Response> {
    // Sign-ups count against the IP, so one address can't mint endless tenants; a form
    // error gives its attempt back.
    let ip_key = format!("signup:ip:{}", client.ip);
    if let Err(secs) = state.throttle.attempt(&ip_key, throttle::PER_IP).await {
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs,
        });
    }
    let result = accounts::sign_up(
        &acct,
        Signup {
            name: &f.name,
            email: &f.email,
            password: &f.password,
            business: &f.business,
            slug: &f.slug,
            plan: &f.plan,
            accept_policy: f.accept_policy.is_some(),
            language: ctx.lang_code(),
        },
    )
    .await;
    match result {
        Ok(created) => {
            let cookie =
                session::start_session(&state, created.user_id, &client.user_agent, &client.ip)
                    .await?;
            Ok((
                jar.add(cookie),
                Redirect::to(&format!("/t/{}", created.slug)),
            )
                .into_response())
        }
        Err(FormError::Field(key)) => {
            state.throttle.refund(&ip_key).await;
            Ok(form_error(SignupPage {
                ctx,
                plans: plans::PLANS,
                plan: f.plan,
                name: f.name,
                email: f.email,
                business: f.business,
                slug: f.slug,
                error: Some(key),
                policy_version: POLICY_VERSION,
            }))
        }
        Err(FormError::Internal(e)) => Err(e.into()),
    }
}

// ---- login ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/login.html")]
pub(crate) struct LoginPage {
    pub(crate) ctx: PageCtx,
    pub(crate) email: String,
    pub(crate) next: String,
    pub(crate) error: Option<&'static str>,
}

#[derive(Deserialize, Default)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

async fn login_page(ctx: PageCtx, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if ctx.user.is_some() {
        return Redirect::to(&next).into_response();
    }
    LoginPage {
        ctx,
        email: String::new(),
        next,
        error: None,
    }
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

/// Throttle keys never hold the e-mail itself.
fn account_key(email: &str) -> String {
    let h = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("login:acct:{}", hex::encode(&h[..12]))
}

async fn login(
    State(state): State<AppState>,
    ctx: PageCtx,
    client: ClientInfo,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> AppResult<Response> {
    let next = safe_next(Some(&f.next));
    let acct_key = account_key(&f.email);
    let pair_key = format!("{acct_key}:ip:{}", client.ip);
    let ip_key = format!("login:ip:{}", client.ip);
    // Counted before the password is looked at: see `throttle`.
    if let Err(secs) = state
        .throttle
        .attempt_all(&[
            (&pair_key, throttle::PER_ACCOUNT_AND_IP),
            (&acct_key, throttle::PER_ACCOUNT),
            (&ip_key, throttle::PER_IP),
        ])
        .await
    {
        tracing::warn!("login throttled");
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs,
        });
    }
    let email = f.email.trim().to_lowercase();
    let user = if f.password.len() > crate::domain::account::MAX_PASSWORD_BYTES {
        None
    } else {
        db::users::user_by_email(&state.db, &email).await?
    };
    let ok = password::verify(&f.password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    let Some(user) = user.filter(|_| ok) else {
        // The same message whether the account exists or not.
        return Ok(form_error(LoginPage {
            ctx,
            email: f.email,
            next,
            error: Some("login.failed"),
        }));
    };
    state.throttle.clear(&pair_key).await;
    state.throttle.refund(&acct_key).await;
    state.throttle.refund(&ip_key).await;
    if user.has_totp() {
        return crate::http::routes::account::start_second_factor(&state, &user, &next, jar).await;
    }
    finish_login(&state, &user, "password", &client, &next, jar).await
}

/// Starts the session and sends the user on (via the policy page if the policy changed).
pub(crate) async fn finish_login(
    state: &AppState,
    user: &db::users::User,
    method: &str,
    client: &ClientInfo,
    next: &str,
    jar: CookieJar,
) -> AppResult<Response> {
    let cookie = session::start_session(state, user.id, &client.user_agent, &client.ip).await?;
    accounts::audit_login(&Accounts::from_ref(state), user.id, &user.email, method).await?;
    let to = if user.accepted_policy_version != POLICY_VERSION {
        format!(
            "/policy?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )
    } else {
        next.to_owned()
    };
    Ok((jar.add(cookie), Redirect::to(&to)).into_response())
}

async fn logout(
    State(state): State<AppState>,
    me: Option<axum::Extension<AuthSession>>,
    jar: CookieJar,
) -> AppResult<Response> {
    if let Some(me) = me {
        db::sessions::revoke_session(&state.db, me.user.id, me.session_id, state.now()).await?;
    }
    Ok((
        jar.add(session::removal_cookie(&state.config)),
        Redirect::to("/"),
    )
        .into_response())
}

// ---- choosing a tenant ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/choose.html")]
pub(crate) struct ChoosePage {
    pub(crate) ctx: PageCtx,
    pub(crate) tenants: Vec<db::tenants::MyTenant>,
}

/// After login: straight to the only tenant, or a chooser.
async fn app_home(
    State(state): State<AppState>,
    ctx: PageCtx,
    me: CurrentUser,
) -> AppResult<Response> {
    let tenants = db::tenants::tenants_of_user(&state.db, me.user.id).await?;
    if tenants.len() == 1 {
        return Ok(Redirect::to(&format!("/t/{}", tenants[0].slug)).into_response());
    }
    Ok(ChoosePage { ctx, tenants }.into_response())
}

// ---- password reset links ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/reset.html")]
pub(crate) struct ResetPage {
    pub(crate) ctx: PageCtx,
    pub(crate) token: String,
    pub(crate) valid: bool,
    pub(crate) error: Option<&'static str>,
}

async fn reset_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    Path(token): Path<String>,
) -> AppResult<ResetPage> {
    let valid = db::resets::reset_user(
        &state.db,
        &crate::auth::tokens::hash_link_token(&token),
        state.now(),
    )
    .await?
    .is_some();
    Ok(ResetPage {
        ctx,
        token,
        valid,
        error: None,
    })
}

#[derive(Deserialize)]
pub(crate) struct ResetForm {
    password: String,
}

async fn reset(
    State(acct): State<Accounts>,
    ctx: PageCtx,
    Path(token): Path<String>,
    Form(f): Form<ResetForm>,
) -> AppResult<Response> {
    match accounts::complete_reset(&acct, &token, &f.password).await {
        Ok(_) => Ok(crate::http::middleware::redirect_with_flash(
            "/login",
            true,
            "reset.done",
        )),
        Err(FormError::Field(key)) => Ok(form_error(ResetPage {
            ctx,
            valid: key != "reset.invalid",
            token,
            error: Some(key),
        })),
        Err(FormError::Internal(e)) => Err(e.into()),
    }
}

// ---- forgot password (self-service, by e-mail) ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/forgot.html")]
pub(crate) struct ForgotPage {
    pub(crate) ctx: PageCtx,
    /// Whether this server sends e-mail at all (otherwise the page says whom to ask).
    pub(crate) mail: bool,
    pub(crate) sent: bool,
    pub(crate) email: String,
}

async fn forgot_page(State(state): State<AppState>, ctx: PageCtx) -> ForgotPage {
    ForgotPage {
        ctx,
        mail: crate::mail::enabled(&state),
        sent: false,
        email: String::new(),
    }
}

#[derive(Deserialize)]
pub(crate) struct ForgotForm {
    email: String,
}

/// Answers the same whether or not an account uses the address (the e-mail, if any, is
/// sent by a job); counted per client IP and per address before anything is looked up.
async fn forgot(
    State(state): State<AppState>,
    State(acct): State<Accounts>,
    ctx: PageCtx,
    client: ClientInfo,
    Form(f): Form<ForgotForm>,
) -> AppResult<Response> {
    let mail = crate::mail::enabled(&state);
    if !mail {
        return Ok(ForgotPage {
            ctx,
            mail,
            sent: false,
            email: String::new(),
        }
        .into_response());
    }
    let acct_key = format!("forgot:{}", account_key(&f.email));
    let ip_key = format!("forgot:ip:{}", client.ip);
    if let Err(secs) = state
        .throttle
        .attempt_all(&[
            (&acct_key, throttle::FORGOT_PER_ACCOUNT),
            (&ip_key, throttle::PER_IP),
        ])
        .await
    {
        tracing::warn!("forgot-password throttled");
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs,
        });
    }
    if f.email.len() <= 254 {
        accounts::request_reset_email(&acct, &f.email).await?;
    }
    Ok(ForgotPage {
        ctx,
        mail,
        sent: true,
        email: String::new(),
    }
    .into_response())
}

// ---- invitations ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/invite.html")]
pub(crate) struct InvitePage {
    pub(crate) ctx: PageCtx,
    pub(crate) token: String,
    pub(crate) tenant_name: String,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) has_account: bool,
    pub(crate) valid: bool,
    pub(crate) name: String,
    pub(crate) error: Option<&'static str>,
    pub(crate) policy_version: &'static str,
}

async fn invite_view(state: &AppState, ctx: PageCtx, token: String) -> AppResult<InvitePage> {
    let now = state.now();
    let inv = db::invitations::invitation_by_token(
        &state.db,
        &crate::auth::tokens::hash_link_token(&token),
    )
    .await?
    .filter(|i| i.usable(now));
    let Some(inv) = inv else {
        return Ok(InvitePage {
            ctx,
            token,
            tenant_name: String::new(),
            email: String::new(),
            role: String::new(),
            has_account: false,
            valid: false,
            name: String::new(),
            error: Some("invite.invalid"),
            policy_version: POLICY_VERSION,
        });
    };
    let tenant = db::tenants::tenant_by_id(&state.db, inv.tenant_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let has_account = db::users::user_by_email(&state.db, &inv.email)
        .await?
        .is_some();
    Ok(InvitePage {
        ctx,
        token,
        tenant_name: tenant.name,
        email: inv.email,
        role: inv.role,
        has_account,
        valid: true,
        name: String::new(),
        error: None,
        policy_version: POLICY_VERSION,
    })
}

async fn invite_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    Path(token): Path<String>,
) -> AppResult<InvitePage> {
    invite_view(&state, ctx, token).await
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    accept_policy: Option<String>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "an axum handler: each argument is an extractor"
)]
async fn invite_accept(
    State(state): State<AppState>,
    State(acct): State<Accounts>,
    ctx: PageCtx,
    client: ClientInfo,
    session: Option<axum::Extension<AuthSession>>,
    jar: CookieJar,
    Path(token): Path<String>,
    Form(f): Form<InviteForm>,
) -> AppResult<Response> {
    let lang = ctx.lang_code();
    let result = match &session {
        Some(s) => accounts::accept_invitation(&acct, &token, s.user.id, &s.user.email)
            .await
            .map(|slug| (None, slug)),
        None => accounts::accept_invitation_new_account(
            &acct,
            &token,
            &f.name,
            &f.password,
            f.accept_policy.is_some(),
            lang,
        )
        .await
        .map(|(uid, slug)| (Some(uid), slug)),
    };
    match result {
        Ok((new_user, slug)) => {
            let to = format!("/t/{slug}");
            match new_user {
                Some(uid) => {
                    let cookie =
                        session::start_session(&state, uid, &client.user_agent, &client.ip).await?;
                    Ok((jar.add(cookie), Redirect::to(&to)).into_response())
                }
                None => Ok(Redirect::to(&to).into_response()),
            }
        }
        Err(FormError::Field(key)) => {
            let mut page = invite_view(&state, ctx, token).await?;
            page.error = Some(key);
            page.name = f.name;
            Ok(form_error(page))
        }
        Err(FormError::Internal(e)) => Err(e.into()),
    }
}

// ---- policy acceptance ----

#[derive(Template, WebTemplate)]
#[template(path = "auth/policy.html")]
pub(crate) struct PolicyPage {
    pub(crate) ctx: PageCtx,
    pub(crate) next: String,
    pub(crate) accepted: String,
    pub(crate) version: &'static str,
}

async fn policy_page(ctx: PageCtx, me: CurrentUser, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if me.user.accepted_policy_version == POLICY_VERSION {
        return Redirect::to(&next).into_response();
    }
    PolicyPage {
        ctx,
        next,
        accepted: me.user.accepted_policy_version.clone(),
        version: POLICY_VERSION,
    }
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    #[serde(default)]
    next: String,
}

async fn policy_accept(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(f): Form<PolicyForm>,
) -> AppResult<Redirect> {
    db::users::accept_policy(&state.db, me.user.id, POLICY_VERSION, state.now()).await?;
    let now = state.now();
    for t in db::tenants::tenants_of_user(&state.db, me.user.id).await? {
        if let Some(tenant) = db::tenants::tenant_by_slug(&state.db, &t.slug).await? {
            let mut tx = crate::db::begin_tenant(&state.db, tenant.id).await?;
            crate::db::audit::record(
                &mut tx,
                tenant.id,
                &crate::db::audit::Actor::user(me.user.id, &me.user.email),
                "policy.accepted",
                POLICY_VERSION,
                serde_json::json!({}),
                now,
            )
            .await?;
            tx.commit().await?;
        }
    }
    Ok(Redirect::to(&safe_next(Some(&f.next))))
}
