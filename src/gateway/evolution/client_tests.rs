//! The Evolution client against a local server speaking Evolution's wire format (§1.9).

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::gateway::*;
use crate::gateway::{ConnectionState, EvolutionKey, MediaSource, SendError, Timeouts};

const API_KEY: &str = "B6D711FCDE4D4FD5936544120E713976";

fn client(server: &MockServer) -> EvolutionClient {
    EvolutionClient::new(&server.uri(), "sales-01", SecretString::from(API_KEY)).unwrap()
}

/// The 201 body Evolution returns for a send (= the `send.message` data).
fn sent(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "key": { "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "id": id },
        "pushName": "Você", "status": "PENDING",
        "message": { "conversation": "Olá! Seu pedido saiu." },
        "contextInfo": {},
        "messageType": "conversation", "messageTimestamp": 1760000100,
        "instanceId": "6f1c2a8e-1b2c-4d5e-9f00-123456789abc", "source": "web"
    }))
}

#[tokio::test]
async fn evolution_send_text_posts_the_wire_body_and_returns_the_key_id() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/sendText/sales-01"))
        .and(header("apikey", API_KEY))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "number": "5511988887777", "text": "Olá! Seu pedido saiu.", "linkPreview": false
        })))
        .respond_with(sent("3EB0D1E2F3A4B5C6D7E8"))
        .expect(1)
        .mount(&server)
        .await;
    let id = client(&server)
        .send_text("5511988887777", "Olá! Seu pedido saiu.", None)
        .await
        .unwrap();
    assert_eq!(id, "3EB0D1E2F3A4B5C6D7E8");
}

#[tokio::test]
async fn evolution_send_text_reply_quotes_by_key_id_under_a_base_path() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/evo/message/sendText/clinic%2001"))
        .and(body_json(json!({
            "number": "120363025555555555@g.us", "text": "sim", "linkPreview": false,
            "quoted": { "key": { "id": "3A9F8E7D6C5B4A392817" } }
        })))
        .respond_with(sent("3EB0REPLY"))
        .expect(1)
        .mount(&server)
        .await;
    let c = EvolutionClient::new(
        &format!("{}/evo/", server.uri()),
        "clinic 01",
        SecretString::from(API_KEY),
    )
    .unwrap();
    let id = c
        .send_text(
            "120363025555555555@g.us",
            "sim",
            Some("3A9F8E7D6C5B4A392817"),
        )
        .await
        .unwrap();
    assert_eq!(id, "3EB0REPLY");
}

#[tokio::test]
async fn evolution_send_media_as_base64_and_as_url() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/sendMedia/sales-01"))
        .and(header("apikey", API_KEY))
        .and(body_json(json!({
            "number": "5511988887777", "mediatype": "document", "mimetype": "application/pdf",
            "caption": "Sua nota", "media": "JVBERi0xLjQ=", "fileName": "nf-123.pdf"
        })))
        .respond_with(sent("3EB0DOC"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/message/sendMedia/sales-01"))
        .and(body_json(json!({
            "number": "5511988887777", "mediatype": "image",
            "media": "https://files.example.com/sorriso.jpg"
        })))
        .respond_with(sent("3EB0IMG"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    let doc = OutboundMedia {
        kind: OutboundMediaKind::Document,
        content: MediaContent::Bytes(b"%PDF-1.4".to_vec()),
        mimetype: Some("application/pdf".into()),
        caption: Some("Sua nota".into()),
        file_name: Some("nf-123.pdf".into()),
    };
    assert_eq!(
        c.send_media("5511988887777", &doc).await.unwrap(),
        "3EB0DOC"
    );
    let image = OutboundMedia {
        kind: OutboundMediaKind::Image,
        content: MediaContent::Url("https://files.example.com/sorriso.jpg".into()),
        mimetype: None,
        caption: None,
        file_name: None,
    };
    assert_eq!(
        c.send_media("5511988887777", &image).await.unwrap(),
        "3EB0IMG"
    );
    assert!(!format!("{doc:?}").contains("JVBER"), "no payload in Debug");
}

#[tokio::test]
async fn evolution_set_webhook_wraps_the_body_with_our_secret_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhook/set/sales-01"))
        .and(header("apikey", API_KEY))
        .and(body_json(json!({ "webhook": {
            "enabled": true, "url": "https://app.example.com/webhooks/evolution/ch_1",
            "headers": { "x-webhook-token": "s3cr3t-channel" },
            "byEvents": false, "base64": true,
            "events": ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "MESSAGES_EDITED", "MESSAGES_DELETE", "SEND_MESSAGE", "CONNECTION_UPDATE", "QRCODE_UPDATED"]
        } })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": "cm1", "url": "https://app.example.com/webhooks/evolution/ch_1", "enabled": true,
            "events": [], "webhookByEvents": false, "webhookBase64": true,
            "createdAt": "2025-10-09T09:53:20.512Z", "updatedAt": "2025-10-09T09:53:20.512Z", "instanceId": "x"
        })))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .set_webhook(
            "https://app.example.com/webhooks/evolution/ch_1",
            &SecretString::from("s3cr3t-channel"),
            DEFAULT_WEBHOOK_EVENTS,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn evolution_connection_state_and_connect() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/instance/connectionState/sales-01"))
        .and(header("apikey", API_KEY))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "instance": { "instanceName": "sales-01", "state": "close" } }),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/instance/connect/sales-01"))
        .and(query_param("number", "5511977776666"))
        .and(header("apikey", API_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "pairingCode": "WZYEH1YY", "code": "2@y8eK+bjtEjUWy9/FOM",
            "base64": "data:image/png;base64,iVBORw0KGgo=", "count": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(c.connection_state().await.unwrap(), ConnectionState::Closed);
    let phone = Phone::try_from("+55 11 97777-6666").unwrap();
    let ConnectOutcome::Pairing(prompt) = c.connect(Some(&phone)).await.unwrap() else {
        panic!("expected a pairing prompt")
    };
    assert_eq!(prompt.pairing_code.as_deref(), Some("WZYEH1YY"));
    assert_eq!(prompt.qr_code.as_deref(), Some("2@y8eK+bjtEjUWy9/FOM"));
    assert_eq!(
        prompt.qr_png_data_url.as_deref(),
        Some("data:image/png;base64,iVBORw0KGgo=")
    );
}

#[tokio::test]
async fn evolution_connect_when_already_open() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/instance/connect/sales-01"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "instance": { "instanceName": "sales-01", "state": "open" } }),
            ),
        )
        .mount(&server)
        .await;
    assert_eq!(
        client(&server).connect(None).await.unwrap(),
        ConnectOutcome::Open
    );
}

#[tokio::test]
async fn evolution_fetch_media_base64_sends_the_key_and_decodes() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/getBase64FromMediaMessage/sales-01"))
        .and(header("apikey", API_KEY))
        .and(body_json(json!({
            "message": {
                "key": { "id": "3A9F8E7D6C5B4A392817", "remoteJid": "120363025555555555@g.us",
                         "fromMe": false, "participant": "180123456789012@lid" },
                "message": { "imageMessage": { "mimetype": "image/jpeg", "mediaKey": "a2V5" } }
            },
            "convertToMp4": false
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "mediaType": "imageMessage", "fileName": "3A9F8E7D6C5B4A392817.jpeg",
            "caption": "foto do produto", "size": { "fileLength": 4, "height": 1280, "width": 960 },
            "mimetype": "image/jpeg", "base64": "/9j/4A==", "buffer": null
        })))
        .expect(1)
        .mount(&server)
        .await;
    let source = MediaSource::EvolutionKey {
        key: EvolutionKey {
            id: "3A9F8E7D6C5B4A392817".into(),
            remote_jid: "120363025555555555@g.us".into(),
            from_me: false,
            participant: Some("180123456789012@lid".into()),
        },
        message: Some(json!({ "imageMessage": { "mimetype": "image/jpeg", "mediaKey": "a2V5" } })),
    };
    let media = client(&server).download(&source).await.unwrap();
    assert_eq!(media.bytes, [0xff, 0xd8, 0xff, 0xe0]);
    assert_eq!(media.mime.as_deref(), Some("image/jpeg"));
    assert_eq!(media.filename.as_deref(), Some("3A9F8E7D6C5B4A392817.jpeg"));

    // Inline base64 from the webhook needs no request at all.
    let inline = MediaSource::Inline {
        base64: "/9j/4A==".into(),
    };
    assert_eq!(
        client(&server).download(&inline).await.unwrap().bytes,
        [0xff, 0xd8, 0xff, 0xe0]
    );
}

async fn send_error(response: ResponseTemplate, timeouts: Timeouts) -> SendError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/message/sendText/sales-01"))
        .respond_with(response)
        .mount(&server)
        .await;
    let c = EvolutionClient::with_timeouts(
        &server.uri(),
        "sales-01",
        SecretString::from(API_KEY),
        timeouts,
    )
    .unwrap();
    c.send_text("5511988887777", "oi", None).await.unwrap_err()
}

#[tokio::test]
async fn evolution_errors_are_classified() {
    let t = Timeouts::default();
    let err = send_error(
        ResponseTemplate::new(500).set_body_json(json!({
            "status": 500, "error": "Internal Server Error", "response": { "message": ["Connection Closed"] }
        })),
        t,
    )
    .await;
    assert!(
        matches!(&err, SendError::Retryable { status: Some(500), reason } if reason.contains("Connection Closed")),
        "{err:?}"
    );
    let err = send_error(ResponseTemplate::new(429), t).await;
    assert!(
        matches!(
            err,
            SendError::Retryable {
                status: Some(429),
                ..
            }
        ),
        "{err:?}"
    );

    // A number that is not on WhatsApp: rejected, and the reason does not repeat it.
    let err = send_error(
        ResponseTemplate::new(400).set_body_json(json!({
            "status": 400, "error": "Bad Request",
            "response": { "message": [{ "jid": "5511988887777@s.whatsapp.net", "exists": false, "number": "5511988887777" }] }
        })),
        t,
    )
    .await;
    let SendError::Rejected { status, reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 400);
    assert_eq!(reason, "HTTP 400: number is not on WhatsApp");
    assert!(!err.to_string().contains("5511988887777"));

    let err = send_error(
        ResponseTemplate::new(404).set_body_json(json!({
            "status": 404, "error": "Not Found",
            "response": { "message": ["The \"sales-01\" instance does not exist"] }
        })),
        t,
    )
    .await;
    assert!(
        matches!(&err, SendError::Rejected { status: 404, reason, .. } if reason.contains("does not exist"))
    );
    let err = send_error(ResponseTemplate::new(401).set_body_json(json!({ "status": 401, "error": "Unauthorized", "response": { "message": "Unauthorized" } })), t).await;
    assert!(
        matches!(err, SendError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains(API_KEY));

    // Accepted, but we can't read the id: the message may be out, never resend.
    let err = send_error(ResponseTemplate::new(201).set_body_string("<html>"), t).await;
    assert!(matches!(err, SendError::Unknown { .. }), "{err:?}");
    let err = send_error(
        ResponseTemplate::new(201).set_body_json(json!({ "status": "PENDING" })),
        t,
    )
    .await;
    assert!(matches!(err, SendError::Unknown { .. }), "{err:?}");
}

#[tokio::test]
async fn evolution_timeout_is_unknown() {
    let err = send_error(
        sent("3EB0LATE").set_delay(Duration::from_millis(1500)),
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_millis(200),
        },
    )
    .await;
    assert!(matches!(err, SendError::Unknown { .. }), "{err:?}");
}

#[tokio::test]
async fn evolution_connection_refused_is_retryable() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = EvolutionClient::new(
        &format!("http://{addr}"),
        "sales-01",
        SecretString::from(API_KEY),
    )
    .unwrap();
    let err = c.send_text("5511988887777", "oi", None).await.unwrap_err();
    assert!(
        matches!(err, SendError::Retryable { status: None, .. }),
        "{err:?}"
    );
}

#[test]
fn evolution_client_config_and_debug_hide_the_key() {
    let c = EvolutionClient::new(
        "https://evo.example.com",
        "sales-01",
        SecretString::from(API_KEY),
    )
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains(API_KEY), "{debug}");
    assert!(debug.contains("sales-01"));
    for (url, instance, key) in [
        ("ftp://evo.example.com", "sales-01", API_KEY),
        ("not a url", "sales-01", API_KEY),
        ("https://evo.example.com?x=1", "sales-01", API_KEY),
        ("https://evo.example.com", " ", API_KEY),
        ("https://evo.example.com", "sales-01", ""),
        ("https://evo.example.com", "sales-01", "bad\nkey"),
    ] {
        let err = EvolutionClient::new(url, instance, SecretString::from(key)).unwrap_err();
        assert!(!err.to_string().contains("bad\nkey"));
    }
}
