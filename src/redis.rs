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

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
}

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
        Ok(Redis {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                conn: Mutex::new(None),
                connecting: AtomicBool::new(false),
                down_until: Mutex::new(None),
            }),
        })
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn disabled() -> Redis {
        Redis {
            inner: Arc::new(Inner {
                client: None,
                prefix: String::new(),
                conn: Mutex::new(None),
                connecting: AtomicBool::new(false),
                down_until: Mutex::new(None),
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
