//! Shared application state handed to every handler and job.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::throttle::LocalCounters,
    clock::SharedClock,
    config::Config,
    crypto::Keyring,
    live::Live,
    messaging::{channel::RouteCache, group_commit::GroupCommit},
    redis::Redis,
    storage::{ObjectStore, Store, Unavailable},
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
    /// Media objects (sealed), in the data directory by default.
    pub media: Arc<dyn ObjectStore>,
    /// Live-update fan-out to this instance's open pages.
    pub live: Live,
    /// Shares transactions between webhook deliveries arriving together.
    pub ingest: Arc<GroupCommit>,
    /// Webhook URL → channel, briefly (see `RouteCache`).
    pub routes: Arc<RouteCache>,
    /// The SMTP client; `None` when e-mail is off (see [`crate::mail`]).
    pub mailer: Option<Arc<crate::mail::Mailer>>,
}

impl AppState {
    /// The state for these connections; starts this instance's live-update listeners.
    pub fn new(
        config: Config,
        db: PgPool,
        redis: Redis,
        clock: SharedClock,
        keys: Keyring,
    ) -> AppState {
        let mailer = match crate::mail::Mailer::from_config(&config) {
            Ok(m) => m.map(Arc::new),
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    "e-mail is off: bad SMTP settings"
                );
                None
            }
        };
        // `connect` refuses to start on bad settings (`storage::Store::from_config`); a
        // state built by hand with such settings gets a store that refuses every call,
        // never a silent fallback to this machine's disk.
        let media: Arc<dyn ObjectStore> = match Store::from_config(&config) {
            Ok(s) => Arc::new(s),
            Err(err) => {
                let reason = format!("{err:#}");
                tracing::error!(error = %reason, "media store unavailable");
                Arc::new(Unavailable(reason))
            }
        };
        let state = AppState {
            config: Arc::new(config),
            db,
            redis,
            clock,
            throttle: Default::default(),
            keys,
            media,
            live: Live::new(),
            ingest: Default::default(),
            routes: Default::default(),
            mailer,
        };
        crate::live::start(&state);
        state
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}
