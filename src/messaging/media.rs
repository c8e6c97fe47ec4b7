//! The `fetch_media` job: downloads a message's media from its gateway after the webhook
//! was acknowledged, seals it under the contact's key and keeps it in object storage.

use base64::Engine;
use uuid::Uuid;

use crate::domain::message::MediaState;
use crate::{
    crypto::Aad,
    db::{
        self,
        jobs::{BackgroundJob, JobMeta, Outcome},
        messages,
    },
    gateway::{DownloadedMedia, SendError},
    live,
    messaging::{
        FETCH_MEDIA, Messaging,
        channel::{self, Outbound},
    },
};

/// The largest media object we keep (WhatsApp documents go up to 100 MB; we cap lower).
pub(crate) const MAX_MEDIA_BYTES: usize = 64 * 1024 * 1024;

/// The `fetch_media` job: one inbound message's media, fetched once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FetchMedia {
    pub(crate) tenant_id: Uuid,
    #[serde(rename = "subject_id")]
    pub(crate) message_id: Uuid,
}

impl BackgroundJob for FetchMedia {
    const KIND: &'static str = FETCH_MEDIA;
    type Context = Messaging;

    async fn run(self, state: &Messaging, meta: &JobMeta) -> anyhow::Result<Outcome> {
        run(state, self.tenant_id, self.message_id, meta)
            .await
            .map(|()| Outcome::Done)
    }
}

pub(crate) fn object_key(tenant_id: Uuid, message_id: Uuid) -> String {
    format!("tenants/{tenant_id}/media/{message_id}")
}

async fn run(
    state: &Messaging,
    tenant_id: Uuid,
    message_id: Uuid,
    job: &JobMeta,
) -> anyhow::Result<()> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(msg) = messages::get(&mut tx, message_id).await? else {
        return Ok(());
    };
    if MediaState::of(msg.media_state.as_deref()) != Some(MediaState::Pending) {
        return Ok(()); // already stored, failed for good, or deleted after triage
    }
    let Some(source_sealed) = messages::media_source(&mut tx, message_id).await? else {
        return Ok(());
    };
    let channel = db::channels::get(&mut tx, msg.channel_id).await?;
    tx.commit().await?;
    let source = state
        .keys
        .open(
            tenant_id,
            msg.contact_id,
            Aad::new("messages", "media_source", message_id),
            &source_sealed,
        )
        .await?;
    let source: serde_json::Value = serde_json::from_slice(&source)?;
    let fetched = fetch(state, channel.as_ref(), &source).await;
    let media = match fetched {
        Ok(m) if m.bytes.len() <= MAX_MEDIA_BYTES => m,
        outcome => {
            let final_state = match outcome {
                // Too large to keep.
                Ok(_) => MediaState::Failed,
                // The gateway says it will never have the file (expired media id, message
                // gone): retrying can't help; staff are told the media is gone.
                Err(e) if is_final(&e) => {
                    tracing::warn!(error = format!("{e:#}"), "media is gone at the gateway");
                    MediaState::Gone
                }
                Err(e) if job.attempts >= job.max_attempts => {
                    tracing::warn!(error = format!("{e:#}"), "media fetch failed for good");
                    MediaState::Failed
                }
                Err(e) => return Err(e),
            };
            return give_up(
                state,
                tenant_id,
                message_id,
                msg.conversation_id,
                final_state,
            )
            .await;
        }
    };
    let sealed = state
        .keys
        .seal(
            tenant_id,
            msg.contact_id,
            Aad::new("media", "bytes", message_id),
            &media.bytes,
        )
        .await?;
    let key = object_key(tenant_id, message_id);
    state.media.put(&key, &sealed).await?;
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    messages::set_media(
        &mut tx,
        message_id,
        MediaState::Stored,
        Some(&key),
        Some(media.bytes.len() as i64),
        media.mime.as_deref(),
    )
    .await?;
    tx.commit().await?;
    state
        .live
        .publish(
            tenant_id,
            &live::Event::Conversation {
                id: msg.conversation_id,
            },
        )
        .await;
    Ok(())
}

/// A 4xx other than 408 (timeout) and 429 (rate limit): the same request will fail again.
fn is_final(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<SendError>(),
        Some(SendError::Rejected { status, .. })
            if (400..500).contains(status) && !matches!(status, 408 | 429)
    )
}

async fn give_up(
    state: &Messaging,
    tenant_id: Uuid,
    message_id: Uuid,
    conversation_id: Uuid,
    media_state: MediaState,
) -> anyhow::Result<()> {
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    messages::set_media(&mut tx, message_id, media_state, None, None, None).await?;
    tx.commit().await?;
    state
        .live
        .publish(
            tenant_id,
            &live::Event::Conversation {
                id: conversation_id,
            },
        )
        .await;
    Ok(())
}

async fn fetch(
    state: &Messaging,
    channel: Option<&db::channels::Channel>,
    source: &serde_json::Value,
) -> anyhow::Result<DownloadedMedia> {
    if let Some(b64) = source.get("inline").and_then(|v| v.as_str()) {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
        return Ok(DownloadedMedia {
            bytes,
            mime: None,
            filename: None,
        });
    }
    let channel = channel.ok_or_else(|| anyhow::anyhow!("the message's channel is gone"))?;
    match channel::outbound(state, channel).await? {
        Outbound::Evolution(c) => {
            let e = source
                .get("evolution")
                .ok_or_else(|| anyhow::anyhow!("no Evolution media reference"))?;
            let key = crate::gateway::EvolutionKey {
                id: e
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                remote_jid: e
                    .get("remote_jid")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                from_me: e.get("from_me").and_then(|v| v.as_bool()).unwrap_or(false),
                participant: e
                    .get("participant")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            };
            Ok(
                c.fetch_media_base64(&key, e.get("message").filter(|m| !m.is_null()), false)
                    .await?,
            )
        }
        Outbound::Meta(c) => {
            let id = source
                .get("meta")
                .and_then(|v| v.as_str())
                .ok_or_else(|| anyhow::anyhow!("no Meta media id"))?;
            Ok(c.get_media(id).await?)
        }
        Outbound::Simulator => anyhow::bail!("the simulator has no remote media"),
    }
}
