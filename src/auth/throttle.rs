//! Attempt counting for logins and sign-ups (per account, per account and client IP, per IP).
//!
//! An attempt is **counted first, atomically, then judged**: `INCR` returns each concurrent
//! attempt its own number, so forty parallel guesses against a limit of five get numbers
//! 1 to 40 and only the first five reach the password check. (Checking and then counting let
//! every one of them through.) A success gives its attempt back ([`Throttle::refund`]) or clears the
//! key ([`Throttle::clear`]).
//!
//! Counters live in Redis so every instance shares them. When Redis is unreachable we fall
//! back to an in-process counter with *stricter* limits rather than failing open (a limiter
//! that fails open is a brute-force window during every Redis outage). The fallback is
//! atomic within one process; each process counts alone, which is why its limits are halved.

use std::{collections::HashMap, sync::Mutex};

use time::{Duration, OffsetDateTime};

use crate::{clock::SharedClock, redis::Redis};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Limit {
    pub(crate) max_attempts: u32,
    pub(crate) window: Duration,
}

/// Wrong passwords for one account from one client IP: the lock an attacker trips first,
/// and one that doesn't lock the real owner out from their own network.
pub(crate) const PER_ACCOUNT_AND_IP: Limit = Limit {
    max_attempts: 5,
    window: Duration::minutes(15),
};
/// Wrong passwords for one account from anywhere: slower, so a botnet guessing from many
/// addresses still gets few tries, while the owner is only locked out by a sustained attack.
pub(crate) const PER_ACCOUNT: Limit = Limit {
    max_attempts: 30,
    window: Duration::hours(1),
};
/// Failed attempts from one client IP, whatever the account.
pub(crate) const PER_IP: Limit = Limit {
    max_attempts: 20,
    window: Duration::minutes(15),
};

/// "Forgot password" requests for one address, whoever asks: each may send an e-mail, so
/// an address can't be flooded with reset mails.
pub(crate) const FORGOT_PER_ACCOUNT: Limit = Limit {
    max_attempts: 5,
    window: Duration::hours(1),
};

impl Limit {
    /// The limit used while Redis is down: each instance counts alone, so allow fewer.
    fn degraded(self) -> Limit {
        Limit {
            max_attempts: self.max_attempts.div_ceil(2),
            window: self.window,
        }
    }
}

/// The in-process fallback store: key → (count, window start).
#[derive(Default)]
struct LocalCounters(Mutex<HashMap<String, (u32, OffsetDateTime)>>);

impl LocalCounters {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, (u32, OffsetDateTime)>) -> T) -> T {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut m)
    }
}

/// The attempt counters: Redis, with this process's stricter counters while it is down.
#[derive(Clone)]
pub(crate) struct Throttle {
    redis: Redis,
    clock: SharedClock,
    local: std::sync::Arc<LocalCounters>,
}

impl Throttle {
    pub(crate) fn new(redis: Redis, clock: SharedClock) -> Throttle {
        Throttle {
            redis,
            clock,
            local: Default::default(),
        }
    }

    /// Counts one attempt for `key`, then judges it: `Err(seconds to wait)` when this attempt is
    /// over the limit. The attempt stays counted either way.
    pub(crate) async fn attempt(&self, key: &str, limit: Limit) -> Result<(), u64> {
        let rkey = self.redis.key(&format!("throttle:{key}"));
        if let Some(mut c) = self.redis.conn().await {
            // MULTI/EXEC: the increment, the window's expiry (set once) and its remaining time
            // as one step, so no other attempt can slip between them.
            let res: redis::RedisResult<(u32, i64)> = redis::pipe()
                .atomic()
                .incr(&rkey, 1)
                .cmd("EXPIRE")
                .arg(&rkey)
                .arg(limit.window.whole_seconds())
                .arg("NX")
                .ignore()
                .ttl(&rkey)
                .query_async(&mut c)
                .await;
            match res {
                Ok((n, _)) if n <= limit.max_attempts => return Ok(()),
                Ok((_, ttl)) => return Err(ttl.max(1) as u64),
                Err(_) => {
                    self.redis.failed();
                    tracing::warn!("redis failed while counting an attempt; using local limits");
                }
            }
        }
        let limit = limit.degraded();
        let now = self.clock.now();
        self.local.with(|m| {
            let e = m.entry(key.to_owned()).or_insert((0, now));
            if e.1 + limit.window <= now {
                *e = (0, now);
            }
            e.0 += 1;
            if e.0 <= limit.max_attempts {
                Ok(())
            } else {
                Err((e.1 + limit.window - now).whole_seconds().max(1) as u64)
            }
        })
    }

    /// Counts attempts against several limits at once; the first refusal wins. Every key is
    /// counted even after a refusal, so no limit can be dodged by tripping another first.
    pub(crate) async fn attempt_all(&self, keys: &[(&str, Limit)]) -> Result<(), u64> {
        let mut verdict = Ok(());
        for (key, limit) in keys {
            if let (Err(secs), Ok(())) = (self.attempt(key, *limit).await, verdict) {
                verdict = Err(secs);
            }
        }
        verdict
    }

    /// Gives back one counted attempt (it succeeded, so it should not count as a failure).
    pub(crate) async fn refund(&self, key: &str) {
        let rkey = self.redis.key(&format!("throttle:{key}"));
        if let Some(mut c) = self.redis.conn().await {
            // Only while the window lives: a DECR on an expired key would create one without
            // an expiry, a credit that never ends.
            let res: redis::RedisResult<i64> = redis::Script::new(
                "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end return 0",
            )
            .key(&rkey)
            .invoke_async(&mut c)
            .await;
            if res.is_ok() {
                return;
            }
            self.redis.failed();
        }
        self.local.with(|m| {
            if let Some(e) = m.get_mut(key) {
                e.0 = e.0.saturating_sub(1);
            }
        });
    }

    /// Forgets every attempt for `key` (after a successful login).
    pub(crate) async fn clear(&self, key: &str) {
        let rkey = self.redis.key(&format!("throttle:{key}"));
        if let Some(mut c) = self.redis.conn().await {
            let deleted: redis::RedisResult<()> =
                redis::cmd("DEL").arg(&rkey).query_async(&mut c).await;
            if deleted.is_err() {
                self.redis.failed();
            }
        }
        self.local.with(|m| {
            m.remove(key);
        });
    }
}
