//! Live updates for open portal pages (Server-Sent Events), across app instances.
//!
//! Publishers send a small event (no personal data: ids and a kind) on Redis pub/sub, or —
//! while Redis is unreachable — Postgres NOTIFY. Every instance runs one listener on both and
//! fans events out to its own SSE clients through a broadcast channel, filtered by tenant.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
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
    /// Whether this instance's listeners are subscribed right now (readiness, for tests
    /// and for telling a missed event from one never sent).
    redis_listening: Arc<AtomicBool>,
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
            tx,
            redis_listening: Arc::default(),
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
        self.redis_listening.load(Ordering::Acquire)
    }

    /// Listening on the Postgres channel at this moment.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn pg_listening(&self) -> bool {
        self.pg_listening.load(Ordering::Acquire)
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
        let s = self.clone();
        tokio::spawn(async move {
            loop {
                if let Some(client) = s.redis.client().cloned() {
                    match client.get_async_pubsub().await {
                        Ok(mut pubsub) => {
                            if pubsub.subscribe(s.channel_name()).await.is_ok() {
                                s.redis_listening.store(true, Ordering::Release);
                                let mut stream = pubsub.on_message();
                                while let Some(msg) = stream.next().await {
                                    if let Ok(text) = msg.get_payload::<String>() {
                                        s.deliver(&text);
                                    }
                                }
                                s.redis_listening.store(false, Ordering::Release);
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "live: redis subscribe failed"),
                    }
                } else {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
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
        if let Ok(env) = serde_json::from_str::<Envelope>(raw) {
            // No receivers is fine: nobody has a page open.
            let _ = self.tx.send((env.tenant, env.event));
        }
    }
}
