//! WhatsApp gateways: Evolution API v2 (Baileys) and Meta's Cloud API.
//!
//! Inbound, each gateway turns a webhook body into the one shared model below
//! ([`InboundEvent`]); outbound, each has a REST client whose errors say whether a send may
//! be retried ([`SendError`]). Nothing here touches the database or the HTTP router: the
//! webhook handlers verify (over the raw bytes), parse, store and enqueue; the jobs call the
//! clients. The wire formats are described in `shared/reference/whatsapp-gateways.md`.
//!
//! Privacy: nothing in this module logs a phone number, a name or message text, and no
//! error message carries them; [`Phone`]'s `Debug` is masked. The model's own `Debug`
//! does show message text, so never log an event with `{:?}`.

pub(crate) mod bounds;
pub(crate) mod evolution;
pub(crate) mod meta;

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::domain::{message::MessageStatus, phone::Phone};

// ---------------------------------------------------------------------------------------
// The shared inbound model
// ---------------------------------------------------------------------------------------

/// One thing a webhook told us. A single body may carry several (Meta batches).
// Events are short-lived and few per request: boxing the message buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum InboundEvent {
    Message(InboundMessage),
    Status(StatusUpdate),
    Connection(ConnectionUpdate),
    /// An earlier message was edited or deleted for everyone.
    Revision(MessageRevision),
    /// A well-formed event we do not act on (unknown event type, history sync, presence,
    /// WhatsApp status stories…). `event` names it for metrics; it never holds user data.
    Ignored {
        event: String,
    },
}

impl InboundEvent {
    /// The gateway account the event belongs to (Evolution instance name, Meta
    /// `phone_number_id`): route on it, and check it matches the channel that the URL or
    /// secret identified.
    pub(crate) fn account(&self) -> Option<&str> {
        match self {
            InboundEvent::Message(m) => Some(&m.account),
            InboundEvent::Status(s) => Some(&s.account),
            InboundEvent::Connection(c) => Some(&c.account),
            InboundEvent::Revision(r) => Some(&r.account),
            InboundEvent::Ignored { .. } => None,
        }
    }
}

/// A message in a chat: from a contact, or sent by the business (`from_me`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InboundMessage {
    /// Evolution instance name or Meta `phone_number_id`.
    pub(crate) account: String,
    /// The gateway's message id (WhatsApp `key.id` / Meta `wamid.…`); with `account` and
    /// `from_me` it is the dedupe key.
    pub(crate) external_id: String,
    /// The conversation key, also what the clients accept as a recipient: the phone digits
    /// for a 1:1 chat with a known number, else the full JID (`…@g.us` for a group,
    /// `…@lid` for a contact WhatsApp only shows by privacy id).
    pub(crate) chat_id: String,
    pub(crate) is_group: bool,
    /// The author's number when the payload carries it (never for `from_me`).
    pub(crate) sender_phone: Option<Phone>,
    /// The author's WhatsApp privacy id (`…@lid`) when the payload carries it, alongside the
    /// phone when both are known, so contacts first seen by one can be merged with the other.
    pub(crate) sender_lid: Option<String>,
    /// Meta's business-scoped user id (`user_id`, e.g. `BR.1502576394655843`), rolling out
    /// in 2026; for users with a username it may be the only identity (then `chat_id` too).
    pub(crate) sender_user_id: Option<String>,
    /// The author's profile name (pushName / Meta profile name); untrusted, user-chosen.
    pub(crate) sender_name: Option<String>,
    /// Sent by the business: typed on the linked phone, or an echo of our own send.
    pub(crate) from_me: bool,
    /// True for Evolution `send.message`: the echo of a send made through the REST API
    /// (ours), which may arrive before the send call returns. A `from_me` message that is
    /// not an echo was typed on the phone, i.e. staff replied by hand.
    pub(crate) echo: bool,
    pub(crate) timestamp: OffsetDateTime,
    pub(crate) kind: MessageKind,
    /// The message this one replies to (Evolution `contextInfo.stanzaId`, Meta `context.id`).
    pub(crate) quoted_external_id: Option<String>,
    /// The ad or post that brought the customer here (Meta `referral`, Evolution
    /// `contextInfo.externalAdReply`): click-to-WhatsApp ads.
    pub(crate) referral: Option<Referral>,
}

/// Where a click-to-WhatsApp conversation came from. Advertiser text, not the customer's.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Referral {
    pub(crate) headline: Option<String>,
    pub(crate) body: Option<String>,
    /// `ad` or `post` (Meta `source_type`).
    pub(crate) source_type: Option<String>,
    pub(crate) source_url: Option<String>,
    pub(crate) source_id: Option<String>,
}

/// One line of a catalog order (Meta `order.product_items[]`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct OrderItem {
    pub(crate) product_retailer_id: String,
    pub(crate) quantity: Option<f64>,
    pub(crate) item_price: Option<f64>,
    pub(crate) currency: Option<String>,
}

/// An edit or a "delete for everyone" of the message `target_external_id`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MessageRevision {
    pub(crate) account: String,
    pub(crate) target_external_id: String,
    pub(crate) change: Revision,
    pub(crate) timestamp: Option<OffsetDateTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Revision {
    /// The new text (or caption) that replaces the shown one.
    Edited {
        text: String,
    },
    Deleted,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MessageKind {
    Text {
        body: String,
    },
    Media {
        media: MediaKind,
        caption: Option<String>,
        mime: Option<String>,
        filename: Option<String>,
        source: MediaSource,
    },
    Location {
        lat: f64,
        lng: f64,
        name: Option<String>,
        address: Option<String>,
    },
    Contacts {
        entries: Vec<SharedContact>,
    },
    /// A reaction to `target_external_id`; `emoji: None` means the reaction was removed.
    Reaction {
        target_external_id: String,
        emoji: Option<String>,
    },
    /// A tap on a button or list row, or a submitted form: Evolution `buttonsResponseMessage`,
    /// `listResponseMessage`, `templateButtonReplyMessage`, `interactiveResponseMessage`;
    /// Meta `button`, `interactive` (`button_reply`, `list_reply`, `nfm_reply`). `title` is
    /// what the customer saw and chose; `id` is the business's own id for it (for tools).
    ButtonReply {
        id: String,
        title: String,
        description: Option<String>,
        /// A form's answers (native flow `paramsJson` / Meta `nfm_reply.response_json`).
        payload: Option<String>,
    },
    /// A vote in the poll `poll_external_id`. WhatsApp encrypts the vote itself: it is not
    /// a customer message, only a mark on the poll.
    PollVote {
        poll_external_id: String,
    },
    /// A poll the business or a customer created (Evolution `pollCreationMessage*`).
    Poll {
        name: String,
        options: Vec<String>,
    },
    /// A catalog order (Meta `order`).
    Order {
        catalog_id: Option<String>,
        text: Option<String>,
        items: Vec<OrderItem>,
    },
    /// A notice about the chat rather than a message from the customer (Meta `system`):
    /// `event` is the type (`user_changed_number`, `customer_identity_changed`, …) and
    /// `new_phone` the number a customer moved to.
    System {
        event: String,
        body: Option<String>,
        new_phone: Option<Phone>,
    },
    /// A kind we don't model (poll, order, call log, …): stored, shown to staff, not parsed.
    Unsupported {
        kind: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Image,
    /// `voice` is a push-to-talk voice note, as opposed to an audio file.
    Audio {
        voice: bool,
    },
    Video,
    Document,
    Sticker,
}

/// How to get a media file's bytes later (in a job, never in the webhook).
#[derive(Clone, PartialEq)]
pub(crate) enum MediaSource {
    /// Evolution with `webhookBase64` on: the decrypted file, base64, in the webhook itself.
    Inline { base64: String },
    /// Evolution with S3/MinIO storage: a plain URL to the decrypted file.
    Url { url: String },
    /// Evolution without either: ask `getBase64FromMediaMessage` with this key; `message` is
    /// the content node (`{"imageMessage":{…}}`) so the gateway can decrypt it even when it
    /// does not keep messages in its database.
    EvolutionKey {
        key: EvolutionKey,
        message: Option<Value>,
    },
    /// Meta: a media id to resolve (valid for 7 days after the webhook).
    MetaId { id: String },
}

impl std::fmt::Debug for MediaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaSource::Inline { base64 } => write!(f, "Inline({} base64 chars)", base64.len()),
            MediaSource::Url { .. } => f.write_str("Url(…)"),
            MediaSource::EvolutionKey { key, .. } => write!(f, "EvolutionKey({})", key.id),
            MediaSource::MetaId { id } => write!(f, "MetaId({id})"),
        }
    }
}

/// A Baileys message key, as Evolution wants it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EvolutionKey {
    pub(crate) id: String,
    pub(crate) remote_jid: String,
    pub(crate) from_me: bool,
    pub(crate) participant: Option<String>,
}

/// One contact card shared in a chat.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SharedContact {
    pub(crate) name: Option<String>,
    pub(crate) phones: Vec<Phone>,
}

/// A delivery receipt for a message the business sent.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusUpdate {
    pub(crate) account: String,
    /// The id the send returned (Evolution `keyId`, Meta `wamid.…`).
    pub(crate) external_id: String,
    pub(crate) status: DeliveryStatus,
    /// When the gateway says it happened. Evolution receipts carry no time: `None`.
    pub(crate) timestamp: Option<OffsetDateTime>,
    pub(crate) error: Option<StatusError>,
}

/// Why a send failed after it was accepted (Meta `statuses[].errors[0]`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusError {
    pub(crate) code: Option<i64>,
    pub(crate) message: String,
}

impl StatusError {
    /// The send fell outside WhatsApp's 24-hour customer-service window (Meta 131047):
    /// only a template may be sent now.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn is_outside_window(&self) -> bool {
        self.code == Some(meta::OUTSIDE_WINDOW_CODE)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    /// The stored status this receipt reports.
    pub(crate) fn status(self) -> MessageStatus {
        match self {
            DeliveryStatus::Sent => MessageStatus::Sent,
            DeliveryStatus::Delivered => MessageStatus::Delivered,
            DeliveryStatus::Read => MessageStatus::Read,
            DeliveryStatus::Failed => MessageStatus::Failed,
        }
    }

    /// Statuses only move forward: sent < delivered < read; failed is terminal (the one
    /// order is [`MessageStatus::rank`], which also places our own `queued` below these).
    pub(crate) fn rank(self) -> i16 {
        self.status().rank()
    }

    /// Whether a message at `current` (None: not yet acknowledged) should move to `self`.
    /// Receipts arrive out of order and more than once; a late `delivered` never
    /// downgrades `read`, and nothing leaves `failed`.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn advances(self, current: Option<DeliveryStatus>) -> bool {
        current.is_none_or(|c| self.rank() > c.rank())
    }

    pub(crate) fn as_str(self) -> &'static str {
        self.status().as_str()
    }
}

/// The linked WhatsApp session's state (Evolution only; Meta numbers are always connected).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConnectionUpdate {
    pub(crate) account: String,
    pub(crate) state: ConnectionState,
    /// Why it changed, e.g. `logged out (401)`; no user data.
    pub(crate) reason: Option<String>,
    /// A fresh QR code to show the tenant admin while pairing (`qrcode.updated`).
    pub(crate) qr: Option<PairingPrompt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionState {
    Open,
    Connecting,
    Closed,
}

/// What the tenant admin needs to link a phone: a QR code or an 8-character pairing code.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct PairingPrompt {
    /// The QR payload (`2@…`), to render ourselves.
    pub(crate) qr_code: Option<String>,
    /// The QR as a PNG data URL (`data:image/png;base64,…`), as Evolution renders it.
    pub(crate) qr_png_data_url: Option<String>,
    /// The code to type on the phone ("link with phone number").
    pub(crate) pairing_code: Option<String>,
}

impl std::fmt::Debug for PairingPrompt {
    // The codes grant a session on the tenant's WhatsApp: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingPrompt")
            .field("qr_code", &self.qr_code.as_ref().map(|_| "…"))
            .field(
                "qr_png_data_url",
                &self.qr_png_data_url.as_ref().map(|_| "…"),
            )
            .field("pairing_code", &self.pairing_code.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A webhook body we can't understand. The message names the field, never its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ParseError(String);

impl ParseError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        ParseError(msg.into())
    }

    pub(crate) fn json(gateway: &str, e: &serde_json::Error) -> Self {
        // serde_json's own messages can quote the offending value: keep only where it was.
        ParseError(format!(
            "{gateway}: invalid JSON ({:?}) at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}

// ---------------------------------------------------------------------------------------
// Outbound: errors, media, HTTP
// ---------------------------------------------------------------------------------------

/// The outcome of a failed gateway call, classified for the send job (DESIGN.md "Sends").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// Not accepted and safe to try again later: 5xx, 429, a rate-limit code, or a
    /// connection that failed before the request was sent.
    #[error("gateway unavailable, retry later: {reason}")]
    Retryable { status: Option<u16>, reason: String },
    /// Refused (4xx): retrying the same request will fail again.
    #[error("gateway rejected the request: {reason}")]
    Rejected {
        status: u16,
        code: Option<i64>,
        reason: String,
    },
    /// Refused because the 24-hour customer-service window is closed (Meta 131047):
    /// only an approved template can reach this user now.
    #[error("outside the 24-hour window: {reason}")]
    OutsideWindow { reason: String },
    /// We can't know whether the gateway acted (timeout, connection dropped after the
    /// request was sent, unreadable success response). A send in this state must never be
    /// resent automatically.
    #[error("outcome unknown: {reason}")]
    Unknown { reason: String },
}

impl SendError {
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// Classifies a transport error. A failure to connect happened before anything was
    /// sent; anything later (timeout, reset, broken body) leaves the outcome unknown.
    pub(crate) fn from_transport(e: reqwest::Error) -> SendError {
        let e = e.without_url();
        if e.is_builder() {
            SendError::Rejected {
                status: 0,
                code: None,
                reason: "the request could not be built".into(),
            }
        } else if e.is_connect() {
            SendError::Retryable {
                status: None,
                reason: "could not connect to the gateway".into(),
            }
        } else if e.is_timeout() {
            SendError::Unknown {
                reason: "the gateway did not answer in time".into(),
            }
        } else {
            SendError::Unknown {
                reason: "the connection failed during the request".into(),
            }
        }
    }
}

/// A media file fetched from a gateway.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DownloadedMedia {
    pub(crate) bytes: Vec<u8>,
    pub(crate) mime: Option<String>,
    pub(crate) filename: Option<String>,
}

impl std::fmt::Debug for DownloadedMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadedMedia")
            .field("bytes", &self.bytes.len())
            .field("mime", &self.mime)
            .finish_non_exhaustive()
    }
}

/// Timeouts for a gateway client. Sends are synchronous on Evolution (they return after
/// WhatsApp accepted the message, after any typing delay), so the request timeout is long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// The largest media file we download (WhatsApp documents go up to 100 MB).
pub(crate) const MAX_MEDIA_BYTES: usize = 100 * 1024 * 1024;

/// An HTTP client for one gateway. Redirects are not followed: Evolution's `apikey`
/// header would follow a redirect to another host.
pub(crate) fn http_client(timeouts: Timeouts) -> Result<reqwest::Client, reqwest::Error> {
    http_client_from(reqwest::Client::builder(), timeouts)
}

/// `http_client` on top of a builder that already restricts where it may connect.
pub(crate) fn http_client_from(
    builder: reqwest::ClientBuilder,
    timeouts: Timeouts,
) -> Result<reqwest::Client, reqwest::Error> {
    builder
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sigmaai/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Reads a response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, SendError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(SendError::Rejected {
            status: resp.status().as_u16(),
            code: None,
            reason: "media file too large".into(),
        });
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(SendError::from_transport)? {
        if out.len() + chunk.len() > limit {
            return Err(SendError::Rejected {
                status: resp.status().as_u16(),
                code: None,
                reason: "media file too large".into(),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A client was configured with something unusable (the message names what, not its value).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid gateway client configuration: {0}")]
pub(crate) struct ClientConfigError(&'static str);

/// An http(s) base URL that paths can be appended to.
pub(crate) fn parse_base_url(raw: &str) -> Result<Url, ClientConfigError> {
    let url = Url::parse(raw.trim()).map_err(|_| ClientConfigError("base URL is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.cannot_be_a_base()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(ClientConfigError(
            "base URL must be http(s) without query or fragment",
        ));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded.
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// A header value that reqwest and `http` never print.
pub(crate) fn sensitive_header(
    value: &str,
) -> Result<reqwest::header::HeaderValue, ClientConfigError> {
    if value.trim().is_empty() {
        return Err(ClientConfigError("credential is empty"));
    }
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| ClientConfigError("credential has characters a header can't carry"))?;
    v.set_sensitive(true);
    Ok(v)
}

/// The largest JSON response we read (Evolution returns media as base64 in JSON).
pub(crate) const MAX_RESPONSE_BYTES: usize = MAX_MEDIA_BYTES / 3 * 4 + 1024 * 1024;

/// Replaces runs of 7+ digits (phone numbers, JIDs) in a gateway's error text, and bounds
/// its length, so a reason can be stored and logged.
pub(crate) fn redact_reason(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 7 {
            out.push_str("[number]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    if out.chars().count() > 300 {
        out = out.chars().take(300).collect::<String>() + "…";
    }
    out
}

// ---------------------------------------------------------------------------------------
// JSON helpers shared by the parsers: they name fields, never values.
// ---------------------------------------------------------------------------------------

pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A non-empty string field.
pub(crate) fn text_at(v: &Value, key: &str) -> Option<String> {
    str_at(v, key).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Unix seconds given as a number, a numeric string or a protobuf Long `{low, high}`.
pub(crate) fn unix_seconds(v: &Value) -> Option<OffsetDateTime> {
    let secs = match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        Value::Object(o) => {
            let low = o.get("low")?.as_i64()?;
            let high = o.get("high").and_then(Value::as_i64).unwrap_or(0);
            Some((high << 32) | (low & 0xffff_ffff))
        }
        _ => None,
    }?;
    OffsetDateTime::from_unix_timestamp(secs).ok()
}

/// A display name as we keep it: see [`bounds::clean_name`] (bidi overrides, isolates and
/// control characters removed, so a push name cannot reverse the text around it in the
/// portal; spaces collapsed; capped). `None` when nothing visible is left.
pub(crate) fn clean_name(raw: &str) -> Option<String> {
    bounds::clean_name(raw)
}

/// A coordinate given as a number or a numeric string.
pub(crate) fn number_at(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Phone numbers in a vCard: the `waid=` parameter WhatsApp adds, else the TEL value.
pub(crate) fn vcard_phones(vcard: &str) -> Vec<Phone> {
    let mut phones = Vec::new();
    for line in vcard.lines() {
        let line = line.trim();
        let Some((params, value)) = line.split_once(':') else {
            continue;
        };
        let name = params.rsplit('.').next().unwrap_or(params); // "item1.TEL;…"
        if !name.to_ascii_uppercase().starts_with("TEL") {
            continue;
        }
        let waid = params
            .split(';')
            .find_map(|p| p.strip_prefix("waid=").or_else(|| p.strip_prefix("WAID=")));
        let parsed = waid
            .and_then(|w| Phone::try_from(w).ok())
            .or_else(|| Phone::try_from(value).ok());
        if let Some(p) = parsed
            && !phones.contains(&p)
        {
            phones.push(p);
        }
    }
    phones
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rank_only_moves_forward() {
        use DeliveryStatus::*;
        assert!(Sent.rank() < Delivered.rank());
        assert!(Delivered.rank() < Read.rank());
        assert!(Sent.advances(None));
        assert!(Delivered.advances(Some(Sent)));
        assert!(
            Read.advances(Some(Sent)),
            "read may arrive before delivered"
        );
        assert!(
            !Delivered.advances(Some(Read)),
            "a late delivered never downgrades read"
        );
        assert!(!Sent.advances(Some(Sent)), "duplicates don't move it");
        assert!(Failed.advances(Some(Sent)));
        for s in [Sent, Delivered, Read, Failed] {
            assert!(!s.advances(Some(Failed)), "failed is terminal ({s:?})");
        }
    }

    #[test]
    fn redact_reason_hides_numbers_and_bounds_length() {
        assert_eq!(
            redact_reason(r#"[{"jid":"5511988887777@s.whatsapp.net","exists":false}]"#),
            r#"[{"jid":"[number]@s.whatsapp.net","exists":false}]"#
        );
        assert_eq!(redact_reason("(#131047) code 400"), "(#131047) code 400");
        assert!(redact_reason(&"x".repeat(1000)).chars().count() <= 301);
    }

    #[test]
    fn unix_seconds_accepts_numbers_strings_and_longs() {
        let t = OffsetDateTime::from_unix_timestamp(1_760_000_000).unwrap();
        assert_eq!(unix_seconds(&serde_json::json!(1_760_000_000)), Some(t));
        assert_eq!(unix_seconds(&serde_json::json!("1760000000")), Some(t));
        assert_eq!(
            unix_seconds(&serde_json::json!({"low": 1_760_000_000, "high": 0, "unsigned": true})),
            Some(t)
        );
        assert_eq!(unix_seconds(&serde_json::json!("soon")), None);
    }

    #[test]
    fn clean_name_drops_bidi_overrides() {
        assert_eq!(
            clean_name("Ana\u{202E}lanigiro\u{202C} Souza").as_deref(),
            Some("Analanigiro Souza")
        );
        assert_eq!(clean_name("\u{2067}\u{2069} \n").as_deref(), None);
        assert_eq!(clean_name("José 😀").as_deref(), Some("José 😀"));
    }

    #[test]
    fn vcard_phones_prefer_waid() {
        let vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Clínica Sorriso\nitem1.TEL;waid=5511944443333:+55 11 94444-3333\nitem1.X-ABLabel:Celular\nTEL;type=CELL:+1 (555) 078-3881\nEND:VCARD";
        let phones: Vec<_> = vcard_phones(vcard)
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        assert_eq!(phones, ["5511944443333", "15550783881"]);
    }
}
