//! Failure counting for logins (per account and per client IP).
//!
//! Counters live in Redis so every instance shares them. When Redis is unreachable we fall
//! back to an in-process limiter with *stricter* limits rather than failing open (a limiter
//! that fails open is a brute-force window during every Redis outage).

use std::{collections::HashMap, sync::Mutex};

use time::{Duration, OffsetDateTime};

use crate::state::AppState;

#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub max_failures: u32,
    pub window: Duration,
}

/// 5 failures per account and 20 per IP in 15 minutes.
pub const PER_ACCOUNT: Limit = Limit {
    max_failures: 5,
    window: Duration::minutes(15),
};
pub const PER_IP: Limit = Limit {
    max_failures: 20,
    window: Duration::minutes(15),
};

impl Limit {
    /// The limit used while Redis is down: each instance counts alone, so allow fewer.
    fn degraded(self) -> Limit {
        Limit {
            max_failures: self.max_failures.div_ceil(2),
            window: self.window,
        }
    }
}

/// The in-process fallback store.
#[derive(Default)]
pub struct LocalCounters(Mutex<HashMap<String, (u32, OffsetDateTime)>>);

impl LocalCounters {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (u32, OffsetDateTime)>) -> T) -> T {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut m)
    }
}

/// `Err(seconds)` when `key` is over its limit.
pub async fn check(state: &AppState, key: &str, limit: Limit) -> Result<(), u64> {
    let rkey = state.redis.key(&format!("throttle:{key}"));
    if let Some(mut c) = state.redis.conn().await {
        let res: redis::RedisResult<(Option<u32>, i64)> = redis::pipe()
            .get(&rkey)
            .ttl(&rkey)
            .query_async(&mut c)
            .await;
        if let Ok((count, ttl)) = res {
            return match count {
                Some(n) if n >= limit.max_failures => Err(ttl.max(1) as u64),
                _ => Ok(()),
            };
        }
        tracing::warn!("redis failed during throttle check; using local limits");
    }
    let limit = limit.degraded();
    let now = state.now();
    state.throttle.with(|m| match m.get(key) {
        Some((n, since)) if *since + limit.window > now && *n >= limit.max_failures => {
            Err((*since + limit.window - now).whole_seconds().max(1) as u64)
        }
        _ => Ok(()),
    })
}

/// Counts one failure for `key`.
pub async fn fail(state: &AppState, key: &str, limit: Limit) {
    let rkey = state.redis.key(&format!("throttle:{key}"));
    if let Some(mut c) = state.redis.conn().await {
        let res: redis::RedisResult<()> = redis::pipe()
            .incr(&rkey, 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&rkey)
            .arg(limit.window.whole_seconds())
            .arg("NX")
            .ignore()
            .query_async(&mut c)
            .await;
        if res.is_ok() {
            return;
        }
    }
    let now = state.now();
    state.throttle.with(|m| {
        let e = m.entry(key.to_owned()).or_insert((0, now));
        if e.1 + limit.window <= now {
            *e = (0, now);
        }
        e.0 += 1;
    });
}

/// Forgets failures for `key` (after a successful login).
pub async fn clear(state: &AppState, key: &str) {
    let rkey = state.redis.key(&format!("throttle:{key}"));
    if let Some(mut c) = state.redis.conn().await {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&rkey).query_async(&mut c).await;
    }
    state.throttle.with(|m| {
        m.remove(key);
    });
}
