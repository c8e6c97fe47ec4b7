//! The `ai_reply` job: build the context, ask the tenant's provider (or the offline
//! answerer), and store a draft with provenance — or an escalation with the reason. It never
//! sends anything itself: a pending draft waits for staff; only `auto_send` approves it.

use std::time::Instant;

use secrecy::SecretString;
use serde_json::json;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::{
    ai::{
        self, AiError, Capabilities, ChatMessage, Part, ProviderConfig, ProviderKind, Role,
        ToolSpec,
        context::{
            self, Budget, ContextInput, ConversationMessage, CustomerProfile, Direction,
            Escalation, Media, TenantSettings,
        },
        offline::{self, OfflineOutcome},
    },
    crypto::Aad,
    db::{
        self,
        ai::{self as db_ai, AiSettings, NewDraft, UsageDelta},
        audit::{self, Actor},
        conversations,
        jobs::{self, BackgroundJob, JobMeta, Outcome},
        mcp as db_mcp,
        messages::{self, Message},
    },
    domain::{events, plans},
    i18n::Lang,
    live,
    mcp::{McpError, Session, registry},
    messaging::send::{self, Author},
    review::AI_REPLY,
    state::AppState,
};

/// How many recent messages are loaded for the context (the budget trims further).
const RECENT: i64 = 40;

/// Enqueues each conversation's AI turn at its `run_at` unless one is pending already, in
/// one statement (ingestion calls it once per group-committed batch). A burst becomes one
/// turn because the turn itself waits until `debounce` after the newest message (see
/// `run_turn`): rescheduling the pending job on every message instead wrote a new job row
/// version (and four index entries) per message, on the ingestion path.
pub async fn schedule_many(
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
pub struct AiReply {
    pub tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub conversation_id: Uuid,
}

impl BackgroundJob for AiReply {
    const KIND: &'static str = AI_REPLY;
    const MAX_ATTEMPTS: i32 = 4;
    type Context = AppState;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("ai_reply:{}", self.conversation_id))
    }

    async fn run(self, state: &AppState, meta: &JobMeta) -> anyhow::Result<Outcome> {
        run_turn(state, self.tenant_id, self.conversation_id, meta).await
    }
}

/// Why a human must take this turn (stored on the draft and the conversation).
fn escalation_code(e: Escalation) -> String {
    e.code().to_owned()
}

/// What a drafting attempt produced.
enum Produced {
    Draft {
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
    },
    Escalate {
        reason: String,
        provider: String,
        model: String,
        external: bool,
    },
}

/// The `ai_reply` job: waits while the customer is still writing (a burst becomes one turn:
/// `debounce` after the newest message arrived here — our clock, not the gateway's
/// timestamps), then drafts.
async fn run_turn(
    state: &AppState,
    tenant_id: Uuid,
    conversation_id: Uuid,
    job: &JobMeta,
) -> anyhow::Result<Outcome> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let newest = messages::newest_inbound_at(&mut tx, conversation_id).await?;
    tx.commit().await?;
    if let Some(due) = newest.map(|at| at + state.config.ai_debounce)
        && due > state.now()
    {
        return Ok(Outcome::Later(due));
    }
    run(state, tenant_id, conversation_id, job)
        .await
        .map(|()| Outcome::Done)
}

async fn run(
    state: &AppState,
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
    let policy = conv
        .policy_override
        .clone()
        .unwrap_or_else(|| ai_settings.policy.clone());
    // Nothing is drafted for a human-owned or paused conversation, with the policy off, or
    // for a contact whose processing is restricted or whose data was erased.
    if policy == "off"
        || conv.ownership != "ai"
        || contact.restricted_at.is_some()
        || contact.erased_at.is_some()
    {
        return Ok(());
    }
    let mut recent = messages::thread(&mut tx, conversation_id, None, RECENT).await?;
    recent.reverse();
    // Deleted messages and chat notices are not part of what the customer is saying.
    recent.retain(|m| m.deleted_at.is_none() && m.author != "system");
    let Some(latest) = recent.last().cloned() else {
        return Ok(());
    };
    if latest.direction != "in" {
        return Ok(()); // already answered
    }
    if recent
        .iter()
        .rev()
        .take_while(|m| m.direction == "in")
        .any(|m| m.media_state.as_deref() == Some("pending"))
    {
        anyhow::bail!("media of this turn is still being fetched");
    }
    let tenant_settings = db::tenants::settings(&mut tx).await?;
    let knowledge = db_ai::knowledge(&mut tx).await?;
    let synonyms = ai::text::Synonyms::parse(&db_ai::synonyms(&mut tx).await?);
    let tenant = db::tenants::tenant_by_id(&state.db, tenant_id).await?;
    let plan = tenant
        .as_ref()
        .and_then(|t| plans::by_id(&t.plan))
        .unwrap_or(&plans::PLANS[0]);
    let month_start = now.date().replace_day(1).unwrap_or(now.date());
    let over_limit = if db_ai::drafts_since(&mut tx, month_start).await?
        >= i64::from(plan.ai_messages_per_month)
    {
        Some("ai_limit_month")
    } else if ai_settings
        .daily_call_limit
        .is_some_and(|l| i64::from(l) <= 0)
    {
        Some("ai_limit_day")
    } else {
        None
    };
    // A paused or incomplete subscription: limited access, drafting waits (nothing lost).
    let billing_paused = {
        let mut conn = state.db.acquire().await?;
        db::billing::get(&mut conn, tenant_id)
            .await?
            .is_some_and(|b| crate::billing::drafting_paused(&b.billing_status))
    };
    let over_limit = if billing_paused {
        Some("billing_inactive")
    } else {
        over_limit
    };
    let over_limit = match (over_limit, ai_settings.daily_call_limit) {
        (None, Some(l)) if db_ai::calls_on(&mut tx, now.date()).await? >= i64::from(l) => {
            Some("ai_limit_day")
        }
        (o, _) => o,
    };
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
        let convo = conversation_messages(state, tenant_id, &recent).await?;
        let kind: ProviderKind = ai_settings
            .provider
            .parse()
            .unwrap_or(ProviderKind::Offline);
        if kind == ProviderKind::Offline {
            draft_offline(&convo, &knowledge, &synonyms, lang)
        } else {
            let customer = customer_profile(state, tenant_id, &contact).await;
            let settings = TenantSettings {
                business_name: tenant.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                instructions: ai_settings.instructions.clone(),
                tone: ai_settings.tone.clone(),
                language: lang,
                business_hours: hours_text(&tenant_settings.business_hours),
            };
            match draft_llm(
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
                    record_failure(state, tenant_id, &ai_settings.provider, now.date()).await?;
                    return Err(anyhow::anyhow!("provider unavailable, retrying: {e}"));
                }
                Err(e) => {
                    record_failure(state, tenant_id, &ai_settings.provider, now.date()).await?;
                    tracing::warn!(error = %e, "drafting failed; flagging the conversation for a human");
                    Produced::Escalate {
                        reason: match e {
                            AiError::TooLarge { .. } => "provider_response_too_large".into(),
                            e if e.is_retryable() => "provider_unavailable".into(),
                            _ => "provider_error".into(),
                        },
                        provider: ai_settings.provider.clone(),
                        model: ai_settings.model.clone(),
                        external: false,
                    }
                }
            }
        }
    };
    store(
        state, tenant_id, &conv, &latest, &policy, produced, calls, now,
    )
    .await
}

/// The conversation as the context builder sees it: text opened, media described.
async fn conversation_messages(
    state: &AppState,
    tenant_id: Uuid,
    recent: &[Message],
) -> anyhow::Result<Vec<ConversationMessage>> {
    let mut out = Vec::with_capacity(recent.len());
    for m in recent {
        // A deleted message is gone for everyone; a chat notice is nobody's words.
        if m.deleted_at.is_some() || m.author == "system" {
            continue;
        }
        let mut text = match m.body_sealed.as_deref() {
            Some(b)
                if matches!(
                    m.kind.as_str(),
                    "text"
                        | "image"
                        | "video"
                        | "document"
                        | "voice"
                        | "audio"
                        | "template"
                        | "button_reply"
                        | "order"
                        | "poll"
                ) =>
            {
                state
                    .keys
                    .open_str(
                        tenant_id,
                        m.contact_id,
                        Aad::new("messages", "body", m.id),
                        b,
                    )
                    .await?
            }
            _ => String::new(),
        };
        // The chosen option's id, a form's answers, an order's items, the ad they came from.
        if let Some(e) = m.extra_sealed.as_deref() {
            let e = state
                .keys
                .open_str(
                    tenant_id,
                    m.contact_id,
                    Aad::new("messages", "extra", m.id),
                    e,
                )
                .await?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e) {
                let note = crate::messaging::extra::ai_note(&v);
                if !note.is_empty() {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&note);
                }
            }
        }
        let media = match (m.kind.as_str(), m.media_state.as_deref()) {
            ("image", Some("stored")) => match load_media(state, tenant_id, m).await {
                Some(bytes) => vec![Media::Image {
                    mime: m.media_mime.clone().unwrap_or_else(|| "image/jpeg".into()),
                    bytes,
                }],
                None => vec![Media::Other {
                    mime: "image".into(),
                }],
            },
            ("image", _) => vec![Media::Other {
                mime: "image".into(),
            }],
            ("voice" | "audio", _) => vec![Media::Audio {
                mime: m.media_mime.clone().unwrap_or_default(),
                transcript: None,
            }],
            ("video" | "document" | "sticker" | "location" | "contacts", _) => vec![Media::Other {
                mime: m.kind.clone(),
            }],
            _ => Vec::new(),
        };
        let direction = if m.direction == "in" {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        out.push(ConversationMessage {
            direction,
            staff_author: (m.author == "member" || m.author == "phone").then(|| "staff".to_owned()),
            text,
            media,
        });
    }
    Ok(out)
}

async fn load_media(state: &AppState, tenant_id: Uuid, m: &Message) -> Option<Vec<u8>> {
    let sealed = state.media.get(m.media_key.as_deref()?).await.ok()??;
    state
        .keys
        .open(
            tenant_id,
            m.contact_id,
            Aad::new("media", "bytes", m.id),
            &sealed,
        )
        .await
        .ok()
}

async fn customer_profile(
    state: &AppState,
    tenant_id: Uuid,
    c: &db::contacts::Contact,
) -> CustomerProfile {
    let v = crate::messaging::view::contact(state, tenant_id, c).await;
    CustomerProfile {
        name: v.name,
        notes: (!v.notes.is_empty()).then_some(v.notes),
        tags: v.tags,
    }
}

fn hours_text(hours: &serde_json::Value) -> String {
    crate::domain::knowledge::WEEKDAYS
        .iter()
        .filter_map(|d| {
            let span = hours.get(*d)?.get(0)?;
            Some(format!(
                "{d} {}-{}",
                span.get(0)?.as_str()?,
                span.get(1)?.as_str()?
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The customer's language, guessed from common words (the tenant's language when unsure):
/// a reply should be in the language the customer wrote.
pub fn guess_lang(text: &str, fallback: Lang) -> Lang {
    const PT: &[&str] = &[
        "você", "voce", "vocês", "voces", "olá", "ola", "obrigado", "obrigada", "quanto", "qual",
        "quais", "horário", "horario", "não", "nao", "sim", "tudo", "bem", "dia", "boa", "bom",
        "tarde", "noite", "queria", "quero", "gostaria", "consulta", "preço", "preco", "aceitam",
        "vocês", "tem", "para", "com", "é", "meu", "minha", "amanhã", "hoje", "sábado", "sabado",
    ];
    const EN: &[&str] = &[
        "you",
        "hello",
        "hi",
        "thanks",
        "thank",
        "how",
        "much",
        "what",
        "which",
        "when",
        "do",
        "does",
        "is",
        "are",
        "open",
        "price",
        "appointment",
        "want",
        "would",
        "like",
        "the",
        "my",
        "today",
        "tomorrow",
        "saturday",
        "please",
    ];
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let pt = words.iter().filter(|w| PT.contains(&w.as_str())).count()
        + text
            .chars()
            .filter(|c| "ãõçáéíóúâêô".contains(*c))
            .count()
            .min(3);
    let en = words.iter().filter(|w| EN.contains(&w.as_str())).count();
    match pt.cmp(&en) {
        std::cmp::Ordering::Greater => Lang::PtBr,
        std::cmp::Ordering::Less => Lang::En,
        std::cmp::Ordering::Equal => fallback,
    }
}

/// The customer's messages before the pending ones (at most `n`, oldest first), for
/// follow-ups like "e no domingo?".
fn earlier_customer_texts(convo: &[ConversationMessage], n: usize) -> Vec<String> {
    let pending_from = convo
        .iter()
        .rposition(|m| m.direction == Direction::Outbound)
        .map_or(0, |i| i + 1);
    let mut out: Vec<String> = convo[..pending_from]
        .iter()
        .filter(|m| m.direction == Direction::Inbound && !m.text.trim().is_empty())
        .map(|m| m.text.trim().to_owned())
        .collect();
    let skip = out.len().saturating_sub(n);
    out.drain(..skip);
    out
}

fn draft_offline(
    convo: &[ConversationMessage],
    knowledge: &[crate::domain::knowledge::KnowledgeEntry],
    synonyms: &ai::text::Synonyms,
    lang: Lang,
) -> Produced {
    let offline = |reason: String| Produced::Escalate {
        reason,
        provider: "offline".into(),
        model: String::new(),
        external: false,
    };
    if let Some(e) = context::unreadable_media(Capabilities::default(), convo) {
        return offline(escalation_code(e));
    }
    let question = context::pending_text(convo);
    let earlier = earlier_customer_texts(convo, 2);
    let turn = offline::Turn {
        pending: &question,
        earlier: &earlier,
    };
    match offline::answer_turn(turn, knowledge, guess_lang(&question, lang), synonyms) {
        OfflineOutcome::Answer {
            text,
            entry_ids,
            unanswered,
            ..
        } => Produced::Draft {
            text,
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v2".into(),
            knowledge_ids: entry_ids,
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
            note: (unanswered > 0).then(|| "partly_answered".to_owned()),
        },
        OfflineOutcome::Greeting { text } => Produced::Draft {
            text,
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v2".into(),
            knowledge_ids: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
            note: None,
        },
        OfflineOutcome::Escalate { reason } => offline(reason.code().to_owned()),
    }
}

/// The tenant's provider (their own key, else the platform's), with the optional fallback.
pub async fn provider_for(
    state: &AppState,
    tenant_id: Uuid,
    s: &AiSettings,
    kind: ProviderKind,
) -> Result<std::sync::Arc<dyn ai::Provider>, AiError> {
    // A tenant's own endpoint is vetted by the SSRF guard now (DNS may have changed since
    // it was saved) and the client pinned to what was vetted.
    let vetted = match s.base_url.as_deref().filter(|u| !u.is_empty()) {
        Some(raw) => Some(
            crate::messaging::channel::vet_gateway(state, raw)
                .await
                .map_err(|e| {
                    tracing::info!(tenant = %tenant_id, reason = %e, "AI base URL refused");
                    AiError::NotConfigured("base URL")
                })?,
        ),
        None => None,
    };
    let base_url = vetted.as_ref().map(|v| v.url.clone());
    let own_key = match &s.api_key_sealed {
        Some(sealed) => Some(SecretString::from(
            state
                .keys
                .open_tenant_str(
                    tenant_id,
                    Aad::new("ai_settings", "api_key", tenant_id),
                    sealed,
                )
                .await
                .map_err(|_| AiError::NotConfigured("API key"))?,
        )),
        None => None,
    };
    let mut primary = ProviderConfig::new(kind, s.model.clone());
    primary.api_key = own_key.or_else(|| ai::platform_key(&state.config, kind, base_url.as_ref()));
    primary.base_url = base_url;
    primary.vetted = vetted;
    let fallback = match (&s.fallback_provider, &s.fallback_model) {
        (Some(p), Some(m)) if !p.is_empty() && !m.is_empty() => match p.parse::<ProviderKind>() {
            Ok(k) if k != ProviderKind::Offline => {
                let mut f = ProviderConfig::new(k, m.clone());
                f.api_key = ai::platform_key(&state.config, k, None);
                Some(f)
            }
            _ => None,
        },
        _ => None,
    };
    ai::build_with_fallback(&primary, fallback.as_ref())
}

#[allow(clippy::too_many_arguments)]
async fn draft_llm(
    state: &AppState,
    tenant_id: Uuid,
    s: &AiSettings,
    kind: ProviderKind,
    settings: &TenantSettings,
    customer: &CustomerProfile,
    knowledge: &[crate::domain::knowledge::KnowledgeEntry],
    mut convo: Vec<ConversationMessage>,
    recent: &[Message],
    calls: &mut Vec<RecordedCall>,
) -> Result<Produced, AiError> {
    let provider = provider_for(state, tenant_id, s, kind).await?;
    let caps = provider.capabilities();
    // Voice notes of this turn: transcribed when the provider can (else they escalate).
    if caps.supports_audio_transcription {
        let pending_from = convo
            .iter()
            .rposition(|m| m.direction == Direction::Outbound)
            .map_or(0, |i| i + 1);
        for (m, raw) in convo.iter_mut().zip(recent).skip(pending_from) {
            for media in m.media.iter_mut() {
                if let Media::Audio {
                    mime,
                    transcript: t @ None,
                } = media
                    && let Some(bytes) = load_media(state, tenant_id, raw).await
                {
                    *t = Some(provider.transcribe(&bytes, mime).await?);
                }
            }
        }
    }
    let escalate = |reason: String, external: bool| Produced::Escalate {
        reason,
        provider: provider.name().to_owned(),
        model: provider.model().to_owned(),
        external,
    };
    // The tenant's allowed MCP tools, for providers that can call tools.
    let toolbox = if caps.supports_tools {
        Toolbox::open(state, tenant_id).await
    } else {
        Toolbox::default()
    };
    let specs: Vec<ToolSpec> = toolbox.offered.iter().map(|o| o.spec.clone()).collect();
    // A small local model's context window can be below our default budget.
    let mut budget = Budget::default();
    let window = ai::models::lookup(kind, &s.model).context_window as usize;
    budget.max_input_tokens = budget.max_input_tokens.min(
        window
            .saturating_sub(budget.max_output_tokens as usize)
            .max(1_024),
    );
    let built = match context::build_context(&ContextInput {
        settings,
        customer,
        knowledge,
        messages: &convo,
        tools: &specs,
        capabilities: caps,
        budget,
    }) {
        Ok(b) => b,
        Err(e) => {
            toolbox.close().await;
            return Ok(escalate(escalation_code(e), false));
        }
    };
    let started = Instant::now();
    let result = tool_loop(provider.as_ref(), built.request, &toolbox, calls).await;
    toolbox.close().await;
    let (resp, usage) = result?;
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    match resp.text.filter(|t| !t.trim().is_empty()) {
        Some(text) => Ok(Produced::Draft {
            text,
            provider: resp.provider,
            model: resp.model,
            prompt_version: built.prompt_version.to_owned(),
            knowledge_ids: built.knowledge_ids,
            input_tokens: usage.input_tokens as i32,
            output_tokens: usage.output_tokens as i32,
            latency_ms,
            external: true,
            note: None,
        }),
        None => Ok(escalate("empty_reply".into(), true)),
    }
}

/// Model turns with tool calls before a final answer is forced (tools withdrawn).
const MAX_TOOL_STEPS: usize = 4;
/// Tool calls per drafting turn, across steps.
const MAX_TOOL_CALLS: usize = 8;
/// Each read call's time limit (the guard's request cap applies inside it too).
const TOOL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// One tool call made (read) or prepared (write) while drafting, in clear until `store`
/// seals it under the contact's key.
pub struct RecordedCall {
    pub id: Uuid,
    pub server_id: Uuid,
    pub server_name: String,
    pub tool: String,
    pub risk: String,
    /// ok | error | timeout | refused (read), pending (write).
    pub state: &'static str,
    pub arguments: serde_json::Value,
    pub result: Option<String>,
    pub error: Option<String>,
    pub latency_ms: i32,
}

struct Offered {
    spec: ToolSpec,
    session: usize,
    server_id: Uuid,
    server_name: String,
    tool: String,
    risk: String,
}

/// Live sessions to the tenant's enabled servers and the tools offered from them: allowed,
/// unchanged since approval (the listing is compared with the pins right now), still listed.
#[derive(Default)]
struct Toolbox {
    sessions: Vec<Session>,
    offered: Vec<Offered>,
}

impl Toolbox {
    async fn open(state: &AppState, tenant_id: Uuid) -> Toolbox {
        let mut tb = Toolbox::default();
        let servers = async {
            let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
            let servers = db_mcp::servers(&mut tx).await?;
            let tools = db_mcp::tools(&mut tx, None).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((servers, tools))
        };
        let Ok((servers, tools)) = servers.await else {
            return tb;
        };
        for s in servers.iter().filter(|s| s.enabled) {
            if !tools.iter().any(|t| t.server_id == s.id && t.usable()) {
                continue; // nothing allowed here: don't even connect
            }
            let Ok(session) = registry::connect(state, s).await else {
                continue;
            };
            let listed = match session.list_tools().await {
                Ok(l) => l,
                Err(_) => {
                    session.close().await;
                    continue;
                }
            };
            // A changed listing disables the changed tools before anything is offered.
            if registry::sync_tools(state, s, &listed).await.is_err() {
                session.close().await;
                continue;
            }
            let fresh = {
                let Ok(mut tx) = db::begin_tenant(&state.db, tenant_id).await else {
                    session.close().await;
                    continue;
                };
                let t = db_mcp::tools(&mut tx, Some(s.id)).await.unwrap_or_default();
                let _ = tx.commit().await;
                t
            };
            let index = tb.sessions.len();
            for t in fresh.into_iter().filter(|t| t.usable()) {
                if !listed.iter().any(|l| l.name == t.name) {
                    continue;
                }
                let mut name: String = t
                    .name
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .take(56)
                    .collect();
                if name.is_empty() || tb.offered.iter().any(|o| o.spec.name == name) {
                    name = format!("s{index}_{name}");
                }
                tb.offered.push(Offered {
                    spec: ToolSpec {
                        name,
                        description: t.description.clone(),
                        input_schema: t.input_schema.clone(),
                    },
                    session: index,
                    server_id: s.id,
                    server_name: s.name.clone(),
                    tool: t.name.clone(),
                    risk: t.risk.clone(),
                });
            }
            tb.sessions.push(session);
        }
        tb
    }

    async fn close(self) {
        for s in self.sessions {
            s.close().await;
        }
    }
}

/// Asks the model, runs the read calls it makes and prepares the write calls, feeds the
/// results back, until it answers (or the step limit forces an answer: tools declared but
/// forbidden).
async fn tool_loop(
    provider: &dyn ai::Provider,
    mut req: ai::ChatRequest,
    toolbox: &Toolbox,
    calls: &mut Vec<RecordedCall>,
) -> Result<(ai::ChatResponse, ai::Usage), AiError> {
    let mut usage = ai::Usage::default();
    let mut steps = 0;
    loop {
        let resp = provider.chat(&req).await?;
        usage.input_tokens += resp.usage.input_tokens;
        usage.output_tokens += resp.usage.output_tokens;
        if resp.tool_calls.is_empty()
            || req.tools.is_empty()
            || req.tool_choice == ai::ToolChoice::None
        {
            return Ok((resp, usage));
        }
        steps += 1;
        let mut parts: Vec<Part> = resp
            .text
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| Part::Text(t.clone()))
            .collect();
        parts.extend(resp.tool_calls.iter().cloned().map(Part::ToolCall));
        req.messages.push(ChatMessage {
            role: Role::Assistant,
            parts,
        });
        for tc in &resp.tool_calls {
            let content = match toolbox.offered.iter().find(|o| o.spec.name == tc.name) {
                None => "Error: no such tool.".to_owned(),
                Some(_) if calls.len() >= MAX_TOOL_CALLS => {
                    "Error: tool call limit reached; answer with what you have.".to_owned()
                }
                Some(o) if o.risk == "read" => {
                    let started = Instant::now();
                    let r = toolbox.sessions[o.session]
                        .call(&o.tool, &tc.arguments, TOOL_TIMEOUT)
                        .await;
                    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
                    let (state, result, error, content) = match r {
                        Ok(text) => ("ok", Some(text.clone()), None, text),
                        Err(McpError::Tool(text)) => (
                            "error",
                            Some(text.clone()),
                            Some(McpError::Tool(String::new()).describe()),
                            format!("Error from the tool: {text}"),
                        ),
                        Err(e) => (
                            e.outcome().as_str(),
                            None,
                            Some(e.describe()),
                            format!(
                                "Error: the tool could not be reached ({}). Do not invent its answer.",
                                e.describe()
                            ),
                        ),
                    };
                    calls.push(RecordedCall {
                        id: Uuid::now_v7(),
                        server_id: o.server_id,
                        server_name: o.server_name.clone(),
                        tool: o.tool.clone(),
                        risk: o.risk.clone(),
                        state,
                        arguments: tc.arguments.clone(),
                        result,
                        error,
                        latency_ms,
                    });
                    content
                }
                Some(o) => {
                    calls.push(RecordedCall {
                        id: Uuid::now_v7(),
                        server_id: o.server_id,
                        server_name: o.server_name.clone(),
                        tool: o.tool.clone(),
                        risk: o.risk.clone(),
                        state: "pending",
                        arguments: tc.arguments.clone(),
                        result: None,
                        error: None,
                        latency_ms: 0,
                    });
                    "Prepared, not done yet: this action waits for a staff member to approve it. \
                     Tell the customer it will be confirmed shortly; do not say it is done."
                        .to_owned()
                }
            };
            req.messages.push(ChatMessage::tool_result(
                tc.id.clone(),
                tc.name.clone(),
                content,
            ));
        }
        if steps >= MAX_TOOL_STEPS || calls.len() >= MAX_TOOL_CALLS {
            // Force an answer. The tools stay declared, since the history now holds tool
            // calls and results (Anthropic refuses those without their tools); their use is
            // forbidden instead.
            req.tool_choice = ai::ToolChoice::None;
        }
    }
}

async fn record_failure(
    state: &AppState,
    tenant_id: Uuid,
    provider: &str,
    day: Date,
) -> anyhow::Result<()> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    db_ai::add_usage(
        &mut tx,
        tenant_id,
        day,
        UsageDelta {
            provider,
            calls: 1,
            failures: 1,
            drafts: 0,
            input_tokens: 0,
            output_tokens: 0,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn store(
    state: &AppState,
    tenant_id: Uuid,
    conv: &conversations::Conversation,
    latest: &Message,
    policy: &str,
    produced: Produced,
    calls: Vec<RecordedCall>,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let draft_id = Uuid::now_v7();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let (inserted, escalated, external, provider_name, model_name) = match &produced {
        Produced::Draft {
            text,
            provider,
            model,
            prompt_version,
            knowledge_ids,
            input_tokens,
            output_tokens,
            latency_ms,
            external,
            note,
        } => {
            metrics::histogram!("sigmaai_ai_request_duration_seconds", "provider" => provider.clone())
                .record(f64::from(*latency_ms) / 1000.0);
            metrics::counter!("sigmaai_ai_tokens_total", "provider" => provider.clone(), "direction" => "input")
                .increment((*input_tokens).max(0) as u64);
            metrics::counter!("sigmaai_ai_tokens_total", "provider" => provider.clone(), "direction" => "output")
                .increment((*output_tokens).max(0) as u64);
            let sealed = state
                .keys
                .seal_str(
                    tenant_id,
                    conv.contact_id,
                    Aad::new("drafts", "original", draft_id),
                    text,
                )
                .await?;
            let inserted = db_ai::insert_draft(
                &mut tx,
                NewDraft {
                    id: draft_id,
                    tenant_id,
                    conversation_id: conv.id,
                    contact_id: conv.contact_id,
                    reply_to_message_id: latest.id,
                    state: "pending",
                    original_sealed: Some(sealed),
                    escalation_reason: note.as_deref(),
                    provider,
                    model,
                    prompt_version,
                    knowledge_ids: knowledge_ids.clone(),
                    input_tokens: *input_tokens,
                    output_tokens: *output_tokens,
                    latency_ms: *latency_ms,
                },
                now,
            )
            .await?;
            if inserted {
                db_ai::add_usage(
                    &mut tx,
                    tenant_id,
                    now.date(),
                    UsageDelta {
                        provider,
                        calls: i32::from(*external),
                        failures: 0,
                        drafts: 1,
                        input_tokens: i64::from(*input_tokens),
                        output_tokens: i64::from(*output_tokens),
                    },
                )
                .await?;
            }
            (inserted, false, *external, provider.clone(), model.clone())
        }
        Produced::Escalate {
            reason,
            provider,
            model,
            external,
        } => {
            let inserted = db_ai::insert_draft(
                &mut tx,
                NewDraft {
                    id: draft_id,
                    tenant_id,
                    conversation_id: conv.id,
                    contact_id: conv.contact_id,
                    reply_to_message_id: latest.id,
                    state: "escalated",
                    original_sealed: None,
                    escalation_reason: Some(reason),
                    provider,
                    model,
                    prompt_version: "",
                    knowledge_ids: Vec::new(),
                    input_tokens: 0,
                    output_tokens: 0,
                    latency_ms: 0,
                },
                now,
            )
            .await?;
            if inserted {
                db_ai::set_attention(&mut tx, conv.id, Some(reason), now).await?;
                // An emergency goes first in the queue and is marked in the inbox.
                db_ai::set_urgent(&mut tx, draft_id, conv.id, reason == "emergency").await?;
            }
            (inserted, true, *external, provider.clone(), model.clone())
        }
    };
    if !inserted {
        return Ok(()); // this turn was drafted already
    }
    if external {
        // The provider received this contact's data: the privacy features list it.
        db_ai::record_recipient(
            &mut tx,
            tenant_id,
            conv.contact_id,
            "ai_provider",
            &provider_name,
            &model_name,
            now,
        )
        .await?;
    }
    // What the AI looked up or wants to do, on the draft; arguments and results sealed under
    // the contact's key. Servers that received the contact's data are recipients.
    let mut pending_writes = false;
    for (seq, c) in calls.iter().enumerate() {
        let arguments_sealed = state
            .keys
            .seal_str(
                tenant_id,
                conv.contact_id,
                Aad::new("mcp_tool_calls", "arguments", c.id),
                &c.arguments.to_string(),
            )
            .await?;
        let result_sealed = match &c.result {
            Some(r) => Some(
                state
                    .keys
                    .seal_str(
                        tenant_id,
                        conv.contact_id,
                        Aad::new("mcp_tool_calls", "result", c.id),
                        r,
                    )
                    .await?,
            ),
            None => None,
        };
        db_mcp::insert_call(
            &mut tx,
            db_mcp::NewCall {
                id: c.id,
                tenant_id,
                draft_id,
                conversation_id: conv.id,
                contact_id: conv.contact_id,
                server_id: c.server_id,
                server_name: &c.server_name,
                tool: &c.tool,
                risk: &c.risk,
                seq: seq as i32,
                state: c.state,
                arguments_sealed,
                result_sealed,
                error: c.error.as_deref(),
                latency_ms: c.latency_ms,
            },
            now,
        )
        .await?;
        pending_writes |= c.state == "pending";
        if c.state != "pending" && c.state != "refused" {
            db_ai::record_recipient(
                &mut tx,
                tenant_id,
                conv.contact_id,
                "mcp_server",
                &c.server_name,
                &c.tool,
                now,
            )
            .await?;
        }
    }
    // A draft that prepared an action waits for a person even under auto_send.
    // A partly answered message waits for a person too (the rest needs an answer).
    let noted = matches!(&produced, Produced::Draft { note: Some(_), .. });
    if !escalated && policy == "auto_send" && !pending_writes && !noted {
        let text = match &produced {
            Produced::Draft { text, .. } => text.clone(),
            Produced::Escalate { .. } => String::new(),
        };
        match send::queue_text(
            state,
            &mut tx,
            tenant_id,
            conv.id,
            &text,
            Author::Ai { approved_by: None },
        )
        .await
        {
            Ok(message_id) => {
                db_ai::decide(&mut tx, draft_id, "approved", None, None, false, None, now).await?;
                db_ai::set_sent(&mut tx, draft_id, message_id, true).await?;
                audit::record(
                    &mut tx,
                    tenant_id,
                    &Actor::system(),
                    "draft.auto_sent",
                    &conv.id.to_string(),
                    json!({ "draft": draft_id }),
                    now,
                )
                .await?;
                let approved = json!({
                    "conversation_id": conv.id, "draft_id": draft_id, "message_id": message_id,
                    "edited": false, "auto_sent": true,
                });
                db::outgoing::emit(
                    &mut tx,
                    tenant_id,
                    events::DRAFT_APPROVED,
                    &[(approved, None)],
                    now,
                )
                .await?;
            }
            Err(e) => {
                // Can't send (window closed, restricted…): leave it for a person.
                tracing::info!(error = %e, "auto-send not possible; draft left for review");
            }
        }
    }
    let created = json!({
        "conversation_id": conv.id,
        "draft_id": draft_id,
        "state": if escalated { "escalated" } else { "pending" },
    });
    db::outgoing::emit(
        &mut tx,
        tenant_id,
        events::DRAFT_CREATED,
        &[(created, None)],
        now,
    )
    .await?;
    tx.commit().await?;
    state.live.publish(tenant_id, &live::Event::Review).await;
    state
        .live
        .publish(tenant_id, &live::Event::Conversation { id: conv.id })
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_the_customers_language() {
        assert_eq!(guess_lang("Quanto custa a limpeza?", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("Vocês abrem no sábado?", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("How much is a cleaning?", Lang::PtBr), Lang::En);
        assert_eq!(guess_lang("ok", Lang::PtBr), Lang::PtBr);
    }
}
