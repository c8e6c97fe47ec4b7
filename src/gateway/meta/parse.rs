//! Cloud API webhooks → `InboundEvent`s (wire format: `shared/reference/whatsapp-gateways.md` §2).

use serde_json::Value;

use crate::domain::phone::Phone;
use crate::gateway::{
    DeliveryStatus, InboundEvent, InboundMessage, MediaKind, MediaSource, MessageKind,
    MessageRevision, OrderItem, ParseError, Referral, Revision, SharedContact, StatusError,
    StatusUpdate, clean_name, number_at, redact_reason, str_at, text_at, unix_seconds,
};

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/// Parses one Cloud API webhook body: every entry, change, message and status in it
/// (Meta batches), in order.
pub(crate) fn parse_webhook(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
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
        .and_then(clean_name);
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
            message: redact_reason(
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
