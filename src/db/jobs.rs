//! The Postgres job queue: enqueue inside the caller's transaction, claim with
//! `FOR UPDATE SKIP LOCKED` under a lease, finish or back off.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// What running a job came to (errors are retried with backoff).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    /// Not time yet: run again then, without counting an attempt.
    Later(OffsetDateTime),
}

/// What a running job knows about its row.
#[derive(Clone, Debug)]
pub(crate) struct JobMeta {
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) id: Uuid,
    /// This attempt's number, from 1.
    pub(crate) attempts: i32,
    pub(crate) max_attempts: i32,
}

impl JobMeta {}

/// One kind of background job, in the shape crates.io's worker uses: the struct is the
/// payload (serde, stored as `tenant_id` / `subject_id` columns plus a `payload` jsonb for
/// any other field), and `jobs::registry` is the one list of kinds the worker runs.
///
/// Payload compatibility: a row keeps its payload across deploys, so a field is never
/// renamed (`#[serde(rename)]` keeps the stored name) and a new field is `Option` or has
/// `#[serde(default)]`. Rows queued before the `payload` column existed read as
/// `{"tenant_id": .., "subject_id": ..}` (the columns that are not NULL).
pub(crate) trait BackgroundJob:
    serde::Serialize + serde::de::DeserializeOwned + Send + 'static
{
    /// The `jobs.kind` value: never changed once rows carry it.
    const KIND: &'static str;
    /// Attempts before the job is dead (a failure on the last one is not retried).
    const MAX_ATTEMPTS: i32 = 8;
    /// What `run` is given (the application state; a type parameter so this module, which
    /// every job module can use, does not depend on the state's module).
    type Context: Send + Sync + 'static;

    /// At most one pending job per key: a second enqueue moves the pending one's run time
    /// (or, with `enqueue_if_absent`, is skipped).
    fn dedupe_key(&self) -> Option<String> {
        None
    }

    fn run(
        self,
        ctx: &Self::Context,
        meta: &JobMeta,
    ) -> impl std::future::Future<Output = anyhow::Result<Outcome>> + Send;
}

/// A job row to insert, built from a [`BackgroundJob`] by [`NewJob::of`].
#[derive(Clone, Debug)]
pub(crate) struct NewJob {
    pub(crate) kind: &'static str,
    pub(crate) tenant_id: Option<Uuid>,
    pub(crate) subject_id: Option<Uuid>,
    /// The payload's fields other than `tenant_id` and `subject_id` (`None` when there are none).
    pub(crate) payload: Option<Value>,
    /// At most one pending job per key; a second enqueue with the same key moves its run time.
    pub(crate) dedupe_key: Option<String>,
    pub(crate) run_at: OffsetDateTime,
    pub(crate) max_attempts: i32,
}

impl NewJob {
    pub(crate) fn of<J: BackgroundJob>(job: &J, run_at: OffsetDateTime) -> sqlx::Result<Self> {
        let value = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let (tenant_id, subject_id, payload) = split_payload(value)
            .map_err(|e| sqlx::Error::Encode(format!("{} payload: {e}", J::KIND).into()))?;
        Ok(NewJob {
            kind: J::KIND,
            tenant_id,
            subject_id,
            payload,
            dedupe_key: job.dedupe_key(),
            run_at,
            max_attempts: J::MAX_ATTEMPTS,
        })
    }
}

/// `tenant_id`, `subject_id`, and the rest of the payload (`None`: nothing else).
type Columns = (Option<Uuid>, Option<Uuid>, Option<Value>);

/// A payload's `tenant_id` / `subject_id` go to their columns (the tenant index, erasure,
/// the lease tests); whatever else it has goes to `payload`.
fn split_payload(value: Value) -> Result<Columns, String> {
    let Value::Object(mut map) = value else {
        return Err("a job payload is a struct with named fields".into());
    };
    let mut column = |name: &str| -> Result<Option<Uuid>, String> {
        match map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v).map_err(|e| format!("{name}: {e}")),
        }
    };
    let tenant_id = column("tenant_id")?;
    let subject_id = column("subject_id")?;
    let payload = (!map.is_empty()).then_some(Value::Object(map));
    Ok((tenant_id, subject_id, payload))
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Job {
    pub(crate) id: Uuid,
    pub(crate) kind: String,
    pub(crate) tenant_id: Option<Uuid>,
    pub(crate) subject_id: Option<Uuid>,
    pub(crate) payload: Option<Value>,
    pub(crate) attempts: i32,
    pub(crate) max_attempts: i32,
}

impl Job {
    /// The payload as the job struct reads it: the `payload` column's fields plus the
    /// columns `tenant_id` / `subject_id` when they are not NULL.
    pub(crate) fn payload_value(&self) -> Value {
        let mut map = match &self.payload {
            Some(Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        };
        if let Some(t) = self.tenant_id {
            map.insert("tenant_id".into(), Value::String(t.to_string()));
        }
        if let Some(s) = self.subject_id {
            map.insert("subject_id".into(), Value::String(s.to_string()));
        }
        Value::Object(map)
    }

    pub(crate) fn meta(&self) -> JobMeta {
        JobMeta {
            id: self.id,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
        }
    }
}

/// Enqueues `job` to run at `run_at`, in the caller's transaction. With a dedupe key already
/// pending, the pending job's run time moves to the later of the two (a burst coalesces
/// into the last message's debounce). Does not wake the workers: a caller whose job is due
/// now calls [`notify_workers`] in the same transaction (or after its commit).
pub(crate) async fn enqueue<J: BackgroundJob>(
    conn: &mut PgConnection,
    job: &J,
    run_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    enqueue_row(conn, NewJob::of(job, run_at)?, now).await
}

/// [`enqueue`] of a row already built (kinds whose rows are written by SQL elsewhere).
pub(crate) async fn enqueue_row(
    conn: &mut PgConnection,
    job: NewJob,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        r#"INSERT INTO jobs (id, kind, tenant_id, subject_id, payload, dedupe_key, run_at, max_attempts, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
           ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL
           DO UPDATE SET run_at = GREATEST(jobs.run_at, EXCLUDED.run_at), updated_at = EXCLUDED.updated_at
           RETURNING id"#,
    )
    .bind(Uuid::now_v7())
    .bind(job.kind)
    .bind(job.tenant_id)
    .bind(job.subject_id)
    .bind(job.payload)
    .bind(job.dedupe_key)
    .bind(job.run_at)
    .bind(job.max_attempts)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Enqueues unless a job with the same dedupe key is already pending (periodic jobs:
/// scheduling again must not postpone the pending one).
pub(crate) async fn enqueue_if_absent<J: BackgroundJob>(
    conn: &mut PgConnection,
    job: &J,
    run_at: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let job = NewJob::of(job, run_at)?;
    let r = sqlx::query(
        r#"INSERT INTO jobs (id, kind, tenant_id, subject_id, payload, dedupe_key, run_at, max_attempts, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
           ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING"#,
    )
    .bind(Uuid::now_v7())
    .bind(job.kind)
    .bind(job.tenant_id)
    .bind(job.subject_id)
    .bind(job.payload)
    .bind(job.dedupe_key)
    .bind(job.run_at)
    .bind(job.max_attempts)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// `enqueue_if_absent` for many jobs of one kind in one statement, `(job, run_at)` each;
/// those whose key is already pending are skipped.
pub(crate) async fn enqueue_many_if_absent<J: BackgroundJob>(
    conn: &mut PgConnection,
    jobs: &[(J, OffsetDateTime)],
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let rows = jobs
        .iter()
        .map(|(j, at)| NewJob::of(j, *at))
        .collect::<sqlx::Result<Vec<_>>>()?;
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
    let tenants: Vec<Option<Uuid>> = rows.iter().map(|j| j.tenant_id).collect();
    let subjects: Vec<Option<Uuid>> = rows.iter().map(|j| j.subject_id).collect();
    let payloads: Vec<Option<Value>> = rows.iter().map(|j| j.payload.clone()).collect();
    let keys: Vec<Option<String>> = rows.iter().map(|j| j.dedupe_key.clone()).collect();
    let run_at: Vec<OffsetDateTime> = rows.iter().map(|j| j.run_at).collect();
    let r = sqlx::query(
        r#"INSERT INTO jobs (id, kind, tenant_id, subject_id, payload, dedupe_key, run_at, max_attempts, created_at, updated_at)
           SELECT j.id, $1, j.tenant_id, j.subject_id, j.payload, j.dedupe_key, j.run_at, $2, $9, $9
           FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::jsonb[], $7::text[], $8::timestamptz[])
                AS j(id, tenant_id, subject_id, payload, dedupe_key, run_at)
           ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING"#,
    )
    .bind(J::KIND)
    .bind(J::MAX_ATTEMPTS)
    .bind(&ids)
    .bind(&tenants)
    .bind(&subjects)
    .bind(&payloads)
    .bind(&keys)
    .bind(&run_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// The PostgreSQL channel that wakes the workers (see `jobs::run_worker`).
pub(crate) const WAKE_CHANNEL: &str = "sigmaai_jobs";

/// Wakes every worker when the caller's transaction commits (a job it enqueued is due now
/// or soon). NOTIFY serialises committing transactions briefly, so the hot ingest path
/// does not call this inside its transaction (it wakes the workers after its commit).
pub(crate) async fn notify_workers(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WAKE_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// The wake-up payload that asks for one claimer rather than all (see [`notify_one_worker`]).
pub(crate) const WAKE_ONE: &str = "1";

/// When the next pending job not yet due comes due (one probe of `jobs_due`).
pub(crate) async fn next_run_at(
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
///
/// One round trip: the statement commits on its own, and its commit does not wait for its
/// WAL flush (`synchronous_commit` off for this statement's transaction only, set as the claimed
/// row is returned, so only a commit that claimed something is affected). It is on the approve →
/// send path, and losing it in a database crash only loses the lease and the attempt count (the
/// job runs again, as after any crash). Whatever the job then commits with a flush (a send's
/// `sending` mark) makes the claim durable too: WAL is flushed in order.
pub(crate) async fn claim(
    pool: &PgPool,
    now: OffsetDateTime,
    lease: Duration,
) -> sqlx::Result<Option<Job>> {
    sqlx::query_as::<_, Job>(
        r#"UPDATE jobs SET locked_until = $2, attempts = attempts + 1, updated_at = $1
           WHERE id = (
               SELECT id FROM jobs
               WHERE state = 'pending' AND run_at <= $1 AND (locked_until IS NULL OR locked_until < $1)
               ORDER BY run_at
               LIMIT 1
               FOR UPDATE SKIP LOCKED)
           RETURNING id, kind, tenant_id, subject_id, payload, attempts, max_attempts,
                     set_config('synchronous_commit', 'off', true) AS commit_mode"#,
    )
    .bind(now)
    .bind(now + lease)
    .fetch_optional(pool)
    .await
}

/// Marks a claimed job dead for good (its attempts are used up, or no attempt can succeed).
/// The row stays, with `error`, for an operator to read or requeue.
pub(crate) async fn kill(
    pool: &PgPool,
    id: Uuid,
    error: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        r#"UPDATE jobs SET state = 'dead', locked_until = NULL, last_error = left($2, 500),
                  updated_at = $3, finished_at = $3
           WHERE id = $1"#,
    )
    .bind(id)
    .bind(error)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn complete(pool: &PgPool, id: Uuid, now: OffsetDateTime) -> sqlx::Result<()> {
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
pub(crate) async fn defer(
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
pub(crate) async fn fail(
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
