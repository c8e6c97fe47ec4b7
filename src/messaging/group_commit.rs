//! Group commit: webhook deliveries that arrive together share one transaction.
//!
//! One commit per request caps ingestion at the disk's fsync rate. Here each request
//! prepares its delivery (lookups, sealing) on its own, then queues it; a few writer tasks
//! take everything queued (up to `MAX_BATCH`) and write it in one transaction, so one
//! fsync covers many deliveries. Every request still gets its answer only after the
//! transaction holding its delivery committed, so a 2xx still means "stored".
//!
//! If a batch fails, its deliveries are retried one transaction each: one bad delivery
//! costs only its own request a 5xx, and the gateway's retry finds nothing half-written.
//! Writers run as spawned tasks, so a client hanging up mid-request cannot cut a batch
//! short for the others in it.
//!
//! **Overload degrades, it does not collapse.** The queue is bounded (`Config::ingest`): a
//! delivery arriving while `max_queued` wait for a writer, or while the oldest waiting one
//! has waited `max_wait` (the writers are stalled), is refused at once with [`Overloaded`]
//! (503 + `Retry-After`; both gateways retry). Nothing refused was written, and everything
//! queued is still written and answered after its commit. Without the bound a burst past
//! the writers' capacity grew the queue until every client timed out waiting and retried,
//! which fed the queue more (the collapse measured in issue #22).
//!
//! **One tenant cannot fill every batch.** When the queue holds several tenants'
//! deliveries, a batch takes at most a fair share of each ([`pick_fair`]: round-robin over
//! the tenants in the order they first appear, a tenant with fewer than its share leaving the
//! rest to the others), so a quiet tenant's delivery goes out in the next batch however many
//! a noisy one has queued ahead of it; a lone tenant still gets whole batches. Each tenant's
//! deliveries keep their queue order (nothing is dropped or reordered within a channel). The
//! bound is per tenant in the same spirit: past it, a tenant holding fewer than
//! [`QUIET_SHARE`] of the queued deliveries while the others hold most of it is still
//! accepted (its delivery will be in the next batch), so a noisy tenant's flood earns the
//! noisy tenant the 503s, not everyone.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use uuid::Uuid;

pub(crate) use crate::error::Overloaded;
use crate::{
    config::IngestLimits,
    db,
    messaging::Messaging,
    messaging::ingest::{self, Batch, Delivery, Effects, IngestOutcome},
};

/// Transactions writing at once. More than one keeps the CPU busy while another batch waits
/// for its fsync; more make smaller batches, and with set-based writes the cost is per
/// batch. Measured on 2 cores: one writer 1,800–2,200 msg/s, two ~3,200 (batches of ~15),
/// three no faster (batches of ~10).
const WRITERS: usize = 2;
/// Deliveries per transaction at most (bounds one transaction's locks and latency).
const MAX_BATCH: usize = 128;
/// Past the queue's bound, a tenant with fewer deliveries than this queued, while the other
/// tenants hold more than half of the queue, is still accepted: the flood is theirs. With the
/// writers stalled (the database down) this admits at most this many per quiet tenant.
const QUIET_SHARE: usize = MAX_BATCH / 4;
/// A channel's "last heard from" time is written at most this often per instance: every
/// batch writing the same channel row would otherwise serialize all writers on its lock.
const TOUCH_EVERY: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<anyhow::Result<IngestOutcome>>;

struct Pending {
    delivery: Delivery,
    reply: Reply,
    queued_at: Instant,
}

#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// How many of `pending` each tenant has (for the per-tenant bound; no zero entries).
    per_tenant: HashMap<Uuid, usize>,
    writers: usize,
}

pub(crate) struct GroupCommit {
    /// What stored messages set off beyond messaging (AI turns, request keywords).
    effects: Arc<dyn Effects>,
    queue: Mutex<Queue>,
    touched: Mutex<HashMap<Uuid, Instant>>,
    stats: Counters,
    /// When a refusal was last logged (one warning a second at most, not one per request).
    warned_at: Mutex<Option<Instant>>,
    /// When the workers were last woken for new AI turns, and whether a wake is pending.
    woke_at: Mutex<(Option<Instant>, bool)>,
}

/// The workers are told about new AI turns at most this often (a NOTIFY after the commit,
/// not inside the batch's transaction, where it would serialise the writers' commits).
const WAKE_EVERY: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    deliveries: AtomicU64,
    failed_batches: AtomicU64,
    refused: AtomicU64,
}

/// How deliveries were written so far (for operators and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Transactions attempted (a failed batch and its one-by-one retries each count).
    pub(crate) transactions: u64,
    /// Deliveries submitted.
    pub(crate) deliveries: u64,
    /// Batches that failed and were retried one delivery per transaction.
    pub(crate) failed_batches: u64,
    /// Deliveries refused (503) because the queue was past its bound; not in `deliveries`.
    pub(crate) refused: u64,
}

impl GroupCommit {
    /// This process's ingest queue; `effects` runs in each batch's transaction (see
    /// [`Effects`]).
    pub(crate) fn new(effects: Arc<dyn Effects>) -> Arc<GroupCommit> {
        Arc::new(GroupCommit {
            effects,
            queue: Default::default(),
            touched: Default::default(),
            stats: Default::default(),
            warned_at: Default::default(),
            woke_at: Default::default(),
        })
    }

    /// Queues a delivery and waits until the transaction holding it committed (or failed).
    pub(crate) async fn submit(
        self: &Arc<Self>,
        state: &Messaging,
        delivery: Delivery,
    ) -> anyhow::Result<IngestOutcome> {
        let (reply, answer) = oneshot::channel();
        let now = Instant::now();
        let start_writer = {
            let mut q = self.lock_queue();
            if let Some(refused) = refusal(&q, delivery.tenant_id(), state.config.ingest(), now) {
                drop(q);
                self.refused(&refused, now);
                return Err(refused.into());
            }
            self.stats.deliveries.fetch_add(1, Ordering::Relaxed);
            *q.per_tenant.entry(delivery.tenant_id()).or_default() += 1;
            q.pending.push_back(Pending {
                delivery,
                reply,
                queued_at: now,
            });
            let start = q.writers < WRITERS;
            if start {
                q.writers += 1;
            }
            start
        };
        if start_writer {
            tokio::spawn(writer(state.clone(), self.clone()));
        }
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the ingest writer stopped before committing"))?
    }

    /// Whether a delivery for `tenant` would be queued now: the webhook handlers ask before
    /// reading the body, so a flood past the queue's bound is turned away (503 +
    /// `Retry-After`) without the parsing, sealing and blind indexing that would only be
    /// thrown away; what the other tenants send is still read. `submit` decides again.
    pub(crate) fn admit(&self, tenant: Uuid, limits: &IngestLimits) -> Result<(), Overloaded> {
        let now = Instant::now();
        let refused = refusal(&self.lock_queue(), tenant, limits, now);
        match refused {
            Some(refused) => {
                self.refused(&refused, now);
                Err(refused)
            }
            None => Ok(()),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            transactions: self.stats.transactions.load(Ordering::Relaxed),
            deliveries: self.stats.deliveries.load(Ordering::Relaxed),
            failed_batches: self.stats.failed_batches.load(Ordering::Relaxed),
            refused: self.stats.refused.load(Ordering::Relaxed),
        }
    }

    /// Tells the workers (all instances) that new jobs exist, so an idle one sets its timer
    /// for the AI turn's debounce instead of finding it at its next poll. At most one NOTIFY
    /// per [`WAKE_EVERY`]; one asked for meanwhile goes out at the end of the window.
    fn wake_workers(self: &Arc<Self>, state: &Messaging) {
        let now = Instant::now();
        let delay = {
            let mut w = self.woke_at.lock().unwrap_or_else(|e| e.into_inner());
            match w.0 {
                Some(at) if now.duration_since(at) < WAKE_EVERY => {
                    if w.1 {
                        return; // one is already on its way
                    }
                    w.1 = true;
                    WAKE_EVERY - now.duration_since(at)
                }
                _ => {
                    *w = (Some(now), false);
                    Duration::ZERO
                }
            }
        };
        let (s, gc) = (state.clone(), self.clone());
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                *gc.woke_at.lock().unwrap_or_else(|e| e.into_inner()) =
                    (Some(Instant::now()), false);
            }
            let mut conn = match s.db.acquire().await {
                Ok(c) => c,
                Err(e) => return tracing::warn!(error = %e, "could not wake the workers"),
            };
            if let Err(e) = db::jobs::notify_workers(&mut conn).await {
                // They find the turn at their next poll.
                tracing::warn!(error = %e, "could not wake the workers");
            }
        });
    }

    /// Deliveries waiting for a writer now (not counting the batches being written).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn queued(&self) -> usize {
        self.lock_queue().pending.len()
    }

    /// Counts a refusal; warns once a second at most, with how many were refused so far.
    fn refused(&self, why: &Overloaded, now: Instant) {
        let total = self.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut warned = self.warned_at.lock().unwrap_or_else(|e| e.into_inner());
        if warned.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
            *warned = Some(now);
            drop(warned);
            tracing::warn!(
                queued = why.queued,
                oldest_waited_ms = why.waited_ms,
                refused_total = total,
                "ingest overloaded: refusing webhooks with 503 until the queue drains"
            );
        }
    }

    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Only plain data is held under the lock; a panic elsewhere leaves it consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch, or `None` after retiring the calling writer (decided under the same
    /// lock a submitter takes, so a queued delivery always has a writer coming for it).
    fn next_batch(&self) -> Option<Vec<Pending>> {
        let mut q = self.lock_queue();
        if q.pending.is_empty() {
            q.writers -= 1;
            return None;
        }
        let batch = if q.per_tenant.len() <= 1 {
            let n = q.pending.len().min(MAX_BATCH);
            q.pending.drain(..n).collect()
        } else {
            pick_fair(&mut q.pending, MAX_BATCH, |p| p.delivery.tenant_id())
        };
        for p in &batch {
            let t = p.delivery.tenant_id();
            if let Some(n) = q.per_tenant.get_mut(&t) {
                *n -= 1;
                if *n == 0 {
                    q.per_tenant.remove(&t);
                }
            }
        }
        Some(batch)
    }

    /// The channels of this batch whose "last heard from" time is due for a write.
    fn due_touches(&self, channels: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
        let now = Instant::now();
        let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        for c in channels {
            let fresh = touched
                .get(&c)
                .is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY);
            if !fresh {
                touched.insert(c, now);
                due.push(c);
            }
        }
        due
    }
}

/// Why a delivery for `tenant` is refused now, if it is: the queue is past its bound (length
/// or age of the oldest) and `tenant` is not a quiet one ([`quiet_tenant`]).
fn refusal(q: &Queue, tenant: Uuid, limits: &IngestLimits, now: Instant) -> Option<Overloaded> {
    let waited = q
        .pending
        .front()
        .map_or(Duration::ZERO, |p| now.duration_since(p.queued_at));
    let mine = q.per_tenant.get(&tenant).copied().unwrap_or(0);
    let past_bound = q.pending.len() >= limits.max_queued || waited >= limits.max_wait;
    (past_bound && !quiet_tenant(q.pending.len(), mine)).then(|| Overloaded {
        queued: q.pending.len(),
        waited_ms: waited.as_millis() as u64,
        // Roughly when the queue has drained: the wait so far, at least a second.
        retry_after_secs: waited.as_secs().clamp(1, 30),
    })
}

/// Whether a tenant with `mine` of the `queued` deliveries is accepted past the queue's
/// bound: it holds fewer than [`QUIET_SHARE`] and the other tenants hold more than half.
fn quiet_tenant(queued: usize, mine: usize) -> bool {
    mine < QUIET_SHARE && (queued - mine) * 2 > queued
}

/// Takes up to `max` items from `queue` for one batch, fairly between the keys (tenants):
/// round-robin over the keys in the order they first appear, so each key gets an equal
/// share and a key with fewer than its share leaves the rest to the others. What is taken
/// and what stays each keep their queue order, so one key's items never change order.
fn pick_fair<T, K: Eq + std::hash::Hash + Copy>(
    queue: &mut VecDeque<T>,
    max: usize,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    if queue.len() <= max {
        return queue.drain(..).collect();
    }
    // Per key in order of first appearance: how many it has.
    let mut order: Vec<(K, usize)> = Vec::new();
    let mut index: HashMap<K, usize> = HashMap::new();
    for item in queue.iter() {
        let k = key(item);
        match index.get(&k) {
            Some(&i) => order[i].1 += 1,
            None => {
                index.insert(k, order.len());
                order.push((k, 1));
            }
        }
    }
    // Round-robin, one at a time, as water-filling: every key's quota rises by one per round
    // until the batch is full or the key has nothing left.
    let mut quota = vec![0usize; order.len()];
    let mut left = max;
    while left > 0 {
        let mut gave = false;
        for (i, (_, have)) in order.iter().enumerate() {
            if left == 0 {
                break;
            }
            if quota[i] < *have {
                quota[i] += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    let mut taken = Vec::with_capacity(max);
    let mut kept = VecDeque::with_capacity(queue.len() - max);
    for item in queue.drain(..) {
        let i = index[&key(&item)];
        if quota[i] > 0 {
            quota[i] -= 1;
            taken.push(item);
        } else {
            kept.push_back(item);
        }
    }
    *queue = kept;
    taken
}

async fn writer(state: Messaging, gc: Arc<GroupCommit>) {
    while let Some(batch) = gc.next_batch() {
        // Its own task: a panic fails this batch's requests, not the writer.
        let (s, g) = (state.clone(), gc.clone());
        if let Err(e) = tokio::spawn(async move { commit(&s, &g, batch).await }).await {
            tracing::error!(error = %e, "ingest batch panicked");
        }
    }
}

async fn commit(state: &Messaging, gc: &Arc<GroupCommit>, mut batch: Vec<Pending>) {
    metrics::histogram!("sigmaai_group_commit_batch_size").record(batch.len() as f64);
    metrics::counter!("sigmaai_ingest_deliveries_total").increment(batch.len() as u64);
    batch.sort_by(|a, b| a.delivery.lock_order().cmp(&b.delivery.lock_order()));
    if batch.len() > 1 {
        let deliveries = batch.iter().map(|p| p.delivery.clone()).collect();
        match write(state, gc, deliveries).await {
            Ok(outcomes) => {
                if outcomes.iter().any(|o| !o.conversations.is_empty()) {
                    gc.wake_workers(state);
                }
                let tenants: HashSet<Uuid> = batch.iter().map(|p| p.delivery.tenant_id()).collect();
                for (p, out) in batch.into_iter().zip(outcomes) {
                    // The requester may have hung up; its delivery is stored all the same.
                    let _ = p.reply.send(Ok(out));
                }
                // Open inboxes refresh; the writer goes on to the next batch meanwhile.
                let s = state.clone();
                tokio::spawn(async move {
                    for tenant in tenants {
                        s.live.publish(tenant, &crate::live::Event::Inbox).await;
                    }
                });
                return;
            }
            Err(e) => {
                gc.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, size = batch.len(), "ingest batch failed; writing its deliveries one by one");
            }
        }
    }
    for p in batch {
        let tenant = p.delivery.tenant_id();
        let result = write(state, gc, vec![p.delivery])
            .await
            .map(|mut v| v.remove(0));
        let stored = result.is_ok();
        if result.as_ref().is_ok_and(|o| !o.conversations.is_empty()) {
            gc.wake_workers(state);
        }
        let _ = p.reply.send(result);
        if stored {
            state.live.publish(tenant, &crate::live::Event::Inbox).await;
        }
    }
}

/// One transaction for these deliveries, one tenant's at a time (they are sorted by
/// tenant), switching the tenant row-level security sees as it goes.
async fn write(
    state: &Messaging,
    gc: &GroupCommit,
    deliveries: Vec<Delivery>,
) -> anyhow::Result<Vec<IngestOutcome>> {
    gc.stats.transactions.fetch_add(1, Ordering::Relaxed);
    let Some(first_tenant) = deliveries.first().map(Delivery::tenant_id) else {
        return Ok(Vec::new());
    };
    let mut tx = db::begin_tenant(&state.db, first_tenant).await?;
    let mut batch = Batch::new(gc.effects.as_ref());
    // (channel, tenant, time) of each channel heard from in this batch.
    let mut channels: Vec<(Uuid, Uuid, time::OffsetDateTime)> = Vec::new();
    let mut outcomes = Vec::with_capacity(deliveries.len());
    // (tenant, conversation, when) of each AI turn the batch causes.
    let mut turns = Vec::new();
    let mut deliveries = deliveries.into_iter().peekable();
    while let Some(first) = deliveries.next() {
        // One tenant's deliveries (they are sorted by tenant) are written together.
        let tenant = first.tenant_id();
        let mut group = vec![first];
        while let Some(d) = deliveries.next_if(|d| d.tenant_id() == tenant) {
            group.push(d);
        }
        if tenant != first_tenant {
            db::set_tenant(&mut tx, tenant).await?;
        }
        let times: Vec<time::OffsetDateTime> = group.iter().map(Delivery::now).collect();
        for d in &group {
            match channels.iter_mut().find(|(c, _, _)| *c == d.channel_id()) {
                Some(seen) => seen.2 = seen.2.max(d.now()),
                None => channels.push((d.channel_id(), tenant, d.now())),
            }
        }
        let outs = ingest::apply(state, &mut tx, &mut batch, group).await?;
        for (out, now) in outs.iter().zip(times) {
            for conversation in &out.conversations {
                if !turns.iter().any(|(_, c, _)| c == conversation) {
                    turns.push((tenant, *conversation, now + state.config.ai_debounce()));
                }
            }
        }
        outcomes.extend(outs);
    }
    gc.effects.turns_due(&mut tx, &turns, state.now()).await?;
    let due = gc.due_touches(channels.iter().map(|(c, _, _)| *c));
    for (channel, tenant, at) in channels.into_iter().filter(|(c, _, _)| due.contains(c)) {
        db::set_tenant(&mut tx, tenant).await?;
        db::channels::touch(&mut tx, channel, at).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(items: &[(char, u32)]) -> VecDeque<(char, u32)> {
        items.iter().copied().collect()
    }

    #[test]
    fn a_lone_tenant_gets_whole_batches_in_order() {
        let mut q: VecDeque<(char, u32)> = (0..300).map(|i| ('a', i)).collect();
        let b = pick_fair(&mut q, 128, |x| x.0);
        assert_eq!(b, (0..128).map(|i| ('a', i)).collect::<Vec<_>>());
        assert_eq!(q.front(), Some(&('a', 128)));
        assert_eq!(q.len(), 172);
    }

    #[test]
    fn a_quiet_tenant_behind_a_flood_is_in_the_next_batch() {
        // The noisy tenant queued 200 before the quiet one's 2.
        let mut q: VecDeque<(char, u32)> = (0..200).map(|i| ('n', i)).collect();
        q.push_back(('q', 0));
        q.push_back(('q', 1));
        let b = pick_fair(&mut q, 128, |x| x.0);
        assert_eq!(
            b.len(),
            128,
            "the quiet tenant's unused share goes to the noisy one"
        );
        let quiet: Vec<_> = b.iter().filter(|x| x.0 == 'q').collect();
        assert_eq!(quiet, vec![&('q', 0), &('q', 1)]);
        // The noisy tenant's first 126, in order; the rest stays queued, in order.
        let noisy: Vec<u32> = b.iter().filter(|x| x.0 == 'n').map(|x| x.1).collect();
        assert_eq!(noisy, (0..126).collect::<Vec<_>>());
        assert_eq!(q, (126..200).map(|i| ('n', i)).collect::<VecDeque<_>>());
    }

    #[test]
    fn busy_tenants_share_a_batch_equally_and_keep_their_order() {
        let mut items = Vec::new();
        for i in 0..10 {
            items.push(('a', i));
            items.push(('b', i));
            if i < 2 {
                items.push(('c', i));
            }
        }
        let mut q = queue(&items);
        let b = pick_fair(&mut q, 8, |x| x.0);
        let of = |k: char, v: &[(char, u32)]| -> Vec<u32> {
            v.iter().filter(|x| x.0 == k).map(|x| x.1).collect()
        };
        assert_eq!(of('a', &b), vec![0, 1, 2]);
        assert_eq!(of('b', &b), vec![0, 1, 2]);
        assert_eq!(of('c', &b), vec![0, 1]);
        // Taken and kept, each in queue order; nothing lost.
        let kept: Vec<_> = q.iter().copied().collect();
        assert_eq!(of('a', &kept), (3..10).collect::<Vec<_>>());
        assert_eq!(of('b', &kept), (3..10).collect::<Vec<_>>());
        assert_eq!(b.len() + kept.len(), items.len());
        // Taken items appear in the order they were queued.
        let pos = |x: &(char, u32)| items.iter().position(|y| y == x).unwrap();
        assert!(b.windows(2).all(|w| pos(&w[0]) < pos(&w[1])));
    }

    #[test]
    fn past_the_bound_only_a_quiet_tenant_behind_others_is_accepted() {
        // A lone tenant (the overload case): refused, however little it has queued.
        assert!(!quiet_tenant(2, 2));
        assert!(!quiet_tenant(1024, 1024));
        // Behind another tenant's flood, with little of its own: accepted.
        assert!(quiet_tenant(1024, 0));
        assert!(quiet_tenant(1024, QUIET_SHARE - 1));
        // Its own share grown to the limit, or half the queue its own: refused.
        assert!(!quiet_tenant(1024, QUIET_SHARE));
        assert!(!quiet_tenant(20, 10));
    }

    #[test]
    fn a_short_queue_is_taken_whole() {
        let mut q = queue(&[('a', 0), ('b', 0), ('a', 1)]);
        assert_eq!(
            pick_fair(&mut q, 128, |x| x.0),
            vec![('a', 0), ('b', 0), ('a', 1)]
        );
        assert!(q.is_empty());
    }
}
