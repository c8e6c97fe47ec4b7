//! Step 2 of `apply`, the conversations: nearly always they exist, and one locking read
//! finds them all; the new chats are created in one statement, each with its reply
//! address sealed; a group's subject is asked of the gateway after the commit.

use std::collections::HashMap;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{seal::seal_chat, stored::Row};
use crate::{
    db::{
        conversations::{self, NewConversation, NewConversationWithChat, Upserted},
        jobs,
    },
    messaging::Messaging,
    messaging::groups::GroupSubject,
};

/// Whether a row is a customer's message: what marks its conversation unread (the
/// messages' insert counts `direction = 'in' AND author <> 'system'`).
pub(super) fn inbound(r: &Row) -> bool {
    !r.p.msg.from_me && !matches!(r.p.msg.kind, crate::gateway::MessageKind::System { .. })
}

/// A new chat's inbound messages in a batch: their distinct external ids, the newest's time.
type NewChatCounters<'r> = (std::collections::HashSet<&'r str>, Option<OffsetDateTime>);

/// The conversations this batch created with their counters already set from its inbound
/// messages (so the messages' insert leaves them alone): for each, how many inbound
/// messages were counted and when the row was created (`last_message_at` before them).
#[derive(Default)]
pub(super) struct Counted {
    pub(super) created: HashMap<Uuid, (i32, OffsetDateTime)>,
}

/// Each row's conversation id, in row order (found, or created), and the created ones
/// whose counters already include the batch's messages.
pub(super) async fn conversation_of(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    rows: &[Row],
) -> anyhow::Result<(Vec<Uuid>, Counted)> {
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
    // Per new chat: its inbound messages' distinct external ids and the newest's time (a
    // second copy of a message in the batch is not stored, so not counted).
    let mut counters: HashMap<(Uuid, String), NewChatCounters<'_>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let key = (r.channel_id, r.p.chat_index.clone());
        if !conversations.contains_key(&key) {
            let c = counters.entry(key.clone()).or_default();
            if inbound(r) && c.0.insert(r.p.msg.external_id.as_str()) {
                c.1 = Some(c.1.map_or(r.p.msg.timestamp, |t| t.max(r.p.msg.timestamp)));
            }
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
            .map(|((key, i), (id, sealed))| {
                let r = &rows[*i];
                let (ids, newest) = &counters[key];
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
                    unread: ids.len() as i32,
                    last_inbound_at: *newest,
                    last_message_at: newest.map_or(r.p.msg.timestamp, |n| n.max(r.p.msg.timestamp)),
                }
            })
            .collect::<Vec<_>>(),
    )
    .await?;
    let mut counted = Counted::default();
    for (((key, i), (id, _)), c) in new_chats.into_iter().zip(&sealed_chats).zip(created) {
        let r = &rows[i];
        if c.id == *id {
            // Created here, with the batch's inbound messages counted in.
            counted
                .created
                .insert(c.id, (counters[&key].0.len() as i32, r.p.msg.timestamp));
        }
        if c.id == *id && r.p.msg.is_group {
            // Label the group with its subject, asked of the gateway after the commit.
            enqueue_group_subject(tx, tenant_id, c.id, r.now).await?;
        }
        // One created meanwhile by a concurrent delivery may still lack its address.
        conversations.insert(key, c);
    }
    drop(sealed_chats);
    let mut conversation_of = Vec::with_capacity(rows.len());
    for r in rows {
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
    Ok((conversation_of, counted))
}

/// A conversation created with its counters set had some of its counted messages not
/// stored after all (their external id was already stored in the channel): set the
/// counters to what was stored, as the messages' insert would have. Rare; nothing to do
/// in the usual case.
pub(super) async fn settle_counted(
    tx: &mut PgConnection,
    rows: &[Row],
    conversation_of: &[Uuid],
    stored: &std::collections::HashSet<Uuid>,
    counted: &Counted,
) -> anyhow::Result<()> {
    if counted.created.is_empty() {
        return Ok(());
    }
    let mut got: HashMap<Uuid, (i32, Option<OffsetDateTime>)> = HashMap::new();
    for (r, c) in rows.iter().zip(conversation_of) {
        if counted.created.contains_key(c) && inbound(r) && stored.contains(&r.p.message_id) {
            let g = got.entry(*c).or_default();
            g.0 += 1;
            g.1 = Some(g.1.map_or(r.p.msg.timestamp, |t| t.max(r.p.msg.timestamp)));
        }
    }
    for (id, (n, at)) in &counted.created {
        let (stored_n, newest) = got.get(id).copied().unwrap_or_default();
        if stored_n == *n {
            continue;
        }
        sqlx::query(
            "UPDATE conversations SET unread_count = $2, last_inbound_at = $3, last_message_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(stored_n)
        .bind(newest)
        .bind(newest.map_or(*at, |t| t.max(*at)))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
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
