//! Step 5 of `apply`, after the batch's messages (a reaction may follow its message in
//! the same batch): marks and revisions of earlier messages, delivery statuses and the
//! channel's connection health.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    IngestOutcome,
    incoming::{Mark, MarkKind},
};
use crate::{
    crypto::Aad,
    db::{self, channels::Channel, messages},
    gateway::{ConnectionState, ConnectionUpdate, MessageRevision, Revision, StatusUpdate},
    messaging::Messaging,
    messaging::extra,
};

/// What a delivery carries besides new messages.
pub(super) struct Rest {
    pub(super) channel: Channel,
    pub(super) statuses: Vec<StatusUpdate>,
    pub(super) connection: Option<ConnectionUpdate>,
    pub(super) marks: Vec<Mark>,
    pub(super) revisions: Vec<MessageRevision>,
    pub(super) now: OffsetDateTime,
}

/// Applies each delivery's [`Rest`], counting into its outcome.
pub(super) async fn apply(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    rest: Vec<Rest>,
    outs: &mut [IngestOutcome],
) -> anyhow::Result<()> {
    for (
        Rest {
            channel,
            statuses,
            connection,
            marks,
            revisions,
            now,
        },
        out,
    ) in rest.into_iter().zip(outs)
    {
        // After this batch's messages: a reaction may follow its message in the same batch.
        for m in &marks {
            if apply_mark(state, tx, tenant_id, channel.id, m).await? {
                out.changes += 1;
            } else {
                out.ignored += 1;
            }
        }
        for r in &revisions {
            if apply_revision(state, tx, tenant_id, channel.id, r, now).await? {
                out.changes += 1;
            } else {
                out.ignored += 1;
            }
        }
        for s in statuses {
            let error = s.error.as_ref().map(|e| match e.code {
                Some(c) => format!("{c}: {}", e.message),
                None => e.message.clone(),
            });
            if messages::advance_status_by_external(
                tx,
                channel.id,
                &s.external_id,
                s.status.as_str(),
                error.as_deref(),
            )
            .await?
            {
                out.statuses += 1;
            }
        }
        if let Some(c) = connection {
            let health = match c.state {
                ConnectionState::Open => "connected",
                ConnectionState::Connecting => "connecting",
                ConnectionState::Closed => "disconnected",
            };
            db::channels::set_health(
                tx,
                channel.id,
                health,
                c.reason.as_deref().unwrap_or(""),
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// Opens a message's extra (an empty object when it has none).
async fn open_extra(
    state: &Messaging,
    tenant_id: Uuid,
    m: &messages::Message,
) -> anyhow::Result<serde_json::Value> {
    Ok(match m.extra_sealed.as_deref() {
        Some(b) => {
            let text = state
                .keys
                .open_str(
                    tenant_id,
                    m.contact_id,
                    Aad::new("messages", "extra", m.id),
                    b,
                )
                .await?;
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({}))
        }
        None => serde_json::json!({}),
    })
}

/// Puts a reaction or vote on its message. `false` when the message is unknown (it may
/// predate the channel) or deleted, or nothing changed.
async fn apply_mark(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    channel_id: Uuid,
    mark: &Mark,
) -> anyhow::Result<bool> {
    let Some(target) = messages::for_change(tx, channel_id, &mark.target).await? else {
        return Ok(false);
    };
    if target.deleted_at.is_some() {
        return Ok(false);
    }
    let mut e = open_extra(state, tenant_id, &target).await?;
    let changed = match &mark.what {
        MarkKind::Reaction(emoji) => {
            extra::react(&mut e, &mark.by, mark.name.as_deref(), emoji.as_deref())
        }
        MarkKind::PollVote => extra::vote(&mut e, &mark.by, mark.name.as_deref()),
    };
    if !changed {
        return Ok(false);
    }
    let sealed = state
        .keys
        .seal_str(
            tenant_id,
            target.contact_id,
            Aad::new("messages", "extra", target.id),
            &e.to_string(),
        )
        .await?;
    messages::set_extra(tx, target.id, Some(&sealed)).await?;
    Ok(true)
}

/// Kinds whose body is the sender's text, which WhatsApp lets them edit.
const EDITABLE: &[&str] = &[
    "text", "image", "video", "document", "voice", "audio", "sticker",
];

/// Applies an edit or a "delete for everyone", and flags drafts written on the old text.
/// `false` when the message is unknown, already deleted, or the edit changes nothing.
async fn apply_revision(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    channel_id: Uuid,
    r: &MessageRevision,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let Some(target) = messages::for_change(tx, channel_id, &r.target_external_id).await? else {
        return Ok(false);
    };
    if target.deleted_at.is_some() {
        return Ok(false);
    }
    let (tenant, cid, id) = (tenant_id, target.contact_id, target.id);
    let what = match &r.change {
        Revision::Edited { text } => {
            if !EDITABLE.contains(&target.kind.as_str()) {
                return Ok(false);
            }
            let current = match target.body_sealed.as_deref() {
                Some(b) => Some(
                    state
                        .keys
                        .open_str(tenant, cid, Aad::new("messages", "body", id), b)
                        .await?,
                ),
                None => None,
            };
            if current.as_deref() == Some(text.as_str()) {
                return Ok(false); // the same edit delivered again
            }
            // The first original is kept, sealed under its own column's binding.
            let original = match (messages::original(tx, id).await?, current) {
                (None, Some(old)) => Some(
                    state
                        .keys
                        .seal_str(tenant, cid, Aad::new("messages", "original", id), &old)
                        .await?,
                ),
                _ => None,
            };
            let body = state
                .keys
                .seal_str(tenant, cid, Aad::new("messages", "body", id), text)
                .await?;
            if !messages::set_edited(
                tx,
                id,
                &body,
                original.as_deref(),
                r.timestamp.unwrap_or(now),
            )
            .await?
            {
                return Ok(false);
            }
            "edited"
        }
        Revision::Deleted => {
            let Some(media_key) = messages::tombstone(tx, id, now).await? else {
                return Ok(false);
            };
            // The stored file goes with it. Should the commit fail, the gateway's retry
            // finds the row still live and deletes again (a missing object is no error).
            if let Some(k) = media_key {
                state.media.delete(&k).await?;
            }
            "deleted"
        }
    };
    crate::db::ai::flag_source_changed(tx, target.conversation_id, target.created_at, what).await?;
    Ok(true)
}
