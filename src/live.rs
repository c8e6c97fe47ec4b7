//! Live updates for open portal pages (Server-Sent Events), across app instances.
//!
//! Publishers send a small event (no personal data: ids and a kind) on Redis pub/sub, or —
//! while Redis is unreachable — Postgres NOTIFY. Every instance runs one listener on both and
//! fans events out to its own SSE clients through a broadcast channel, filtered by tenant.
//! The Redis listener is a channel on the process's one subscriber connection
//! (`Redis::subscribe`), shared with the key cache's invalidations.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::redis::Redis;

/// What changed. Pages refresh the part they show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Event {
    /// The conversation list changed (new message, status).
    Inbox,
    /// A conversation's thread changed.
    Conversation { id: Uuid },
    /// The review queue changed.
    Review,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Envelope {
    tenant: Uuid,
    event: Event,
}

const PG_CHANNEL: &str = "sigmaai_live";

#[derive(Clone)]
pub(crate) struct Live {
    /// Where events go out (Redis pub/sub; Postgres notify while Redis is down).
    redis: Redis,
    db: sqlx::PgPool,
    tx: broadcast::Sender<(Uuid, Event)>,
    /// The Redis channel's listener (it also says whether it is subscribed right now).
    redis_side: Arc<RedisSide>,
    /// Whether the Postgres listener is listening right now (readiness, for tests and for
    /// telling a missed event from one never sent).
    pg_listening: Arc<AtomicBool>,
    /// Whether [`Live::start`] ran (it starts the listeners once per process).
    started: Arc<AtomicBool>,
    /// Set when this instance stops serving: open streams end at once, so a restart is not
    /// held for the whole drain period by pages that never close their stream, and each
    /// browser's `EventSource` reconnects (behind a load balancer, to another instance).
    ending: Arc<watch::Sender<bool>>,
}

impl Live {
    /// Publishes through `redis` (or `db` while Redis is down); listens only once
    /// [`Live::start`] is called (by `serve` and `worker`, not here).
    pub(crate) fn new(redis: Redis, db: sqlx::PgPool) -> Live {
        let (tx, _) = broadcast::channel(1024);
        Live {
            redis,
            db,
            redis_side: Arc::new(RedisSide {
                tx: tx.clone(),
                listening: AtomicBool::new(false),
            }),
            tx,
            pg_listening: Arc::default(),
            started: Arc::default(),
            ending: Arc::new(watch::channel(false).0),
        }
    }

    /// Ends every open stream of this instance, and any opened from now on.
    pub(crate) fn end_streams(&self) {
        self.ending.send_replace(true);
    }

    /// Resolves once [`Live::end_streams`] was called (at once if it already was).
    pub(crate) async fn ending(&self) {
        let mut rx = self.ending.subscribe();
        let _ = rx.wait_for(|ending| *ending).await;
    }

    /// Subscribed to the Redis channel at this moment.
    pub(crate) fn redis_listening(&self) -> bool {
        self.redis_side.listening.load(Ordering::Acquire)
    }

    /// Listening on the Postgres channel at this moment.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn pg_listening(&self) -> bool {
        self.pg_listening.load(Ordering::Acquire)
    }

    /// Live-update streams open on this instance right now (each holds one subscription).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn open_streams(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events for one tenant, as they arrive at this instance.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<(Uuid, Event)> {
        self.tx.subscribe()
    }

    fn channel_name(&self) -> String {
        self.redis.key("live")
    }

    /// Tells every instance (and so every open page) that something changed.
    pub(crate) async fn publish(&self, tenant: Uuid, event: &Event) {
        let payload = match serde_json::to_string(&Envelope {
            tenant,
            event: event.clone(),
        }) {
            Ok(p) => p,
            Err(_) => return,
        };
        if let Some(mut c) = self.redis.conn().await {
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(self.channel_name())
                .arg(&payload)
                .query_async(&mut c)
                .await;
            if sent.is_ok() {
                return;
            }
            self.redis.failed();
        }
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PG_CHANNEL)
            .bind(&payload)
            .execute(&self.db)
            .await
        {
            tracing::warn!(error = %e, "live update lost (no Redis, no Postgres notify)");
        }
    }

    /// Starts this instance's listeners (Redis and Postgres), reconnecting as needed. A
    /// second call does nothing (each event would otherwise arrive twice).
    pub(crate) fn start(&self) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let subscriber: Arc<dyn crate::redis::Subscriber> = self.redis_side.clone();
        self.redis
            .subscribe(self.channel_name(), Arc::downgrade(&subscriber));
        let s = self.clone();
        tokio::spawn(async move {
            loop {
                match sqlx::postgres::PgListener::connect_with(&s.db).await {
                    Ok(mut listener) => {
                        if listener.listen(PG_CHANNEL).await.is_ok() {
                            s.pg_listening.store(true, Ordering::Release);
                            while let Ok(n) = listener.recv().await {
                                s.deliver(n.payload());
                            }
                            s.pg_listening.store(false, Ordering::Release);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "live: postgres listen failed"),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }

    fn deliver(&self, raw: &str) {
        deliver(&self.tx, raw.as_bytes());
    }
}

/// Events arriving on the Redis channel, on the shared subscriber connection.
struct RedisSide {
    tx: broadcast::Sender<(Uuid, Event)>,
    listening: AtomicBool,
}

impl crate::redis::Subscriber for RedisSide {
    fn subscribed(&self) {
        self.listening.store(true, Ordering::Release);
    }

    fn message(&self, payload: &[u8]) {
        deliver(&self.tx, payload);
    }

    fn unsubscribed(&self) {
        self.listening.store(false, Ordering::Release);
    }
}

fn deliver(tx: &broadcast::Sender<(Uuid, Event)>, raw: &[u8]) {
    if let Ok(env) = serde_json::from_slice::<Envelope>(raw) {
        // No receivers is fine: nobody has a page open.
        let _ = tx.send((env.tenant, env.event));
    }
}
