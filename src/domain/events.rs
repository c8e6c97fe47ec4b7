//! The events a tenant can subscribe an outgoing webhook to (`crate::outgoing`), by their
//! Standard Webhooks `type` names.

pub(crate) const MESSAGE_RECEIVED: &str = "message.received";
pub(crate) const MESSAGE_SENT: &str = "message.sent";
pub(crate) const MESSAGE_FAILED: &str = "message.failed";
pub(crate) const DRAFT_CREATED: &str = "draft.created";
pub(crate) const DRAFT_APPROVED: &str = "draft.approved";
pub(crate) const CONVERSATION_ASSIGNED: &str = "conversation.assigned";
pub(crate) const DSR_CREATED: &str = "dsr.created";
pub(crate) const DSR_DUE: &str = "dsr.due";
/// Sent by the "send test event" button only; nobody subscribes to it.
pub(crate) const TEST: &str = "webhook.test";

/// Every event an endpoint may subscribe to, in the order the portal lists them.
pub(crate) const ALL: [&str; 8] = [
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    MESSAGE_FAILED,
    DRAFT_CREATED,
    DRAFT_APPROVED,
    CONVERSATION_ASSIGNED,
    DSR_CREATED,
    DSR_DUE,
];

/// Events whose payload names a message, so its text may go along (on opt-in).
pub(crate) fn carries_message(event_type: &str) -> bool {
    matches!(event_type, MESSAGE_RECEIVED | MESSAGE_SENT | MESSAGE_FAILED)
}

pub(crate) fn is_event(s: &str) -> bool {
    ALL.contains(&s)
}
