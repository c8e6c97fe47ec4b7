//! Outgoing webhooks (admins): endpoints with their events and text opt-in, the signing
//! secret shown once, the failing-endpoint alert, the delivery log with response codes and
//! timing, "send test event" and "replay". Not the inbound gateway hooks (`http::webhooks`).

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Path, State},
    response::Response,
    routing::{get, post},
};
use serde_json::json;
use uuid::Uuid;

use crate::domain::events::DeliveryState;
use crate::wiring::App;
use crate::{
    db::{self, outgoing as db_out},
    domain::events,
    error::{AppError, AppResult},
    http::{
        extract::{Admin, PageCtx, RequireRole, TenantCtx},
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    messaging::Messaging,
    messaging::{
        view::Clock,
        webhook_delivery::{self, NewEndpointInput},
    },
    outgoing,
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/webhooks", get(page).post(add))
        .route("/t/{slug}/webhooks/{id}", get(endpoint_page))
        .route("/t/{slug}/webhooks/{id}/settings", post(settings))
        .route("/t/{slug}/webhooks/{id}/enabled", post(set_enabled))
        .route("/t/{slug}/webhooks/{id}/test", post(send_test))
        .route("/t/{slug}/webhooks/{id}/delete", post(delete))
        .route(
            "/t/{slug}/webhooks/{id}/deliveries/{delivery}/replay",
            post(replay),
        )
}

/// How many deliveries the log shows.
pub(crate) const LOG_LIMIT: i64 = 50;

pub(crate) struct EndpointView {
    pub(crate) id: Uuid,
    pub(crate) url: String,
    pub(crate) description: String,
    pub(crate) events: Vec<String>,
    pub(crate) include_text: bool,
    pub(crate) enabled: bool,
    /// Disabled by the platform after a day of failures (the alert).
    pub(crate) failing: bool,
    pub(crate) last_success: String,
    pub(crate) last_failure: String,
}

impl EndpointView {
    /// `/webhooks/{id}/{rest}`, for the page's forms (`Shell::href` adds the tenant).
    pub(crate) fn action(&self, rest: &str) -> String {
        format!("/webhooks/{}/{rest}", self.id)
    }

    pub(crate) fn listens(&self, event: &&str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

fn view(e: db_out::Endpoint, clock: &Clock) -> EndpointView {
    EndpointView {
        id: e.id,
        url: outgoing::display_url(&e.url),
        description: e.description,
        failing: !e.enabled && e.disabled_reason.as_deref() == Some("failing"),
        enabled: e.enabled,
        events: e.events,
        include_text: e.include_text,
        last_success: e.last_success_at.map(|t| clock.full(t)).unwrap_or_default(),
        last_failure: e.last_failure_at.map(|t| clock.full(t)).unwrap_or_default(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/index.html")]
pub(crate) struct WebhooksPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) endpoints: Vec<EndpointView>,
    pub(crate) all_events: &'static [&'static str],
    pub(crate) failing: usize,
    pub(crate) error: Option<&'static str>,
    pub(crate) form_url: String,
    pub(crate) form_description: String,
    /// The endpoint just created and its signing secret, shown this once.
    pub(crate) created: Option<(Uuid, String)>,
}

fn back(t: &TenantCtx) -> String {
    format!("/t/{}/webhooks", t.tenant.slug)
}

fn back_to(t: &TenantCtx, id: Uuid) -> String {
    format!("/t/{}/webhooks/{id}", t.tenant.slug)
}

async fn load(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<WebhooksPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let tz = db::tenants::settings(&mut tx).await?.time_zone;
    let clock = Clock::new(&tz, state.now());
    let endpoints: Vec<EndpointView> = db_out::endpoints(&mut tx)
        .await?
        .into_iter()
        .map(|e| view(e, &clock))
        .collect();
    tx.commit().await?;
    Ok(WebhooksPage {
        ctx,
        shell: Shell::load(state, t, "webhooks").await?,
        failing: endpoints.iter().filter(|e| e.failing).count(),
        endpoints,
        all_events: &events::ALL,
        error: None,
        form_url: String::new(),
        form_description: String::new(),
        created: None,
    })
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<WebhooksPage> {
    load(&state, ctx, &t).await
}

/// A form's fields, repeated ones (the event checkboxes) included.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn add(
    State(state): State<AppState>,
    State(messaging): State<Messaging>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let f = Fields(f);
    let input = NewEndpointInput {
        url: f.get("url").to_owned(),
        description: f.get("description").to_owned(),
        events: f.all("event"),
        include_text: f.get("include_text") == "1",
    };
    match webhook_delivery::add_endpoint(&messaging, t.id(), &t.actor(), &input).await {
        Ok((id, secret)) => {
            let mut page = load(&state, ctx, &t).await?;
            page.created = Some((id, secret.to_string()));
            use axum::response::IntoResponse;
            Ok(page.into_response())
        }
        Err("error.internal") => Err(AppError::Internal(anyhow::anyhow!(
            "storing a webhook endpoint failed"
        ))),
        Err(key) => {
            tracing::warn!(tenant = %t.id(), reason = key, "webhook endpoint refused");
            let mut page = load(&state, ctx, &t).await?;
            page.error = Some(key);
            page.form_url = outgoing::display_url(&input.url);
            page.form_description = input.description.chars().take(200).collect();
            Ok(form_error(page))
        }
    }
}

pub(crate) struct AttemptView {
    pub(crate) at: String,
    pub(crate) status: String,
    pub(crate) ok: bool,
    pub(crate) duration_ms: i32,
}

pub(crate) struct DeliveryView {
    pub(crate) id: Uuid,
    pub(crate) msg_id: String,
    /// `deliveries/{id}/replay`, under the endpoint's path.
    pub(crate) replay_path: String,
    pub(crate) event_type: String,
    pub(crate) state: String,
    pub(crate) created: String,
    pub(crate) next_attempt: String,
    pub(crate) attempts: Vec<AttemptView>,
}

#[derive(Template, WebTemplate)]
#[template(path = "webhooks/endpoint.html")]
pub(crate) struct EndpointPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) e: EndpointView,
    pub(crate) all_events: &'static [&'static str],
    pub(crate) deliveries: Vec<DeliveryView>,
}

async fn endpoint_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<EndpointPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let tz = db::tenants::settings(&mut tx).await?.time_zone;
    let clock = Clock::new(&tz, state.now());
    let e = db_out::endpoint(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let deliveries = db_out::deliveries(&mut tx, id, LOG_LIMIT).await?;
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let attempts = db_out::attempts(&mut tx, &ids).await?;
    tx.commit().await?;
    let deliveries = deliveries
        .into_iter()
        .map(|d| DeliveryView {
            id: d.id,
            msg_id: outgoing::signing::message_id(d.id),
            replay_path: format!("deliveries/{}/replay", d.id),
            event_type: d.event_type,
            created: clock.full(d.created_at),
            next_attempt: match (DeliveryState::parse(&d.state), d.next_attempt_at) {
                (Some(DeliveryState::Pending), Some(at)) => clock.full(at),
                _ => String::new(),
            },
            state: d.state,
            attempts: attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .map(|a| AttemptView {
                    at: clock.full(a.attempted_at),
                    ok: a.status.is_some_and(|s| (200..300).contains(&s)),
                    status: match (a.status, &a.error) {
                        (Some(s), _) => s.to_string(),
                        (None, Some(e)) => e.clone(),
                        (None, None) => String::new(),
                    },
                    duration_ms: a.duration_ms,
                })
                .collect(),
        })
        .collect();
    Ok(EndpointPage {
        ctx,
        shell: Shell::load(&state, &t, "webhooks").await?,
        e: view(e, &clock),
        all_events: &events::ALL,
        deliveries,
    })
}

async fn settings(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let f = Fields(f);
    let events = match outgoing::parse_events(&f.all("event")) {
        Ok(e) => e,
        Err(key) => return Ok(redirect_with_flash(&back_to(&t, id), false, key)),
    };
    let include_text = f.get("include_text") == "1";
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    let before = db_out::endpoint(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    db_out::set_subscription(&mut tx, id, &events, include_text, now).await?;
    tx.audit(
        "webhook.endpoint_changed",
        &id.to_string(),
        json!({ "events": events, "include_text": include_text }),
    )
    .await?;
    if include_text != before.include_text {
        // The processing record: from now on this endpoint receives message text.
        tx.audit(
            if include_text {
                "webhook.text_opt_in"
            } else {
                "webhook.text_opt_out"
            },
            &id.to_string(),
            json!({ "host": outgoing::recipient_name(&before.url) }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(redirect_with_flash(
        &back_to(&t, id),
        true,
        "settings.saved",
    ))
}

async fn set_enabled(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let enabled = Fields(f).get("enabled") == "1";
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_out::set_enabled(&mut tx, id, enabled, Some("manual"), now).await? {
        return Err(AppError::NotFound);
    }
    tx.audit(
        if enabled {
            "webhook.endpoint_enabled"
        } else {
            "webhook.endpoint_disabled"
        },
        &id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &back_to(&t, id),
        true,
        "settings.saved",
    ))
}

async fn send_test(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let e = db_out::endpoint(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !e.enabled {
        return Ok(redirect_with_flash(
            &back_to(&t, id),
            false,
            "webhooks.test.disabled",
        ));
    }
    let data = json!({ "endpoint_id": id, "test": true });
    db_out::emit_to(&mut tx, t.id(), id, events::TEST, &data, now).await?;
    db::jobs::notify_workers(&mut tx).await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &back_to(&t, id),
        true,
        "webhooks.test.queued",
    ))
}

async fn delete(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_out::delete_endpoint(&mut tx, id).await? {
        return Err(AppError::NotFound);
    }
    tx.audit("webhook.endpoint_deleted", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(&back(&t), true, "webhooks.deleted"))
}

async fn replay(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id, delivery)): Path<(String, Uuid, Uuid)>,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    let d = db_out::delivery(&mut tx, delivery)
        .await?
        .filter(|d| d.endpoint_id == id)
        .ok_or(AppError::NotFound)?;
    let e = db_out::endpoint(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !e.enabled {
        return Ok(redirect_with_flash(
            &back_to(&t, id),
            false,
            "webhooks.test.disabled",
        ));
    }
    if !db_out::replay(&mut tx, t.id(), d.id, now).await? {
        return Ok(redirect_with_flash(
            &back_to(&t, id),
            false,
            "webhooks.replay.pending",
        ));
    }
    tx.audit(
        "webhook.delivery_replayed",
        &d.id.to_string(),
        json!({ "endpoint": id, "event": d.event_type }),
    )
    .await?;
    db::jobs::notify_workers(&mut tx).await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &back_to(&t, id),
        true,
        "webhooks.replay.queued",
    ))
}
