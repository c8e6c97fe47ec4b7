//! Who answers a conversation, as a type: the rules ingest, drafting and the inbox share.

/// Who answers a conversation (`conversations.ownership`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum Ownership {
    /// The AI drafts replies (sent after review, or at once under auto-send).
    Ai,
    /// A person took it over: the AI stays quiet.
    Human,
    /// Nobody answers automatically until someone hands it back.
    Paused,
}

impl Ownership {
    pub(crate) const ALL: [Ownership; 3] = [Ownership::Ai, Ownership::Human, Ownership::Paused];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ownership::Ai => "ai",
            Ownership::Human => "human",
            Ownership::Paused => "paused",
        }
    }

    /// The ownership a stored or submitted word names; `None` for any other word.
    pub(crate) fn parse(word: &str) -> Option<Ownership> {
        Ownership::ALL.into_iter().find(|o| o.as_str() == word)
    }

    /// Whether the AI may draft a reply in a conversation owned this way.
    pub(crate) fn ai_answers(self) -> bool {
        self == Ownership::Ai
    }

    /// Who owns a conversation once staff wrote to the customer themselves — from the phone
    /// (a `fromMe` message), the reply box or the API, whoever owned it before: people,
    /// until someone hands it back to the AI. The AI must never answer over a person's
    /// shoulder.
    pub(crate) const AFTER_STAFF_WROTE: Ownership = Ownership::Human;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_ai_owned_conversation_gets_drafts_and_staff_writing_silences_the_ai() {
        for o in Ownership::ALL {
            assert_eq!(Ownership::parse(o.as_str()), Some(o));
            assert_eq!(o.ai_answers(), o == Ownership::Ai);
        }
        assert_eq!(Ownership::parse("AI"), None);
        assert!(!Ownership::AFTER_STAFF_WROTE.ai_answers());
    }
}
