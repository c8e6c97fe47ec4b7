//! A delivery's events as they leave their request, before any database: who each
//! message is about (`identity`), the sender's blind indexes, and the marks (reactions,
//! poll votes) that change an earlier message rather than adding one.

use uuid::Uuid;

use crate::{domain::phone::Phone, gateway::InboundMessage, messaging::Messaging};

/// Who a message is about: the end user (1:1), or the sender inside a group.
pub(super) struct Identity {
    pub(super) phone: Option<Phone>,
    pub(super) lid: Option<String>,
}

pub(super) fn identity(m: &InboundMessage) -> Identity {
    if m.is_group {
        return Identity {
            phone: m.sender_phone.clone(),
            lid: m.sender_lid.clone(),
        };
    }
    // 1:1: the chat is the end user, whoever wrote this message.
    let chat_phone = Phone::try_from(m.chat_id.as_str()).ok();
    let chat_lid = m.chat_id.ends_with("@lid").then(|| m.chat_id.clone());
    Identity {
        phone: chat_phone.or_else(|| (!m.from_me).then(|| m.sender_phone.clone()).flatten()),
        lid: chat_lid.or_else(|| (!m.from_me).then(|| m.sender_lid.clone()).flatten()),
    }
}

/// The sender's blind indexes: keyed tokens of the phone and the LID (no database).
pub(super) async fn sender_indexes(
    state: &Messaging,
    tenant_id: Uuid,
    who: &Identity,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let phone_index = match &who.phone {
        Some(p) => Some(state.keys.blind_phone(tenant_id, p.as_str()).await?),
        None => None,
    };
    let lid_index = match &who.lid {
        Some(l) => Some(
            state
                .keys
                .blind_phone(tenant_id, &format!("lid:{l}"))
                .await?,
        ),
        None => None,
    };
    Ok((phone_index, lid_index))
}

/// A message as its request leaves it: parsed, its sender's blind indexes computed.
#[derive(Clone)]
pub(super) struct Incoming {
    pub(super) msg: InboundMessage,
    pub(super) phone_index: Option<String>,
    pub(super) lid_index: Option<String>,
}

/// A reaction or a poll vote: a mark on an earlier message, never a message of its own.
#[derive(Clone)]
pub(super) struct Mark {
    pub(super) target: String,
    /// Who marked it, as a stable pseudonym (the business, or a prefix of the sender's
    /// blind index), so a second reaction replaces the first.
    pub(super) by: String,
    pub(super) name: Option<String>,
    /// `Some(emoji)` / `None` (removed) for a reaction; a vote carries no content we can read.
    pub(super) what: MarkKind,
}

#[derive(Clone)]
pub(super) enum MarkKind {
    Reaction(Option<String>),
    PollVote,
}
