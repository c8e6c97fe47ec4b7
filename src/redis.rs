//! Redis access that tolerates Redis being down.
//!
//! Losing Redis loses no data: callers get `None` and fall back (stricter in-process limits,
//! Postgres LISTEN/NOTIFY). Every key and channel is namespaced by the configured prefix.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

/// After a failed connect, how long callers go straight to degraded mode before one of
/// them tries again. Without it every request paid the connect timeout, one after another.
const RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub(crate) struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Option<redis::Client>,
    prefix: String,
    conn: Mutex<Option<ConnectionManager>>,
    /// One caller at a time tries to connect; the others don't wait for it.
    connecting: AtomicBool,
    down_until: Mutex<Option<Instant>>,
    /// The listeners sharing this process's one pub/sub connection ([`Redis::subscribe`]).
    subscribers: Arc<Mutex<Vec<Registration>>>,
    /// Bumped on each new registration (the subscriber task subscribes its channel); dropped
    /// with the last `Redis` handle, which ends the task.
    registered: watch::Sender<usize>,
}

/// A listener on one pub/sub channel. Its methods run on the subscriber task: keep them short.
pub(crate) trait Subscriber: Send + Sync + 'static {
    /// Subscribed, first or again: whatever was published meanwhile was missed.
    fn subscribed(&self);
    /// A message on the channel.
    fn message(&self, payload: &[u8]);
    /// The connection was lost (a reconnect follows).
    fn unsubscribed(&self);
}

struct Registration {
    channel: String,
    /// Weak: a dropped listener (a keyring, a `Live`) simply stops being called.
    subscriber: std::sync::Weak<dyn Subscriber>,
}

/// Pause between reconnect attempts of the subscriber connection.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// Connecting and subscribing took longer than this: count it as a failure and retry.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RedisStatus {
    Ok,
    Down,
    NotConfigured,
}

impl RedisStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RedisStatus::Ok => "ok",
            RedisStatus::Down => "down",
            RedisStatus::NotConfigured => "not_configured",
        }
    }
}

impl Redis {
    /// Never fails on an unreachable server: the connection is made on first use.
    pub(crate) fn new(url: Option<&str>, prefix: &str) -> anyhow::Result<Redis> {
        let client = url.map(redis::Client::open).transpose()?;
        Ok(Redis::with_client(client, prefix))
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn disabled() -> Redis {
        Redis::with_client(None, "")
    }

    fn with_client(client: Option<redis::Client>, prefix: &str) -> Redis {
        Redis {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                conn: Mutex::new(None),
                connecting: AtomicBool::new(false),
                down_until: Mutex::new(None),
                subscribers: Arc::default(),
                registered: watch::channel(0).0,
            }),
        }
    }

    /// `prefix` + `key`.
    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{}", self.inner.prefix, key)
    }

    pub(crate) fn client(&self) -> Option<&redis::Client> {
        self.inner.client.as_ref()
    }

    /// A live connection, or `None` when Redis is unconfigured or unreachable. While it is
    /// unreachable, answers `None` at once (a circuit breaker): after a failure, a
    /// background task retries every [`RETRY_AFTER`], so no request waits on a dead Redis
    /// (only the very first connection of the process is made inline).
    pub(crate) async fn conn(&self) -> Option<ConnectionManager> {
        let client = self.inner.client.as_ref()?;
        if let Some(c) = lock(&self.inner.conn).as_ref() {
            return Some(c.clone());
        }
        let down_until = *lock(&self.inner.down_until);
        if down_until.is_some_and(|t| Instant::now() < t)
            || self.inner.connecting.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        if down_until.is_some() {
            // It failed before: reconnect off the request path.
            let this = self.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let _trying = ClearOnDrop(&this.inner.connecting);
                this.connect(client).await;
            });
            return None;
        }
        // Cleared however this ends, even if the caller's future is dropped mid-connect.
        let _trying = ClearOnDrop(&self.inner.connecting);
        self.connect(client.clone()).await
    }

    /// A command failed: open the breaker (callers degrade at once for [`RETRY_AFTER`], then
    /// a background reconnect is tried) instead of letting each request wait on Redis.
    pub(crate) fn failed(&self) {
        if lock(&self.inner.conn).take().is_some() {
            tracing::warn!("redis command failed; degraded mode until it answers again");
        }
        let mut down = lock(&self.inner.down_until);
        let until = Instant::now() + RETRY_AFTER;
        if down.is_none_or(|t| t < until) {
            *down = Some(until);
        }
    }

    async fn connect(&self, client: redis::Client) -> Option<ConnectionManager> {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        let made = ConnectionManager::new_with_config(client.clone(), cfg).await;
        match made {
            Ok(c) => {
                *lock(&self.inner.conn) = Some(c.clone());
                *lock(&self.inner.down_until) = None;
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable; degraded mode");
                *lock(&self.inner.down_until) = Some(Instant::now() + RETRY_AFTER);
                None
            }
        }
    }

    pub(crate) async fn status(&self) -> RedisStatus {
        if self.inner.client.is_none() {
            return RedisStatus::NotConfigured;
        }
        let Some(mut c) = self.conn().await else {
            return RedisStatus::Down;
        };
        match redis::cmd("PING").query_async::<String>(&mut c).await {
            Ok(_) => RedisStatus::Ok,
            Err(_) => {
                self.failed();
                RedisStatus::Down
            }
        }
    }
}

impl Redis {
    /// Calls `subscriber` with every message on `channel` (already prefixed, see
    /// [`Redis::key`]). Every subscriber of this handle shares ONE pub/sub connection, opened
    /// by the first call and reconnected after a pause when it drops; each subscriber hears
    /// `subscribed` whenever it is (re)subscribed and `unsubscribed` when the connection is
    /// lost. Nothing happens when Redis is not configured. Must run inside a Tokio runtime.
    pub(crate) fn subscribe(&self, channel: String, subscriber: std::sync::Weak<dyn Subscriber>) {
        let Some(client) = self.inner.client.clone() else {
            return;
        };
        let count = {
            let mut subs = lock(&self.inner.subscribers);
            subs.push(Registration {
                channel,
                subscriber,
            });
            subs.len()
        };
        let first = self.inner.registered.send_replace(count) == 0;
        if first {
            let subs = self.inner.subscribers.clone();
            let registered = self.inner.registered.subscribe();
            tokio::spawn(run_subscriber(client, subs, registered));
        }
    }
}

/// The subscriber connection's task: connect, subscribe every registered channel, dispatch
/// messages by channel, and start over after [`RESUBSCRIBE_AFTER`] when the connection drops.
/// Ends when the last `Redis` handle is dropped.
async fn run_subscriber(
    client: redis::Client,
    subs: Arc<Mutex<Vec<Registration>>>,
    mut registered: watch::Receiver<usize>,
) {
    let mut warned = false;
    loop {
        let connected = tokio::time::timeout(SUBSCRIBE_TIMEOUT, async {
            let (mut sink, stream) = client.get_async_pubsub().await?.split();
            let upto = subscribe_new(&mut sink, &subs, 0).await?;
            Ok::<_, redis::RedisError>((sink, stream, upto))
        })
        .await;
        match connected {
            Ok(Ok((mut sink, mut stream, mut upto))) => {
                if warned {
                    tracing::info!("redis subscriber reconnected");
                    warned = false;
                }
                each_subscriber(&subs, 0..upto, |s| s.subscribed());
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => {
                                let channel = msg.get_channel_name();
                                let payload = msg.get_payload_bytes();
                                for s in live_subscribers(&subs, |c| c == channel) {
                                    s.message(payload);
                                }
                            }
                            None => break,
                        },
                        changed = registered.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            match subscribe_new(&mut sink, &subs, upto).await {
                                Ok(now) => {
                                    each_subscriber(&subs, upto..now, |s| s.subscribed());
                                    upto = now;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                }
                each_subscriber(&subs, 0..upto, |s| s.unsubscribed());
            }
            Ok(Err(e)) if !warned => {
                tracing::warn!(error = %e, "redis subscriber down (live updates via Postgres, cached keys expire by TTL)");
                warned = true;
            }
            Err(_) if !warned => {
                tracing::warn!(
                    "redis subscriber timed out (live updates via Postgres, cached keys expire by TTL)"
                );
                warned = true;
            }
            _ => {}
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_AFTER) => {}
            changed = registered.changed() => if changed.is_err() { return },
        }
    }
}

/// Subscribes the channels registered from index `from` on; returns how many are registered.
async fn subscribe_new(
    sink: &mut redis::aio::PubSubSink,
    subs: &Mutex<Vec<Registration>>,
    from: usize,
) -> redis::RedisResult<usize> {
    let channels: Vec<String> = {
        let subs = lock(subs);
        subs.iter().skip(from).map(|r| r.channel.clone()).collect()
    };
    if !channels.is_empty() {
        sink.subscribe(&channels).await?;
    }
    Ok(from + channels.len())
}

fn live_subscribers(
    subs: &Mutex<Vec<Registration>>,
    channel: impl Fn(&str) -> bool,
) -> Vec<Arc<dyn Subscriber>> {
    lock(subs)
        .iter()
        .filter(|r| channel(&r.channel))
        .filter_map(|r| r.subscriber.upgrade())
        .collect()
}

/// Calls `f` on each live subscriber among the registrations `which` (outside the lock).
fn each_subscriber(
    subs: &Mutex<Vec<Registration>>,
    which: std::ops::Range<usize>,
    f: impl Fn(&dyn Subscriber),
) {
    let live: Vec<Arc<dyn Subscriber>> = lock(subs)
        .get(which)
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r.subscriber.upgrade())
        .collect();
    for s in live {
        f(s.as_ref());
    }
}

/// A poisoned lock only means another thread panicked mid-update of a plain value.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
