//! MCP integrations (admins): the tenant's servers with their health, "test connection",
//! enable/disable, and the per-tool policy (allowed or not, read or write; changed tools
//! disabled until re-approved, with the change shown).

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Path, State},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    db::{self, mcp as db_mcp},
    error::{AppError, AppResult},
    http::{
        extract::{Admin, PageCtx, RequireRole, TenantCtx},
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    mcp::registry::{self, Mcp, NewServerInput},
    messaging::view::Clock,
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/integrations", get(page).post(add))
        .route("/t/{slug}/integrations/{id}/test", post(test))
        .route("/t/{slug}/integrations/{id}/enabled", post(set_enabled))
        .route("/t/{slug}/integrations/{id}/delete", post(delete))
        .route("/t/{slug}/integrations/{id}/tools", post(tool_policy))
}

pub(crate) struct ToolView {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) schema: String,
    pub(crate) allowed: bool,
    pub(crate) risk: String,
    pub(crate) changed: bool,
    pub(crate) changed_description: String,
    pub(crate) changed_schema: String,
    pub(crate) removed: bool,
    /// The version the admin is looking at (the changed listing when there is one): the
    /// form carries it, and approval is refused if the tool changed again meanwhile.
    pub(crate) fingerprint: String,
}

pub(crate) struct ServerView {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    /// Scheme, host and path only: a query string may carry a token.
    pub(crate) url: String,
    pub(crate) auth_kind: String,
    pub(crate) auth_header: String,
    pub(crate) enabled: bool,
    pub(crate) last_success: String,
    /// The last health failure, in the viewer's language (see `ErrorText`).
    pub(crate) last_error: Option<crate::mcp::client::ErrorText>,
    pub(crate) last_error_at: String,
    pub(crate) tools: Vec<ToolView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "integrations/index.html")]
pub(crate) struct IntegrationsPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) servers: Vec<ServerView>,
    pub(crate) error: Option<&'static str>,
    /// The add form's values, kept when it is refused (never the secret).
    pub(crate) form_name: String,
    pub(crate) form_url: String,
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

async fn load(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<IntegrationsPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let settings = db::tenants::settings(&mut tx).await?;
    let clock = Clock::new(&settings.time_zone, state.now());
    let servers = db_mcp::servers(&mut tx).await?;
    let tools = db_mcp::tools(&mut tx, None).await?;
    tx.commit().await?;
    let servers = servers
        .into_iter()
        .map(|s| ServerView {
            id: s.id,
            name: s.name,
            url: display_url(&s.url),
            auth_kind: s.auth_kind,
            auth_header: s.auth_header.unwrap_or_default(),
            enabled: s.enabled,
            last_success: s.last_success_at.map(|t| clock.full(t)).unwrap_or_default(),
            last_error: s
                .last_error
                .as_deref()
                .map(crate::mcp::client::ErrorText::of),
            last_error_at: s.last_error_at.map(|t| clock.full(t)).unwrap_or_default(),
            tools: tools
                .iter()
                .filter(|tool| tool.server_id == s.id)
                .map(|tool| ToolView {
                    name: tool.name.clone(),
                    description: tool.description.clone(),
                    schema: pretty(&tool.input_schema),
                    allowed: tool.allowed,
                    risk: tool.risk.clone(),
                    changed: tool.changed_fingerprint.is_some(),
                    changed_description: tool.changed_description.clone().unwrap_or_default(),
                    changed_schema: tool.changed_schema.as_ref().map(pretty).unwrap_or_default(),
                    removed: tool.removed_at.is_some(),
                    fingerprint: tool
                        .changed_fingerprint
                        .clone()
                        .unwrap_or_else(|| tool.fingerprint.clone()),
                })
                .collect(),
        })
        .collect();
    Ok(IntegrationsPage {
        ctx,
        shell: Shell::load(state, t, "integrations").await?,
        servers,
        error: None,
        form_name: String::new(),
        form_url: String::new(),
    })
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<IntegrationsPage> {
    load(&state, ctx, &t).await
}

fn back(t: &TenantCtx) -> String {
    format!("/t/{}/integrations", t.tenant.slug)
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    name: String,
    url: String,
    #[serde(default)]
    auth_kind: String,
    #[serde(default)]
    auth_header: String,
    #[serde(default)]
    secret: String,
}

async fn add(
    State(state): State<AppState>,
    State(mcp): State<Mcp>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<AddForm>,
) -> AppResult<Response> {
    let input = NewServerInput {
        name: f.name.clone(),
        url: f.url.clone(),
        auth_kind: if f.auth_kind.is_empty() {
            "none".into()
        } else {
            f.auth_kind.clone()
        },
        auth_header: f.auth_header,
        secret: f.secret,
    };
    match registry::add_server(&mcp, t.id(), &t.actor(), &input).await {
        Ok(_) => Ok(redirect_with_flash(&back(&t), true, "mcp.added")),
        Err("error.internal") => Err(AppError::Internal(anyhow::anyhow!(
            "storing an MCP server failed"
        ))),
        Err(key) => {
            let mut page = load(&state, ctx, &t).await?;
            page.error = Some(key);
            page.form_name = f.name;
            page.form_url = display_url(&f.url);
            Ok(form_error(page))
        }
    }
}

async fn server_or_404(state: &AppState, t: &TenantCtx, id: Uuid) -> AppResult<db_mcp::Server> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let s = db_mcp::server(&mut tx, id).await?;
    tx.commit().await?;
    s.ok_or(AppError::NotFound)
}

async fn test(
    State(state): State<AppState>,
    State(mcp): State<Mcp>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let s = server_or_404(&state, &t, id).await?;
    Ok(match registry::test_connection(&mcp, &s).await {
        Ok((_, report)) if !report.changed.is_empty() => {
            redirect_with_flash(&back(&t), false, "mcp.test.changed")
        }
        Ok(_) => redirect_with_flash(&back(&t), true, "mcp.test.ok"),
        Err(_) => redirect_with_flash(&back(&t), false, "mcp.test.failed"),
    })
}

#[derive(Deserialize)]
pub(crate) struct EnabledForm {
    #[serde(default)]
    enabled: String,
}

async fn set_enabled(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<EnabledForm>,
) -> AppResult<Response> {
    let enabled = f.enabled == "1";
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_mcp::set_enabled(&mut tx, id, enabled, now).await? {
        return Err(AppError::NotFound);
    }
    tx.audit(
        if enabled {
            "mcp.server_enabled"
        } else {
            "mcp.server_disabled"
        },
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(&back(&t), true, "settings.saved"))
}

async fn delete(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_mcp::delete_server(&mut tx, id).await? {
        return Err(AppError::NotFound);
    }
    tx.audit("mcp.server_deleted", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(&back(&t), true, "mcp.deleted"))
}

#[derive(Deserialize)]
pub(crate) struct ToolForm {
    tool: String,
    #[serde(default)]
    allowed: String,
    risk: String,
    /// The fingerprint of the version shown to the admin.
    #[serde(default)]
    fingerprint: String,
}

async fn tool_policy(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<ToolForm>,
) -> AppResult<Response> {
    if !matches!(f.risk.as_str(), "read" | "write") {
        return Ok(redirect_with_flash(&back(&t), false, "mcp.risk.invalid"));
    }
    let allowed = f.allowed == "1";
    let user = t.actor().id.ok_or(AppError::NotFound)?;
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_mcp::set_policy(
        &mut tx,
        id,
        &f.tool,
        allowed,
        &f.risk,
        &f.fingerprint,
        user,
        now,
    )
    .await?
    {
        let exists = db_mcp::tools(&mut tx, Some(id))
            .await?
            .iter()
            .any(|x| x.name == f.tool && x.removed_at.is_none());
        if !exists {
            return Err(AppError::NotFound);
        }
        // What the admin approved is not what is stored now: show them the new version.
        tracing::warn!(tenant = %t.id(), server = %id, "tool approval refused: the tool changed since the page was shown");
        return Ok(redirect_with_flash(
            &back(&t),
            false,
            "mcp.tool.changed_meanwhile",
        ));
    }
    tx.audit(
        "mcp.tool_policy",
        &f.tool,
        json!({ "server": id, "allowed": allowed, "risk": f.risk }),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(&back(&t), true, "mcp.policy_saved"))
}
