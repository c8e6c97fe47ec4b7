//! Tries the next provider when one is rate limited or unavailable.
//!
//! Only [`AiError::is_retryable`] errors move on: a rejected request (bad key, bad request) or
//! a content-filter refusal would fare no better elsewhere, or must be seen by a human.

use std::sync::Arc;

use super::{AiError, Capabilities, ChatRequest, ChatResponse, Provider};

pub(crate) struct Fallback {
    providers: Vec<Arc<dyn Provider>>,
}

impl Fallback {
    /// `providers` in order of preference; the first is the tenant's choice.
    pub(crate) fn new(providers: Vec<Arc<dyn Provider>>) -> Fallback {
        Fallback { providers }
    }

    async fn first_ok<'a, T, F, Fut>(&'a self, call: F) -> Result<T, AiError>
    where
        F: Fn(&'a dyn Provider) -> Fut,
        Fut: std::future::Future<Output = Result<T, AiError>>,
    {
        let mut last = AiError::NotConfigured("no provider");
        for p in &self.providers {
            match call(p.as_ref()).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(provider = p.name(), error = %e, "AI provider failed; trying the next one");
                    last = e;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }
}

#[async_trait::async_trait]
impl Provider for Fallback {
    fn name(&self) -> &str {
        self.providers.first().map_or("none", |p| p.name())
    }

    fn model(&self) -> &str {
        self.providers.first().map_or("", |p| p.model())
    }

    /// Chat: what every provider in the chain can do, since a request must be readable by
    /// whichever one ends up answering. Transcription: any member that can (only those are
    /// asked).
    fn capabilities(&self) -> Capabilities {
        let mut caps = self
            .providers
            .iter()
            .map(|p| p.capabilities())
            .reduce(Capabilities::intersect)
            .unwrap_or_default();
        caps.supports_audio_transcription = self
            .providers
            .iter()
            .any(|p| p.capabilities().supports_audio_transcription);
        caps
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, AiError> {
        self.first_ok(|p| p.chat(req)).await
    }

    async fn transcribe(&self, audio: &[u8], mime: &str) -> Result<String, AiError> {
        if !self.capabilities().supports_audio_transcription {
            return Err(AiError::Unsupported("audio transcription"));
        }
        self.first_ok(|p| async move {
            if p.capabilities().supports_audio_transcription {
                p.transcribe(audio, mime).await
            } else {
                // Skip to the next member without calling this one.
                Err(AiError::Unavailable {
                    reason: "no audio transcription".into(),
                })
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;
    use serde_json::json;
    use url::Url;
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

    use crate::ai::{ChatMessage, ProviderConfig, ProviderKind, RetryPolicy, build_with_fallback};

    use super::*;

    fn openai_at(server: &MockServer) -> ProviderConfig {
        let mut c = ProviderConfig::new(ProviderKind::OpenAi, "gpt-4o-mini");
        c.base_url = Some(Url::parse(&format!("{}/v1", server.uri())).unwrap());
        c.api_key = Some(SecretString::from("sk-primary"));
        c.timeout = Duration::from_millis(500);
        c.retry = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        };
        c
    }

    fn anthropic_at(server: &MockServer) -> ProviderConfig {
        let mut c = ProviderConfig::new(ProviderKind::Anthropic, "claude-haiku-4-5");
        c.base_url = Some(Url::parse(&server.uri()).unwrap());
        c.api_key = Some(SecretString::from("sk-ant-fallback"));
        c.retry = RetryPolicy::no_retries();
        c
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: "Draft a reply.".into(),
            messages: vec![ChatMessage::user("Vocês abrem sábado?")],
            tools: vec![],
            max_output_tokens: 100,
            temperature: None,
            tool_choice: crate::ai::ToolChoice::Auto,
        }
    }

    async fn anthropic_server() -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "Abrimos sim, das 8h às 12h."}],
                "stop_reason": "end_turn", "usage": {"input_tokens": 30, "output_tokens": 9}
            })))
            .mount(&server)
            .await;
        server
    }

    #[tokio::test]
    async fn fallback_answers_when_the_primary_is_unavailable() {
        let primary = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .expect(2) // its own retries first
            .mount(&primary)
            .await;
        let secondary = anthropic_server().await;
        let p = build_with_fallback(&openai_at(&primary), Some(&anthropic_at(&secondary))).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(resp.provider, "anthropic");
        assert_eq!(resp.text.as_deref(), Some("Abrimos sim, das 8h às 12h."));
        assert_eq!(secondary.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn fallback_is_not_used_for_rejected_requests() {
        let primary = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
                "message": "Incorrect API key provided", "type": "invalid_request_error",
                "code": "invalid_api_key"}})))
            .expect(1)
            .mount(&primary)
            .await;
        let secondary = anthropic_server().await;
        let p = build_with_fallback(&openai_at(&primary), Some(&anthropic_at(&secondary))).unwrap();
        assert!(matches!(
            p.chat(&request()).await.unwrap_err(),
            AiError::Rejected { status: 401, .. }
        ));
        assert!(secondary.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_chain_promises_only_what_every_member_can_do() {
        let primary = MockServer::start().await;
        let secondary = MockServer::start().await;
        let p = build_with_fallback(&openai_at(&primary), Some(&anthropic_at(&secondary))).unwrap();
        let caps = p.capabilities();
        assert!(caps.supports_vision && caps.supports_tools);
        assert!(
            caps.supports_audio_transcription,
            "OpenAI can, and is asked"
        );
        assert_eq!(p.name(), "openai");

        // Reversed, transcription skips Anthropic and goes to OpenAI's whisper.
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"text": "Oi"})))
            .expect(1)
            .mount(&primary)
            .await;
        let p = build_with_fallback(&anthropic_at(&secondary), Some(&openai_at(&primary))).unwrap();
        assert_eq!(p.name(), "anthropic");
        assert_eq!(p.transcribe(b"OggS", "audio/ogg").await.unwrap(), "Oi");
        assert!(secondary.received_requests().await.unwrap().is_empty());
    }
}
