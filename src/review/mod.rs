//! Review before delivery: the AI drafts (the `ai_reply` job), staff decide (approve,
//! edit-then-approve, reject, take over), and only an approval — or the tenant's explicit
//! `auto_send` policy — puts a reply on the send queue.

pub(crate) mod decide;
pub(crate) mod diff;
pub(crate) mod draft;
pub(crate) mod presence;

use crate::domain::review::Policy;

/// The job that drafts a reply for a conversation (one pending per conversation, debounced:
/// a burst of messages coalesces into one turn).
pub(crate) const AI_REPLY: &str = "ai_reply";

/// The review policies: per tenant, overridable per conversation.
pub(crate) const POLICIES: [&str; 3] = [
    Policy::ReviewAll.as_str(),
    Policy::AutoSend.as_str(),
    Policy::Off.as_str(),
];
