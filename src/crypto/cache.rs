//! A short-lived in-memory cache of unwrapped keys, invalidated across instances over Redis.
//!
//! A destroy publishes on `<prefix>keys:invalidate`; every instance's listener (on the
//! process's one Redis subscriber connection, shared with live updates) evicts at once. Entries also expire after the configured TTL, the safety net when Redis is down. When
//! the subscription (re)connects the whole cache is dropped, since messages may have been
//! missed meanwhile. A load that raced an invalidation is not cached (the epoch check).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::{clock::SharedClock, redis::Redis};

/// Channel (after the Redis prefix) carrying invalidations.
pub(crate) const CHANNEL: &str = "keys:invalidate";

pub(crate) struct Cache<T, S> {
    ttl: Duration,
    clock: SharedClock,
    /// Bumped by every invalidation; a load started under an older epoch is not cached.
    epoch: AtomicU64,
    listening: AtomicBool,
    map: Mutex<HashMap<Uuid, TenantEntry<T, S>>>,
}

struct TenantEntry<T, S> {
    tenant: Option<(Arc<T>, OffsetDateTime)>,
    subjects: HashMap<Uuid, (Arc<S>, OffsetDateTime)>,
    /// Expired subjects are swept when the map reaches this size (then twice what is
    /// left): sweeping on every insert made a burst of new contacts quadratic.
    sweep_at: usize,
}

/// The smallest size at which a tenant's expired subject keys are swept.
const SWEEP_MIN: usize = 64;

impl<T, S> Default for TenantEntry<T, S> {
    fn default() -> Self {
        TenantEntry {
            tenant: None,
            subjects: HashMap::new(),
            sweep_at: SWEEP_MIN,
        }
    }
}

/// What an invalidation message names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Invalidation {
    Subject(Uuid, Uuid),
    Tenant(Uuid),
    All,
}

impl Invalidation {
    pub(crate) fn encode(self) -> String {
        match self {
            Invalidation::Subject(t, s) => format!("s:{t}:{s}"),
            Invalidation::Tenant(t) => format!("t:{t}"),
            Invalidation::All => "all".into(),
        }
    }

    /// Anything unreadable means "evict everything": the safe direction.
    pub(crate) fn decode(msg: &str) -> Invalidation {
        let mut parts = msg.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("s"), Some(t), Some(s)) => match (t.parse(), s.parse()) {
                (Ok(t), Ok(s)) => Invalidation::Subject(t, s),
                _ => Invalidation::All,
            },
            (Some("t"), Some(t), None) => t
                .parse()
                .map(Invalidation::Tenant)
                .unwrap_or(Invalidation::All),
            _ => Invalidation::All,
        }
    }
}

impl<T, S> Cache<T, S> {
    pub(crate) fn new(ttl: Duration, clock: SharedClock) -> Cache<T, S> {
        Cache {
            ttl,
            clock,
            epoch: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub(crate) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    fn fresh(&self, at: OffsetDateTime) -> bool {
        self.clock.now() - at < self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, TenantEntry<T, S>>> {
        // A panic while holding the lock leaves only a cache behind: keep going.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn tenant(&self, tenant_id: Uuid) -> Option<Arc<T>> {
        let map = self.lock();
        let (v, at) = map.get(&tenant_id)?.tenant.as_ref()?;
        self.fresh(*at).then(|| v.clone())
    }

    pub(crate) fn subject(&self, tenant_id: Uuid, subject_id: Uuid) -> Option<Arc<S>> {
        let map = self.lock();
        let (v, at) = map.get(&tenant_id)?.subjects.get(&subject_id)?;
        self.fresh(*at).then(|| v.clone())
    }

    pub(crate) fn put_tenant(&self, epoch: u64, tenant_id: Uuid, value: Arc<T>) {
        let mut map = self.lock();
        if self.epoch() == epoch {
            map.entry(tenant_id).or_default().tenant = Some((value, self.clock.now()));
        }
    }

    pub(crate) fn put_subject(&self, epoch: u64, tenant_id: Uuid, subject_id: Uuid, value: Arc<S>) {
        let mut map = self.lock();
        if self.epoch() == epoch {
            let now = self.clock.now();
            let entry = map.entry(tenant_id).or_default();
            if entry.subjects.len() >= entry.sweep_at {
                entry.subjects.retain(|_, (_, at)| now - *at < self.ttl);
                entry.sweep_at = (entry.subjects.len() * 2).max(SWEEP_MIN);
            }
            entry.subjects.insert(subject_id, (value, now));
        }
    }

    /// Subject keys held for this tenant, expired ones not yet swept included.
    #[cfg(test)]
    fn held(&self, tenant_id: Uuid) -> usize {
        self.lock().get(&tenant_id).map_or(0, |e| e.subjects.len())
    }

    pub(crate) fn invalidate(&self, what: Invalidation) {
        let mut map = self.lock();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match what {
            Invalidation::Subject(t, s) => {
                if let Some(e) = map.get_mut(&t) {
                    e.subjects.remove(&s);
                }
            }
            Invalidation::Tenant(t) => {
                map.remove(&t);
            }
            Invalidation::All => map.clear(),
        }
    }
}

/// Publishes an invalidation; `false` when Redis is unavailable (others wait for the TTL).
pub(crate) async fn publish(redis: &Redis, what: Invalidation) -> bool {
    let Some(mut conn) = redis.conn().await else {
        return false;
    };
    match redis::cmd("PUBLISH")
        .arg(redis.key(CHANNEL))
        .arg(what.encode())
        .query_async::<i64>(&mut conn)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            redis.failed();
            tracing::warn!(error = %e, "could not publish a key invalidation");
            false
        }
    }
}

/// The cache hears invalidations on the process's shared Redis subscriber connection
/// (`Redis::subscribe`, registered by `Keyring::new`).
impl<T, S> crate::redis::Subscriber for Cache<T, S>
where
    T: Send + Sync + 'static,
    S: Send + Sync + 'static,
{
    fn subscribed(&self) {
        // Whatever was published while we weren't listening is lost: start clean.
        self.invalidate(Invalidation::All);
        self.listening.store(true, Ordering::SeqCst);
    }

    fn message(&self, payload: &[u8]) {
        let what = std::str::from_utf8(payload)
            .map(Invalidation::decode)
            .unwrap_or(Invalidation::All);
        self.invalidate(what);
    }

    fn unsubscribed(&self) {
        self.listening.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn messages_round_trip_and_garbage_evicts_all() {
        let (t, s) = (Uuid::new_v4(), Uuid::new_v4());
        for m in [
            Invalidation::Subject(t, s),
            Invalidation::Tenant(t),
            Invalidation::All,
        ] {
            assert_eq!(Invalidation::decode(&m.encode()), m);
        }
        assert_eq!(Invalidation::decode("s:nope"), Invalidation::All);
    }

    #[test]
    fn ttl_and_epoch() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        let cache: Cache<u8, u8> = Cache::new(Duration::from_secs(10), Arc::new(clock.clone()));
        let (t, s) = (Uuid::new_v4(), Uuid::new_v4());
        let e = cache.epoch();
        cache.put_subject(e, t, s, Arc::new(1));
        assert_eq!(cache.subject(t, s).as_deref(), Some(&1));
        clock.advance(time::Duration::seconds(11));
        assert_eq!(cache.subject(t, s), None);
        // A load that started before an invalidation is not cached.
        let stale = cache.epoch();
        cache.invalidate(Invalidation::Subject(t, Uuid::new_v4()));
        cache.put_subject(stale, t, s, Arc::new(2));
        assert_eq!(cache.subject(t, s), None);
        cache.put_tenant(cache.epoch(), t, Arc::new(3));
        cache.invalidate(Invalidation::Tenant(t));
        assert_eq!(cache.tenant(t), None);
    }

    #[test]
    fn expired_subject_keys_are_swept_as_new_ones_arrive() {
        let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
        let cache: Cache<u8, u8> = Cache::new(Duration::from_secs(10), Arc::new(clock.clone()));
        let t = Uuid::new_v4();
        for _ in 0..1000 {
            cache.put_subject(cache.epoch(), t, Uuid::new_v4(), Arc::new(1));
        }
        assert_eq!(cache.held(t), 1000);
        clock.advance(time::Duration::seconds(11));
        // A burst of new contacts after the first expired: the old keys go, the new stay.
        let fresh: Vec<Uuid> = (0..1000).map(|_| Uuid::new_v4()).collect();
        for s in &fresh {
            cache.put_subject(cache.epoch(), t, *s, Arc::new(2));
        }
        assert!(cache.held(t) <= 2 * fresh.len(), "{} held", cache.held(t));
        assert!(
            fresh
                .iter()
                .all(|s| cache.subject(t, *s).as_deref() == Some(&2))
        );
    }
}
