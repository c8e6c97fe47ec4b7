//! The one list of job kinds this binary runs: each entry maps a `jobs.kind` value to the
//! function that reads that kind's payload into its [`BackgroundJob`] struct and runs it.
//! A kind missing here is never run (see `jobs::run_one`), so a new job type is one
//! `register::<T>()` line.

use std::{future::Future, pin::Pin};

use axum::extract::FromRef;
use serde_json::Value;

use crate::{
    db::jobs::{BackgroundJob, JobMeta, Outcome},
    state::AppState,
};

type RunFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + Send + 'a>>;

/// One registered kind.
pub(crate) struct Entry {
    pub(crate) kind: &'static str,
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) max_attempts: i32,
    run: for<'a> fn(&'a AppState, Value, &'a JobMeta) -> RunFuture<'a>,
}

impl Entry {
    /// Reads `payload` as this kind's struct and runs it (a payload that does not read is
    /// an error, retried like any failure: a newer binary may read it).
    pub(crate) fn run<'a>(
        &self,
        state: &'a AppState,
        payload: Value,
        meta: &'a JobMeta,
    ) -> RunFuture<'a> {
        (self.run)(state, payload, meta)
    }
}

/// Reads the payload, builds the job's own context from the process's state (its
/// subsystem's handles, cheap clones: see `J::Context`'s `FromRef`) and runs it.
fn run_typed<'a, J: BackgroundJob>(
    state: &'a AppState,
    payload: Value,
    meta: &'a JobMeta,
) -> RunFuture<'a>
where
    J::Context: FromRef<AppState>,
{
    Box::pin(async move {
        let job: J = serde_json::from_value(payload)
            .map_err(|e| anyhow::anyhow!("{} payload does not read: {e}", J::KIND))?;
        let ctx = J::Context::from_ref(state);
        job.run(&ctx, meta).await
    })
}

/// The entry for `J`: it runs with `J::Context`, whatever of the state its subsystem takes
/// (the whole `AppState` for a job that needs most of it).
pub(crate) const fn register<J: BackgroundJob>() -> Entry
where
    J::Context: FromRef<AppState>,
{
    Entry {
        kind: J::KIND,
        max_attempts: J::MAX_ATTEMPTS,
        run: run_typed::<J>,
    }
}

/// Every job kind.
pub(crate) static JOBS: &[Entry] = &[
    register::<crate::accounts::SessionSweep>(),
    register::<crate::review::draft::AiReply>(),
    register::<crate::messaging::send::SendMessage>(),
    register::<crate::messaging::media::FetchMedia>(),
    register::<crate::messaging::groups::GroupSubject>(),
    register::<crate::db::outgoing::WebhookDeliver>(),
    register::<crate::privacy::retention::PrivacySweep>(),
    register::<crate::mcp::registry::McpCall>(),
    register::<crate::mail::SendMail>(),
    register::<crate::mail::alerts::MailAlerts>(),
];

/// The entry for `kind`, if this binary knows it.
pub(crate) fn find(kind: &str) -> Option<&'static Entry> {
    JOBS.iter().find(|e| e.kind == kind)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde::de::DeserializeOwned;
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::db::jobs::{Job, NewJob};

    #[test]
    fn kinds_are_unique() {
        let kinds: HashSet<&str> = JOBS.iter().map(|e| e.kind).collect();
        assert_eq!(kinds.len(), JOBS.len());
    }

    #[test]
    fn every_kind_constant_is_registered() {
        for kind in [
            crate::accounts::SESSION_SWEEP,
            crate::review::AI_REPLY,
            crate::messaging::SEND_MESSAGE,
            crate::messaging::FETCH_MEDIA,
            crate::messaging::GROUP_SUBJECT,
            crate::db::outgoing::WEBHOOK_DELIVER,
            crate::privacy::retention::PRIVACY_SWEEP,
            crate::mcp::registry::MCP_CALL,
            crate::mail::SEND_MAIL,
            crate::mail::alerts::MAIL_ALERTS,
        ] {
            assert!(find(kind).is_some(), "{kind} is not in the registry");
        }
        assert_eq!(JOBS.len(), 10, "a new kind: add its constant above");
        assert!(find("no_such_kind").is_none());
    }

    #[test]
    fn attempts_per_kind_are_kept() {
        let max = |k| find(k).unwrap().max_attempts;
        assert_eq!(
            max(crate::mcp::registry::MCP_CALL),
            1,
            "a write call runs once"
        );
        assert_eq!(max(crate::review::AI_REPLY), 4);
        assert_eq!(max(crate::mail::SEND_MAIL), 12);
        assert_eq!(max(crate::messaging::SEND_MESSAGE), 8);
        assert_eq!(max(crate::db::outgoing::WEBHOOK_DELIVER), 8);
    }

    /// A row as the previous binary queued it: kind, tenant and subject columns, no payload.
    fn old_row(kind: &str, tenant: Option<Uuid>, subject: Option<Uuid>) -> Job {
        Job {
            id: Uuid::now_v7(),
            kind: kind.into(),
            tenant_id: tenant,
            subject_id: subject,
            payload: None,
            attempts: 1,
            max_attempts: 8,
        }
    }

    fn parses<J: BackgroundJob + DeserializeOwned>(row: &Job) -> J {
        serde_json::from_value(row.payload_value()).unwrap_or_else(|e| panic!("{}: {e}", row.kind))
    }

    /// Writing a job and reading its row back gives the same struct, and the ids land in
    /// the columns (not in `payload`).
    fn round_trips<J: BackgroundJob + PartialEq + std::fmt::Debug + Clone>(job: J) {
        let row = NewJob::of(&job, time::OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(row.kind, J::KIND);
        assert_eq!(row.payload, None, "{}: ids only, in columns", J::KIND);
        let read = old_row(J::KIND, row.tenant_id, row.subject_id);
        assert_eq!(parses::<J>(&read), job);
    }

    #[test]
    fn rows_queued_today_still_parse() {
        let (t, s) = (Uuid::now_v7(), Uuid::now_v7());
        let ai: crate::review::draft::AiReply = parses(&old_row("ai_reply", Some(t), Some(s)));
        assert_eq!((ai.tenant_id, ai.conversation_id), (t, s));
        let send: crate::messaging::send::SendMessage =
            parses(&old_row("send_message", Some(t), Some(s)));
        assert_eq!((send.tenant_id, send.message_id), (t, s));
        let media: crate::messaging::media::FetchMedia =
            parses(&old_row("fetch_media", Some(t), Some(s)));
        assert_eq!((media.tenant_id, media.message_id), (t, s));
        let group: crate::messaging::groups::GroupSubject =
            parses(&old_row("group_subject", Some(t), Some(s)));
        assert_eq!((group.tenant_id, group.conversation_id), (t, s));
        let hook: crate::db::outgoing::WebhookDeliver =
            parses(&old_row("webhook_deliver", Some(t), Some(s)));
        assert_eq!((hook.tenant_id, hook.delivery_id), (t, s));
        let call: crate::mcp::registry::McpCall = parses(&old_row("mcp_call", Some(t), Some(s)));
        assert_eq!((call.tenant_id, call.call_id), (t, s));
        let mail: crate::mail::SendMail = parses(&old_row("send_mail", Some(t), Some(s)));
        assert_eq!((mail.tenant_id, mail.outbox_id), (Some(t), s));
        let mail: crate::mail::SendMail = parses(&old_row("send_mail", None, Some(s)));
        assert_eq!((mail.tenant_id, mail.outbox_id), (None, s));
        let _: crate::accounts::SessionSweep = parses(&old_row("session_sweep", None, None));
        let _: crate::privacy::retention::PrivacySweep =
            parses(&old_row("privacy_sweep", None, None));
        let _: crate::mail::alerts::MailAlerts = parses(&old_row("mail_alerts", None, None));
        // A row missing its subject is an error, not a job run with a made-up id.
        assert!(
            serde_json::from_value::<crate::messaging::send::SendMessage>(
                old_row("send_message", Some(t), None).payload_value()
            )
            .is_err()
        );
    }

    #[test]
    fn typed_rows_round_trip() {
        let (t, s) = (Uuid::now_v7(), Uuid::now_v7());
        round_trips(crate::review::draft::AiReply {
            tenant_id: t,
            conversation_id: s,
        });
        round_trips(crate::messaging::send::SendMessage {
            tenant_id: t,
            message_id: s,
        });
        round_trips(crate::mail::SendMail {
            tenant_id: None,
            outbox_id: s,
        });
        round_trips(crate::mcp::registry::McpCall {
            tenant_id: t,
            call_id: s,
        });
        round_trips(crate::accounts::SessionSweep {});
    }

    /// A field beyond the two columns is kept in `payload` and merged back on reading.
    #[test]
    fn extra_fields_go_to_the_payload_column() {
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Wide {
            tenant_id: Uuid,
            reason: String,
        }
        impl BackgroundJob for Wide {
            const KIND: &'static str = "wide";
            type Context = ();
            async fn run(self, _: &(), _: &JobMeta) -> anyhow::Result<Outcome> {
                Ok(Outcome::Done)
            }
        }
        let t = Uuid::now_v7();
        let job = Wide {
            tenant_id: t,
            reason: "x".into(),
        };
        let row = NewJob::of(&job, time::OffsetDateTime::UNIX_EPOCH).unwrap();
        assert_eq!(row.tenant_id, Some(t));
        assert_eq!(row.payload, Some(json!({ "reason": "x" })));
        let mut read = old_row("wide", row.tenant_id, row.subject_id);
        read.payload = row.payload;
        assert_eq!(parses::<Wide>(&read), job);
    }
}
