//! Google Gemini (`POST {base}/v1beta/models/{model}:generateContent`, key in the
//! `x-goog-api-key` header — never the `?key=` query parameter, so it can't leak via a URL).
//!
//! Tool schemas go in `parametersJsonSchema`, which takes full JSON Schema (MCP tools use it)
//! where `parameters` takes only an OpenAPI subset. Gemini's paid tier does not train on API
//! data; there is no per-request flag.

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

#[derive(Debug)]
pub(crate) struct GeminiClient {
    model: String,
    base: Url,
    api_key: SecretString,
    capabilities: Capabilities,
    model_caps: ModelCaps,
    http: reqwest::Client,
}

impl GeminiClient {
    pub(crate) fn new(cfg: &ProviderConfig) -> Result<GeminiClient, AiError> {
        let mut capabilities = cfg
            .capabilities
            .unwrap_or_else(|| cfg.kind.capabilities(&cfg.model));
        capabilities.supports_audio_transcription = false;
        Ok(GeminiClient {
            model: cfg
                .model
                .strip_prefix("models/")
                .unwrap_or(&cfg.model)
                .to_owned(),
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

    /// The JSON body for `req` in the generateContent format.
    pub(crate) fn request_body(&self, req: &ChatRequest) -> Value {
        let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
        for m in &req.messages {
            let role = match m.role {
                Role::Assistant => "model",
                Role::User | Role::Tool => "user",
            };
            let parts: Vec<Value> = m.parts.iter().map(part).collect();
            if parts.is_empty() {
                continue;
            }
            match contents.last_mut() {
                Some((r, existing)) if *r == role => existing.extend(parts),
                _ => contents.push((role, parts)),
            }
        }
        if contents.first().is_some_and(|(r, _)| *r == "model") {
            contents.insert(
                0,
                ("user", vec![json!({"text": "(start of the conversation)"})]),
            );
        }
        let contents: Vec<Value> = contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect();
        let mut generation = json!({"maxOutputTokens": req.max_output_tokens});
        // Only where the model table says the model takes it (current Claude models and
        // Gemini 3 get their default).
        if let Some(t) = req
            .temperature
            .filter(|_| self.model_caps.accepts_temperature)
        {
            generation["temperature"] = json!(t);
        }
        let mut body = json!({"contents": contents, "generationConfig": generation});
        if !req.system.is_empty() {
            body["systemInstruction"] = json!({"parts": [{"text": req.system}]});
        }
        if !req.tools.is_empty() {
            let decls: Vec<Value> = req
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "name": t.name,
                        "description": t.description,
                        "parametersJsonSchema": t.input_schema,
                    })
                })
                .collect();
            body["tools"] = json!([{"functionDeclarations": decls}]);
            if req.tool_choice == ToolChoice::None {
                body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
            }
        }
        body
    }
}

fn part(p: &Part) -> Value {
    match p {
        Part::Text(t) => json!({"text": t}),
        Part::Image { mime, bytes } => json!({"inlineData": {
            "mimeType": mime,
            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        }}),
        Part::ToolCall(c) => {
            let mut part = json!({"functionCall": {"name": c.name, "args": c.arguments}});
            // The signature (and any other part-level field we were asked to keep) goes back
            // exactly as it came.
            if let (Some(Value::Object(extra)), Value::Object(out)) = (&c.provider_data, &mut part)
            {
                for (k, v) in extra {
                    out.insert(k.clone(), v.clone());
                }
            }
            part
        }
        Part::ToolResult { name, content, .. } => {
            // `response` must be an object: a JSON object result as is, anything else wrapped.
            let response = match serde_json::from_str::<Value>(content) {
                Ok(Value::Object(o)) => Value::Object(o),
                Ok(other) => json!({"content": other}),
                Err(_) => json!({"content": content}),
            };
            json!({"functionResponse": {"name": name, "response": response}})
        }
    }
}

/// Part-level fields of a `functionCall` part that must be replayed with it: today
/// `thoughtSignature` (Gemini 3 checks it on the next step; Gemini 2.5 sends it with
/// thinking on). Kept opaque: we never look inside.
const REPLAYED_PART_FIELDS: &[&str] = &["thoughtSignature"];

fn replayed_fields(part: &Value) -> Option<Value> {
    let kept: serde_json::Map<String, Value> = REPLAYED_PART_FIELDS
        .iter()
        .filter_map(|k| Some(((*k).to_owned(), part.get(*k)?.clone())))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// Parses a generateContent response.
pub(crate) fn parse_response(body: &Value) -> Result<ChatResponse, AiError> {
    if body.pointer("/promptFeedback/blockReason").is_some() {
        return Err(AiError::ContentFiltered);
    }
    let candidate = body
        .pointer("/candidates/0")
        .ok_or_else(|| AiError::InvalidResponse("no candidates".into()))?;
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    for p in candidate
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        // Thought summaries are not part of the reply.
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            texts.push(t);
        }
        if let Some(call) = p.get("functionCall") {
            tool_calls.push(ToolCall {
                // Gemini may omit ids; ours only pair calls with results in the tool loop.
                id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("call_{}", tool_calls.len())),
                name: call
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| AiError::InvalidResponse("a tool call has no name".into()))?
                    .to_owned(),
                arguments: call.get("args").cloned().unwrap_or(json!({})),
                provider_data: replayed_fields(p),
            });
        }
    }
    let text = Some(texts.concat()).filter(|t| !t.is_empty());
    let finish = candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .unwrap_or("");
    let filtered = matches!(
        finish,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
    );
    if filtered && text.is_none() && tool_calls.is_empty() {
        return Err(AiError::ContentFiltered);
    }
    let finish_reason = if !tool_calls.is_empty() {
        FinishReason::ToolCalls
    } else {
        match finish {
            "STOP" => FinishReason::Stop,
            "MAX_TOKENS" => FinishReason::Length,
            other => FinishReason::Other(other.to_owned()),
        }
    };
    Ok(ChatResponse {
        text,
        tool_calls,
        usage: Usage {
            input_tokens: http::u32_at(body, "/usageMetadata/promptTokenCount"),
            output_tokens: http::u32_at(body, "/usageMetadata/candidatesTokenCount"),
        },
        model: body
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        provider: "gemini".into(),
        finish_reason,
    })
}

#[async_trait::async_trait]
impl Provider for GeminiClient {
    fn name(&self) -> &str {
        "gemini"
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
            .join(&format!("v1beta/models/{}:generateContent", self.model))
            .map_err(|_| AiError::NotConfigured("base URL"))?;
        let mut key = HeaderValue::from_str(self.api_key.expose_secret())
            .map_err(|_| AiError::NotConfigured("API key"))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", key);
        let rb = self
            .http
            .post(url)
            .headers(headers)
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
        let mut c = ProviderConfig::new(ProviderKind::Gemini, "gemini-2.5-flash");
        c.base_url = Some(Url::parse(&server.uri()).unwrap());
        c.api_key = Some(SecretString::from("AIzaTestKey123"));
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
                ChatMessage::user("Vocês abrem sábado?"),
                ChatMessage::assistant("Sim, das 8h às 12h."),
                ChatMessage::user("Tem horário livre neste sábado?"),
            ],
            tools: vec![ToolSpec {
                name: "find_slots".into(),
                description: "Free appointment slots for a day".into(),
                input_schema: json!({
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"date": {"type": "string"}},
                    "additionalProperties": false
                }),
            }],
            max_output_tokens: 256,
            temperature: None,
            tool_choice: crate::ai::ToolChoice::Auto,
        }
    }

    fn generate_response() -> Value {
        json!({
            "candidates": [{
                "content": {"parts": [{"text": "Temos horário às 10h neste sábado."}], "role": "model"},
                "finishReason": "STOP",
                "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 11, "totalTokenCount": 131},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "abc123"
        })
    }

    #[tokio::test]
    async fn gemini_request_has_the_real_wire_shape() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
            .and(header("x-goog-api-key", "AIzaTestKey123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(generate_response()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(
            resp.text.as_deref(),
            Some("Temos horário às 10h neste sábado.")
        );
        assert_eq!(
            resp.usage,
            Usage {
                input_tokens: 120,
                output_tokens: 11
            }
        );
        assert_eq!(resp.provider, "gemini");
        assert_eq!(resp.finish_reason, FinishReason::Stop);

        let received = &server.received_requests().await.unwrap()[0];
        assert_eq!(received.url.query(), None, "the key is not in the URL");
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::GEMINI, &body);
        assert_eq!(
            body,
            json!({
                "systemInstruction": {"parts": [{"text": "You draft replies for a dental clinic."}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "Vocês abrem sábado?"}]},
                    {"role": "model", "parts": [{"text": "Sim, das 8h às 12h."}]},
                    {"role": "user", "parts": [{"text": "Tem horário livre neste sábado?"}]}
                ],
                "tools": [{"functionDeclarations": [{
                    "name": "find_slots",
                    "description": "Free appointment slots for a day",
                    "parametersJsonSchema": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "properties": {"date": {"type": "string"}},
                        "additionalProperties": false
                    }
                }]}],
                "generationConfig": {"maxOutputTokens": 256}
            })
        );
    }

    #[tokio::test]
    async fn function_calls_are_parsed_and_results_and_images_are_sent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "candidates": [{
                    "content": {"role": "model", "parts": [
                        {"text": "Let me think", "thought": true},
                        {"functionCall": {"name": "find_slots", "args": {"date": "2026-05-09"}}}
                    ]},
                    "finishReason": "STOP"
                }],
                "usageMetadata": {"promptTokenCount": 90, "candidatesTokenCount": 8},
                "modelVersion": "gemini-2.5-flash"
            })))
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        let resp = p.chat(&request()).await.unwrap();
        assert_eq!(resp.text, None, "thoughts are not the reply");
        assert_eq!(resp.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            resp.tool_calls,
            vec![ToolCall {
                id: "call_0".into(),
                name: "find_slots".into(),
                arguments: json!({"date": "2026-05-09"}),
                provider_data: None,
            }]
        );

        let mut req = request();
        req.messages = vec![
            ChatMessage {
                role: Role::User,
                parts: vec![
                    Part::Text("Olha o raio-x".into()),
                    Part::Image {
                        mime: "image/jpeg".into(),
                        bytes: vec![0xff, 0xd8, 0xff],
                    },
                ],
            },
            ChatMessage {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(resp.tool_calls[0].clone())],
            },
            ChatMessage::tool_result("call_0", "find_slots", "[\"10:00\"]"),
        ];
        let body = GeminiClient::new(&cfg(&server)).unwrap().request_body(&req);
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [
                    {"text": "Olha o raio-x"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "find_slots", "args": {"date": "2026-05-09"}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "find_slots", "response": {"content": ["10:00"]}}}
                ]}
            ])
        );
    }

    #[tokio::test]
    async fn quota_errors_use_retry_info_and_bad_keys_are_rejected() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {
                "code": 429,
                "message": "You exceeded your current quota.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.05s"}]
            }})))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(generate_response()))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        let started = std::time::Instant::now();
        assert!(p.chat(&request()).await.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(50));

        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT"
            }})))
            .expect(1)
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::Rejected {
                status: 400,
                message: "API key not valid. Please pass a valid API key.".into()
            }
        );
    }

    #[tokio::test]
    async fn blocked_prompts_are_content_filtered() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 12}
            })))
            .mount(&server)
            .await;
        let p = build(&cfg(&server)).unwrap();
        assert_eq!(
            p.chat(&request()).await.unwrap_err(),
            AiError::ContentFiltered
        );
    }

    #[test]
    fn temperature_goes_only_to_models_that_take_it() {
        let server_uri = "http://127.0.0.1:9/";
        let mut c = ProviderConfig::new(ProviderKind::Gemini, "gemini-2.5-flash");
        c.base_url = Some(Url::parse(server_uri).unwrap());
        c.api_key = Some(SecretString::from("AIzaTestKey123"));
        let mut req = request();
        req.temperature = Some(0.3);
        let body = GeminiClient::new(&c).unwrap().request_body(&req);
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::GEMINI, &body);
        assert_eq!(
            serde_json::to_string(&body["generationConfig"]["temperature"]).unwrap(),
            "0.3"
        );
        c.model = "gemini-3-pro-preview".into();
        let body = GeminiClient::new(&c).unwrap().request_body(&req);
        assert_eq!(body["generationConfig"].get("temperature"), None);
    }

    /// Gemini 3 as it behaves: step 1 calls two functions in parallel (only the first part
    /// carries a thought signature); step 2 is refused unless the model turn comes back with
    /// that signature, verbatim, on that part.
    struct SignedToolLoop;

    const SIG: &str = "CiQBcsjafPq8x7Zr0e3+Kq2/A9bSLdS0yKzd+signature==";

    impl wiremock::Respond for SignedToolLoop {
        fn respond(&self, req: &wiremock::Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            let contents = body["contents"].as_array().unwrap();
            let answered = contents
                .iter()
                .flat_map(|c| c["parts"].as_array().unwrap())
                .any(|p| p.get("functionResponse").is_some());
            if !answered {
                return ResponseTemplate::new(200).set_body_json(json!({
                    "candidates": [{"content": {"role": "model", "parts": [
                        {"functionCall": {"name": "find_slots", "args": {"date": "2026-05-09"}},
                         "thoughtSignature": SIG},
                        {"functionCall": {"name": "find_slots", "args": {"date": "2026-05-10"}}}
                    ]}, "finishReason": "STOP"}],
                    "modelVersion": "gemini-3-pro-preview"
                }));
            }
            let model_parts: Vec<&Value> = contents
                .iter()
                .filter(|c| c["role"] == "model")
                .flat_map(|c| c["parts"].as_array().unwrap())
                .filter(|p| p.get("functionCall").is_some())
                .collect();
            let signed = model_parts
                .first()
                .and_then(|p| p["thoughtSignature"].as_str());
            if signed != Some(SIG) {
                return ResponseTemplate::new(400).set_body_json(json!({"error": {
                    "code": 400,
                    "message": "Function call is missing a thought_signature in functionCall parts.",
                    "status": "INVALID_ARGUMENT"
                }}));
            }
            ResponseTemplate::new(200).set_body_json(json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Temos 10h no sábado e 9h no domingo.", "thoughtSignature": "c2lnLTI="}
                ]}, "finishReason": "STOP"}],
                "modelVersion": "gemini-3-pro-preview"
            }))
        }
    }

    #[tokio::test]
    async fn a_two_step_tool_loop_replays_thought_signatures_verbatim() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-3-pro-preview:generateContent"))
            .respond_with(SignedToolLoop)
            .expect(2)
            .mount(&server)
            .await;
        let mut c = cfg(&server);
        c.model = "gemini-3-pro-preview".into();
        let p = build(&c).unwrap();
        let mut req = request();
        req.temperature = Some(0.3);
        let step1 = p.chat(&req).await.unwrap();
        assert_eq!(step1.tool_calls.len(), 2);
        assert_eq!(
            step1.tool_calls[0].provider_data,
            Some(json!({"thoughtSignature": SIG}))
        );
        assert_eq!(step1.tool_calls[1].provider_data, None);
        req.messages.push(ChatMessage {
            role: Role::Assistant,
            parts: step1
                .tool_calls
                .iter()
                .cloned()
                .map(Part::ToolCall)
                .collect(),
        });
        for tc in &step1.tool_calls {
            req.messages
                .push(ChatMessage::tool_result(&tc.id, &tc.name, "[\"10:00\"]"));
        }
        let step2 = p.chat(&req).await.unwrap();
        assert_eq!(
            step2.text.as_deref(),
            Some("Temos 10h no sábado e 9h no domingo.")
        );
        let received = server.received_requests().await.unwrap();
        for r in &received {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::GEMINI, &body);
            // Gemini 3 keeps its default temperature.
            assert_eq!(body["generationConfig"].get("temperature"), None);
        }
        let body: Value = serde_json::from_slice(&received[1].body).unwrap();
        assert_eq!(
            body["contents"][3],
            json!({"role": "model", "parts": [
                {"functionCall": {"name": "find_slots", "args": {"date": "2026-05-09"}},
                 "thoughtSignature": SIG},
                {"functionCall": {"name": "find_slots", "args": {"date": "2026-05-10"}}}
            ]})
        );
    }

    #[tokio::test]
    async fn a_forced_final_answer_keeps_the_tools_and_forbids_them() {
        let server = MockServer::start().await;
        let mut req = request();
        req.tool_choice = crate::ai::ToolChoice::None;
        let body = GeminiClient::new(&cfg(&server)).unwrap().request_body(&req);
        crate::ai::wire_schema::assert_valid(crate::ai::wire_schema::GEMINI, &body);
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "NONE"}})
        );
        assert_eq!(
            body["tools"][0]["functionDeclarations"][0]["name"],
            "find_slots"
        );
    }
}
