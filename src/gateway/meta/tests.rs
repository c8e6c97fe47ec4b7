use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::gateway::{
    DeliveryStatus, InboundEvent, InboundMessage, MediaKind, MediaSource, MessageKind,
};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gateway/",
            $name
        ))
    };
}

const PHONE_NUMBER_ID: &str = "106540352242922";

/// A notification carrying `value_extra` merged into a messages `value` (§2.2).
fn notification(value_extra: Value) -> Vec<u8> {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
    });
    for (k, v) in value_extra.as_object().unwrap() {
        value[k] = v.clone();
    }
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": value }] }]
    }))
    .unwrap()
}

/// One inbound message of `type` with its type-specific `node`, from Ana.
fn inbound(kind: &str, node: Value) -> Vec<u8> {
    let mut msg = json!({ "from": "5511988887777", "id": "wamid.IN1", "timestamp": "1760000000", "type": kind });
    msg[kind] = node;
    notification(json!({
        "contacts": [{ "profile": { "name": "Ana" }, "wa_id": "5511988887777" }],
        "messages": [msg]
    }))
}

fn messages(body: &[u8]) -> Vec<InboundMessage> {
    parse_webhook(body)
        .unwrap()
        .into_iter()
        .map(|e| match e {
            InboundEvent::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        })
        .collect()
}

fn kind(body: &[u8]) -> MessageKind {
    let mut ms = messages(body);
    assert_eq!(ms.len(), 1);
    ms.remove(0).kind
}

#[test]
fn meta_batched_text_and_image_reply() {
    let ms = messages(fixture!("meta_batched_messages.json"));
    assert_eq!(ms.len(), 2, "every message in the batch, not only [0]");
    let (text, image) = (&ms[0], &ms[1]);
    assert_eq!(text.account, PHONE_NUMBER_ID);
    assert_eq!(
        text.external_id,
        "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABIYFjNFQjBBQUJCQ0NERDExMjIzMzQ0AA=="
    );
    assert_eq!(text.chat_id, "5511988887777");
    assert!(!text.is_group && !text.from_me && !text.echo);
    assert_eq!(
        text.sender_phone.as_ref().unwrap().as_str(),
        "5511988887777"
    );
    assert_eq!(text.sender_name.as_deref(), Some("Ana"));
    assert_eq!(text.timestamp.unix_timestamp(), 1_760_000_000);
    assert_eq!(
        text.kind,
        MessageKind::Text {
            body: "Oi, quero um orçamento".into()
        }
    );
    assert_eq!(text.quoted_external_id, None);

    assert_eq!(
        image.quoted_external_id.as_deref(),
        Some("wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEjk5QUFCQkNDRERFRUZGMDAA")
    );
    assert_eq!(
        image.kind,
        MessageKind::Media {
            media: MediaKind::Image,
            caption: Some("foto".into()),
            mime: Some("image/jpeg".into()),
            filename: None,
            source: MediaSource::MetaId {
                id: "2754859441498128".into()
            },
        }
    );
}

#[test]
fn meta_several_entries_and_changes_in_one_post() {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [
            { "id": "WABA1", "changes": [
                { "field": "messages", "value": { "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": "111" },
                    "messages": [{ "from": "5511988887777", "id": "wamid.A", "timestamp": "1760000000", "type": "text", "text": { "body": "a" } }] } },
                { "field": "messages", "value": { "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": "111" },
                    "statuses": [{ "id": "wamid.OUT", "status": "delivered", "timestamp": "1760000001", "recipient_id": "5511988887777" }] } }
            ] },
            { "id": "WABA2", "changes": [
                { "field": "messages", "value": { "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550000000", "phone_number_id": "222" },
                    "messages": [{ "from": "5521966665555", "id": "wamid.B", "timestamp": "1760000002", "type": "text", "text": { "body": "b" } }] } },
                { "field": "message_template_status_update", "value": { "event": "APPROVED", "message_template_id": 1 } }
            ] }
        ]
    });
    let events = parse_webhook(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(events.len(), 4);
    assert!(
        matches!(&events[0], InboundEvent::Message(m) if m.external_id == "wamid.A" && m.account == "111")
    );
    assert!(
        matches!(&events[1], InboundEvent::Status(s) if s.external_id == "wamid.OUT" && s.status == DeliveryStatus::Delivered)
    );
    assert!(
        matches!(&events[2], InboundEvent::Message(m) if m.external_id == "wamid.B" && m.account == "222" && m.sender_name.is_none())
    );
    assert_eq!(
        events[3],
        InboundEvent::Ignored {
            event: "message_template_status_update".into()
        }
    );
}

#[test]
fn meta_media_kinds() {
    let audio = kind(&inbound(
        "audio",
        json!({ "id": "AUD1", "mime_type": "audio/ogg; codecs=opus", "voice": true }),
    ));
    assert!(matches!(
        audio,
        MessageKind::Media { media: MediaKind::Audio { voice: true }, source: MediaSource::MetaId { ref id }, .. } if id == "AUD1"
    ));
    let doc = kind(&inbound(
        "document",
        json!({ "id": "DOC1", "filename": "exame.pdf", "mime_type": "application/pdf", "caption": "resultado", "sha256": "ab" }),
    ));
    assert_eq!(
        doc,
        MessageKind::Media {
            media: MediaKind::Document,
            caption: Some("resultado".into()),
            mime: Some("application/pdf".into()),
            filename: Some("exame.pdf".into()),
            source: MediaSource::MetaId { id: "DOC1".into() }
        }
    );
    let video = kind(&inbound(
        "video",
        json!({ "id": "VID1", "mime_type": "video/mp4", "caption": "olha" }),
    ));
    assert!(
        matches!(video, MessageKind::Media { media: MediaKind::Video, caption: Some(ref c), .. } if c == "olha")
    );
    let sticker = kind(&inbound(
        "sticker",
        json!({ "id": "STK1", "mime_type": "image/webp", "animated": false }),
    ));
    assert!(matches!(
        sticker,
        MessageKind::Media {
            media: MediaKind::Sticker,
            ..
        }
    ));
}

#[test]
fn meta_location_contacts_reaction_and_buttons() {
    assert_eq!(
        kind(&inbound(
            "location",
            json!({ "latitude": -23.5613, "longitude": -46.6565, "name": "Clínica", "address": "Av. Paulista, 1000" })
        )),
        MessageKind::Location {
            lat: -23.5613,
            lng: -46.6565,
            name: Some("Clínica".into()),
            address: Some("Av. Paulista, 1000".into())
        }
    );
    let MessageKind::Contacts { entries } = kind(&inbound(
        "contacts",
        json!([{ "name": { "formatted_name": "Dra. Paula", "first_name": "Paula" },
                 "phones": [{ "phone": "+55 11 94444-3333", "wa_id": "5511944443333", "type": "CELL" },
                            { "phone": "+55 11 3333-2222", "type": "WORK" }] }]),
    )) else {
        panic!("not contacts")
    };
    assert_eq!(entries[0].name.as_deref(), Some("Dra. Paula"));
    let phones: Vec<_> = entries[0].phones.iter().map(|p| p.as_str()).collect();
    assert_eq!(phones, ["5511944443333", "551133332222"]);

    assert_eq!(
        kind(&inbound(
            "reaction",
            json!({ "message_id": "wamid.OUT1", "emoji": "❤️" })
        )),
        MessageKind::Reaction {
            target_external_id: "wamid.OUT1".into(),
            emoji: Some("❤️".into())
        }
    );
    assert_eq!(
        kind(&inbound("reaction", json!({ "message_id": "wamid.OUT1" }))),
        MessageKind::Reaction {
            target_external_id: "wamid.OUT1".into(),
            emoji: None
        },
        "no emoji = reaction removed"
    );
    assert_eq!(
        kind(&inbound(
            "interactive",
            json!({ "type": "button_reply", "button_reply": { "id": "confirm", "title": "Confirmar" } })
        )),
        MessageKind::ButtonReply {
            id: "confirm".into(),
            title: "Confirmar".into(),
            description: None,
            payload: None,
        }
    );
    assert_eq!(
        kind(&inbound(
            "interactive",
            json!({ "type": "list_reply", "list_reply": { "id": "slot-9", "title": "9h", "description": "terça" } })
        )),
        MessageKind::ButtonReply {
            id: "slot-9".into(),
            title: "9h".into(),
            description: Some("terça".into()),
            payload: None,
        }
    );
    assert_eq!(
        kind(&inbound(
            "button",
            json!({ "payload": "STOP", "text": "Parar promoções" })
        )),
        MessageKind::ButtonReply {
            id: "STOP".into(),
            title: "Parar promoções".into(),
            description: None,
            payload: None,
        }
    );
}

#[test]
fn meta_unknown_and_unsupported_types() {
    for (t, node) in [("unsupported", json!(null)), ("brand_new_type", json!({}))] {
        assert_eq!(
            kind(&inbound(t, node)),
            MessageKind::Unsupported { kind: t.into() }
        );
    }
}

#[test]
fn meta_statuses_including_failed_with_error() {
    let events = parse_webhook(fixture!("meta_status_failed_131047.json")).unwrap();
    let [InboundEvent::Status(s)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(s.account, PHONE_NUMBER_ID);
    assert_eq!(
        s.external_id,
        "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEjk5QUFCQkNDRERFRUZGMDAA"
    );
    assert_eq!(s.status, DeliveryStatus::Failed);
    assert_eq!(s.timestamp.unwrap().unix_timestamp(), 1_760_090_000);
    let error = s.error.as_ref().unwrap();
    assert_eq!(error.code, Some(131047));
    assert_eq!(error.message, "Re-engagement message");
    assert!(error.is_outside_window());

    for (raw, want) in [
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("read", DeliveryStatus::Read),
    ] {
        let body = notification(
            json!({ "statuses": [{ "id": "wamid.X", "status": raw, "timestamp": "1760000000",
            "recipient_id": "5511988887777",
            "pricing": { "billable": true, "pricing_model": "PMP", "category": "utility" } }] }),
        );
        let events = parse_webhook(&body).unwrap();
        assert!(
            matches!(&events[..], [InboundEvent::Status(s)] if s.status == want && s.error.is_none()),
            "{raw}"
        );
    }
    let body = notification(
        json!({ "statuses": [{ "id": "wamid.X", "status": "deleted", "timestamp": "1760000000" }] }),
    );
    assert!(matches!(
        &parse_webhook(&body).unwrap()[..],
        [InboundEvent::Ignored { .. }]
    ));
}

#[test]
fn meta_username_user_without_phone_is_keyed_on_bsuid() {
    let body = notification(json!({
        "contacts": [{ "profile": { "name": "bob" }, "user_id": "BR.1502576394655843" }],
        "messages": [{ "from_user_id": "BR.1502576394655843", "id": "wamid.U", "timestamp": "1760000000",
                       "type": "text", "text": { "body": "oi" } }]
    }));
    let m = &messages(&body)[0];
    assert_eq!(m.sender_phone, None);
    assert_eq!(m.sender_user_id.as_deref(), Some("BR.1502576394655843"));
    assert_eq!(m.chat_id, "BR.1502576394655843");
    assert_eq!(m.sender_name.as_deref(), Some("bob"));
}

#[test]
fn meta_non_message_fields_and_other_objects_are_ignored() {
    let body = json!({ "object": "page", "entry": [] });
    assert!(matches!(
        &parse_webhook(&serde_json::to_vec(&body).unwrap()).unwrap()[..],
        [InboundEvent::Ignored { .. }]
    ));
    let body =
        notification(json!({ "errors": [{ "code": 131000, "title": "Something went wrong" }] }));
    assert_eq!(
        parse_webhook(&body).unwrap(),
        vec![InboundEvent::Ignored {
            event: "messages.errors".into()
        }]
    );
}

#[test]
fn meta_malformed_bodies_are_errors_without_user_data() {
    assert!(parse_webhook(b"not json").is_err());
    assert!(parse_webhook(br#"{"entry":[]}"#).is_err(), "no object");
    assert!(
        parse_webhook(br#"{"object":"whatsapp_business_account"}"#).is_err(),
        "no entry"
    );
    let strip = |path: &[&str]| {
        let mut v: Value = serde_json::from_slice(fixture!("meta_batched_messages.json")).unwrap();
        let mut target = &mut v;
        for p in &path[..path.len() - 1] {
            target = match p.parse::<usize>() {
                Ok(i) => &mut target[i],
                Err(_) => &mut target[*p],
            };
        }
        target.as_object_mut().unwrap().remove(path[path.len() - 1]);
        parse_webhook(&serde_json::to_vec(&v).unwrap())
    };
    let msg = ["entry", "0", "changes", "0", "value", "messages", "0"];
    for field in ["id", "timestamp", "type", "from"] {
        let path: Vec<&str> = msg.iter().copied().chain([field]).collect();
        let err = strip(&path).unwrap_err().to_string();
        assert!(err.starts_with("meta: missing"), "{field}: {err}");
        assert!(
            !err.contains("5511988887777") && !err.contains("orçamento"),
            "{err}"
        );
    }
    let err = strip(&["entry", "0", "changes", "0", "value", "metadata"]).unwrap_err();
    assert!(err.to_string().contains("phone_number_id"));
}

// --- signature and handshake -----------------------------------------------------------

const APP_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn meta_signature_good_bad_missing_and_wrong_length() {
    let body = fixture!("meta_batched_messages.json");
    let good = sign(APP_SECRET, body);
    assert!(verify_signature(APP_SECRET, body, Some(&good)));

    // Computed over the raw bytes: a re-serialised body does not verify.
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(body).unwrap()).unwrap();
    assert!(!verify_signature(APP_SECRET, &reserialised, Some(&good)));

    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert!(!verify_signature(APP_SECRET, &tampered, Some(&good)));
    assert!(!verify_signature(b"another-secret", body, Some(&good)));
    assert!(!verify_signature(APP_SECRET, body, None), "missing");
    assert!(!verify_signature(APP_SECRET, body, Some("")), "empty");
    assert!(
        !verify_signature(APP_SECRET, body, Some(good.trim_start_matches("sha256="))),
        "no prefix"
    );
    assert!(
        !verify_signature(APP_SECRET, body, Some(&good.replace("sha256=", "sha1="))),
        "other algorithm"
    );
    assert!(
        !verify_signature(APP_SECRET, body, Some(&good[..good.len() - 2])),
        "short"
    );
    assert!(
        !verify_signature(APP_SECRET, body, Some(&format!("{good}00"))),
        "long"
    );
    assert!(
        !verify_signature(APP_SECRET, body, Some("sha256=zz")),
        "not hex"
    );
    assert!(
        !verify_signature(b"", body, Some(&sign(b"", body))),
        "unconfigured secret"
    );
}

#[test]
fn meta_handshake() {
    let ok = verify_handshake(
        Some("subscribe"),
        Some("verify-me"),
        Some("1158201444"),
        "verify-me",
    );
    assert_eq!(ok.as_deref(), Some("1158201444"));
    assert_eq!(
        verify_handshake(
            Some("subscribe"),
            Some("wrong"),
            Some("1158201444"),
            "verify-me"
        ),
        None
    );
    assert_eq!(
        verify_handshake(
            Some("unsubscribe"),
            Some("verify-me"),
            Some("1"),
            "verify-me"
        ),
        None
    );
    assert_eq!(
        verify_handshake(None, Some("verify-me"), Some("1"), "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), None, Some("1"), "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), Some("verify-me"), None, "verify-me"),
        None
    );
    assert_eq!(
        verify_handshake(
            Some("subscribe"),
            Some("verify-me"),
            Some("<script>"),
            "verify-me"
        ),
        None
    );
    assert_eq!(
        verify_handshake(Some("subscribe"), Some(""), Some("1"), ""),
        None,
        "unconfigured token"
    );
}
