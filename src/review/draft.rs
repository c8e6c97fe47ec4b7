//! The `ai_reply` job: build the context, ask the tenant's provider (or the offline
//! answerer), and store a draft with provenance — or an escalation with the reason. It never
//! sends anything itself: a pending draft waits for staff; only `auto_send` approves it.

use std::time::Instant;

use secrecy::SecretString;
use serde_json::json;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use url::Url;
use uuid::Uuid;

use crate::{
    ai::{
        self, AiError, Capabilities, ProviderConfig, ProviderKind,
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
        jobs::{self, Job, NewJob},
        messages::{self, Message},
    },
    domain::plans,
    i18n::Lang,
    live,
    messaging::send::{self, Author},
    review::AI_REPLY,
    state::AppState,
};

/// How many recent messages are loaded for the context (the budget trims further).
const RECENT: i64 = 40;

/// Enqueues the conversation's AI turn, `debounce` after its newest message; a pending turn
/// moves later with each new message, so a burst becomes one turn.
pub async fn schedule(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    conversation_id: Uuid,
    run_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    jobs::enqueue(
        conn,
        NewJob::new(AI_REPLY, run_at)
            .tenant(tenant_id)
            .subject(conversation_id)
            .dedupe(format!("ai_reply:{conversation_id}"))
            .max_attempts(4),
        now,
    )
    .await?;
    Ok(())
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
    },
    Escalate {
        reason: String,
        provider: String,
        model: String,
        external: bool,
    },
}

pub async fn run(state: &AppState, job: &Job) -> anyhow::Result<()> {
    let (Some(tenant_id), Some(conversation_id)) = (job.tenant_id, job.subject_id) else {
        anyhow::bail!("ai_reply job without tenant or conversation");
    };
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
    let tenant_settings = db::accounts::settings(&mut tx).await?;
    let knowledge = db_ai::knowledge(&mut tx).await?;
    let tenant = db::accounts::tenant_by_id(&state.db, tenant_id).await?;
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
    let over_limit = match (over_limit, ai_settings.daily_call_limit) {
        (None, Some(l)) if db_ai::calls_on(&mut tx, now.date()).await? >= i64::from(l) => {
            Some("ai_limit_day")
        }
        (o, _) => o,
    };
    tx.commit().await?;

    let lang = Lang::parse(&tenant_settings.language).unwrap_or(Lang::PtBr);
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
            draft_offline(&convo, &knowledge, lang)
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
                        reason: if e.is_retryable() {
                            "provider_unavailable".into()
                        } else {
                            "provider_error".into()
                        },
                        provider: ai_settings.provider.clone(),
                        model: ai_settings.model.clone(),
                        external: false,
                    }
                }
            }
        }
    };
    store(state, tenant_id, &conv, &latest, &policy, produced, now).await
}

/// The conversation as the context builder sees it: text opened, media described.
async fn conversation_messages(
    state: &AppState,
    tenant_id: Uuid,
    recent: &[Message],
) -> anyhow::Result<Vec<ConversationMessage>> {
    let mut out = Vec::with_capacity(recent.len());
    for m in recent {
        let text = match m.body_sealed.as_deref() {
            Some(b)
                if matches!(
                    m.kind.as_str(),
                    "text" | "image" | "video" | "document" | "voice" | "audio" | "template"
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
    crate::http::routes::portal::DAYS
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

fn draft_offline(
    convo: &[ConversationMessage],
    knowledge: &[crate::domain::knowledge::KnowledgeEntry],
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
    match offline::answer(&question, knowledge, guess_lang(&question, lang)) {
        OfflineOutcome::Answer { text, entry_id, .. } => Produced::Draft {
            text,
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v1".into(),
            knowledge_ids: vec![entry_id],
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
        },
        OfflineOutcome::Greeting { text } => Produced::Draft {
            text,
            provider: "offline".into(),
            model: String::new(),
            prompt_version: "offline-v1".into(),
            knowledge_ids: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            latency_ms: 0,
            external: false,
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
    let base_url = s
        .base_url
        .as_deref()
        .filter(|u| !u.is_empty())
        .map(Url::parse)
        .transpose()
        .map_err(|_| AiError::NotConfigured("base URL"))?;
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
    let built = match context::build_context(&ContextInput {
        settings,
        customer,
        knowledge,
        messages: &convo,
        tools: &[],
        capabilities: caps,
        budget: Budget::default(),
    }) {
        Ok(b) => b,
        Err(e) => return Ok(escalate(escalation_code(e), false)),
    };
    let started = Instant::now();
    let resp = provider.chat(&built.request).await?;
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    match resp.text.filter(|t| !t.trim().is_empty()) {
        Some(text) => Ok(Produced::Draft {
            text,
            provider: resp.provider,
            model: resp.model,
            prompt_version: built.prompt_version.to_owned(),
            knowledge_ids: built.knowledge_ids,
            input_tokens: resp.usage.input_tokens as i32,
            output_tokens: resp.usage.output_tokens as i32,
            latency_ms,
            external: true,
        }),
        None => Ok(escalate("empty_reply".into(), true)),
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

async fn store(
    state: &AppState,
    tenant_id: Uuid,
    conv: &conversations::Conversation,
    latest: &Message,
    policy: &str,
    produced: Produced,
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
        } => {
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
                    escalation_reason: None,
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
    if !escalated && policy == "auto_send" {
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
            }
            Err(e) => {
                // Can't send (window closed, restricted…): leave it for a person.
                tracing::info!(error = %e, "auto-send not possible; draft left for review");
            }
        }
    }
    tx.commit().await?;
    live::publish(state, tenant_id, &live::Event::Review).await;
    live::publish(state, tenant_id, &live::Event::Conversation { id: conv.id }).await;
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
