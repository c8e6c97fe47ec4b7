//! Drafting with an LLM provider: the tenant's provider (own key or the platform's, own
//! endpoint vetted), voice notes transcribed, the prompt built, the tool loop run.

use std::time::Instant;

use secrecy::SecretString;
use time::Date;
use uuid::Uuid;

use super::{
    Drafted, Produced,
    context::load_media,
    escalation_code,
    tools::{RecordedCall, Toolbox, tool_loop},
};
use crate::{
    ai::{
        self, AiError, ProviderConfig, ProviderKind, ToolSpec,
        context::{
            self, Budget, ContextInput, ConversationMessage, CustomerProfile, Direction, Media,
            TenantSettings,
        },
    },
    crypto::Aad,
    db::{
        self,
        ai::{self as db_ai, AiSettings, UsageDelta},
        messages::Message,
    },
    domain::knowledge::KnowledgeEntry,
    review::Review,
};

/// The tenant's provider (their own key, else the platform's), with the optional fallback.
pub(super) async fn provider_for(
    state: &Review,
    tenant_id: Uuid,
    s: &AiSettings,
    kind: ProviderKind,
) -> Result<std::sync::Arc<dyn ai::Provider>, AiError> {
    // A tenant's own endpoint is vetted by the SSRF guard now (DNS may have changed since
    // it was saved) and the client pinned to what was vetted.
    let vetted = match s.base_url.as_deref().filter(|u| !u.is_empty()) {
        Some(raw) => Some(
            crate::messaging::channel::vet_gateway(&state.messaging, raw)
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
    primary.api_key = own_key.or_else(|| state.config.platform_key(kind, base_url.as_ref()));
    primary.base_url = base_url;
    primary.vetted = vetted;
    let fallback = match (&s.fallback_provider, &s.fallback_model) {
        (Some(p), Some(m)) if !p.is_empty() && !m.is_empty() => match p.parse::<ProviderKind>() {
            Ok(k) if k != ProviderKind::Offline => {
                let mut f = ProviderConfig::new(k, m.clone());
                f.api_key = state.config.platform_key(k, None);
                Some(f)
            }
            _ => None,
        },
        _ => None,
    };
    ai::build_with_fallback(&primary, fallback.as_ref())
}

/// Drafts with an LLM provider: transcribes this turn's voice notes when it can, builds the
/// prompt within the model's window, runs the tool loop. An escalation when the context
/// can't be built or the reply is empty; an error when the provider failed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn draft(
    state: &Review,
    tenant_id: Uuid,
    s: &AiSettings,
    kind: ProviderKind,
    settings: &TenantSettings,
    customer: &CustomerProfile,
    knowledge: &[KnowledgeEntry],
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
        Some(text) => Ok(Produced::Draft(Drafted {
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
        })),
        None => Ok(escalate("empty_reply".into(), true)),
    }
}

/// Counts a failed provider call in today's usage.
pub(super) async fn record_failure(
    state: &Review,
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
