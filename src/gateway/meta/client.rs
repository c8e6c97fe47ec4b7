//! The Cloud API REST client: sending text and templates, media, template sync.

use std::fmt;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use crate::gateway::{
    ClientConfigError, DownloadedMedia, MAX_MEDIA_BYTES, SendError, Timeouts, endpoint,
    http_client, parse_base_url, read_limited, redact_reason, sensitive_header, str_at, text_at,
};

// ---------------------------------------------------------------------------------------
// REST client (§2.4, §2.6)
// ---------------------------------------------------------------------------------------

/// Graph error code for a free-form send outside the 24-hour customer-service window.
pub(crate) const OUTSIDE_WINDOW_CODE: i64 = 131047;

/// The Graph API version we call unless configured otherwise.
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com/v21.0";

/// Graph error codes that mean "not now" rather than "never": rate limits (4, 80007,
/// 130429 throughput, 131048 spam limit, 131056 same user too often) and Meta-side
/// trouble (1, 2, 131000, 131016, 133004).
const RETRYABLE_CODES: &[i64] = &[
    1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004,
];

/// One Cloud API business number, authenticated by a bearer access token.
#[derive(Clone)]
pub(crate) struct MetaClient {
    http: reqwest::Client,
    graph_base_url: Url,
    phone_number_id: String,
    access_token: SecretString,
}

impl fmt::Debug for MetaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaClient")
            .field("graph_base_url", &self.graph_base_url.as_str())
            .field("phone_number_id", &self.phone_number_id)
            .field("access_token", &"[redacted]")
            .finish()
    }
}

/// A message template as Meta lists it, for template sync.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MessageTemplate {
    pub(crate) id: Option<String>,
    pub(crate) name: String,
    pub(crate) language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, …
    pub(crate) status: String,
    pub(crate) category: Option<String>,
    /// Header/body/footer/buttons as Meta describes them.
    pub(crate) components: Value,
}

impl MessageTemplate {
    /// The body text with its `{{1}}` placeholders.
    pub(crate) fn body_text(&self) -> Option<&str> {
        self.components
            .as_array()?
            .iter()
            .find(|c| str_at(c, "type").is_some_and(|t| t.eq_ignore_ascii_case("BODY")))
            .and_then(|c| str_at(c, "text"))
    }
}

impl MetaClient {
    /// `graph_base_url` includes the version, e.g. [`DEFAULT_GRAPH_BASE_URL`].
    pub(crate) fn new(
        graph_base_url: &str,
        phone_number_id: &str,
        access_token: SecretString,
    ) -> Result<Self, ClientConfigError> {
        Self::with_timeouts(
            graph_base_url,
            phone_number_id,
            access_token,
            Timeouts::default(),
        )
    }

    pub(crate) fn with_timeouts(
        graph_base_url: &str,
        phone_number_id: &str,
        access_token: SecretString,
        timeouts: Timeouts,
    ) -> Result<Self, ClientConfigError> {
        let graph_base_url = parse_base_url(graph_base_url)?;
        if phone_number_id.trim().is_empty() {
            return Err(ClientConfigError("phone_number_id is empty"));
        }
        sensitive_header(&format!("Bearer {}", access_token.expose_secret()))?;
        if access_token.expose_secret().trim().is_empty() {
            return Err(ClientConfigError("credential is empty"));
        }
        let http = http_client(timeouts)
            .map_err(|_| ClientConfigError("could not build the HTTP client"))?;
        Ok(MetaClient {
            http,
            graph_base_url,
            phone_number_id: phone_number_id.to_owned(),
            access_token,
        })
    }

    /// Sends a free-form text (inside the 24-hour window), optionally replying to
    /// `reply_to` (a `wamid.…`). Returns the new message's `wamid.…`.
    pub(crate) async fn send_text(
        &self,
        to: &str,
        body: &str,
        reply_to: Option<&str>,
    ) -> Result<String, SendError> {
        let mut payload = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": { "preview_url": false, "body": body },
        });
        if let Some(id) = reply_to {
            payload["context"] = json!({ "message_id": id });
        }
        self.send(&payload).await
    }

    /// Sends an approved template (the only thing allowed outside the 24-hour window),
    /// filling the body's `{{1}}…` with `body_params` in order.
    pub(crate) async fn send_template(
        &self,
        to: &str,
        name: &str,
        language: &str,
        body_params: &[&str],
    ) -> Result<String, SendError> {
        let mut template = json!({ "name": name, "language": { "code": language } });
        if !body_params.is_empty() {
            let parameters: Vec<Value> = body_params
                .iter()
                .map(|p| json!({ "type": "text", "text": p }))
                .collect();
            template["components"] = json!([{ "type": "body", "parameters": parameters }]);
        }
        self.send(&json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": template,
        }))
        .await
    }

    /// Downloads a media file by the id a webhook carried: resolve the id to a short-lived
    /// URL, then fetch that URL with the same bearer token.
    pub(crate) async fn get_media(&self, media_id: &str) -> Result<DownloadedMedia, SendError> {
        let meta = self.get_json(&[media_id], &[]).await?;
        let url = str_at(&meta, "url").ok_or_else(|| unreadable("no media url"))?;
        let url = Url::parse(url).map_err(|_| unreadable("media url is not a URL"))?;
        let resp = self
            .http
            .get(url)
            .header(AUTHORIZATION, self.bearer()?)
            .send()
            .await
            .map_err(SendError::from_transport)?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
            return Err(self.failed("media download", status, &body));
        }
        Ok(DownloadedMedia {
            bytes: read_limited(resp, MAX_MEDIA_BYTES).await?,
            mime: text_at(&meta, "mime_type"),
            filename: None,
        })
    }

    /// Every message template of a WhatsApp Business Account, following the pages.
    pub(crate) async fn list_templates(
        &self,
        waba_id: &str,
    ) -> Result<Vec<MessageTemplate>, SendError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TEMPLATE_PAGES {
            let mut query = vec![
                ("fields", "id,name,language,status,category,components"),
                ("limit", "100"),
            ];
            if let Some(a) = &after {
                query.push(("after", a));
            }
            let page = self
                .get_json(&[waba_id, "message_templates"], &query)
                .await?;
            let data = page
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| unreadable("no template data"))?;
            out.extend(data.iter().filter_map(|t| {
                Some(MessageTemplate {
                    id: text_at(t, "id"),
                    name: text_at(t, "name")?,
                    language: text_at(t, "language")?,
                    status: text_at(t, "status").unwrap_or_default(),
                    category: text_at(t, "category"),
                    components: t.get("components").cloned().unwrap_or(Value::Null),
                })
            }));
            let paging = page.get("paging");
            let has_next = paging.and_then(|p| p.get("next")).is_some();
            after = paging
                .and_then(|p| p.get("cursors"))
                .and_then(|c| text_at(c, "after"));
            if !has_next || after.is_none() {
                return Ok(out);
            }
        }
        Ok(out)
    }

    async fn send(&self, payload: &Value) -> Result<String, SendError> {
        let url = endpoint(&self.graph_base_url, &[&self.phone_number_id, "messages"]);
        let resp = self
            .http
            .post(url)
            .header(AUTHORIZATION, self.bearer()?)
            .json(payload)
            .send()
            .await
            .map_err(SendError::from_transport)?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
            return Err(self.failed("send", status, &body));
        }
        let bytes = read_limited(resp, 1024 * 1024).await?;
        let v: Value =
            serde_json::from_slice(&bytes).map_err(|_| unreadable("response is not JSON"))?;
        v.get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.first())
            .and_then(|m| text_at(m, "id"))
            .ok_or_else(|| unreadable("no message id"))
    }

    async fn get_json(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Value, SendError> {
        let url = endpoint(&self.graph_base_url, path);
        let mut req = self.http.get(url).header(AUTHORIZATION, self.bearer()?);
        if !query.is_empty() {
            req = req.query(query);
        }
        let resp = req.send().await.map_err(SendError::from_transport)?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
            return Err(self.failed("get", status, &body));
        }
        let bytes = read_limited(resp, 16 * 1024 * 1024).await?;
        serde_json::from_slice(&bytes).map_err(|_| unreadable("response is not JSON"))
    }

    fn bearer(&self) -> Result<HeaderValue, SendError> {
        sensitive_header(&format!("Bearer {}", self.access_token.expose_secret())).map_err(|_| {
            SendError::Rejected {
                status: 0,
                code: None,
                reason: "invalid access token".into(),
            }
        })
    }

    fn failed(&self, call: &str, status: StatusCode, body: &[u8]) -> SendError {
        let err = classify(status, body);
        let code = match &err {
            SendError::Rejected { code, .. } => *code,
            SendError::OutsideWindow { .. } => Some(OUTSIDE_WINDOW_CODE),
            _ => None,
        };
        tracing::warn!(
            gateway = "meta",
            call,
            status = status.as_u16(),
            code,
            retryable = err.is_retryable(),
            "gateway call failed"
        );
        err
    }
}

const MAX_TEMPLATE_PAGES: usize = 50;

/// The request went through but we can't read what happened: never resend automatically.
fn unreadable(why: &str) -> SendError {
    SendError::Unknown {
        reason: format!("unreadable Graph API response: {why}"),
    }
}

/// Graph's `{"error":{"message","type","code","error_data":{"details"},"fbtrace_id"}}`,
/// classified for the send job.
fn classify(status: StatusCode, body: &[u8]) -> SendError {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .unwrap_or(Value::Null);
    let code = error.get("code").and_then(Value::as_i64);
    let message = text_at(&error, "message").unwrap_or_else(|| "no details".into());
    let details = error
        .get("error_data")
        .and_then(|d| text_at(d, "details"))
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let code_text = code.map(|c| format!(" code {c}")).unwrap_or_default();
    let reason = redact_reason(&format!(
        "HTTP {}{code_text}: {message}{details}",
        status.as_u16()
    ));
    if code == Some(OUTSIDE_WINDOW_CODE) {
        SendError::OutsideWindow { reason }
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || code.is_some_and(|c| RETRYABLE_CODES.contains(&c))
    {
        SendError::Retryable {
            status: Some(status.as_u16()),
            reason,
        }
    } else {
        SendError::Rejected {
            status: status.as_u16(),
            code,
            reason,
        }
    }
}
