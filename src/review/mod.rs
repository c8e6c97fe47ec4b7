//! Review before delivery: the AI drafts (the `ai_reply` job), staff decide (approve,
//! edit-then-approve, reject, take over), and only an approval — or the tenant's explicit
//! `auto_send` policy — puts a reply on the send queue.

pub(crate) mod decide;
pub(crate) mod diff;
pub(crate) mod draft;
pub(crate) mod presence;

use std::sync::Arc;

use axum::extract::FromRef;
use secrecy::SecretString;
use sqlx::PgPool;
use url::Url;

use crate::{
    ai::ProviderKind, clock::SharedClock, config::Config, crypto::Keyring, domain::review::Policy,
    live::Live, mcp::registry::Mcp, messaging::Messaging, privacy::Privacy, state::AppState,
    storage::ObjectStore,
};

/// What drafting (the `ai_reply` job), decisions and presence use, and nothing else: the
/// pool, the keyring, the clock, live events, the media store (images shown to a model),
/// the AI settings of the process, and the three subsystems review hands work to —
/// `messaging` (auto-send, contact views, gateway vetting), `privacy` (media retention
/// after triage) and the MCP registry (the tool loop). Built once from the process's state
/// with `FromRef` (`wiring::App`; the job's `Context`), taken as `State<Review>` by handlers.
#[derive(Clone)]
pub(crate) struct Review {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) keys: Keyring,
    pub(crate) clock: SharedClock,
    pub(crate) live: Live,
    pub(crate) media: Arc<dyn ObjectStore>,
    pub(crate) config: ReviewConfig,
    pub(crate) messaging: Messaging,
    pub(crate) privacy: Privacy,
    pub(crate) mcp: Mcp,
}

impl Review {
    pub(crate) fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Review {
    fn from_ref(state: &AppState) -> Review {
        Review {
            db: state.db.clone(),
            keys: state.keys.clone(),
            clock: state.clock.clone(),
            live: state.live.clone(),
            media: state.media.clone(),
            config: ReviewConfig(state.config.clone()),
            messaging: Messaging::from_ref(state),
            privacy: Privacy::from_ref(state),
            mcp: Mcp::from_ref(state),
        }
    }
}

/// The settings review reads (a view of the process's configuration, shared, not copied).
#[derive(Clone)]
pub(crate) struct ReviewConfig(Arc<Config>);

impl ReviewConfig {
    /// How long an AI turn waits after the customer's newest message.
    pub(crate) fn ai_debounce(&self) -> time::Duration {
        self.0.ai_debounce
    }

    /// The platform's own key for `kind` (none for a tenant's own endpoint).
    pub(crate) fn platform_key(
        &self,
        kind: ProviderKind,
        base_url: Option<&Url>,
    ) -> Option<SecretString> {
        crate::ai::platform_key(&self.0, kind, base_url)
    }
}

/// The job that drafts a reply for a conversation (one pending per conversation, debounced:
/// a burst of messages coalesces into one turn).
pub(crate) const AI_REPLY: &str = "ai_reply";

/// The review policies: per tenant, overridable per conversation.
pub(crate) const POLICIES: [&str; 3] = [
    Policy::ReviewAll.as_str(),
    Policy::AutoSend.as_str(),
    Policy::Off.as_str(),
];
