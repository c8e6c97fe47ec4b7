//! WhatsApp test fixtures: gateway payloads in their real wire shapes, and a tenant with a
//! channel whose gateway is a local HTTP server that records what it receives.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::MockServer;

use crate::tests::client::World;

pub(super) const META_APP_SECRET: &str = "meta-app-secret-for-tests";
pub(super) const META_PHONE_ID: &str = "106540352242922";

/// A tenant (clinic-a) with a gateway channel pointing at a local mock server.
pub(super) struct Gw {
    pub(crate) w: World,
    pub(crate) gateway: MockServer,
    /// The webhook path (`/webhooks/<kind>/<route>`).
    pub(crate) hook: String,
    /// Evolution header secret, or Meta verify token.
    pub(crate) secret: String,
    pub(crate) channel_id: uuid::Uuid,
}

fn created_field(body: &str, id: &str) -> String {
    let doc = scraper::Html::parse_document(body);
    let sel = scraper::Selector::parse(&format!("#{id}")).unwrap();
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("value"))
        .unwrap_or_else(|| panic!("no #{id} in:\n{body}"))
        .to_owned()
}

impl Gw {
    pub(super) async fn evolution() -> Gw {
        Self::evolution_in(World::new().await).await
    }

    /// An Evolution channel in a world whose config the caller adjusts first.
    pub(super) async fn evolution_with(adjust: impl FnOnce(&mut crate::config::Config)) -> Gw {
        Self::evolution_in(World::with_config(adjust).await).await
    }

    pub(super) async fn evolution_in(w: World) -> Gw {
        let gateway = MockServer::start().await;
        let r = w
            .owner
            .submit(
                "/t/clinic-a/channels",
                "/t/clinic-a/channels/evolution",
                &[
                    ("name", "Reception"),
                    ("base_url", &gateway.uri()),
                    ("instance", "clinic"),
                    ("api_key", "evo-api-key-123"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        Self::finish(w, gateway, &r.body).await
    }

    pub(super) async fn meta() -> Gw {
        Self::meta_in(World::new().await).await
    }

    /// A Meta channel in a world already made.
    pub(super) async fn meta_in(w: World) -> Gw {
        let gateway = MockServer::start().await;
        // The Meta client talks to the Graph API base from config: point it at the mock.
        let r = w
            .owner
            .submit(
                "/t/clinic-a/channels",
                "/t/clinic-a/channels/meta",
                &[
                    ("name", "Main number"),
                    ("phone_number_id", META_PHONE_ID),
                    ("waba_id", "102290129340398"),
                    ("access_token", "meta-token-xyz"),
                    ("app_secret", META_APP_SECRET),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let gw = Self::finish(w, gateway, &r.body).await;
        sqlx::query("UPDATE channels SET config = config || jsonb_build_object('graph_base_url', $1::text) WHERE id = $2")
            .bind(gw.gateway.uri())
            .bind(gw.channel_id)
            .execute(&gw.w.t.owner)
            .await
            .unwrap();
        gw
    }

    async fn finish(w: World, gateway: MockServer, body: &str) -> Gw {
        let url = created_field(body, "wh-url");
        let secret = created_field(body, "wh-secret");
        let hook = format!("/webhooks/{}", url.split_once("/webhooks/").unwrap().1);
        let channel_id = sqlx::query_scalar(
            "SELECT id FROM channels WHERE kind <> 'simulator' ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
        Gw {
            w,
            gateway,
            hook,
            secret,
            channel_id,
        }
    }

    /// Posts an Evolution webhook with our secret header.
    pub(super) async fn evo(&self, body: &Value) -> (u16, String) {
        self.evo_raw(body.to_string().into_bytes(), Some(&self.secret))
            .await
    }

    pub(super) async fn evo_raw(&self, body: Vec<u8>, secret: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new()
            .post(self.w.server.url(&self.hook))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = secret {
            req = req.header("x-webhook-token", s);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a Meta webhook signed with the app secret (or a given signature).
    pub(super) async fn meta_post(&self, body: &Value) -> (u16, String) {
        let raw = body.to_string().into_bytes();
        let sig = meta_signature(&raw);
        self.meta_raw(raw, Some(&sig)).await
    }

    pub(super) async fn meta_raw(&self, body: Vec<u8>, signature: Option<&str>) -> (u16, String) {
        let mut req = reqwest::Client::new()
            .post(self.w.server.url(&self.hook))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub(super) async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.w.t.owner)
            .await
            .unwrap()
    }

    pub(super) async fn run_jobs(&self) -> usize {
        crate::jobs::run_due(&self.w.t.state).await.unwrap()
    }

    /// The single conversation's id (panics if there isn't exactly one).
    pub(super) async fn only_conversation(&self) -> uuid::Uuid {
        sqlx::query_scalar("SELECT id FROM conversations WHERE channel_id = $1")
            .bind(self.channel_id)
            .fetch_one(&self.w.t.owner)
            .await
            .unwrap()
    }
}

pub(super) fn meta_signature(raw: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(META_APP_SECRET.as_bytes()).unwrap();
    mac.update(raw);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An Evolution `messages.upsert` around a `message` node.
pub(super) fn evo_upsert(
    id: &str,
    phone: &str,
    name: &str,
    ts: i64,
    message: Value,
    message_type: &str,
) -> Value {
    json!({
        "event": "messages.upsert",
        "instance": "clinic",
        "data": {
            "key": { "remoteJid": format!("{phone}@s.whatsapp.net"), "fromMe": false, "id": id },
            "pushName": name,
            "status": "DELIVERY_ACK",
            "message": message,
            "messageType": message_type,
            "messageTimestamp": ts,
            "source": "android"
        },
        "sender": "5511977776666@s.whatsapp.net",
        "apikey": null
    })
}

pub(super) fn evo_text(id: &str, phone: &str, name: &str, ts: i64, text: &str) -> Value {
    evo_upsert(
        id,
        phone,
        name,
        ts,
        json!({ "conversation": text }),
        "conversation",
    )
}

pub(super) fn evo_status(key_id: &str, status: &str) -> Value {
    json!({
        "event": "messages.update",
        "instance": "clinic",
        "data": { "keyId": key_id, "remoteJid": "5511988887777@s.whatsapp.net", "fromMe": true, "status": status, "messageId": "cm0000000000" }
    })
}

pub(super) fn meta_envelope(value: Value) -> Value {
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": value }] }] })
}

pub(super) fn meta_text(wamid: &str, from: &str, name: &str, ts: i64, text: &str) -> Value {
    meta_envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": META_PHONE_ID },
        "contacts": [{ "profile": { "name": name }, "wa_id": from }],
        "messages": [{ "from": from, "id": wamid, "timestamp": ts.to_string(), "type": "text", "text": { "body": text } }]
    }))
}

pub(super) fn meta_status(wamid: &str, status: &str, ts: i64) -> Value {
    meta_envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "15550783881", "phone_number_id": META_PHONE_ID },
        "statuses": [{ "id": wamid, "status": status, "timestamp": ts.to_string(), "recipient_id": "5511988887777" }]
    }))
}
