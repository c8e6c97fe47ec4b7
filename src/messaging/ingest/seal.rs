//! A message sealed under its contact's key, ready to insert: its body, media source,
//! the sender's name and phone (for a new or newly complete contact), a group sender, the
//! extra; and a conversation's reply address.

use uuid::Uuid;

use super::{contacts::Resolved, incoming::identity};
use crate::{
    crypto::Aad,
    gateway::{InboundMessage, MediaSource, MessageKind},
    messaging::Messaging,
    messaging::extra,
};

/// The kind as stored, and its text (body or caption) to seal.
pub(super) fn kind_and_text(kind: &MessageKind) -> (&'static str, Option<String>) {
    match kind {
        MessageKind::Text { body } => ("text", Some(body.clone())),
        MessageKind::Media { media, caption, .. } => (media_kind_str(media), caption.clone()),
        MessageKind::Location { lat, lng, name, address } => (
            "location",
            Some(serde_json::json!({ "lat": lat, "lng": lng, "name": name, "address": address }).to_string()),
        ),
        MessageKind::Contacts { entries } => (
            "contacts",
            Some(
                serde_json::json!(entries
                    .iter()
                    .map(|e| serde_json::json!({ "name": e.name, "phones": e.phones.iter().map(|p| p.as_str().to_owned()).collect::<Vec<_>>() }))
                    .collect::<Vec<_>>())
                .to_string(),
            ),
        ),
        MessageKind::Reaction { target_external_id, emoji } => (
            "reaction",
            Some(serde_json::json!({ "target": target_external_id, "emoji": emoji }).to_string()),
        ),
        // The title is what the customer chose; the id travels in the extra.
        MessageKind::ButtonReply { title, .. } => ("button_reply", Some(title.clone())),
        MessageKind::PollVote { .. } => ("poll_vote", None),
        MessageKind::Poll { name, options } => (
            "poll",
            Some(
                std::iter::once(name.clone())
                    .chain(options.iter().map(|o| format!("• {o}")))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
        MessageKind::Order { text, .. } => ("order", text.clone()),
        MessageKind::System { body, .. } => ("system", body.clone()),
        MessageKind::Unsupported { .. } => ("unsupported", None),
    }
}

pub(super) fn media_kind_str(m: &crate::gateway::MediaKind) -> &'static str {
    use crate::gateway::MediaKind::*;
    match m {
        Image => "image",
        Audio { voice: true } => "voice",
        Audio { voice: false } => "audio",
        Video => "video",
        Document => "document",
        Sticker => "sticker",
    }
}

/// The media source as it is sealed for the fetch job.
pub(super) fn media_source_json(source: &MediaSource) -> serde_json::Value {
    match source {
        MediaSource::Inline { base64 } => serde_json::json!({ "inline": base64 }),
        MediaSource::Url { url } => serde_json::json!({ "url": url }),
        MediaSource::EvolutionKey { key, message } => serde_json::json!({
            "evolution": { "id": key.id, "remote_jid": key.remote_jid, "from_me": key.from_me, "participant": key.participant, "message": message }
        }),
        MediaSource::MetaId { id } => serde_json::json!({ "meta": id }),
    }
}

/// A message sealed and ready to insert.
#[derive(Clone)]
pub(super) struct Prepared {
    pub(super) msg: InboundMessage,
    pub(super) contact: Resolved,
    pub(super) message_id: Uuid,
    pub(super) kind: &'static str,
    pub(super) body_sealed: Option<Vec<u8>>,
    pub(super) media_sealed: Option<Vec<u8>>,
    pub(super) name_sealed: Option<(Vec<u8>, Vec<String>)>,
    pub(super) phone_sealed: Option<Vec<u8>>,
    pub(super) sender_sealed: Option<Vec<u8>>,
    pub(super) extra_sealed: Option<Vec<u8>>,
    pub(super) chat_index: String,
}

pub(super) async fn prepare(
    state: &Messaging,
    tenant_id: Uuid,
    msg: InboundMessage,
    contact: Resolved,
) -> anyhow::Result<Prepared> {
    let keys = &state.keys;
    let (tenant, cid) = (tenant_id, contact.contact_id);
    let message_id = Uuid::now_v7();
    let (kind, text) = kind_and_text(&msg.kind);
    let body_sealed = match text {
        Some(t) => Some(
            keys.seal_str(tenant, cid, Aad::new("messages", "body", message_id), &t)
                .await?,
        ),
        None => None,
    };
    let media_sealed = match &msg.kind {
        MessageKind::Media { source, .. } => Some(
            keys.seal(
                tenant,
                cid,
                Aad::new("messages", "media_source", message_id),
                media_source_json(source).to_string().as_bytes(),
            )
            .await?,
        ),
        _ => None,
    };
    let name_sealed = match msg
        .sender_name
        .as_deref()
        .filter(|_| !msg.from_me && !contact.has_name)
    {
        Some(n) => Some((
            keys.seal_str(tenant, cid, Aad::new("contacts", "name", cid), n)
                .await?,
            keys.blind_words(tenant, n).await?,
        )),
        None => None,
    };
    let who = identity(&msg);
    let phone_sealed = match who
        .phone
        .as_ref()
        .filter(|_| contact.is_new || contact.add_phone)
    {
        Some(p) => Some(
            keys.seal_str(tenant, cid, Aad::new("contacts", "phone", cid), p.as_str())
                .await?,
        ),
        None => None,
    };
    // In a group, who wrote it (shown in the thread).
    let sender_sealed = match (msg.is_group, &msg.sender_name) {
        (true, Some(n)) => Some(
            keys.seal_str(tenant, cid, Aad::new("messages", "sender", message_id), n)
                .await?,
        ),
        _ => None,
    };
    let extra_sealed = match extra::for_message(&msg) {
        Some(e) => Some(
            keys.seal_str(
                tenant,
                cid,
                Aad::new("messages", "extra", message_id),
                &e.to_string(),
            )
            .await?,
        ),
        None => None,
    };
    let chat_index = if msg.is_group {
        keys.blind_phone(tenant, &format!("group:{}", msg.chat_id))
            .await?
    } else {
        format!("contact:{cid}")
    };
    Ok(Prepared {
        msg,
        contact,
        message_id,
        kind,
        body_sealed,
        media_sealed,
        name_sealed,
        phone_sealed,
        sender_sealed,
        extra_sealed,
        chat_index,
    })
}

/// The conversation's reply address, sealed: under the tenant's key for a group (its
/// address is the tenant's, not one member's), else under the contact's.
pub(super) async fn seal_chat(
    state: &Messaging,
    p: &Prepared,
    tenant_id: Uuid,
    conversation: Uuid,
) -> anyhow::Result<Vec<u8>> {
    let aad = Aad::new("conversations", "chat", conversation);
    Ok(if p.msg.is_group {
        state
            .keys
            .seal_tenant_str(tenant_id, aad, &p.msg.chat_id)
            .await?
    } else {
        state
            .keys
            .seal_str(tenant_id, p.contact.contact_id, aad, &p.msg.chat_id)
            .await?
    })
}
