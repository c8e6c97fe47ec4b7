//! The events a tenant can subscribe an outgoing webhook to (`crate::outgoing`), by their
//! Standard Webhooks `type` names.

pub const MESSAGE_RECEIVED: &str = "message.received";
pub const MESSAGE_SENT: &str = "message.sent";
pub const MESSAGE_FAILED: &str = "message.failed";
pub const DRAFT_CREATED: &str = "draft.created";
pub const DRAFT_APPROVED: &str = "draft.approved";
pub const CONVERSATION_ASSIGNED: &str = "conversation.assigned";
pub const DSR_CREATED: &str = "dsr.created";
pub const DSR_DUE: &str = "dsr.due";
/// Sent by the "send test event" button only; nobody subscribes to it.
pub const TEST: &str = "webhook.test";

/// Every event an endpoint may subscribe to, in the order the portal lists them.
pub const ALL: [&str; 8] = [
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
pub fn carries_message(event_type: &str) -> bool {
    matches!(event_type, MESSAGE_RECEIVED | MESSAGE_SENT | MESSAGE_FAILED)
}

pub fn is_event(s: &str) -> bool {
    ALL.contains(&s)
}
