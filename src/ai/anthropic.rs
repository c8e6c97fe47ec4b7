//! Anthropic messages API (`POST {base}/v1/messages`, `x-api-key`, `anthropic-version`).
//!
//! Anthropic does not train on API data by default and has no per-request storage flag.

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::{
    AiError, Capabilities, ChatRequest, ChatResponse, FinishReason, Part, Provider, ProviderConfig,
    Role, ToolCall, ToolChoice, Usage,
    http::{self, Scrub},
    models::{self, ModelCaps},
};

pub(crate) const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug)]
pub(crate) struct AnthropicClient {
    model: String,
    base: Url,
    api_key: SecretString,
    capabilities: Capabilities,
    model_caps: ModelCaps,
    http: reqwest::Client,
}

impl AnthropicClient {
    pub(crate) fn new(cfg: &ProviderConfig) -> Result<AnthropicClient, AiError> {
        let mut capabilities = cfg
            .capabilities
            .unwrap_or_else(|| cfg.kind.capabilities(&cfg.model));
        capabilities.supports_audio_transcription = false;
        Ok(AnthropicClient {
            model: cfg.model.clone(),
            base: cfg.base_url()?,
            api_key: cfg
                .api_key
                .clone()
                .ok_or(AiError::NotConfigured("API key"))?,
            capabilities,
            model_caps: models::lookup(cfg.kind, &cfg.model),
            http: http::client(cfg.timeout, cfg.vetted.as_ref())?,
        })
    }

    fn headers(&self) -> Result<HeaderMap, AiError> {
        let mut h = HeaderMap::new();
        let mut key = HeaderValue::from_str(self.api_key.expose_secret())
            .map_err(|_| AiError::NotConfigured("API key"))?;
        key.set_sensitive(true);
        h.insert("x-api-key", key);
        h.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        Ok(h)
    }

    /// The JSON body for `req` in the messages format.
    pub(crate) fn request_body(&self, req: &ChatRequest) -> Value {
        let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
        for m in &req.messages {
            let role = match m.role {
                Role::Assistant => "assistant",
                // Tool results travel in the user turn that follows the tool call.
                Role::User | Role::Tool => "user",
            };
            let blocks: Vec<Value> = m.parts.iter().map(block).collect();
            if blocks.is_empty() {
                continue;
            }
            match turns.last_mut() {
                Some((r, existing)) if *r == role => existing.extend(blocks),
                _ => turns.push((role, blocks)),
            }
        }
        // The conversation must open with a user turn (ours may open with a clinic message).
        if turns.first().is_some_and(|(r, _)| *r == "assistant") {
            turns.insert(
                0,
                (
                    "user",
                    vec![json!({"type": "text", "text": "(start of the conversation)"})],
                ),
            );
        }
        for (_, blocks) in &mut turns {
            // tool_result blocks must come first in their turn.
            blocks.sort_by_key(|b| b["type"] != "tool_result");
        }
        let messages: Vec<Value> = turns
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": req.max_output_tokens,
            "messages": messages,
        });
        if !req.system.is_empty() {
            body["system"] = json!(req.system);
        }
        // Only where the model table says the model takes it (current Claude models and
        // Gemini 3 get their default).
        if let Some(t) = req
            .temperature
            .filter(|_| self.model_caps.accepts_temperature)
        {
            body["temperature"] = json!(t);
        }
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "input_schema": t.input_schema,
                    })
                })
                .collect();
        }
        if !req.tools.is_empty() && req.tool_choice == ToolChoice::None {
            body["tool_choice"] = json!({"type": "none"});
        }
        body
    }
}

fn block(part: &Part) -> Value {
    match part {
        Part::Text(t) => json!({"type": "text", "text": t}),
        Part::Image { mime, bytes } => json!({
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": mime,
                "data": base64::engine::general_purpose::STANDARD.encode(bytes),
            }
        }),
        Part::ToolCall(c) => json!({
            "type": "tool_use",
            "id": c.id,
            "name": c.name,
            "input": c.arguments,
        }),
        Part::ToolResult {
            call_id, content, ..
        } => json!({
            "type": "tool_result",
            "tool_use_id": call_id,
            "content": content,
        }),
    }
}

/// Parses a messages API response.
pub(crate) fn parse_response(body: &Value) -> Result<ChatResponse, AiError> {
    let content = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| AiError::InvalidResponse("no content".into()))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    texts.push(t);
                }
            }
            Some("tool_use") => tool_calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| AiError::InvalidResponse("a tool call has no name".into()))?
                    .to_owned(),
                arguments: b.get("input").cloned().unwrap_or(json!({})),
                provider_data: None,
            }),
            _ => {}
        }
    }
    let text = Some(texts.concat()).filter(|t| !t.is_empty());
    let stop = body
        .get("stop_reason")
        .and_then(Value::as_str)
        .unwrap_or("");
    if stop == "refusal" && text.is_none() && tool_calls.is_empty() {
        return Err(AiError::ContentFiltered);
    }
    Ok(ChatResponse {
        text,
        tool_calls,
        usage: Usage {
            input_tokens: http::u32_at(body, "/usage/input_tokens"),
            output_tokens: http::u32_at(body, "/usage/output_tokens"),
        },
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        provider: "anthropic".into(),
        finish_reason: match stop {
            "end_turn" | "stop_sequence" => FinishReason::Stop,
            "max_tokens" => FinishReason::Length,
            "tool_use" => FinishReason::ToolCalls,
            other => FinishReason::Other(other.to_owned()),
        },
    })
}

#[async_trait::async_trait]
impl Provider for AnthropicClient {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, AiError> {
        let url = self
            .base
            .join("v1/messages")
            .map_err(|_| AiError::NotConfigured("base URL"))?;
        let rb = self
            .http
            .post(url)
            .headers(self.headers()?)
            .json(&self.request_body(req));
        let scrub = Scrub {
            texts: req.texts().collect(),
            key: Some(self.api_key.expose_secret()),
        };
        parse_response(&http::send_json(rb, &scrub).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{header, method, path},
    };

    use super::*;
    use crate::ai::{ChatMessage, ProviderKind, RetryPolicy, ToolSpec, build};

    fn cfg(server: &MockServer) -> ProviderConfig {
        let mut c = ProviderConfig::new(ProviderKind::Anthropic, "claude-sonnet-4-5");
        c.base_url = Some(Url::parse(&server.uri()).unwrap());
        c.api_key = Some(SecretString::from("sk-ant-test-key"));
        c.timeout = Duration::from_millis(500);
        c.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
        };
        c
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: "You draft replies for a dental clinic.".into(),
            messages: vec![
                ChatMessage::assistant("Olá! Sua consulta é amanhã às 9h."),
                ChatMessage::user("Posso remarcar para sexta?"),
            ],
            tools: vec![ToolSpec {
                name: "find_slots".into(),
                description: "Free appointment slots for a day".into(),
                input_schema: json!({"type": "object", "properties": {"date": {"type": "string"}}}),
            }],
            max_output_tokens: 400,
            temperature: Some(0.3),
            tool_choice: crate::ai::ToolChoice::Auto,
        }
    }

    fn message_response() -> Value {
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Claro! Vou verificar os horários de sexta."}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 210, "output_tokens": 15}
        })
    }

    #[tokio::test]
    async fn anthropic_request_has_the_real_wire_shape() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(header("x-api-key", "sk-ant-test-key"))
            .and(header("anthropic-version", "2023-06-01"))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(message_response()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(
            resp.text.as_deref(),
            Some("Claro! Vou verificar os horários de sexta.")
        );
        assert_eq!(
            resp.usage,
            Usage {
                input_tokens: 210,
                output_tokens: 15
            }
        );
        assert_eq!(resp.model, "claude-sonnet-4-5-20250929");
        assert_eq!(resp.finish_reason, FinishReason::Stop);

        let received = &server.received_requests().await.unwrap()[0];
        assert!(received.headers.get("authorization").is_none());
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::ANTHROPIC, &body);
        // A current Claude model gets no sampling parameters, whatever the context asked.
        assert_eq!(request().temperature, Some(0.3));
        assert_eq!(body.get("temperature"), None);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 400,
                "system": "You draft replies for a dental clinic.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "(start of the conversation)"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "Olá! Sua consulta é amanhã às 9h."}]},
                    {"role": "user", "content": [{"type": "text", "text": "Posso remarcar para sexta?"}]}
                ],
                "tools": [{
                    "name": "find_slots",
                    "description": "Free appointment slots for a day",
                    "input_schema": {"type": "object", "properties": {"date": {"type": "string"}}}
                }]
            })
        );
    }

    #[tokio::test]
    async fn tool_use_is_parsed_and_results_and_images_are_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "text", "text": "Vou consultar a agenda."},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "find_slots",
                     "input": {"date": "2026-05-08"}}
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 300, "output_tokens": 40}
            })))
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(resp.text.as_deref(), Some("Vou consultar a agenda."));
        assert_eq!(
            resp.tool_calls,
            vec![ToolCall {
                id: "toolu_01A09q90qw90lq917835lq9".into(),
                name: "find_slots".into(),
                arguments: json!({"date": "2026-05-08"}),
                provider_data: None,
            }]
        );

        let mut req = request();
        req.messages = vec![
            ChatMessage {
                role: Role::User,
                parts: vec![
                    Part::Text("Segue a foto".into()),
                    Part::Image {
                        mime: "image/png".into(),
                        bytes: vec![0x89, b'P', b'N', b'G'],
                    },
                ],
            },
            ChatMessage {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(resp.tool_calls[0].clone())],
            },
            ChatMessage::tool_result("toolu_01A09q90qw90lq917835lq9", "find_slots", "[\"14:00\"]"),
        ];
        let body = AnthropicClient::new(&cfg(&server))
            .unwrap()
            .request_body(&req);
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "Segue a foto"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "find_slots",
                     "input": {"date": "2026-05-08"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "[\"14:00\"]"}
                ]}
            ])
        );
    }

    #[tokio::test]
    async fn overloaded_is_retried_and_bad_requests_are_rejected() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(529).set_body_json(json!({
                "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(message_response()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        assert!(p.chat(&request()).await.is_ok());

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}})))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::Rejected {
                status: 400,
                message: "max_tokens: Field required".into()
            }
        );
    }

    #[tokio::test]
    async fn refusals_are_content_filtered() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "msg_3", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [], "stop_reason": "refusal",
                "usage": {"input_tokens": 20, "output_tokens": 0}
            })))
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::ContentFiltered
        );
        assert!(!p.capabilities().supports_audio_transcription);
        assert_eq!(
            p.transcribe(b"OggS", "audio/ogg").await.unwrap_err(),
            AiError::Unsupported("audio transcription")
        );
    }

    #[tokio::test]
    async fn claude_3_gets_the_temperature_as_written() {
        let server = MockServer::start().await;
        let mut c = cfg(&server);
        c.model = "claude-3-5-haiku-latest".into();
        let body = AnthropicClient::new(&c).unwrap().request_body(&request());
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::ANTHROPIC, &body);
        assert_eq!(serde_json::to_string(&body["temperature"]).unwrap(), "0.3");
        let mut bad = body.clone();
        bad["temprature"] = json!(0.3);
        assert!(
            !crate::ai::wire_schema::errors(crate::ai::wire_schema::ANTHROPIC, &bad).is_empty()
        );
    }

    #[tokio::test]
    async fn a_forced_final_answer_keeps_the_tools_and_forbids_them() {
        let server = MockServer::start().await;
        let mut req = request();
        req.messages.push(ChatMessage {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(ToolCall {
                id: "toolu_1".into(),
                name: "find_slots".into(),
                arguments: json!({"date": "2026-05-08"}),
                provider_data: None,
            })],
        });
        req.messages
            .push(ChatMessage::tool_result("toolu_1", "find_slots", "[]"));
        req.tool_choice = crate::ai::ToolChoice::None;
        let body = AnthropicClient::new(&cfg(&server))
            .unwrap()
            .request_body(&req);
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::ANTHROPIC, &body);
        assert_eq!(body["tool_choice"], json!({"type": "none"}));
        assert_eq!(body["tools"][0]["name"], "find_slots");
    }
}
