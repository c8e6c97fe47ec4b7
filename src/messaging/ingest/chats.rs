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

/// Each row's conversation id, in row order (found, or created).
pub(super) async fn conversation_of(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    rows: &[Row],
) -> anyhow::Result<Vec<Uuid>> {
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
    Ok(conversation_of)
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
