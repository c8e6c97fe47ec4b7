//! The Cloud API client against a local server speaking the Graph API's wire format.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::gateway::{SendError, Timeouts};

const TOKEN: &str = "EAAGm0PX4ZCpsBAtest-access-token";
const PNID: &str = "106540352242922";

fn base(server: &MockServer) -> String {
    format!("{}/v21.0", server.uri())
}

fn client(server: &MockServer) -> MetaClient {
    MetaClient::new(&base(server), PNID, SecretString::from(TOKEN)).unwrap()
}

/// Meta's 200 for a send (§2.4).
fn accepted(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": "5511988887777", "wa_id": "5511988887777" }],
        "messages": [{ "id": wamid }]
    }))
}

fn graph_error(status: u16, code: i64, message: &str, details: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "error": {
        "message": message, "type": "OAuthException", "code": code,
        "error_data": { "messaging_product": "whatsapp", "details": details },
        "fbtrace_id": "AbCdEf123"
    } }))
}

#[tokio::test]
async fn meta_send_text_posts_the_wire_body_with_bearer_and_returns_the_wamid() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PNID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511988887777",
            "type": "text", "text": { "preview_url": false, "body": "Olá! Seu pedido saiu." }
        })))
        .respond_with(accepted(
            "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEjk5QUFCQkNDRERFRUZGMDAA",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let id = client(&server)
        .send_text("5511988887777", "Olá! Seu pedido saiu.", None)
        .await
        .unwrap();
    assert_eq!(
        id,
        "wamid.HBgNNTUxMTk4ODg4Nzc3NxUCABEYEjk5QUFCQkNDRERFRUZGMDAA"
    );
}

#[tokio::test]
async fn meta_send_text_reply_carries_context() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PNID}/messages")))
        .and(body_json(json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511988887777",
            "type": "text", "text": { "preview_url": false, "body": "sim" },
            "context": { "message_id": "wamid.IN1" }
        })))
        .respond_with(accepted("wamid.OUT2"))
        .expect(1)
        .mount(&server)
        .await;
    let id = client(&server)
        .send_text("5511988887777", "sim", Some("wamid.IN1"))
        .await
        .unwrap();
    assert_eq!(id, "wamid.OUT2");
}

#[tokio::test]
async fn meta_send_template_with_body_parameters() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PNID}/messages")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(body_json(json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511988887777",
            "type": "template",
            "template": { "name": "appointment_reminder", "language": { "code": "pt_BR" },
                "components": [{ "type": "body", "parameters": [
                    { "type": "text", "text": "Ana" }, { "type": "text", "text": "terça, 9h" }
                ] }] }
        })))
        .respond_with(accepted("wamid.TPL1"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PNID}/messages")))
        .and(body_json(json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": "5511988887777",
            "type": "template", "template": { "name": "hello_world", "language": { "code": "en_US" } }
        })))
        .respond_with(accepted("wamid.TPL2"))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server);
    assert_eq!(
        c.send_template(
            "5511988887777",
            "appointment_reminder",
            "pt_BR",
            &["Ana", "terça, 9h"]
        )
        .await
        .unwrap(),
        "wamid.TPL1"
    );
    assert_eq!(
        c.send_template("5511988887777", "hello_world", "en_US", &[])
            .await
            .unwrap(),
        "wamid.TPL2"
    );
}

async fn send_error(response: ResponseTemplate, timeouts: Timeouts) -> SendError {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v21.0/{PNID}/messages")))
        .respond_with(response)
        .mount(&server)
        .await;
    let c = MetaClient::with_timeouts(&base(&server), PNID, SecretString::from(TOKEN), timeouts)
        .unwrap();
    c.send_text("5511988887777", "oi", None).await.unwrap_err()
}

#[tokio::test]
async fn meta_errors_are_classified() {
    let t = Timeouts::default();
    let err = send_error(
        graph_error(
            400,
            131047,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        t,
    )
    .await;
    assert!(
        matches!(&err, SendError::OutsideWindow { reason } if reason.contains("131047")),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    let err = send_error(
        graph_error(
            400,
            100,
            "(#100) Invalid parameter",
            "Param text['body'] is required",
        ),
        t,
    )
    .await;
    let SendError::Rejected {
        status,
        code,
        reason,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*status, *code), (400, Some(100)));
    assert!(reason.contains("Invalid parameter") && reason.contains("is required"));

    let err = send_error(
        graph_error(401, 190, "Error validating access token", ""),
        t,
    )
    .await;
    assert!(
        matches!(
            err,
            SendError::Rejected {
                status: 401,
                code: Some(190),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err:?}").contains(TOKEN));

    // Rate limits come back as 400 with a code, yet they mean "later".
    let err = send_error(graph_error(400, 130429, "Rate limit hit", ""), t).await;
    assert!(
        matches!(
            err,
            SendError::Retryable {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    let err = send_error(
        graph_error(
            400,
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
            "",
        ),
        t,
    )
    .await;
    assert!(err.is_retryable(), "{err:?}");
    let err = send_error(ResponseTemplate::new(500), t).await;
    assert!(
        matches!(
            err,
            SendError::Retryable {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    let err = send_error(ResponseTemplate::new(503).set_body_string("upstream"), t).await;
    assert!(err.is_retryable(), "{err:?}");

    let err = send_error(
        ResponseTemplate::new(200).set_body_json(json!({ "messaging_product": "whatsapp" })),
        t,
    )
    .await;
    assert!(matches!(err, SendError::Unknown { .. }), "{err:?}");
}

#[tokio::test]
async fn meta_timeout_is_unknown() {
    let err = send_error(
        accepted("wamid.LATE").set_delay(Duration::from_millis(1500)),
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_millis(200),
        },
    )
    .await;
    assert!(matches!(err, SendError::Unknown { .. }), "{err:?}");
}

#[tokio::test]
async fn meta_get_media_resolves_the_id_then_downloads_with_the_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v21.0/2754859441498128"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/whatsapp_business/attachments/?mid=2754859441498128&ext=1760000000&hash=ATx", server.uri()),
            "mime_type": "image/jpeg",
            "sha256": "81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3",
            "file_size": "4", "id": "2754859441498128"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/whatsapp_business/attachments/"))
        .and(query_param("mid", "2754859441498128"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(vec![0xff, 0xd8, 0xff, 0xe0]),
        )
        .expect(1)
        .mount(&server)
        .await;
    let media = client(&server).get_media("2754859441498128").await.unwrap();
    assert_eq!(media.bytes, [0xff, 0xd8, 0xff, 0xe0]);
    assert_eq!(media.mime.as_deref(), Some("image/jpeg"));

    // An expired media id: Graph says 404 with code 100.
    let err = client(&server).get_media("999").await.unwrap_err();
    assert!(
        matches!(err, SendError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn meta_list_templates_follows_pages() {
    let server = MockServer::start().await;
    let fields = "id,name,language,status,category,components";
    Mock::given(method("GET"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param("fields", fields))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("after"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "name": "appointment_reminder", "language": "pt_BR", "status": "APPROVED",
                       "category": "UTILITY", "id": "111",
                       "components": [{ "type": "BODY", "text": "Olá {{1}}, sua consulta é {{2}}." }] }],
            "paging": { "cursors": { "before": "B1", "after": "A1" },
                        "next": "https://graph.facebook.com/v21.0/102290129340398/message_templates?after=A1" }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v21.0/102290129340398/message_templates"))
        .and(query_param("after", "A1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{ "name": "hello_world", "language": "en_US", "status": "PENDING",
                       "category": "MARKETING", "id": "222", "components": [] }],
            "paging": { "cursors": { "before": "B2", "after": "A2" } }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let templates = client(&server)
        .list_templates("102290129340398")
        .await
        .unwrap();
    assert_eq!(templates.len(), 2);
    assert_eq!(templates[0].name, "appointment_reminder");
    assert_eq!(templates[0].language, "pt_BR");
    assert_eq!(templates[0].status, "APPROVED");
    assert_eq!(
        templates[0].body_text(),
        Some("Olá {{1}}, sua consulta é {{2}}.")
    );
    assert_eq!(templates[1].name, "hello_world");
    assert_eq!(templates[1].body_text(), None);
}

#[test]
fn meta_client_config_and_debug_hide_the_token() {
    let c = MetaClient::new(DEFAULT_GRAPH_BASE_URL, PNID, SecretString::from(TOKEN)).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains(PNID));
    assert!(MetaClient::new(DEFAULT_GRAPH_BASE_URL, "", SecretString::from(TOKEN)).is_err());
    assert!(MetaClient::new(DEFAULT_GRAPH_BASE_URL, PNID, SecretString::from("")).is_err());
    assert!(MetaClient::new("graph.facebook.com", PNID, SecretString::from(TOKEN)).is_err());
}
