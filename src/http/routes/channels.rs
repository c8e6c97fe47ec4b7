//! Channels: connect WhatsApp numbers through Evolution API or Meta's Cloud API, see their
//! health, and (Evolution) configure the webhook and pair or reconnect the phone.

use crate::messaging::Messaging;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Form, Router,
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    db::{self},
    domain::plans,
    error::{AppError, AppResult},
    gateway::{SendError, evolution::ConnectOutcome},
    http::{
        extract::{Admin, PageCtx, RequireRole, TenantCtx},
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    messaging::channel::{self, NewChannelInput, Outbound},
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/channels", get(page))
        .route("/t/{slug}/channels/evolution", post(add_evolution))
        .route("/t/{slug}/channels/meta", post(add_meta))
        .route("/t/{slug}/channels/{id}/webhook", post(configure_webhook))
        .route("/t/{slug}/channels/{id}/connect", post(connect))
        .route("/t/{slug}/channels/{id}/delete", post(delete))
        .route("/t/{slug}/channels/{id}/templates", post(sync_templates))
}

/// What to tell the admin when a gateway call failed: whether we could not reach it at all,
/// it didn't answer, it refused our key, it doesn't know the instance, or it refused.
pub(crate) fn gateway_error_key(e: &SendError) -> &'static str {
    match e {
        SendError::Retryable { status: None, .. } => "channels.gateway_unreachable",
        SendError::Unknown { .. } => "channels.gateway_timeout",
        SendError::Rejected {
            status: 401 | 403, ..
        } => "channels.gateway_auth",
        SendError::Rejected { status: 404, .. } => "channels.gateway_not_found",
        SendError::Retryable { .. } => "channels.gateway_down",
        _ => "channels.gateway_error",
    }
}

pub(crate) struct ChannelView {
    pub(crate) id: Uuid,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) health: String,
    pub(crate) health_detail: String,
    pub(crate) webhook_url: String,
    pub(crate) detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "channels/index.html")]
pub(crate) struct ChannelsPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) channels: Vec<ChannelView>,
    pub(crate) error: Option<&'static str>,
    /// Shown once after creating a channel: (channel name, webhook URL, secret).
    pub(crate) created: Option<(String, String, String)>,
    /// A QR code (rendered by us) or pairing code while linking a phone.
    pub(crate) pairing: Option<(String, Option<String>, Option<String>)>,
    pub(crate) can_add: bool,
}

async fn load(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<ChannelsPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let rows = db::channels::list(&mut tx).await?;
    tx.commit().await?;
    let plan = plans::by_id(&t.tenant.plan).unwrap_or(&plans::PLANS[0]);
    let real = rows.iter().filter(|c| c.kind != "simulator").count() as u32;
    let messaging = Messaging::from_ref(state);
    Ok(ChannelsPage {
        ctx,
        shell: Shell::load(state, t, "channels").await?,
        channels: rows
            .iter()
            .filter(|c| c.kind != "simulator")
            .map(|c| ChannelView {
                id: c.id,
                kind: c.kind.clone(),
                name: c.name.clone(),
                health: c.health.clone(),
                health_detail: c.health_detail.clone(),
                webhook_url: channel::webhook_url(&messaging, c),
                detail: match c.kind.as_str() {
                    "evolution" => format!(
                        "{} · {}",
                        c.config
                            .get("base_url")
                            .and_then(|v| v.as_str())
                            .unwrap_or(""),
                        c.config
                            .get("instance")
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                    ),
                    _ => c
                        .config
                        .get("phone_number_id")
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_owned(),
                },
            })
            .collect(),
        error: None,
        created: None,
        pairing: None,
        can_add: real < plan.channels,
    })
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<ChannelsPage> {
    load(&state, ctx, &t).await
}

fn clean(s: &str, max: usize) -> Result<String, &'static str> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err("channels.field.invalid");
    }
    Ok(s.to_owned())
}

async fn created_page(
    state: &AppState,
    ctx: PageCtx,
    t: &TenantCtx,
    id: Uuid,
    name: &str,
    secret: Option<String>,
) -> AppResult<Response> {
    let mut page = load(state, ctx, t).await?;
    let url = page
        .channels
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.webhook_url.clone())
        .unwrap_or_default();
    page.created = Some((name.to_owned(), url, secret.unwrap_or_default()));
    Ok(page.into_response())
}

async fn refuse(
    state: &AppState,
    ctx: PageCtx,
    t: &TenantCtx,
    key: &'static str,
) -> AppResult<Response> {
    let mut page = load(state, ctx, t).await?;
    page.error = Some(key);
    Ok(form_error(page))
}

#[derive(Deserialize)]
pub(crate) struct EvolutionForm {
    name: String,
    base_url: String,
    instance: String,
    api_key: String,
}

async fn add_evolution(
    State(state): State<AppState>,
    State(messaging): State<Messaging>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<EvolutionForm>,
) -> AppResult<Response> {
    if !load(&state, ctx.clone(), &t).await?.can_add {
        return refuse(&state, ctx, &t, "channels.limit").await;
    }
    let base_url = channel::check_gateway_url(&messaging, &f.base_url).await;
    let parsed = (|| {
        Ok::<_, &'static str>((
            clean(&f.name, 80)?,
            base_url?,
            clean(&f.instance, 100)?,
            clean(&f.api_key, 500)?,
        ))
    })();
    let (name, base_url, instance, api_key) = match parsed {
        Ok(v) => v,
        Err(key) => return refuse(&state, ctx, &t, key).await,
    };
    let (id, secret) = channel::create(
        &messaging,
        t.id(),
        &t.actor(),
        &name,
        NewChannelInput::Evolution {
            base_url,
            instance,
            api_key,
        },
    )
    .await?;
    created_page(&state, ctx, &t, id, &name, secret).await
}

#[derive(Deserialize)]
pub(crate) struct MetaForm {
    name: String,
    phone_number_id: String,
    waba_id: String,
    access_token: String,
    app_secret: String,
}

async fn add_meta(
    State(state): State<AppState>,
    State(messaging): State<Messaging>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<MetaForm>,
) -> AppResult<Response> {
    if !load(&state, ctx.clone(), &t).await?.can_add {
        return refuse(&state, ctx, &t, "channels.limit").await;
    }
    let digits = |s: &str| -> Result<String, &'static str> {
        let s = s.trim();
        if s.is_empty() || s.len() > 30 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err("channels.meta.id");
        }
        Ok(s.to_owned())
    };
    let parsed = (|| {
        Ok::<_, &'static str>((
            clean(&f.name, 80)?,
            digits(&f.phone_number_id)?,
            digits(&f.waba_id)?,
            clean(&f.access_token, 1000)?,
            clean(&f.app_secret, 200)?,
        ))
    })();
    let (name, phone_number_id, waba_id, access_token, app_secret) = match parsed {
        Ok(v) => v,
        Err(key) => return refuse(&state, ctx, &t, key).await,
    };
    let (id, token) = channel::create(
        &messaging,
        t.id(),
        &t.actor(),
        &name,
        NewChannelInput::Meta {
            phone_number_id,
            waba_id,
            access_token,
            app_secret,
        },
    )
    .await?;
    created_page(&state, ctx, &t, id, &name, token).await
}

async fn get_channel(
    state: &AppState,
    t: &TenantCtx,
    id: Uuid,
) -> AppResult<db::channels::Channel> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let c = db::channels::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(c)
}

/// Calls Evolution's webhook/set with our URL and secret, so nobody has to paste them.
async fn configure_webhook(
    State(state): State<AppState>,
    State(messaging): State<Messaging>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let c = get_channel(&state, &t, id).await?;
    let back = format!("/t/{}/channels", t.tenant.slug);
    let Outbound::Evolution(client) = channel::outbound(&messaging, &c).await? else {
        return Err(AppError::NotFound);
    };
    let secret = SecretString::from(
        channel::secrets(&messaging, &c)
            .await?
            .webhook_secret
            .unwrap_or_default(),
    );
    let events = crate::gateway::evolution::DEFAULT_WEBHOOK_EVENTS;
    match client
        .set_webhook(&channel::webhook_url(&messaging, &c), &secret, events)
        .await
    {
        Ok(()) => {
            let mut tx = t.begin(&state).await?;
            tx.audit("channel.webhook_set", &id.to_string(), json!({}))
                .await?;
            tx.commit().await?;
            Ok(redirect_with_flash(&back, true, "channels.webhook_set"))
        }
        Err(e) => {
            tracing::warn!(channel = %id, error = %e, "evolution webhook/set failed");
            Ok(redirect_with_flash(&back, false, gateway_error_key(&e)))
        }
    }
}

/// Pairs (QR or pairing code) or reconnects an Evolution instance, and records its state.
async fn connect(
    State(state): State<AppState>,
    State(messaging): State<Messaging>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let c = get_channel(&state, &t, id).await?;
    let back = format!("/t/{}/channels", t.tenant.slug);
    let Outbound::Evolution(client) = channel::outbound(&messaging, &c).await? else {
        return Err(AppError::NotFound);
    };
    let outcome = client.connect(None).await;
    let (health, prompt) = match outcome {
        Ok(ConnectOutcome::Open) => ("connected", None),
        Ok(ConnectOutcome::Pairing(p)) => ("connecting", Some(p)),
        Err(e) => {
            tracing::warn!(channel = %id, error = %e, "evolution connect failed");
            return Ok(redirect_with_flash(&back, false, gateway_error_key(&e)));
        }
    };
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    db::channels::set_health(&mut tx, id, health, "", state.now()).await?;
    tx.commit().await?;
    let Some(p) = prompt else {
        return Ok(redirect_with_flash(&back, true, "channels.connected"));
    };
    let mut page = load(&state, ctx, &t).await?;
    let qr = p
        .qr_code
        .as_deref()
        .and_then(|code| crate::auth::totp::qr_svg(code).ok());
    page.pairing = Some((c.name.clone(), qr, p.pairing_code.clone()));
    Ok(page.into_response())
}

async fn delete(
    State(state): State<AppState>,
    State(routes): State<std::sync::Arc<crate::messaging::channel::RouteCache>>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let mut tx = t.begin(&state).await?;
    let now = tx.now();
    if !db::channels::delete(&mut tx, id, now).await? {
        return Err(AppError::NotFound);
    }
    routes.forget(id);
    tx.audit("channel.deleted", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/channels", t.tenant.slug),
        true,
        "channels.deleted",
    ))
}

/// Syncs a Meta channel's approved message templates (for use outside the 24-hour window).
async fn sync_templates(
    State(state): State<AppState>,
    State(messaging): State<Messaging>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let c = get_channel(&state, &t, id).await?;
    let back = format!("/t/{}/channels", t.tenant.slug);
    let Outbound::Meta(client) = channel::outbound(&messaging, &c).await? else {
        return Err(AppError::NotFound);
    };
    let waba = c
        .config
        .get("waba_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let listed = match client.list_templates(&waba).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(channel = %id, error = %e, "template sync failed");
            return Ok(redirect_with_flash(&back, false, gateway_error_key(&e)));
        }
    };
    let approved: Vec<(String, String, String, String, i32)> = listed
        .iter()
        .filter(|t| t.status.eq_ignore_ascii_case("APPROVED"))
        .map(|t| {
            let body = t.body_text().unwrap_or("").to_owned();
            let params = crate::messaging::send::template_params(&body);
            (
                t.name.clone(),
                t.language.clone(),
                t.category.clone().unwrap_or_default(),
                body,
                params,
            )
        })
        .collect();
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    db::templates::replace(&mut tx, t.id(), id, &approved, now).await?;
    tx.audit(
        "channel.templates_synced",
        &id.to_string(),
        json!({ "approved": approved.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &back,
        true,
        "channels.templates_synced",
    ))
}
