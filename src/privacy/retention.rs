//! The daily privacy sweep (retention, due erasures, termination) and media deletion after
//! triage. What a sweep removes is recorded as counts, never content.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    db::{
        self,
        audit::{self, Actor},
        jobs::{BackgroundJob, JobMeta, Outcome},
        privacy as dbp,
    },
    privacy::Privacy,
    privacy::{erase, plan_of, settings},
};

/// The sweep's job kind (periodic, daily).
pub(crate) const PRIVACY_SWEEP: &str = "privacy_sweep";

/// The periodic sweep job (no payload).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PrivacySweep {}

impl BackgroundJob for PrivacySweep {
    const KIND: &'static str = PRIVACY_SWEEP;
    type Context = Privacy;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("periodic:{}", Self::KIND))
    }

    async fn run(self, state: &Privacy, _: &JobMeta) -> anyhow::Result<Outcome> {
        run_sweep(state).await.map(|_| Outcome::Done)
    }
}

/// Termination: the export window before everything is deleted.
pub(crate) const TERMINATION_GRACE: Duration = Duration::days(30);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SweepReport {
    pub(crate) messages: i64,
    pub(crate) media: i64,
    pub(crate) drafts: i64,
    pub(crate) contacts: i64,
    pub(crate) audit_entries: i64,
    pub(crate) erasures: i64,
    pub(crate) terminated: i64,
}

pub(crate) async fn run_sweep(state: &Privacy) -> anyhow::Result<SweepReport> {
    let mut total = SweepReport::default();
    let now = state.now();
    if let Some(dir) = state.log_dir.as_deref()
        && dir.exists()
    {
        crate::telemetry::prune_logs(dir, now.date())?;
    }
    for tenant_id in dbp::tenants_to_terminate(&state.db, now).await? {
        terminate(state, tenant_id).await?;
        total.terminated += 1;
    }
    for tenant_id in dbp::live_tenants(&state.db).await? {
        let r = sweep_tenant(state, tenant_id, now).await?;
        // Heartbeats of staff who left long ago (staff data, not personal data of patients).
        let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
        db::presence::prune(&mut tx, now - Duration::hours(1)).await?;
        tx.commit().await?;
        total.messages += r.messages;
        total.media += r.media;
        total.drafts += r.drafts;
        total.contacts += r.contacts;
        total.audit_entries += r.audit_entries;
        total.erasures += r.erasures;
    }
    tracing::info!(
        messages = total.messages,
        media = total.media,
        drafts = total.drafts,
        contacts = total.contacts,
        audit_entries = total.audit_entries,
        erasures = total.erasures,
        terminated = total.terminated,
        "privacy sweep"
    );
    Ok(total)
}

async fn sweep_tenant(
    state: &Privacy,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> anyhow::Result<SweepReport> {
    let system = Actor::system();
    let mut r = SweepReport::default();
    // Erasure requests due (our policy: within 7 days of the request) are carried out.
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let due = dbp::erasures_due(&mut tx, now).await?;
    tx.commit().await?;
    for req in due {
        erase::erase_contact(
            state,
            tenant_id,
            &system,
            req.contact_id,
            "request",
            Some(req.id),
        )
        .await?;
        let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
        if dbp::set_status(&mut tx, req.id, "completed", None, now).await? {
            dbp::add_event(
                &mut tx,
                tenant_id,
                req.id,
                &system.label,
                "completed",
                "erased by the sweep on its due date",
                now,
            )
            .await?;
        }
        tx.commit().await?;
        r.erasures += 1;
    }

    let plan = plan_of(&state.db, tenant_id).await?;
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let s = settings(&mut tx, plan).await?;
    let message_cutoff = now - Duration::days(i64::from(s.message_days));
    // Media kept N days (when the tenant chose that over deletion after triage).
    let old_media = match s.media_days {
        Some(days) => dbp::media_older_than(&mut tx, now - Duration::days(i64::from(days))).await?,
        None => Vec::new(),
    };
    // Media of messages about to be deleted goes too.
    let expiring_media = dbp::media_older_than(&mut tx, message_cutoff).await?;
    tx.commit().await?;
    let mut media: Vec<(Uuid, String)> = old_media;
    for m in expiring_media {
        if !media.iter().any(|(id, _)| *id == m.0) {
            media.push(m);
        }
    }
    for (_, key) in &media {
        state.media.delete(key).await?;
    }
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    for (id, _) in &media {
        dbp::mark_media_deleted(&mut tx, *id, now).await?;
    }
    r.media = media.len() as i64;
    r.messages = dbp::delete_messages_before(&mut tx, message_cutoff).await? as i64;
    r.drafts = dbp::delete_drafts_before(&mut tx, now - Duration::days(i64::from(s.ai_trace_days)))
        .await? as i64;
    // Tool-call logs are AI traces too.
    r.drafts +=
        dbp::delete_tool_calls_before(&mut tx, now - Duration::days(i64::from(s.ai_trace_days)))
            .await? as i64;
    let idle = dbp::idle_contacts(&mut tx, message_cutoff).await?;
    tx.commit().await?;
    // A contact with nothing left past retention is erased entirely (key destroyed), so
    // backup copies of their data become unreadable too.
    for contact in idle {
        erase::erase_contact(state, tenant_id, &system, contact, "retention", None).await?;
        r.contacts += 1;
    }
    if let Some(days) = s.audit_days {
        r.audit_entries = prune_audit_log(state, tenant_id, days, now).await?;
    }
    if r != SweepReport::default() {
        let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
        let counts = dbp::RunCounts {
            messages: r.messages,
            media: r.media,
            drafts: r.drafts,
            contacts: r.contacts,
            audit_entries: r.audit_entries,
        };
        dbp::record_run(&mut tx, tenant_id, counts, now).await?;
        audit::record(&mut tx, tenant_id, &system, "retention.sweep", "", json!({ "messages": r.messages, "media": r.media, "drafts": r.drafts, "contacts": r.contacts, "audit_entries": r.audit_entries, "erasures": r.erasures }), now).await?;
        tx.commit().await?;
    }
    Ok(r)
}

/// Drops the tenant's audit entries older than `days` (a prefix of the chain, never the
/// newest entry), leaving a signed checkpoint and an `audit.pruned` entry, all in one
/// transaction. A chain that fails verification is left whole: a checkpoint vouches for
/// what it replaces, so pruning must never launder tampering. Returns how many were dropped.
pub(crate) async fn prune_audit_log(
    state: &Privacy,
    tenant_id: Uuid,
    days: i32,
    now: OffsetDateTime,
) -> anyhow::Result<i64> {
    let key = state.keys.audit_checkpoint_key(tenant_id).await?;
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, Actor::system(), now).await?;
    audit::lock_chain(&mut tx, tenant_id).await?;
    if let Err(problem) = audit::verify_chain(&mut tx, tenant_id, &*key).await? {
        tracing::error!(tenant = %tenant_id, ?problem, "audit log fails verification; not pruning it");
        return Ok(0);
    }
    let Some(plan) = audit::prune_plan(&mut tx, now, days).await? else {
        return Ok(0);
    };
    let cp = audit::prune(&mut tx, tenant_id, &plan, &*key).await?;
    tx.audit(
        "audit.pruned",
        "",
        json!({ "count": cp.dropped, "through_seq": cp.through_seq }),
    )
    .await?;
    tx.commit().await?;
    Ok(cp.dropped)
}

/// After a turn is handled (draft approved, rejected or dismissed, a staff reply, a
/// takeover, or staff marking it), its media is deleted from storage — unless the tenant
/// chose to keep media for some days. Returns how many objects were deleted.
pub(crate) async fn media_after_triage(
    state: &Privacy,
    tenant_id: Uuid,
    conversation_id: Uuid,
) -> anyhow::Result<usize> {
    let now = state.now();
    let plan = plan_of(&state.db, tenant_id).await?;
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    if settings(&mut tx, plan).await?.media_days.is_some() {
        return Ok(0);
    }
    let media = dbp::media_handled(&mut tx, conversation_id, now).await?;
    tx.commit().await?;
    for (_, key) in &media {
        state.media.delete(key).await?;
    }
    if !media.is_empty() {
        let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
        for (id, _) in &media {
            dbp::mark_media_deleted(&mut tx, *id, now).await?;
        }
        tx.commit().await?;
    }
    Ok(media.len())
}

/// Permanently deletes a tenant whose termination date has come: its key is destroyed
/// (every copy of its data, backups included, becomes unreadable), its media deleted and its
/// rows removed.
pub(crate) async fn terminate(state: &Privacy, tenant_id: Uuid) -> anyhow::Result<()> {
    state
        .keys
        .destroy_tenant_key(tenant_id, "termination")
        .await?;
    state
        .media
        .delete_prefix(&format!("tenants/{tenant_id}/"))
        .await?;
    // Deleting the tenant row cascades to every tenant-owned table.
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .execute(&state.db)
        .await?;
    tracing::info!(tenant = %tenant_id, "tenant terminated and deleted");
    Ok(())
}
