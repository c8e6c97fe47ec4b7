//! Storing a turn's outcome, in one tenant transaction: the draft or escalation (once per
//! turn), the recipients the contact's data went to, the tool calls sealed on the draft, the
//! auto-send when the policy allows it, and the `draft.created` event.

use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Drafted, Produced, tools::RecordedCall};
use crate::{
    crypto::Aad,
    db::{
        self,
        ai::{self as db_ai, NewDraft, UsageDelta},
        audit::{self, Actor},
        conversations::Conversation,
        mcp as db_mcp,
        messages::Message,
    },
    domain::{
        events,
        review::{DraftState, Policy},
    },
    live,
    messaging::send::{self, Writer},
    review::Review,
};

/// The turn a draft answers: what every row stored for it names.
struct Turn<'a> {
    tenant_id: Uuid,
    draft_id: Uuid,
    conv: &'a Conversation,
    latest: &'a Message,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn store(
    state: &Review,
    tenant_id: Uuid,
    conv: &Conversation,
    latest: &Message,
    policy: Policy,
    produced: Produced,
    calls: Vec<RecordedCall>,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let turn = Turn {
        tenant_id,
        draft_id: Uuid::now_v7(),
        conv,
        latest,
    };
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let inserted = match &produced {
        Produced::Draft(d) => insert_draft(state, &mut tx, &turn, d, now).await?,
        Produced::Escalate {
            reason,
            provider,
            model,
            ..
        } => insert_escalation(&mut tx, &turn, reason, provider, model, now).await?,
    };
    if !inserted {
        return Ok(()); // this turn was drafted already
    }
    if produced.external() {
        // The provider received this contact's data: the privacy features list it.
        db_ai::record_recipient(
            &mut tx,
            tenant_id,
            conv.contact_id,
            "ai_provider",
            produced.provider(),
            produced.model(),
            now,
        )
        .await?;
    }
    let pending_writes = store_calls(state, &mut tx, &turn, &calls, now).await?;
    if let Some(text) = auto_send_text(policy, &produced, pending_writes) {
        auto_send(state, &mut tx, &turn, text, now).await?;
    }
    let escalated = matches!(produced, Produced::Escalate { .. });
    let created = json!({
        "conversation_id": conv.id,
        "draft_id": turn.draft_id,
        "state": if escalated { DraftState::Escalated } else { DraftState::Pending }.as_str(),
    });
    db::outgoing::emit(
        &mut tx,
        tenant_id,
        events::DRAFT_CREATED,
        &[(created, None)],
        now,
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    state
        .live
        .publish(tenant_id, &live::Event::Conversation { id: conv.id })
        .await;
    Ok(())
}

/// A pending draft, its text sealed under the contact's key, and its usage counted.
/// `false` if this turn has a draft already (nothing written).
async fn insert_draft(
    state: &Review,
    tx: &mut PgConnection,
    turn: &Turn<'_>,
    d: &Drafted,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let provider = &d.provider;
    metrics::histogram!("sigmaai_ai_request_duration_seconds", "provider" => provider.clone())
        .record(f64::from(d.latency_ms) / 1000.0);
    metrics::counter!("sigmaai_ai_tokens_total", "provider" => provider.clone(), "direction" => "input")
        .increment(d.input_tokens.max(0) as u64);
    metrics::counter!("sigmaai_ai_tokens_total", "provider" => provider.clone(), "direction" => "output")
        .increment(d.output_tokens.max(0) as u64);
    let sealed = state
        .keys
        .seal_str(
            turn.tenant_id,
            turn.conv.contact_id,
            Aad::new("drafts", "original", turn.draft_id),
            &d.text,
        )
        .await?;
    let inserted = db_ai::insert_draft(
        &mut *tx,
        NewDraft {
            id: turn.draft_id,
            tenant_id: turn.tenant_id,
            conversation_id: turn.conv.id,
            contact_id: turn.conv.contact_id,
            reply_to_message_id: turn.latest.id,
            state: DraftState::Pending.as_str(),
            original_sealed: Some(sealed),
            escalation_reason: d.note.as_deref(),
            provider,
            model: &d.model,
            prompt_version: &d.prompt_version,
            knowledge_ids: d.knowledge_ids.clone(),
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            latency_ms: d.latency_ms,
        },
        now,
    )
    .await?;
    if inserted {
        db_ai::add_usage(
            &mut *tx,
            turn.tenant_id,
            now.date(),
            UsageDelta {
                provider,
                calls: i32::from(d.external),
                failures: 0,
                drafts: 1,
                input_tokens: i64::from(d.input_tokens),
                output_tokens: i64::from(d.output_tokens),
            },
        )
        .await?;
    }
    Ok(inserted)
}

/// An escalation: the reason on the draft and on the conversation (an emergency first in
/// the queue). `false` if this turn has a draft already (nothing written).
async fn insert_escalation(
    tx: &mut PgConnection,
    turn: &Turn<'_>,
    reason: &str,
    provider: &str,
    model: &str,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let inserted = db_ai::insert_draft(
        &mut *tx,
        NewDraft {
            id: turn.draft_id,
            tenant_id: turn.tenant_id,
            conversation_id: turn.conv.id,
            contact_id: turn.conv.contact_id,
            reply_to_message_id: turn.latest.id,
            state: DraftState::Escalated.as_str(),
            original_sealed: None,
            escalation_reason: Some(reason),
            provider,
            model,
            prompt_version: "",
            knowledge_ids: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
        },
        now,
    )
    .await?;
    if inserted {
        db_ai::set_attention(&mut *tx, turn.conv.id, Some(reason), now).await?;
        // An emergency goes first in the queue and is marked in the inbox.
        db_ai::set_urgent(&mut *tx, turn.draft_id, turn.conv.id, reason == "emergency").await?;
    }
    Ok(inserted)
}

/// What the AI looked up or wants to do, on the draft; arguments and results sealed under
/// the contact's key. Servers that received the contact's data are recipients. `true` if
/// any call is a write waiting for a person.
async fn store_calls(
    state: &Review,
    tx: &mut PgConnection,
    turn: &Turn<'_>,
    calls: &[RecordedCall],
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let (tenant_id, conv) = (turn.tenant_id, turn.conv);
    let mut pending_writes = false;
    for (seq, c) in calls.iter().enumerate() {
        let arguments_sealed = state
            .keys
            .seal_str(
                tenant_id,
                conv.contact_id,
                Aad::new("mcp_tool_calls", "arguments", c.id),
                &c.arguments.to_string(),
            )
            .await?;
        let result_sealed = match &c.result {
            Some(r) => Some(
                state
                    .keys
                    .seal_str(
                        tenant_id,
                        conv.contact_id,
                        Aad::new("mcp_tool_calls", "result", c.id),
                        r,
                    )
                    .await?,
            ),
            None => None,
        };
        db_mcp::insert_call(
            &mut *tx,
            db_mcp::NewCall {
                id: c.id,
                tenant_id,
                draft_id: turn.draft_id,
                conversation_id: conv.id,
                contact_id: conv.contact_id,
                server_id: c.server_id,
                server_name: &c.server_name,
                tool: &c.tool,
                risk: &c.risk,
                seq: seq as i32,
                state: c.state.as_str(),
                arguments_sealed,
                result_sealed,
                error: c.error.as_deref(),
                latency_ms: c.latency_ms,
            },
            now,
        )
        .await?;
        pending_writes |= c.state.awaits_review();
        if c.state.reached_server() {
            db_ai::record_recipient(
                &mut *tx,
                tenant_id,
                conv.contact_id,
                "mcp_server",
                &c.server_name,
                &c.tool,
                now,
            )
            .await?;
        }
    }
    Ok(pending_writes)
}

/// The text to send right away, if this outcome may go without a person
/// ([`Policy::sends_without_review`]): a draft (an escalation has no text) under
/// `auto_send`. A draft that prepared an action waits for a person even under auto_send; a
/// partly answered message waits for a person too (the rest needs an answer).
fn auto_send_text(policy: Policy, produced: &Produced, pending_writes: bool) -> Option<&str> {
    match produced {
        Produced::Draft(d)
            if policy.sends_without_review(false, pending_writes, d.note.is_some()) =>
        {
            Some(&d.text)
        }
        Produced::Draft(_) | Produced::Escalate { .. } => None,
    }
}

/// Queues the draft as the reply and approves it as the system (`draft.auto_sent`,
/// `draft.approved`). When it can't be sent (window closed, restricted…) it is left for a
/// person: not an error.
async fn auto_send(
    state: &Review,
    tx: &mut PgConnection,
    turn: &Turn<'_>,
    text: &str,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let (tenant_id, conv, draft_id) = (turn.tenant_id, turn.conv, turn.draft_id);
    match send::queue_text(
        &state.messaging,
        &mut *tx,
        tenant_id,
        conv.id,
        text,
        Writer::Ai { approved_by: None },
    )
    .await
    {
        Ok(message_id) => {
            db_ai::decide(
                &mut *tx,
                draft_id,
                DraftState::Approved.as_str(),
                None,
                None,
                false,
                None,
                now,
            )
            .await?;
            db_ai::set_sent(&mut *tx, draft_id, message_id, true).await?;
            audit::record(
                &mut *tx,
                tenant_id,
                &Actor::system(),
                "draft.auto_sent",
                &conv.id.to_string(),
                json!({ "draft": draft_id }),
                now,
            )
            .await?;
            let approved = json!({
                "conversation_id": conv.id, "draft_id": draft_id, "message_id": message_id,
                "edited": false, "auto_sent": true,
            });
            db::outgoing::emit(
                &mut *tx,
                tenant_id,
                events::DRAFT_APPROVED,
                &[(approved, None)],
                now,
            )
            .await?;
        }
        Err(e) => {
            // Can't send (window closed, restricted…): leave it for a person.
            tracing::info!(error = %e, "auto-send not possible; draft left for review");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(note: Option<&str>) -> Produced {
        Produced::Draft(Drafted {
            text: "Abrimos às 8h.".into(),
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v2".into(),
            knowledge_ids: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
            note: note.map(str::to_owned),
        })
    }

    #[test]
    fn only_a_plain_draft_under_auto_send_goes_without_a_person() {
        use Policy::*;
        assert_eq!(
            auto_send_text(AutoSend, &draft(None), false),
            Some("Abrimos às 8h.")
        );
        assert_eq!(auto_send_text(ReviewAll, &draft(None), false), None);
        assert_eq!(auto_send_text(Off, &draft(None), false), None);
        assert_eq!(
            auto_send_text(AutoSend, &draft(None), true),
            None,
            "a prepared write"
        );
        assert_eq!(
            auto_send_text(AutoSend, &draft(Some("partly_answered")), false),
            None
        );
        assert_eq!(
            auto_send_text(
                Policy::effective("review_all", Some("auto_send")),
                &draft(None),
                false
            ),
            Some("Abrimos às 8h."),
            "the conversation's override wins"
        );
        let escalation = Produced::Escalate {
            reason: "emergency".into(),
            provider: "offline".into(),
            model: String::new(),
            external: false,
        };
        assert_eq!(auto_send_text(AutoSend, &escalation, false), None);
    }
}
