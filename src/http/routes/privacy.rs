//! The privacy area: retention settings, data-subject requests (deadlines, history,
//! overdue), exports, erasure and restriction, direct deletion, the processing record,
//! and tenant export and termination.

use crate::messaging::Messaging;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    db::{self, ai as db_ai, audit, privacy as dbp},
    domain::{
        phone::Phone,
        plans,
        retention::{AuditRetention, MAX_AUDIT_DAYS, MIN_AUDIT_DAYS},
    },
    error::{AppError, AppResult},
    http::{
        extract::{Admin, Owner, PageCtx, RequireRole, TenantCtx},
        form::FieldErrors,
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    messaging::view::{self, Clock},
    privacy::{self, Privacy, erase, export, retention},
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/privacy", get(page))
        .route("/t/{slug}/privacy/settings", post(save_settings))
        .route("/t/{slug}/privacy/requests", post(open_request))
        .route("/t/{slug}/privacy/requests/{id}", get(request_page))
        .route("/t/{slug}/privacy/requests/{id}/status", post(set_status))
        .route("/t/{slug}/privacy/requests/{id}/erase", post(erase_now))
        .route("/t/{slug}/privacy/requests/{id}/restrict", post(restrict))
        .route(
            "/t/{slug}/privacy/requests/{id}/export.json",
            get(export_json),
        )
        .route(
            "/t/{slug}/privacy/requests/{id}/export.html",
            get(export_html),
        )
        .route("/t/{slug}/contacts/{id}/erase", post(erase_contact_direct))
        .route(
            "/t/{slug}/conversations/{id}/delete",
            post(delete_conversation),
        )
        .route("/t/{slug}/export.json", get(tenant_export))
        .route("/t/{slug}/terminate", post(terminate))
        .route("/t/{slug}/terminate/cancel", post(cancel_termination))
}

pub(crate) struct RequestRow {
    pub(crate) id: Uuid,
    /// Whose request: the contact's name or number ("—" once erased).
    pub(crate) who: String,
    pub(crate) kind: String,
    pub(crate) legal_basis: String,
    pub(crate) status: String,
    pub(crate) source: String,
    pub(crate) received: String,
    pub(crate) due: String,
    pub(crate) overdue: bool,
    pub(crate) days_left: i64,
}

pub(crate) struct RecipientRow {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) contacts: i64,
    pub(crate) last: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "privacy/index.html")]
pub(crate) struct PrivacyPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) requests: Vec<RequestRow>,
    pub(crate) overdue: usize,
    pub(crate) tombstones: Vec<(String, String, String, String)>,
    pub(crate) runs: Vec<(String, i32, i32, i32, i32, i32)>,
    pub(crate) recipients: Vec<RecipientRow>,
    pub(crate) ai_provider: String,
    /// Retention fields as shown: the stored values, or what was typed when refused.
    pub(crate) message_days: String,
    pub(crate) max_message_days: u32,
    pub(crate) media_days: String,
    pub(crate) ai_trace_days: String,
    /// Empty: the audit log is kept for the life of the account.
    pub(crate) audit_days: String,
    pub(crate) min_audit_days: i32,
    pub(crate) max_audit_days: i32,
    pub(crate) audit_days_hint: String,
    pub(crate) keywords: String,
    pub(crate) legal_basis: String,
    pub(crate) terminate_at: Option<String>,
    /// The plan's retention is below what was set: (days kept now, messages the next sweep removes).
    pub(crate) retention_notice: Option<(i32, i64)>,
    pub(crate) error: Option<&'static str>,
    /// The retention form's errors, each beside its field.
    pub(crate) errors: FieldErrors,
    /// The request list's filter (empty: all).
    pub(crate) show: String,
}

async fn load(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<PrivacyPage> {
    let messaging = Messaging::from_ref(state);
    let tenant = t.id();
    let now = state.now();
    let plan = plans::by_id(&t.tenant.plan).unwrap_or(&plans::PLANS[0]);
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let tz = db::tenants::settings(&mut tx).await?.time_zone;
    let clock = Clock::new(&tz, now);
    let stored = privacy::stored_settings(&mut tx, plan).await?;
    let s = privacy::settings(&mut tx, plan).await?;
    let retention_notice = if stored.message_days > s.message_days {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE sent_at < $1")
            .bind(now - time::Duration::days(i64::from(s.message_days)))
            .fetch_one(&mut *tx)
            .await?;
        Some((s.message_days, n))
    } else {
        None
    };
    let requests = dbp::requests(&mut tx, 200).await?;
    let ids: Vec<Uuid> = requests.iter().map(|r| r.contact_id).collect();
    let contacts = db::contacts::get_many(&mut tx, &ids).await?;
    let tombstones = dbp::tombstones(&mut tx, 20).await?;
    let runs = dbp::runs(&mut tx, 10).await?;
    let ai = db_ai::settings(&mut tx).await?;
    let recipients: Vec<(String, String, i64, time::OffsetDateTime)> =
        sqlx::query_as("SELECT kind, name, count(*), max(last_at) FROM data_recipients GROUP BY kind, name ORDER BY kind, name").fetch_all(&mut *tx).await?;
    tx.commit().await?;
    let term = dbp::termination(&state.db, tenant).await?;
    let mut who = std::collections::HashMap::with_capacity(contacts.len());
    for c in &contacts {
        who.insert(c.id, view::contact(&messaging, tenant, c).await.label());
    }
    let rows: Vec<RequestRow> = requests
        .into_iter()
        .map(|r| {
            let open = !matches!(r.status.as_str(), "completed" | "denied");
            RequestRow {
                id: r.id,
                who: who
                    .get(&r.contact_id)
                    .cloned()
                    .unwrap_or_else(|| "—".into()),
                overdue: open && r.due_at < now,
                days_left: (r.due_at - now).whole_days(),
                kind: r.kind,
                legal_basis: r.legal_basis,
                status: r.status,
                source: r.source,
                received: clock.full(r.received_at),
                due: clock.full(r.due_at),
            }
        })
        .collect();
    let audit_days_hint = ctx.f(
        "privacy.audit_days.hint",
        &[&MIN_AUDIT_DAYS, &MAX_AUDIT_DAYS],
    );
    Ok(PrivacyPage {
        ctx,
        shell: Shell::load(state, t, "privacy").await?,
        overdue: rows.iter().filter(|r| r.overdue).count(),
        requests: rows,
        tombstones: tombstones
            .into_iter()
            .map(|t| {
                (
                    clock.full(t.erased_at),
                    t.reason,
                    t.erased_by,
                    t.recipients
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|r| r.get("name").and_then(|n| n.as_str()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                )
            })
            .collect(),
        runs: runs
            .into_iter()
            .map(|r| {
                (
                    clock.full(r.at),
                    r.messages,
                    r.media,
                    r.drafts,
                    r.contacts,
                    r.audit_entries,
                )
            })
            .collect(),
        recipients: recipients
            .into_iter()
            .map(|(kind, name, contacts, last)| RecipientRow {
                kind,
                name,
                contacts,
                last: clock.full(last),
            })
            .collect(),
        ai_provider: ai.provider,
        message_days: s.message_days.to_string(),
        max_message_days: plan.retention_days(),
        media_days: s.media_days.map(|d| d.to_string()).unwrap_or_default(),
        ai_trace_days: s.ai_trace_days.to_string(),
        audit_days: s.audit_days.map(|d| d.to_string()).unwrap_or_default(),
        min_audit_days: MIN_AUDIT_DAYS,
        max_audit_days: MAX_AUDIT_DAYS,
        audit_days_hint,
        keywords: s.dsr_keywords.join("\n"),
        legal_basis: s.default_legal_basis,
        terminate_at: term.terminate_at.map(|t| clock.full(t)),
        retention_notice,
        error: None,
        errors: FieldErrors::default(),
        show: String::new(),
    })
}

#[derive(Deserialize, Default)]
pub(crate) struct RequestFilter {
    /// `open`, `overdue` or `closed`; anything else shows every request.
    #[serde(default)]
    show: String,
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Query(f): Query<RequestFilter>,
) -> AppResult<PrivacyPage> {
    let mut page = load(&state, ctx, &t).await?;
    let closed = |r: &RequestRow| matches!(r.status.as_str(), "completed" | "denied");
    match f.show.as_str() {
        "open" => page.requests.retain(|r| !closed(r)),
        "overdue" => page.requests.retain(|r| r.overdue),
        "closed" => page.requests.retain(closed),
        _ => {}
    }
    page.show = match f.show.as_str() {
        s @ ("open" | "overdue" | "closed") => s.to_owned(),
        _ => String::new(),
    };
    Ok(page)
}

#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    message_days: String,
    #[serde(default)]
    media_days: String,
    ai_trace_days: String,
    /// Empty (or absent): kept for the life of the account.
    #[serde(default)]
    audit_days: String,
    #[serde(default)]
    keywords: String,
    legal_basis: String,
}

async fn save_settings(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<SettingsForm>,
) -> AppResult<Response> {
    let plan = plans::by_id(&t.tenant.plan).unwrap_or(&plans::PLANS[0]);
    let (s, errors) = parse_settings(&f, plan);
    if !errors.is_empty() {
        let mut page = load(&state, ctx, &t).await?;
        page.errors = errors;
        // Everything typed stays, so each refusal can be read beside what caused it.
        let typed = |v: &str| v.trim().chars().take(12).collect::<String>();
        page.message_days = typed(&f.message_days);
        page.media_days = typed(&f.media_days);
        page.ai_trace_days = typed(&f.ai_trace_days);
        page.audit_days = typed(&f.audit_days);
        page.keywords = f.keywords.chars().take(1000).collect();
        page.legal_basis = f.legal_basis.clone();
        return Ok(form_error(page));
    }
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    dbp::save_settings(&mut tx, t.id(), &s, now).await?;
    tx.audit("privacy.settings_changed", "", json!({ "message_days": s.message_days, "media_days": s.media_days, "ai_trace_days": s.ai_trace_days, "audit_days": s.audit_days })).await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/privacy", t.tenant.slug),
        true,
        "settings.saved",
    ))
}

/// The retention settings as submitted, with every field's error at once.
fn parse_settings(f: &SettingsForm, plan: &plans::Plan) -> (dbp::PrivacySettings, FieldErrors) {
    let mut errors = FieldErrors::default();
    let days = |v: &str, range: std::ops::RangeInclusive<i32>| {
        v.trim().parse::<i32>().ok().filter(|d| range.contains(d))
    };
    let message_days = match f.message_days.trim().parse::<i32>() {
        Err(_) => {
            errors.add("message_days", "privacy.days.invalid");
            0
        }
        Ok(d) => {
            if !(plans::MIN_RETENTION_DAYS as i32..=plan.retention_days() as i32).contains(&d) {
                errors.add("message_days", "privacy.retention.bounds");
            }
            d
        }
    };
    let media_days = match f.media_days.trim() {
        "" => None,
        d => {
            let parsed = days(d, 1..=90);
            if parsed.is_none() {
                errors.add("media_days", "privacy.media.bounds");
            }
            parsed
        }
    };
    let ai_trace_days = days(&f.ai_trace_days, 30..=1095).unwrap_or_else(|| {
        errors.add("ai_trace_days", "privacy.trace.bounds");
        0
    });
    let audit_days = match AuditRetention::try_from(f.audit_days.as_str()) {
        Ok(a) => a.days(),
        Err(key) => {
            errors.add("audit_days", key);
            None
        }
    };
    let dsr_keywords: Vec<String> = f
        .keywords
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| k.chars().take(60).collect())
        .take(10)
        .collect();
    if !matches!(f.legal_basis.as_str(), "gdpr" | "lgpd") {
        errors.add("legal_basis", "privacy.basis.invalid");
    }
    let s = dbp::PrivacySettings {
        message_days,
        media_days,
        ai_trace_days,
        audit_days,
        dsr_keywords,
        default_legal_basis: f.legal_basis.clone(),
    };
    (s, errors)
}

#[derive(Deserialize)]
pub(crate) struct OpenForm {
    #[serde(default)]
    phone: String,
    #[serde(default)]
    contact: String,
    kind: String,
    legal_basis: String,
}

async fn open_request(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<OpenForm>,
) -> AppResult<Response> {
    let tenant = t.id();
    let contact_id = match Uuid::parse_str(f.contact.trim()) {
        Ok(id) => Some(id),
        Err(_) => match Phone::try_from(f.phone.as_str()) {
            Ok(p) => {
                let idx = state.keys.blind_phone(tenant, p.as_str()).await?;
                let mut tx = db::begin_tenant(&state.db, tenant).await?;
                let found = db::contacts::find(&mut tx, Some(&idx), None)
                    .await?
                    .into_iter()
                    .next()
                    .map(|c| c.id);
                tx.commit().await?;
                found
            }
            Err(_) => None,
        },
    };
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let contact = match contact_id {
        Some(id) => db::contacts::get(&mut tx, id).await?,
        None => None,
    };
    let Some(contact) = contact.filter(|_| {
        privacy::KINDS.contains(&f.kind.as_str())
            && matches!(f.legal_basis.as_str(), "gdpr" | "lgpd")
    }) else {
        drop(tx);
        let mut page = load(&state, ctx, &t).await?;
        page.error = Some("privacy.request.invalid");
        return Ok(form_error(page));
    };
    let id = privacy::open_request(
        &mut tx,
        tenant,
        &t.actor(),
        contact.id,
        &f.kind,
        &f.legal_basis,
        "staff",
        state.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/privacy/requests/{id}", t.tenant.slug),
        true,
        "privacy.request.opened",
    ))
}

#[derive(Template, WebTemplate)]
#[template(path = "privacy/request.html")]
pub(crate) struct RequestPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) id: Uuid,
    pub(crate) kind: String,
    pub(crate) legal_basis: String,
    pub(crate) status: String,
    pub(crate) source: String,
    pub(crate) received: String,
    pub(crate) due: String,
    pub(crate) overdue: bool,
    pub(crate) denial_reason: Option<String>,
    pub(crate) contact_label: String,
    pub(crate) contact_exists: bool,
    pub(crate) restricted: bool,
    pub(crate) events: Vec<(String, String, String, String)>,
    pub(crate) recipients: Vec<String>,
    pub(crate) conversation: Option<Uuid>,
}

impl RequestPage {
    pub(crate) fn req_url(&self, rest: &str) -> String {
        format!(
            "/t/{}/privacy/requests/{}{}",
            self.shell.slug, self.id, rest
        )
    }
}

async fn request_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<RequestPage> {
    let messaging = Messaging::from_ref(&state);
    let tenant = t.id();
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let r = dbp::get_request(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let tz = db::tenants::settings(&mut tx).await?.time_zone;
    let clock = Clock::new(&tz, now);
    let events = dbp::events(&mut tx, id).await?;
    let contact = db::contacts::get(&mut tx, r.contact_id).await?;
    let recipients = db_ai::recipients(&mut tx, r.contact_id).await?;
    let conversation: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE contact_id = $1 ORDER BY last_message_at DESC LIMIT 1",
    )
    .bind(r.contact_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let (label, restricted) = match &contact {
        Some(c) => (
            view::contact(&messaging, tenant, c).await.label(),
            c.restricted_at.is_some(),
        ),
        None => (String::new(), false),
    };
    let open = !matches!(r.status.as_str(), "completed" | "denied");
    Ok(RequestPage {
        ctx,
        shell: Shell::load(&state, &t, "privacy").await?,
        id,
        overdue: open && r.due_at < now,
        kind: r.kind,
        legal_basis: r.legal_basis,
        status: r.status,
        source: r.source,
        received: clock.full(r.received_at),
        due: clock.full(r.due_at),
        denial_reason: r.denial_reason,
        contact_exists: contact.is_some(),
        contact_label: label,
        restricted,
        events: events
            .into_iter()
            .map(|e| (clock.full(e.at), e.actor_label, e.status, e.note))
            .collect(),
        recipients: recipients
            .into_iter()
            .map(|r| format!("{} ({})", r.name, r.kind))
            .collect(),
        conversation,
    })
}

#[derive(Deserialize)]
pub(crate) struct StatusForm {
    status: String,
    #[serde(default)]
    note: String,
}

async fn set_status(
    State(privacy): State<Privacy>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<StatusForm>,
) -> AppResult<Response> {
    let back = format!("/t/{}/privacy/requests/{id}", t.tenant.slug);
    if !privacy::STATUSES.contains(&f.status.as_str()) {
        return Err(AppError::BadRequest("error.bad_request"));
    }
    if f.status == "denied" && f.note.trim().is_empty() {
        return Ok(redirect_with_flash(&back, false, "privacy.deny.reason"));
    }
    let note: String = f.note.trim().chars().take(1000).collect();
    if !privacy::advance(&privacy, t.id(), &t.actor(), id, &f.status, &note).await? {
        return Ok(redirect_with_flash(&back, false, "privacy.request.closed"));
    }
    Ok(redirect_with_flash(&back, true, "privacy.request.updated"))
}

async fn request_of(db: &PgPool, t: &TenantCtx, id: Uuid) -> AppResult<dbp::Request> {
    let mut tx = db::begin_tenant(db, t.id()).await?;
    let r = dbp::get_request(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(r)
}

/// Carries out an erasure request now: key destroyed, rows and media deleted, tombstone kept.
async fn erase_now(
    State(state): State<AppState>,
    State(privacy): State<Privacy>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let r = request_of(&state.db, &t, id).await?;
    if r.kind != "erasure" || matches!(r.status.as_str(), "completed" | "denied") {
        return Err(AppError::BadRequest("error.bad_request"));
    }
    erase::erase_contact(
        &privacy,
        t.id(),
        &t.actor(),
        r.contact_id,
        "request",
        Some(id),
    )
    .await?;
    privacy::advance(
        &privacy,
        t.id(),
        &t.actor(),
        id,
        "completed",
        "contact erased: key destroyed, data deleted",
    )
    .await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/privacy/requests/{id}", t.tenant.slug),
        true,
        "privacy.erased",
    ))
}

#[derive(Deserialize)]
pub(crate) struct RestrictForm {
    #[serde(default)]
    lift: Option<String>,
}

/// Restriction (and objection): all processing of the contact stops — no AI, no sends.
async fn restrict(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<RestrictForm>,
) -> AppResult<Response> {
    let r = request_of(&state.db, &t, id).await?;
    let lift = f.lift.is_some();
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !dbp::set_restricted(&mut tx, r.contact_id, !lift, now).await? {
        return Err(AppError::NotFound);
    }
    tx.audit(
        if lift {
            "contact.restriction_lifted"
        } else {
            "contact.restricted"
        },
        &r.contact_id.to_string(),
        json!({ "request": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/privacy/requests/{id}", t.tenant.slug),
        true,
        if lift {
            "privacy.lifted"
        } else {
            "privacy.restricted"
        },
    ))
}

async fn bundle_for(privacy: &Privacy, t: &TenantCtx, id: Uuid) -> AppResult<export::Bundle> {
    let r = request_of(&privacy.db, t, id).await?;
    let bundle = export::contact_bundle(privacy, t.id(), r.contact_id, Some(id))
        .await?
        .ok_or(AppError::NotFound)?;
    let mut tx = db::TenantTx::begin(&privacy.db, t.id(), t.actor(), privacy.now()).await?;
    tx.audit(
        "dsr.exported",
        &id.to_string(),
        json!({ "contact": r.contact_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(bundle)
}

fn download(body: Vec<u8>, content_type: &'static str, filename: &str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

async fn export_json(
    State(privacy): State<Privacy>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let bundle = bundle_for(&privacy, &t, id).await?;
    Ok(download(
        serde_json::to_vec_pretty(&bundle).map_err(anyhow::Error::from)?,
        "application/json",
        &format!("sigmaai-export-{id}.json"),
    ))
}

#[derive(Template)]
#[template(path = "privacy/export.html")]
pub(crate) struct ExportHtml {
    pub(crate) b: export::Bundle,
}

async fn export_html(
    State(privacy): State<Privacy>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let bundle = bundle_for(&privacy, &t, id).await?;
    let html = ExportHtml { b: bundle }
        .render()
        .map_err(anyhow::Error::from)?;
    Ok(download(
        html.into_bytes(),
        "text/html; charset=utf-8",
        &format!("sigmaai-export-{id}.html"),
    ))
}

/// Direct deletion of a contact (policy: "until the tenant deletes the contact").
async fn erase_contact_direct(
    State(privacy): State<Privacy>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    match erase::erase_contact(&privacy, t.id(), &t.actor(), id, "direct", None).await? {
        true => Ok(redirect_with_flash(
            &format!("/t/{}/conversations", t.tenant.slug),
            true,
            "privacy.erased",
        )),
        false => Err(AppError::NotFound),
    }
}

async fn delete_conversation(
    State(privacy): State<Privacy>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    if !erase::delete_conversation(&privacy, t.id(), &t.actor(), id).await? {
        return Err(AppError::NotFound);
    }
    Ok(redirect_with_flash(
        &format!("/t/{}/conversations", t.tenant.slug),
        true,
        "privacy.conversation_deleted",
    ))
}

/// A full tenant export (every contact's bundle, settings, knowledge, audit log), for the owner.
async fn tenant_export(
    State(state): State<AppState>,
    State(privacy): State<Privacy>,
    t: RequireRole<Owner>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let contacts: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM contacts ORDER BY created_at")
        .fetch_all(&mut *tx)
        .await?;
    let knowledge = db_ai::knowledge(&mut tx).await?;
    let settings = db::tenants::settings(&mut tx).await?;
    let audit_entries = audit::list(&mut tx, None, None, 100_000).await?;
    tx.commit().await?;
    let mut bundles = Vec::with_capacity(contacts.len());
    for c in contacts {
        if let Some(b) = export::contact_bundle(&privacy, tenant, c, None).await? {
            bundles.push(b);
        }
    }
    let body = json!({
        "tenant": { "id": tenant, "slug": t.tenant.slug, "name": t.tenant.name, "plan": t.tenant.plan, "time_zone": settings.time_zone, "language": settings.language },
        "knowledge": knowledge.iter().map(|k| json!({ "id": k.id, "kind": k.kind.as_str(), "title": k.title, "body": k.body })).collect::<Vec<_>>(),
        "contacts": bundles,
        "audit_log": audit_entries.iter().map(|e| json!({ "seq": e.seq, "at": e.at.unix_timestamp(), "actor": e.actor_label, "action": e.action, "subject": e.subject, "detail": e.detail })).collect::<Vec<_>>(),
    });
    let mut tx = t.begin(&state).await?;
    tx.audit("tenant.exported", "", json!({})).await?;
    tx.commit().await?;
    Ok(download(
        serde_json::to_vec(&body).map_err(anyhow::Error::from)?,
        "application/json",
        &format!("sigmaai-{}-export.json", t.tenant.slug),
    ))
}

#[derive(Deserialize)]
pub(crate) struct TerminateForm {
    confirm: String,
}

/// Schedules permanent deletion 30 days out (the export stays available until then).
async fn terminate(
    State(state): State<AppState>,
    t: RequireRole<Owner>,
    Form(f): Form<TerminateForm>,
) -> AppResult<Response> {
    let back = format!("/t/{}/privacy", t.tenant.slug);
    if f.confirm.trim() != t.tenant.slug {
        return Ok(redirect_with_flash(
            &back,
            false,
            "privacy.terminate.confirm",
        ));
    }
    let now = state.now();
    if dbp::schedule_termination(&state.db, t.id(), now + retention::TERMINATION_GRACE, now).await?
    {
        let mut tx = t.begin_at(&state, now).await?;
        tx.audit("tenant.termination_scheduled", &t.tenant.slug, json!({}))
            .await?;
        tx.commit().await?;
    }
    Ok(redirect_with_flash(
        &back,
        true,
        "privacy.terminate.scheduled",
    ))
}

async fn cancel_termination(
    State(state): State<AppState>,
    t: RequireRole<Owner>,
) -> AppResult<Response> {
    if dbp::cancel_termination(&state.db, t.id()).await? {
        let mut tx = t.begin(&state).await?;
        tx.audit("tenant.termination_cancelled", &t.tenant.slug, json!({}))
            .await?;
        tx.commit().await?;
    }
    Ok(redirect_with_flash(
        &format!("/t/{}/privacy", t.tenant.slug),
        true,
        "privacy.terminate.cancelled",
    ))
}
