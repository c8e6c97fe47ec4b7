//! Steps 3 and 4 of `apply`: the batch's messages as one insert's rows, and what a stored
//! message sets off (its media fetch, a conversation taken over from the phone, a changed
//! number, a data-subject request keyword through `Effects`).

use std::collections::HashSet;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Batch, seal::Prepared};
use crate::domain::message::{Author, MediaState};
use crate::{
    crypto::Aad,
    db::{
        self, contacts, conversations, jobs,
        messages::{self, NewMessage},
    },
    domain::{
        conversation::Ownership,
        message::{Direction, MessageStatus},
    },
    gateway::MessageKind,
    messaging::Messaging,
    messaging::media::FetchMedia,
};

/// A message on its way into the batch's one insert.
pub(super) struct Row {
    /// Which of the deliveries it came in.
    pub(super) delivery: usize,
    pub(super) channel_id: Uuid,
    pub(super) now: OffsetDateTime,
    pub(super) p: Prepared,
}

pub(super) fn new_message(tenant_id: Uuid, r: &Row, conversation_id: Uuid) -> NewMessage<'_> {
    let p = &r.p;
    let (direction, author, status) = if p.msg.from_me {
        (Direction::Out, Author::Phone, MessageStatus::Sent)
    } else if matches!(p.msg.kind, MessageKind::System { .. }) {
        // A notice about the chat (number changed…): an event, not a customer's words.
        (Direction::In, Author::System, MessageStatus::Received)
    } else {
        (Direction::In, Author::Contact, MessageStatus::Received)
    };
    let media = match &p.msg.kind {
        MessageKind::Media { mime, .. } => Some(mime.as_deref()),
        _ => None,
    };
    NewMessage {
        id: p.message_id,
        tenant_id,
        conversation_id,
        channel_id: r.channel_id,
        contact_id: p.contact.contact_id,
        external_id: Some(&p.msg.external_id),
        direction: direction.as_str(),
        author: author.as_str(),
        author_user_id: None,
        kind: p.kind,
        body_sealed: p.body_sealed.clone(),
        media_kind: media.is_some().then_some(p.kind),
        media_mime: media.flatten(),
        media_source_sealed: p.media_sealed.clone(),
        media_state: media.is_some().then_some(MediaState::Pending.as_str()),
        quoted_external_id: p.msg.quoted_external_id.as_deref(),
        sender_sealed: p.sender_sealed.clone(),
        extra_sealed: p.extra_sealed.clone(),
        status: status.as_str(),
        sent_at: p.msg.timestamp,
    }
}

/// The follow-ups of a stored message: its media fetch, a conversation taken over from
/// the phone, a data-subject request by keyword. Returns whether it came from the end user
/// (`messages::insert_many` already marked its conversation unread and open).
pub(super) async fn after_stored(
    state: &Messaging,
    tx: &mut PgConnection,
    batch: &mut Batch<'_>,
    tenant_id: Uuid,
    r: &Row,
    conversation: Uuid,
) -> anyhow::Result<bool> {
    let p = &r.p;
    if matches!(p.msg.kind, MessageKind::Media { .. }) {
        jobs::enqueue(
            tx,
            &FetchMedia {
                tenant_id,
                message_id: p.message_id,
            },
            r.now,
            r.now,
        )
        .await?;
    }
    if p.msg.from_me {
        conversations::note_outbound(tx, conversation, p.msg.timestamp).await?;
        // Staff answered from the phone: the conversation is theirs now.
        conversations::set_ownership(tx, conversation, Ownership::AFTER_STAFF_WROTE).await?;
        return Ok(false);
    }
    if let MessageKind::System { new_phone, .. } = &p.msg.kind {
        if let Some(phone) = new_phone {
            move_number(
                state,
                tx,
                tenant_id,
                p.contact.contact_id,
                conversation,
                phone,
                r.now,
            )
            .await?;
        }
        return Ok(false); // no unread mark, no AI turn
    }
    // An end user can start a data-subject request by writing the tenant's keyword.
    if let MessageKind::Text { body } = &p.msg.kind {
        let keywords = match batch.keywords.get(&tenant_id) {
            Some(k) => k,
            None => {
                let k = db::privacy::dsr_keywords(tx)
                    .await?
                    .unwrap_or_else(crate::domain::privacy::default_keywords);
                batch.keywords.entry(tenant_id).or_insert(k)
            }
        };
        if crate::domain::privacy::is_keyword(body, keywords) {
            batch
                .effects
                .request_keyword(tx, tenant_id, p.contact.contact_id, body, r.now)
                .await?;
        }
    }
    Ok(true)
}

/// The customer changed number (Meta `user_changed_number`): the contact keeps its history
/// and conversation, and replies go to the new number.
pub(super) async fn move_number(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    conversation: Uuid,
    phone: &crate::domain::phone::Phone,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    let keys = &state.keys;
    let index = keys.blind_phone(tenant_id, phone.as_str()).await?;
    let sealed = keys
        .seal_str(
            tenant_id,
            contact_id,
            Aad::new("contacts", "phone", contact_id),
            phone.as_str(),
        )
        .await?;
    if !contacts::move_phone(tx, contact_id, &index, &sealed, now).await? {
        tracing::warn!(contact = %contact_id, "number change not applied: another contact already has the new number");
        return Ok(());
    }
    let chat = keys
        .seal_str(
            tenant_id,
            contact_id,
            Aad::new("conversations", "chat", conversation),
            phone.as_str(),
        )
        .await?;
    conversations::replace_chat(tx, conversation, &chat).await?;
    Ok(())
}

/// The batch's messages in one insert; the ids stored (a message whose external id is
/// stored already is not).
pub(super) async fn insert(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    rows: &[Row],
    conversation_of: &[Uuid],
    counted: &[Uuid],
) -> anyhow::Result<HashSet<Uuid>> {
    let new: Vec<(NewMessage<'_>, OffsetDateTime)> = rows
        .iter()
        .zip(conversation_of)
        .map(|(r, c)| (new_message(tenant_id, r, *c), r.now))
        .collect();
    Ok(messages::insert_many(tx, &new, counted)
        .await?
        .into_iter()
        .collect())
}
