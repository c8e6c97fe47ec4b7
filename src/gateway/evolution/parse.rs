//! Evolution webhooks → `InboundEvent`s (wire format: `shared/reference/whatsapp-gateways.md` §1).

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::domain::phone::Phone;
use crate::gateway::{
    ConnectionState, ConnectionUpdate, DeliveryStatus, EvolutionKey, InboundEvent, InboundMessage,
    MediaKind, MediaSource, MessageKind, MessageRevision, PairingPrompt, ParseError, Referral,
    Revision, SharedContact, StatusUpdate, str_at, text_at, unix_seconds, vcard_phones,
};

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Parses one Evolution webhook body (instance or global webhook, either event spelling).
///
/// Unknown events and message types come back as `Ignored` / `Unsupported`; only a body
/// that is not JSON, or lacks what identifies a message (key id, chat, direction, time),
/// is an error.
pub(crate) fn parse_webhook(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::json("evolution", &e))?;
    if !root.is_object() {
        return Err(ParseError::new("evolution: body is not a JSON object"));
    }
    let event = str_at(&root, "event")
        .map(normalize_event)
        .ok_or_else(|| missing("event"))?;
    let data = root.get("data").unwrap_or(&Value::Null);
    let instance = || {
        text_at(&root, "instance")
            .or_else(|| text_at(data, "instance"))
            .ok_or_else(|| missing("instance"))
    };
    match event.as_str() {
        "messages.upsert" => each(data, |d| parse_message(&instance()?, d, false)),
        "send.message" => each(data, |d| parse_message(&instance()?, d, true)),
        "messages.update" => each(data, |d| parse_status(&instance()?, d)),
        // `data` is the protocol message itself (`{key, type, editedMessage, timestampMs}`).
        "messages.edited" => each(data, |d| {
            let node = protocol_node(d).unwrap_or(d);
            Ok(revision(&instance()?, node, d.get("messageTimestamp")))
        }),
        // `data` is the Baileys key of the message deleted for everyone.
        "messages.delete" => each(data, |d| {
            let key = d.get("key").unwrap_or(d);
            Ok(match text_at(key, "id") {
                Some(id) => InboundEvent::Revision(MessageRevision {
                    account: instance()?,
                    target_external_id: id,
                    change: Revision::Deleted,
                    timestamp: None,
                }),
                None => InboundEvent::Ignored {
                    event: "messages.delete".into(),
                },
            })
        }),
        "connection.update" => Ok(vec![parse_connection(instance()?, data)?]),
        "qrcode.updated" => Ok(vec![parse_qrcode(instance()?, data)]),
        _ => Ok(vec![InboundEvent::Ignored { event }]),
    }
}

/// `MESSAGES_UPSERT` (subscription name), `messages.upsert` (payload) and
/// `messages-upsert` (by-events URL suffix) all become `messages.upsert`.
fn normalize_event(raw: &str) -> String {
    raw.trim()
        .chars()
        .take(64)
        .map(|c| match c {
            '_' | '-' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn missing(field: &str) -> ParseError {
    ParseError::new(format!("evolution: missing or invalid {field}"))
}

/// `data` is one object, but tolerate an array of them.
fn each(
    data: &Value,
    mut parse: impl FnMut(&Value) -> Result<InboundEvent, ParseError>,
) -> Result<Vec<InboundEvent>, ParseError> {
    match data {
        Value::Array(items) => items.iter().map(parse).collect(),
        Value::Object(_) => Ok(vec![parse(data)?]),
        _ => Err(missing("data")),
    }
}

/// A JID, sorted by what it tells about a person.
enum Jid {
    Phone(Phone),
    /// `<digits>@lid`, device suffix removed.
    Lid(String),
    Other,
}

fn classify_jid(raw: &str) -> Jid {
    let raw = raw.trim();
    if let Some((user, server)) = raw.split_once('@') {
        if server.eq_ignore_ascii_case("lid") {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            if !user.is_empty() {
                return Jid::Lid(format!("{user}@lid"));
            }
            return Jid::Other;
        }
    } else {
        // Older payloads give `senderPn` as bare digits.
        if !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Jid::Other;
        }
    }
    Phone::try_from(raw).map_or(Jid::Other, Jid::Phone)
}

/// The first phone and the first LID among candidate JID fields of `key`.
fn identity(key: &Value, fields: &[&str]) -> (Option<Phone>, Option<String>) {
    let (mut phone, mut lid) = (None, None);
    for f in fields {
        if let Some(j) = str_at(key, f) {
            match classify_jid(j) {
                Jid::Phone(p) if phone.is_none() => phone = Some(p),
                Jid::Lid(l) if lid.is_none() => lid = Some(l),
                _ => {}
            }
        }
    }
    (phone, lid)
}

fn parse_message(instance: &str, data: &Value, echo: bool) -> Result<InboundEvent, ParseError> {
    let key = data.get("key").ok_or_else(|| missing("data.key"))?;
    let external_id = text_at(key, "id").ok_or_else(|| missing("data.key.id"))?;
    let remote_jid = text_at(key, "remoteJid").ok_or_else(|| missing("data.key.remoteJid"))?;
    let from_me = key
        .get("fromMe")
        .and_then(Value::as_bool)
        .ok_or_else(|| missing("data.key.fromMe"))?;
    let timestamp = data
        .get("messageTimestamp")
        .and_then(unix_seconds)
        .ok_or_else(|| missing("data.messageTimestamp"))?;

    // WhatsApp status stories and channels are not conversations.
    let server = remote_jid.rsplit_once('@').map_or("", |(_, s)| s);
    if server.eq_ignore_ascii_case("broadcast") || server.eq_ignore_ascii_case("newsletter") {
        return Ok(InboundEvent::Ignored {
            event: format!("messages.upsert@{}", server.to_ascii_lowercase()),
        });
    }
    let is_group = server.eq_ignore_ascii_case("g.us");

    let (chat_id, sender_phone, sender_lid) = if is_group {
        let (phone, lid) = if from_me {
            (None, None)
        } else {
            identity(
                key,
                &[
                    "participant",
                    "participantAlt",
                    "participantPn",
                    "participantLid",
                ],
            )
        };
        (remote_jid.clone(), phone, lid)
    } else if from_me {
        // For our own messages the `…Alt` fields describe us, not the chat (§1.10).
        let chat = match classify_jid(&remote_jid) {
            Jid::Phone(p) => p.as_str().to_owned(),
            Jid::Lid(l) => l,
            Jid::Other => remote_jid.clone(),
        };
        (chat, None, None)
    } else {
        // Versions disagree on where the number and the LID go (§1.10): look everywhere.
        let (phone, lid) = identity(
            key,
            &[
                "remoteJid",
                "remoteJidAlt",
                "senderPn",
                "previousRemoteJid",
                "senderLid",
            ],
        );
        let chat = match (&phone, &lid) {
            (Some(p), _) => p.as_str().to_owned(),
            (None, Some(l)) => l.clone(),
            (None, None) => remote_jid.clone(),
        };
        (chat, phone, lid)
    };

    // pushName falls back to "Você" for our own messages and to the participant's number.
    let sender_name = if from_me {
        None
    } else {
        text_at(data, "pushName")
            .and_then(|n| crate::gateway::clean_name(&n))
            .filter(|t| !t.contains('@') && Phone::try_from(t.as_str()).is_err())
    };

    let message = data.get("message").filter(|m| m.is_object());
    // A revoke or an edit travelling as a message: it changes another message.
    if let Some(pm) = message.and_then(protocol_node) {
        return Ok(revision(instance, pm, data.get("messageTimestamp")));
    }
    let evo_key = EvolutionKey {
        id: external_id.clone(),
        remote_jid: remote_jid.clone(),
        from_me,
        participant: text_at(key, "participant"),
    };
    let (kind, node) = match message {
        Some(m) => parse_kind(m, str_at(data, "messageType"), &evo_key),
        None => (
            MessageKind::Unsupported {
                kind: "empty".into(),
            },
            None,
        ),
    };
    let quoted_external_id = [
        data.get("contextInfo"),
        node.and_then(|n| n.get("contextInfo")),
    ]
    .into_iter()
    .flatten()
    .find_map(|c| text_at(c, "stanzaId"));
    let referral = [
        data.get("contextInfo"),
        node.and_then(|n| n.get("contextInfo")),
    ]
    .into_iter()
    .flatten()
    .find_map(|c| c.get("externalAdReply"))
    .map(|ad| Referral {
        headline: text_at(ad, "title"),
        body: text_at(ad, "body"),
        source_type: text_at(ad, "sourceType"),
        source_url: text_at(ad, "sourceUrl"),
        source_id: text_at(ad, "sourceId"),
    })
    .filter(|r| r.headline.is_some() || r.body.is_some() || r.source_url.is_some());

    Ok(InboundEvent::Message(InboundMessage {
        account: instance.to_owned(),
        external_id,
        chat_id,
        is_group,
        sender_phone,
        sender_lid,
        sender_user_id: None,
        sender_name,
        from_me,
        echo,
        timestamp,
        kind,
        quoted_external_id,
        referral,
    }))
}

/// The `protocolMessage` of a message node (plain, inside `editedMessage`, or inside a
/// wrapper such as `ephemeralMessage`), if it is one.
fn protocol_node(message: &Value) -> Option<&Value> {
    let mut m = message;
    for _ in 0..4 {
        if let Some(pm) = m.get("protocolMessage").filter(|p| p.is_object()) {
            return Some(pm);
        }
        m = ["editedMessage", "message"]
            .iter()
            .chain(WRAPPERS)
            .find_map(|w| match *w {
                "message" => m.get("message").filter(|x| x.is_object()),
                w => m.get(w).and_then(|x| x.get("message")),
            })?;
    }
    None
}

/// What a `protocolMessage` does: REVOKE (type 0) deletes `key.id` for everyone,
/// MESSAGE_EDIT (type 14) replaces its text; the other types (ephemeral settings, history
/// sync, key shares…) are WhatsApp housekeeping. Enums arrive as numbers or as names
/// (protobufjs `toJSON`).
fn revision(instance: &str, pm: &Value, fallback_ts: Option<&Value>) -> InboundEvent {
    let ignored = |what: &str| InboundEvent::Ignored {
        event: format!("protocolMessage:{what}"),
    };
    let Some(target) = pm.get("key").and_then(|k| text_at(k, "id")) else {
        return ignored("no key");
    };
    let edited = pm.get("editedMessage").filter(|m| m.is_object());
    let kind = match pm.get("type") {
        Some(Value::Number(n)) => n.as_u64().map(|n| n.to_string()),
        Some(Value::String(s)) => Some(s.to_ascii_uppercase()),
        _ => None,
    };
    let change = match (kind.as_deref(), edited) {
        (Some("0" | "REVOKE"), _) | (None, None) => Revision::Deleted,
        (Some("14" | "MESSAGE_EDIT") | None, Some(m)) => {
            let probe = EvolutionKey {
                id: target.clone(),
                remote_jid: String::new(),
                from_me: false,
                participant: None,
            };
            let text = match parse_kind(m, None, &probe).0 {
                MessageKind::Text { body } => Some(body),
                MessageKind::Media { caption, .. } => caption,
                _ => None,
            };
            match text {
                Some(text) => Revision::Edited { text },
                None => return ignored("edit without text"),
            }
        }
        (Some(other), _) => return ignored(other.chars().take(48).collect::<String>().as_str()),
    };
    // `timestampMs` is milliseconds (a number, a string or a Long); else the envelope's time.
    let timestamp = pm
        .get("timestampMs")
        .and_then(|v| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Object(o) => {
                let low = o.get("low")?.as_i64()?;
                let high = o.get("high").and_then(Value::as_i64).unwrap_or(0);
                Some((high << 32) | (low & 0xffff_ffff))
            }
            _ => None,
        })
        .and_then(|ms| OffsetDateTime::from_unix_timestamp(ms / 1000).ok())
        .or_else(|| fallback_ts.and_then(unix_seconds));
    InboundEvent::Revision(MessageRevision {
        account: instance.to_owned(),
        target_external_id: target,
        change,
        timestamp,
    })
}

/// Wrappers Evolution leaves in place; the content is at `<wrapper>.message`.
const WRAPPERS: &[&str] = &[
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
];

/// Keys of `message` that are metadata, not content.
const NOT_CONTENT: &[&str] = &["messageContextInfo", "base64", "mediaUrl", "speechToText"];

/// The message kind, and the content node (for its `contextInfo`).
fn parse_kind<'a>(
    message: &'a Value,
    message_type: Option<&str>,
    key: &EvolutionKey,
) -> (MessageKind, Option<&'a Value>) {
    // base64 / mediaUrl sit beside the content node at the top of `message`.
    let top = message;
    let mut message = message;
    for _ in 0..3 {
        match WRAPPERS
            .iter()
            .find_map(|w| message.get(w).and_then(|x| x.get("message")))
        {
            Some(inner) => message = inner,
            None => break,
        }
    }

    if let Some(body) = str_at(message, "conversation") {
        return (MessageKind::Text { body: body.into() }, None);
    }
    if let Some(node) = message.get("extendedTextMessage")
        && let Some(body) = str_at(node, "text")
    {
        return (MessageKind::Text { body: body.into() }, Some(node));
    }

    let media = [
        ("imageMessage", MediaKind::Image),
        ("videoMessage", MediaKind::Video),
        ("ptvMessage", MediaKind::Video),
        ("audioMessage", MediaKind::Audio { voice: false }),
        ("documentMessage", MediaKind::Document),
        ("stickerMessage", MediaKind::Sticker),
    ];
    for (name, media) in media {
        let Some(node) = message.get(name).filter(|n| n.is_object()) else {
            continue;
        };
        let media = match media {
            MediaKind::Audio { .. } => MediaKind::Audio {
                voice: node.get("ptt").and_then(Value::as_bool).unwrap_or(false),
            },
            other => other,
        };
        let source = if let Some(b) = text_at(top, "base64") {
            MediaSource::Inline { base64: b }
        } else if let Some(url) = text_at(top, "mediaUrl") {
            MediaSource::Url { url }
        } else {
            MediaSource::EvolutionKey {
                key: key.clone(),
                message: Some(json!({ name: node })),
            }
        };
        let kind = MessageKind::Media {
            media,
            caption: text_at(node, "caption"),
            mime: text_at(node, "mimetype"),
            filename: text_at(node, "fileName"),
            source,
        };
        return (kind, Some(node));
    }

    for name in ["locationMessage", "liveLocationMessage"] {
        if let Some(node) = message.get(name) {
            let (Some(lat), Some(lng)) = (
                crate::gateway::number_at(node, "degreesLatitude"),
                crate::gateway::number_at(node, "degreesLongitude"),
            ) else {
                return unsupported(name);
            };
            let kind = MessageKind::Location {
                lat,
                lng,
                name: text_at(node, "name"),
                address: text_at(node, "address"),
            };
            return (kind, Some(node));
        }
    }

    if let Some(node) = message.get("contactMessage") {
        let entries = vec![shared_contact(node)];
        return (MessageKind::Contacts { entries }, Some(node));
    }
    if let Some(node) = message.get("contactsArrayMessage") {
        let entries = node
            .get("contacts")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().map(shared_contact).collect())
            .unwrap_or_default();
        return (MessageKind::Contacts { entries }, Some(node));
    }

    if let Some(node) = message.get("reactionMessage") {
        let Some(target) = node.get("key").and_then(|k| text_at(k, "id")) else {
            return unsupported("reactionMessage");
        };
        let kind = MessageKind::Reaction {
            target_external_id: target,
            // An empty reaction text removes the reaction.
            emoji: text_at(node, "text"),
        };
        return (kind, None);
    }

    if let Some((kind, node)) = interactive_reply(message) {
        return (kind, Some(node));
    }

    if let Some(node) = message.get("pollUpdateMessage") {
        return match node
            .get("pollCreationMessageKey")
            .and_then(|k| text_at(k, "id"))
        {
            Some(id) => (
                MessageKind::PollVote {
                    poll_external_id: id,
                },
                None,
            ),
            None => unsupported("pollUpdateMessage"),
        };
    }
    for name in [
        "pollCreationMessage",
        "pollCreationMessageV2",
        "pollCreationMessageV3",
        "pollCreationMessageV5",
    ] {
        if let Some(node) = message.get(name).filter(|n| n.is_object()) {
            let options = node
                .get("options")
                .and_then(Value::as_array)
                .map(|o| o.iter().filter_map(|x| text_at(x, "optionName")).collect())
                .unwrap_or_default();
            let kind = MessageKind::Poll {
                name: text_at(node, "name").unwrap_or_default(),
                options,
            };
            return (kind, Some(node));
        }
    }

    let kind = message_type
        .filter(|t| !t.is_empty() && *t != "unknown" && !NOT_CONTENT.contains(t))
        .map(str::to_owned)
        .or_else(|| {
            message.as_object().and_then(|o| {
                o.keys()
                    .find(|k| !NOT_CONTENT.contains(&k.as_str()))
                    .cloned()
            })
        })
        .unwrap_or_else(|| "unknown".into());
    (MessageKind::Unsupported { kind }, None)
}

/// A tap on a button or a list row, or a submitted native-flow form (WAProto
/// `ButtonsResponseMessage`, `ListResponseMessage`, `TemplateButtonReplyMessage`,
/// `InteractiveResponseMessage`): the shown title and the business's id for it.
fn interactive_reply(message: &Value) -> Option<(MessageKind, &Value)> {
    let reply = |id: Option<String>, title: Option<String>, description, payload| {
        let title = title.or_else(|| id.clone())?;
        Some(MessageKind::ButtonReply {
            id: id.unwrap_or_else(|| title.clone()),
            title,
            description,
            payload,
        })
    };
    if let Some(n) = message.get("buttonsResponseMessage") {
        let kind = reply(
            text_at(n, "selectedButtonId"),
            text_at(n, "selectedDisplayText"),
            None,
            None,
        )?;
        return Some((kind, n));
    }
    if let Some(n) = message.get("listResponseMessage") {
        let id = n
            .get("singleSelectReply")
            .and_then(|r| text_at(r, "selectedRowId"));
        let kind = reply(id, text_at(n, "title"), text_at(n, "description"), None)?;
        return Some((kind, n));
    }
    if let Some(n) = message.get("templateButtonReplyMessage") {
        let kind = reply(
            text_at(n, "selectedId"),
            text_at(n, "selectedDisplayText"),
            None,
            None,
        )?;
        return Some((kind, n));
    }
    if let Some(n) = message.get("interactiveResponseMessage") {
        let flow = n.get("nativeFlowResponseMessage");
        let params = flow.and_then(|f| text_at(f, "paramsJson"));
        // Quick-reply buttons of a native flow carry their id inside paramsJson.
        let params_id = params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|v| text_at(&v, "id"));
        let id = params_id.or_else(|| flow.and_then(|f| text_at(f, "name")));
        let title = n.get("body").and_then(|b| text_at(b, "text"));
        let kind = reply(id, title, None, params)?;
        return Some((kind, n));
    }
    None
}

fn unsupported(kind: &str) -> (MessageKind, Option<&'static Value>) {
    (MessageKind::Unsupported { kind: kind.into() }, None)
}

fn shared_contact(node: &Value) -> SharedContact {
    SharedContact {
        name: text_at(node, "displayName"),
        phones: str_at(node, "vcard").map(vcard_phones).unwrap_or_default(),
    }
}

fn parse_status(instance: &str, data: &Value) -> Result<InboundEvent, ParseError> {
    let ignored = || {
        Ok(InboundEvent::Ignored {
            event: "messages.update".into(),
        })
    };
    let key = data.get("key");
    let external_id = text_at(data, "keyId")
        .or_else(|| key.and_then(|k| text_at(k, "id")))
        .ok_or_else(|| missing("data.keyId"))?;
    let from_me = data
        .get("fromMe")
        .or_else(|| key.and_then(|k| k.get("fromMe")))
        .and_then(Value::as_bool);
    // Receipts about messages the contact sent (our own reads) change nothing.
    if from_me == Some(false) {
        return ignored();
    }
    // String names since 2.x; numeric Baileys codes in older payloads (renderStatus.ts).
    let status = match data.get("status") {
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "SERVER_ACK" => Some(DeliveryStatus::Sent),
            "DELIVERY_ACK" => Some(DeliveryStatus::Delivered),
            "READ" | "PLAYED" => Some(DeliveryStatus::Read),
            "ERROR" => Some(DeliveryStatus::Failed),
            _ => None, // PENDING (not yet sent), DELETED, …
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(2) => Some(DeliveryStatus::Sent),
            Some(3) => Some(DeliveryStatus::Delivered),
            Some(4 | 5) => Some(DeliveryStatus::Read),
            Some(0) => Some(DeliveryStatus::Failed),
            _ => None,
        },
        _ => None,
    };
    let Some(status) = status else {
        return ignored();
    };
    Ok(InboundEvent::Status(StatusUpdate {
        account: instance.to_owned(),
        external_id,
        status,
        timestamp: None,
        error: None,
    }))
}

fn parse_connection(instance: String, data: &Value) -> Result<InboundEvent, ParseError> {
    let state = str_at(data, "state").ok_or_else(|| missing("data.state"))?;
    let code = data.get("statusReason").and_then(Value::as_u64);
    let (state, reason) = match state {
        "open" => (ConnectionState::Open, None),
        "connecting" => (ConnectionState::Connecting, None),
        "close" => (
            ConnectionState::Closed,
            Some(match code {
                Some(401) => "logged out (401)".to_owned(),
                Some(403) => "forbidden by WhatsApp (403)".to_owned(),
                Some(c) => format!("closed ({c})"),
                None => "closed".to_owned(),
            }),
        ),
        "refused" => (
            ConnectionState::Closed,
            Some(match code {
                Some(428) => "QR code attempts exhausted (428)".to_owned(),
                Some(c) => format!("refused ({c})"),
                None => "refused".to_owned(),
            }),
        ),
        _ => {
            return Ok(InboundEvent::Ignored {
                event: "connection.update".into(),
            });
        }
    };
    Ok(InboundEvent::Connection(ConnectionUpdate {
        account: instance,
        state,
        reason,
        qr: None,
    }))
}

fn parse_qrcode(instance: String, data: &Value) -> InboundEvent {
    let qr = data.get("qrcode").unwrap_or(data);
    InboundEvent::Connection(ConnectionUpdate {
        account: instance,
        state: ConnectionState::Connecting,
        reason: None,
        qr: Some(pairing_prompt(qr)),
    })
}

pub(super) fn pairing_prompt(v: &Value) -> PairingPrompt {
    PairingPrompt {
        qr_code: text_at(v, "code"),
        qr_png_data_url: text_at(v, "base64"),
        pairing_code: text_at(v, "pairingCode"),
    }
}
