//! The key store: a database of its own (`<db>_keys`) holding wrapped keys only.
//!
//! Separate so that its backups can be kept far shorter (≤ 7 days) than the main database's:
//! see `docs/security.md`. Queries here are runtime-checked (`sqlx::query` with binds), so the
//! crate's offline query data (`.sqlx/`) only describes the main database.

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::{
    Connection, PgConnection, PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use url::Url;
use uuid::Uuid;

use crate::config::Config;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_keystore");

/// Creates the key-store database if missing, ensures the application role there, and
/// applies the key store's migrations, all as the owner.
pub(crate) async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.keystore_owner_url()?;
    create_database_if_missing(url.expose_secret()).await?;
    let opts: PgConnectOptions = url
        .expose_secret()
        .parse()
        .context("the key store URL is not a valid PostgreSQL URL")?;
    let owner = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .context("could not connect to the key store as the owner")?;
    super::ensure_app_role(&owner, config.app_db_password.expose_secret()).await?;
    MIGRATOR
        .run(&owner)
        .await
        .context("applying key-store migrations failed")?;
    owner.close().await;
    Ok(())
}

async fn create_database_if_missing(url: &str) -> anyhow::Result<()> {
    let parsed = Url::parse(url).context("the key store URL is not a URL")?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    anyhow::ensure!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "key store database name {name:?} must be letters, digits and underscores"
    );
    let mut admin_url = parsed.clone();
    admin_url.set_path("/postgres");
    let mut admin = PgConnection::connect(admin_url.as_str())
        .await
        .context("could not connect to the key store's server (database postgres) as the owner")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
        {
            // Another `migrate` may have created it meanwhile.
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await?;
            if !exists {
                return Err(e).context("could not create the key store database");
            }
        } else {
            tracing::info!(database = %name, "created the key store database");
        }
    }
    admin.close().await?;
    Ok(())
}

/// The key store as the application role (refuses a superuser, like the main pool).
pub(crate) async fn connect_app(config: &Config) -> anyhow::Result<PgPool> {
    let url = config.keystore_app_url()?;
    let opts: PgConnectOptions = url
        .expose_secret()
        .parse()
        .context("could not build the key store URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(config.db_max_connections.clamp(1, 10))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .context("could not connect to the key store as the application role (run `sigmaai migrate` first)")?;
    super::refuse_privileged_role(&pool).await?;
    Ok(pool)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct TenantKeyRow {
    pub(crate) version: i32,
    pub(crate) master_key_id: String,
    pub(crate) wrapped: Vec<u8>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct DataKeyRow {
    pub(crate) subject_id: Uuid,
    pub(crate) key_id: Uuid,
    pub(crate) key_version: i32,
    pub(crate) tenant_key_version: i32,
    pub(crate) wrapped: Vec<u8>,
}

/// Serializes key creation, rotation and destruction for one subject (or a whole tenant,
/// with the nil subject) until the transaction ends.
pub(crate) async fn lock_subject(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    subject_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("sigmaai-keys:{tenant_id}:{subject_id}"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn tenant_keys<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
) -> sqlx::Result<Vec<TenantKeyRow>> {
    sqlx::query_as(
        "SELECT version, master_key_id, wrapped FROM tenant_keys WHERE tenant_id = $1 ORDER BY version",
    )
    .bind(tenant_id)
    .fetch_all(db)
    .await
}

pub(crate) async fn insert_tenant_key<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    row: &TenantKeyRow,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO tenant_keys (tenant_id, version, master_key_id, wrapped) VALUES ($1, $2, $3, $4)")
        .bind(tenant_id)
        .bind(row.version)
        .bind(&row.master_key_id)
        .bind(&row.wrapped)
        .execute(db)
        .await?;
    Ok(())
}

/// Every tenant key not wrapped by `master_key_id`.
pub(crate) async fn tenant_keys_not_under<'e>(
    db: impl sqlx::PgExecutor<'e>,
    master_key_id: &str,
) -> sqlx::Result<Vec<(Uuid, TenantKeyRow)>> {
    let rows: Vec<(Uuid, i32, String, Vec<u8>)> = sqlx::query_as(
        "SELECT tenant_id, version, master_key_id, wrapped FROM tenant_keys WHERE master_key_id <> $1",
    )
    .bind(master_key_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(t, version, master_key_id, wrapped)| {
            (
                t,
                TenantKeyRow {
                    version,
                    master_key_id,
                    wrapped,
                },
            )
        })
        .collect())
}

/// Replaces a tenant key's wrapping, if it is still wrapped the way it was read.
pub(crate) async fn rewrap_tenant_key<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    old: &TenantKeyRow,
    new_master_key_id: &str,
    new_wrapped: &[u8],
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE tenant_keys SET master_key_id = $4, wrapped = $5, rewrapped_at = now()
         WHERE tenant_id = $1 AND version = $2 AND master_key_id = $3",
    )
    .bind(tenant_id)
    .bind(old.version)
    .bind(&old.master_key_id)
    .bind(new_master_key_id)
    .bind(new_wrapped)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many tenant keys each master key wraps.
pub(crate) async fn tenant_keys_per_master<'e>(
    db: impl sqlx::PgExecutor<'e>,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as("SELECT master_key_id, count(*) FROM tenant_keys GROUP BY 1 ORDER BY 1")
        .fetch_all(db)
        .await
}

pub(crate) async fn data_key<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    subject_id: Uuid,
) -> sqlx::Result<Option<DataKeyRow>> {
    sqlx::query_as(
        "SELECT subject_id, key_id, key_version, tenant_key_version, wrapped
         FROM data_keys WHERE tenant_id = $1 AND subject_id = $2",
    )
    .bind(tenant_id)
    .bind(subject_id)
    .fetch_optional(db)
    .await
}

pub(crate) async fn data_keys_of_tenant<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
) -> sqlx::Result<Vec<DataKeyRow>> {
    sqlx::query_as(
        "SELECT subject_id, key_id, key_version, tenant_key_version, wrapped
         FROM data_keys WHERE tenant_id = $1 ORDER BY subject_id FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_all(db)
    .await
}

pub(crate) async fn insert_data_key<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    row: &DataKeyRow,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO data_keys (tenant_id, subject_id, key_id, key_version, tenant_key_version, wrapped)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant_id)
    .bind(row.subject_id)
    .bind(row.key_id)
    .bind(row.key_version)
    .bind(row.tenant_key_version)
    .bind(&row.wrapped)
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts many data keys in one statement (one commit when not in a transaction).
pub(crate) async fn insert_data_keys<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    rows: &[DataKeyRow],
) -> sqlx::Result<()> {
    let subjects: Vec<Uuid> = rows.iter().map(|r| r.subject_id).collect();
    let key_ids: Vec<Uuid> = rows.iter().map(|r| r.key_id).collect();
    let versions: Vec<i32> = rows.iter().map(|r| r.key_version).collect();
    let tk_versions: Vec<i32> = rows.iter().map(|r| r.tenant_key_version).collect();
    let wrapped: Vec<&[u8]> = rows.iter().map(|r| r.wrapped.as_slice()).collect();
    sqlx::query(
        "INSERT INTO data_keys (tenant_id, subject_id, key_id, key_version, tenant_key_version, wrapped)
         SELECT $1, s, k, v, tv, w FROM unnest($2::uuid[], $3::uuid[], $4::int4[], $5::int4[], $6::bytea[]) AS u(s, k, v, tv, w)",
    )
    .bind(tenant_id)
    .bind(&subjects)
    .bind(&key_ids)
    .bind(&versions)
    .bind(&tk_versions)
    .bind(&wrapped)
    .execute(db)
    .await?;
    Ok(())
}

pub(crate) async fn rewrap_data_key<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    subject_id: Uuid,
    tenant_key_version: i32,
    wrapped: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE data_keys SET tenant_key_version = $3, wrapped = $4 WHERE tenant_id = $1 AND subject_id = $2",
    )
    .bind(tenant_id)
    .bind(subject_id)
    .bind(tenant_key_version)
    .bind(wrapped)
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the subject, or its whole tenant, was destroyed.
pub(crate) async fn is_destroyed<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
    subject_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tombstones WHERE tenant_id = $1 AND subject_id IN ($2, $3))",
    )
    .bind(tenant_id)
    .bind(subject_id)
    .bind(Uuid::nil())
    .fetch_one(db)
    .await
}

/// Records a destroyed subject (nil: the tenant) and deletes its keys. Returns how many key
/// rows were deleted (0 when already gone).
pub(crate) async fn destroy(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    subject_id: Option<Uuid>,
) -> sqlx::Result<u64> {
    sqlx::query(
        "INSERT INTO tombstones (tenant_id, subject_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(subject_id.unwrap_or(Uuid::nil()))
    .execute(&mut **tx)
    .await?;
    let deleted = match subject_id {
        Some(s) => sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1 AND subject_id = $2")
            .bind(tenant_id)
            .bind(s)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        None => {
            let d = sqlx::query("DELETE FROM data_keys WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            d + sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
        }
    };
    Ok(deleted)
}

/// Deletes tenant-key versions older than the newest that wrap no data key any more.
pub(crate) async fn retire_tenant_versions<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant_id: Uuid,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM tenant_keys tk WHERE tk.tenant_id = $1
           AND tk.version < (SELECT max(version) FROM tenant_keys WHERE tenant_id = $1)
           AND NOT EXISTS (SELECT 1 FROM data_keys d
                           WHERE d.tenant_id = tk.tenant_id AND d.tenant_key_version = tk.version)",
    )
    .bind(tenant_id)
    .execute(db)
    .await?
    .rows_affected())
}

/// The main database's tenant id for a slug (operator commands).
pub(crate) async fn tenant_id_by_slug(main_db: &PgPool, slug: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_optional(main_db)
        .await
}
