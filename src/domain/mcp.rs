//! A tool call's life (`mcp_tool_calls.state`), as a type and its one state machine.
//!
//! A **read** call runs while the draft is written and ends at once: `ok`, `error`,
//! `timeout` or `refused` (the SSRF guard). A **write** call (book, update, cancel) is only
//! prepared while drafting: `pending` until a reviewer approves or rejects it; an approved
//! call is claimed by the `mcp_call` job (`running`) and ends `done` or `failed`.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub(crate) enum CallState {
    Ok,
    Error,
    Timeout,
    Refused,
    Pending,
    Approved,
    Running,
    Done,
    Failed,
    Rejected,
}

impl CallState {
    /// The ten the table's CHECK constraint lists (migration 0005).
    pub(crate) const ALL: [CallState; 10] = [
        CallState::Ok,
        CallState::Error,
        CallState::Timeout,
        CallState::Refused,
        CallState::Pending,
        CallState::Approved,
        CallState::Running,
        CallState::Done,
        CallState::Failed,
        CallState::Rejected,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CallState::Ok => "ok",
            CallState::Error => "error",
            CallState::Timeout => "timeout",
            CallState::Refused => "refused",
            CallState::Pending => "pending",
            CallState::Approved => "approved",
            CallState::Running => "running",
            CallState::Done => "done",
            CallState::Failed => "failed",
            CallState::Rejected => "rejected",
        }
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn parse(stored: &str) -> Option<CallState> {
        CallState::ALL.into_iter().find(|s| s.as_str() == stored)
    }

    /// Whether a call in this state may move to `to`: a reviewer decides a pending write
    /// once, the job claims an approved one once, and a running one ends once. Nothing else
    /// moves (a read call is recorded in its final state).
    pub(crate) fn may_become(self, to: CallState) -> bool {
        use CallState::*;
        matches!(
            (self, to),
            (Pending, Approved)
                | (Pending, Rejected)
                | (Approved, Running)
                | (Running, Done)
                | (Running, Failed)
        )
    }

    /// A write waiting for a reviewer: its draft cannot go out on its own (not even under
    /// auto-send).
    pub(crate) fn awaits_review(self) -> bool {
        self == CallState::Pending
    }

    /// Whether the call reached its server with the contact's data (the server is then one
    /// of the data's recipients): every call but a write still waiting for a reviewer and
    /// one the SSRF guard refused before connecting.
    pub(crate) fn reached_server(self) -> bool {
        !matches!(self, CallState::Pending | CallState::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_decided_once_claimed_once_and_ends_once() {
        use CallState::*;
        let allowed: Vec<(CallState, CallState)> = CallState::ALL
            .into_iter()
            .flat_map(|a| CallState::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| a.may_become(*b))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Approved),
                (Pending, Rejected),
                (Approved, Running),
                (Running, Done),
                (Running, Failed),
            ]
        );
        for end in [Ok, Error, Timeout, Refused, Done, Failed, Rejected] {
            assert!(
                CallState::ALL.iter().all(|to| !end.may_become(*to)),
                "{end:?} is final"
            );
        }
        assert!(
            !Approved.may_become(Approved),
            "a second approval does nothing"
        );
        for s in CallState::ALL {
            assert_eq!(CallState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_waiting_or_refused_call_sent_nothing_to_its_server() {
        use CallState::*;
        for s in CallState::ALL {
            assert_eq!(s.reached_server(), !matches!(s, Pending | Refused), "{s:?}");
        }
    }
}
