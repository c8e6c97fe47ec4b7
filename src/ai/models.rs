//! What each model accepts, as data: one row per model family, matched by the longest name
//! prefix for its provider. Providers answer 400 to parameters a model does not take (current
//! Claude models and OpenAI's reasoning models refuse `temperature`), so the clients send a
//! parameter only where the row says it is accepted.
//!
//! An unknown model gets [`ModelCaps::unknown`]: no sampling parameters, no vision, a small
//! context window. Sending nothing optional is what every current model accepts; a model
//! added to the table can then be given more.

use super::{Capabilities, ProviderKind};

/// Which field carries the output limit in the OpenAI chat-completions format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MaxTokensField {
    /// `max_tokens`: deprecated at OpenAI and refused by its reasoning models; still the only
    /// one many OpenAI-compatible servers know.
    MaxTokens,
    /// `max_completion_tokens`: OpenAI and Groq.
    MaxCompletionTokens,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModelCaps {
    /// Whether `temperature` may be sent (otherwise the provider's default applies).
    pub(crate) accepts_temperature: bool,
    /// OpenAI format only; Anthropic always uses `max_tokens`, Gemini `maxOutputTokens`.
    pub(crate) max_tokens_field: MaxTokensField,
    /// A reasoning model: its output limit also pays for hidden reasoning tokens, and it takes
    /// `reasoning_effort` (OpenAI format).
    pub(crate) reasoning: bool,
    pub(crate) tools: bool,
    pub(crate) vision: bool,
    /// Voice notes can be transcribed through this provider (OpenAI and Groq's whisper).
    pub(crate) audio: bool,
    /// Input + output tokens the model can take.
    pub(crate) context_window: u32,
}

impl ModelCaps {
    /// A model the table does not know: nothing optional is sent.
    pub(crate) const fn unknown(kind: ProviderKind) -> ModelCaps {
        ModelCaps {
            accepts_temperature: false,
            max_tokens_field: match kind {
                ProviderKind::OpenAi | ProviderKind::Groq => MaxTokensField::MaxCompletionTokens,
                _ => MaxTokensField::MaxTokens,
            },
            reasoning: false,
            tools: !matches!(kind, ProviderKind::Offline),
            vision: false,
            audio: matches!(kind, ProviderKind::OpenAi | ProviderKind::Groq),
            context_window: 8_192,
        }
    }

    pub(crate) fn capabilities(self) -> Capabilities {
        Capabilities {
            supports_vision: self.vision,
            supports_audio_transcription: self.audio,
            supports_tools: self.tools,
        }
    }
}

/// One family of models: every model whose lower-cased name starts with `prefix`.
struct Row {
    kind: ProviderKind,
    prefix: &'static str,
    caps: ModelCaps,
}

const fn chat(temperature: bool, vision: bool, window: u32) -> ModelCaps {
    ModelCaps {
        accepts_temperature: temperature,
        max_tokens_field: MaxTokensField::MaxCompletionTokens,
        reasoning: false,
        tools: true,
        vision,
        audio: true,
        context_window: window,
    }
}

const fn reasoning(vision: bool, tools: bool, window: u32) -> ModelCaps {
    ModelCaps {
        accepts_temperature: false,
        max_tokens_field: MaxTokensField::MaxCompletionTokens,
        reasoning: true,
        tools,
        vision,
        audio: true,
        context_window: window,
    }
}

const fn claude(temperature: bool, window: u32) -> ModelCaps {
    ModelCaps {
        accepts_temperature: temperature,
        max_tokens_field: MaxTokensField::MaxTokens,
        reasoning: false,
        tools: true,
        vision: true,
        audio: false,
        context_window: window,
    }
}

const fn gemini(temperature: bool, window: u32) -> ModelCaps {
    ModelCaps {
        accepts_temperature: temperature,
        max_tokens_field: MaxTokensField::MaxTokens,
        reasoning: false,
        tools: true,
        vision: true,
        audio: false,
        context_window: window,
    }
}

const fn groq(vision: bool, window: u32) -> ModelCaps {
    ModelCaps {
        accepts_temperature: true,
        max_tokens_field: MaxTokensField::MaxCompletionTokens,
        reasoning: false,
        tools: true,
        vision,
        audio: true,
        context_window: window,
    }
}

const fn local(vision: bool, window: u32) -> ModelCaps {
    ModelCaps {
        accepts_temperature: true,
        max_tokens_field: MaxTokensField::MaxTokens,
        reasoning: false,
        tools: true,
        vision,
        audio: false,
        context_window: window,
    }
}

use ProviderKind::{Anthropic, Gemini, Groq, OpenAi, OpenAiCompatible};

/// The table. Longer prefixes win (`gpt-5-chat` over `gpt-5`, `o1-mini` over `o1`).
#[rustfmt::skip]
static MODELS: &[Row] = &[
    // OpenAI: chat models take temperature; the o-series and the gpt-5 family reason and
    // refuse it (400 "Unsupported value: 'temperature'").
    Row { kind: OpenAi, prefix: "gpt-3.5-turbo", caps: chat(true, false, 16_385) },
    Row { kind: OpenAi, prefix: "gpt-4-turbo", caps: chat(true, true, 128_000) },
    Row { kind: OpenAi, prefix: "gpt-4o", caps: chat(true, true, 128_000) },
    Row { kind: OpenAi, prefix: "chatgpt-4o", caps: chat(true, true, 128_000) },
    Row { kind: OpenAi, prefix: "gpt-4.1", caps: chat(true, true, 1_047_576) },
    Row { kind: OpenAi, prefix: "gpt-5", caps: reasoning(true, true, 400_000) },
    // The non-reasoning chat snapshot of gpt-5 takes sampling parameters but no tools.
    Row { kind: OpenAi, prefix: "gpt-5-chat", caps: ModelCaps { tools: false, ..chat(true, true, 128_000) } },
    Row { kind: OpenAi, prefix: "o1", caps: reasoning(true, true, 200_000) },
    Row { kind: OpenAi, prefix: "o1-mini", caps: reasoning(false, false, 128_000) },
    Row { kind: OpenAi, prefix: "o3", caps: reasoning(true, true, 200_000) },
    Row { kind: OpenAi, prefix: "o3-mini", caps: reasoning(false, true, 200_000) },
    Row { kind: OpenAi, prefix: "o4-mini", caps: reasoning(true, true, 200_000) },
    // Anthropic: Claude 3.x takes temperature; Claude 4 and later are sent no sampling
    // parameters (the newest refuse them, and their defaults are what drafts want).
    Row { kind: Anthropic, prefix: "claude-3", caps: claude(true, 200_000) },
    Row { kind: Anthropic, prefix: "claude-sonnet-4", caps: claude(false, 200_000) },
    Row { kind: Anthropic, prefix: "claude-opus-4", caps: claude(false, 200_000) },
    Row { kind: Anthropic, prefix: "claude-haiku-4", caps: claude(false, 200_000) },
    Row { kind: Anthropic, prefix: "claude-sonnet-5", caps: claude(false, 200_000) },
    Row { kind: Anthropic, prefix: "claude-opus-5", caps: claude(false, 200_000) },
    // Gemini: 2.x takes temperature; for Gemini 3 Google asks to keep the default (1.0),
    // lower values loop or degrade.
    Row { kind: Gemini, prefix: "gemini-1.5", caps: gemini(true, 1_048_576) },
    Row { kind: Gemini, prefix: "gemini-2.0", caps: gemini(true, 1_048_576) },
    Row { kind: Gemini, prefix: "gemini-2.5", caps: gemini(true, 1_048_576) },
    Row { kind: Gemini, prefix: "gemini-3", caps: gemini(false, 1_048_576) },
    // Groq.
    Row { kind: Groq, prefix: "llama-3.1-8b", caps: groq(false, 131_072) },
    Row { kind: Groq, prefix: "llama-3.3-70b", caps: groq(false, 131_072) },
    Row { kind: Groq, prefix: "meta-llama/llama-4", caps: groq(true, 131_072) },
    Row { kind: Groq, prefix: "openai/gpt-oss", caps: groq(false, 131_072) },
    Row { kind: Groq, prefix: "qwen/qwen3", caps: groq(false, 131_072) },
    // OpenAI-compatible servers (Ollama model names).
    Row { kind: OpenAiCompatible, prefix: "llama3", caps: local(false, 131_072) },
    Row { kind: OpenAiCompatible, prefix: "llava", caps: local(true, 4_096) },
    Row { kind: OpenAiCompatible, prefix: "gemma3", caps: local(true, 131_072) },
    Row { kind: OpenAiCompatible, prefix: "qwen2.5", caps: local(false, 32_768) },
];

/// What `model` of `kind` accepts: the row with the longest matching prefix, else
/// [`ModelCaps::unknown`].
pub(crate) fn lookup(kind: ProviderKind, model: &str) -> ModelCaps {
    if kind == ProviderKind::Offline {
        return ModelCaps {
            tools: false,
            audio: false,
            ..ModelCaps::unknown(kind)
        };
    }
    let m = model.trim().to_ascii_lowercase();
    let m = m.strip_prefix("models/").unwrap_or(&m);
    MODELS
        .iter()
        .filter(|r| r.kind == kind && m.starts_with(r.prefix))
        .max_by_key(|r| r.prefix.len())
        .map(|r| r.caps)
        .unwrap_or(ModelCaps::unknown(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_models_take_no_temperature() {
        for m in [
            "gpt-5",
            "gpt-5-mini",
            "gpt-5.1",
            "o3",
            "o4-mini-2025-04-16",
            "o1",
        ] {
            let c = lookup(OpenAi, m);
            assert!(!c.accepts_temperature && c.reasoning, "{m}");
            assert_eq!(c.max_tokens_field, MaxTokensField::MaxCompletionTokens);
        }
        assert!(lookup(OpenAi, "gpt-4o-mini").accepts_temperature);
        assert!(lookup(OpenAi, "gpt-5-chat-latest").accepts_temperature);
        assert!(!lookup(OpenAi, "gpt-5-chat-latest").tools);
        assert!(!lookup(OpenAi, "o1-mini").vision);
    }

    #[test]
    fn current_claude_and_gemini_3_get_no_sampling_parameters() {
        assert!(!lookup(Anthropic, "claude-sonnet-4-5-20250929").accepts_temperature);
        assert!(!lookup(Anthropic, "claude-opus-4-8").accepts_temperature);
        assert!(lookup(Anthropic, "claude-3-5-haiku-latest").accepts_temperature);
        assert!(!lookup(Gemini, "models/gemini-3-pro-preview").accepts_temperature);
        assert!(lookup(Gemini, "gemini-2.5-flash").accepts_temperature);
    }

    #[test]
    fn unknown_models_get_the_conservative_default() {
        for kind in [OpenAi, Anthropic, Gemini, Groq, OpenAiCompatible] {
            let c = lookup(kind, "brand-new-model-9");
            assert_eq!(c, ModelCaps::unknown(kind));
            assert!(!c.accepts_temperature && !c.vision);
        }
        assert_eq!(
            lookup(OpenAiCompatible, "mystery").max_tokens_field,
            MaxTokensField::MaxTokens
        );
    }
}
