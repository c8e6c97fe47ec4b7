//! The API page (admins): the tenant's API tokens — create one (shown once), see each
//! one's scopes, expiry and last use, revoke it — and the public API docs page that lists
//! the operations of the OpenAPI document (`api::openapi`).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    api::{
        openapi::{self, Operation},
        scopes::Scope,
        tokens,
    },
    db::{self, api_tokens},
    error::{AppError, AppResult},
    http::{
        extract::{Admin, PageCtx, RequireRole, TenantCtx},
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    messaging::view::Clock,
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/api", get(page).post(create))
        .route("/t/{slug}/api/{id}/revoke", post(revoke))
        .route("/api/v1/docs", get(docs))
}

pub(crate) struct TokenView {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) created: String,
    pub(crate) expires: String,
    pub(crate) last_used: String,
    /// `active`, `expired` or `revoked`.
    pub(crate) state: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "api/tokens.html")]
pub(crate) struct TokensPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) tokens: Vec<TokenView>,
    pub(crate) scopes: Vec<(&'static str, &'static str)>,
    pub(crate) expiry_days: Vec<i64>,
    /// The token just created: shown this once, never again.
    pub(crate) new_token: Option<String>,
    pub(crate) error: Option<&'static str>,
    pub(crate) form_name: String,
}

async fn load(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<TokensPage> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let settings = db::tenants::settings(&mut tx).await?;
    let rows = api_tokens::list(&mut tx).await?;
    tx.commit().await?;
    let clock = Clock::new(&settings.time_zone, now);
    let tokens = rows
        .into_iter()
        .map(|r| TokenView {
            id: r.id,
            name: r.name,
            scopes: r.scopes,
            created: clock.full(r.created_at),
            expires: r.expires_at.map(|e| clock.full(e)).unwrap_or_default(),
            last_used: r.last_used_at.map(|e| clock.full(e)).unwrap_or_default(),
            state: if r.revoked_at.is_some() {
                "revoked"
            } else if r.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            },
        })
        .collect();
    Ok(TokensPage {
        ctx,
        shell: Shell::load(state, t, "api").await?,
        tokens,
        scopes: Scope::ALL
            .iter()
            .map(|s| (s.as_str(), s.label_key()))
            .collect(),
        expiry_days: tokens::EXPIRY_DAYS.to_vec(),
        new_token: None,
        error: None,
        form_name: String::new(),
    })
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<TokensPage> {
    load(&state, ctx, &t).await
}

/// The form: `name`, `expires_in_days`, and one `scope:<scope>` checkbox per scope.
async fn create(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<HashMap<String, String>>,
) -> AppResult<Response> {
    let name = f.get("name").cloned().unwrap_or_default();
    let scopes: Vec<String> = f
        .keys()
        .filter_map(|k| k.strip_prefix("scope:"))
        .map(str::to_owned)
        .collect();
    let days = f
        .get("expires_in_days")
        .and_then(|d| d.trim().parse::<i64>().ok())
        .unwrap_or(-1);
    match tokens::check(&name, &scopes, days) {
        Ok((name, scopes)) => {
            let token = tokens::create(&state, t.id(), &t.actor(), &name, &scopes, days).await?;
            let mut page = load(&state, ctx, &t).await?;
            page.new_token = Some(token);
            Ok(page.into_response())
        }
        Err(e) => {
            tracing::warn!(reason = e.message_key(), "api token form refused");
            let mut page = load(&state, ctx, &t).await?;
            page.error = Some(e.message_key());
            page.form_name = name.chars().take(80).collect();
            Ok(form_error(page))
        }
    }
}

async fn revoke(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    if !tokens::revoke(&state, t.id(), &t.actor(), id).await? {
        return Err(AppError::NotFound);
    }
    Ok(redirect_with_flash(
        &format!("/t/{}/api", t.tenant.slug),
        true,
        "api.tokens.revoked",
    ))
}

#[derive(Template, WebTemplate)]
#[template(path = "api/docs.html")]
pub(crate) struct DocsPage {
    pub(crate) ctx: PageCtx,
    pub(crate) operations: Vec<Operation>,
}

/// The API reference: every operation of the OpenAPI document, rendered here.
async fn docs(ctx: PageCtx) -> DocsPage {
    DocsPage {
        ctx,
        operations: openapi::operations(),
    }
}
