//! Sending: a reply becomes a queued outbound message and a `send_message` job in one
//! transaction; the job moves it queued → sending (committed before the gateway call) →
//! sent | failed | unknown. A 5xx or a refused connection is retried with backoff; a timeout
//! after the request went out is `unknown` and never resent automatically (staff may retry);
//! a job that finds its message already past `queued` does nothing, so a retried job never
//! sends twice.

use serde_json::json;
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::message::{Author, Direction, MessageStatus};
use crate::{
    crypto::Aad,
    db::{
        self,
        channels::Channel,
        conversations,
        jobs::{self, BackgroundJob, JobMeta, Outcome},
        messages::{self, NewMessage},
    },
    domain::events,
    gateway::SendError,
    live,
    messaging::{Messaging, SEND_MESSAGE, channel},
};

/// The `send_message` job: sends one queued outbound message, once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SendMessage {
    pub(crate) tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub(crate) message_id: Uuid,
}

impl BackgroundJob for SendMessage {
    const KIND: &'static str = SEND_MESSAGE;
    const MAX_ATTEMPTS: i32 = 8;
    type Context = Messaging;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("send:{}", self.message_id))
    }

    async fn run(self, state: &Messaging, meta: &JobMeta) -> anyhow::Result<Outcome> {
        run(state, self.tenant_id, self.message_id, meta)
            .await
            .map(|()| Outcome::Done)
    }
}

/// WhatsApp's limit for one text message.
pub(crate) const MAX_TEXT: usize = 4096;
use crate::domain::review::window_open;

/// Why a reply can't be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Refusal {
    #[error("empty")]
    Empty,
    #[error("too long")]
    TooLong,
    #[error("outside the 24-hour window")]
    OutsideWindow,
    #[error("contact restricted")]
    Restricted,
    #[error("contact erased")]
    Erased,
    #[error("not found")]
    NotFound,
    #[error("template parameters")]
    TemplateParams,
}

impl Refusal {
    pub(crate) fn message_key(&self) -> &'static str {
        match self {
            Refusal::Empty => "reply.empty",
            Refusal::TooLong => "reply.too_long",
            Refusal::OutsideWindow => "reply.outside_window",
            Refusal::Restricted => "reply.restricted",
            Refusal::Erased => "reply.erased",
            Refusal::NotFound => "error.not_found",
            Refusal::TemplateParams => "template.params",
        }
    }
}

/// Who wrote an outbound message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Writer {
    Member(Uuid),
    /// An AI draft: approved by a member, or sent by the `auto_send` policy (`None`).
    Ai {
        approved_by: Option<Uuid>,
    },
}

/// The conversation, if anything may be sent in it: its contact exists and was neither
/// erased nor had processing restricted.
async fn sendable(
    tx: &mut PgConnection,
    conversation_id: Uuid,
) -> Result<conversations::Conversation, QueueError> {
    let conv = conversations::get(tx, conversation_id)
        .await?
        .ok_or(Refusal::NotFound)?;
    let contact = db::contacts::get(tx, conv.contact_id)
        .await?
        .ok_or(Refusal::NotFound)?;
    if contact.erased_at.is_some() {
        return Err(Refusal::Erased.into());
    }
    if contact.restricted_at.is_some() {
        return Err(Refusal::Restricted.into());
    }
    Ok(conv)
}

/// What a caller that read a conversation in one statement knows of it, for
/// [`sendable_text`].
pub(crate) struct Target<'a> {
    pub(crate) conversation: bool,
    pub(crate) contact: bool,
    pub(crate) erased: bool,
    pub(crate) restricted: bool,
    /// The conversation's channel's kind (`None`: deleted).
    pub(crate) channel_kind: Option<&'a str>,
    pub(crate) last_inbound_at: Option<OffsetDateTime>,
}

/// The text to send, trimmed, or why it can't be sent: the refusals of
/// [`queue_text_after`], in its order.
pub(crate) fn sendable_text<'t>(
    text: &'t str,
    to: &Target<'_>,
    now: OffsetDateTime,
) -> Result<&'t str, Refusal> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::Empty);
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Refusal::TooLong);
    }
    if !to.conversation || !to.contact {
        return Err(Refusal::NotFound);
    }
    if to.erased {
        return Err(Refusal::Erased);
    }
    if to.restricted {
        return Err(Refusal::Restricted);
    }
    let Some(kind) = to.channel_kind else {
        return Err(Refusal::NotFound);
    };
    if !window_open(kind, to.last_inbound_at, now) {
        return Err(Refusal::OutsideWindow);
    }
    Ok(text)
}

/// Queues a text reply in the caller's tenant-scoped transaction. Returns the message id.
pub(crate) async fn queue_text(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    conversation_id: Uuid,
    text: &str,
    author: Writer,
) -> Result<Uuid, QueueError> {
    queue_text_after(
        state,
        tx,
        tenant_id,
        conversation_id,
        text,
        author,
        Duration::ZERO,
    )
    .await
}

/// Queues a text reply whose send job runs only after `delay` (the undo window).
pub(crate) async fn queue_text_after(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    conversation_id: Uuid,
    text: &str,
    author: Writer,
    delay: Duration,
) -> Result<Uuid, QueueError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::Empty.into());
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Refusal::TooLong.into());
    }
    let now = state.now();
    let conv = sendable(tx, conversation_id).await?;
    let channel = db::channels::get(tx, conv.channel_id)
        .await?
        .ok_or(Refusal::NotFound)?;
    if !window_open(&channel.kind, conv.last_inbound_at, now) {
        return Err(Refusal::OutsideWindow.into());
    }
    let id = Uuid::now_v7();
    let sealed = state
        .keys
        .seal_str(
            tenant_id,
            conv.contact_id,
            Aad::new("messages", "body", id),
            text,
        )
        .await
        .map_err(|e| QueueError::Internal(e.into()))?;
    let (author_kind, user) = match author {
        Writer::Member(u) => (Author::Member, Some(u)),
        Writer::Ai { approved_by } => (Author::Ai, approved_by),
    };
    messages::insert(
        tx,
        NewMessage {
            id,
            tenant_id,
            conversation_id,
            channel_id: conv.channel_id,
            contact_id: conv.contact_id,
            external_id: None,
            direction: Direction::Out.as_str(),
            author: author_kind.as_str(),
            author_user_id: user,
            kind: "text",
            body_sealed: Some(sealed),
            media_kind: None,
            media_mime: None,
            media_source_sealed: None,
            media_state: None,
            quoted_external_id: None,
            sender_sealed: None,
            extra_sealed: None,
            status: MessageStatus::Queued.as_str(),
            sent_at: now,
        },
        now,
    )
    .await?;
    conversations::note_outbound(tx, conversation_id, now).await?;
    enqueue_send(tx, tenant_id, id, now + delay, now).await?;
    Ok(id)
}

/// Counts `{{n}}` placeholders in a template body.
pub(crate) fn template_params(body: &str) -> i32 {
    (1..=20)
        .filter(|n| body.contains(&format!("{{{{{n}}}}}")))
        .count() as i32
}

/// The template's text with its parameters filled in (what the conversation shows).
pub(crate) fn render_template(body: &str, params: &[String]) -> String {
    let mut out = body.to_owned();
    for (i, p) in params.iter().enumerate() {
        out = out.replace(&format!("{{{{{}}}}}", i + 1), p);
    }
    out
}

/// Queues an approved template (allowed outside the 24-hour window) in the caller's
/// tenant-scoped transaction. Returns the message id.
pub(crate) async fn queue_template(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    conversation_id: Uuid,
    template_id: Uuid,
    params: &[String],
    author: Uuid,
) -> Result<Uuid, QueueError> {
    let now = state.now();
    let conv = sendable(tx, conversation_id).await?;
    let tpl = db::templates::get(tx, template_id)
        .await?
        .ok_or(Refusal::NotFound)?;
    if params.len() as i32 != tpl.param_count
        || params
            .iter()
            .any(|p| p.trim().is_empty() || p.chars().count() > 1024)
    {
        return Err(Refusal::TemplateParams.into());
    }
    let id = Uuid::now_v7();
    let text = render_template(&tpl.body, params);
    let seal = |column: &'static str, v: String| {
        let keys = state.keys.clone();
        async move {
            keys.seal_str(
                tenant_id,
                conv.contact_id,
                Aad::new("messages", column, id),
                &v,
            )
            .await
        }
    };
    let body = seal("body", text)
        .await
        .map_err(|e| QueueError::Internal(e.into()))?;
    let payload = seal(
        "template",
        json!({ "name": tpl.name, "language": tpl.language, "params": params }).to_string(),
    )
    .await
    .map_err(|e| QueueError::Internal(e.into()))?;
    messages::insert(
        tx,
        NewMessage {
            id,
            tenant_id,
            conversation_id,
            channel_id: conv.channel_id,
            contact_id: conv.contact_id,
            external_id: None,
            direction: Direction::Out.as_str(),
            author: Author::Member.as_str(),
            author_user_id: Some(author),
            kind: "template",
            body_sealed: Some(body),
            media_kind: None,
            media_mime: None,
            media_source_sealed: None,
            media_state: None,
            quoted_external_id: None,
            sender_sealed: None,
            extra_sealed: None,
            status: MessageStatus::Queued.as_str(),
            sent_at: now,
        },
        now,
    )
    .await?;
    db::templates::set_template_payload(tx, id, &payload).await?;
    conversations::note_outbound(tx, conversation_id, now).await?;
    enqueue_send(tx, tenant_id, id, now, now).await?;
    Ok(id)
}

async fn enqueue_send(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
    run_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    jobs::enqueue(
        tx,
        &SendMessage {
            tenant_id,
            message_id,
        },
        run_at,
        now,
    )
    .await?;
    // A worker picks it up the moment this commits (or sets its timer for the undo window).
    jobs::notify_workers(tx).await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum QueueError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Internal(e.into())
    }
}

/// Staff retry of a failed or unknown send: back to queued with a new job.
pub(crate) async fn retry(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    message_id: Uuid,
) -> Result<bool, QueueError> {
    let Some(m) = messages::get(tx, message_id).await? else {
        return Ok(false);
    };
    let outbound = Direction::parse(&m.direction) == Some(Direction::Out);
    if !outbound || !MessageStatus::parse(&m.status).is_some_and(MessageStatus::retryable) {
        return Ok(false);
    }
    messages::set_status(tx, message_id, MessageStatus::Queued, None, None, true).await?;
    enqueue_send(tx, tenant_id, message_id, state.now(), state.now()).await?;
    Ok(true)
}

/// `message.sent` / `message.failed` for outgoing webhooks, in the transaction that records it.
async fn emit_outcome(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    msg: &messages::Message,
    event: &str,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let status = if event == events::MESSAGE_SENT {
        MessageStatus::Sent
    } else {
        MessageStatus::Failed
    }
    .as_str();
    let data = json!({
        "conversation_id": msg.conversation_id,
        "message_id": msg.id,
        "status": status,
    });
    db::outgoing::emit(tx, tenant_id, event, &[(data, None)], now).await
}

async fn run(
    state: &Messaging,
    tenant_id: Uuid,
    message_id: Uuid,
    job: &JobMeta,
) -> anyhow::Result<()> {
    // Claim the message: only a queued message is sent; anything else means a previous
    // attempt got further (or staff cancelled), and sending again could duplicate it. The
    // `sending` mark and everything the send needs come in one statement.
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(start) = messages::start_send(&mut tx, message_id).await? else {
        let Some(msg) = messages::get(&mut tx, message_id).await? else {
            return Ok(());
        };
        if MessageStatus::parse(&msg.status) == Some(MessageStatus::Sending) {
            // A worker died mid-send: we can't know whether the gateway got it.
            messages::set_status(
                &mut tx,
                message_id,
                MessageStatus::Unknown,
                None,
                Some("worker stopped during the send"),
                true,
            )
            .await?;
            tx.commit().await?;
            state
                .live
                .publish(
                    tenant_id,
                    &live::Event::Conversation {
                        id: msg.conversation_id,
                    },
                )
                .await;
        }
        // Otherwise undone (deleted) or moved on since it was queued: nothing to send.
        return Ok(());
    };
    tx.commit().await?;
    let msg = start.message;

    let gateway = start
        .channel
        .as_ref()
        .map(|c| c.kind.clone())
        .unwrap_or_else(|| "none".into());
    let outcome = match (start.channel, start.chat) {
        (Some(channel), Some((conv_id, conv_contact, is_group, chat))) => {
            let to = if is_group {
                state
                    .keys
                    .open_tenant_str(tenant_id, Aad::new("conversations", "chat", conv_id), &chat)
                    .await?
            } else {
                state
                    .keys
                    .open_str(
                        tenant_id,
                        conv_contact,
                        Aad::new("conversations", "chat", conv_id),
                        &chat,
                    )
                    .await?
            };
            let template = match (msg.kind.as_str(), start.template_sealed) {
                ("template", Some(sealed)) => {
                    let v: serde_json::Value = serde_json::from_str(
                        &state
                            .keys
                            .open_str(
                                tenant_id,
                                msg.contact_id,
                                Aad::new("messages", "template", msg.id),
                                &sealed,
                            )
                            .await?,
                    )?;
                    Some(v)
                }
                _ => None,
            };
            let text = match msg.body_sealed.as_deref() {
                Some(b) => {
                    state
                        .keys
                        .open_str(
                            tenant_id,
                            msg.contact_id,
                            Aad::new("messages", "body", msg.id),
                            b,
                        )
                        .await?
                }
                None => String::new(),
            };
            match template {
                Some(t) => send_template_via(state, &channel, &to, &t).await,
                None => send_via(state, &channel, &to, &text).await,
            }
        }
        _ => Err(SendError::Rejected {
            status: 0,
            code: None,
            reason: "the channel or conversation no longer exists".into(),
        }),
    };

    let label = match &outcome {
        Ok(_) => "sent",
        Err(SendError::Retryable { .. }) => "retryable",
        Err(SendError::OutsideWindow { .. }) => "outside_window",
        Err(SendError::Rejected { .. }) => "rejected",
        Err(SendError::Unknown { .. }) => "unknown",
    };
    metrics::counter!("sigmaai_sends_total", "gateway" => gateway, "outcome" => label).increment(1);
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let result = match outcome {
        Ok(external_id) => {
            messages::set_status(
                &mut tx,
                message_id,
                MessageStatus::Sent,
                Some(&external_id),
                None,
                false,
            )
            .await?;
            emit_outcome(&mut tx, tenant_id, &msg, events::MESSAGE_SENT, state.now()).await?;
            Ok(())
        }
        Err(SendError::Retryable { reason, .. }) => {
            if job.attempts >= job.max_attempts {
                messages::set_status(
                    &mut tx,
                    message_id,
                    MessageStatus::Failed,
                    None,
                    Some(&format!(
                        "gave up after {} attempts: {reason}",
                        job.attempts
                    )),
                    true,
                )
                .await?;
                emit_outcome(
                    &mut tx,
                    tenant_id,
                    &msg,
                    events::MESSAGE_FAILED,
                    state.now(),
                )
                .await?;
                Ok(())
            } else {
                // Back to queued; the job fails and the queue retries it with backoff.
                messages::set_status(
                    &mut tx,
                    message_id,
                    MessageStatus::Queued,
                    None,
                    Some(&reason),
                    true,
                )
                .await?;
                Err(anyhow::anyhow!("gateway unavailable: {reason}"))
            }
        }
        Err(SendError::OutsideWindow { reason }) => {
            messages::set_status(
                &mut tx,
                message_id,
                MessageStatus::Failed,
                None,
                Some(&format!("outside the 24-hour window: {reason}")),
                true,
            )
            .await?;
            emit_outcome(
                &mut tx,
                tenant_id,
                &msg,
                events::MESSAGE_FAILED,
                state.now(),
            )
            .await?;
            Ok(())
        }
        Err(SendError::Rejected { reason, .. }) => {
            messages::set_status(
                &mut tx,
                message_id,
                MessageStatus::Failed,
                None,
                Some(&reason),
                true,
            )
            .await?;
            emit_outcome(
                &mut tx,
                tenant_id,
                &msg,
                events::MESSAGE_FAILED,
                state.now(),
            )
            .await?;
            Ok(())
        }
        Err(SendError::Unknown { reason }) => {
            messages::set_status(
                &mut tx,
                message_id,
                MessageStatus::Unknown,
                None,
                Some(&reason),
                true,
            )
            .await?;
            Ok(())
        }
    };
    tx.commit().await?;
    state
        .live
        .publish(
            tenant_id,
            &live::Event::Conversation {
                id: msg.conversation_id,
            },
        )
        .await;
    result
}

/// One send through the channel's gateway. Returns the gateway's message id.
async fn send_via(
    state: &Messaging,
    channel: &Channel,
    to: &str,
    text: &str,
) -> Result<String, SendError> {
    match channel::outbound(state, channel).await {
        Ok(gw) => gw.send_text(to, text).await,
        Err(e) => Err(SendError::Rejected {
            status: 0,
            code: None,
            reason: format!("channel misconfigured: {e}"),
        }),
    }
}

async fn send_template_via(
    state: &Messaging,
    channel: &Channel,
    to: &str,
    t: &serde_json::Value,
) -> Result<String, SendError> {
    let params: Vec<&str> = t["params"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    match channel::outbound(state, channel).await {
        Ok(channel::Outbound::Meta(c)) => {
            c.send_template(
                to,
                t["name"].as_str().unwrap_or(""),
                t["language"].as_str().unwrap_or(""),
                &params,
            )
            .await
        }
        Ok(_) => Err(SendError::Rejected {
            status: 0,
            code: None,
            reason: "templates exist only on Meta channels".into(),
        }),
        Err(e) => Err(SendError::Rejected {
            status: 0,
            code: None,
            reason: format!("channel misconfigured: {e}"),
        }),
    }
}

/// Audit detail for a send (ids only).
pub(crate) fn audit_detail(message_id: Uuid) -> serde_json::Value {
    json!({ "message_id": message_id })
}
