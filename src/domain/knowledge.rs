//! A tenant's knowledge: the entries the AI (and the offline answerer) may answer from.

use uuid::Uuid;

/// What an entry is about. Ranking treats all kinds alike; the kind helps staff organise
/// entries and lets prompts label them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum KnowledgeKind {
    Faq,
    Hours,
    Service,
    Price,
    Other,
}

impl KnowledgeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KnowledgeKind::Faq => "faq",
            KnowledgeKind::Hours => "hours",
            KnowledgeKind::Service => "service",
            KnowledgeKind::Price => "price",
            KnowledgeKind::Other => "other",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<KnowledgeKind> {
        Some(match s {
            "faq" => KnowledgeKind::Faq,
            "hours" => KnowledgeKind::Hours,
            "service" => KnowledgeKind::Service,
            "price" => KnowledgeKind::Price,
            "other" => KnowledgeKind::Other,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnowledgeEntry {
    pub(crate) id: Uuid,
    pub(crate) title: String,
    pub(crate) body: String,
    pub(crate) kind: KnowledgeKind,
}

/// The keys of a tenant's opening hours (its settings' `hours` object), Monday first: the
/// settings form writes them and the prompt reads them as the clinic's hours.
pub(crate) const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
