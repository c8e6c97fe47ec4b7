//! The review rules, as pure functions: which decisions a draft in a given state allows, and
//! WhatsApp's customer-service window. The I/O around them is `review::decide` and
//! `messaging::send`; the database re-checks the state in the same UPDATE, so two reviewers
//! deciding at once still decide once.

use time::{Duration, OffsetDateTime};

use super::conversation::Ownership;

/// Where a draft is in its life (`drafts.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DraftState {
    /// Waiting for a reviewer.
    Pending,
    /// The AI handed the turn to a person (emergency, complaint, own-data request, …).
    Escalated,
    Approved,
    Rejected,
    /// Replaced by a newer draft (the customer wrote again, or a reviewer regenerated it).
    Superseded,
    /// An escalation a person dealt with.
    Dismissed,
}

/// What a reviewer does to a draft.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve,
    Reject,
    Regenerate,
    Dismiss,
}

/// The decision is not open to this draft: someone decided it first, or it never could be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} draft cannot be given {decision:?}")]
pub(crate) struct Refused {
    pub(crate) from: DraftState,
    pub(crate) decision: Decision,
}

impl DraftState {
    pub(crate) const ALL: [DraftState; 6] = [
        DraftState::Pending,
        DraftState::Escalated,
        DraftState::Approved,
        DraftState::Rejected,
        DraftState::Superseded,
        DraftState::Dismissed,
    ];

    /// The stored word (the `drafts.state` CHECK constraint lists the same six).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DraftState::Pending => "pending",
            DraftState::Escalated => "escalated",
            DraftState::Approved => "approved",
            DraftState::Rejected => "rejected",
            DraftState::Superseded => "superseded",
            DraftState::Dismissed => "dismissed",
        }
    }

    /// The state a stored word names; `None` for a word we don't know (treated as decided:
    /// nothing may move it).
    pub(crate) fn parse(stored: &str) -> Option<DraftState> {
        DraftState::ALL.into_iter().find(|s| s.as_str() == stored)
    }

    /// Waiting for a person: counted in the review badge and shown in the queue.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn is_waiting(self) -> bool {
        matches!(self, DraftState::Pending | DraftState::Escalated)
    }

    /// The state `decision` moves this draft to.
    ///
    /// - Only a pending draft has text to approve, or to throw away for a new one.
    /// - Rejecting and dismissing close whatever waits (an escalation has no text to send,
    ///   but a reviewer may still reject or dismiss it).
    /// - A decided draft stays decided.
    pub(crate) fn decide(self, decision: Decision) -> Result<DraftState, Refused> {
        use {Decision as D, DraftState as S};
        match (self, decision) {
            (S::Pending, D::Approve) => Ok(S::Approved),
            (S::Pending, D::Regenerate) => Ok(S::Superseded),
            (S::Pending | S::Escalated, D::Reject) => Ok(S::Rejected),
            (S::Pending | S::Escalated, D::Dismiss) => Ok(S::Dismissed),
            (from, decision) => Err(Refused { from, decision }),
        }
    }

    /// [`DraftState::decide`] on a stored word (an unknown word is refused).
    pub(crate) fn decide_stored(stored: &str, decision: Decision) -> Result<DraftState, Refused> {
        match DraftState::parse(stored) {
            Some(s) => s.decide(decision),
            None => Err(Refused {
                from: DraftState::Dismissed,
                decision,
            }),
        }
    }
}

/// WhatsApp's customer-service window: free-form replies only within 24 h of the last
/// message from the customer (Meta enforces it; we show and respect it for every gateway).
pub(crate) const SERVICE_WINDOW: Duration = Duration::hours(24);

/// Whether free text may be sent now: Meta channels close it [`SERVICE_WINDOW`] after the
/// customer's last message (a template is needed after that); other gateways don't enforce it.
pub(crate) fn window_open(
    channel_kind: &str,
    last_inbound_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    channel_kind != "meta" || last_inbound_at.is_some_and(|t| t + SERVICE_WINDOW > now)
}

/// When the window closes (`None` before the customer ever wrote).
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn window_closes_at(last_inbound_at: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    last_inbound_at.map(|t| t + SERVICE_WINDOW)
}

/// How a tenant's drafts reach customers (`ai_settings.policy`), overridable per
/// conversation (`conversations.policy_override`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum Policy {
    /// A person approves every draft.
    ReviewAll,
    /// Drafts go out at once unless something needs a person (see
    /// [`Policy::sends_without_review`]).
    AutoSend,
    /// No drafts.
    Off,
}

impl Policy {
    pub(crate) const ALL: [Policy; 3] = [Policy::ReviewAll, Policy::AutoSend, Policy::Off];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Policy::ReviewAll => "review_all",
            Policy::AutoSend => "auto_send",
            Policy::Off => "off",
        }
    }

    pub(crate) fn parse(word: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == word)
    }

    /// One conversation's policy: its own override, else the tenant's. An unknown stored
    /// word counts as "review everything", the safe reading.
    pub(crate) fn effective(tenant: &str, conversation_override: Option<&str>) -> Policy {
        conversation_override
            .or(Some(tenant))
            .and_then(Policy::parse)
            .unwrap_or(Policy::ReviewAll)
    }

    /// Whether the AI drafts at all.
    pub(crate) fn drafts(self) -> bool {
        self != Policy::Off
    }

    /// Whether a draft goes to the customer without a reviewer: only under auto-send, and
    /// never when the guard escalated the turn, when the draft waits on tool calls that
    /// write (a person approves those first), or when it carries a note for staff.
    pub(crate) fn sends_without_review(
        self,
        escalated: bool,
        pending_writes: bool,
        noted: bool,
    ) -> bool {
        self == Policy::AutoSend && !escalated && !pending_writes && !noted
    }
}

/// Whether the AI may draft a reply in a conversation now: its policy drafts at all, the AI
/// owns it (not a person, not paused; an unknown stored word counts as not the AI's), and
/// the contact's data may be processed (neither restricted nor erased).
pub(crate) fn ai_may_draft(
    policy: Policy,
    ownership: Option<Ownership>,
    may_process: bool,
) -> bool {
    policy.drafts() && ownership.is_some_and(Ownership::ai_answers) && may_process
}

#[cfg(test)]
mod tests {
    use super::{Decision as D, DraftState as S, *};

    #[test]
    fn the_ai_drafts_only_when_the_policy_drafts_it_owns_the_chat_and_may_process() {
        use Policy::*;
        for p in Policy::ALL {
            for o in Ownership::ALL {
                for may in [true, false] {
                    assert_eq!(
                        ai_may_draft(p, Some(o), may),
                        p != Off && o == Ownership::Ai && may,
                        "{p:?} {o:?} {may}"
                    );
                }
            }
        }
        assert!(
            !ai_may_draft(AutoSend, None, true),
            "an unknown owner: not the AI"
        );
    }

    #[test]
    fn every_state_round_trips_through_its_stored_word() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        assert_eq!(S::parse("sent"), None);
    }

    #[test]
    fn only_a_pending_draft_can_be_approved_or_regenerated() {
        assert_eq!(S::Pending.decide(D::Approve), Ok(S::Approved));
        assert_eq!(S::Pending.decide(D::Regenerate), Ok(S::Superseded));
        for s in S::ALL.into_iter().filter(|s| *s != S::Pending) {
            assert!(s.decide(D::Approve).is_err(), "{s:?}");
            assert!(s.decide(D::Regenerate).is_err(), "{s:?}");
        }
    }

    #[test]
    fn what_waits_can_be_rejected_or_dismissed_and_nothing_decided_moves() {
        for s in [S::Pending, S::Escalated] {
            assert!(s.is_waiting());
            assert_eq!(s.decide(D::Reject), Ok(S::Rejected));
            assert_eq!(s.decide(D::Dismiss), Ok(S::Dismissed));
        }
        for s in [S::Approved, S::Rejected, S::Superseded, S::Dismissed] {
            assert!(!s.is_waiting());
            for d in [D::Approve, D::Reject, D::Regenerate, D::Dismiss] {
                assert_eq!(
                    s.decide(d),
                    Err(Refused {
                        from: s,
                        decision: d
                    })
                );
            }
        }
        assert!(S::decide_stored("unknown", D::Reject).is_err());
    }

    #[test]
    fn the_window_closes_24_hours_after_the_customer_wrote_on_meta_only() {
        let wrote = OffsetDateTime::UNIX_EPOCH + Duration::days(1000);
        let just_before = wrote + SERVICE_WINDOW - Duration::seconds(1);
        assert!(window_open("meta", Some(wrote), just_before));
        assert!(!window_open("meta", Some(wrote), wrote + SERVICE_WINDOW));
        assert!(
            !window_open("meta", None, wrote),
            "never wrote: a template first"
        );
        assert!(window_open(
            "evolution",
            Some(wrote),
            wrote + Duration::days(30)
        ));
        assert_eq!(window_closes_at(Some(wrote)), Some(wrote + SERVICE_WINDOW));
    }

    #[test]
    fn auto_send_sends_only_what_needs_no_person_and_an_override_wins() {
        use Policy::*;
        assert!(AutoSend.sends_without_review(false, false, false));
        assert!(
            !AutoSend.sends_without_review(true, false, false),
            "escalated"
        );
        assert!(
            !AutoSend.sends_without_review(false, true, false),
            "writes to approve"
        );
        assert!(
            !AutoSend.sends_without_review(false, false, true),
            "a note for staff"
        );
        assert!(!ReviewAll.sends_without_review(false, false, false));
        assert_eq!(Policy::effective("auto_send", Some("off")), Off);
        assert_eq!(Policy::effective("auto_send", None), AutoSend);
        assert_eq!(Policy::effective("bogus", None), ReviewAll);
        assert!(!Off.drafts() && ReviewAll.drafts());
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.as_str()), Some(p));
        }
    }
}
