use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::*;
use crate::gateway::*;
use crate::gateway::{ConnectionState, DeliveryStatus, MediaKind, MediaSource, MessageKind};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gateway/",
            $name
        ))
    };
}

/// An envelope as Evolution builds it (§1.1) around `data`.
fn envelope(event: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event": event,
        "instance": "sales-01",
        "data": data,
        "destination": "https://bot.example.com/evo",
        "date_time": "2025-10-09T09:53:20.512Z",
        "sender": "5511977776666@s.whatsapp.net",
        "server_url": "https://evo.example.com",
        "apikey": null
    }))
    .unwrap()
}

/// A `messages.upsert` 1:1 message from 5511988887777 with the given `message` node.
fn upsert(message: Value) -> Vec<u8> {
    let message_type = message
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "messageContextInfo").cloned())
        .unwrap();
    envelope(
        "messages.upsert",
        json!({
            "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0AAAA0000000000A1" },
            "pushName": "Ana",
            "status": "DELIVERY_ACK",
            "message": message,
            "messageType": message_type,
            "messageTimestamp": 1760000000,
            "instanceId": "6f1c2a8e-1b2c-4d5e-9f00-123456789abc",
            "source": "android"
        }),
    )
}

fn one(body: &[u8]) -> InboundEvent {
    let mut events = parse_webhook(body).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn message(body: &[u8]) -> InboundMessage {
    match one(body) {
        InboundEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

fn kind(body: &[u8]) -> MessageKind {
    message(body).kind
}

#[test]
fn evolution_text_from_lid_addressed_sender_2_3_7() {
    let m = message(fixture!("evolution_text_lid_2_3_7.json"));
    assert_eq!(m.account, "sales-01");
    assert_eq!(m.external_id, "3EB0C4A1F2D3E4B5A6C7");
    assert_eq!(m.chat_id, "5511988887777");
    assert!(!m.is_group);
    assert_eq!(m.sender_phone.unwrap().as_str(), "5511988887777");
    assert_eq!(m.sender_lid, None, "2.3.7 drops the LID");
    assert_eq!(m.sender_name.as_deref(), Some("Ana"));
    assert!(!m.from_me && !m.echo);
    assert_eq!(m.timestamp.unix_timestamp(), 1_760_000_000);
    assert_eq!(
        m.kind,
        MessageKind::Text {
            body: "Oi, quero um orçamento".into()
        }
    );
    assert_eq!(m.quoted_external_id, None);
}

#[test]
fn evolution_accepts_uppercase_and_kebab_event_names() {
    let body = std::str::from_utf8(fixture!("evolution_text_lid_2_3_7.json")).unwrap();
    for spelling in ["MESSAGES_UPSERT", "messages-upsert", "Messages.Upsert"] {
        let b = body.replace("\"messages.upsert\"", &format!("\"{spelling}\""));
        assert!(
            matches!(one(b.as_bytes()), InboundEvent::Message(_)),
            "{spelling}"
        );
    }
}

#[test]
fn evolution_group_image_keeps_participant_phone_and_lid_and_inline_base64() {
    let m = message(fixture!("evolution_group_image_base64.json"));
    assert!(m.is_group);
    assert_eq!(m.chat_id, "120363025555555555@g.us");
    assert_eq!(m.sender_phone.unwrap().as_str(), "5521966665555");
    assert_eq!(m.sender_lid.as_deref(), Some("180123456789012@lid"));
    assert_eq!(m.sender_name.as_deref(), Some("Bruno"));
    let MessageKind::Media {
        media,
        caption,
        mime,
        filename,
        source,
    } = m.kind
    else {
        panic!("not media")
    };
    assert_eq!(media, MediaKind::Image);
    assert_eq!(caption.as_deref(), Some("foto do produto"));
    assert_eq!(mime.as_deref(), Some("image/jpeg"));
    assert_eq!(filename, None);
    assert!(matches!(source, MediaSource::Inline { base64 } if base64.starts_with("/9j/4AAQ")));
}

#[test]
fn evolution_voice_note_is_audio_voice() {
    let k = kind(&upsert(json!({
        "audioMessage": { "mimetype": "audio/ogg; codecs=opus", "seconds": 7, "ptt": true,
                          "url": "https://mmg.whatsapp.net/x.enc", "mediaKey": "a2V5" },
        "base64": "T2dnUwACAAAAAAAAAAA="
    })));
    let MessageKind::Media {
        media,
        mime,
        source,
        ..
    } = k
    else {
        panic!("not media")
    };
    assert_eq!(media, MediaKind::Audio { voice: true });
    assert_eq!(mime.as_deref(), Some("audio/ogg; codecs=opus"));
    assert!(matches!(source, MediaSource::Inline { .. }));

    let k = kind(&upsert(
        json!({ "audioMessage": { "mimetype": "audio/mpeg", "ptt": false } }),
    ));
    assert!(matches!(
        k,
        MessageKind::Media {
            media: MediaKind::Audio { voice: false },
            ..
        }
    ));
}

#[test]
fn evolution_document_with_caption_normalized_and_wrapped() {
    // As Evolution normalizes it (documentWithCaptionMessage → documentMessage).
    let normalized = kind(&upsert(json!({
        "documentMessage": { "fileName": "nf.pdf", "mimetype": "application/pdf", "caption": "segue", "pageCount": 2 }
    })));
    // And the raw wrapper, should a version pass it through.
    let wrapped = kind(&upsert(json!({
        "documentWithCaptionMessage": { "message": { "documentMessage":
            { "fileName": "nf.pdf", "mimetype": "application/pdf", "caption": "segue", "pageCount": 2 } } }
    })));
    for k in [normalized, wrapped] {
        let MessageKind::Media {
            media,
            caption,
            mime,
            filename,
            source,
        } = k
        else {
            panic!("not media")
        };
        assert_eq!(media, MediaKind::Document);
        assert_eq!(caption.as_deref(), Some("segue"));
        assert_eq!(mime.as_deref(), Some("application/pdf"));
        assert_eq!(filename.as_deref(), Some("nf.pdf"));
        // No base64 in the webhook: fetch later by key, with the node for decryption.
        let MediaSource::EvolutionKey { key, message } = source else {
            panic!("expected a key source")
        };
        assert_eq!(key.id, "3EB0AAAA0000000000A1");
        assert_eq!(key.remote_jid, "5511988887777@s.whatsapp.net");
        assert!(!key.from_me);
        assert_eq!(
            message.unwrap()["documentMessage"]["fileName"],
            json!("nf.pdf")
        );
    }
}

#[test]
fn evolution_video_sticker_and_s3_media_url() {
    let k = kind(&upsert(json!({
        "videoMessage": { "mimetype": "video/mp4", "caption": "olha", "seconds": 12 },
        "mediaUrl": "https://s3.example.com/bucket/3EB0.mp4"
    })));
    assert!(matches!(
        k,
        MessageKind::Media { media: MediaKind::Video, caption: Some(ref c), source: MediaSource::Url { ref url }, .. }
            if c == "olha" && url.ends_with("3EB0.mp4")
    ));
    let k = kind(&upsert(
        json!({ "stickerMessage": { "mimetype": "image/webp", "isAnimated": false } }),
    ));
    assert!(matches!(
        k,
        MessageKind::Media {
            media: MediaKind::Sticker,
            caption: None,
            ..
        }
    ));
}

#[test]
fn evolution_view_once_and_ephemeral_wrappers_are_unwrapped() {
    let k = kind(&upsert(json!({
        "viewOnceMessageV2": { "message": { "imageMessage": { "mimetype": "image/jpeg", "viewOnce": true } } }
    })));
    assert!(matches!(
        k,
        MessageKind::Media {
            media: MediaKind::Image,
            ..
        }
    ));
    let k = kind(&upsert(json!({
        "ephemeralMessage": { "message": { "extendedTextMessage": { "text": "some" } } }
    })));
    assert_eq!(
        k,
        MessageKind::Text {
            body: "some".into()
        }
    );
}

#[test]
fn evolution_extended_text_reply_and_normalized_reply() {
    // Older versions: extendedTextMessage with its own contextInfo.
    let m = message(&upsert(json!({
        "extendedTextMessage": { "text": "sim, esse",
            "contextInfo": { "stanzaId": "3EB0QUOTED000000000", "participant": "5511977776666@s.whatsapp.net",
                             "quotedMessage": { "conversation": "Qual?" } } }
    })));
    assert_eq!(
        m.kind,
        MessageKind::Text {
            body: "sim, esse".into()
        }
    );
    assert_eq!(m.quoted_external_id.as_deref(), Some("3EB0QUOTED000000000"));

    // Current versions: folded into `conversation`, contextInfo at the top of `data`.
    let mut data: Value =
        serde_json::from_slice(&upsert(json!({ "conversation": "sim, esse" }))).unwrap();
    data["data"]["contextInfo"] =
        json!({ "stanzaId": "3EB0QUOTED000000001", "quotedMessage": { "conversation": "Qual?" } });
    let m = message(&serde_json::to_vec(&data).unwrap());
    assert_eq!(m.quoted_external_id.as_deref(), Some("3EB0QUOTED000000001"));
}

#[test]
fn evolution_location() {
    let k = kind(&upsert(json!({
        "locationMessage": { "degreesLatitude": -23.5613, "degreesLongitude": -46.6565,
                             "name": "Clínica Sorriso", "address": "Av. Paulista, 1000" }
    })));
    assert_eq!(
        k,
        MessageKind::Location {
            lat: -23.5613,
            lng: -46.6565,
            name: Some("Clínica Sorriso".into()),
            address: Some("Av. Paulista, 1000".into())
        }
    );
    let k = kind(&upsert(
        json!({ "locationMessage": { "name": "no coordinates" } }),
    ));
    assert_eq!(
        k,
        MessageKind::Unsupported {
            kind: "locationMessage".into()
        }
    );
}

#[test]
fn evolution_contact_and_contacts_array() {
    let card = "BEGIN:VCARD\nVERSION:3.0\nN:;Dra. Paula;;;\nFN:Dra. Paula\nitem1.TEL;waid=5511944443333:+55 11 94444-3333\nitem1.X-ABLabel:Celular\nEND:VCARD";
    let MessageKind::Contacts { entries } = kind(&upsert(
        json!({ "contactMessage": { "displayName": "Dra. Paula", "vcard": card } }),
    )) else {
        panic!("not contacts")
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name.as_deref(), Some("Dra. Paula"));
    assert_eq!(entries[0].phones[0].as_str(), "5511944443333");

    let MessageKind::Contacts { entries } = kind(&upsert(json!({ "contactsArrayMessage": {
        "displayName": "2 contatos",
        "contacts": [
            { "displayName": "Dra. Paula", "vcard": card },
            { "displayName": "Recepção", "vcard": "BEGIN:VCARD\nFN:Recepção\nTEL;type=CELL:+55 11 3333-2222\nEND:VCARD" }
        ] } })))
    else {
        panic!("not contacts")
    };
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].name.as_deref(), Some("Recepção"));
    assert_eq!(entries[1].phones[0].as_str(), "551133332222");
}

#[test]
fn evolution_reaction_and_its_removal() {
    let react = |text: &str| {
        kind(&upsert(json!({ "reactionMessage": {
            "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "id": "3EB0D1E2F3A4B5C6D7E8" },
            "text": text, "senderTimestampMs": "1760000001000" } })))
    };
    assert_eq!(
        react("👍"),
        MessageKind::Reaction {
            target_external_id: "3EB0D1E2F3A4B5C6D7E8".into(),
            emoji: Some("👍".into())
        }
    );
    assert_eq!(
        react(""),
        MessageKind::Reaction {
            target_external_id: "3EB0D1E2F3A4B5C6D7E8".into(),
            emoji: None
        }
    );
}

#[test]
fn evolution_unknown_message_type_is_unsupported() {
    let k = kind(&upsert(json!({
        "callLogMesssage": { "isVideo": false },
        "messageContextInfo": {}
    })));
    assert_eq!(
        k,
        MessageKind::Unsupported {
            kind: "callLogMesssage".into()
        }
    );
}

#[test]
fn evolution_polls_and_votes() {
    let k = kind(&upsert(json!({
        "pollCreationMessageV3": { "name": "Horário?", "options": [{ "optionName": "manhã" }, { "optionName": "tarde" }], "selectableOptionsCount": 1 },
        "messageContextInfo": {}
    })));
    assert_eq!(
        k,
        MessageKind::Poll {
            name: "Horário?".into(),
            options: vec!["manhã".into(), "tarde".into()]
        }
    );
    // WAProto PollUpdateMessage: the vote is encrypted; only the poll it belongs to is clear.
    let k = kind(&upsert(json!({
        "pollUpdateMessage": {
            "pollCreationMessageKey": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "id": "3EB0POLL" },
            "vote": { "encPayload": "c2VjcmV0", "encIv": "aXY=" },
            "senderTimestampMs": "1760000000123"
        }
    })));
    assert_eq!(
        k,
        MessageKind::PollVote {
            poll_external_id: "3EB0POLL".into()
        }
    );
}

#[test]
fn evolution_interactive_replies_keep_title_and_id() {
    let cases = [
        (
            json!({ "buttonsResponseMessage": { "selectedButtonId": "confirm_123", "selectedDisplayText": "Confirmar consulta", "type": 1 } }),
            ("confirm_123", "Confirmar consulta", None, None),
        ),
        (
            json!({ "listResponseMessage": { "title": "Terça 9h", "listType": 1, "singleSelectReply": { "selectedRowId": "slot-9" }, "description": "Dra. Paula" } }),
            ("slot-9", "Terça 9h", Some("Dra. Paula"), None),
        ),
        (
            json!({ "templateButtonReplyMessage": { "selectedId": "yes", "selectedDisplayText": "Sim", "selectedIndex": 0 } }),
            ("yes", "Sim", None, None),
        ),
        (
            json!({ "interactiveResponseMessage": { "body": { "text": "Remarcar", "format": 0 },
                "nativeFlowResponseMessage": { "name": "quick_reply", "paramsJson": "{\"id\":\"reschedule\"}", "version": 3 } } }),
            (
                "reschedule",
                "Remarcar",
                None,
                Some("{\"id\":\"reschedule\"}"),
            ),
        ),
    ];
    for (message, (id, title, description, payload)) in cases {
        assert_eq!(
            kind(&upsert(message)),
            MessageKind::ButtonReply {
                id: id.into(),
                title: title.into(),
                description: description.map(Into::into),
                payload: payload.map(Into::into),
            }
        );
    }
}

#[test]
fn evolution_revokes_and_edits_are_revisions() {
    let rev = |ev: InboundEvent| match ev {
        InboundEvent::Revision(r) => (r.target_external_id, r.change),
        other => panic!("{other:?}"),
    };
    // messages.upsert carrying a REVOKE (type 0) / an edit (type 14), numbers or names.
    for t in [json!(0), json!("REVOKE")] {
        let body = upsert(
            json!({ "protocolMessage": { "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0OLD" }, "type": t } }),
        );
        assert_eq!(rev(one(&body)), ("3EB0OLD".into(), Revision::Deleted));
    }
    for t in [json!(14), json!("MESSAGE_EDIT")] {
        let body = upsert(json!({ "editedMessage": { "message": { "protocolMessage": {
            "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0OLD" },
            "type": t, "editedMessage": { "conversation": "quinta, não quarta" }, "timestampMs": "1760000100000" } } } }));
        assert_eq!(
            rev(one(&body)),
            (
                "3EB0OLD".into(),
                Revision::Edited {
                    text: "quinta, não quarta".into()
                }
            )
        );
    }
    // messages.edited: `data` is the protocol message itself.
    let edited = envelope(
        "messages.edited",
        json!({ "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0OLD" },
                "type": "MESSAGE_EDIT", "editedMessage": { "extendedTextMessage": { "text": "novo" } }, "timestampMs": "1760000100000" }),
    );
    assert_eq!(
        rev(one(&edited)),
        (
            "3EB0OLD".into(),
            Revision::Edited {
                text: "novo".into()
            }
        )
    );
    // messages.delete: `data` is the key.
    let deleted = envelope(
        "messages.delete",
        json!({ "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0Z" }),
    );
    assert_eq!(rev(one(&deleted)), ("3EB0Z".into(), Revision::Deleted));
    // Other protocol messages are WhatsApp housekeeping, never a bubble.
    let housekeeping = upsert(
        json!({ "protocolMessage": { "key": { "id": "X" }, "type": "EPHEMERAL_SETTING", "ephemeralExpiration": 604800 } }),
    );
    assert!(matches!(one(&housekeeping), InboundEvent::Ignored { .. }));
}

fn with_key(key: Value, push_name: Value) -> Vec<u8> {
    envelope(
        "messages.upsert",
        json!({ "key": key, "pushName": push_name, "message": { "conversation": "oi" },
                "messageType": "conversation", "messageTimestamp": "1760000000" }),
    )
}

#[test]
fn evolution_lid_sender_2_3_5_keeps_both_ids() {
    let m = message(&with_key(
        json!({ "remoteJid": "180123456789012@lid", "remoteJidAlt": "5511988887777@s.whatsapp.net",
                "fromMe": false, "id": "3EB0B1", "addressingMode": "lid" }),
        json!("Ana"),
    ));
    assert_eq!(m.chat_id, "5511988887777");
    assert_eq!(m.sender_phone.unwrap().as_str(), "5511988887777");
    assert_eq!(m.sender_lid.as_deref(), Some("180123456789012@lid"));
    assert_eq!(
        m.timestamp.unix_timestamp(),
        1_760_000_000,
        "string timestamp"
    );
}

#[test]
fn evolution_lid_swap_2_4_and_sender_pn_2_3_4() {
    // 2.4.0: remoteJid = PN, remoteJidAlt = LID.
    let m = message(&with_key(
        json!({ "remoteJid": "5511988887777@s.whatsapp.net", "remoteJidAlt": "180123456789012@lid",
                "fromMe": false, "id": "3EB0B2", "addressingMode": "pn" }),
        json!("Ana"),
    ));
    assert_eq!(m.sender_phone.unwrap().as_str(), "5511988887777");
    assert_eq!(m.sender_lid.as_deref(), Some("180123456789012@lid"));
    // ≤2.3.4: remoteJid rewritten from senderPn, the LID kept in previousRemoteJid.
    let m = message(&with_key(
        json!({ "remoteJid": "5511988887777@s.whatsapp.net", "senderPn": "5511988887777@s.whatsapp.net",
                "previousRemoteJid": "180123456789012@lid", "fromMe": false, "id": "3EB0B3" }),
        json!("Ana"),
    ));
    assert_eq!(m.sender_phone.unwrap().as_str(), "5511988887777");
    assert_eq!(m.sender_lid.as_deref(), Some("180123456789012@lid"));
}

#[test]
fn evolution_lid_only_sender_has_no_phone() {
    let m = message(&with_key(
        json!({ "remoteJid": "180123456789012@lid", "fromMe": false, "id": "3EB0B4", "addressingMode": "lid" }),
        json!(null),
    ));
    assert_eq!(m.chat_id, "180123456789012@lid");
    assert_eq!(m.sender_phone, None);
    assert_eq!(m.sender_lid.as_deref(), Some("180123456789012@lid"));
    assert_eq!(m.sender_name, None);
}

#[test]
fn evolution_group_lid_participant_without_phone_and_numeric_push_name() {
    let m = message(&with_key(
        json!({ "remoteJid": "5511999999999-1600000000@g.us", "participant": "180123456789012@lid",
                "fromMe": false, "id": "3EB0B5" }),
        // Evolution falls back to the participant's number when there is no name.
        json!("5521966665555"),
    ));
    assert!(m.is_group);
    assert_eq!(m.chat_id, "5511999999999-1600000000@g.us");
    assert_eq!(m.sender_phone, None);
    assert_eq!(m.sender_lid.as_deref(), Some("180123456789012@lid"));
    assert_eq!(m.sender_name, None, "a number is not a name");
}

#[test]
fn evolution_from_me_typed_on_phone() {
    let m = message(&with_key(
        json!({ "remoteJid": "5511988887777@s.whatsapp.net", "remoteJidAlt": "199999999999999@lid",
                "fromMe": true, "id": "3EB0B6" }),
        json!("Você"),
    ));
    assert!(m.from_me);
    assert!(!m.echo, "typed on the phone, not sent through the API");
    assert_eq!(m.chat_id, "5511988887777");
    assert_eq!(m.sender_phone, None);
    assert_eq!(m.sender_lid, None, "…Alt describes us for fromMe");
    assert_eq!(m.sender_name, None);
}

#[test]
fn evolution_send_message_echo() {
    let m = message(fixture!("evolution_send_message_echo.json"));
    assert!(m.from_me && m.echo);
    assert_eq!(m.external_id, "3EB0D1E2F3A4B5C6D7E8");
    assert_eq!(m.chat_id, "5511988887777");
    assert_eq!(
        m.kind,
        MessageKind::Text {
            body: "Olá! Seu pedido saiu.".into()
        }
    );
    // The subscription spelling is accepted too.
    let body = std::str::from_utf8(fixture!("evolution_send_message_echo.json"))
        .unwrap()
        .replace("\"send.message\"", "\"SEND_MESSAGE\"");
    assert!(matches!(one(body.as_bytes()), InboundEvent::Message(m) if m.echo));
}

#[test]
fn evolution_messages_update_statuses() {
    let InboundEvent::Status(s) = one(fixture!("evolution_messages_update_read.json")) else {
        panic!("not a status")
    };
    assert_eq!(s.account, "sales-01");
    assert_eq!(
        s.external_id, "3EB0C4A1F2D3E4B5A6C7",
        "keyId, not messageId"
    );
    assert_eq!(s.status, DeliveryStatus::Read);
    assert_eq!(s.timestamp, None);

    let status_of = |status: Value| {
        one(&envelope(
            "MESSAGES_UPDATE",
            json!({ "keyId": "3EB0X", "remoteJid": "180123456789012@lid", "fromMe": true, "status": status }),
        ))
    };
    let expect = |status: Value, want: DeliveryStatus| match status_of(status.clone()) {
        InboundEvent::Status(s) => assert_eq!(s.status, want, "{status}"),
        other => panic!("{status}: {other:?}"),
    };
    expect(json!("SERVER_ACK"), DeliveryStatus::Sent);
    expect(json!("DELIVERY_ACK"), DeliveryStatus::Delivered);
    expect(json!("PLAYED"), DeliveryStatus::Read);
    expect(json!("ERROR"), DeliveryStatus::Failed);
    expect(json!(3), DeliveryStatus::Delivered);
    for status in [json!("PENDING"), json!("DELETED"), json!(null)] {
        assert!(
            matches!(status_of(status.clone()), InboundEvent::Ignored { .. }),
            "{status}"
        );
    }
    // Receipts about the contact's messages are not ours to track.
    let ev = one(&envelope(
        "messages.update",
        json!({ "keyId": "3EB0Y", "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": false, "status": "READ" }),
    ));
    assert!(matches!(ev, InboundEvent::Ignored { .. }));
}

#[test]
fn evolution_connection_updates_and_qrcode() {
    let conn = |data: Value| match one(&envelope("connection.update", data)) {
        InboundEvent::Connection(c) => c,
        other => panic!("{other:?}"),
    };
    let open = conn(
        json!({ "instance": "sales-01", "wuid": "5511977776666@s.whatsapp.net",
        "profileName": "Loja X", "profilePictureUrl": "https://pps.whatsapp.net/v/t61/abc.jpg",
        "state": "open", "statusReason": 200 }),
    );
    assert_eq!(open.account, "sales-01");
    assert_eq!(open.state, ConnectionState::Open);
    assert_eq!(open.reason, None);
    assert_eq!(
        conn(json!({ "instance": "sales-01", "state": "connecting", "statusReason": 200 })).state,
        ConnectionState::Connecting
    );
    let closed = conn(json!({ "instance": "sales-01", "state": "close", "statusReason": 401 }));
    assert_eq!(closed.state, ConnectionState::Closed);
    assert_eq!(closed.reason.as_deref(), Some("logged out (401)"));
    let refused = conn(json!({ "instance": "sales-01", "state": "refused", "statusReason": 428 }));
    assert_eq!(refused.state, ConnectionState::Closed);
    assert_eq!(
        refused.reason.as_deref(),
        Some("QR code attempts exhausted (428)")
    );

    let InboundEvent::Connection(qr) = one(&envelope(
        "QRCODE_UPDATED",
        json!({ "qrcode": { "instance": "sales-01", "pairingCode": "WZYEH1YY", "code": "2@y8eK+bjtEjUWy9/FOM",
                            "base64": "data:image/png;base64,iVBORw0KGgo=" } }),
    )) else {
        panic!("not a connection")
    };
    assert_eq!(qr.state, ConnectionState::Connecting);
    let prompt = qr.qr.unwrap();
    assert_eq!(prompt.pairing_code.as_deref(), Some("WZYEH1YY"));
    assert_eq!(prompt.qr_code.as_deref(), Some("2@y8eK+bjtEjUWy9/FOM"));
    assert!(
        !format!("{prompt:?}").contains("WZYEH1YY"),
        "codes stay out of logs"
    );
}

#[test]
fn evolution_unknown_events_broadcasts_and_history_are_ignored() {
    for (event, data) in [
        (
            "presence.update",
            json!({ "id": "5511988887777@s.whatsapp.net", "presences": {} }),
        ),
        (
            "CHATS_UPSERT",
            json!([{ "remoteJid": "5511988887777@s.whatsapp.net", "unreadMessages": 0 }]),
        ),
        ("messages.set", json!([])),
        ("logout.instance", Value::Null),
        ("something.new.in.2_5", json!({})),
    ] {
        let ev = one(&envelope(event, data));
        assert!(
            matches!(ev, InboundEvent::Ignored { .. }),
            "{event}: {ev:?}"
        );
    }
    let story = with_key(
        json!({ "remoteJid": "status@broadcast", "participant": "5511988887777@s.whatsapp.net", "fromMe": false, "id": "3EB0S" }),
        json!("Ana"),
    );
    assert_eq!(
        one(&story),
        InboundEvent::Ignored {
            event: "messages.upsert@broadcast".into()
        }
    );
}

#[test]
fn evolution_malformed_bodies_are_errors_without_user_data() {
    let err = parse_webhook(
        b"{\"event\":\"messages.upsert\",\"data\":{\"text\":\"5511988887777 segredo\"",
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("evolution: invalid JSON"),
        "{err}"
    );
    assert!(parse_webhook(b"[]").is_err());
    assert!(
        parse_webhook(br#"{"instance":"x","data":{}}"#).is_err(),
        "no event"
    );

    let without = |field: &str| {
        let mut v: Value =
            serde_json::from_slice(fixture!("evolution_text_lid_2_3_7.json")).unwrap();
        let (parent, key) = field.rsplit_once('.').unwrap_or(("", field));
        let target = parent
            .split('.')
            .filter(|p| !p.is_empty())
            .fold(&mut v, |v, p| &mut v[p]);
        target.as_object_mut().unwrap().remove(key);
        parse_webhook(&serde_json::to_vec(&v).unwrap())
    };
    for field in [
        "data.key.id",
        "data.key.remoteJid",
        "data.key.fromMe",
        "data.messageTimestamp",
        "data.key",
        "instance",
        "data",
    ] {
        let err = without(field).unwrap_err().to_string();
        assert!(!err.contains("5511988887777"), "{err}");
        assert!(!err.contains("orçamento"), "{err}");
    }
    // A wrong type where a number is expected must not echo the value either.
    let body = std::str::from_utf8(fixture!("evolution_text_lid_2_3_7.json"))
        .unwrap()
        .replace("1760000000", "\"5511988887777\"x");
    let err = parse_webhook(body.as_bytes()).unwrap_err().to_string();
    assert!(!err.contains("5511988887777"), "{err}");
}

// --- webhook authentication ------------------------------------------------------------

const SECRET: &str = "per-channel-secret-0123456789abcdef";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn jwt(secret: &str, iat: i64, exp: i64, app: &str, alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &json!({ "iat": iat, "exp": exp, "app": app, "action": "webhook" }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[test]
fn evolution_verify_static_header_secret() {
    assert!(verify(&headers(&[(SECRET_HEADER, SECRET)]), SECRET));
    assert!(!verify(
        &headers(&[(SECRET_HEADER, "per-channel-secret-0123456789abcdeX")]),
        SECRET
    ));
    assert!(
        !verify(&headers(&[(SECRET_HEADER, "per-channel")]), SECRET),
        "prefix"
    );
    assert!(
        !verify(&headers(&[(SECRET_HEADER, &format!("{SECRET}0"))]), SECRET),
        "longer"
    );
    assert!(!verify(&headers(&[(SECRET_HEADER, "")]), SECRET));
    assert!(!verify(&HeaderMap::new(), SECRET), "missing");
    assert!(
        !verify(&headers(&[("x-other", SECRET)]), SECRET),
        "other header"
    );
    assert!(
        !verify(&headers(&[(SECRET_HEADER, "")]), ""),
        "unconfigured secret"
    );
}

#[test]
fn evolution_verify_jwt_option() {
    let now = OffsetDateTime::from_unix_timestamp(1_760_000_000).unwrap();
    let t = now.unix_timestamp();
    let hs = jsonwebtoken::Algorithm::HS256;
    let bearer = |token: String| headers(&[("authorization", &format!("Bearer {token}"))]);

    assert_eq!(
        verify_at(
            &bearer(jwt(SECRET, t, t + 600, "evolution", hs)),
            SECRET,
            now
        ),
        Some(WebhookAuth::Jwt)
    );
    let cases = [
        (
            "wrong secret",
            jwt("another-secret", t, t + 600, "evolution", hs),
        ),
        ("expired", jwt(SECRET, t - 1300, t - 700, "evolution", hs)),
        (
            "issued in the future",
            jwt(SECRET, t + 600, t + 1200, "evolution", hs),
        ),
        (
            "too long-lived",
            jwt(SECRET, t, t + 86_400, "evolution", hs),
        ),
        ("other app", jwt(SECRET, t, t + 600, "other", hs)),
        (
            "HS512",
            jwt(
                SECRET,
                t,
                t + 600,
                "evolution",
                jsonwebtoken::Algorithm::HS512,
            ),
        ),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (why, token) in cases {
        assert_eq!(verify_at(&bearer(token), SECRET, now), None, "{why}");
    }
    let token = jwt(SECRET, t, t + 600, "evolution", hs);
    assert_eq!(
        verify_at(
            &headers(&[("authorization", &format!("Basic {token}"))]),
            SECRET,
            now
        ),
        None
    );
}
