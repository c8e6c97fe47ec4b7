//! OpenAI chat completions (`POST {base}/chat/completions`), also spoken by Groq and by
//! OpenAI-compatible servers such as Ollama (`http://localhost:11434/v1`), and audio
//! transcription (`POST {base}/audio/transcriptions`, whisper).
//!
//! Requests to OpenAI carry `"store": false` so completions are not stored. Groq and
//! compatible servers get no `store` field: strict servers reject unknown fields, and neither
//! stores completions for distillation.

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::{
    AiError, Capabilities, ChatRequest, ChatResponse, FinishReason, Part, Provider, ProviderConfig,
    ProviderKind, Role, ToolCall, ToolChoice, Usage,
    http::{self, Scrub},
    models::{self, MaxTokensField, ModelCaps},
};

/// Output tokens added for a reasoning model, whose limit also pays for its hidden reasoning:
/// without them a short draft's whole budget can go to reasoning and the reply comes back
/// empty.
pub(crate) const REASONING_HEADROOM_TOKENS: u32 = 2_048;

#[derive(Debug)]
pub(crate) struct OpenAiClient {
    kind: ProviderKind,
    model: String,
    base: Url,
    api_key: Option<SecretString>,
    transcription_model: Option<String>,
    capabilities: Capabilities,
    model_caps: ModelCaps,
    http: reqwest::Client,
}

impl OpenAiClient {
    pub(crate) fn new(cfg: &ProviderConfig) -> Result<OpenAiClient, AiError> {
        let transcription_model = cfg.transcription_model.clone().or(match cfg.kind {
            ProviderKind::OpenAi => Some("whisper-1".to_owned()),
            ProviderKind::Groq => Some("whisper-large-v3-turbo".to_owned()),
            _ => None,
        });
        let mut capabilities = cfg
            .capabilities
            .unwrap_or_else(|| cfg.kind.capabilities(&cfg.model));
        // Transcription needs a whisper model, configured or the provider's default.
        capabilities.supports_audio_transcription = transcription_model.is_some()
            && cfg
                .capabilities
                .is_none_or(|c| c.supports_audio_transcription);
        Ok(OpenAiClient {
            kind: cfg.kind,
            model: cfg.model.clone(),
            base: cfg.base_url()?,
            api_key: cfg.api_key.clone(),
            transcription_model,
            capabilities,
            model_caps: models::lookup(cfg.kind, &cfg.model),
            http: http::client(cfg.timeout, cfg.vetted.as_ref())?,
        })
    }

    fn headers(&self) -> Result<HeaderMap, AiError> {
        let mut h = HeaderMap::new();
        if let Some(key) = &self.api_key {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .map_err(|_| AiError::NotConfigured("API key"))?;
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
        Ok(h)
    }

    fn url(&self, path: &str) -> Result<Url, AiError> {
        self.base
            .join(path)
            .map_err(|_| AiError::NotConfigured("base URL"))
    }

    fn scrub<'a>(&'a self, req: Option<&'a ChatRequest>) -> Scrub<'a> {
        Scrub {
            texts: req.map(|r| r.texts().collect()).unwrap_or_default(),
            key: self.api_key.as_ref().map(|k| k.expose_secret()),
        }
    }

    /// The JSON body for `req` in the chat completions format.
    pub(crate) fn request_body(&self, req: &ChatRequest) -> Value {
        let mut messages = Vec::new();
        if !req.system.is_empty() {
            messages.push(json!({"role": "system", "content": req.system}));
        }
        for m in &req.messages {
            match m.role {
                Role::User => {
                    messages.push(json!({"role": "user", "content": user_content(&m.parts)}))
                }
                Role::Assistant => {
                    let text = m.text();
                    let calls: Vec<Value> = m
                        .parts
                        .iter()
                        .filter_map(|p| match p {
                            Part::ToolCall(c) => Some(json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments.to_string()},
                            })),
                            _ => None,
                        })
                        .collect();
                    let mut msg = json!({
                        "role": "assistant",
                        "content": if text.is_empty() { Value::Null } else { Value::String(text) },
                    });
                    if !calls.is_empty() {
                        msg["tool_calls"] = Value::Array(calls);
                    }
                    messages.push(msg);
                }
                Role::Tool => {
                    for p in &m.parts {
                        if let Part::ToolResult {
                            call_id, content, ..
                        } = p
                        {
                            messages.push(json!({
                                "role": "tool",
                                "tool_call_id": call_id,
                                "content": content,
                            }));
                        }
                    }
                }
            }
        }
        let mut body = json!({"model": self.model, "messages": messages});
        if self.kind == ProviderKind::OpenAi {
            body["store"] = Value::Bool(false);
        }
        // What the model accepts comes from the model table: `max_completion_tokens` at
        // OpenAI and Groq (reasoning models refuse `max_tokens`), `temperature` only where
        // accepted (reasoning models answer 400 to it).
        let caps = self.model_caps;
        let max_key = match caps.max_tokens_field {
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensField::MaxTokens => "max_tokens",
        };
        if caps.reasoning && self.kind == ProviderKind::OpenAi {
            body[max_key] = json!(
                req.max_output_tokens
                    .saturating_add(REASONING_HEADROOM_TOKENS)
            );
            // A draft is a short factual reply: little reasoning needed, and less latency.
            body["reasoning_effort"] = json!("low");
        } else {
            body[max_key] = json!(req.max_output_tokens);
        }
        if let Some(t) = req.temperature.filter(|_| caps.accepts_temperature) {
            body["temperature"] = json!(t);
        }
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": t.name,
                            "description": t.description,
                            "parameters": t.input_schema,
                        }
                    })
                })
                .collect();
        }
        if !req.tools.is_empty() && req.tool_choice == ToolChoice::None {
            body["tool_choice"] = json!("none");
        }
        body
    }
}

fn user_content(parts: &[Part]) -> Value {
    let only_text = parts.iter().all(|p| matches!(p, Part::Text(_)));
    if only_text {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        return Value::String(texts.join("\n\n"));
    }
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": "text", "text": t})),
            Part::Image { mime, bytes } => Some(json!({
                "type": "image_url",
                "image_url": {"url": data_url(mime, bytes)},
            })),
            Part::ToolResult { content, .. } => Some(json!({"type": "text", "text": content})),
            Part::ToolCall(_) => None,
        })
        .collect()
}

fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Parses a chat completions response.
pub(crate) fn parse_response(body: &Value, provider: &str) -> Result<ChatResponse, AiError> {
    let choice = body
        .pointer("/choices/0")
        .ok_or_else(|| AiError::InvalidResponse("no choices".into()))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let text = message
        .get("content")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let mut tool_calls = Vec::new();
    for c in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let name = c
            .pointer("/function/name")
            .and_then(Value::as_str)
            .ok_or_else(|| AiError::InvalidResponse("a tool call has no name".into()))?;
        let raw = c
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        tool_calls.push(ToolCall {
            id: c
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("call_{}", tool_calls.len())),
            name: name.to_owned(),
            // Models occasionally emit invalid JSON; keep it as a string for the tool loop.
            arguments: serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.into())),
            provider_data: None,
        });
    }
    let refused = message
        .get("refusal")
        .and_then(Value::as_str)
        .is_some_and(|r| !r.is_empty());
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("");
    if (finish == "content_filter" || refused) && text.is_none() && tool_calls.is_empty() {
        return Err(AiError::ContentFiltered);
    }
    let finish_reason = match finish {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        other => FinishReason::Other(other.to_owned()),
    };
    Ok(ChatResponse {
        text,
        tool_calls,
        usage: Usage {
            input_tokens: http::u32_at(body, "/usage/prompt_tokens"),
            output_tokens: http::u32_at(body, "/usage/completion_tokens"),
        },
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        provider: provider.to_owned(),
        finish_reason,
    })
}

/// The file extension whisper expects for an audio type (it sniffs by file name).
fn audio_extension(mime: &str) -> &'static str {
    match mime.split(';').next().unwrap_or("").trim() {
        "audio/ogg" | "audio/opus" => "ogg",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/aac" => "m4a",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "wav",
        "audio/webm" => "webm",
        "audio/flac" => "flac",
        _ => "ogg",
    }
}

/// A `multipart/form-data` body (reqwest's `multipart` feature would be one more feature to
/// keep in sync with the other branches for three fields).
fn multipart(boundary: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (filename, mime, bytes) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[async_trait::async_trait]
impl Provider for OpenAiClient {
    fn name(&self) -> &str {
        self.kind.as_str()
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, AiError> {
        let rb = self
            .http
            .post(self.url("chat/completions")?)
            .headers(self.headers()?)
            .json(&self.request_body(req));
        let body = http::send_json(rb, &self.scrub(Some(req))).await?;
        parse_response(&body, self.name())
    }

    async fn transcribe(&self, audio: &[u8], mime: &str) -> Result<String, AiError> {
        let model = self
            .transcription_model
            .as_deref()
            .ok_or(AiError::Unsupported("audio transcription"))?;
        let boundary = format!("sigmaai-{}", uuid::Uuid::new_v4().simple());
        let mime = mime.split(';').next().unwrap_or("audio/ogg").trim();
        let filename = format!("voice.{}", audio_extension(mime));
        let body = multipart(
            &boundary,
            &[("model", model), ("response_format", "json")],
            (&filename, mime, audio),
        );
        let rb = self
            .http
            .post(self.url("audio/transcriptions")?)
            .headers(self.headers()?)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let body = http::send_json(rb, &self.scrub(None)).await?;
        body.get("text")
            .and_then(Value::as_str)
            .map(|t| t.trim().to_owned())
            .ok_or_else(|| AiError::InvalidResponse("no text in the transcription".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_partial_json, header, method, path},
    };

    use super::*;
    use crate::ai::{ChatMessage, RetryPolicy, ToolSpec, build};

    fn cfg(server: &MockServer, kind: ProviderKind, model: &str) -> ProviderConfig {
        let mut c = ProviderConfig::new(kind, model);
        c.base_url = Some(Url::parse(&format!("{}/v1", server.uri())).unwrap());
        c.api_key = Some(SecretString::from("sk-test-key-123"));
        c.timeout = Duration::from_millis(500);
        c.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        };
        c
    }

    fn request() -> ChatRequest {
        ChatRequest {
            system: "You draft replies for a dental clinic.".into(),
            messages: vec![
                ChatMessage::user("Oi, vocês abrem sábado?"),
                ChatMessage::assistant("Abrimos sim, das 8h às 12h."),
                ChatMessage::user("E quanto custa uma limpeza?"),
            ],
            tools: vec![ToolSpec {
                name: "find_slots".into(),
                description: "Free appointment slots for a day".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {"date": {"type": "string", "format": "date"}},
                    "required": ["date"]
                }),
            }],
            max_output_tokens: 300,
            temperature: Some(0.2),
            tool_choice: crate::ai::ToolChoice::Auto,
        }
    }

    fn completion() -> Value {
        json!({
            "id": "chatcmpl-abc123",
            "object": "chat.completion",
            "created": 1_746_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "A limpeza custa R$ 180.", "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 152, "completion_tokens": 12, "total_tokens": 164},
            "system_fingerprint": "fp_0123"
        })
    }

    #[tokio::test]
    async fn openai_request_has_the_real_wire_shape_and_store_false() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", "Bearer sk-test-key-123"))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(resp.text.as_deref(), Some("A limpeza custa R$ 180."));
        assert_eq!(
            resp.usage,
            Usage {
                input_tokens: 152,
                output_tokens: 12
            }
        );
        assert_eq!(resp.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(resp.provider, "openai");
        assert_eq!(resp.finish_reason, FinishReason::Stop);

        let received = &server.received_requests().await.unwrap()[0];
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::OPENAI, &body);
        // The temperature goes out as written, not as a widened f32 (0.20000000298023224).
        let raw = String::from_utf8_lossy(&received.body);
        assert!(raw.contains(r#""temperature":0.2,"#), "{raw}");
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o-mini",
                "store": false,
                "max_completion_tokens": 300,
                "temperature": 0.2,
                "messages": [
                    {"role": "system", "content": "You draft replies for a dental clinic."},
                    {"role": "user", "content": "Oi, vocês abrem sábado?"},
                    {"role": "assistant", "content": "Abrimos sim, das 8h às 12h."},
                    {"role": "user", "content": "E quanto custa uma limpeza?"}
                ],
                "tools": [{
                    "type": "function",
                    "function": {
                        "name": "find_slots",
                        "description": "Free appointment slots for a day",
                        "parameters": {
                            "type": "object",
                            "properties": {"date": {"type": "string", "format": "date"}},
                            "required": ["date"]
                        }
                    }
                }]
            })
        );
    }

    #[tokio::test]
    async fn tool_calls_are_parsed_and_tool_results_sent_back() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "chatcmpl-2", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": null,
                    "tool_calls": [{"id": "call_Xy1", "type": "function",
                        "function": {"name": "find_slots", "arguments": "{\"date\":\"2026-05-02\"}"}}]
                }}],
                "usage": {"prompt_tokens": 80, "completion_tokens": 17, "total_tokens": 97}
            })))
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(resp.text, None);
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            resp.tool_calls,
            vec![ToolCall {
                id: "call_Xy1".into(),
                name: "find_slots".into(),
                arguments: json!({"date": "2026-05-02"}),
                provider_data: None,
            }]
        );

        // The next turn carries the call and its result.
        let mut req = request();
        req.messages.push(ChatMessage {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(resp.tool_calls[0].clone())],
        });
        req.messages.push(ChatMessage::tool_result(
            "call_Xy1",
            "find_slots",
            "[\"09:00\",\"10:30\"]",
        ));
        let body = OpenAiClient::new(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini"))
            .unwrap()
            .request_body(&req);
        let msgs = body["messages"].as_array().unwrap();
        assert_eq!(
            msgs[msgs.len() - 2],
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_Xy1", "type": "function",
                "function": {"name": "find_slots", "arguments": "{\"date\":\"2026-05-02\"}"}
            }]})
        );
        assert_eq!(
            msgs[msgs.len() - 1],
            json!({"role": "tool", "tool_call_id": "call_Xy1", "content": "[\"09:00\",\"10:30\"]"})
        );
    }

    #[tokio::test]
    async fn images_are_sent_as_data_url_parts() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(body_partial_json(
                json!({"messages": [{"role": "user", "content": [
                    {"type": "text", "text": "Is this rash serious?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AQID"}}
                ]}]}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o")).unwrap();
        assert!(p.capabilities().supports_vision);
        let req = ChatRequest {
            system: String::new(),
            messages: vec![ChatMessage {
                role: Role::User,
                parts: vec![
                    Part::Text("Is this rash serious?".into()),
                    Part::Image {
                        mime: "image/jpeg".into(),
                        bytes: vec![0xff, 0xd8, 0xff, 0x01, 0x02, 0x03],
                    },
                ],
            }],
            tools: vec![],
            max_output_tokens: 100,
            temperature: None,
            tool_choice: crate::ai::ToolChoice::Auto,
        };
        p.chat(&req).await.unwrap();
    }

    #[tokio::test]
    async fn rate_limit_honours_retry_after_then_succeeds() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "0.05")
                    .set_body_json(
                        json!({"error": {"message": "Rate limit reached for gpt-4o-mini",
                        "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
                    ),
            )
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        let started = std::time::Instant::now();
        let resp = p.chat(&request()).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "waited as asked"
        );
        assert_eq!(resp.text.as_deref(), Some("A limpeza custa R$ 180."));
    }

    #[tokio::test]
    async fn server_errors_are_retried_until_the_attempts_run_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        assert!(p.chat(&request()).await.is_ok());
        assert_eq!(server.received_requests().await.unwrap().len(), 2);

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .expect(3)
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::Unavailable {
                reason: "HTTP 503".into()
            }
        );
    }

    #[tokio::test]
    async fn bad_key_is_rejected_once_without_leaking_the_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
                "message": "Incorrect API key provided: sk-test-***-123. You can find your API key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        let err = p.chat(&request()).await.unwrap_err();
        let AiError::Rejected { status, message } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*status, 401);
        assert!(
            message.starts_with("Incorrect API key provided"),
            "{message}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("sk-test"), "{shown}");
        assert!(!shown.contains("123."), "{shown}");
    }

    #[tokio::test]
    async fn rejected_requests_do_not_echo_the_prompt() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "Invalid message: E quanto custa uma limpeza? is too long",
                "type": "invalid_request_error", "param": "messages", "code": null}})))
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        let err = p.chat(&request()).await.unwrap_err();
        assert!(!err.to_string().contains("limpeza"), "{err}");
        assert!(matches!(err, AiError::Rejected { status: 400, .. }));
    }

    #[tokio::test]
    async fn content_filter_is_classified() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "finish_reason": "content_filter",
                    "message": {"role": "assistant", "content": null}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10}
            })))
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::ContentFiltered
        );
    }

    #[tokio::test]
    async fn timeout_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(completion())
                    .set_delay(Duration::from_secs(2)),
            )
            .mount(&server)
            .await;
        let mut c = cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini");
        c.timeout = Duration::from_millis(100);
        c.retry = RetryPolicy::no_retries();
        let p = build(&c).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::Unavailable {
                reason: "timed out".into()
            }
        );
    }

    #[tokio::test]
    async fn groq_and_ollama_speak_the_same_format_without_store() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
            .mount(&server)
            .await;
        let groq = build(&cfg(&server, ProviderKind::Groq, "llama-3.3-70b-versatile")).unwrap();
        assert_eq!(groq.chat(&request()).await.unwrap().provider, "groq");
        // A local Ollama needs no key.
        let mut ollama = cfg(&server, ProviderKind::OpenAiCompatible, "llama3.1");
        ollama.api_key = None;
        let ollama = build(&ollama).unwrap();
        ollama.chat(&request()).await.unwrap();

        let reqs = server.received_requests().await.unwrap();
        let groq_body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(groq_body["max_completion_tokens"], 300);
        assert!(groq_body.get("store").is_none());
        assert_eq!(
            reqs[0].headers.get("authorization").unwrap(),
            "Bearer sk-test-key-123"
        );
        let ollama_body: Value = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(ollama_body["model"], "llama3.1");
        assert_eq!(ollama_body["max_tokens"], 300);
        assert!(ollama_body.get("store").is_none());
        assert!(reqs[1].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn voice_notes_are_transcribed_with_whisper() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/audio/transcriptions"))
            .and(header("authorization", "Bearer sk-test-key-123"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"text": " Queria marcar uma consulta para amanhã. "})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server, ProviderKind::OpenAi, "gpt-4o-mini")).unwrap();
        assert!(p.capabilities().supports_audio_transcription);
        let audio = b"OggS\x00\x02fake-opus-bytes";
        let text = p.transcribe(audio, "audio/ogg; codecs=opus").await.unwrap();
        assert_eq!(text, "Queria marcar uma consulta para amanhã.");

        let req = &server.received_requests().await.unwrap()[0];
        let ct = req.headers.get("content-type").unwrap().to_str().unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").expect(ct);
        let body = String::from_utf8_lossy(&req.body);
        assert!(body.contains(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        )));
        assert!(body.contains(
            "Content-Disposition: form-data; name=\"file\"; filename=\"voice.ogg\"\r\nContent-Type: audio/ogg\r\n\r\nOggS"
        ));
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[tokio::test]
    async fn compatible_servers_transcribe_only_when_configured() {
        let server = MockServer::start().await;
        let mut c = cfg(&server, ProviderKind::OpenAiCompatible, "llama3.1");
        let p = build(&c).unwrap();
        assert!(!p.capabilities().supports_audio_transcription);
        assert_eq!(
            p.transcribe(b"x", "audio/ogg").await.unwrap_err(),
            AiError::Unsupported("audio transcription")
        );
        c.transcription_model = Some("whisper-large-v3".into());
        assert!(
            build(&c)
                .unwrap()
                .capabilities()
                .supports_audio_transcription
        );
    }

    #[tokio::test]
    async fn reasoning_models_get_no_temperature_and_a_valid_request() {
        for model in ["gpt-5-mini", "o3"] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v1/chat/completions"))
                .respond_with(ResponseTemplate::new(200).set_body_json(completion()))
                .expect(1)
                .mount(&server)
                .await;
            let p = build(&cfg(&server, ProviderKind::OpenAi, model)).unwrap();
            p.chat(&request()).await.unwrap();
            let received = &server.received_requests().await.unwrap()[0];
            let body: Value = serde_json::from_slice(&received.body).unwrap();
            crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::OPENAI, &body);
            assert_eq!(body.get("temperature"), None, "{model}: {body}");
            assert_eq!(body.get("max_tokens"), None, "{model}");
            assert_eq!(
                body["max_completion_tokens"],
                json!(300 + REASONING_HEADROOM_TOKENS),
                "{model}"
            );
            assert_eq!(body["reasoning_effort"], "low", "{model}");
            assert_eq!(body["store"], false);
        }
    }

    #[tokio::test]
    async fn unknown_models_get_no_sampling_parameters() {
        let server = MockServer::start().await;
        let p = OpenAiClient::new(&cfg(&server, ProviderKind::OpenAi, "gpt-7-preview")).unwrap();
        let body = p.request_body(&request());
        assert_eq!(body.get("temperature"), None);
        assert_eq!(body["max_completion_tokens"], 300);
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::OPENAI, &body);
        let p =
            OpenAiClient::new(&cfg(&server, ProviderKind::OpenAiCompatible, "mystery:7b")).unwrap();
        let body = p.request_body(&request());
        assert_eq!(body.get("temperature"), None);
        assert_eq!(body["max_tokens"], 300);
        // The schema check can fail: a misspelt field is caught.
        let mut bad = body.clone();
        bad["max_tokenz"] = json!(1);
        assert!(!crate::ai::wire_schema::errors(crate::ai::wire_schema::OPENAI, &bad).is_empty());
    }

    #[tokio::test]
    async fn a_forced_final_answer_keeps_the_tools_and_forbids_them() {
        let server = MockServer::start().await;
        let mut req = request();
        req.tool_choice = crate::ai::ToolChoice::None;
        let body = OpenAiClient::new(&cfg(&server, ProviderKind::OpenAi, "gpt-5"))
            .unwrap()
            .request_body(&req);
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::OPENAI, &body);
        assert_eq!(body["tool_choice"], "none");
        assert_eq!(body["tools"][0]["function"]["name"], "find_slots");
        req.tool_choice = crate::ai::ToolChoice::Auto;
        let body = OpenAiClient::new(&cfg(&server, ProviderKind::OpenAi, "gpt-5"))
            .unwrap()
            .request_body(&req);
        assert_eq!(body.get("tool_choice"), None);
    }

    #[tokio::test]
    async fn an_oversized_response_is_refused_once_not_buffered_or_retried() {
        let server = MockServer::start().await;
        let huge = format!(
            "{{\"choices\": [], \"pad\": \"{}\"}}",
            " ".repeat(crate::ai::http::MAX_RESPONSE_BYTES)
        );
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(huge.into_bytes(), "application/json"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let mut c = cfg(&server, ProviderKind::OpenAiCompatible, "llama3.1");
        c.timeout = Duration::from_secs(5);
        let p = build(&c).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::TooLarge {
                limit: crate::ai::http::MAX_RESPONSE_BYTES
            }
        );
    }
}
