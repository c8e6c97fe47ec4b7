//! Redis access that tolerates Redis being down.
//!
//! Losing Redis loses no data: callers get `None` and fall back (stricter in-process limits,
//! Postgres LISTEN/NOTIFY). Every key and channel is namespaced by the configured prefix.

use std::{sync::Arc, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::Mutex;

#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: Option<redis::Client>,
    prefix: String,
    conn: Mutex<Option<ConnectionManager>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisStatus {
    Ok,
    Down,
    NotConfigured,
}

impl RedisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RedisStatus::Ok => "ok",
            RedisStatus::Down => "down",
            RedisStatus::NotConfigured => "not_configured",
        }
    }
}

impl Redis {
    /// Never fails on an unreachable server: the connection is made on first use.
    pub fn new(url: Option<&str>, prefix: &str) -> anyhow::Result<Redis> {
        let client = url.map(redis::Client::open).transpose()?;
        Ok(Redis {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                conn: Mutex::new(None),
            }),
        })
    }

    pub fn disabled() -> Redis {
        Redis {
            inner: Arc::new(Inner {
                client: None,
                prefix: String::new(),
                conn: Mutex::new(None),
            }),
        }
    }

    /// `prefix` + `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{}", self.inner.prefix, key)
    }

    pub fn client(&self) -> Option<&redis::Client> {
        self.inner.client.as_ref()
    }

    /// A live connection, or `None` when Redis is unconfigured or unreachable.
    pub async fn conn(&self) -> Option<ConnectionManager> {
        let client = self.inner.client.as_ref()?;
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        match ConnectionManager::new_with_config(client.clone(), cfg).await {
            Ok(c) => {
                *slot = Some(c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis unreachable; degraded mode");
                None
            }
        }
    }

    pub async fn status(&self) -> RedisStatus {
        if self.inner.client.is_none() {
            return RedisStatus::NotConfigured;
        }
        let Some(mut c) = self.conn().await else {
            return RedisStatus::Down;
        };
        match redis::cmd("PING").query_async::<String>(&mut c).await {
            Ok(_) => RedisStatus::Ok,
            Err(_) => RedisStatus::Down,
        }
    }
}
