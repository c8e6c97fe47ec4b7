//! Shared application state handed to every handler and job.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::throttle::LocalCounters, clock::SharedClock, config::Config, crypto::Keyring,
    redis::Redis,
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// Connected as the non-owner application role: row-level security applies.
    pub db: PgPool,
    pub redis: Redis,
    pub clock: SharedClock,
    /// Login failure counters used while Redis is unreachable.
    pub throttle: Arc<LocalCounters>,
    /// Seals and opens personal data; destroys keys (see `crypto`).
    pub keys: Keyring,
}

impl AppState {
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}
