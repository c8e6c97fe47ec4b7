//! The tenant portal shell: dashboard, settings and the audit log.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Query, State},
    response::Response,
    routing::get,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::wiring::App;
use crate::{
    db::{
        self, audit,
        tenants::{MyTenant, TenantSettings},
    },
    domain::{account::Role, plans},
    error::{AppError, AppResult},
    http::{
        extract::{Admin, PageCtx, RequireRole, TenantCtx, Viewer},
        middleware::redirect_with_flash,
        routes::auth::form_error,
    },
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}", get(dashboard))
        .route("/t/{slug}/settings", get(settings_page).post(save_settings))
        .route("/t/{slug}/audit", get(audit_page))
}

/// What the portal layout needs: the tenant, the user's role, and where else they can go.
pub(crate) struct Shell {
    pub(crate) slug: String,
    pub(crate) tenant_name: String,
    pub(crate) role: Role,
    pub(crate) tenants: Vec<MyTenant>,
    /// Which navigation entry is current.
    pub(crate) section: &'static str,
    /// Unread messages in open conversations (the navigation badge).
    pub(crate) unread: i64,
    /// Drafts and escalations waiting for review (the navigation badge).
    pub(crate) waiting: i64,
    /// A failed payment: the grace period's end (a banner).
    pub(crate) past_due_until: Option<String>,
    /// The plan's AI drafts for this month are used up (a banner: drafting paused).
    pub(crate) ai_paused: bool,
}

impl Shell {
    /// The frame for `section`, from the figures the tenant extractor loaded with the
    /// tenant ([`TenantCtx::chrome`]): no query of its own.
    pub(crate) async fn load(
        _state: &AppState,
        t: &TenantCtx,
        section: &'static str,
    ) -> AppResult<Shell> {
        Ok(Shell::from_ctx(t, section))
    }

    pub(crate) fn from_ctx(t: &TenantCtx, section: &'static str) -> Shell {
        let c = &t.chrome;
        let plan = plans::by_id(&t.tenant.plan).unwrap_or(&plans::PLANS[0]);
        Shell {
            slug: t.tenant.slug.clone(),
            tenant_name: t.tenant.name.clone(),
            role: t.role,
            tenants: c.my_tenants.0.clone(),
            section,
            unread: c.unread,
            waiting: c.waiting,
            past_due_until: (c.billing_status == "past_due")
                .then_some(c.grace_until)
                .flatten()
                .map(|g| g.date().to_string()),
            ai_paused: c.drafts_this_month >= i64::from(plan.ai_messages_per_month),
        }
    }

    pub(crate) fn can_admin(&self) -> bool {
        self.role.at_least(Role::Admin)
    }

    pub(crate) fn can_review(&self) -> bool {
        self.role.at_least(Role::Reviewer)
    }

    pub(crate) fn is_owner(&self) -> bool {
        self.role == Role::Owner
    }

    pub(crate) fn href(&self, rest: &str) -> String {
        format!("/t/{}{}", self.slug, rest)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "portal/dashboard.html")]
pub(crate) struct DashboardPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) members: i64,
    pub(crate) plan: &'static plans::Plan,
    /// The set-up checklist, for admins of a tenant that hasn't finished it (else empty).
    pub(crate) next_steps: Vec<NextStep>,
    /// What waits for people and how review went this week (reviewers and up).
    pub(crate) overview: Option<OverviewView>,
}

/// The overview's figures, worded for the page.
pub(crate) struct OverviewView {
    pub(crate) pending: i64,
    /// How long the oldest draft has waited ("12 min"), when one waits.
    pub(crate) oldest_wait: Option<String>,
    pub(crate) escalated: i64,
    pub(crate) approved: i64,
    /// Share of approvals that were edited first, in whole percent.
    pub(crate) edited_pct: i64,
    pub(crate) rejected: i64,
    pub(crate) approval_pct: Option<i64>,
    pub(crate) median_review: Option<String>,
    pub(crate) dsr_overdue: i64,
    pub(crate) channels_down: i64,
    pub(crate) reject_reasons: Vec<(String, i64)>,
    /// Draft quality by week, newest first (the last 8 weeks with reviews).
    pub(crate) weeks: Vec<WeekView>,
}

/// One row of the weekly draft-quality table.
pub(crate) struct WeekView {
    /// The week's Monday, as the viewer writes dates.
    pub(crate) starts: String,
    pub(crate) reviewed: i64,
    pub(crate) approval_pct: Option<i64>,
    pub(crate) edited_pct: Option<i64>,
    /// Mean words changed per approval, one decimal ("2.5" / "2,5").
    pub(crate) edit_words: Option<String>,
    pub(crate) median_approve: Option<String>,
}

/// `part` of `whole` in whole percent, rounded.
fn pct(part: i64, whole: i64) -> Option<i64> {
    (whole > 0).then(|| (part * 100 + whole / 2) / whole)
}

fn week_view(ctx: &PageCtx, w: db::overview::Week) -> WeekView {
    let reviewed = w.approved + w.rejected;
    let starts = match ctx.tr.lang() {
        crate::i18n::Lang::PtBr => format!("{:02}/{:02}", w.week.day(), u8::from(w.week.month())),
        crate::i18n::Lang::En => format!("{} {}", w.week.month(), w.week.day()),
    };
    WeekView {
        starts,
        reviewed,
        approval_pct: pct(w.approved, reviewed),
        edited_pct: pct(w.edited, w.approved),
        edit_words: w.edit_words.map(|x| {
            let s = format!("{x:.1}");
            match ctx.tr.lang() {
                crate::i18n::Lang::PtBr => s.replace('.', ","),
                crate::i18n::Lang::En => s,
            }
        }),
        median_approve: w.median_approve_secs.map(|s| span(ctx, s.round() as i64)),
    }
}

/// A span as people say it: "45 s", "12 min", "3 h", "2 days".
fn span(ctx: &PageCtx, secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => ctx.f1("duration.seconds", &s),
        s if s < 3_600 => ctx.f1("duration.minutes", &(s / 60)),
        s if s < 172_800 => ctx.f1("duration.hours", &(s / 3_600)),
        s => ctx.f1("duration.days", &(s / 86_400)),
    }
}

fn overview_view(
    ctx: &PageCtx,
    o: db::overview::Overview,
    reasons: Vec<(String, i64)>,
    now: time::OffsetDateTime,
) -> OverviewView {
    let reviewed = o.approved + o.rejected;
    OverviewView {
        pending: o.pending,
        oldest_wait: o
            .oldest_pending
            .map(|t| span(ctx, (now - t).whole_seconds())),
        escalated: o.escalated,
        approved: o.approved,
        edited_pct: if o.approved > 0 {
            (o.edited * 100 + o.approved / 2) / o.approved
        } else {
            0
        },
        rejected: o.rejected,
        approval_pct: (reviewed > 0).then(|| (o.approved * 100 + reviewed / 2) / reviewed),
        median_review: o.median_review_secs.map(|s| span(ctx, s.round() as i64)),
        dsr_overdue: o.dsr_overdue,
        channels_down: o.channels_down,
        reject_reasons: reasons,
        weeks: Vec::new(),
    }
}

pub(crate) struct NextStep {
    pub(crate) done: bool,
    pub(crate) key: &'static str,
    pub(crate) path: &'static str,
}

fn next_steps(s: &db::overview::FirstSteps) -> Vec<NextStep> {
    if s.all_done() {
        return Vec::new();
    }
    [
        (s.connected_number, "dashboard.next.connect", "/channels"),
        (s.added_knowledge, "dashboard.next.knowledge", "/knowledge"),
        (s.tried_simulator, "dashboard.next.simulator", "/simulator"),
        (s.invited_staff, "dashboard.next.invite", "/members"),
    ]
    .into_iter()
    .map(|(done, key, path)| NextStep { done, key, path })
    .collect()
}

async fn dashboard(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Viewer>,
) -> AppResult<DashboardPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let members = db::memberships::member_count(&mut tx).await?;
    let next_steps = if t.role.at_least(Role::Admin) {
        next_steps(&db::overview::first_steps(&mut tx).await?)
    } else {
        Vec::new()
    };
    let now = state.now();
    let overview = if t.role.at_least(Role::Reviewer) {
        let week_ago = now - time::Duration::days(7);
        let o = db::overview::load(&mut tx, week_ago, now).await?;
        let reasons = db::overview::reject_reasons(&mut tx, week_ago).await?;
        let tz = db::tenants::settings(&mut tx).await?.time_zone;
        let offset = jiff::tz::TimeZone::get(&tz)
            .map(|z| z.to_offset(jiff::Timestamp::now()).seconds())
            .unwrap_or(0);
        let weeks = db::overview::weeks(&mut tx, now - time::Duration::weeks(8), offset).await?;
        let mut view = overview_view(&ctx, o, reasons, now);
        view.weeks = weeks.into_iter().map(|w| week_view(&ctx, w)).collect();
        Some(view)
    } else {
        None
    };
    tx.commit().await?;
    Ok(DashboardPage {
        ctx,
        shell: Shell::load(&state, &t, "dashboard").await?,
        members,
        plan: plans::by_id(&t.tenant.plan).unwrap_or(&plans::PLANS[0]),
        next_steps,
        overview,
    })
}

// ---- settings ----

use crate::domain::knowledge::WEEKDAYS as DAYS;

/// Time zones offered in the picker (any IANA name is accepted if typed).
pub(crate) const COMMON_ZONES: &[&str] = &[
    "America/Sao_Paulo",
    "America/Manaus",
    "America/Recife",
    "America/Fortaleza",
    "America/Belem",
    "America/Cuiaba",
    "America/Porto_Velho",
    "America/Rio_Branco",
    "America/Noronha",
    "America/Argentina/Buenos_Aires",
    "America/Santiago",
    "America/Bogota",
    "America/Lima",
    "America/Mexico_City",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/Lisbon",
    "Europe/London",
    "Europe/Madrid",
    "Europe/Paris",
    "Europe/Berlin",
    "Africa/Luanda",
    "Africa/Maputo",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
];

pub(crate) struct DayHours {
    pub(crate) day: &'static str,
    pub(crate) open: String,
    pub(crate) close: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "portal/settings.html")]
pub(crate) struct SettingsPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) name: String,
    pub(crate) time_zone: String,
    pub(crate) language: String,
    pub(crate) hours: Vec<DayHours>,
    pub(crate) zones: &'static [&'static str],
    /// Minutes a draft may wait for review before reviewers are e-mailed.
    pub(crate) review_alert_minutes: String,
    /// Opening an unassigned conversation assigns it to the reviewer (see `review::presence`).
    pub(crate) assign_on_open: bool,
    pub(crate) error: Option<&'static str>,
}

fn hours_from_json(v: &Value) -> Vec<DayHours> {
    DAYS.iter()
        .map(|d| {
            let first = v.get(*d).and_then(|x| x.get(0));
            let get = |i: usize| {
                first
                    .and_then(|p| p.get(i))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            DayHours {
                day: d,
                open: get(0),
                close: get(1),
            }
        })
        .collect()
}

async fn settings_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<SettingsPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let s = db::tenants::settings(&mut tx).await?;
    let alert: i32 = sqlx::query_scalar(
        "SELECT review_alert_minutes FROM tenant_settings WHERE tenant_id = app_current_tenant()",
    )
    .fetch_one(&mut *tx)
    .await?;
    let assign_on_open = db::presence::assign_on_open(&mut tx).await?;
    tx.commit().await?;
    Ok(SettingsPage {
        ctx,
        shell: Shell::load(&state, &t, "settings").await?,
        name: t.tenant.name.clone(),
        time_zone: s.time_zone,
        language: s.language,
        hours: hours_from_json(&s.business_hours),
        zones: COMMON_ZONES,
        review_alert_minutes: alert.to_string(),
        assign_on_open,
        error: None,
    })
}

#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    name: String,
    time_zone: String,
    language: String,
    #[serde(flatten)]
    rest: std::collections::HashMap<String, String>,
}

/// "HH:MM" 00:00–23:59.
fn parse_hhmm(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.trim().len() == 5).then_some((h, m))
}

/// Validates the settings form into the stored shape.
pub(crate) fn parse_settings(f: &SettingsForm) -> Result<(String, TenantSettings), &'static str> {
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err("form.business.invalid");
    }
    if jiff::tz::TimeZone::get(f.time_zone.trim()).is_err() {
        return Err("settings.tz.invalid");
    }
    let language = match f.language.as_str() {
        "en" | "pt-BR" => f.language.clone(),
        _ => return Err("settings.language.invalid"),
    };
    let mut hours = Map::new();
    for d in DAYS {
        let open = f
            .rest
            .get(&format!("{d}_open"))
            .map(String::as_str)
            .unwrap_or("")
            .trim();
        let close = f
            .rest
            .get(&format!("{d}_close"))
            .map(String::as_str)
            .unwrap_or("")
            .trim();
        match (open.is_empty(), close.is_empty()) {
            (true, true) => {}
            (false, false) => {
                let (o, c) = (
                    parse_hhmm(open).ok_or("settings.hours.invalid")?,
                    parse_hhmm(close).ok_or("settings.hours.invalid")?,
                );
                if o >= c {
                    return Err("settings.hours.order");
                }
                hours.insert(d.to_owned(), json!([[open, close]]));
            }
            _ => return Err("settings.hours.invalid"),
        }
    }
    Ok((
        name.to_owned(),
        TenantSettings {
            time_zone: f.time_zone.trim().to_owned(),
            language,
            business_hours: Value::Object(hours),
        },
    ))
}

async fn save_settings(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<SettingsForm>,
) -> AppResult<Response> {
    let alert = match f.rest.get("review_alert_minutes").map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|m| (5..=10080).contains(m))
            .map(Some)
            .ok_or("settings.review_alert.invalid"),
    };
    match parse_settings(&f).and_then(|p| alert.map(|a| (p, a))) {
        Ok(((name, s), alert)) => {
            let now = state.now();
            let mut tx = t.begin_at(&state, now).await?;
            db::tenants::rename_tenant(&mut tx, t.id(), &name).await?;
            db::tenants::save_settings(&mut tx, &s, now).await?;
            let assign_on_open = f.rest.contains_key("assign_on_open");
            db::presence::set_assign_on_open(&mut tx, assign_on_open).await?;
            if let Some(minutes) = alert {
                sqlx::query(
                    "UPDATE tenant_settings SET review_alert_minutes = $1 WHERE tenant_id = app_current_tenant()",
                )
                .bind(minutes)
                .execute(&mut *tx)
                .await?;
            }
            tx.audit("settings.changed", "tenant", json!({ "time_zone": s.time_zone, "language": s.language, "review_alert_minutes": alert, "assign_on_open": assign_on_open }))
            .await?;
            tx.commit().await?;
            Ok(redirect_with_flash(
                &format!("/t/{}/settings", t.tenant.slug),
                true,
                "settings.saved",
            ))
        }
        Err(key) => {
            let hours = DAYS
                .iter()
                .map(|d| DayHours {
                    day: d,
                    open: f
                        .rest
                        .get(&format!("{d}_open"))
                        .cloned()
                        .unwrap_or_default(),
                    close: f
                        .rest
                        .get(&format!("{d}_close"))
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect();
            Ok(form_error(SettingsPage {
                ctx,
                shell: Shell::load(&state, &t, "settings").await?,
                name: f.name,
                time_zone: f.time_zone,
                language: f.language,
                hours,
                zones: COMMON_ZONES,
                review_alert_minutes: f
                    .rest
                    .get("review_alert_minutes")
                    .cloned()
                    .unwrap_or_default(),
                assign_on_open: f.rest.contains_key("assign_on_open"),
                error: Some(key),
            }))
        }
    }
}

// ---- audit log ----

pub(crate) struct AuditRow {
    pub(crate) seq: i64,
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) subject: String,
    pub(crate) detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "portal/audit.html")]
pub(crate) struct AuditPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) rows: Vec<AuditRow>,
    pub(crate) filter: String,
    pub(crate) chain_ok: bool,
    /// What verification found wrong (empty when the chain is intact).
    pub(crate) problem: String,
    pub(crate) total: usize,
    /// How many entries retention pruned, up to when.
    pub(crate) pruned: Option<String>,
    pub(crate) next_before: Option<i64>,
}

#[derive(Deserialize, Default)]
pub(crate) struct AuditQuery {
    action: Option<String>,
    before: Option<i64>,
}

const AUDIT_PAGE: i64 = 100;

async fn audit_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Query(q): Query<AuditQuery>,
) -> AppResult<AuditPage> {
    let filter = q.action.unwrap_or_default().trim().to_owned();
    if filter.len() > 60 {
        return Err(AppError::BadRequest("error.bad_request"));
    }
    let key = state.keys.audit_checkpoint_key(t.id()).await?;
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let entries = audit::list(
        &mut tx,
        (!filter.is_empty()).then_some(filter.as_str()),
        q.before,
        AUDIT_PAGE,
    )
    .await?;
    let chain = audit::verify_chain(&mut tx, t.id(), &*key).await?;
    tx.commit().await?;
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    let next_before = (entries.len() as i64 == AUDIT_PAGE)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    let (problem, pruned, total) = match &chain {
        Ok(v) => (
            String::new(),
            v.pruned.as_ref().map(|p| {
                ctx.f(
                    "audit.pruned",
                    &[&p.through_seq, &p.through_at.format(&f).unwrap_or_default()],
                )
            }),
            v.entries,
        ),
        Err(audit::Tampering::Entry(seq)) => (ctx.f1("audit.chain_broken", seq), None, 0),
        Err(audit::Tampering::Missing { from, to }) => {
            (ctx.f("audit.chain_missing", &[from, to]), None, 0)
        }
        Err(audit::Tampering::Checkpoint(seq)) => (ctx.f1("audit.checkpoint_forged", seq), None, 0),
    };
    Ok(AuditPage {
        ctx,
        shell: Shell::load(&state, &t, "audit").await?,
        rows: entries
            .into_iter()
            .map(|e| AuditRow {
                seq: e.seq,
                at: e.at.format(&f).unwrap_or_default(),
                actor: e.actor_label,
                action: e.action,
                subject: e.subject,
                detail: if e.detail.as_object().is_some_and(|o| o.is_empty()) {
                    String::new()
                } else {
                    e.detail.to_string()
                },
            })
            .collect(),
        filter,
        chain_ok: chain.is_ok(),
        problem,
        total,
        pruned,
        next_before,
    })
}
