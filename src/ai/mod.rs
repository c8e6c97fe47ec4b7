//! AI providers behind one trait, the offline knowledge-base answerer, and prompt assembly.
//!
//! - [`Provider`] is what the rest of the app calls: one chat request in, one response out,
//!   plus audio transcription where the provider offers it. [`build`] turns a tenant's
//!   [`ProviderConfig`] into a provider wrapped in retries ([`retry`]) and, optionally, a
//!   fallback provider ([`fallback`]).
//! - [`offline`] is the default "provider": ranked retrieval over the tenant's knowledge
//!   entries. It needs no key, sends nothing anywhere, and escalates to a human when nothing
//!   matches. It answers a question from the knowledge base rather than a prompt, so it is
//!   not a [`Provider`]: callers branch on [`ProviderKind::Offline`].
//! - [`context`] builds a provider request from the tenant's settings, the customer, the
//!   knowledge and the recent messages, as a pure function within a token budget.
//!
//! # Why hand-written clients and not `genai`
//!
//! The issue asks for a maintained multi-provider crate where it serves. `genai` 0.7 would
//! serve the wire formats (custom base URLs through a `ServiceTargetResolver`, tools, token
//! usage, `store: false` through `extra_body`, status and headers on HTTP errors), but:
//! - it depends on reqwest 0.13, whose `rustls` feature brings the `aws-lc-rs` crypto provider
//!   (a C/cmake build) next to the reqwest 0.12/`ring` stack the rest of the crate uses; two
//!   rustls providers in one process make rustls refuse to pick a default at run time;
//! - it has no audio transcription (`/audio/transcriptions`), so we would need our own reqwest
//!   client for voice notes anyway;
//! - through feature unification it turns on `serde_json/preserve_order` and `tokio/test-util`
//!   for the whole crate;
//! - its error `Display` prints the response body and request details via `Debug`, while we
//!   must classify errors precisely (429/5xx/4xx/filtered) and keep prompts and keys out;
//! - its API moved from 0.2 to 0.7 within months.
//!
//! The three wire formats we need (OpenAI chat completions — also Groq and any
//! OpenAI-compatible server such as Ollama —, Anthropic messages, Gemini generateContent) are
//! small, so each is a short module over reqwest ([`openai`], [`anthropic`], [`gemini`]),
//! tested against local HTTP servers that speak the real format.
//!
//! # Privacy
//! - OpenAI requests carry `"store": false`. Anthropic, Gemini (paid tier) and Groq do not
//!   train on API data by default and have no per-request flag; the offline answerer sends
//!   nothing.
//! - API keys are [`SecretString`]s: never in `Debug`, errors or logs. Keys travel in headers
//!   (never in URLs, so they cannot leak through a logged URL).
//! - [`AiError`] messages never contain prompt text: provider error messages are scrubbed of
//!   the request's text and of the key before they are kept (see [`http::sanitize`]).
//! - `Debug` of requests and messages prints sizes, not content.

pub(crate) mod anthropic;
pub(crate) mod context;
pub(crate) mod fallback;
pub(crate) mod gemini;
pub(crate) mod guard;
pub(crate) mod http;
pub(crate) mod kbeval;
pub(crate) mod models;
pub(crate) mod offline;
pub(crate) mod openai;
pub(crate) mod retry;
pub(crate) mod text;

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use secrecy::SecretString;
use serde_json::Value;
use url::Url;

pub(crate) use fallback::Fallback;
pub(crate) use retry::{RetryPolicy, Retrying};

/// Who wrote a message in a provider conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The customer (and tool results, for providers that carry them in user turns).
    User,
    /// Us: earlier drafts sent, staff replies, and the model's own tool calls.
    Assistant,
    /// The result of a tool call; its parts are [`Part::ToolResult`].
    Tool,
}

/// One piece of a message.
#[derive(Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    /// An image the model should look at (only for providers with `supports_vision`).
    Image {
        mime: String,
        bytes: Vec<u8>,
    },
    /// A tool call the model made earlier (in an [`Role::Assistant`] message).
    ToolCall(ToolCall),
    /// What a tool returned (in a [`Role::Tool`] message).
    ToolResult {
        call_id: String,
        name: String,
        content: String,
    },
}

impl fmt::Debug for Part {
    // Sizes only: message text and images must not reach logs through `{:?}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Text(t) => write!(f, "Text({} chars)", t.chars().count()),
            Part::Image { mime, bytes } => write!(f, "Image({mime}, {} bytes)", bytes.len()),
            Part::ToolCall(c) => write!(f, "ToolCall({}, id={})", c.name, c.id),
            Part::ToolResult {
                call_id,
                name,
                content,
            } => write!(
                f,
                "ToolResult({name}, id={call_id}, {} chars)",
                content.chars().count()
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChatMessage {
    pub(crate) role: Role,
    pub(crate) parts: Vec<Part>,
}

impl ChatMessage {
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn user(text: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: Role::User,
            parts: vec![Part::Text(text.into())],
        }
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn assistant(text: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: Role::Assistant,
            parts: vec![Part::Text(text.into())],
        }
    }

    pub(crate) fn tool_result(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> ChatMessage {
        ChatMessage {
            role: Role::Tool,
            parts: vec![Part::ToolResult {
                call_id: call_id.into(),
                name: name.into(),
                content: content.into(),
            }],
        }
    }

    /// The text parts joined with blank lines.
    pub(crate) fn text(&self) -> String {
        let texts: Vec<&str> = self
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        texts.join("\n\n")
    }
}

/// A tool the model may call (MCP tools are mapped onto this).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ToolSpec {
    pub(crate) name: String,
    pub(crate) description: String,
    /// A JSON Schema object describing the arguments.
    pub(crate) input_schema: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ToolCall {
    /// The provider's call id (generated for providers that have none), echoed in the result.
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: Value,
    /// Opaque fields the provider attached to the call and wants back, verbatim, when the
    /// history is replayed: Gemini's `thoughtSignature` (a part-level field; Gemini 3 refuses
    /// the next step of a tool loop without it). `None` for providers that attach nothing.
    pub(crate) provider_data: Option<Value>,
}

/// Whether the model may call the offered tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ToolChoice {
    /// The model decides (the providers' default when tools are offered).
    #[default]
    Auto,
    /// Tools stay declared (the history may hold tool calls and results, which Anthropic
    /// refuses without them) but must not be called: the final answer after the tool-step
    /// limit. Anthropic `{"type": "none"}`, OpenAI `"none"`, Gemini mode `NONE`.
    None,
}

#[derive(Clone, PartialEq)]
pub(crate) struct ChatRequest {
    pub(crate) system: String,
    /// Oldest first.
    pub(crate) messages: Vec<ChatMessage>,
    pub(crate) tools: Vec<ToolSpec>,
    pub(crate) max_output_tokens: u32,
    /// The temperature we would like; each client sends it only to models that accept it
    /// ([`models::ModelCaps::accepts_temperature`]). `f64`, so `0.3` goes out as `0.3`.
    pub(crate) temperature: Option<f64>,
    pub(crate) tool_choice: ToolChoice,
}

impl fmt::Debug for ChatRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatRequest")
            .field(
                "system",
                &format_args!("{} chars", self.system.chars().count()),
            )
            .field("messages", &self.messages)
            .field(
                "tools",
                &self.tools.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field("max_output_tokens", &self.max_output_tokens)
            .field("temperature", &self.temperature)
            .field("tool_choice", &self.tool_choice)
            .finish()
    }
}

impl ChatRequest {
    /// Every text the request carries (system, messages, tool results), for scrubbing errors.
    pub(crate) fn texts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.system.as_str()).chain(self.messages.iter().flat_map(|m| {
            m.parts.iter().filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                Part::ToolResult { content, .. } => Some(content.as_str()),
                _ => None,
            })
        }))
    }
}

/// Tokens a call consumed, as the provider reported them (the hook for per-tenant limits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) input_tokens: u32,
    pub(crate) output_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FinishReason {
    Stop,
    /// Hit `max_output_tokens`: the text may be cut short.
    Length,
    ToolCalls,
    Other(String),
}

#[derive(Clone, PartialEq)]
pub(crate) struct ChatResponse {
    pub(crate) text: Option<String>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) usage: Usage,
    /// The model that answered, as the provider reports it.
    pub(crate) model: String,
    /// The provider that answered (differs from the configured one after a fallback).
    pub(crate) provider: String,
    pub(crate) finish_reason: FinishReason,
}

impl fmt::Debug for ChatResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatResponse")
            .field(
                "text",
                &self
                    .text
                    .as_ref()
                    .map(|t| format!("{} chars", t.chars().count())),
            )
            .field("tool_calls", &self.tool_calls.len())
            .field("usage", &self.usage)
            .field("model", &self.model)
            .field("provider", &self.provider)
            .field("finish_reason", &self.finish_reason)
            .finish()
    }
}

/// What a provider/model can read. Media it can't read is escalated to a human.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub(crate) supports_vision: bool,
    pub(crate) supports_audio_transcription: bool,
    pub(crate) supports_tools: bool,
}

impl Capabilities {
    /// What both can do (a fallback chain promises only what every member can do).
    pub(crate) fn intersect(self, other: Capabilities) -> Capabilities {
        Capabilities {
            supports_vision: self.supports_vision && other.supports_vision,
            supports_audio_transcription: self.supports_audio_transcription
                && other.supports_audio_transcription,
            supports_tools: self.supports_tools && other.supports_tools,
        }
    }
}

/// Why a provider call failed, classified so the caller can decide what to do next.
/// Messages never contain prompt text or keys.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AiError {
    /// 429: slow down. `retry_after` is the provider's hint, when it gave one.
    #[error("rate limited by the provider (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, connection failure or timeout: try again later or elsewhere.
    #[error("provider unavailable: {reason}")]
    Unavailable { reason: String },
    /// Any other 4xx: bad key, bad request, unknown model. Retrying won't help.
    #[error("provider rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The provider refused to answer for safety/policy reasons.
    #[error("the provider's content filter blocked the request or reply")]
    ContentFiltered,
    /// The response body passed our cap ([`http::MAX_RESPONSE_BYTES`]): reading stopped
    /// there. Not retried: the same request would get the same answer.
    #[error("the provider's response exceeded {limit} bytes")]
    TooLarge { limit: usize },
    /// The provider answered with something we can't parse.
    #[error("unexpected response from the provider: {0}")]
    InvalidResponse(String),
    /// The provider or model can't do this (e.g. transcribe audio).
    #[error("not supported by this provider: {0}")]
    Unsupported(&'static str),
    /// Missing key, model or base URL.
    #[error("provider not configured: {0}")]
    NotConfigured(&'static str),
}

impl AiError {
    /// Whether trying again (after a pause) may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(
            self,
            AiError::RateLimited { .. } | AiError::Unavailable { .. }
        )
    }
}

#[async_trait::async_trait]
pub(crate) trait Provider: Send + Sync {
    /// A short stable name for provenance and metrics: `openai`, `anthropic`, …
    fn name(&self) -> &str;
    fn model(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, AiError>;
    /// Speech to text (voice notes). `mime` is the audio's type, e.g. `audio/ogg`.
    async fn transcribe(&self, _audio: &[u8], _mime: &str) -> Result<String, AiError> {
        Err(AiError::Unsupported("audio transcription"))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum ProviderKind {
    /// The offline knowledge-base answerer: no key, nothing leaves the platform.
    #[default]
    Offline,
    OpenAi,
    Anthropic,
    Gemini,
    Groq,
    /// Any server speaking OpenAI chat completions at a configured base URL (e.g. Ollama).
    OpenAiCompatible,
}

impl ProviderKind {
    pub(crate) const ALL: [ProviderKind; 6] = [
        ProviderKind::Offline,
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Groq,
        ProviderKind::OpenAiCompatible,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Offline => "offline",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Groq => "groq",
            ProviderKind::OpenAiCompatible => "openai_compatible",
        }
    }

    /// Where requests go unless the tenant configures another base URL.
    pub(crate) fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1/"),
            ProviderKind::Groq => Some("https://api.groq.com/openai/v1/"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com/"),
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com/"),
            ProviderKind::Offline | ProviderKind::OpenAiCompatible => None,
        }
    }

    /// Whether a request needs an API key (tenant's own or the platform's).
    pub(crate) fn requires_api_key(self) -> bool {
        !matches!(self, ProviderKind::Offline | ProviderKind::OpenAiCompatible)
    }

    /// What a model of this provider can read, from the model table ([`models`]).
    /// Conservative: when unsure, say no, so media is escalated to a human rather than
    /// silently skipped.
    pub(crate) fn capabilities(self, model: &str) -> Capabilities {
        models::lookup(self, model).capabilities()
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown AI provider {0:?}")]
pub(crate) struct UnknownProvider(pub String);

impl FromStr for ProviderKind {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<ProviderKind, UnknownProvider> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .or(match norm.as_str() {
                "ollama" | "openai_compat" | "compatible" => Some(ProviderKind::OpenAiCompatible),
                "google" => Some(ProviderKind::Gemini),
                _ => None,
            })
            .ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

/// One provider as a tenant (or the platform) configured it.
#[derive(Clone, Debug)]
pub(crate) struct ProviderConfig {
    pub(crate) kind: ProviderKind,
    pub(crate) model: String,
    /// Overrides [`ProviderKind::default_base_url`]; required for `OpenAiCompatible`.
    pub(crate) base_url: Option<Url>,
    /// A tenant-supplied `base_url` as the SSRF guard vetted it: the client connects only
    /// to these addresses.
    pub(crate) vetted: Option<crate::mcp::guard::Vetted>,
    /// The tenant's own key, else the platform's (see [`platform_key`]).
    pub(crate) api_key: Option<SecretString>,
    /// The speech-to-text model for `transcribe` (OpenAI-format providers only). Defaults:
    /// `whisper-1` (OpenAI), `whisper-large-v3-turbo` (Groq), none for compatible servers.
    pub(crate) transcription_model: Option<String>,
    /// Overrides the capabilities guessed from the model name (for local models).
    pub(crate) capabilities: Option<Capabilities>,
    /// Whole-request timeout (connect, send, wait, read).
    pub(crate) timeout: Duration,
    pub(crate) retry: RetryPolicy,
}

impl ProviderConfig {
    pub(crate) fn new(kind: ProviderKind, model: impl Into<String>) -> ProviderConfig {
        ProviderConfig {
            kind,
            model: model.into(),
            base_url: None,
            vetted: None,
            api_key: None,
            transcription_model: None,
            capabilities: None,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }

    pub(crate) fn base_url(&self) -> Result<Url, AiError> {
        let url = match (&self.base_url, self.kind.default_base_url()) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => {
                Url::parse(d).map_err(|_| AiError::NotConfigured("default base URL"))?
            }
            (None, None) => return Err(AiError::NotConfigured("base URL")),
        };
        // `Url::join` treats a base without a trailing slash as a file: `…/v1` + `chat` would
        // drop `v1`. Normalize so both spellings work.
        if url.path().ends_with('/') {
            Ok(url)
        } else {
            let mut u = url;
            let path = format!("{}/", u.path());
            u.set_path(&path);
            Ok(u)
        }
    }
}

/// The platform's key for a provider, from config, for a tenant that brings none.
///
/// Only for the provider's official endpoint: with a custom `base_url` this returns `None`,
/// so a tenant can never have the platform's key sent to a server of their choosing.
pub(crate) fn platform_key(
    config: &crate::config::Config,
    kind: ProviderKind,
    base_url: Option<&Url>,
) -> Option<SecretString> {
    if base_url.is_some() {
        return None;
    }
    match kind {
        ProviderKind::OpenAi => config.openai_api_key.clone(),
        ProviderKind::Anthropic => config.anthropic_api_key.clone(),
        ProviderKind::Gemini => config.gemini_api_key.clone(),
        ProviderKind::Groq => config.groq_api_key.clone(),
        ProviderKind::Offline | ProviderKind::OpenAiCompatible => None,
    }
}

/// Builds the client for `cfg` (one provider wrapped in its retry policy).
///
/// `Offline` is not a chat provider: use [`offline::answer`]. It returns
/// `AiError::NotConfigured` here so a caller can't mistake it for a model.
pub(crate) fn build(cfg: &ProviderConfig) -> Result<Arc<dyn Provider>, AiError> {
    if cfg.model.trim().is_empty() && cfg.kind != ProviderKind::Offline {
        return Err(AiError::NotConfigured("model"));
    }
    if cfg.kind.requires_api_key() && cfg.api_key.is_none() {
        return Err(AiError::NotConfigured("API key"));
    }
    let inner: Arc<dyn Provider> = match cfg.kind {
        ProviderKind::Offline => {
            return Err(AiError::NotConfigured(
                "the offline answerer is not a chat provider (use ai::offline::answer)",
            ));
        }
        ProviderKind::OpenAi | ProviderKind::Groq | ProviderKind::OpenAiCompatible => {
            Arc::new(openai::OpenAiClient::new(cfg)?)
        }
        ProviderKind::Anthropic => Arc::new(anthropic::AnthropicClient::new(cfg)?),
        ProviderKind::Gemini => Arc::new(gemini::GeminiClient::new(cfg)?),
    };
    Ok(Arc::new(Retrying::new(inner, cfg.retry.clone())))
}

/// Builds `primary`, falling back to `fallback` when the primary is rate limited or
/// unavailable (after its own retries).
pub(crate) fn build_with_fallback(
    primary: &ProviderConfig,
    fallback: Option<&ProviderConfig>,
) -> Result<Arc<dyn Provider>, AiError> {
    let first = build(primary)?;
    match fallback {
        None => Ok(first),
        Some(f) => Ok(Arc::new(Fallback::new(vec![first, build(f)?]))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_kinds_parse_and_print() {
        for k in ProviderKind::ALL {
            assert_eq!(k.as_str().parse::<ProviderKind>().unwrap(), k);
        }
        assert_eq!(
            "Ollama".parse::<ProviderKind>().unwrap(),
            ProviderKind::OpenAiCompatible
        );
        assert_eq!(
            "openai-compatible".parse::<ProviderKind>().unwrap(),
            ProviderKind::OpenAiCompatible
        );
        assert!("skynet".parse::<ProviderKind>().is_err());
        assert_eq!(ProviderKind::default(), ProviderKind::Offline);
    }

    #[test]
    fn capabilities_follow_the_model() {
        let c = ProviderKind::OpenAi.capabilities("gpt-4o-mini");
        assert!(c.supports_vision && c.supports_tools && c.supports_audio_transcription);
        assert!(
            !ProviderKind::OpenAi
                .capabilities("gpt-3.5-turbo")
                .supports_vision
        );
        assert!(
            !ProviderKind::Groq
                .capabilities("llama-3.1-8b-instant")
                .supports_vision
        );
        assert!(
            !ProviderKind::OpenAiCompatible
                .capabilities("llama3.1")
                .supports_vision
        );
        assert!(
            ProviderKind::OpenAiCompatible
                .capabilities("llava:13b")
                .supports_vision
        );
        assert!(
            !ProviderKind::Anthropic
                .capabilities("claude-sonnet-4-5")
                .supports_audio_transcription
        );
        assert_eq!(
            ProviderKind::Offline.capabilities(""),
            Capabilities::default()
        );
    }

    #[test]
    fn build_refuses_missing_keys_and_offline() {
        let cfg = ProviderConfig::new(ProviderKind::OpenAi, "gpt-4o-mini");
        assert_eq!(build(&cfg).err(), Some(AiError::NotConfigured("API key")));
        let cfg = ProviderConfig::new(ProviderKind::OpenAiCompatible, "llama3.1");
        assert_eq!(build(&cfg).err(), Some(AiError::NotConfigured("base URL")));
        let cfg = ProviderConfig::new(ProviderKind::Offline, "");
        assert!(matches!(build(&cfg).err(), Some(AiError::NotConfigured(_))));
    }

    #[test]
    fn keys_and_prompts_stay_out_of_debug_output() {
        let mut cfg = ProviderConfig::new(ProviderKind::OpenAi, "gpt-4o-mini");
        cfg.api_key = Some(SecretString::from("sk-very-secret-key"));
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        let client = build(&cfg).unwrap();
        assert_eq!(client.name(), "openai");

        let req = ChatRequest {
            system: "You draft replies for Clínica Sorriso".into(),
            messages: vec![ChatMessage::user("my tooth hurts since Monday")],
            tools: vec![],
            max_output_tokens: 100,
            temperature: None,
            tool_choice: crate::ai::ToolChoice::Auto,
        };
        let printed = format!("{req:?}");
        assert!(!printed.contains("tooth"), "{printed}");
        assert!(!printed.contains("Sorriso"), "{printed}");
    }

    #[test]
    fn platform_keys_only_go_to_official_endpoints() {
        let mut config = crate::config::Config::for_tests("postgres://u:p@h/db", None, "t:");
        config.anthropic_api_key = Some(SecretString::from("sk-ant-platform"));
        assert!(platform_key(&config, ProviderKind::Anthropic, None).is_some());
        let elsewhere = Url::parse("https://proxy.example.com/").unwrap();
        assert!(platform_key(&config, ProviderKind::Anthropic, Some(&elsewhere)).is_none());
        assert!(platform_key(&config, ProviderKind::OpenAi, None).is_none());
        assert!(platform_key(&config, ProviderKind::OpenAiCompatible, None).is_none());
    }

    #[test]
    fn base_urls_work_with_or_without_trailing_slash() {
        let mut cfg = ProviderConfig::new(ProviderKind::OpenAiCompatible, "llama3.1");
        cfg.base_url = Some(Url::parse("http://localhost:11434/v1").unwrap());
        assert_eq!(
            cfg.base_url()
                .unwrap()
                .join("chat/completions")
                .unwrap()
                .as_str(),
            "http://localhost:11434/v1/chat/completions"
        );
        cfg.base_url = Some(Url::parse("http://localhost:11434/v1/").unwrap());
        assert_eq!(
            cfg.base_url()
                .unwrap()
                .join("chat/completions")
                .unwrap()
                .as_str(),
            "http://localhost:11434/v1/chat/completions"
        );
    }
}

/// Validates request bodies against the providers' published request schemas
/// (`tests/fixtures/schemas/`, generated from their OpenAPI spec and SDK types).
#[cfg(test)]
pub(crate) mod wire_schema {
    use serde_json::Value;

    pub(crate) const OPENAI: &str = "openai-chat-completions-request.json";
    pub(crate) const ANTHROPIC: &str = "anthropic-messages-request.json";
    pub(crate) const GEMINI: &str = "gemini-generate-content-request.json";

    /// The schema's complaints about `body` (empty when it validates).
    pub(crate) fn errors(schema_file: &str, body: &Value) -> Vec<String> {
        let path = format!(
            "{}/tests/fixtures/schemas/{schema_file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let schema: Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Panics with every complaint unless `body` validates.
    pub(crate) fn assert_valid(schema_file: &str, body: &Value) {
        let errors = errors(schema_file, body);
        assert!(
            errors.is_empty(),
            "request does not match {schema_file}: {errors:#?}\n{body:#}"
        );
    }
}
