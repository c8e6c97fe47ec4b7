//! The offline answerer's turn: the pending question, the customer's earlier messages for
//! follow-ups, and a guess at the language the customer wrote in.

use super::{Drafted, Produced, escalation_code};
use crate::{
    ai::{
        Capabilities,
        context::{self, ConversationMessage, Direction},
        offline::{self, OfflineOutcome},
        text::Synonyms,
    },
    domain::knowledge::KnowledgeEntry,
    i18n::Lang,
};

/// The customer's language, guessed from common words (the tenant's language when unsure):
/// a reply should be in the language the customer wrote.
pub(super) fn guess_lang(text: &str, fallback: Lang) -> Lang {
    const PT: &[&str] = &[
        "você", "voce", "vocês", "voces", "olá", "ola", "obrigado", "obrigada", "quanto", "qual",
        "quais", "horário", "horario", "não", "nao", "sim", "tudo", "bem", "dia", "boa", "bom",
        "tarde", "noite", "queria", "quero", "gostaria", "consulta", "preço", "preco", "aceitam",
        "vocês", "tem", "para", "com", "é", "meu", "minha", "amanhã", "hoje", "sábado", "sabado",
    ];
    const EN: &[&str] = &[
        "you",
        "hello",
        "hi",
        "thanks",
        "thank",
        "how",
        "much",
        "what",
        "which",
        "when",
        "do",
        "does",
        "is",
        "are",
        "open",
        "price",
        "appointment",
        "want",
        "would",
        "like",
        "the",
        "my",
        "today",
        "tomorrow",
        "saturday",
        "please",
    ];
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let pt = words.iter().filter(|w| PT.contains(&w.as_str())).count()
        + text
            .chars()
            .filter(|c| "ãõçáéíóúâêô".contains(*c))
            .count()
            .min(3);
    let en = words.iter().filter(|w| EN.contains(&w.as_str())).count();
    match pt.cmp(&en) {
        std::cmp::Ordering::Greater => Lang::PtBr,
        std::cmp::Ordering::Less => Lang::En,
        std::cmp::Ordering::Equal => fallback,
    }
}

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
    match offline::answer_turn(turn, knowledge, guess_lang(&question, lang), synonyms) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_the_customers_language() {
        assert_eq!(guess_lang("Quanto custa a limpeza?", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("Vocês abrem no sábado?", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("How much is a cleaning?", Lang::PtBr), Lang::En);
        assert_eq!(guess_lang("ok", Lang::PtBr), Lang::PtBr);
    }
}
