//! E-mail: an outbox row per message, sent over SMTP (`lettre`, rustls) by a durable job.
//!
//! A message is *enqueued* in the transaction of whatever causes it ([`enqueue`]): one row in
//! `mail_outbox` under an idempotency key (enqueueing the same key again does nothing) and
//! one `send_mail` job. The job ([`run`]) renders the message in the recipient's language
//! (HTML + text, [`templates`]), sends it and marks the row sent; a failure is retried with
//! the queue's backoff, and a row already marked sent is never sent again. The Message-ID is
//! derived from the idempotency key, so even a send repeated after a crash between the SMTP
//! answer and the mark carries the same Message-ID (mail systems fold such duplicates).
//!
//! The outbox holds no credential: links with one-time tokens (invitations, password resets)
//! are minted by the job at send time, through the same code and tables the portal's links
//! use (`accounts`), so an e-mailed link obeys the same rules as a copied one.
//!
//! Without `SIGMAAI_SMTP_URL` e-mail is off: nothing is enqueued and the portal shows links
//! to the admin as before.

pub(crate) mod alerts;
pub(crate) mod templates;

use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use lettre::{
    Message,
    message::{Mailbox, MultiPart},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use crate::{
    auth::{INVITATION_LIFETIME, RESET_LIFETIME, tokens},
    clock::SharedClock,
    db::jobs::{self, BackgroundJob, JobMeta, Outcome},
    i18n::Lang,
    smtp::Mailer,
    state::AppState,
};

/// What e-mail uses, and nothing else: the pool (the outbox, and the one-time links minted at
/// send time), the clock, the SMTP transport (`None`: e-mail is off) and our public address
/// (links, Message-IDs). Built from the process's state with `FromRef`: the `send_mail` and
/// `mail_alerts` jobs' `Context`, or `Mail::from_ref(&state)`.
#[derive(Clone)]
pub(crate) struct Mail {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) clock: SharedClock,
    pub(crate) mailer: Option<Arc<Mailer>>,
    pub(crate) public_url: Url,
}

impl Mail {
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Mail {
    fn from_ref(state: &AppState) -> Mail {
        Mail {
            db: state.db.clone(),
            clock: state.clock.clone(),
            mailer: state.mailer.clone(),
            public_url: state.config.public_url.clone(),
        }
    }
}

/// The job kind that sends one outbox row.
pub(crate) const SEND_MAIL: &str = "send_mail";

/// What a message is; each has its template in [`templates`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Invitation,
    PasswordReset,
    NewDevice,
    DsrDue,
    ReviewWaiting,
    BillingProblem,
    WebhookDisabled,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Invitation => "invitation",
            Kind::PasswordReset => "password_reset",
            Kind::NewDevice => "new_device",
            Kind::DsrDue => "dsr_due",
            Kind::ReviewWaiting => "review_waiting",
            Kind::BillingProblem => "billing_problem",
            Kind::WebhookDisabled => "webhook_disabled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "invitation" => Kind::Invitation,
            "password_reset" => Kind::PasswordReset,
            "new_device" => Kind::NewDevice,
            "dsr_due" => Kind::DsrDue,
            "review_waiting" => Kind::ReviewWaiting,
            "billing_problem" => Kind::BillingProblem,
            "webhook_disabled" => Kind::WebhookDisabled,
            _ => return None,
        })
    }
}

/// Whether e-mail is on for this instance (`SIGMAAI_SMTP_URL` set and valid).
pub(crate) fn enabled(state: &AppState) -> bool {
    state.mailer.is_some()
}

/// One message to enqueue.
pub(crate) struct NewMail {
    /// One message per key, ever (e.g. `invitation:<id>`).
    pub(crate) key: String,
    pub(crate) kind: Kind,
    /// The tenant it is about (its send job carries it; the outbox row does not).
    pub(crate) tenant_id: Option<Uuid>,
    pub(crate) user_id: Option<Uuid>,
    pub(crate) to: String,
    pub(crate) lang: Lang,
    pub(crate) params: Value,
}

/// Enqueues a message and its send job in the caller's transaction. `false` when a message
/// with the same key was enqueued before (nothing new is sent).
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    mail: NewMail,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let id: Option<Uuid> = sqlx::query_scalar(
        r#"INSERT INTO mail_outbox (id, idempotency_key, user_id, kind, to_address, language, params, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (idempotency_key) DO NOTHING
           RETURNING id"#,
    )
    .bind(Uuid::now_v7())
    .bind(&mail.key)
    .bind(mail.user_id)
    .bind(mail.kind.as_str())
    .bind(&mail.to)
    .bind(mail.lang.code())
    .bind(&mail.params)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    let job = SendMail {
        tenant_id: mail.tenant_id,
        outbox_id: id,
    };
    jobs::enqueue(conn, &job, now, now).await?;
    Ok(true)
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: Uuid,
    idempotency_key: String,
    user_id: Option<Uuid>,
    kind: String,
    to_address: String,
    language: String,
    params: Value,
    sent_at: Option<OffsetDateTime>,
}

/// What the job renders: subject, paragraphs, an optional button (label, URL).
pub(crate) struct Content {
    pub(crate) subject: String,
    pub(crate) paragraphs: Vec<String>,
    pub(crate) action: Option<(String, String)>,
}

/// The `send_mail` job: renders and sends one outbox row, once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SendMail {
    /// The tenant it is about, if any (for the tenant's job list; the row does not say).
    #[serde(default)]
    pub(crate) tenant_id: Option<Uuid>,
    #[serde(rename = "subject_id")]
    pub(crate) outbox_id: Uuid,
}

impl BackgroundJob for SendMail {
    const KIND: &'static str = SEND_MAIL;
    const MAX_ATTEMPTS: i32 = 12;
    type Context = Mail;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("mail:{}", self.outbox_id))
    }

    async fn run(self, state: &Mail, _: &JobMeta) -> anyhow::Result<Outcome> {
        run(state, self.outbox_id).await.map(|()| Outcome::Done)
    }
}

async fn run(state: &Mail, id: Uuid) -> anyhow::Result<()> {
    let Some(row) = sqlx::query_as::<_, OutboxRow>(
        r#"SELECT id, idempotency_key, user_id, kind, to_address, language, params, sent_at
           FROM mail_outbox WHERE id = $1"#,
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    else {
        // Its tenant or user was deleted since: nothing to send.
        return Ok(());
    };
    if row.sent_at.is_some() {
        return Ok(());
    }
    let mailer = state
        .mailer
        .as_ref()
        .context("e-mail is not configured on this worker (SIGMAAI_SMTP_URL)")?;
    let kind = Kind::parse(&row.kind).context("unknown mail kind")?;
    let lang = Lang::parse(&row.language).unwrap_or_default();
    let now = state.now();
    let Some(content) = build(state, &row, kind, lang, now).await? else {
        // What the message was about is gone (an invitation revoked, a user removed).
        mark(state, row.id, None, now).await?;
        tracing::info!(kind = %row.kind, "mail no longer applies; not sent");
        return Ok(());
    };
    let message_id = message_id(&row.idempotency_key, state);
    let to: Mailbox = row
        .to_address
        .parse()
        .context("the recipient address is not valid")?;
    let html = templates::html(lang, &content)?;
    let text = templates::text(lang, &content)?;
    let msg = Message::builder()
        .from(mailer.from().clone())
        .to(to)
        .subject(content.subject.clone())
        .message_id(Some(message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .context("building the message")?;
    mailer.send(msg).await?;
    mark(state, row.id, Some(&message_id), state.now()).await?;
    metrics::counter!("sigmaai_mail_sent_total", "kind" => kind.as_str()).increment(1);
    tracing::info!(kind = %row.kind, "mail sent");
    Ok(())
}

async fn mark(
    state: &Mail,
    id: Uuid,
    message_id: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mail_outbox SET sent_at = $2, message_id = $3 WHERE id = $1 AND sent_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(message_id)
    .execute(&state.db)
    .await?;
    Ok(())
}

/// `<hash of the idempotency key@our host>`: the same message always has the same id.
fn message_id(key: &str, state: &Mail) -> String {
    let h = Sha256::digest(key.as_bytes());
    let host = state.public_url.host_str().unwrap_or("sigmaai");
    format!("<{}@{host}>", hex::encode(&h[..16]))
}

fn link(state: &Mail, path: &str) -> String {
    let base = state.public_url.as_str().trim_end_matches('/');
    format!("{base}{path}")
}

fn s<'a>(params: &'a Value, name: &str) -> &'a str {
    params[name].as_str().unwrap_or("")
}

/// The message for a row, minting one-time links now. `None`: it no longer applies.
async fn build(
    state: &Mail,
    row: &OutboxRow,
    kind: Kind,
    lang: Lang,
    now: OffsetDateTime,
) -> anyhow::Result<Option<Content>> {
    let tr = lang.tr();
    let p = &row.params;
    Ok(Some(match kind {
        Kind::Invitation => {
            let inv: Uuid = s(p, "invitation_id").parse().context("invitation id")?;
            // A fresh token for the pending invitation; the hash the portal made (shown to
            // nobody while e-mail is on) is replaced, so only the e-mailed link works.
            let (token, hash) = tokens::new_link_token();
            let live: Option<Uuid> = sqlx::query_scalar(
                r#"UPDATE invitations SET token_hash = $2
                   WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3
                   RETURNING id"#,
            )
            .bind(inv)
            .bind(&hash)
            .bind(now)
            .fetch_optional(&state.db)
            .await?;
            if live.is_none() {
                return Ok(None);
            }
            let tenant = s(p, "tenant_name");
            Content {
                subject: tr.f("mail.invitation.subject", &[&tenant]),
                paragraphs: vec![
                    tr.f(
                        "mail.invitation.body",
                        &[
                            &s(p, "inviter"),
                            &tenant,
                            &tr.t(&format!("role.{}", s(p, "role"))),
                        ],
                    ),
                    tr.f(
                        "mail.invitation.expiry",
                        &[&INVITATION_LIFETIME.whole_days()],
                    ),
                ],
                action: Some((
                    tr.t("mail.invitation.action").to_owned(),
                    link(state, &format!("/invite/{token}")),
                )),
            }
        }
        Kind::PasswordReset => {
            let user = row.user_id.context("reset mail without a user")?;
            // Minted as it is sent, so no usable token waits in the outbox.
            let (token, hash) = tokens::new_link_token();
            let made = crate::db::resets::insert_self_service_reset(
                &state.db,
                user,
                &hash,
                now,
                now + RESET_LIFETIME,
            )
            .await?;
            if !made {
                return Ok(None);
            }
            Content {
                subject: tr.t("mail.reset.subject").to_owned(),
                paragraphs: vec![
                    tr.t("mail.reset.body").to_owned(),
                    tr.f("mail.reset.expiry", &[&RESET_LIFETIME.whole_minutes()]),
                ],
                action: Some((
                    tr.t("mail.reset.action").to_owned(),
                    link(state, &format!("/reset/{token}")),
                )),
            }
        }
        Kind::NewDevice => Content {
            subject: tr.t("mail.new_device.subject").to_owned(),
            paragraphs: vec![
                tr.f(
                    "mail.new_device.body",
                    &[&s(p, "device"), &s(p, "ip"), &s(p, "at")],
                ),
                tr.t("mail.new_device.advice").to_owned(),
            ],
            action: Some((
                tr.t("mail.new_device.action").to_owned(),
                link(state, "/account"),
            )),
        },
        Kind::DsrDue => Content {
            subject: tr.f("mail.dsr_due.subject", &[&s(p, "tenant_name")]),
            paragraphs: vec![tr.f(
                "mail.dsr_due.body",
                &[
                    &tr.t(&format!("dsr.kind.{}", s(p, "request_kind"))),
                    &s(p, "due"),
                ],
            )],
            action: Some((
                tr.t("mail.dsr_due.action").to_owned(),
                link(
                    state,
                    &format!(
                        "/t/{}/privacy/requests/{}",
                        s(p, "slug"),
                        s(p, "request_id")
                    ),
                ),
            )),
        },
        Kind::ReviewWaiting => Content {
            subject: tr.f("mail.review_waiting.subject", &[&s(p, "tenant_name")]),
            paragraphs: vec![tr.f(
                "mail.review_waiting.body",
                &[&p["minutes"].as_i64().unwrap_or(0)],
            )],
            action: Some((
                tr.t("mail.review_waiting.action").to_owned(),
                link(state, &format!("/t/{}/review", s(p, "slug"))),
            )),
        },
        Kind::BillingProblem => Content {
            subject: tr.f("mail.billing.subject", &[&s(p, "tenant_name")]),
            paragraphs: vec![
                tr.t(&format!("mail.billing.status.{}", s(p, "status")))
                    .to_owned(),
                tr.t("mail.billing.advice").to_owned(),
            ],
            action: Some((
                tr.t("mail.billing.action").to_owned(),
                link(state, &format!("/t/{}/billing", s(p, "slug"))),
            )),
        },
        Kind::WebhookDisabled => Content {
            subject: tr.f("mail.webhook_disabled.subject", &[&s(p, "tenant_name")]),
            paragraphs: vec![
                tr.f("mail.webhook_disabled.body", &[&s(p, "host")]),
                tr.t("webhooks.failing.body").to_owned(),
            ],
            action: Some((
                tr.t("mail.webhook_disabled.action").to_owned(),
                link(
                    state,
                    &format!("/t/{}/webhooks/{}", s(p, "slug"), s(p, "endpoint_id")),
                ),
            )),
        },
    }))
}

/// How long an outbox row (it holds an address) is kept after it was enqueued.
pub(crate) const OUTBOX_DAYS: i64 = 30;

/// Deletes outbox rows past [`OUTBOX_DAYS`] (run by the hourly session sweep).
pub(crate) async fn prune(db: &PgPool, now: OffsetDateTime) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM mail_outbox WHERE created_at < $1")
        .bind(now - time::Duration::days(OUTBOX_DAYS))
        .execute(db)
        .await?
        .rows_affected())
}

/// Members of a tenant with one of `roles`: (user id, e-mail, language), inside the caller's
/// tenant transaction.
pub(crate) async fn recipients(
    conn: &mut PgConnection,
    roles: &[&str],
) -> sqlx::Result<Vec<(Uuid, String, Lang)>> {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    let rows: Vec<(Uuid, String, Option<String>, Option<String>)> = sqlx::query_as(
        r#"SELECT u.id, u.email, u.language, ts.language
           FROM memberships m JOIN users u ON u.id = m.user_id
           LEFT JOIN tenant_settings ts ON ts.tenant_id = m.tenant_id
           WHERE m.tenant_id = app_current_tenant() AND m.role = ANY($1)
           ORDER BY u.id"#,
    )
    .bind(&roles)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, email, ul, tl)| {
            let lang = ul
                .or(tl)
                .as_deref()
                .and_then(Lang::parse)
                .unwrap_or(Lang::PtBr);
            (id, email, lang)
        })
        .collect())
}

/// A user's language for e-mail: their own, else Brazilian Portuguese (the product's home).
pub(crate) fn user_lang(language: Option<&str>) -> Lang {
    language.and_then(Lang::parse).unwrap_or(Lang::PtBr)
}

/// Tells the owners and admins of a tenant that billing needs them (inside the caller's
/// tenant transaction); one message per Stripe event and person.
pub(crate) async fn notify_billing_problem(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    event_id: &str,
    status: &str,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let (slug, name): (String, String) =
        sqlx::query_as("SELECT slug, name FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *conn)
            .await?;
    for (user, email, lang) in recipients(conn, &["owner", "admin"]).await? {
        enqueue(
            conn,
            NewMail {
                key: format!("billing:{event_id}:{user}"),
                kind: Kind::BillingProblem,
                tenant_id: Some(tenant_id),
                user_id: Some(user),
                to: email,
                lang,
                params: json!({ "tenant_name": name, "slug": slug, "status": status }),
            },
            now,
        )
        .await?;
    }
    Ok(())
}
