//! Background work. Every side effect after a commit is a job: enqueued in the same
//! transaction as the write that causes it, idempotent, retried with exponential backoff
//! under a lease (a crashed worker's job comes back when the lease expires).

use std::time::Duration as StdDuration;

use crate::shutdown::Shutdown;
use anyhow::anyhow;
use rand::Rng;
use time::Duration;
use tracing::Instrument;

use crate::{
    db::jobs::{self, Job},
    mail::alerts::MailAlerts,
    privacy::retention::PrivacySweep,
    state::AppState,
};

pub(crate) mod registry;

pub(crate) use crate::db::jobs::Outcome;

/// How long a claimed job is ours before another worker may take it.
pub(crate) const LEASE: Duration = Duration::minutes(5);

fn backoff(attempts: i32) -> Duration {
    let base = 2i64.saturating_pow(attempts.clamp(0, 12) as u32).min(3600);
    let jitter = rand::thread_rng().gen_range(0..=base / 4 + 1);
    Duration::seconds(base + jitter)
}

/// Claims and runs one due job; `false` when there was none. A failure is retried with
/// backoff until the row's `max_attempts` (its kind's `MAX_ATTEMPTS` when it was queued),
/// then the job is dead: kept, with its last error, never retried. A kind this binary does
/// not know (a row from a newer or older version) fails the same way, with a warning: the
/// row is never deleted, and a worker that knows the kind may still take it meanwhile.
pub(crate) async fn run_one(state: &AppState) -> anyhow::Result<bool> {
    let now = state.now();
    let Some(job) = jobs::claim(&state.db, now, LEASE).await? else {
        return Ok(false);
    };
    if job.attempts > job.max_attempts {
        // Every attempt ended with its lease running out (the worker died or hung), so no
        // failure was ever recorded: stop here rather than retrying forever.
        tracing::warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts - 1,
            max_attempts = job.max_attempts, "job dead: attempts used up without finishing");
        metrics::counter!("sigmaai_jobs_run_total", "kind" => job.kind.clone(), "outcome" => "dead")
            .increment(1);
        jobs::kill(
            &state.db,
            job.id,
            "attempts used up (each lease expired)",
            now,
        )
        .await?;
        return Ok(true);
    }
    let span =
        tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts);
    let started = std::time::Instant::now();
    let result = run_job(state, &job).instrument(span).await;
    metrics::histogram!("sigmaai_job_duration_seconds", "kind" => job.kind.clone())
        .record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(Outcome::Done) => "done",
        Ok(Outcome::Later(_)) => "later",
        Err(_) => "failed",
    };
    metrics::counter!("sigmaai_jobs_run_total", "kind" => job.kind.clone(), "outcome" => outcome)
        .increment(1);
    match result {
        Ok(Outcome::Done) => jobs::complete(&state.db, job.id, state.now()).await?,
        Ok(Outcome::Later(at)) => jobs::defer(&state.db, job.id, at, state.now()).await?,
        Err(err) => {
            let now = state.now();
            let error = format!("{err:#}");
            if job.attempts >= job.max_attempts {
                tracing::warn!(job_id = %job.id, kind = %job.kind, attempts = job.attempts,
                    error, "job failed for good: attempts used up, marked dead");
            } else {
                tracing::warn!(job_id = %job.id, kind = %job.kind, attempt = job.attempts,
                    max_attempts = job.max_attempts, error, "job failed; retrying");
            }
            metrics::counter!("sigmaai_job_failures_total", "kind" => job.kind.clone())
                .increment(1);
            jobs::fail(&state.db, &job, &error, now + backoff(job.attempts), now).await?;
        }
    }
    Ok(true)
}

/// Runs one claimed job through the registry.
async fn run_job(state: &AppState, job: &Job) -> anyhow::Result<Outcome> {
    let Some(entry) = registry::find(&job.kind) else {
        tracing::warn!(job_id = %job.id, kind = %job.kind,
            "no handler for this job kind in this binary (queued by another version?); kept for retry");
        return Err(anyhow!(
            "unknown job kind {:?}: no handler in this binary",
            job.kind
        ));
    };
    entry.run(state, job.payload_value(), &job.meta()).await
}

/// Makes sure each periodic job has a pending run (a no-op when one is already queued).
pub(crate) async fn schedule_periodic(state: &AppState) -> anyhow::Result<()> {
    let now = state.now();
    let mut conn = state.db.acquire().await?;
    jobs::enqueue_if_absent(
        &mut conn,
        &crate::accounts::SessionSweep {},
        now + Duration::hours(1),
        now,
    )
    .await?;
    jobs::enqueue_if_absent(&mut conn, &PrivacySweep {}, now + Duration::days(1), now).await?;
    jobs::enqueue_if_absent(&mut conn, &MailAlerts {}, now + Duration::minutes(5), now).await?;
    Ok(())
}

/// Runs every job that is due now, one after another (tests and `sigmaai worker --once`).
pub(crate) async fn run_due(state: &AppState) -> anyhow::Result<usize> {
    let mut n = 0;
    while run_one(state).await? {
        n += 1;
    }
    Ok(n)
}

/// What wakes this process's idle claimers: a NOTIFY on [`jobs::WAKE_CHANNEL`].
#[derive(Default)]
pub(crate) struct Wake {
    notify: tokio::sync::Notify,
    /// One idle claimer (a permit if none is idle, taken by the next to go idle), for the
    /// wake-ups that carry [`jobs::WAKE_ONE`]: a claimer busy with a long job never holds it.
    one: tokio::sync::Notify,
    listening: std::sync::atomic::AtomicBool,
}

impl Wake {
    /// Whether the LISTEN connection is up (tests wait for it; without it claimers poll).
    pub(crate) fn listening(&self) -> bool {
        self.listening.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Listens on the wake channel until shutdown, reconnecting after a pause.
async fn listen(state: AppState, wake: std::sync::Arc<Wake>, shutdown: Shutdown) {
    use std::sync::atomic::Ordering;
    while !shutdown.is_triggered() {
        match sqlx::postgres::PgListener::connect_with(&state.db).await {
            Ok(mut listener) => {
                if listener.listen(jobs::WAKE_CHANNEL).await.is_ok() {
                    wake.listening.store(true, Ordering::Release);
                    // Whatever was notified before we listened: look again now.
                    wake.notify.notify_waiters();
                    loop {
                        tokio::select! {
                            n = listener.recv() => match n {
                                // One job due now (a send): one claimer, so the others do
                                // not race it for the row on the same cores.
                                Ok(n) if n.payload() == jobs::WAKE_ONE => wake.one.notify_one(),
                                Ok(_) => wake.notify.notify_waiters(),
                                Err(e) => {
                                    tracing::warn!(error = %e, "job wake-up listener lost; polling until it is back");
                                    break;
                                }
                            },
                            _ = shutdown.wait() => break,
                        }
                    }
                    wake.listening.store(false, Ordering::Release);
                }
            }
            Err(e) => tracing::warn!(error = %e, "job wake-up listener could not connect"),
        }
        tokio::select! {
            _ = tokio::time::sleep(StdDuration::from_secs(1)) => {}
            _ = shutdown.wait() => {}
        }
    }
}

/// How long an idle claimer sleeps: until the next job comes due, at most `poll` (500 ms
/// while the wake-up listener is down).
async fn idle_for(state: &AppState, wake: &Wake) -> StdDuration {
    let poll = if wake.listening() {
        state.config.worker_poll
    } else {
        StdDuration::from_millis(500).min(state.config.worker_poll)
    };
    let now = state.now();
    match jobs::next_run_at(&state.db, now).await {
        Ok(Some(at)) => StdDuration::try_from(at - now)
            .unwrap_or_default()
            .min(poll),
        Ok(None) => poll,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the next job's due time");
            poll
        }
    }
}

/// The worker loop: `concurrency` claimers until shutdown. An idle claimer sleeps until the
/// next job's due time or a NOTIFY (a job enqueued due now: approve → send has no polling
/// interval on its path), with `Config::worker_poll` as the fallback.
pub(crate) async fn run_worker(state: AppState, concurrency: usize, shutdown: Shutdown) {
    run_worker_with(state, concurrency, shutdown, Default::default()).await
}

/// [`run_worker`] with a given [`Wake`] (tests watch its listener).
pub(crate) async fn run_worker_with(
    state: AppState,
    concurrency: usize,
    shutdown: Shutdown,
    wake: std::sync::Arc<Wake>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(listen(state.clone(), wake.clone(), shutdown.clone()));
    {
        let state = state.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            while !shutdown.is_triggered() {
                if let Err(err) = schedule_periodic(&state).await {
                    tracing::error!(
                        error = format!("{err:#}"),
                        "scheduling periodic jobs failed"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(StdDuration::from_secs(60)) => {}
                    _ = shutdown.wait() => {}
                }
            }
        });
    }
    for _ in 0..concurrency.max(1) {
        let state = state.clone();
        let shutdown = shutdown.clone();
        let wake = wake.clone();
        tasks.spawn(async move {
            while !shutdown.is_triggered() {
                // Registered before looking, so a NOTIFY during the look is not missed.
                let woken = wake.notify.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                match run_one(&state).await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(err) => tracing::error!(error = format!("{err:#}"), "job queue error"),
                }
                let idle = idle_for(&state, &wake).await;
                tokio::select! {
                    _ = &mut woken => {}
                    _ = wake.one.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = shutdown.wait() => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("worker stopped");
}
