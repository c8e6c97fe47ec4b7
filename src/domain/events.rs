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

/// Where one delivery of an event to an endpoint is (`webhook_deliveries.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliveryState {
    /// Not yet delivered; `next_attempt_at` says when it is tried (again).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// The retry schedule is used up.
    Failed,
}

impl DeliveryState {
    pub(crate) const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
    ];

    /// The stored value (the table's CHECK constraint lists the same three).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub(crate) fn parse(stored: &str) -> Option<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|d| d.as_str() == stored)
    }

    /// After an attempt: delivered on success, pending while a retry is scheduled, else failed.
    pub(crate) fn after_attempt(success: bool, retry_scheduled: bool) -> DeliveryState {
        if success {
            DeliveryState::Delivered
        } else if retry_scheduled {
            DeliveryState::Pending
        } else {
            DeliveryState::Failed
        }
    }
}

#[cfg(test)]
mod delivery_state_tests {
    use super::DeliveryState;

    #[test]
    fn delivery_states_are_the_ones_the_table_allows() {
        // webhook_deliveries.state's CHECK constraint, as the migration wrote it.
        let sql = include_str!("../../migrations/0024_outgoing_webhooks.sql");
        let allowed = crate::domain::check_constraint_values(sql, "state");
        let ours: Vec<&str> = DeliveryState::ALL.iter().map(|d| d.as_str()).collect();
        assert_eq!(ours, allowed);
        for d in DeliveryState::ALL {
            assert_eq!(DeliveryState::parse(d.as_str()), Some(d));
        }
        assert_eq!(
            DeliveryState::after_attempt(true, true),
            DeliveryState::Delivered
        );
        assert_eq!(
            DeliveryState::after_attempt(false, true),
            DeliveryState::Pending
        );
        assert_eq!(
            DeliveryState::after_attempt(false, false),
            DeliveryState::Failed
        );
    }
}
