//! What the inbox and conversation pages show: rows opened (decrypted) for display, times in
//! the tenant's time zone. A contact whose key was destroyed shows as erased, never as an
//! error.

use crate::messaging::Messaging;
use jiff::tz::TimeZone;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    crypto::{Aad, CryptoError},
    db::{ai::Draft, contacts::Contact, conversations::ListRow, messages::Message},
    domain::{
        message::{Author, Direction, MessageStatus},
        phone::Phone,
    },
};

/// Formats times for one tenant.
#[derive(Clone)]
pub(crate) struct Clock {
    tz: TimeZone,
    now: OffsetDateTime,
}

impl Clock {
    pub(crate) fn new(time_zone: &str, now: OffsetDateTime) -> Clock {
        Clock {
            tz: TimeZone::get(time_zone).unwrap_or(TimeZone::UTC),
            now,
        }
    }

    fn zoned(&self, t: OffsetDateTime) -> Option<jiff::Zoned> {
        jiff::Timestamp::from_second(t.unix_timestamp())
            .ok()
            .map(|ts| ts.to_zoned(self.tz.clone()))
    }

    /// "14:05" today, "12/03 14:05" otherwise.
    pub(crate) fn short(&self, t: OffsetDateTime) -> String {
        let (Some(z), Some(now)) = (self.zoned(t), self.zoned(self.now)) else {
            return String::new();
        };
        if z.date() == now.date() {
            z.strftime("%H:%M").to_string()
        } else {
            z.strftime("%d/%m %H:%M").to_string()
        }
    }

    /// "2026-03-12 14:05 -03" for tooltips and exports.
    pub(crate) fn full(&self, t: OffsetDateTime) -> String {
        self.zoned(t)
            .map(|z| z.strftime("%Y-%m-%d %H:%M %Z").to_string())
            .unwrap_or_default()
    }
}

/// Opens a sealed field: `Ok(None)` when absent, `Err(())` when the key is destroyed.
async fn open_opt(
    state: &Messaging,
    tenant: Uuid,
    contact: Uuid,
    aad: Aad<'_>,
    sealed: Option<&[u8]>,
) -> Result<Option<String>, ()> {
    let Some(s) = sealed else { return Ok(None) };
    match state.keys.open_str(tenant, contact, aad, s).await {
        Ok(v) => Ok(Some(v)),
        Err(CryptoError::KeyDestroyed) => Err(()),
        Err(e) => {
            tracing::error!(error = %e, "could not open a sealed field");
            Err(())
        }
    }
}

pub(crate) struct ContactView {
    pub(crate) id: Uuid,
    pub(crate) name: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) erased: bool,
    pub(crate) restricted: bool,
    pub(crate) notes: String,
    pub(crate) tags: Vec<String>,
}

impl ContactView {
    /// Name, else the formatted phone, else a neutral label.
    pub(crate) fn label(&self) -> String {
        if self.erased {
            return "—".into();
        }
        self.name
            .clone()
            .or_else(|| self.phone.clone().map(|p| format!("+{p}")))
            .unwrap_or_else(|| "?".into())
    }
}

pub(crate) async fn contact(state: &Messaging, tenant: Uuid, c: &Contact) -> ContactView {
    let name = open_opt(
        state,
        tenant,
        c.id,
        Aad::new("contacts", "name", c.id),
        c.name_sealed.as_deref(),
    )
    .await;
    let phone = open_opt(
        state,
        tenant,
        c.id,
        Aad::new("contacts", "phone", c.id),
        c.phone_sealed.as_deref(),
    )
    .await;
    let profile = open_opt(
        state,
        tenant,
        c.id,
        Aad::new("contacts", "profile", c.id),
        c.profile_sealed.as_deref(),
    )
    .await;
    let erased = c.erased_at.is_some() || name.is_err() || phone.is_err();
    let notes = profile
        .ok()
        .flatten()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .and_then(|v| v.get("notes").and_then(|n| n.as_str()).map(str::to_owned))
        .unwrap_or_default();
    ContactView {
        id: c.id,
        name: name.ok().flatten(),
        phone: phone.ok().flatten(),
        erased,
        restricted: c.restricted_at.is_some(),
        notes,
        tags: c.tags.clone(),
    }
}

pub(crate) struct InboxRow {
    pub(crate) id: Uuid,
    pub(crate) label: String,
    pub(crate) preview: String,
    pub(crate) preview_kind: String,
    pub(crate) outbound: bool,
    pub(crate) time: String,
    pub(crate) time_full: String,
    pub(crate) unread: i32,
    pub(crate) status: String,
    pub(crate) ownership: String,
    pub(crate) is_group: bool,
    pub(crate) labels: Vec<String>,
    pub(crate) erased: bool,
    /// An emergency still waiting for a person.
    pub(crate) urgent: bool,
}

fn truncate(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

pub(crate) async fn inbox_row(
    state: &Messaging,
    tenant: Uuid,
    clock: &Clock,
    r: &ListRow,
) -> InboxRow {
    let cid = r.contact_id;
    let name = open_opt(
        state,
        tenant,
        cid,
        Aad::new("contacts", "name", cid),
        r.contact_name_sealed.as_deref(),
    )
    .await;
    let phone = open_opt(
        state,
        tenant,
        cid,
        Aad::new("contacts", "phone", cid),
        r.contact_phone_sealed.as_deref(),
    )
    .await;
    let preview = match (r.last_message_id, r.last_body_sealed.as_deref()) {
        (Some(mid), Some(b)) => {
            open_opt(
                state,
                tenant,
                cid,
                Aad::new("messages", "body", mid),
                Some(b),
            )
            .await
        }
        _ => Ok(None),
    };
    let erased = r.contact_erased || name.is_err() || phone.is_err();
    let group = if r.is_group {
        crate::messaging::groups::subject(state, tenant, r.id, r.group_name_sealed.as_deref()).await
    } else {
        None
    };
    let label = if let Some(g) = group {
        g
    } else if erased {
        "—".into()
    } else {
        name.ok()
            .flatten()
            .or_else(|| {
                phone
                    .ok()
                    .flatten()
                    .and_then(|p| Phone::try_from(p.as_str()).ok())
                    .map(|p| format!("+{}", p.as_str()))
            })
            .unwrap_or_else(|| "?".into())
    };
    InboxRow {
        id: r.id,
        label,
        preview: truncate(&preview.ok().flatten().unwrap_or_default(), 90),
        preview_kind: r.last_kind.clone().unwrap_or_default(),
        outbound: r.last_direction.as_deref().and_then(Direction::parse) == Some(Direction::Out),
        time: clock.short(r.last_message_at),
        time_full: clock.full(r.last_message_at),
        unread: r.unread_count,
        status: r.status.clone(),
        ownership: r.ownership.clone(),
        is_group: r.is_group,
        labels: r.labels.clone(),
        erased,
        urgent: false,
    }
}

pub(crate) struct ThreadMessage {
    pub(crate) id: Uuid,
    pub(crate) outbound: bool,
    pub(crate) author: String,
    pub(crate) kind: String,
    pub(crate) text: Option<String>,
    /// Structured content (location, contacts, reaction) as key/value lines.
    pub(crate) extra: Vec<(String, String)>,
    pub(crate) erased: bool,
    pub(crate) media_state: Option<String>,
    pub(crate) media_mime: Option<String>,
    pub(crate) media_deleted: Option<String>,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) time: String,
    pub(crate) time_full: String,
    pub(crate) quoted: bool,
    pub(crate) retryable: bool,
    /// Deleted for everyone by its sender: a tombstone, nothing left to show.
    pub(crate) deleted: bool,
    /// Edited by its sender after it arrived (the text shown is the newest).
    pub(crate) edited: bool,
    /// A notice about the chat (number changed…), not someone's words.
    pub(crate) system: bool,
    /// Reactions on this message (emoji), and how many people voted on this poll.
    pub(crate) reactions: Vec<String>,
    pub(crate) poll_votes: usize,
    /// Structured lines from the extra: (translation key under `extra.`, value).
    pub(crate) notes: Vec<(&'static str, String)>,
    /// For an approved AI reply: who approved it, and whether they edited it first.
    pub(crate) review: Option<ReviewNote>,
}

pub(crate) struct ReviewNote {
    pub(crate) by: String,
    pub(crate) edited: bool,
}

pub(crate) async fn thread_message(
    state: &Messaging,
    tenant: Uuid,
    clock: &Clock,
    m: &Message,
) -> ThreadMessage {
    let body = open_opt(
        state,
        tenant,
        m.contact_id,
        Aad::new("messages", "body", m.id),
        m.body_sealed.as_deref(),
    )
    .await;
    let sender = open_opt(
        state,
        tenant,
        m.contact_id,
        Aad::new("messages", "sender", m.id),
        m.sender_sealed.as_deref(),
    )
    .await;
    let extra_text = open_opt(
        state,
        tenant,
        m.contact_id,
        Aad::new("messages", "extra", m.id),
        m.extra_sealed.as_deref(),
    )
    .await;
    let erased = body.is_err();
    let body = body.ok().flatten();
    let shown = extra_text
        .ok()
        .flatten()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e).ok())
        .map(|e| crate::messaging::extra::shown(&e))
        .unwrap_or_default();
    let (text, extra) = match m.kind.as_str() {
        "location" | "contacts" | "reaction" => {
            let v: serde_json::Value = body
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or_default();
            let mut extra = Vec::new();
            match m.kind.as_str() {
                "location" => {
                    for k in ["name", "address", "lat", "lng"] {
                        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
                            extra.push((
                                k.to_owned(),
                                x.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| x.to_string()),
                            ));
                        }
                    }
                }
                "contacts" => {
                    for c in v.as_array().into_iter().flatten() {
                        let name = c
                            .get("name")
                            .and_then(|n| n.as_str())
                            .unwrap_or("?")
                            .to_owned();
                        let phones = c
                            .get("phones")
                            .and_then(|p| p.as_array())
                            .map(|p| {
                                p.iter()
                                    .filter_map(|x| x.as_str())
                                    .map(|x| format!("+{x}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            })
                            .unwrap_or_default();
                        extra.push((name, phones));
                    }
                }
                _ => {
                    let emoji = v
                        .get("emoji")
                        .and_then(|e| e.as_str())
                        .unwrap_or("")
                        .to_owned();
                    extra.push(("emoji".into(), emoji));
                }
            }
            (None, extra)
        }
        _ => (body, Vec::new()),
    };
    let direction = Direction::parse(&m.direction);
    let author = match (direction, m.written_by()) {
        (_, Some(Author::System)) => String::new(),
        (Some(Direction::In), _) => sender.ok().flatten().unwrap_or_default(),
        // Outbound: the template shows the author kind's label (`author.member`…).
        (_, _) => m.author.clone(),
    };
    let outbound = direction == Some(Direction::Out);
    ThreadMessage {
        id: m.id,
        outbound,
        author,
        kind: m.kind.clone(),
        text,
        extra,
        erased,
        media_state: m.media_state.clone(),
        media_mime: m.media_mime.clone(),
        media_deleted: m.media_deleted_at.map(|t| clock.full(t)),
        status: m.status.clone(),
        error: m.error.clone(),
        time: clock.short(m.sent_at),
        time_full: clock.full(m.sent_at),
        quoted: m.quoted_external_id.is_some(),
        retryable: outbound
            && MessageStatus::parse(&m.status).is_some_and(MessageStatus::retryable),
        deleted: m.deleted_at.is_some(),
        edited: m.edited_at.is_some(),
        system: m.written_by() == Some(Author::System),
        reactions: shown.reactions,
        poll_votes: shown.poll_votes,
        notes: shown.lines,
        review: None,
    }
}

/// A draft's text as the AI wrote it.
pub(crate) async fn original_text(
    state: &Messaging,
    tenant_id: Uuid,
    d: &Draft,
) -> anyhow::Result<Option<String>> {
    draft_text(
        state,
        tenant_id,
        d,
        "original",
        d.original_sealed.as_deref(),
    )
    .await
}

/// A draft's text as approved (edited or not), once it was.
pub(crate) async fn final_text(
    state: &Messaging,
    tenant_id: Uuid,
    d: &Draft,
) -> anyhow::Result<Option<String>> {
    draft_text(state, tenant_id, d, "final", d.final_sealed.as_deref()).await
}

/// Opens one of a draft's sealed text columns, bound to its row and column.
async fn draft_text(
    state: &Messaging,
    tenant_id: Uuid,
    d: &Draft,
    column: &'static str,
    sealed: Option<&[u8]>,
) -> anyhow::Result<Option<String>> {
    let Some(s) = sealed else {
        return Ok(None);
    };
    let aad = Aad::new("drafts", column, d.id);
    Ok(Some(
        state.keys.open_str(tenant_id, d.contact_id, aad, s).await?,
    ))
}
