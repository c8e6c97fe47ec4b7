//! The `ai_reply` job: build the context, ask the tenant's provider (or the offline
//! answerer), and store a draft with provenance — or an escalation with the reason. It never
//! sends anything itself: a pending draft waits for staff; only `auto_send` approves it.
//!
//! `run` reads top to bottom; the steps live beside it:
//! - `gate`: may this turn be drafted at all (policy, ownership, restriction), and is the
//!   tenant over a limit (monthly drafts, daily calls, billing paused);
//! - `context`: the turn's messages, opened and described for the prompt, and the
//!   customer's and tenant's side of the prompt;
//! - `offline`: the offline answerer (and its guess at the customer's language);
//! - `llm`: the tenant's provider, transcription, the prompt, the call;
//! - `tools`: the tenant's MCP tools offered to the model and the tool loop;
//! - `store`: the draft or escalation stored once per turn, tool calls and recipients
//!   recorded, the auto-send decision, the events.

mod context;
mod gate;
mod llm;
mod offline;
mod store;
mod tools;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use self::tools::RecordedCall;
use crate::{
    ai::{AiError, ProviderKind, context::Escalation, text::Synonyms},
    db::{
        self, ai as db_ai, conversations,
        jobs::{self, BackgroundJob, JobMeta, Outcome},
        messages,
    },
    i18n::Lang,
    review::AI_REPLY,
    review::Review,
};

/// Enqueues each conversation's AI turn at its `run_at` unless one is pending already, in
/// one statement (ingestion calls it once per group-committed batch). A burst becomes one
/// turn because the turn itself waits until `debounce` after the newest message (see
/// `run_turn`): rescheduling the pending job on every message instead wrote a new job row
/// version (and four index entries) per message, on the ingestion path.
pub(crate) async fn schedule_many(
    conn: &mut PgConnection,
    turns: &[(Uuid, Uuid, OffsetDateTime)],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let jobs: Vec<_> = turns
        .iter()
        .map(|(tenant_id, conversation_id, run_at)| {
            (
                AiReply {
                    tenant_id: *tenant_id,
                    conversation_id: *conversation_id,
                },
                *run_at,
            )
        })
        .collect();
    jobs::enqueue_many_if_absent(conn, &jobs, now).await?;
    Ok(())
}

/// The `ai_reply` job: one conversation's AI turn (see [`schedule_many`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AiReply {
    pub(crate) tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub(crate) conversation_id: Uuid,
}

impl BackgroundJob for AiReply {
    const KIND: &'static str = AI_REPLY;
    const MAX_ATTEMPTS: i32 = 4;
    type Context = Review;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("ai_reply:{}", self.conversation_id))
    }

    async fn run(self, state: &Review, meta: &JobMeta) -> anyhow::Result<Outcome> {
        run_turn(state, self.tenant_id, self.conversation_id, meta).await
    }
}

/// Why a human must take this turn (stored on the draft and the conversation).
fn escalation_code(e: Escalation) -> String {
    e.code().to_owned()
}

/// What a drafting attempt produced.
enum Produced {
    Draft(Drafted),
    Escalate {
        reason: String,
        provider: String,
        model: String,
        external: bool,
    },
}

/// A reply drafted for review, with its provenance.
struct Drafted {
    text: String,
    provider: String,
    model: String,
    prompt_version: String,
    knowledge_ids: Vec<Uuid>,
    input_tokens: i32,
    output_tokens: i32,
    latency_ms: i32,
    /// Whether the conversation's data left for an outside provider.
    external: bool,
    /// What the reviewer must know about it (`partly_answered`): stored as the draft's
    /// reason, and such a draft is never sent without a person.
    note: Option<String>,
}

impl Produced {
    fn provider(&self) -> &str {
        match self {
            Produced::Draft(d) => &d.provider,
            Produced::Escalate { provider, .. } => provider,
        }
    }

    fn model(&self) -> &str {
        match self {
            Produced::Draft(d) => &d.model,
            Produced::Escalate { model, .. } => model,
        }
    }

    /// Whether the conversation's data left for an outside provider.
    fn external(&self) -> bool {
        match self {
            Produced::Draft(d) => d.external,
            Produced::Escalate { external, .. } => *external,
        }
    }
}

/// The `ai_reply` job: waits while the customer is still writing (a burst becomes one turn:
/// `debounce` after the newest message arrived here — our clock, not the gateway's
/// timestamps), then drafts.
async fn run_turn(
    state: &Review,
    tenant_id: Uuid,
    conversation_id: Uuid,
    job: &JobMeta,
) -> anyhow::Result<Outcome> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let newest = messages::newest_inbound_at(&mut tx, conversation_id).await?;
    tx.commit().await?;
    if let Some(due) = newest.map(|at| at + state.config.ai_debounce())
        && due > state.now()
    {
        return Ok(Outcome::Later(due));
    }
    run(state, tenant_id, conversation_id, job)
        .await
        .map(|()| Outcome::Done)
}

/// One turn: read what it needs in one tenant transaction (stopping where the gate says
/// no), draft — or escalate when over a limit or when drafting failed — and store.
async fn run(
    state: &Review,
    tenant_id: Uuid,
    conversation_id: Uuid,
    job: &JobMeta,
) -> anyhow::Result<()> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(conv) = conversations::get(&mut tx, conversation_id).await? else {
        return Ok(());
    };
    let Some(contact) = db::contacts::get(&mut tx, conv.contact_id).await? else {
        return Ok(());
    };
    let ai_settings = db_ai::settings(&mut tx).await?;
    let policy = gate::policy(&conv, &ai_settings);
    if !gate::may_draft(policy, &conv, &contact) {
        return Ok(());
    }
    let Some((recent, latest)) = context::recent_turn(&mut tx, conversation_id).await? else {
        return Ok(());
    };
    let tenant_settings = db::tenants::settings(&mut tx).await?;
    let knowledge = db_ai::knowledge(&mut tx).await?;
    let synonyms = Synonyms::parse(&db_ai::synonyms(&mut tx).await?);
    let tenant = db::tenants::tenant_by_id(&state.db, tenant_id).await?;
    let over_limit = gate::over_limit(
        state,
        &mut tx,
        tenant_id,
        tenant.as_ref(),
        &ai_settings,
        now,
    )
    .await?;
    tx.commit().await?;

    let lang = Lang::parse(&tenant_settings.language).unwrap_or(Lang::PtBr);
    // Tool calls made while drafting (recorded on the draft, whatever the outcome).
    let mut calls: Vec<RecordedCall> = Vec::new();
    let produced = if let Some(limit) = over_limit {
        // Drafting pauses; the customer's messages are stored all the same.
        Produced::Escalate {
            reason: limit.into(),
            provider: ai_settings.provider.clone(),
            model: ai_settings.model.clone(),
            external: false,
        }
    } else {
        let convo = context::conversation_messages(state, tenant_id, &recent).await?;
        let kind: ProviderKind = ai_settings
            .provider
            .parse()
            .unwrap_or(ProviderKind::Offline);
        if kind == ProviderKind::Offline {
            offline::draft(&convo, &knowledge, &synonyms, lang)
        } else {
            let customer = context::customer_profile(state, tenant_id, &contact).await;
            let settings =
                context::prompt_settings(tenant.as_ref(), &ai_settings, &tenant_settings, lang);
            match llm::draft(
                state,
                tenant_id,
                &ai_settings,
                kind,
                &settings,
                &customer,
                &knowledge,
                convo,
                &recent,
                &mut calls,
            )
            .await
            {
                Ok(p) => p,
                Err(e) if e.is_retryable() && job.attempts < job.max_attempts => {
                    llm::record_failure(state, tenant_id, &ai_settings.provider, now.date())
                        .await?;
                    return Err(anyhow::anyhow!("provider unavailable, retrying: {e}"));
                }
                Err(e) => {
                    llm::record_failure(state, tenant_id, &ai_settings.provider, now.date())
                        .await?;
                    tracing::warn!(error = %e, "drafting failed; flagging the conversation for a human");
                    Produced::Escalate {
                        reason: failure_reason(&e).into(),
                        provider: ai_settings.provider.clone(),
                        model: ai_settings.model.clone(),
                        external: false,
                    }
                }
            }
        }
    };
    store::store(
        state, tenant_id, &conv, &latest, policy, produced, calls, now,
    )
    .await
}

/// The escalation reason for a drafting attempt that failed for good.
fn failure_reason(e: &AiError) -> &'static str {
    match e {
        AiError::TooLarge { .. } => "provider_response_too_large",
        e if e.is_retryable() => "provider_unavailable",
        _ => "provider_error",
    }
}
