//! Privacy controls: data-subject requests (with legal deadlines and history), erasure by
//! key destruction, exports, retention and media-after-triage sweeps, termination.

pub(crate) mod erase;
pub(crate) mod export;
pub(crate) mod retention;

use std::{path::PathBuf, sync::Arc};

use axum::extract::FromRef;
use serde_json::json;
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    clock::SharedClock,
    crypto::Keyring,
    db::{
        self,
        audit::{self, Actor},
        privacy::{self as dbp, NewRequest, PrivacySettings},
    },
    domain::{
        plans,
        privacy::{default_keywords, is_keyword},
    },
    live::Live,
    messaging::Messaging,
    state::AppState,
    storage::ObjectStore,
};

/// What privacy work uses, and nothing else: the pool, the keyring (erasure destroys keys,
/// audit pruning signs a checkpoint), the media store, live events, the clock, the log
/// directory the retention sweep prunes, and `messaging`'s context (an export opens messages
/// and drafts through `messaging::view`). Built from the process's state with `FromRef`:
/// `State<Privacy>` in a handler, the `privacy_sweep` job's `Context`, or
/// `Privacy::from_ref(&state)` where a caller holds the whole state.
#[derive(Clone)]
pub(crate) struct Privacy {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) keys: Keyring,
    pub(crate) media: Arc<dyn ObjectStore>,
    pub(crate) live: Live,
    pub(crate) clock: SharedClock,
    pub(crate) messaging: Messaging,
    /// `SIGMAAI_LOG_DIR`: log files older than the retention limit are deleted.
    pub(crate) log_dir: Option<PathBuf>,
}

impl Privacy {
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Privacy {
    fn from_ref(state: &AppState) -> Privacy {
        Privacy {
            db: state.db.clone(),
            keys: state.keys.clone(),
            media: state.media.clone(),
            live: state.live.clone(),
            clock: state.clock.clone(),
            messaging: Messaging::from_ref(state),
            log_dir: state.config.log_dir.clone(),
        }
    }
}

pub(crate) const KINDS: [&str; 6] = [
    "access",
    "portability",
    "rectification",
    "erasure",
    "restriction",
    "objection",
];
pub(crate) const STATUSES: [&str; 5] =
    ["received", "verified", "in_progress", "completed", "denied"];

/// Our policy deletes contact information within 7 days of a request.
pub(crate) const ERASURE_DAYS: i64 = 7;

/// The legal deadline: GDPR one calendar month after receipt (Art. 12(3)); LGPD 15 days
/// (Art. 19 II). Erasure is further bounded by our 7-day promise.
pub(crate) fn due_date(kind: &str, legal_basis: &str, received: OffsetDateTime) -> OffsetDateTime {
    let legal = match legal_basis {
        "gdpr" => add_month(received),
        _ => received + Duration::days(15),
    };
    if kind == "erasure" {
        legal.min(received + Duration::days(ERASURE_DAYS))
    } else {
        legal
    }
}

/// The same day next month, clamped to the month's last day (31 Jan → 28/29 Feb).
fn add_month(t: OffsetDateTime) -> OffsetDateTime {
    let (y, m) = if t.month() == time::Month::December {
        (t.year() + 1, time::Month::January)
    } else {
        (t.year(), t.month().next())
    };
    let last = m.length(y);
    let day = t.day().min(last);
    time::Date::from_calendar_date(y, m, day)
        .map(|d| t.replace_date(d))
        .unwrap_or(t + Duration::days(30))
}

/// The tenant's privacy settings, with the plan's defaults when never saved.
/// Message retention never exceeds the plan's (a lowered plan lowers it at the next sweep).
pub(crate) async fn settings(
    conn: &mut sqlx::PgConnection,
    plan: &plans::Plan,
) -> sqlx::Result<PrivacySettings> {
    let mut s = stored_settings(conn, plan).await?;
    s.message_days = s.message_days.min(plan.retention_days() as i32);
    Ok(s)
}

/// The settings as the tenant saved them (possibly above a lowered plan's retention).
pub(crate) async fn stored_settings(
    conn: &mut sqlx::PgConnection,
    plan: &plans::Plan,
) -> sqlx::Result<PrivacySettings> {
    Ok(dbp::settings(conn)
        .await?
        .unwrap_or_else(|| PrivacySettings {
            message_days: plan.retention_days() as i32,
            media_days: None,
            ai_trace_days: 365,
            audit_days: None,
            dsr_keywords: default_keywords(),
            default_legal_basis: "lgpd".into(),
        }))
}

pub(crate) async fn plan_of(db: &PgPool, tenant_id: Uuid) -> sqlx::Result<&'static plans::Plan> {
    let t = db::tenants::tenant_by_id(db, tenant_id).await?;
    Ok(t.as_ref()
        .and_then(|t| plans::by_id(&t.plan))
        .unwrap_or(&plans::PLANS[0]))
}

/// Opens a data-subject request. Returns its id.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_request(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    actor: &Actor,
    contact_id: Uuid,
    kind: &str,
    legal_basis: &str,
    source: &str,
    now: OffsetDateTime,
) -> anyhow::Result<Uuid> {
    anyhow::ensure!(
        KINDS.contains(&kind) && matches!(legal_basis, "gdpr" | "lgpd"),
        "invalid request"
    );
    let id = Uuid::now_v7();
    // A request arriving through the subject's own WhatsApp number is verified by that channel.
    let status = if source == "keyword" {
        "verified"
    } else {
        "received"
    };
    dbp::insert_request(
        conn,
        NewRequest {
            id,
            tenant_id,
            contact_id,
            kind,
            legal_basis,
            status,
            source,
            received_at: now,
            due_at: due_date(kind, legal_basis, now),
            created_by: actor.id,
        },
    )
    .await?;
    dbp::add_event(
        conn,
        tenant_id,
        id,
        &actor.label,
        status,
        if source == "keyword" {
            "opened by the end user on WhatsApp"
        } else {
            ""
        },
        now,
    )
    .await?;
    audit::record(
        conn,
        tenant_id,
        actor,
        "dsr.opened",
        &id.to_string(),
        json!({ "kind": kind, "legal_basis": legal_basis, "source": source }),
        now,
    )
    .await?;
    let created = json!({
        "request_id": id,
        "kind": kind,
        "legal_basis": legal_basis,
        "source": source,
        "status": status,
        "due_at": due_date(kind, legal_basis, now).format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    });
    db::outgoing::emit(
        conn,
        tenant_id,
        crate::domain::events::DSR_CREATED,
        &[(created, None)],
        now,
    )
    .await?;
    Ok(id)
}

/// Checks an inbound message for a request keyword and opens an erasure request for staff
/// (ingest calls this through `wiring`, in the transaction storing the message).
pub(crate) async fn keyword_request(
    db: &PgPool,
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    text: &str,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let plan = plan_of(db, tenant_id).await?;
    let s = settings(conn, plan).await?;
    if !is_keyword(text, &s.dsr_keywords)
        || dbp::open_request_for(conn, contact_id, "erasure")
            .await?
            .is_some()
    {
        return Ok(false);
    }
    let actor = Actor {
        id: None,
        label: "end user".into(),
    };
    open_request(
        conn,
        tenant_id,
        &actor,
        contact_id,
        "erasure",
        &s.default_legal_basis,
        "keyword",
        now,
    )
    .await?;
    Ok(true)
}

/// Moves a request along its status history (received → verified → in progress →
/// completed | denied, a reason required to deny).
pub(crate) async fn advance(
    state: &Privacy,
    tenant_id: Uuid,
    actor: &Actor,
    request_id: Uuid,
    status: &str,
    note: &str,
) -> anyhow::Result<bool> {
    anyhow::ensure!(STATUSES.contains(&status), "invalid status");
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let denial = (status == "denied").then_some(note);
    if !dbp::set_status(&mut tx, request_id, status, denial, now).await? {
        return Ok(false);
    }
    dbp::add_event(
        &mut tx,
        tenant_id,
        request_id,
        &actor.label,
        status,
        note,
        now,
    )
    .await?;
    tx.audit(
        "dsr.status",
        &request_id.to_string(),
        json!({ "status": status }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn deadlines_follow_the_law() {
        let r = datetime!(2026-01-31 10:00 UTC);
        assert_eq!(
            due_date("access", "gdpr", r),
            datetime!(2026-02-28 10:00 UTC),
            "one calendar month, clamped"
        );
        assert_eq!(
            due_date("access", "lgpd", r),
            datetime!(2026-02-15 10:00 UTC),
            "15 days"
        );
        assert_eq!(
            due_date("erasure", "gdpr", r),
            datetime!(2026-02-07 10:00 UTC),
            "our 7-day erasure promise"
        );
        assert_eq!(
            due_date("erasure", "lgpd", r),
            datetime!(2026-02-07 10:00 UTC)
        );
        assert_eq!(
            due_date("access", "gdpr", datetime!(2026-12-15 00:00 UTC)),
            datetime!(2027-01-15 00:00 UTC)
        );
    }
}
