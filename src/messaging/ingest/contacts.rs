//! Step 1 of `apply`, the senders: one read finds every known one, new people's data keys
//! are created together (one key-store statement and commit, before the batch's own
//! commit), each message is sealed under its contact's key (`seal::prepare`), and what is
//! new about the contacts is written (`settle_contacts`).

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;
use uuid::Uuid;

use super::{Delivery, changes::Rest, incoming::Incoming, seal::prepare, stored::Row};
use crate::{
    db::contacts::{self, ContactKeys, NewContact},
    messaging::Messaging,
};

/// Every message of these deliveries sealed under its sender's contact (created when new,
/// completed when a phone, LID or name was missing), as the batch's rows in delivery
/// order, and what else each delivery carries (applied after the messages).
pub(super) async fn resolve(
    state: &Messaging,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    deliveries: Vec<Delivery>,
) -> anyhow::Result<(Vec<Row>, Vec<Rest>)> {
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
        rest.push(Rest {
            channel: d.channel,
            statuses: d.statuses,
            connection: d.connection,
            marks: d.marks,
            revisions: d.revisions,
            now: d.now,
        });
    }
    settle_contacts(state, tx, &mut known, tenant_id, &mut rows).await?;
    Ok((rows, rest))
}

/// A contact resolved (and keyed) before the transaction.
#[derive(Clone)]
pub(super) struct Resolved {
    pub(super) contact_id: Uuid,
    pub(super) is_new: bool,
    /// The contact already has a name (a sender's push name only fills a missing one).
    pub(super) has_name: bool,
    pub(super) phone_index: Option<String>,
    pub(super) lid_index: Option<String>,
    /// The existing contact lacks the phone (LID-only so far) or the LID.
    pub(super) add_phone: bool,
    pub(super) add_lid: bool,
}

/// Ids (with their data keys already created, all in one key-store statement) for the
/// senders of a batch that no contact matched when the batch began.
#[derive(Default)]
pub(super) struct FreshIds {
    pub(super) by_index: HashMap<String, Uuid>,
    pub(super) used: HashSet<Uuid>,
}

impl FreshIds {
    /// One id per new person of these messages (matched by phone or LID token), each new
    /// id's key created in one key-store statement and commit.
    async fn create<'m>(
        state: &Messaging,
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
pub(super) async fn resolve_contact(
    state: &Messaging,
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
pub(super) fn remember(known: &mut Vec<ContactKeys>, c: &Resolved, named: bool) {
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

/// Writes what is new about the batch's contacts: the new people in one statement, then
/// a phone, LID or name a known one lacked (in message order). A message whose new person
/// a concurrent transaction created first is sealed again under that contact's key.
/// `known` already holds every contact as the messages left it (`remember`).
async fn settle_contacts(
    state: &Messaging,
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
