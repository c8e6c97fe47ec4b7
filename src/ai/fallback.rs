//! Tries the next provider when one is rate limited or unavailable.
//!
//! Only [`AiError::is_retryable`] errors move on: a rejected request (bad key, bad request) or
//! a content-filter refusal would fare no better elsewhere, or must be seen by a human.

use std::sync::Arc;

use super::{AiError, Capabilities, ChatRequest, ChatResponse, Provider};

pub struct Fallback {
    providers: Vec<Arc<dyn Provider>>,
}

impl Fallback {
    /// `providers` in order of preference; the first is the tenant's choice.
    pub fn new(providers: Vec<Arc<dyn Provider>>) -> Fallback {
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

    /// What every provider in the chain can do: a request must be readable by whichever
    /// one ends up answering.
    fn capabilities(&self) -> Capabilities {
        self.providers
            .iter()
            .map(|p| p.capabilities())
            .reduce(Capabilities::intersect)
            .unwrap_or_default()
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, AiError> {
        self.first_ok(|p| p.chat(req)).await
    }

    async fn transcribe(&self, audio: &[u8], mime: &str) -> Result<String, AiError> {
        self.first_ok(|p| p.transcribe(audio, mime)).await
    }
}
