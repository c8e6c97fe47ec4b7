//! The offline answerer's turn: the pending question, the customer's earlier messages for
//! follow-ups, and the language the customer wrote in (`ai::text::guess_lang`).

use super::{Drafted, Produced, escalation_code};
use crate::{
    ai::{
        Capabilities,
        context::{self, ConversationMessage, Direction},
        offline::{self, OfflineOutcome},
        text::{self, Synonyms},
    },
    domain::knowledge::KnowledgeEntry,
    i18n::Lang,
};

/// The customer's messages before the pending ones (at most `n`, oldest first), for
/// follow-ups like "e no domingo?".
fn earlier_customer_texts(convo: &[ConversationMessage], n: usize) -> Vec<String> {
    let pending_from = convo
        .iter()
        .rposition(|m| m.direction == Direction::Outbound)
        .map_or(0, |i| i + 1);
    let mut out: Vec<String> = convo[..pending_from]
        .iter()
        .filter(|m| m.direction == Direction::Inbound && !m.text.trim().is_empty())
        .map(|m| m.text.trim().to_owned())
        .collect();
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

/// Drafts with the offline answerer (the tenant's knowledge, no outside provider), or
/// escalates when it can't answer.
pub(super) fn draft(
    convo: &[ConversationMessage],
    knowledge: &[KnowledgeEntry],
    synonyms: &Synonyms,
    lang: Lang,
) -> Produced {
    let offline = |reason: String| Produced::Escalate {
        reason,
        provider: "offline".into(),
        model: String::new(),
        external: false,
    };
    if let Some(e) = context::unreadable_media(Capabilities::default(), convo) {
        return offline(escalation_code(e));
    }
    let question = context::pending_text(convo);
    let earlier = earlier_customer_texts(convo, 2);
    let turn = offline::Turn {
        pending: &question,
        earlier: &earlier,
    };
    // A reply should be in the language the customer wrote (the tenant's when unsure).
    let lang = text::guess_lang(&question, lang);
    match offline::answer_turn(turn, knowledge, lang, synonyms) {
        OfflineOutcome::Answer {
            text,
            entry_ids,
            unanswered,
            ..
        } => Produced::Draft(Drafted {
            text,
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v2".into(),
            knowledge_ids: entry_ids,
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
            note: (unanswered > 0).then(|| "partly_answered".to_owned()),
        }),
        OfflineOutcome::Greeting { text } => Produced::Draft(Drafted {
            text,
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v2".into(),
            knowledge_ids: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
            note: None,
        }),
        OfflineOutcome::Escalate { reason } => offline(reason.code().to_owned()),
    }
}
