//! Meta WhatsApp Cloud API: webhook parsing, signature and handshake checks, REST client.
//! Wire format: `shared/reference/whatsapp-gateways.md` §2.

use std::fmt;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use url::Url;

use super::{
    ClientConfigError, DeliveryStatus, DownloadedMedia, InboundEvent, InboundMessage,
    MAX_MEDIA_BYTES, MediaKind, MediaSource, MessageKind, MessageRevision, OrderItem, ParseError,
    Referral, Revision, SendError, SharedContact, StatusError, StatusUpdate, Timeouts, endpoint,
    http_client, number_at, parse_base_url, read_limited, redact_reason, sensitive_header, str_at,
    text_at, unix_seconds,
};
use crate::domain::phone::Phone;

/// Graph error code for a free-form send outside the 24-hour customer-service window.
pub const OUTSIDE_WINDOW_CODE: i64 = 131047;

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Parses one Cloud API webhook body: every entry, change, message and status in it
/// (Meta batches), in order.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| ParseError::json("meta", &e))?;
    let object = str_at(&root, "object").ok_or_else(|| missing("object"))?;
    if object != "whatsapp_business_account" {
        return Ok(vec![InboundEvent::Ignored {
            event: format!("object:{}", object.chars().take(64).collect::<String>()),
        }]);
    }
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("entry"))?;
    let mut events = Vec::new();
    for entry in entries {
        let changes = entry
            .get("changes")
            .and_then(Value::as_array)
            .ok_or_else(|| missing("entry[].changes"))?;
        for change in changes {
            let field = str_at(change, "field").ok_or_else(|| missing("changes[].field"))?;
            let value = change
                .get("value")
                .filter(|v| v.is_object())
                .ok_or_else(|| missing("changes[].value"))?;
            if field == "messages" {
                parse_messages_value(value, &mut events)?;
            } else {
                // account_update, message_template_status_update, …
                events.push(InboundEvent::Ignored {
                    event: field.chars().take(64).collect(),
                });
            }
        }
    }
    Ok(events)
}

fn missing(field: &str) -> ParseError {
    ParseError::new(format!("meta: missing or invalid {field}"))
}

fn parse_messages_value(value: &Value, events: &mut Vec<InboundEvent>) -> Result<(), ParseError> {
    let account = value
        .get("metadata")
        .and_then(|m| text_at(m, "phone_number_id"))
        .ok_or_else(|| missing("value.metadata.phone_number_id"))?;
    let contacts = value
        .get("contacts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut any = false;
    if let Some(messages) = value.get("messages").and_then(Value::as_array) {
        for m in messages {
            events.push(parse_message(&account, m, contacts)?);
            any = true;
        }
    }
    if let Some(statuses) = value.get("statuses").and_then(Value::as_array) {
        for s in statuses {
            events.push(parse_status(&account, s)?);
            any = true;
        }
    }
    if !any {
        // Out-of-band `errors[]`, or a shape we don't know yet.
        let event = if value.get("errors").is_some() {
            "messages.errors"
        } else {
            "messages"
        };
        events.push(InboundEvent::Ignored {
            event: event.into(),
        });
    }
    Ok(())
}

fn parse_message(account: &str, m: &Value, contacts: &[Value]) -> Result<InboundEvent, ParseError> {
    let external_id = text_at(m, "id").ok_or_else(|| missing("messages[].id"))?;
    let timestamp = m
        .get("timestamp")
        .and_then(unix_seconds)
        .ok_or_else(|| missing("messages[].timestamp"))?;
    let kind_name = text_at(m, "type").ok_or_else(|| missing("messages[].type"))?;
    let from = text_at(m, "from");
    // The contact entry for this sender: matched by wa_id, else the only one.
    let contact = contacts
        .iter()
        .find(|c| from.is_some() && str_at(c, "wa_id") == from.as_deref())
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let sender_user_id =
        text_at(m, "from_user_id").or_else(|| contact.and_then(|c| text_at(c, "user_id")));
    let sender_phone = from.as_deref().and_then(|f| Phone::try_from(f).ok());
    // Users with a username may come without a number (2026): key the chat on the BSUID.
    let chat_id = match (&sender_phone, &from, &sender_user_id) {
        (Some(p), _, _) => p.as_str().to_owned(),
        (None, _, Some(u)) => u.clone(),
        (None, Some(f), None) => f.clone(),
        (None, None, None) => return Err(missing("messages[].from")),
    };
    let sender_name = contact
        .and_then(|c| c.get("profile"))
        .and_then(|p| str_at(p, "name"))
        .and_then(super::clean_name);
    let quoted_external_id = m.get("context").and_then(|c| text_at(c, "id"));
    // Edits and revokes change an earlier message (`edit.original_message_id`).
    if kind_name == "edit" || kind_name == "revoke" {
        let node = m.get(&kind_name).unwrap_or(&Value::Null);
        let Some(target) = text_at(node, "original_message_id") else {
            return Ok(InboundEvent::Ignored {
                event: format!("messages.{kind_name}"),
            });
        };
        let change = if kind_name == "revoke" {
            Revision::Deleted
        } else {
            let inner = node.get("message").unwrap_or(&Value::Null);
            let text = match str_at(inner, "type").map(|t| parse_kind(t, inner)) {
                Some(MessageKind::Text { body }) => Some(body),
                Some(MessageKind::Media { caption, .. }) => caption,
                _ => None,
            };
            match text {
                Some(text) => Revision::Edited { text },
                None => {
                    return Ok(InboundEvent::Ignored {
                        event: "messages.edit".into(),
                    });
                }
            }
        };
        return Ok(InboundEvent::Revision(MessageRevision {
            account: account.to_owned(),
            target_external_id: target,
            change,
            timestamp: Some(timestamp),
        }));
    }
    let referral = m.get("referral").map(|r| Referral {
        headline: text_at(r, "headline"),
        body: text_at(r, "body"),
        source_type: text_at(r, "source_type"),
        source_url: text_at(r, "source_url"),
        source_id: text_at(r, "source_id"),
    });

    Ok(InboundEvent::Message(InboundMessage {
        account: account.to_owned(),
        external_id,
        chat_id,
        is_group: false,
        sender_phone,
        sender_lid: None,
        sender_user_id,
        sender_name,
        from_me: false,
        echo: false,
        timestamp,
        kind: parse_kind(&kind_name, m),
        quoted_external_id,
        referral,
    }))
}

fn parse_kind(kind: &str, m: &Value) -> MessageKind {
    let node = m.get(kind).unwrap_or(&Value::Null);
    let unsupported = || MessageKind::Unsupported { kind: kind.into() };
    let media = |media: MediaKind| match text_at(node, "id") {
        Some(id) => MessageKind::Media {
            media,
            caption: text_at(node, "caption"),
            mime: text_at(node, "mime_type"),
            filename: text_at(node, "filename"),
            source: MediaSource::MetaId { id },
        },
        None => unsupported(),
    };
    match kind {
        "text" => match str_at(node, "body") {
            Some(body) => MessageKind::Text { body: body.into() },
            None => unsupported(),
        },
        "image" => media(MediaKind::Image),
        "video" => media(MediaKind::Video),
        "document" => media(MediaKind::Document),
        "sticker" => media(MediaKind::Sticker),
        "audio" => media(MediaKind::Audio {
            voice: node.get("voice").and_then(Value::as_bool).unwrap_or(false),
        }),
        "location" => match (number_at(node, "latitude"), number_at(node, "longitude")) {
            (Some(lat), Some(lng)) => MessageKind::Location {
                lat,
                lng,
                name: text_at(node, "name"),
                address: text_at(node, "address"),
            },
            _ => unsupported(),
        },
        "contacts" => MessageKind::Contacts {
            entries: node
                .as_array()
                .map(|cs| cs.iter().map(shared_contact).collect())
                .unwrap_or_default(),
        },
        "reaction" => match text_at(node, "message_id") {
            Some(target) => MessageKind::Reaction {
                target_external_id: target,
                // No (or an empty) emoji means the reaction was removed.
                emoji: text_at(node, "emoji"),
            },
            None => unsupported(),
        },
        "button" => match (text_at(node, "payload"), text_at(node, "text")) {
            (id, Some(title)) => MessageKind::ButtonReply {
                id: id.unwrap_or_else(|| title.clone()),
                title,
                description: None,
                payload: None,
            },
            _ => unsupported(),
        },
        "interactive" => {
            let reply_type = str_at(node, "type").unwrap_or_default();
            let reply = node.get(reply_type).unwrap_or(&Value::Null);
            if reply_type == "nfm_reply" {
                // A completed WhatsApp Flow: `body` is what the customer saw ("Sent"),
                // `response_json` the answers, `name` the flow.
                let payload = text_at(reply, "response_json");
                match (text_at(reply, "body"), text_at(reply, "name"), payload) {
                    (title, id, payload) if title.is_some() || payload.is_some() => {
                        let title = title.unwrap_or_else(|| "Flow".into());
                        MessageKind::ButtonReply {
                            id: id.unwrap_or_else(|| title.clone()),
                            title,
                            description: None,
                            payload,
                        }
                    }
                    _ => unsupported(),
                }
            } else {
                match (text_at(reply, "id"), text_at(reply, "title")) {
                    (Some(id), Some(title)) => MessageKind::ButtonReply {
                        id,
                        title,
                        description: text_at(reply, "description"),
                        payload: None,
                    },
                    _ => unsupported(),
                }
            }
        }
        "order" => MessageKind::Order {
            catalog_id: text_at(node, "catalog_id"),
            text: text_at(node, "text"),
            items: node
                .get("product_items")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|i| {
                            Some(OrderItem {
                                product_retailer_id: text_at(i, "product_retailer_id")?,
                                quantity: number_at(i, "quantity"),
                                item_price: number_at(i, "item_price"),
                                currency: text_at(i, "currency"),
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        },
        "system" => MessageKind::System {
            event: text_at(node, "type").unwrap_or_else(|| "system".into()),
            body: text_at(node, "body"),
            new_phone: str_at(node, "wa_id").and_then(|w| Phone::try_from(w).ok()),
        },
        _ => unsupported(),
    }
}

fn shared_contact(c: &Value) -> SharedContact {
    let name = c.get("name").and_then(|n| {
        text_at(n, "formatted_name").or_else(|| {
            let parts: Vec<String> = ["first_name", "last_name"]
                .iter()
                .filter_map(|k| text_at(n, k))
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    });
    let mut phones: Vec<Phone> = Vec::new();
    for p in c
        .get("phones")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let parsed = str_at(p, "wa_id")
            .and_then(|w| Phone::try_from(w).ok())
            .or_else(|| str_at(p, "phone").and_then(|v| Phone::try_from(v).ok()));
        if let Some(phone) = parsed
            && !phones.contains(&phone)
        {
            phones.push(phone);
        }
    }
    SharedContact { name, phones }
}

fn parse_status(account: &str, s: &Value) -> Result<InboundEvent, ParseError> {
    let external_id = text_at(s, "id").ok_or_else(|| missing("statuses[].id"))?;
    let status = match str_at(s, "status").ok_or_else(|| missing("statuses[].status"))? {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        // "deleted", "warning", "played"… nothing to track.
        _ => {
            return Ok(InboundEvent::Ignored {
                event: "messages.status".into(),
            });
        }
    };
    let error = s
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .map(|e| StatusError {
            code: e.get("code").and_then(Value::as_i64),
            message: super::redact_reason(
                &text_at(e, "title")
                    .or_else(|| text_at(e, "message"))
                    .unwrap_or_else(|| "failed".into()),
            ),
        });
    Ok(InboundEvent::Status(StatusUpdate {
        account: account.to_owned(),
        external_id,
        status,
        timestamp: s.get("timestamp").and_then(unix_seconds),
        error,
    }))
}

// ---------------------------------------------------------------------------------------
// Webhook authentication
// ---------------------------------------------------------------------------------------

/// The header Meta signs every notification with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Checks `X-Hub-Signature-256: sha256=<hex>` = HMAC-SHA256(app secret, raw body), in
/// constant time, over the bytes exactly as received (before any JSON parsing).
pub fn verify_signature(app_secret: &[u8], raw_body: &[u8], header_value: Option<&str>) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_sig) = header_value.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret) else {
        return false;
    };
    mac.update(raw_body);
    // verify_slice compares in constant time and refuses a wrong length.
    mac.verify_slice(&given).is_ok()
}

/// The GET handshake Meta makes when the callback URL is saved: the challenge to echo back
/// (as a text/plain 200) when `hub.mode` is `subscribe` and `hub.verify_token` matches;
/// otherwise `None` (answer 403).
pub fn verify_handshake(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Option<String> {
    if expected_token.is_empty() || mode != Some("subscribe") {
        return None;
    }
    let token = token?;
    if !bool::from(token.as_bytes().ct_eq(expected_token.as_bytes())) {
        return None;
    }
    // Meta sends a number; echo nothing that could be markup.
    let challenge = challenge?;
    let plausible = !challenge.is_empty()
        && challenge.len() <= 128
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then(|| challenge.to_owned())
}

// ---------------------------------------------------------------------------------------
// REST client (§2.4, §2.6)
// ---------------------------------------------------------------------------------------

/// The Graph API version we call unless configured otherwise.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com/v21.0";

/// Graph error codes that mean "not now" rather than "never": rate limits (4, 80007,
/// 130429 throughput, 131048 spam limit, 131056 same user too often) and Meta-side
/// trouble (1, 2, 131000, 131016, 133004).
const RETRYABLE_CODES: &[i64] = &[
    1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004,
];

/// One Cloud API business number, authenticated by a bearer access token.
#[derive(Clone)]
pub struct MetaClient {
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
pub struct MessageTemplate {
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, …
    pub status: String,
    pub category: Option<String>,
    /// Header/body/footer/buttons as Meta describes them.
    pub components: Value,
}

impl MessageTemplate {
    /// The body text with its `{{1}}` placeholders.
    pub fn body_text(&self) -> Option<&str> {
        self.components
            .as_array()?
            .iter()
            .find(|c| str_at(c, "type").is_some_and(|t| t.eq_ignore_ascii_case("BODY")))
            .and_then(|c| str_at(c, "text"))
    }
}

impl MetaClient {
    /// `graph_base_url` includes the version, e.g. [`DEFAULT_GRAPH_BASE_URL`].
    pub fn new(
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

    pub fn with_timeouts(
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

    pub fn phone_number_id(&self) -> &str {
        &self.phone_number_id
    }

    /// Sends a free-form text (inside the 24-hour window), optionally replying to
    /// `reply_to` (a `wamid.…`). Returns the new message's `wamid.…`.
    pub async fn send_text(
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
    pub async fn send_template(
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
    pub async fn get_media(&self, media_id: &str) -> Result<DownloadedMedia, SendError> {
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
    pub async fn list_templates(&self, waba_id: &str) -> Result<Vec<MessageTemplate>, SendError> {
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod client_tests;
