//! Review before delivery: the AI drafts (the `ai_reply` job), staff decide (approve,
//! edit-then-approve, reject, take over), and only an approval — or the tenant's explicit
//! `auto_send` policy — puts a reply on the send queue.

pub mod decide;
pub mod diff;
pub mod draft;
pub mod presence;

use crate::domain::review::Policy;

/// The job that drafts a reply for a conversation (one pending per conversation, debounced:
/// a burst of messages coalesces into one turn).
pub const AI_REPLY: &str = "ai_reply";

/// The review policies: per tenant, overridable per conversation.
pub const POLICIES: [&str; 3] = [
    Policy::ReviewAll.as_str(),
    Policy::AutoSend.as_str(),
    Policy::Off.as_str(),
];
