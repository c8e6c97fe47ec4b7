//! A message's direction, author, attachment and delivery status, and the one order
//! statuses move in.

/// Which way a message went (`messages.direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum Direction {
    /// From the end user to the tenant.
    In,
    /// From the tenant (a person, the AI, the API) to the end user.
    Out,
}

impl Direction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }

    pub(crate) fn parse(stored: &str) -> Option<Direction> {
        [Direction::In, Direction::Out]
            .into_iter()
            .find(|d| d.as_str() == stored)
    }
}

/// Who wrote a message (`messages.author`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum Author {
    /// The end user (inbound).
    Contact,
    /// A member of the tenant, in the portal or through the API.
    Member,
    /// An AI draft, approved by a member or sent by the `auto_send` policy.
    Ai,
    /// The business's own phone (WhatsApp on the phone or WhatsApp Web): a `fromMe` message
    /// we did not send.
    Phone,
    /// A notice about the chat (number changed, security code…): an event, not anyone's
    /// words. Never counted unread, never shown to a model.
    System,
}

impl Author {
    pub(crate) const ALL: [Author; 5] = [
        Author::Contact,
        Author::Member,
        Author::Ai,
        Author::Phone,
        Author::System,
    ];

    /// The `messages.author` value (the table's CHECK constraint lists the same five).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Author::Contact => "contact",
            Author::Member => "member",
            Author::Ai => "ai",
            Author::Phone => "phone",
            Author::System => "system",
        }
    }

    pub(crate) fn parse(stored: &str) -> Option<Author> {
        Author::ALL.into_iter().find(|a| a.as_str() == stored)
    }

    /// Written by the business's staff: in the portal, the API or on the phone.
    pub(crate) fn is_staff(self) -> bool {
        matches!(self, Author::Member | Author::Phone)
    }
}

/// Where a message's attachment is (`messages.media_state`; `NULL`: no attachment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum MediaState {
    /// Announced by the gateway, not fetched yet (the `fetch_media` job will).
    Pending,
    /// Fetched, sealed and in the media store.
    Stored,
    /// The fetch failed for good (too large, refused, retries used up).
    Failed,
    /// The gateway no longer has it (expired at the source).
    Gone,
    /// Deleted by us: retention, media after triage, erasure.
    Deleted,
}

impl MediaState {
    pub(crate) const ALL: [MediaState; 5] = [
        MediaState::Pending,
        MediaState::Stored,
        MediaState::Failed,
        MediaState::Gone,
        MediaState::Deleted,
    ];

    /// The `messages.media_state` value (the table's CHECK constraint lists the same five).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MediaState::Pending => "pending",
            MediaState::Stored => "stored",
            MediaState::Failed => "failed",
            MediaState::Gone => "gone",
            MediaState::Deleted => "deleted",
        }
    }

    pub(crate) fn parse(stored: &str) -> Option<MediaState> {
        MediaState::ALL.into_iter().find(|m| m.as_str() == stored)
    }

    /// The state of a row's `media_state` column (`None`: no attachment, or a value this
    /// binary does not know).
    pub(crate) fn of(stored: Option<&str>) -> Option<MediaState> {
        stored.and_then(MediaState::parse)
    }
}

/// Where a message is on its way (`messages.status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum MessageStatus {
    /// An inbound message, stored.
    Received,
    /// Outbound, waiting for the sender job (or for its undo window to pass).
    Queued,
    /// Outbound, handed to the gateway, no answer yet.
    Sending,
    /// Outbound, the gateway call timed out: it may or may not have gone out.
    Unknown,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub(crate) const ALL: [MessageStatus; 8] = [
        MessageStatus::Received,
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Unknown,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Unknown => "unknown",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(stored: &str) -> Option<MessageStatus> {
        MessageStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == stored)
    }

    /// The order statuses move in: an update is applied only if it ranks higher
    /// (`messages.status_rank`). Receipts arrive out of order and more than once, so a late
    /// `delivered` never downgrades `read`; `failed` is terminal; `unknown` (timed out
    /// mid-send) ranks with `sending`, so a later `sent` from the gateway still resolves it.
    pub(crate) fn rank(self) -> i16 {
        match self {
            MessageStatus::Received => 0,
            MessageStatus::Queued => 1,
            MessageStatus::Sending | MessageStatus::Unknown => 2,
            MessageStatus::Sent => 3,
            MessageStatus::Delivered => 4,
            MessageStatus::Read => 5,
            MessageStatus::Failed => 10,
        }
    }

    /// An outbound message a person may send again: it failed, or we cannot know whether
    /// it went out.
    pub(crate) fn retryable(self) -> bool {
        matches!(self, MessageStatus::Failed | MessageStatus::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_are_the_ones_the_table_allows() {
        let sql = include_str!("../../migrations/0003_messaging.sql");
        let allowed = crate::domain::check_constraint_values(sql, "author");
        let ours: Vec<&str> = Author::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(ours, allowed);
        for a in Author::ALL {
            assert_eq!(Author::parse(a.as_str()), Some(a));
        }
        assert_eq!(Author::parse("staff"), None);
        let staff: Vec<Author> = Author::ALL.into_iter().filter(|a| a.is_staff()).collect();
        assert_eq!(staff, [Author::Member, Author::Phone]);
    }

    #[test]
    fn media_states_are_the_ones_the_table_allows() {
        // The latest CHECK constraint on messages.media_state, as the migrations wrote it.
        let sql = include_str!("../../migrations/0013_message_events.sql");
        let allowed = crate::domain::check_constraint_values(sql, "media_state");
        let ours: Vec<&str> = MediaState::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(ours, allowed);
        for m in MediaState::ALL {
            assert_eq!(MediaState::parse(m.as_str()), Some(m));
        }
        assert_eq!(MediaState::of(None), None);
        assert_eq!(MediaState::of(Some("sealed")), None);
    }

    #[test]
    fn statuses_only_move_forward_and_failed_is_terminal() {
        use MessageStatus::*;
        let order = [Received, Queued, Sending, Sent, Delivered, Read, Failed];
        assert!(order.windows(2).all(|w| w[0].rank() < w[1].rank()));
        assert_eq!(
            Unknown.rank(),
            Sending.rank(),
            "a later sent resolves unknown"
        );
        assert!(MessageStatus::ALL.iter().all(|s| s.rank() <= Failed.rank()));
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MessageStatus::parse("bogus"), None);
        assert!(Failed.retryable() && Unknown.retryable() && !Sent.retryable());
    }
}
