//! The typed job queue through the real worker and real PostgreSQL: a job written as its
//! struct runs, a row no handler knows is kept (never deleted), and attempts end in `dead`.

use std::sync::Arc;

use crate::{
    clock::Clock,
    db::jobs as q,
    jobs::{self, Wake},
    mail::SendMail,
    shutdown::Shutdown,
};
use time::Duration;
use uuid::Uuid;

use crate::tests::harness::{TestApp, eventually};

#[derive(sqlx::FromRow, Debug)]
struct Row {
    kind: String,
    state: String,
    attempts: i32,
    max_attempts: i32,
    dedupe_key: Option<String>,
    payload: Option<serde_json::Value>,
    subject_id: Option<Uuid>,
    last_error: Option<String>,
}

async fn row(t: &TestApp, id: Uuid) -> Row {
    sqlx::query_as(
        "SELECT kind, state, attempts, max_attempts, dedupe_key, payload, subject_id, last_error
         FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&t.owner)
    .await
    .unwrap()
}

/// A row as another binary (newer or older) queued it.
async fn raw_row(t: &TestApp, kind: &str, max_attempts: i32) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO jobs (id, kind, run_at, max_attempts, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $3, $3)",
    )
    .bind(id)
    .bind(kind)
    .bind(t.clock.now())
    .bind(max_attempts)
    .execute(&t.owner)
    .await
    .unwrap();
    id
}

/// Enqueued as its struct, due now, with a NOTIFY: the worker (fallback poll an hour) runs
/// it, and the row carries the kind's name, dedupe key and attempts.
#[tokio::test]
async fn a_typed_job_runs_through_the_worker() {
    let t = TestApp::with_config(|c| c.worker_poll = std::time::Duration::from_secs(3600)).await;
    let wake = Arc::new(Wake::default());
    let (stop, shutdown) = Shutdown::new();
    let worker = tokio::spawn(jobs::run_worker_with(
        t.state.clone(),
        2,
        shutdown,
        wake.clone(),
    ));
    eventually("the worker listens", || {
        let w = wake.clone();
        async move { w.listening() }
    })
    .await;
    // An outbox row that is gone (its user was deleted): the job has nothing to send.
    let outbox_id = Uuid::now_v7();
    let now = t.clock.now();
    let mut tx = t.state.db.begin().await.unwrap();
    let id = q::enqueue(
        &mut tx,
        &SendMail {
            tenant_id: None,
            outbox_id,
        },
        now,
        now,
    )
    .await
    .unwrap();
    q::notify_workers(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    eventually("the worker ran the job", || async {
        row(&t, id).await.state == "done"
    })
    .await;
    stop.trigger();
    worker.await.unwrap();
    let r = row(&t, id).await;
    assert_eq!(r.kind, "send_mail");
    assert_eq!(r.subject_id, Some(outbox_id));
    assert_eq!(r.dedupe_key.as_deref(), Some(&*format!("mail:{outbox_id}")));
    assert_eq!((r.attempts, r.max_attempts), (1, 12));
    assert_eq!(r.payload, None, "ids only: they live in the columns");
}

/// A kind this binary has no handler for fails with its reason and is retried, then dead
/// once its attempts are used up — the row is never deleted.
#[tokio::test]
async fn an_unknown_kind_is_kept_and_ends_dead() {
    let t = TestApp::new().await;
    let id = raw_row(&t, "from_a_newer_binary", 2).await;
    assert_eq!(jobs::run_due(&t.state).await.unwrap(), 1);
    let r = row(&t, id).await;
    assert_eq!((r.state.as_str(), r.attempts), ("pending", 1));
    assert!(
        r.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("unknown job kind \"from_a_newer_binary\""),
        "{r:?}"
    );
    t.clock.advance(Duration::hours(2));
    assert_eq!(jobs::run_due(&t.state).await.unwrap(), 1);
    assert_eq!(row(&t, id).await.state, "dead", "attempts used up");
    t.clock.advance(Duration::days(2));
    assert_eq!(jobs::run_due(&t.state).await.unwrap(), 0, "dead is final");
    assert_eq!(row(&t, id).await.kind, "from_a_newer_binary", "still there");
}

/// A job whose every attempt ran out its lease (the worker died mid-job) never recorded a
/// failure; once past its max attempts it is dead instead of being claimed forever.
#[tokio::test]
async fn a_job_whose_leases_keep_expiring_ends_dead() {
    let t = TestApp::new().await;
    let id = raw_row(&t, "session_sweep", 1).await;
    // A worker claims it and dies.
    let claimed = q::claim(&t.state.db, t.clock.now(), jobs::LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, id);
    t.clock.advance(jobs::LEASE + Duration::seconds(1));
    assert_eq!(jobs::run_due(&t.state).await.unwrap(), 1);
    let r = row(&t, id).await;
    assert_eq!(r.state, "dead", "{r:?}");
    assert!(
        r.last_error
            .unwrap_or_default()
            .contains("attempts used up")
    );
    t.clock.advance(Duration::days(1));
    assert_eq!(jobs::run_due(&t.state).await.unwrap(), 0);
}

/// A row in the shape the previous binary wrote (tenant and subject columns, no payload)
/// runs: here a periodic sweep's row, `{}` once read.
#[tokio::test]
async fn a_row_queued_before_typed_jobs_still_runs() {
    let t = TestApp::new().await;
    let id = raw_row(&t, "session_sweep", 8).await;
    assert_eq!(jobs::run_due(&t.state).await.unwrap(), 1);
    assert_eq!(row(&t, id).await.state, "done");
}
