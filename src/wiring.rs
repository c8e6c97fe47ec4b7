//! How the subsystems are put together in one process, above all of them.
//!
//! - [`App`] is the router's state: the shared infrastructure ([`AppState`], from which each
//!   subsystem builds its narrow context) and `messaging`'s own machinery, the ingest queue
//!   and the webhook route cache; and the subsystems' own contexts, built once
//!   (`messaging::Messaging`, `privacy::Privacy`, `billing::Billing`, `accounts::Accounts`,
//!   `mcp::registry::Mcp`, `review::Review`). Handlers take the part they use
//!   (`State<AppState>`, `State<Messaging>`, `State<Privacy>`, `State<Billing>`,
//!   `State<Accounts>`, `State<Mcp>`, `State<Review>`,
//!   `State<Arc<GroupCommit>>`, `State<Arc<RouteCache>>`) through `FromRef`.
//! - [`IngestEffects`] is what a stored inbound message sets off outside `messaging`: the
//!   AI turn (`review`) and a data-subject request keyword (`privacy`). `messaging` knows
//!   only the [`Effects`] trait, so it depends on neither.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    accounts::Accounts,
    billing::Billing,
    mcp::registry::Mcp,
    messaging::{Messaging, channel::RouteCache, group_commit::GroupCommit, ingest::Effects},
    privacy::Privacy,
    review::Review,
    state::AppState,
};

/// The router's state: see the module documentation.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) state: AppState,
    /// `messaging`'s handles (sending, media, channels), built once.
    pub(crate) messaging: Messaging,
    /// `privacy`'s handles (erasure, exports, requests), built once.
    pub(crate) privacy: Privacy,
    /// `billing`'s handles (Stripe settings, events), built once.
    pub(crate) billing: Billing,
    /// `accounts`' handles (sign-up, invitations, resets), built once.
    pub(crate) accounts: Accounts,
    /// The MCP registry's handles (servers, tool calls), built once.
    pub(crate) mcp: Mcp,
    /// `review`'s handles (drafting, decisions, presence), built once.
    pub(crate) review: Review,
    /// Shares transactions between webhook deliveries arriving together.
    pub(crate) ingest: Arc<GroupCommit>,
    /// Webhook URL → channel, briefly (see `RouteCache`).
    pub(crate) routes: Arc<RouteCache>,
}

impl App {
    /// The process's ingest queue and route cache around `state`.
    pub(crate) fn new(state: AppState) -> App {
        App {
            messaging: Messaging::from_ref(&state),
            privacy: Privacy::from_ref(&state),
            billing: Billing::from_ref(&state),
            accounts: Accounts::from_ref(&state),
            mcp: Mcp::from_ref(&state),
            review: Review::from_ref(&state),
            ingest: GroupCommit::new(Arc::new(IngestEffects {
                db: state.db.clone(),
            })),
            routes: Default::default(),
            state,
        }
    }
}

/// Handlers holding the whole `App` (webhooks) use the infrastructure as they would
/// `AppState`'s.
impl std::ops::Deref for App {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.state
    }
}

impl FromRef<App> for AppState {
    fn from_ref(app: &App) -> AppState {
        app.state.clone()
    }
}

impl FromRef<App> for Messaging {
    fn from_ref(app: &App) -> Messaging {
        app.messaging.clone()
    }
}

impl FromRef<App> for Mcp {
    fn from_ref(app: &App) -> Mcp {
        app.mcp.clone()
    }
}

impl FromRef<App> for Review {
    fn from_ref(app: &App) -> Review {
        app.review.clone()
    }
}

impl FromRef<App> for Accounts {
    fn from_ref(app: &App) -> Accounts {
        app.accounts.clone()
    }
}

impl FromRef<App> for Billing {
    fn from_ref(app: &App) -> Billing {
        app.billing.clone()
    }
}

impl FromRef<App> for Privacy {
    fn from_ref(app: &App) -> Privacy {
        app.privacy.clone()
    }
}

impl FromRef<App> for Arc<GroupCommit> {
    fn from_ref(app: &App) -> Arc<GroupCommit> {
        app.ingest.clone()
    }
}

impl FromRef<App> for Arc<RouteCache> {
    fn from_ref(app: &App) -> Arc<RouteCache> {
        app.routes.clone()
    }
}

/// What a stored message sets off: see [`Effects`].
pub(crate) struct IngestEffects {
    /// For the tenant's plan, read outside the batch's transaction.
    db: sqlx::PgPool,
}

#[async_trait::async_trait]
impl Effects for IngestEffects {
    async fn turns_due(
        &self,
        tx: &mut PgConnection,
        turns: &[(Uuid, Uuid, OffsetDateTime)],
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        crate::review::draft::schedule_many(tx, turns, now).await?;
        Ok(())
    }

    async fn request_keyword(
        &self,
        tx: &mut PgConnection,
        tenant_id: Uuid,
        contact_id: Uuid,
        text: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        crate::privacy::keyword_request(&self.db, tx, tenant_id, contact_id, text, now).await?;
        Ok(())
    }
}
