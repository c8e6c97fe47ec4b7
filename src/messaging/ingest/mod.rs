//! Durable ingestion: gateway events become contacts, conversations and sealed messages in
//! one transaction, together with the jobs they cause, before the gateway gets its 2xx.
//! One message, top to bottom, is this file:
//!
//! 1. [`ingest`] (called by the webhook handler): [`prepare_delivery`] does what needs no
//!    database, concurrently per request: echoes dropped, reactions and votes turned into
//!    marks, the senders' blind indexes computed (`incoming`). The [`Delivery`] goes to
//!    `group_commit`, which shares one transaction between the deliveries arriving
//!    together and answers each only after it commits.
//! 2. [`apply`], inside that transaction, for all of one tenant's deliveries of a batch at
//!    once, one statement per step rather than per message:
//!    - the senders (`contacts`): one read finds the known ones, new people's keys are
//!      created together, each message is sealed under its contact's key (`seal`), new or
//!      newly complete contacts are written;
//!    - the conversations (`chats`): one locking read, the new chats in one insert;
//!    - the messages: one insert (`stored::new_message` builds its rows);
//!    - what each stored message sets off (`stored::after_stored`) and the batch's
//!      `message.received` events;
//!    - the rest of each delivery (`changes`): reactions, votes, edits, deletions, delivery
//!      statuses, connection health.
//!
//! Keys come first: a new contact's data key is committed to the key store before the
//! contact row can commit (a key whose contact row never committed is an orphan the sweep
//! removes), because everything about the contact is sealed under it. The keys of all the
//! new people of a batch are created together, in one key-store statement and commit.

mod changes;
mod chats;
mod contacts;
mod incoming;
mod seal;
mod stored;

use std::{collections::HashMap, sync::Arc};

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use self::incoming::{Identity, Incoming, Mark, MarkKind, identity, sender_indexes};
use crate::{
    db::{self, channels::Channel},
    domain::{events, message::MessageStatus},
    gateway::{ConnectionUpdate, InboundEvent, MessageKind, MessageRevision, StatusUpdate},
    messaging::Messaging,
    messaging::group_commit::GroupCommit,
};

/// What a webhook delivery did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IngestOutcome {
    pub(crate) stored: usize,
    pub(crate) duplicates: usize,
    pub(crate) statuses: usize,
    pub(crate) ignored: usize,
    /// Earlier messages changed: reactions, poll votes, edits, deletes.
    pub(crate) changes: usize,
    /// The conversations that received a new inbound message.
    pub(crate) conversations: Vec<Uuid>,
}

/// Stores everything a webhook delivered. The caller answers 2xx only after this returns
/// Ok, which is after the transaction holding it committed.
pub(crate) async fn ingest(
    state: &Messaging,
    commit: &Arc<GroupCommit>,
    channel: &Channel,
    events: Vec<InboundEvent>,
) -> anyhow::Result<IngestOutcome> {
    let delivery = prepare_delivery(state, channel, events).await?;
    commit.submit(state, delivery).await
}

/// Outside any transaction: what each message needs before its batch can look up all
/// the senders at once (their blind indexes).
pub(crate) async fn prepare_delivery(
    state: &Messaging,
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

/// A webhook delivery, verified and parsed, ready for one transaction.
#[derive(Clone)]
pub(crate) struct Delivery {
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
    pub(crate) fn tenant_id(&self) -> Uuid {
        self.channel.tenant_id
    }

    pub(crate) fn channel_id(&self) -> Uuid {
        self.channel.id
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Batches are written in this order (tenant, then the first sender's token): one
    /// tenant's deliveries together, and concurrent batches creating the same new contacts
    /// create them in the same order rather than waiting on each other crosswise.
    pub(crate) fn lock_order(&self) -> (Uuid, &str) {
        let sender = self
            .messages
            .first()
            .and_then(|m| m.phone_index.as_deref().or(m.lid_index.as_deref()))
            .unwrap_or_default();
        (self.channel.tenant_id, sender)
    }
}

/// What a stored inbound message sets off beyond messaging, decided by the modules above it
/// (`wiring` installs them: the AI turn is `review`'s, the request keyword `privacy`'s).
/// Both run in the batch's transaction, so they commit with the messages or not at all:
/// an acknowledged message never lacks its turn or its request.
#[async_trait::async_trait]
pub(crate) trait Effects: Send + Sync + 'static {
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
        tx: &mut PgConnection,
        tenant_id: Uuid,
        contact_id: Uuid,
        text: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<()>;
}

/// What the deliveries of one transaction share.
pub(crate) struct Batch<'e> {
    effects: &'e dyn Effects,
    /// Each tenant's request keywords, read once per transaction.
    keywords: HashMap<Uuid, Vec<String>>,
}

impl<'e> Batch<'e> {
    pub(crate) fn new(effects: &'e dyn Effects) -> Batch<'e> {
        Batch {
            effects,
            keywords: HashMap::new(),
        }
    }
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
pub(crate) async fn apply(
    state: &Messaging,
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
    let (rows, rest) = contacts::resolve(state, tx, tenant_id, deliveries).await?;

    // 2. Conversations: one locking read, the new chats created in one statement.
    // A new chat is created with its unread count and times already set from the batch's
    // messages, so the messages' insert does not update the row just inserted.
    let (conversation_of, counted) = chats::conversation_of(state, tx, tenant_id, &rows).await?;

    // 3. Messages, in one statement (a duplicate external id is not stored again).
    let created: Vec<Uuid> = counted.created.keys().copied().collect();
    let stored = stored::insert(tx, tenant_id, &rows, &conversation_of, &created).await?;
    chats::settle_counted(tx, &rows, &conversation_of, &stored, &counted).await?;

    // 4. What the stored messages cause.
    let mut received = Vec::new();
    for (r, conversation) in rows.iter().zip(conversation_of) {
        let out = &mut outs[r.delivery];
        if !stored.contains(&r.p.message_id) {
            out.duplicates += 1;
            continue;
        }
        out.stored += 1;
        let inbound = stored::after_stored(state, tx, batch, tenant_id, r, conversation).await?;
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

    // 5. The rest of each delivery: marks, revisions, statuses, connection health.
    changes::apply(state, tx, tenant_id, rest, &mut outs).await?;

    // Each conversation with new customer messages gets one AI turn: the caller enqueues
    // them for the whole batch at once (`review::draft::schedule_many`).
    Ok(outs)
}
