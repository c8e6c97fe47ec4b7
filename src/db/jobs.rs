//! The Postgres job queue: enqueue inside the caller's transaction, claim with
//! `FOR UPDATE SKIP LOCKED` under a lease, finish or back off.

use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub tenant_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    /// At most one pending job per key; a second enqueue with the same key moves its run time.
    pub dedupe_key: Option<String>,
    pub run_at: OffsetDateTime,
    pub max_attempts: i32,
}

impl<'a> NewJob<'a> {
    pub fn new(kind: &'a str, run_at: OffsetDateTime) -> Self {
        NewJob {
            kind,
            tenant_id: None,
            subject_id: None,
            dedupe_key: None,
            run_at,
            max_attempts: 8,
        }
    }
    pub fn tenant(mut self, id: Uuid) -> Self {
        self.tenant_id = Some(id);
        self
    }
    pub fn subject(mut self, id: Uuid) -> Self {
        self.subject_id = Some(id);
        self
    }
    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n;
        self
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub kind: String,
    pub tenant_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// Enqueues in the caller's transaction. With a dedupe key already pending, the pending job's
/// run time moves to the new one (a burst coalesces into the last message's debounce).
pub async fn enqueue(
    conn: &mut PgConnection,
    job: NewJob<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    let row = sqlx::query_scalar!(
        r#"INSERT INTO jobs (id, kind, tenant_id, subject_id, dedupe_key, run_at, max_attempts, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
           ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL
           DO UPDATE SET run_at = GREATEST(jobs.run_at, EXCLUDED.run_at), updated_at = EXCLUDED.updated_at
           RETURNING id"#,
        id,
        job.kind,
        job.tenant_id,
        job.subject_id,
        job.dedupe_key,
        job.run_at,
        job.max_attempts,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(row)
}

/// Enqueues unless a job with the same dedupe key is already pending (periodic jobs:
/// scheduling again must not postpone the pending one).
pub async fn enqueue_if_absent(
    conn: &mut PgConnection,
    job: NewJob<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"INSERT INTO jobs (id, kind, tenant_id, subject_id, dedupe_key, run_at, max_attempts, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
           ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING"#,
        Uuid::now_v7(),
        job.kind,
        job.tenant_id,
        job.subject_id,
        job.dedupe_key,
        job.run_at,
        job.max_attempts,
        now,
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `enqueue_if_absent` for many jobs of one kind in one statement: `(tenant, subject,
/// dedupe key, run_at)` each; those whose key is already pending are skipped.
pub async fn enqueue_many_if_absent(
    conn: &mut PgConnection,
    kind: &str,
    max_attempts: i32,
    jobs: &[(Uuid, Uuid, String, OffsetDateTime)],
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let tenants: Vec<Uuid> = jobs.iter().map(|j| j.0).collect();
    let subjects: Vec<Uuid> = jobs.iter().map(|j| j.1).collect();
    let keys: Vec<String> = jobs.iter().map(|j| j.2.clone()).collect();
    let run_at: Vec<OffsetDateTime> = jobs.iter().map(|j| j.3).collect();
    let r = sqlx::query!(
        r#"INSERT INTO jobs (id, kind, tenant_id, subject_id, dedupe_key, run_at, max_attempts, created_at, updated_at)
           SELECT j.id, $1, j.tenant_id, j.subject_id, j.dedupe_key, j.run_at, $2, $8, $8
           FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::timestamptz[])
                AS j(id, tenant_id, subject_id, dedupe_key, run_at)
           ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING"#,
        kind,
        max_attempts,
        &ids,
        &tenants,
        &subjects,
        &keys,
        &run_at,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// The PostgreSQL channel that wakes the workers (see `jobs::run_worker`).
pub const WAKE_CHANNEL: &str = "sigmaai_jobs";

/// Wakes every worker when the caller's transaction commits (a job it enqueued is due now
/// or soon). NOTIFY serialises committing transactions briefly, so the hot ingest path
/// does not call this inside its transaction (it wakes the workers after its commit).
pub async fn notify_workers(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// When the next pending job not yet due comes due (one probe of `jobs_due`).
pub async fn next_run_at(
    pool: &PgPool,
    after: OffsetDateTime,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar(
        "SELECT run_at FROM jobs WHERE state = 'pending' AND run_at > $1 ORDER BY run_at LIMIT 1",
    )
    .bind(after)
    .fetch_optional(pool)
    .await
}

/// Claims one due job under a lease and commits the claim before returning it, so no row lock
/// is held while the job talks to the outside world.
pub async fn claim(
    pool: &PgPool,
    now: OffsetDateTime,
    lease: Duration,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as!(
        Job,
        r#"UPDATE jobs SET locked_until = $2, attempts = attempts + 1, updated_at = $1
           WHERE id = (
               SELECT id FROM jobs
               WHERE state = 'pending' AND run_at <= $1 AND (locked_until IS NULL OR locked_until < $1)
               ORDER BY run_at
               LIMIT 1
               FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, tenant_id, subject_id, attempts, max_attempts"#,
        now,
        now + lease,
    )
    .fetch_optional(pool)
    .await
}

pub async fn complete(pool: &PgPool, id: Uuid, now: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET state = 'done', finished_at = $2, updated_at = $2, locked_until = NULL WHERE id = $1",
        id,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Puts a claimed job back to run at `run_at`, not counting the attempt (the job found
/// it is not time yet; nothing failed).
pub async fn defer(
    pool: &PgPool,
    id: Uuid,
    run_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE jobs SET run_at = $2, locked_until = NULL, attempts = GREATEST(attempts - 1, 0),
                  updated_at = $3
           WHERE id = $1"#,
        id,
        run_at,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failure: retried after `retry_at`, or dead once attempts are used up.
/// `error` must never carry personal data (callers pass a short reason).
pub async fn fail(
    pool: &PgPool,
    job: &Job,
    error: &str,
    retry_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let dead = job.attempts >= job.max_attempts;
    sqlx::query!(
        r#"UPDATE jobs SET
             state = CASE WHEN $2 THEN 'dead' ELSE 'pending' END,
             run_at = $3, locked_until = NULL, last_error = left($4, 500), updated_at = $5::timestamptz,
             finished_at = CASE WHEN $2 THEN $5::timestamptz ELSE NULL END
           WHERE id = $1"#,
        job.id,
        dead,
        retry_at,
        error,
        now
    )
    .execute(pool)
    .await?;
    Ok(())
}
