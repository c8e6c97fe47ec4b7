//! The infrastructure every subsystem shares: configuration, the database pool, Redis, the
//! clock, the keyring, the media store, live-update events, the SMTP transport and the login
//! throttle. Each is a handle that knows only its own job, built once per process.
//!
//! It holds no subsystem's own machinery: the ingest queue and the webhook route cache belong
//! to `messaging` and live in `wiring::App`, the router's state, beside this. So this module
//! sits below every subsystem (`scripts/check-modules`): a subsystem may take `&AppState`,
//! and nothing here names a subsystem.

use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::throttle::Throttle,
    clock::SharedClock,
    config::Config,
    crypto::Keyring,
    live::Live,
    redis::Redis,
    smtp::Mailer,
    storage::{ObjectStore, Store, Unavailable},
};

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) config: Arc<Config>,
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) redis: Redis,
    pub(crate) clock: SharedClock,
    /// Login and sign-up attempt counters (Redis; local and stricter while it is down).
    pub(crate) throttle: Throttle,
    /// Seals and opens personal data; destroys keys (see `crypto`).
    pub(crate) keys: Keyring,
    /// Media objects (sealed), in the data directory by default.
    pub(crate) media: Arc<dyn ObjectStore>,
    /// Live-update events: published to every instance, fanned out to this one's open
    /// pages once `serve` started its listeners (`Live::start`).
    pub(crate) live: Live,
    /// The SMTP client; `None` when e-mail is off (see [`crate::mail`]).
    pub(crate) mailer: Option<Arc<Mailer>>,
    /// Audit entries written by many requests at once (conversation views), appended per
    /// tenant in batches (see `db::audit::Batched`).
    pub(crate) audit_batched: Arc<crate::db::audit::Batched>,
}

impl AppState {
    /// The state for these connections. Starts nothing: `serve` starts the live-update
    /// listeners (`Live::start`), `worker` the job loop.
    pub(crate) fn new(
        config: Config,
        db: PgPool,
        redis: Redis,
        clock: SharedClock,
        keys: Keyring,
    ) -> AppState {
        let mailer = match Mailer::from_config(&config) {
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
        AppState {
            config: Arc::new(config),
            throttle: Throttle::new(redis.clone(), clock.clone()),
            live: Live::new(redis.clone(), db.clone()),
            db,
            redis,
            clock,
            keys,
            media,
            mailer,
            audit_batched: Arc::default(),
        }
    }

    pub(crate) fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}
