//! Staff decisions on drafts. Each moves a draft out of the queue at most once (a
//! conditional update), so a double click — or two reviewers at once — sends one reply.

use serde_json::json;
use uuid::Uuid;

use crate::domain::conversation::Ownership;
use crate::domain::mcp::CallState;
use crate::domain::review::{Decision, DraftState};
use crate::{
    crypto::{Aad, Keyring},
    db::{
        self, ai as db_ai,
        audit::{self, Actor},
        conversations,
    },
    domain::events,
    live,
    messaging::{
        send::{self, Refusal},
        view,
    },
    privacy::retention,
    review::Review,
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecideError {
    #[error("not found")]
    NotFound,
    /// Someone decided it first (or a newer draft replaced it).
    #[error("already decided")]
    AlreadyDecided,
    #[error("empty reply")]
    Empty,
    /// Undo came after the reply started to send.
    #[error("too late to undo")]
    TooLate,
    /// Another member is editing this draft right now (their name).
    #[error("being edited by someone else")]
    Locked(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for DecideError {
    fn from(e: sqlx::Error) -> Self {
        DecideError::Internal(e.into())
    }
}

impl DecideError {
    pub(crate) fn message_key(&self) -> &'static str {
        match self {
            DecideError::NotFound => "error.not_found",
            DecideError::AlreadyDecided => "review.already_decided",
            DecideError::Empty => "reply.empty",
            DecideError::TooLate => "review.undo_too_late",
            DecideError::Locked(_) => "review.locked",
            DecideError::Refused(r) => r.message_key(),
            DecideError::Internal(_) => "error.internal",
        }
    }
}

/// Someone else holding the draft (editing it, heartbeat fresh) blocks a decision on it.
/// The draft a decision is about and the state it moves to. A missing draft, one decided
/// already, and one another member is editing are refused before anything changes (the
/// UPDATE re-checks the state, so two reviewers at once still decide once).
async fn draft_for(
    conn: &mut sqlx::PgConnection,
    draft_id: Uuid,
    decision: Decision,
    actor: &Actor,
    now: time::OffsetDateTime,
) -> Result<(db_ai::Draft, DraftState), DecideError> {
    let d = db_ai::get_draft(&mut *conn, draft_id)
        .await?
        .ok_or(DecideError::NotFound)?;
    let next =
        DraftState::decide_stored(&d.state, decision).map_err(|_| DecideError::AlreadyDecided)?;
    refuse_if_locked(conn, d.id, actor, now).await?;
    Ok((d, next))
}

async fn refuse_if_locked(
    conn: &mut sqlx::PgConnection,
    draft: Uuid,
    actor: &Actor,
    now: time::OffsetDateTime,
) -> Result<(), DecideError> {
    let me = actor.id.unwrap_or(Uuid::nil());
    match db::presence::editor(conn, draft, me, crate::review::presence::since(now)).await? {
        Some(name) => Err(DecideError::Locked(name)),
        None => Ok(()),
    }
}

/// Approves a draft, optionally with the reviewer's edited text; queues the send. Returns
/// the outbound message id.
///
/// Four round trips on the approve → send path: `BEGIN` with the tenant scope and the
/// tenant's audit-chain lock; one read of everything checked (the draft, an editor holding it,
/// the undo window, whether the conversation may be sent to, the newest audit entry); one
/// statement with every write (`db::ai::approve`); the commit. The checks and their order are
/// `draft_for`'s and `send::queue_text_after`'s.
pub(crate) async fn approve(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    draft_id: Uuid,
    edited: Option<&str>,
) -> Result<Uuid, DecideError> {
    let user = actor.id.ok_or(DecideError::NotFound)?;
    let now = state.now();
    let messaging = &state.messaging;
    let mut tx = db::begin_tenant_chain_locked(&state.db, tenant_id).await?;
    let cx = db_ai::approval_context(
        &mut tx,
        tenant_id,
        draft_id,
        user,
        crate::review::presence::since(now),
    )
    .await?
    .ok_or(DecideError::NotFound)?;
    let d = &cx.draft;
    let next = DraftState::decide_stored(&d.state, Decision::Approve)
        .map_err(|_| DecideError::AlreadyDecided)?;
    if let Some(name) = cx.editor.clone() {
        return Err(DecideError::Locked(name));
    }
    let original = view::original_text(messaging, tenant_id, d)
        .await?
        .unwrap_or_default();
    let text = match edited.map(str::trim) {
        Some(t) if !t.is_empty() => t.to_owned(),
        Some(_) => return Err(DecideError::Empty),
        None => original.clone(),
    };
    let was_edited = text != original.trim();
    // What `send::queue_text_after` refuses, in its order.
    let reply = send::sendable_text(
        &text,
        &send::Target {
            conversation: cx.conv_exists,
            contact: cx.contact_exists,
            erased: cx.erased_at.is_some(),
            restricted: cx.restricted_at.is_some(),
            channel_kind: cx.channel_kind.as_deref(),
            last_inbound_at: cx.last_inbound_at,
        },
        now,
    )?;
    let (Some(channel_id), Some(contact_id)) = (cx.channel_id, cx.conv_contact_id) else {
        return Err(Refusal::NotFound.into());
    };
    let final_sealed = state
        .keys
        .seal_str(
            tenant_id,
            d.contact_id,
            Aad::new("drafts", "final", d.id),
            &text,
        )
        .await
        .map_err(anyhow::Error::from)?;
    // The reply waits out the tenant's undo window before its send job runs.
    let undo = cx
        .undo_seconds
        .unwrap_or(db_ai::DEFAULT_UNDO_SECONDS)
        .clamp(0, 60);
    let message_id = Uuid::now_v7();
    let body_sealed = state
        .keys
        .seal_str(
            tenant_id,
            contact_id,
            Aad::new("messages", "body", message_id),
            reply,
        )
        .await
        .map_err(anyhow::Error::from)?;
    let job = db::jobs::NewJob::of(
        &send::SendMessage {
            tenant_id,
            message_id,
        },
        now + time::Duration::seconds(i64::from(undo)),
    )?;
    let entry = audit::next_entry(
        cx.audit_seq.zip(cx.audit_hash.clone()),
        actor,
        "draft.approved",
        &d.conversation_id.to_string(),
        json!({ "draft": d.id, "edited": was_edited, "message": message_id }),
        now,
    );
    let approved = json!({
        "conversation_id": d.conversation_id, "draft_id": d.id, "message_id": message_id,
        "edited": was_edited, "auto_sent": false,
    });
    let decided = db_ai::approve(
        &mut tx,
        db_ai::ApprovalWrite {
            tenant_id,
            draft_id: d.id,
            conversation_id: d.conversation_id,
            channel_id,
            contact_id,
            state: next.as_str(),
            by: user,
            final_sealed: &final_sealed,
            edited: was_edited,
            // How much the reviewer changed (the overview's weekly draft quality).
            edit_words: crate::review::diff::changed_words(&original, &text),
            message_id,
            body_sealed: &body_sealed,
            job,
            audit: &entry,
            event_type: events::DRAFT_APPROVED,
            event: &approved,
            now,
        },
    )
    .await?;
    if !decided {
        return Err(DecideError::AlreadyDecided);
    }
    tx.commit().await?;
    publish_decision(state, tenant_id, d.conversation_id).await;
    retention::media_after_triage(&state.privacy, tenant_id, d.conversation_id).await?;
    Ok(message_id)
}

/// Takes back an approval while its reply is still waiting out the undo window: nothing is
/// sent and the draft is back in the queue. `AlreadyDecided` once the send has started.
pub(crate) async fn undo(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    draft_id: Uuid,
) -> Result<(), DecideError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let d = db_ai::get_draft(&mut tx, draft_id)
        .await?
        .ok_or(DecideError::NotFound)?;
    if !db_ai::undo_approval(&mut tx, d.id).await? {
        return Err(DecideError::TooLate);
    }
    tx.audit(
        "draft.approval_undone",
        &d.conversation_id.to_string(),
        json!({ "draft": d.id }),
    )
    .await?;
    tx.commit().await?;
    publish_decision(state, tenant_id, d.conversation_id).await;
    Ok(())
}

pub(crate) async fn reject(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    draft_id: Uuid,
    reason: &str,
) -> Result<(), DecideError> {
    let now = state.now();
    let reason: String = reason.trim().chars().take(500).collect();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let (d, next) = draft_for(&mut tx, draft_id, Decision::Reject, actor, now).await?;
    if !db_ai::decide(
        &mut tx,
        d.id,
        next.as_str(),
        actor.id,
        None,
        false,
        Some(&reason),
        now,
    )
    .await?
    {
        return Err(DecideError::AlreadyDecided);
    }
    // A rejected draft leaves the turn to a person.
    db_ai::set_attention(&mut tx, d.conversation_id, Some("draft_rejected"), now).await?;
    tx.audit(
        "draft.rejected",
        &d.conversation_id.to_string(),
        json!({ "draft": d.id }),
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    retention::media_after_triage(&state.privacy, tenant_id, d.conversation_id).await?;
    Ok(())
}

/// Sets a pending draft aside and has the AI write the same turn again (the reply box's
/// "regenerate"). An escalation is a person's turn: it cannot be regenerated.
pub(crate) async fn regenerate(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    draft_id: Uuid,
) -> Result<(), DecideError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let (d, next) = draft_for(&mut tx, draft_id, Decision::Regenerate, actor, now).await?;
    if !db_ai::decide(
        &mut tx,
        d.id,
        next.as_str(),
        actor.id,
        None,
        false,
        Some("regenerated"),
        now,
    )
    .await?
    {
        return Err(DecideError::AlreadyDecided);
    }
    crate::review::draft::schedule_many(&mut tx, &[(tenant_id, d.conversation_id, now)], now)
        .await?;
    db::jobs::notify_workers(&mut tx).await?;
    tx.audit(
        "draft.regenerated",
        &d.conversation_id.to_string(),
        json!({ "draft": d.id }),
    )
    .await?;
    tx.commit().await?;
    publish_decision(state, tenant_id, d.conversation_id).await;
    Ok(())
}

/// Clears an escalation once a person has dealt with it.
pub(crate) async fn dismiss(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    draft_id: Uuid,
) -> Result<(), DecideError> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let d = db_ai::get_draft(&mut tx, draft_id)
        .await?
        .ok_or(DecideError::NotFound)?;
    let next = DraftState::decide_stored(&d.state, Decision::Dismiss)
        .map_err(|_| DecideError::AlreadyDecided)?;
    if !db_ai::decide(
        &mut tx,
        d.id,
        next.as_str(),
        actor.id,
        None,
        false,
        None,
        now,
    )
    .await?
    {
        return Err(DecideError::AlreadyDecided);
    }
    db_ai::set_attention(&mut tx, d.conversation_id, None, now).await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    retention::media_after_triage(&state.privacy, tenant_id, d.conversation_id).await?;
    Ok(())
}

/// Staff take the conversation: the AI stops drafting and pending drafts are withdrawn.
pub(crate) async fn take_over(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    conversation_id: Uuid,
) -> Result<(), DecideError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    if !conversations::set_ownership(&mut tx, conversation_id, Ownership::Human).await? {
        return Err(DecideError::NotFound);
    }
    db_ai::supersede_pending(&mut tx, conversation_id, now).await?;
    db_ai::set_attention(&mut tx, conversation_id, None, now).await?;
    tx.audit(
        "conversation.taken_over",
        &conversation_id.to_string(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    retention::media_after_triage(&state.privacy, tenant_id, conversation_id).await?;
    Ok(())
}

/// Approves a prepared write call (book, update, cancel): `pending → approved` at most once,
/// with its execution queued in the same transaction. A double click or a second reviewer
/// finds it decided; the `mcp_call` job runs it exactly once.
pub(crate) async fn approve_call(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    call_id: Uuid,
) -> Result<(), DecideError> {
    let user = actor.id.ok_or(DecideError::NotFound)?;
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let c = db::mcp::call(&mut tx, call_id)
        .await?
        .ok_or(DecideError::NotFound)?;
    if !db::mcp::transition(
        &mut tx,
        c.id,
        CallState::Pending,
        CallState::Approved,
        Some(user),
        now,
    )
    .await?
    {
        return Err(DecideError::AlreadyDecided);
    }
    crate::mcp::registry::enqueue_call(&mut tx, tenant_id, c.id, now).await?;
    tx.audit(
        "mcp.call_approved",
        &c.conversation_id.to_string(),
        json!({ "call": c.id, "server": c.server_name, "tool": c.tool }),
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    Ok(())
}

pub(crate) async fn reject_call(
    state: &Review,
    tenant_id: Uuid,
    actor: &Actor,
    call_id: Uuid,
) -> Result<(), DecideError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let c = db::mcp::call(&mut tx, call_id)
        .await?
        .ok_or(DecideError::NotFound)?;
    if !db::mcp::transition(
        &mut tx,
        c.id,
        CallState::Pending,
        CallState::Rejected,
        actor.id,
        now,
    )
    .await?
    {
        return Err(DecideError::AlreadyDecided);
    }
    tx.audit(
        "mcp.call_rejected",
        &c.conversation_id.to_string(),
        json!({ "call": c.id, "tool": c.tool }),
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    Ok(())
}

/// A tool call as a reviewer sees it: arguments and result opened from the contact's key.
pub(crate) struct CallView {
    pub(crate) id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) draft_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) server: String,
    pub(crate) tool: String,
    pub(crate) risk: String,
    pub(crate) state: String,
    pub(crate) arguments: String,
    pub(crate) result: String,
    /// Why the call failed, in the reviewer's language (see `ErrorText`).
    pub(crate) error: Option<crate::mcp::client::ErrorText>,
    pub(crate) latency_ms: i32,
}

pub(crate) async fn call_view(keys: &Keyring, tenant_id: Uuid, c: &db::mcp::Call) -> CallView {
    let open = |column: &'static str, sealed: Option<Vec<u8>>| async move {
        match sealed {
            Some(s) => keys
                .open_str(
                    tenant_id,
                    c.contact_id,
                    Aad::new("mcp_tool_calls", column, c.id),
                    &s,
                )
                .await
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    let args = open("arguments", Some(c.arguments_sealed.clone())).await;
    // Pretty-printed for reading; the stored text is what was sent.
    let arguments = serde_json::from_str::<serde_json::Value>(&args)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(args);
    CallView {
        id: c.id,
        draft_id: c.draft_id,
        conversation_id: c.conversation_id,
        server: c.server_name.clone(),
        tool: c.tool.clone(),
        risk: c.risk.clone(),
        state: c.state.clone(),
        arguments,
        result: open("result", c.result_sealed.clone()).await,
        error: c.error.as_deref().map(crate::mcp::client::ErrorText::of),
        latency_ms: c.latency_ms,
    }
}

/// Tells open review queues and the conversation's thread that a draft's fate changed.
async fn publish_decision(state: &Review, tenant_id: Uuid, conversation_id: Uuid) {
    state.live.publish(tenant_id, &live::Event::Review).await;
    state
        .live
        .publish(
            tenant_id,
            &live::Event::Conversation {
                id: conversation_id,
            },
        )
        .await;
}
