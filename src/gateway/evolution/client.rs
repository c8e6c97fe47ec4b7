//! The Evolution REST client: sending, media, connecting an instance, setting its webhook.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use url::Url;

use super::{parse::pairing_prompt, verify::SECRET_HEADER};
use crate::domain::phone::Phone;
use crate::gateway::{
    ClientConfigError, ConnectionState, DownloadedMedia, EvolutionKey, MAX_MEDIA_BYTES,
    MAX_RESPONSE_BYTES, MediaSource, PairingPrompt, SendError, Timeouts, endpoint, http_client,
    parse_base_url, read_limited, redact_reason, sensitive_header, str_at, text_at,
};

// ---------------------------------------------------------------------------------------
// REST client (§1.9)
// ---------------------------------------------------------------------------------------

/// The events we subscribe an instance to (names from Evolution's `EventController.events`):
/// edits and deletes come as their own events.
pub(crate) const DEFAULT_WEBHOOK_EVENTS: &[&str] = &[
    "MESSAGES_UPSERT",
    "MESSAGES_UPDATE",
    "MESSAGES_EDITED",
    "MESSAGES_DELETE",
    "SEND_MESSAGE",
    "CONNECTION_UPDATE",
    "QRCODE_UPDATED",
];

/// One Evolution instance (one linked WhatsApp number), authenticated by `apikey`.
#[derive(Clone)]
pub(crate) struct EvolutionClient {
    http: reqwest::Client,
    base_url: Url,
    instance: String,
    api_key: SecretString,
}

impl fmt::Debug for EvolutionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvolutionClient")
            .field("base_url", &self.base_url.as_str())
            .field("instance", &self.instance)
            .field("api_key", &"[redacted]")
            .finish()
    }
}

/// A file to send. `Bytes` travel base64-encoded in the JSON body.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct OutboundMedia {
    pub(crate) kind: OutboundMediaKind,
    pub(crate) content: MediaContent,
    pub(crate) mimetype: Option<String>,
    pub(crate) caption: Option<String>,
    /// Required by Evolution for documents sent as bytes.
    pub(crate) file_name: Option<String>,
}

impl fmt::Debug for OutboundMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundMedia")
            .field("kind", &self.kind)
            .field("mimetype", &self.mimetype)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) enum OutboundMediaKind {
    Image,
    #[cfg_attr(test, expect(dead_code, reason = "no test sends a video yet"))]
    Video,
    /// An audio file; voice notes have their own endpoint (`sendWhatsAppAudio`).
    #[cfg_attr(test, expect(dead_code, reason = "no test sends an audio file yet"))]
    Audio,
    Document,
}

impl OutboundMediaKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboundMediaKind::Image => "image",
            OutboundMediaKind::Video => "video",
            OutboundMediaKind::Audio => "audio",
            OutboundMediaKind::Document => "document",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) enum MediaContent {
    Bytes(Vec<u8>),
    /// An http(s) URL Evolution downloads itself.
    Url(String),
}

/// What `connect` answered.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ConnectOutcome {
    /// Already linked: nothing to scan.
    Open,
    /// Show this to the tenant admin.
    Pairing(PairingPrompt),
}

impl EvolutionClient {
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn new(
        base_url: &str,
        instance: &str,
        api_key: SecretString,
    ) -> Result<Self, ClientConfigError> {
        Self::with_timeouts(base_url, instance, api_key, Timeouts::default())
    }

    pub(crate) fn with_timeouts(
        base_url: &str,
        instance: &str,
        api_key: SecretString,
        timeouts: Timeouts,
    ) -> Result<Self, ClientConfigError> {
        let http = http_client(timeouts)
            .map_err(|_| ClientConfigError("could not build the HTTP client"))?;
        Self::with_http(http, base_url, instance, api_key)
    }

    /// With a client the caller built (the platform pins tenant-supplied gateways to the
    /// addresses its SSRF guard vetted).
    pub(crate) fn with_http(
        http: reqwest::Client,
        base_url: &str,
        instance: &str,
        api_key: SecretString,
    ) -> Result<Self, ClientConfigError> {
        let base_url = parse_base_url(base_url)?;
        if instance.trim().is_empty() {
            return Err(ClientConfigError("Evolution instance name is empty"));
        }
        sensitive_header(api_key.expose_secret())?;
        Ok(EvolutionClient {
            http,
            base_url,
            instance: instance.to_owned(),
            api_key,
        })
    }

    /// Sends a text to `number` (phone digits, a group `…@g.us` or a `…@lid` JID, as in
    /// [`InboundMessage::chat_id`]), optionally as a reply to `quoted_id`. Returns the
    /// WhatsApp message id (`key.id`), which later receipts carry as `keyId`.
    ///
    /// Quoting by id needs Evolution to keep messages in its database; without it the text
    /// is still sent, unquoted.
    pub(crate) async fn send_text(
        &self,
        number: &str,
        text: &str,
        quoted_id: Option<&str>,
    ) -> Result<String, SendError> {
        let mut body = json!({ "number": number, "text": text, "linkPreview": false });
        if let Some(id) = quoted_id {
            body["quoted"] = json!({ "key": { "id": id } });
        }
        let resp = self
            .call(Method::POST, &["message", "sendText"], Some(&body), &[])
            .await?;
        message_id(&resp)
    }

    /// Sends an image, video, audio file or document, from bytes or a URL.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) async fn send_media(
        &self,
        number: &str,
        media: &OutboundMedia,
    ) -> Result<String, SendError> {
        let content = match &media.content {
            MediaContent::Bytes(bytes) => B64.encode(bytes),
            MediaContent::Url(url) => url.clone(),
        };
        let mut body = json!({
            "number": number,
            "mediatype": media.kind.as_str(),
            "media": content,
        });
        for (key, value) in [
            ("mimetype", &media.mimetype),
            ("caption", &media.caption),
            ("fileName", &media.file_name),
        ] {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        let resp = self
            .call(Method::POST, &["message", "sendMedia"], Some(&body), &[])
            .await?;
        message_id(&resp)
    }

    /// Points the instance webhook at `url` with our secret header, base64 media on.
    /// Evolution applies the base64 setting only after the instance reconnects (§1.1).
    pub(crate) async fn set_webhook(
        &self,
        url: &str,
        secret: &SecretString,
        events: &[&str],
    ) -> Result<(), SendError> {
        let body = json!({ "webhook": {
            "enabled": true,
            "url": url,
            "headers": { SECRET_HEADER: secret.expose_secret() },
            "byEvents": false,
            "base64": true,
            "events": events,
        } });
        self.call(Method::POST, &["webhook", "set"], Some(&body), &[])
            .await
            .map(drop)
    }

    /// A group's subject (`GET /group/findGroupInfos?groupJid=`), to label its
    /// conversation: webhooks only carry the sender's push name.
    pub(crate) async fn group_subject(&self, group_jid: &str) -> Result<Option<String>, SendError> {
        let resp = self
            .call(
                Method::GET,
                &["group", "findGroupInfos"],
                None,
                &[("groupJid", group_jid)],
            )
            .await?;
        Ok(text_at(&resp, "subject").and_then(|s| crate::gateway::clean_name(&s)))
    }

    /// The linked session's state (`GET /instance/connectionState`).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) async fn connection_state(&self) -> Result<ConnectionState, SendError> {
        let resp = self
            .call(Method::GET, &["instance", "connectionState"], None, &[])
            .await?;
        let state = resp
            .get("instance")
            .and_then(|i| str_at(i, "state"))
            .or_else(|| str_at(&resp, "state"))
            .ok_or_else(|| unreadable("no state in the response"))?;
        Ok(match state {
            "open" => ConnectionState::Open,
            "connecting" => ConnectionState::Connecting,
            _ => ConnectionState::Closed,
        })
    }

    /// Starts pairing (or reconnecting): a QR code, plus an 8-character pairing code when
    /// `phone` is given ("link with phone number").
    pub(crate) async fn connect(&self, phone: Option<&Phone>) -> Result<ConnectOutcome, SendError> {
        let query: Vec<(&str, &str)> = phone.map(|p| ("number", p.as_str())).into_iter().collect();
        let resp = self
            .call(Method::GET, &["instance", "connect"], None, &query)
            .await?;
        if resp.get("instance").and_then(|i| str_at(i, "state")) == Some("open") {
            return Ok(ConnectOutcome::Open);
        }
        let prompt = pairing_prompt(&resp);
        if prompt == PairingPrompt::default() {
            return Err(unreadable("no QR or pairing code in the response"));
        }
        Ok(ConnectOutcome::Pairing(prompt))
    }

    /// Downloads a media message's decrypted bytes (`getBase64FromMediaMessage`). With
    /// `message` (the content node the webhook carried) Evolution needs no stored copy.
    pub(crate) async fn fetch_media_base64(
        &self,
        key: &EvolutionKey,
        message: Option<&Value>,
        convert_to_mp4: bool,
    ) -> Result<DownloadedMedia, SendError> {
        let mut wire_key =
            json!({ "id": key.id, "remoteJid": key.remote_jid, "fromMe": key.from_me });
        if let Some(p) = &key.participant {
            wire_key["participant"] = json!(p);
        }
        let mut msg = json!({ "key": wire_key });
        if let Some(m) = message {
            msg["message"] = m.clone();
        }
        let body = json!({ "message": msg, "convertToMp4": convert_to_mp4 });
        let resp = self
            .call(
                Method::POST,
                &["chat", "getBase64FromMediaMessage"],
                Some(&body),
                &[],
            )
            .await?;
        let b64 = str_at(&resp, "base64").ok_or_else(|| unreadable("no base64 in the response"))?;
        Ok(DownloadedMedia {
            bytes: decode_base64(b64)?,
            mime: text_at(&resp, "mimetype"),
            filename: text_at(&resp, "fileName"),
        })
    }

    /// The bytes behind a [`MediaSource`] from an Evolution webhook.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) async fn download(
        &self,
        source: &MediaSource,
    ) -> Result<DownloadedMedia, SendError> {
        match source {
            MediaSource::Inline { base64 } => Ok(DownloadedMedia {
                bytes: decode_base64(base64)?,
                mime: None,
                filename: None,
            }),
            MediaSource::EvolutionKey { key, message } => {
                self.fetch_media_base64(key, message.as_ref(), false).await
            }
            // Object storage: a plain GET, without our API key.
            MediaSource::Url { url } => {
                let resp = self
                    .http
                    .get(url.as_str())
                    .send()
                    .await
                    .map_err(SendError::from_transport)?;
                let status = resp.status();
                if !status.is_success() {
                    return Err(classify(status, b""));
                }
                let mime = resp
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(DownloadedMedia {
                    bytes: read_limited(resp, MAX_MEDIA_BYTES).await?,
                    mime,
                    filename: None,
                })
            }
            MediaSource::MetaId { .. } => Err(SendError::Rejected {
                status: 0,
                code: None,
                reason: "not an Evolution media source".into(),
            }),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
        query: &[(&str, &str)],
    ) -> Result<Value, SendError> {
        let mut segments = path.to_vec();
        segments.push(&self.instance);
        let url = endpoint(&self.base_url, &segments);
        let api_key =
            sensitive_header(self.api_key.expose_secret()).map_err(|_| SendError::Rejected {
                status: 0,
                code: None,
                reason: "invalid API key".into(),
            })?;
        let mut req = self.http.request(method, url).header("apikey", api_key);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(SendError::from_transport)?;
        let status = resp.status();
        if !status.is_success() {
            let body = read_limited(resp, 64 * 1024).await.unwrap_or_default();
            let err = classify(status, &body);
            tracing::warn!(
                gateway = "evolution",
                call = path.join("/"),
                status = status.as_u16(),
                retryable = err.is_retryable(),
                "gateway call failed"
            );
            return Err(err);
        }
        let bytes = read_limited(resp, MAX_RESPONSE_BYTES).await?;
        serde_json::from_slice(&bytes).map_err(|_| unreadable("response is not JSON"))
    }
}

/// The request went through but we can't read what happened: never resend automatically.
fn unreadable(why: &str) -> SendError {
    SendError::Unknown {
        reason: format!("unreadable Evolution response: {why}"),
    }
}

fn message_id(resp: &Value) -> Result<String, SendError> {
    resp.get("key")
        .and_then(|k| text_at(k, "id"))
        .ok_or_else(|| unreadable("no message id"))
}

fn decode_base64(b64: &str) -> Result<Vec<u8>, SendError> {
    // Tolerate a data URL prefix.
    let raw = b64.split_once(";base64,").map_or(b64, |(_, d)| d);
    B64.decode(raw.trim())
        .map_err(|_| unreadable("media is not valid base64"))
}

/// DESIGN.md "Sends": 5xx and 429 may be retried; any other 4xx is final.
fn classify(status: StatusCode, body: &[u8]) -> SendError {
    let reason = redact_reason(&format!("HTTP {}: {}", status.as_u16(), error_text(body)));
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        SendError::Retryable {
            status: Some(status.as_u16()),
            reason,
        }
    } else {
        SendError::Rejected {
            status: status.as_u16(),
            code: None,
            reason,
        }
    }
}

/// Evolution's `{"status","error","response":{"message":[…]}}`, without the numbers it
/// may quote (a non-WhatsApp number comes back as `{"jid","exists":false,"number"}`).
fn error_text(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return "no details".into();
    };
    let describe = |m: &Value| match m {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.get("exists") == Some(&Value::Bool(false)) => {
            "number is not on WhatsApp".into()
        }
        _ => "invalid request".into(),
    };
    match v.get("response").and_then(|r| r.get("message")) {
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(describe).collect::<Vec<_>>().join("; ")
        }
        Some(m @ Value::String(_)) => describe(m),
        _ => text_at(&v, "error").unwrap_or_else(|| "no details".into()),
    }
}
