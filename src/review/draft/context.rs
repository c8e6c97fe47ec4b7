//! What the prompt is built from: the turn's recent messages (text opened, extras noted,
//! media loaded or described), the customer's profile and the tenant's settings.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::message::{Author, MediaState};
use crate::{
    ai::context::{ConversationMessage, CustomerProfile, Direction, Media, TenantSettings},
    crypto::Aad,
    db::{
        self,
        ai::AiSettings,
        messages::{self, Message},
        tenants::Tenant,
    },
    domain::{knowledge::WEEKDAYS, message::Direction as Stored},
    i18n::Lang,
    review::Review,
};

/// How many recent messages are loaded for the context (the budget trims further).
const RECENT: i64 = 40;

/// The turn's recent messages, oldest first, and the newest of them — or `None` when there
/// is nothing to answer (no messages, or the newest is ours). Deleted messages and chat
/// notices are left out. An error while media of this turn is still being fetched (the job
/// retries).
pub(super) async fn recent_turn(
    tx: &mut PgConnection,
    conversation_id: Uuid,
) -> anyhow::Result<Option<(Vec<Message>, Message)>> {
    let mut recent = messages::thread(tx, conversation_id, None, RECENT).await?;
    recent.reverse();
    // Deleted messages and chat notices are not part of what the customer is saying.
    recent.retain(|m| m.deleted_at.is_none() && m.written_by() != Some(Author::System));
    let Some(latest) = recent.last().cloned() else {
        return Ok(None);
    };
    if !inbound(&latest) {
        return Ok(None); // already answered
    }
    if recent
        .iter()
        .rev()
        .take_while(|m| inbound(m))
        .any(|m| MediaState::of(m.media_state.as_deref()) == Some(MediaState::Pending))
    {
        anyhow::bail!("media of this turn is still being fetched");
    }
    Ok(Some((recent, latest)))
}

/// Whether the customer wrote it (an unknown stored direction counts as ours: nothing to
/// answer).
fn inbound(m: &Message) -> bool {
    Stored::parse(&m.direction) == Some(Stored::In)
}

/// The conversation as the context builder sees it: text opened, media described.
pub(super) async fn conversation_messages(
    state: &Review,
    tenant_id: Uuid,
    recent: &[Message],
) -> anyhow::Result<Vec<ConversationMessage>> {
    let mut out = Vec::with_capacity(recent.len());
    for m in recent {
        // A deleted message is gone for everyone; a chat notice is nobody's words.
        if m.deleted_at.is_some() || m.written_by() == Some(Author::System) {
            continue;
        }
        let mut text = match m.body_sealed.as_deref() {
            Some(b)
                if matches!(
                    m.kind.as_str(),
                    "text"
                        | "image"
                        | "video"
                        | "document"
                        | "voice"
                        | "audio"
                        | "template"
                        | "button_reply"
                        | "order"
                        | "poll"
                ) =>
            {
                state
                    .keys
                    .open_str(
                        tenant_id,
                        m.contact_id,
                        Aad::new("messages", "body", m.id),
                        b,
                    )
                    .await?
            }
            _ => String::new(),
        };
        // The chosen option's id, a form's answers, an order's items, the ad they came from.
        if let Some(e) = m.extra_sealed.as_deref() {
            let e = state
                .keys
                .open_str(
                    tenant_id,
                    m.contact_id,
                    Aad::new("messages", "extra", m.id),
                    e,
                )
                .await?;
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e) {
                let note = crate::messaging::extra::ai_note(&v);
                if !note.is_empty() {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&note);
                }
            }
        }
        let media = match (m.kind.as_str(), m.media_state.as_deref()) {
            ("image", Some("stored")) => match load_media(state, tenant_id, m).await {
                Some(bytes) => vec![Media::Image {
                    mime: m.media_mime.clone().unwrap_or_else(|| "image/jpeg".into()),
                    bytes,
                }],
                None => vec![Media::Other {
                    mime: "image".into(),
                }],
            },
            ("image", _) => vec![Media::Other {
                mime: "image".into(),
            }],
            ("voice" | "audio", _) => vec![Media::Audio {
                mime: m.media_mime.clone().unwrap_or_default(),
                transcript: None,
            }],
            ("video" | "document" | "sticker" | "location" | "contacts", _) => vec![Media::Other {
                mime: m.kind.clone(),
            }],
            _ => Vec::new(),
        };
        let direction = if inbound(m) {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        out.push(ConversationMessage {
            direction,
            staff_author: m
                .written_by()
                .is_some_and(Author::is_staff)
                .then(|| "staff".to_owned()),
            text,
            media,
        });
    }
    Ok(out)
}

pub(super) async fn load_media(state: &Review, tenant_id: Uuid, m: &Message) -> Option<Vec<u8>> {
    let sealed = state.media.get(m.media_key.as_deref()?).await.ok()??;
    state
        .keys
        .open(
            tenant_id,
            m.contact_id,
            Aad::new("media", "bytes", m.id),
            &sealed,
        )
        .await
        .ok()
}

pub(super) async fn customer_profile(
    state: &Review,
    tenant_id: Uuid,
    c: &db::contacts::Contact,
) -> CustomerProfile {
    let v = crate::messaging::view::contact(&state.messaging, tenant_id, c).await;
    CustomerProfile {
        name: v.name,
        notes: (!v.notes.is_empty()).then_some(v.notes),
        tags: v.tags,
    }
}

fn hours_text(hours: &serde_json::Value) -> String {
    WEEKDAYS
        .iter()
        .filter_map(|d| {
            let span = hours.get(*d)?.get(0)?;
            Some(format!(
                "{d} {}-{}",
                span.get(0)?.as_str()?,
                span.get(1)?.as_str()?
            ))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tenant's side of the prompt: business name, instructions, tone, language, hours.
pub(super) fn prompt_settings(
    tenant: Option<&Tenant>,
    ai_settings: &AiSettings,
    tenant_settings: &db::tenants::TenantSettings,
    lang: Lang,
) -> TenantSettings {
    TenantSettings {
        business_name: tenant.map(|t| t.name.clone()).unwrap_or_default(),
        instructions: ai_settings.instructions.clone(),
        tone: ai_settings.tone.clone(),
        language: lang,
        business_hours: hours_text(&tenant_settings.business_hours),
    }
}
