//! [`TenantTx`]: a transaction scoped to one tenant, with who acts and when.

use std::ops::{Deref, DerefMut};

use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::{self, Actor};

/// A transaction that row-level security scopes to one tenant, carrying the actor and the
/// request's clock reading: what every tenant write needs. Its signature says the scope
/// (a function taking `&mut TenantTx` cannot run unscoped), and [`TenantTx::audit`] writes
/// entries with that actor and time, so none can forget them or disagree about "now".
///
/// It dereferences to the connection, so `db::` functions taking `&mut PgConnection` take
/// `&mut tx` unchanged.
pub(crate) struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant_id: Uuid,
    actor: Actor,
    now: OffsetDateTime,
}

impl TenantTx {
    /// Begins a transaction scoped to `tenant_id` (see [`super::begin_tenant`]).
    pub(crate) async fn begin(
        pool: &PgPool,
        tenant_id: Uuid,
        actor: Actor,
        now: OffsetDateTime,
    ) -> sqlx::Result<TenantTx> {
        Ok(TenantTx {
            tx: super::begin_tenant(pool, tenant_id).await?,
            tenant_id,
            actor,
            now,
        })
    }

    /// The time this transaction's writes are stamped with.
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Appends one audit entry in this transaction, by this actor, at this time.
    pub(crate) async fn audit(
        &mut self,
        action: &str,
        subject: &str,
        detail: Value,
    ) -> sqlx::Result<()> {
        audit::record(
            &mut self.tx,
            self.tenant_id,
            &self.actor,
            action,
            subject,
            detail,
            self.now,
        )
        .await
    }

    pub(crate) async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}
