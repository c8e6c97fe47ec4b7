//! What a token may do. Personal data leaves only through `conversations:read`.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Scope {
    /// List and read conversations with their messages, and read contacts.
    ConversationsRead,
    /// Send text and template messages.
    MessagesSend,
    /// Change a contact's profile (name, notes, tags).
    ContactsWrite,
    /// List, approve, edit-and-approve and reject AI drafts.
    Review,
    /// Create, read, change and delete knowledge entries.
    KnowledgeManage,
    /// Open data-subject requests, read their status, download exports.
    PrivacyManage,
}

impl Scope {
    pub(crate) const ALL: [Scope; 6] = [
        Scope::ConversationsRead,
        Scope::MessagesSend,
        Scope::ContactsWrite,
        Scope::Review,
        Scope::KnowledgeManage,
        Scope::PrivacyManage,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::ConversationsRead => "conversations:read",
            Scope::MessagesSend => "messages:send",
            Scope::ContactsWrite => "contacts:write",
            Scope::Review => "review",
            Scope::KnowledgeManage => "knowledge:manage",
            Scope::PrivacyManage => "privacy:manage",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The translation key describing the scope on the tokens page.
    pub(crate) fn label_key(self) -> &'static str {
        match self {
            Scope::ConversationsRead => "api.scope.conversations_read",
            Scope::MessagesSend => "api.scope.messages_send",
            Scope::ContactsWrite => "api.scope.contacts_write",
            Scope::Review => "api.scope.review",
            Scope::KnowledgeManage => "api.scope.knowledge_manage",
            Scope::PrivacyManage => "api.scope.privacy_manage",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("admin"), None);
    }
}
