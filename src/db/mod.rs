//! All SQL lives under `db/`, one file per aggregate.
//!
//! Two roles: the owner (`DATABASE_URL`) runs migrations; the server connects as the
//! non-owner [`APP_ROLE`], so row-level security applies to everything it does. Tenant-owned
//! rows are only reachable inside a [`begin_tenant`] transaction, which sets `app.tenant_id`
//! for that transaction alone (`set_config(…, true)`), so a pooled connection never carries
//! one tenant's setting into another's work.

pub(crate) mod ai;
pub(crate) mod api_tokens;
pub(crate) mod audit;
pub(crate) mod billing;
pub(crate) mod canned;
pub(crate) mod channels;
pub(crate) mod contacts;
pub(crate) mod conversation_page;
pub(crate) mod conversations;
pub(crate) mod invitations;
pub(crate) mod jobs;
pub(crate) mod keystore;
pub(crate) mod mcp;
pub(crate) mod memberships;
pub(crate) mod messages;
pub(crate) mod outgoing;
pub(crate) mod overview;
pub(crate) mod presence;
pub(crate) mod privacy;
pub(crate) mod resets;
pub(crate) mod sessions;
pub(crate) mod templates;
pub(crate) mod tenants;
pub(crate) mod two_factor;
pub(crate) mod users;

mod tenant_tx;

pub(crate) use tenant_tx::TenantTx;

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use uuid::Uuid;

use crate::config::Config;

/// The login role the server uses: no superuser, no BYPASSRLS. Migrations GRANT to it.
pub(crate) const APP_ROLE: &str = "sigmaai_app";

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A connection pool as the owner, for migrations and operator commands.
pub(crate) async fn connect_owner(config: &Config) -> anyhow::Result<PgPool> {
    let opts: PgConnectOptions = config
        .database_url
        .expose_secret()
        .parse()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?;
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .context("could not connect to PostgreSQL as the owner (DATABASE_URL)")
}

/// Creates the application role (cluster-wide, so outside migrations) or resets its password.
/// Safe to run concurrently from several processes.
pub(crate) async fn ensure_app_role(owner: &PgPool, password: &str) -> anyhow::Result<()> {
    // Role creation races between databases of one cluster; the loser just retries.
    for attempt in 0..5 {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(APP_ROLE)
                .fetch_one(owner)
                .await?;
        let sql = if exists {
            format!(
                "ALTER ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}",
                quote_literal(password)
            )
        } else {
            format!(
                "CREATE ROLE {APP_ROLE} WITH LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE PASSWORD {}",
                quote_literal(password)
            )
        };
        match sqlx::query(&sql).execute(owner).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 4 => {
                tracing::debug!(error = %e, "app role creation raced; retrying");
                tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
            }
            Err(e) => return Err(e).context("could not create the application role"),
        }
    }
    Ok(())
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Ensures the role, then applies pending migrations as the owner, to the main database and
/// to the key store (created if missing).
pub(crate) async fn migrate(config: &Config) -> anyhow::Result<()> {
    let owner = connect_owner(config).await?;
    ensure_app_role(&owner, config.app_db_password.expose_secret()).await?;
    MIGRATOR
        .run(&owner)
        .await
        .context("applying migrations failed")?;
    owner.close().await;
    keystore::migrate(config).await
}

/// The server's pool, as the application role. Refuses a role that would bypass RLS.
pub(crate) async fn connect_app(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.app_database_url()?;
    let opts: PgConnectOptions = url
        .expose_secret()
        .parse()
        .context("could not build the application database URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A ping on every checkout is a round trip per transaction (measurable in the
        // ingest benchmark); only a connection idle for a while is checked, which is when
        // a database restart or failover has most likely killed it. Under load, none is.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(10) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(opts)
        .await
        .context(
            "could not connect to PostgreSQL as the application role (run `sigmaai migrate` first)",
        )?;
    refuse_privileged_role(&pool).await?;
    Ok(pool)
}

/// Row-level security means nothing to a superuser or a BYPASSRLS role: refuse to run as one.
pub(crate) async fn refuse_privileged_role(pool: &PgPool) -> anyhow::Result<()> {
    let (user, privileged): (String, bool) = sqlx::query_as(
        "SELECT rolname::text, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        !privileged,
        "refusing to serve as database role {user:?}: it is a superuser or bypasses row-level security"
    );
    Ok(())
}

/// A transaction in which row-level security sees exactly one tenant. Begun and scoped in
/// one round trip (the tenant id is a formatted UUID: hex digits and dashes only).
///
/// sqlx logs every statement (`sqlx::query` events) but not the BEGIN it sends itself; this
/// logs it (target `sigmaai::db::tx`, TRACE), so a request's round trips can be counted.
pub(crate) async fn begin_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let tx = pool
        .begin_with(format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true)",
            tenant_id.hyphenated()
        ))
        .await?;
    tracing::trace!(target: "sigmaai::db::tx", "BEGIN");
    Ok(tx)
}

/// [`begin_tenant`] that also takes the tenant's audit-chain lock ([`audit::lock_chain`]), in
/// the same round trip: for a short transaction that writes its audit entry with its other
/// writes in one statement (an approval), which holds the lock until its commit anyway.
pub(crate) async fn begin_tenant_chain_locked(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let tx = pool
        .begin_with(format!(
            "BEGIN; SELECT set_config('app.tenant_id', '{}', true); {}",
            tenant_id.hyphenated(),
            audit::lock_chain_sql(tenant_id)
        ))
        .await?;
    tracing::trace!(target: "sigmaai::db::tx", chain_lock = true, "BEGIN");
    Ok(tx)
}

/// Switches the tenant row-level security sees, for the rest of this transaction (group
/// commit writes several tenants' deliveries in one transaction, one after another).
pub(crate) async fn set_tenant(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// A transaction that sees one user's own memberships (and nothing tenant-scoped).
pub(crate) async fn begin_user(
    pool: &PgPool,
    user_id: Uuid,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.user_id', $1, true)")
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Whether `e` is a unique violation of the named constraint.
pub(crate) fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation() && d.constraint() == Some(constraint))
}
