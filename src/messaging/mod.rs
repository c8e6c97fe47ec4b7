//! WhatsApp traffic: durable ingestion of gateway events, media, and sending.

pub(crate) mod channel;
pub(crate) mod extra;
pub(crate) mod group_commit;
pub(crate) mod groups;
pub(crate) mod ingest;
pub(crate) mod media;
pub(crate) mod send;
pub(crate) mod view;
pub(crate) mod webhook_delivery;

/// Job kinds of this area.
pub(crate) const SEND_MESSAGE: &str = "send_message";
pub(crate) const FETCH_MEDIA: &str = "fetch_media";
pub(crate) const GROUP_SUBJECT: &str = "group_subject";

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;
use url::Url;

use crate::{
    clock::SharedClock, config::Config, crypto::Keyring, live::Live, mcp::guard::Guard,
    state::AppState, storage::ObjectStore,
};

/// What messaging's sending, media and group jobs and its channel calls use, and nothing
/// else: the pool, the keyring, the clock, live events, the media store and the few settings
/// they read. Built from the process's state with `FromRef` (clones of pools and `Arc`s):
/// a job's `Context` (`jobs::registry`), `State<Messaging>` in a handler, or
/// `Messaging::from_ref(&state)` where a caller holds the whole state.
#[derive(Clone)]
pub(crate) struct Messaging {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) keys: Keyring,
    pub(crate) clock: SharedClock,
    pub(crate) live: Live,
    pub(crate) media: Arc<dyn ObjectStore>,
    pub(crate) config: MessagingConfig,
}

impl Messaging {
    pub(crate) fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Messaging {
    fn from_ref(state: &AppState) -> Messaging {
        Messaging {
            db: state.db.clone(),
            keys: state.keys.clone(),
            clock: state.clock.clone(),
            live: state.live.clone(),
            media: state.media.clone(),
            config: MessagingConfig(state.config.clone()),
        }
    }
}

/// The settings messaging reads (a view of the process's configuration, shared, not
/// copied): where gateways are allowed to be, and our own public address.
#[derive(Clone)]
pub(crate) struct MessagingConfig(Arc<Config>);

impl MessagingConfig {
    /// The URL gateways post webhooks to (a channel's webhook address starts with it).
    pub(crate) fn public_url(&self) -> &Url {
        &self.0.public_url
    }

    /// Operator-trusted gateway hosts that may be on a private network.
    pub(crate) fn private_gateway_hosts(&self) -> &[String] {
        &self.0.private_gateway_hosts
    }

    /// How ingestion queues deliveries: its bound and longest wait before refusing.
    pub(crate) fn ingest(&self) -> &crate::config::IngestLimits {
        &self.0.ingest
    }

    /// How long an AI turn waits after the customer's newest message.
    pub(crate) fn ai_debounce(&self) -> time::Duration {
        self.0.ai_debounce
    }

    /// Meta's Graph API base.
    pub(crate) fn meta_graph_url(&self) -> &str {
        &self.0.meta_graph_url
    }

    /// The SSRF guard for gateway URLs (loopback allowed outside production).
    pub(crate) fn guard(&self) -> Guard {
        Guard::for_config(&self.0)
    }
}
