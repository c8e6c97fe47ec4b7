//! The periodic look for what should alert someone by e-mail: data-subject requests due
//! within 3 days, drafts waiting for review longer than the tenant's threshold, webhook
//! endpoints disabled after failing for a day. Each alert's
//! idempotency key names its subject and recipient, so a run that finds the same request or
//! draft again sends nothing new.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{Kind, NewMail, enqueue, recipients};
use crate::db::{
    self,
    jobs::{BackgroundJob, JobMeta, Outcome},
};

pub(crate) const MAIL_ALERTS: &str = "mail_alerts";

/// The periodic alerts job (no payload).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct MailAlerts {}

impl BackgroundJob for MailAlerts {
    const KIND: &'static str = MAIL_ALERTS;
    type Context = super::Mail;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("periodic:{}", Self::KIND))
    }

    async fn run(self, state: &super::Mail, _: &JobMeta) -> anyhow::Result<Outcome> {
        run(state).await.map(|()| Outcome::Done)
    }
}

/// How far ahead of its deadline an open request alerts the tenant's admins.
pub(crate) const DSR_WARNING: Duration = Duration::days(3);

pub(crate) async fn run(state: &super::Mail) -> anyhow::Result<()> {
    // Runs without mail too: a request coming due is also an outgoing-webhook event.
    let mail = state.mailer.is_some();
    let now = state.now();
    let mut sent = 0usize;
    for tenant_id in db::privacy::live_tenants(&state.db).await? {
        sent += tenant(state, tenant_id, now, mail).await?;
    }
    tracing::info!(enqueued = sent, "mail alerts");
    Ok(())
}

async fn tenant(
    state: &super::Mail,
    tenant_id: Uuid,
    now: OffsetDateTime,
    mail: bool,
) -> anyhow::Result<usize> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let (slug, name, minutes): (String, String, i32) = sqlx::query_as(
        r#"SELECT t.slug, t.name, COALESCE(ts.review_alert_minutes, 60)
           FROM tenants t LEFT JOIN tenant_settings ts ON ts.tenant_id = t.id WHERE t.id = $1"#,
    )
    .bind(tenant_id)
    .fetch_one(&mut *tx)
    .await?;
    let dsrs: Vec<(Uuid, String, OffsetDateTime)> = sqlx::query_as(
        r#"SELECT id, kind, due_at FROM dsr_requests
           WHERE status NOT IN ('completed', 'denied') AND due_at <= $1 AND due_at > $2
           ORDER BY due_at LIMIT 100"#,
    )
    .bind(now + DSR_WARNING)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let waiting: Vec<Uuid> = sqlx::query_scalar(
        r#"SELECT id FROM drafts WHERE state IN ('pending', 'escalated') AND created_at <= $1
           ORDER BY created_at LIMIT 100"#,
    )
    .bind(now - Duration::minutes(i64::from(minutes)))
    .fetch_all(&mut *tx)
    .await?;
    // `dsr.due` once per request and endpoint (the dedupe key), however often this runs.
    let due: Vec<(serde_json::Value, Option<String>)> = dsrs
        .iter()
        .map(|(id, kind, due)| {
            let at = due
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            (
                json!({ "request_id": id, "kind": kind, "due_at": at }),
                Some(format!("dsr.due:{id}")),
            )
        })
        .collect();
    db::outgoing::emit(
        &mut tx,
        tenant_id,
        crate::domain::events::DSR_DUE,
        &due,
        now,
    )
    .await?;
    if !mail {
        tx.commit().await?;
        return Ok(0);
    }
    let mut n = 0;
    // Webhook endpoints disabled after a day of failures: once per disabling and admin.
    let disabled = db::outgoing::disabled_failing(&mut tx).await?;
    if !disabled.is_empty() {
        let to = recipients(&mut tx, &["owner", "admin"]).await?;
        for (id, url, at) in &disabled {
            for (user, email, lang) in &to {
                let mail = NewMail {
                    key: format!("webhook_disabled:{id}:{}:{user}", at.unix_timestamp()),
                    kind: Kind::WebhookDisabled,
                    tenant_id: Some(tenant_id),
                    user_id: Some(*user),
                    to: email.clone(),
                    lang: *lang,
                    params: json!({
                        "tenant_name": name, "slug": slug, "endpoint_id": id,
                        "host": crate::outgoing::recipient_name(url),
                    }),
                };
                n += usize::from(enqueue(&mut tx, mail, now).await?);
            }
        }
    }
    if !dsrs.is_empty() {
        let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
        let to = recipients(&mut tx, &["owner", "admin"]).await?;
        for (id, kind, due) in &dsrs {
            for (user, email, lang) in &to {
                let mail = NewMail {
                    key: format!("dsr_due:{id}:{user}"),
                    kind: Kind::DsrDue,
                    tenant_id: Some(tenant_id),
                    user_id: Some(*user),
                    to: email.clone(),
                    lang: *lang,
                    params: json!({
                        "tenant_name": name, "slug": slug, "request_id": id,
                        "request_kind": kind, "due": due.format(&f).unwrap_or_default(),
                    }),
                };
                n += usize::from(enqueue(&mut tx, mail, now).await?);
            }
        }
    }
    if !waiting.is_empty() {
        let to = recipients(&mut tx, &["owner", "admin", "reviewer"]).await?;
        for id in &waiting {
            for (user, email, lang) in &to {
                let mail = NewMail {
                    key: format!("review_waiting:{id}:{user}"),
                    kind: Kind::ReviewWaiting,
                    tenant_id: Some(tenant_id),
                    user_id: Some(*user),
                    to: email.clone(),
                    lang: *lang,
                    params: json!({ "tenant_name": name, "slug": slug, "minutes": minutes }),
                };
                n += usize::from(enqueue(&mut tx, mail, now).await?);
            }
        }
    }
    tx.commit().await?;
    Ok(n)
}
