//! Durable ingestion: gateway events become contacts, conversations and sealed messages in
//! one transaction, together with the jobs they cause, before the gateway gets its 2xx.
//!
//! Two halves: `prepare_delivery` does what needs no database, concurrently per request
//! (the senders' blind indexes); `apply` does the rest for all of one tenant's deliveries
//! of a batch at once, inside the transaction that `group_commit` shares between the
//! deliveries arriving together: it finds the senders, seals each message under its
//! contact's key, and writes.
//!
//! Keys come first: a new contact's data key is committed to the key store before the
//! contact row can commit (a key whose contact row never committed is an orphan the sweep
//! removes), because everything about the contact is sealed under it. The keys of all the
//! new people of a batch are created together, in one key-store statement and commit.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    crypto::Aad,
    db::{
        self,
        channels::Channel,
        contacts::{self, ContactKeys, NewContact},
        conversations::{self, NewConversation, NewConversationWithChat, Upserted},
        jobs,
        messages::{self, NewMessage},
    },
    domain::{
        conversation::Ownership,
        events,
        message::{Direction, MessageStatus},
        phone::Phone,
    },
    gateway::{
        ConnectionState, ConnectionUpdate, InboundEvent, InboundMessage, MediaSource, MessageKind,
        MessageRevision, Revision, StatusUpdate,
    },
    messaging::{extra, group_commit::GroupCommit, groups::GroupSubject, media::FetchMedia},
    state::AppState,
};

/// What a webhook delivery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub statuses: usize,
    pub ignored: usize,
    /// Earlier messages changed: reactions, poll votes, edits, deletes.
    pub changes: usize,
    /// The conversations that received a new inbound message.
    pub conversations: Vec<Uuid>,
}

/// Who a message is about: the end user (1:1), or the sender inside a group.
struct Identity {
    phone: Option<Phone>,
    lid: Option<String>,
}

fn identity(m: &InboundMessage) -> Identity {
    if m.is_group {
        return Identity {
            phone: m.sender_phone.clone(),
            lid: m.sender_lid.clone(),
        };
    }
    // 1:1: the chat is the end user, whoever wrote this message.
    let chat_phone = Phone::try_from(m.chat_id.as_str()).ok();
    let chat_lid = m.chat_id.ends_with("@lid").then(|| m.chat_id.clone());
    Identity {
        phone: chat_phone.or_else(|| (!m.from_me).then(|| m.sender_phone.clone()).flatten()),
        lid: chat_lid.or_else(|| (!m.from_me).then(|| m.sender_lid.clone()).flatten()),
    }
}

/// A contact resolved (and keyed) before the transaction.
#[derive(Clone)]
struct Resolved {
    contact_id: Uuid,
    is_new: bool,
    /// The contact already has a name (a sender's push name only fills a missing one).
    has_name: bool,
    phone_index: Option<String>,
    lid_index: Option<String>,
    /// The existing contact lacks the phone (LID-only so far) or the LID.
    add_phone: bool,
    add_lid: bool,
}

/// The sender's blind indexes: keyed tokens of the phone and the LID (no database).
async fn sender_indexes(
    state: &AppState,
    tenant_id: Uuid,
    who: &Identity,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let phone_index = match &who.phone {
        Some(p) => Some(state.keys.blind_phone(tenant_id, p.as_str()).await?),
        None => None,
    };
    let lid_index = match &who.lid {
        Some(l) => Some(
            state
                .keys
                .blind_phone(tenant_id, &format!("lid:{l}"))
                .await?,
        ),
        None => None,
    };
    Ok((phone_index, lid_index))
}

/// Ids (with their data keys already created, all in one key-store statement) for the
/// senders of a batch that no contact matched when the batch began.
#[derive(Default)]
struct FreshIds {
    by_index: HashMap<String, Uuid>,
    used: HashSet<Uuid>,
}

impl FreshIds {
    /// One id per new person of these messages (matched by phone or LID token), each new
    /// id's key created in one key-store statement and commit.
    async fn create<'m>(
        state: &AppState,
        tenant_id: Uuid,
        known: &[ContactKeys],
        messages: impl Iterator<Item = &'m Incoming>,
    ) -> anyhow::Result<FreshIds> {
        let mut fresh = FreshIds::default();
        let mut ids = Vec::new();
        for m in messages {
            let matches = |i: &Option<String>, c: &Option<String>| i.is_some() && i == c;
            if known.iter().any(|c| {
                matches(&m.phone_index, &c.phone_index) || matches(&m.lid_index, &c.lid_index)
            }) {
                continue;
            }
            let id = match fresh.lookup(m.phone_index.as_deref(), m.lid_index.as_deref()) {
                Some(id) => id,
                None => {
                    let id = Uuid::now_v7();
                    ids.push(id);
                    id
                }
            };
            for i in m.phone_index.iter().chain(&m.lid_index) {
                fresh.by_index.entry(i.clone()).or_insert(id);
            }
        }
        state.keys.create_contact_keys(tenant_id, &ids).await?;
        Ok(fresh)
    }

    fn lookup(&self, phone: Option<&str>, lid: Option<&str>) -> Option<Uuid> {
        phone
            .and_then(|i| self.by_index.get(i))
            .or_else(|| lid.and_then(|i| self.by_index.get(i)))
            .copied()
    }

    /// The keyed id for this sender, once (a second new contact never gets the same id).
    fn take(&mut self, phone: Option<&str>, lid: Option<&str>) -> Option<Uuid> {
        let id = self.lookup(phone, lid)?;
        self.used.insert(id).then_some(id)
    }
}

/// Which known contact a message is from, or a new one (its data key created first: taken
/// from `fresh`, else created on its own).
async fn resolve_contact(
    state: &AppState,
    tenant_id: Uuid,
    known: &[ContactKeys],
    fresh: &mut FreshIds,
    m: &Incoming,
) -> anyhow::Result<Resolved> {
    let (phone_index, lid_index) = (m.phone_index.clone(), m.lid_index.clone());
    // Prefer the contact known by phone; a LID-only contact gains the phone when it appears.
    let by_phone = known
        .iter()
        .find(|c| c.phone_index.is_some() && c.phone_index == phone_index);
    let by_lid = known
        .iter()
        .find(|c| c.lid_index.is_some() && c.lid_index == lid_index);
    Ok(match by_phone.or(by_lid) {
        Some(c) => Resolved {
            contact_id: c.id,
            is_new: false,
            has_name: c.has_name,
            add_phone: phone_index.is_some() && c.phone_index.is_none() && by_phone.is_none(),
            add_lid: lid_index.is_some() && c.lid_index.is_none(),
            phone_index,
            lid_index,
        },
        None => {
            let id = match fresh.take(phone_index.as_deref(), lid_index.as_deref()) {
                Some(id) => id,
                None => {
                    let id = Uuid::now_v7();
                    state.keys.ensure_contact_key(tenant_id, id).await?;
                    id
                }
            };
            Resolved {
                contact_id: id,
                is_new: true,
                has_name: false,
                add_phone: false,
                add_lid: false,
                phone_index,
                lid_index,
            }
        }
    })
}

/// What the rest of the batch knows about a contact once its message is settled.
fn remember(known: &mut Vec<ContactKeys>, c: &Resolved, named: bool) {
    match known.iter_mut().find(|k| k.id == c.contact_id) {
        Some(k) => {
            if k.phone_index.is_none() {
                k.phone_index.clone_from(&c.phone_index);
            }
            if k.lid_index.is_none() {
                k.lid_index.clone_from(&c.lid_index);
            }
            k.has_name |= named;
        }
        None => known.push(ContactKeys {
            id: c.contact_id,
            phone_index: c.phone_index.clone(),
            lid_index: c.lid_index.clone(),
            has_name: c.has_name || named,
        }),
    }
}

/// The kind as stored, and its text (body or caption) to seal.
fn kind_and_text(kind: &MessageKind) -> (&'static str, Option<String>) {
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

pub fn media_kind_str(m: &crate::gateway::MediaKind) -> &'static str {
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
fn media_source_json(source: &MediaSource) -> serde_json::Value {
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
struct Prepared {
    msg: InboundMessage,
    contact: Resolved,
    message_id: Uuid,
    kind: &'static str,
    body_sealed: Option<Vec<u8>>,
    media_sealed: Option<Vec<u8>>,
    name_sealed: Option<(Vec<u8>, Vec<String>)>,
    phone_sealed: Option<Vec<u8>>,
    sender_sealed: Option<Vec<u8>>,
    extra_sealed: Option<Vec<u8>>,
    chat_index: String,
}

async fn prepare(
    state: &AppState,
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

/// A reaction or a poll vote: a mark on an earlier message, never a message of its own.
#[derive(Clone)]
struct Mark {
    target: String,
    /// Who marked it, as a stable pseudonym (the business, or a prefix of the sender's
    /// blind index), so a second reaction replaces the first.
    by: String,
    name: Option<String>,
    /// `Some(emoji)` / `None` (removed) for a reaction; a vote carries no content we can read.
    what: MarkKind,
}

#[derive(Clone)]
enum MarkKind {
    Reaction(Option<String>),
    PollVote,
}

/// A message as its request leaves it: parsed, its sender's blind indexes computed.
#[derive(Clone)]
struct Incoming {
    msg: InboundMessage,
    phone_index: Option<String>,
    lid_index: Option<String>,
}

/// A webhook delivery, verified and parsed, ready for one transaction.
#[derive(Clone)]
pub struct Delivery {
    channel: Channel,
    messages: Vec<Incoming>,
    statuses: Vec<StatusUpdate>,
    connection: Option<ConnectionUpdate>,
    marks: Vec<Mark>,
    revisions: Vec<MessageRevision>,
    ignored: usize,
    now: OffsetDateTime,
}

impl Delivery {
    pub fn tenant_id(&self) -> Uuid {
        self.channel.tenant_id
    }

    pub fn channel_id(&self) -> Uuid {
        self.channel.id
    }

    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Batches are written in this order (tenant, then the first sender's token): one
    /// tenant's deliveries together, and concurrent batches creating the same new contacts
    /// create them in the same order rather than waiting on each other crosswise.
    pub fn lock_order(&self) -> (Uuid, &str) {
        let sender = self
            .messages
            .first()
            .and_then(|m| m.phone_index.as_deref().or(m.lid_index.as_deref()))
            .unwrap_or_default();
        (self.channel.tenant_id, sender)
    }
}

/// Stores everything a webhook delivered. The caller answers 2xx only after this returns
/// Ok, which is after the transaction holding it committed.
pub async fn ingest(
    state: &AppState,
    commit: &Arc<GroupCommit>,
    channel: &Channel,
    events: Vec<InboundEvent>,
) -> anyhow::Result<IngestOutcome> {
    let delivery = prepare_delivery(state, channel, events).await?;
    commit.submit(state, delivery).await
}

/// Outside any transaction: what each message needs before its batch can look up all
/// the senders at once (their blind indexes).
pub async fn prepare_delivery(
    state: &AppState,
    channel: &Channel,
    events: Vec<InboundEvent>,
) -> anyhow::Result<Delivery> {
    let tenant_id = channel.tenant_id;
    let mut d = Delivery {
        channel: channel.clone(),
        messages: Vec::new(),
        statuses: Vec::new(),
        connection: None,
        marks: Vec::new(),
        revisions: Vec::new(),
        ignored: 0,
        now: state.now(),
    };
    for ev in events {
        match ev {
            InboundEvent::Message(m) if m.echo => {
                // Our own sends, echoed back: the send job already recorded them.
                d.ignored += 1;
            }
            InboundEvent::Message(m)
                if matches!(
                    m.kind,
                    MessageKind::Reaction { .. } | MessageKind::PollVote { .. }
                ) =>
            {
                let by = if m.from_me {
                    "business".to_owned()
                } else {
                    let who = Identity {
                        phone: m.sender_phone.clone(),
                        lid: m.sender_lid.clone(),
                    };
                    let who = if m.is_group { who } else { identity(&m) };
                    let (p, l) = sender_indexes(state, tenant_id, &who).await?;
                    match p.or(l).or_else(|| m.sender_user_id.clone()) {
                        Some(i) => format!("c:{}", i.chars().take(16).collect::<String>()),
                        None => "contact".to_owned(),
                    }
                };
                let (target, what) = match m.kind {
                    MessageKind::Reaction {
                        target_external_id,
                        emoji,
                    } => (target_external_id, MarkKind::Reaction(emoji)),
                    MessageKind::PollVote { poll_external_id } => {
                        (poll_external_id, MarkKind::PollVote)
                    }
                    _ => continue,
                };
                d.marks.push(Mark {
                    target,
                    by,
                    name: m.sender_name.filter(|_| m.is_group),
                    what,
                });
            }
            InboundEvent::Message(m) => {
                let m = m.bounded();
                let (phone_index, lid_index) =
                    sender_indexes(state, tenant_id, &identity(&m)).await?;
                if phone_index.is_none() && lid_index.is_none() {
                    d.ignored += 1;
                } else {
                    d.messages.push(Incoming {
                        msg: m,
                        phone_index,
                        lid_index,
                    });
                }
            }
            InboundEvent::Status(s) => d.statuses.push(s),
            InboundEvent::Connection(c) => d.connection = Some(c),
            InboundEvent::Revision(r) => d.revisions.push(r),
            InboundEvent::Ignored { .. } => d.ignored += 1,
        }
    }
    Ok(d)
}

/// What a stored inbound message sets off beyond messaging, decided by the modules above it
/// (`wiring` installs them: the AI turn is `review`'s, the request keyword `privacy`'s).
/// Both run in the batch's transaction, so they commit with the messages or not at all:
/// an acknowledged message never lacks its turn or its request.
#[async_trait::async_trait]
pub trait Effects: Send + Sync + 'static {
    /// Schedules each conversation's AI turn `(tenant, conversation, not before)`.
    async fn turns_due(
        &self,
        tx: &mut PgConnection,
        turns: &[(Uuid, Uuid, OffsetDateTime)],
        now: OffsetDateTime,
    ) -> anyhow::Result<()>;

    /// An end user wrote one of the tenant's data-subject request keywords (`text`).
    async fn request_keyword(
        &self,
        state: &AppState,
        tx: &mut PgConnection,
        tenant_id: Uuid,
        contact_id: Uuid,
        text: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<()>;
}

/// What the deliveries of one transaction share.
pub struct Batch<'e> {
    effects: &'e dyn Effects,
    /// Each tenant's request keywords, read once per transaction.
    keywords: HashMap<Uuid, Vec<String>>,
}

impl<'e> Batch<'e> {
    pub fn new(effects: &'e dyn Effects) -> Batch<'e> {
        Batch {
            effects,
            keywords: HashMap::new(),
        }
    }
}

/// A message on its way into the batch's one insert.
struct Row {
    /// Which of the deliveries it came in.
    delivery: usize,
    channel_id: Uuid,
    now: OffsetDateTime,
    p: Prepared,
}

/// Writes deliveries of one tenant in the caller's transaction, which row-level security
/// already scopes to that tenant, and says what each did (in their order). Marking the
/// channels as recently heard from is left to the caller (once per batch).
///
/// Set-based, because statements, not rows, are what ingestion pays for: one read finds
/// all the senders, whose messages are then sealed under their keys (a contact is written
/// only when new or newly complete), one locking read finds all the conversations, one
/// insert stores all the messages (marking each conversation once), and last come what
/// the stored messages cause.
pub async fn apply(
    state: &AppState,
    tx: &mut PgConnection,
    batch: &mut Batch<'_>,
    deliveries: Vec<Delivery>,
) -> anyhow::Result<Vec<IngestOutcome>> {
    let Some(tenant_id) = deliveries.first().map(Delivery::tenant_id) else {
        return Ok(Vec::new());
    };
    anyhow::ensure!(
        deliveries.iter().all(|d| d.tenant_id() == tenant_id),
        "ingest::apply takes one tenant's deliveries"
    );
    let mut outs: Vec<IngestOutcome> = deliveries
        .iter()
        .map(|d| IngestOutcome {
            ignored: d.ignored,
            ..Default::default()
        })
        .collect();

    // 1. Contacts: one read for every sender, then each message sealed under its key.
    let mut phones: Vec<String> = Vec::new();
    let mut lids: Vec<String> = Vec::new();
    for m in deliveries.iter().flat_map(|d| &d.messages) {
        phones.extend(m.phone_index.clone());
        lids.extend(m.lid_index.clone());
    }
    let mut known = if phones.is_empty() && lids.is_empty() {
        Vec::new()
    } else {
        contacts::find_many(tx, &phones, &lids).await?
    };
    // New people's keys: one key-store statement for the batch, committed before ours.
    let mut fresh = FreshIds::create(
        state,
        tenant_id,
        &known,
        deliveries.iter().flat_map(|d| &d.messages),
    )
    .await?;
    let mut rows = Vec::new();
    let mut rest = Vec::with_capacity(deliveries.len());
    for (i, d) in deliveries.into_iter().enumerate() {
        for m in d.messages {
            let contact = resolve_contact(state, tenant_id, &known, &mut fresh, &m).await?;
            let p = prepare(state, tenant_id, m.msg, contact).await?;
            // The batch's later messages know this person from here on (written below).
            remember(&mut known, &p.contact, p.name_sealed.is_some());
            rows.push(Row {
                delivery: i,
                channel_id: d.channel.id,
                now: d.now,
                p,
            });
        }
        rest.push((
            d.channel,
            d.statuses,
            d.connection,
            d.marks,
            d.revisions,
            d.now,
        ));
    }

    settle_contacts(state, tx, &mut known, tenant_id, &mut rows).await?;

    // 2. Conversations: nearly always they exist, and one read finds (and locks) them all.
    let mut keys: Vec<(Uuid, String)> = rows
        .iter()
        .map(|r| (r.channel_id, r.p.chat_index.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let mut conversations: HashMap<(Uuid, String), Upserted> = if keys.is_empty() {
        HashMap::new()
    } else {
        conversations::find_many_for_update(tx, tenant_id, &keys)
            .await?
            .into_iter()
            .map(|(channel, chat, c)| ((channel, chat), c))
            .collect()
    };
    // The new chats, created in one statement in key order (the order every writer locks
    // in), each with its reply address sealed under its new id.
    let mut first_row: HashMap<(Uuid, String), usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let key = (r.channel_id, r.p.chat_index.clone());
        if !conversations.contains_key(&key) {
            first_row.entry(key).or_insert(i);
        }
    }
    let mut new_chats: Vec<((Uuid, String), usize)> = first_row.into_iter().collect();
    new_chats.sort();
    let mut sealed_chats = Vec::with_capacity(new_chats.len());
    for (_, i) in &new_chats {
        let id = Uuid::now_v7();
        sealed_chats.push((id, seal_chat(state, &rows[*i].p, tenant_id, id).await?));
    }
    let created = conversations::upsert_many(
        tx,
        &new_chats
            .iter()
            .zip(&sealed_chats)
            .map(|((_, i), (id, sealed))| {
                let r = &rows[*i];
                NewConversationWithChat {
                    conversation: NewConversation {
                        id: *id,
                        tenant_id,
                        channel_id: r.channel_id,
                        contact_id: r.p.contact.contact_id,
                        chat_index: &r.p.chat_index,
                        is_group: r.p.msg.is_group,
                    },
                    chat_sealed: sealed,
                    at: r.p.msg.timestamp,
                }
            })
            .collect::<Vec<_>>(),
    )
    .await?;
    for (((key, i), (id, _)), c) in new_chats.into_iter().zip(&sealed_chats).zip(created) {
        let r = &rows[i];
        if c.id == *id && r.p.msg.is_group {
            // Label the group with its subject, asked of the gateway after the commit.
            enqueue_group_subject(tx, tenant_id, c.id, r.now).await?;
        }
        // One created meanwhile by a concurrent delivery may still lack its address.
        conversations.insert(key, c);
    }
    drop(sealed_chats);
    let mut conversation_of = Vec::with_capacity(rows.len());
    for r in &rows {
        let key = (r.channel_id, r.p.chat_index.clone());
        let c = match conversations.get(&key) {
            Some(c) => *c,
            None => anyhow::bail!("a batch's conversation was neither found nor created"),
        };
        // Where replies go: the group, or the person as the gateway addresses them.
        if c.needs_chat {
            let sealed = seal_chat(state, &r.p, tenant_id, c.id).await?;
            conversations::set_chat(tx, c.id, &sealed).await?;
            if r.p.msg.is_group {
                enqueue_group_subject(tx, tenant_id, c.id, r.now).await?;
            }
            conversations.insert(
                key,
                Upserted {
                    needs_chat: false,
                    ..c
                },
            );
        }
        conversation_of.push(c.id);
    }

    // 3. Messages, in one statement.
    let new: Vec<(NewMessage<'_>, OffsetDateTime)> = rows
        .iter()
        .zip(&conversation_of)
        .map(|(r, c)| (new_message(tenant_id, r, *c), r.now))
        .collect();
    let stored: HashSet<Uuid> = messages::insert_many(tx, &new).await?.into_iter().collect();
    drop(new);

    // 4. What the stored messages cause.
    let mut received = Vec::new();
    for (r, conversation) in rows.iter().zip(conversation_of) {
        let out = &mut outs[r.delivery];
        if !stored.contains(&r.p.message_id) {
            out.duplicates += 1;
            continue;
        }
        out.stored += 1;
        let inbound = after_stored(state, tx, batch, tenant_id, r, conversation).await?;
        if inbound {
            received.push((
                serde_json::json!({
                    "conversation_id": conversation,
                    "message_id": r.p.message_id,
                    "status": MessageStatus::Received.as_str(),
                }),
                None,
            ));
        }
        if inbound && !out.conversations.contains(&conversation) {
            out.conversations.push(conversation);
        }
    }
    // Outgoing webhooks: one statement for the whole group (nothing when no endpoint
    // listens); the workers are woken after the batch's commit.
    let now = rows.first().map_or_else(|| state.now(), |r| r.now);
    db::outgoing::emit(tx, tenant_id, events::MESSAGE_RECEIVED, &received, now).await?;

    for ((channel, statuses, connection, marks, revisions, now), out) in
        rest.into_iter().zip(&mut outs)
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
    // Each conversation with new customer messages gets one AI turn: the caller enqueues
    // them for the whole batch at once (`review::draft::schedule_many`).
    Ok(outs)
}

/// Writes what is new about the batch's contacts: the new people in one statement, then
/// a phone, LID or name a known one lacked (in message order). A message whose new person
/// a concurrent transaction created first is sealed again under that contact's key.
/// `known` already holds every contact as the messages left it (`remember`).
async fn settle_contacts(
    state: &AppState,
    tx: &mut PgConnection,
    known: &mut Vec<ContactKeys>,
    tenant_id: Uuid,
    rows: &mut [Row],
) -> anyhow::Result<()> {
    let token = |r: &Row| {
        r.p.contact
            .phone_index
            .clone()
            .or_else(|| r.p.contact.lid_index.clone())
    };
    // In token order: concurrent batches creating the same people wait in one order.
    let mut new: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].p.contact.is_new)
        .collect();
    new.sort_by_key(|&i| token(&rows[i]));
    let inserted: HashSet<Uuid> = contacts::insert_many(
        tx,
        tenant_id,
        &new.iter()
            .map(|&i| {
                let (p, now) = (&rows[i].p, rows[i].now);
                let contact = NewContact {
                    id: p.contact.contact_id,
                    tenant_id,
                    phone_index: p.contact.phone_index.as_deref(),
                    lid_index: p.contact.lid_index.as_deref(),
                    phone_sealed: p.phone_sealed.clone(),
                    name_sealed: p.name_sealed.as_ref().map(|(s, _)| s.clone()),
                    name_tokens: p
                        .name_sealed
                        .as_ref()
                        .map(|(_, t)| t.clone())
                        .unwrap_or_default(),
                };
                (contact, now)
            })
            .collect::<Vec<_>>(),
    )
    .await?
    .into_iter()
    .collect();
    let conflicted: HashSet<Uuid> = new
        .iter()
        .map(|&i| rows[i].p.contact.contact_id)
        .filter(|id| !inserted.contains(id))
        .collect();
    if !conflicted.is_empty() {
        // A concurrent transaction created these people first: their messages are sealed
        // again under the contacts it created (in message order, as if found at first).
        known.retain(|k| !conflicted.contains(&k.id));
        let (mut phones, mut lids) = (Vec::new(), Vec::new());
        for r in rows
            .iter()
            .filter(|r| conflicted.contains(&r.p.contact.contact_id))
        {
            phones.extend(r.p.contact.phone_index.clone());
            lids.extend(r.p.contact.lid_index.clone());
        }
        known.append(&mut contacts::find_many(tx, &phones, &lids).await?);
        for r in rows
            .iter_mut()
            .filter(|r| conflicted.contains(&r.p.contact.contact_id))
        {
            let incoming = Incoming {
                phone_index: r.p.contact.phone_index.clone(),
                lid_index: r.p.contact.lid_index.clone(),
                msg: r.p.msg.clone(),
            };
            let contact =
                resolve_contact(state, tenant_id, known, &mut FreshIds::default(), &incoming)
                    .await?;
            anyhow::ensure!(
                !contact.is_new,
                "contact insert conflicted but no contact was found"
            );
            r.p = prepare(state, tenant_id, incoming.msg, contact).await?;
            remember(known, &r.p.contact, r.p.name_sealed.is_some());
        }
    }
    for r in rows.iter().filter(|r| !r.p.contact.is_new) {
        let (p, now) = (&r.p, r.now);
        let cid = p.contact.contact_id;
        if p.contact.add_phone
            && let (Some(idx), Some(sealed)) =
                (p.contact.phone_index.as_deref(), p.phone_sealed.as_deref())
        {
            contacts::set_phone(tx, cid, idx, sealed, now).await?;
        }
        if p.contact.add_lid
            && let Some(idx) = p.contact.lid_index.as_deref()
        {
            contacts::set_lid(tx, cid, idx, now).await?;
        }
        if let Some((sealed, tokens)) = &p.name_sealed {
            contacts::set_name(tx, cid, sealed, tokens, false, now).await?;
        }
    }
    Ok(())
}

/// Opens a message's extra (an empty object when it has none).
async fn open_extra(
    state: &AppState,
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
    state: &AppState,
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
    state: &AppState,
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

fn new_message(tenant_id: Uuid, r: &Row, conversation_id: Uuid) -> NewMessage<'_> {
    let p = &r.p;
    let (direction, author, status) = if p.msg.from_me {
        (Direction::Out, "phone", MessageStatus::Sent)
    } else if matches!(p.msg.kind, MessageKind::System { .. }) {
        // A notice about the chat (number changed…): an event, not a customer's words.
        (Direction::In, "system", MessageStatus::Received)
    } else {
        (Direction::In, "contact", MessageStatus::Received)
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
        author,
        author_user_id: None,
        kind: p.kind,
        body_sealed: p.body_sealed.clone(),
        media_kind: media.is_some().then_some(p.kind),
        media_mime: media.flatten(),
        media_source_sealed: p.media_sealed.clone(),
        media_state: media.is_some().then_some("pending"),
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
async fn after_stored(
    state: &AppState,
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
                .request_keyword(state, tx, tenant_id, p.contact.contact_id, body, r.now)
                .await?;
        }
    }
    Ok(true)
}

/// The customer changed number (Meta `user_changed_number`): the contact keeps its history
/// and conversation, and replies go to the new number.
async fn move_number(
    state: &AppState,
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

/// The conversation's reply address, sealed: under the tenant's key for a group (its
/// address is the tenant's, not one member's), else under the contact's.
async fn seal_chat(
    state: &AppState,
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

/// Asks the gateway for a new group's subject after the commit (once per group).
async fn enqueue_group_subject(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    conversation: Uuid,
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    // Label the group with its subject, asked of the gateway after the commit.
    jobs::enqueue(
        tx,
        &GroupSubject {
            tenant_id,
            conversation_id: conversation,
        },
        now,
        now,
    )
    .await?;
    Ok(())
}
