//! The audit log's retention (issue 8): the tenant's window, pruning by the sweep with a
//! signed checkpoint, and verification that still holds after pruning and still catches
//! tampering — including a forged checkpoint.

use crate::{
    clock::Clock,
    db::{
        self,
        audit::{self, Actor, Tampering, Verified},
    },
    privacy::retention::run_sweep,
};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::tests::client::{Client, PASSWORD, Page, World};

async fn tenant_id(w: &World, slug: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug)
        .fetch_one(&w.t.owner)
        .await
        .unwrap()
}

/// Appends an entry at the clock's current time, as any action would.
async fn log_now(w: &World, tenant: Uuid, action: &str) -> i64 {
    let mut tx = db::begin_tenant(&w.t.state.db, tenant).await.unwrap();
    audit::record(
        &mut tx,
        tenant,
        &Actor::system(),
        action,
        "",
        json!({}),
        w.t.clock.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT max(seq) FROM audit_log WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&w.t.owner)
        .await
        .unwrap()
}

async fn verify(w: &World, tenant: Uuid) -> Result<Verified, Tampering> {
    let key = w.t.keys.audit_checkpoint_key(tenant).await.unwrap();
    let mut tx = db::begin_tenant(&w.t.state.db, tenant).await.unwrap();
    let r = audit::verify_chain(&mut tx, tenant, &*key).await.unwrap();
    tx.commit().await.unwrap();
    r
}

async fn seqs(w: &World, tenant: Uuid) -> Vec<i64> {
    sqlx::query_scalar("SELECT seq FROM audit_log WHERE tenant_id = $1 ORDER BY seq")
        .bind(tenant)
        .fetch_all(&w.t.owner)
        .await
        .unwrap()
}

/// Saves the privacy settings form with this audit-log retention ("" = for life).
async fn set_audit_days(c: &Client, slug: &str, days: &str) -> Page {
    c.submit(
        &format!("/t/{slug}/privacy"),
        &format!("/t/{slug}/privacy/settings"),
        &[
            ("message_days", "365"),
            ("media_days", ""),
            ("ai_trace_days", "365"),
            ("audit_days", days),
            ("keywords", ""),
            ("legal_basis", "lgpd"),
        ],
    )
    .await
}

/// A page, logging in again when moving the clock has ended the session.
async fn page(c: &Client, email: &str, path: &str) -> Page {
    let p = c.get(path).await;
    if !p.is_login_redirect() {
        return p;
    }
    let r = c.log_in(email, PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.body);
    c.get(path).await
}

#[tokio::test]
async fn the_sweep_prunes_exactly_the_audit_entries_older_than_the_window() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    let t0 = w.t.clock.now();
    let r = set_audit_days(&w.owner, "clinic-a", "365").await;
    assert_eq!(r.status, 303, "{}", r.body);
    // One entry a second before the cutoff the sweep will use, one exactly at it, one after.
    w.t.clock
        .set(t0 + Duration::days(135) - Duration::seconds(1));
    let last_old = log_now(&w, a, "test.just_too_old").await;
    w.t.clock.set(t0 + Duration::days(135));
    let at_cutoff = log_now(&w, a, "test.at_the_cutoff").await;
    w.t.clock.set(t0 + Duration::days(200));
    let recent = log_now(&w, a, "test.recent").await;
    let old: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND seq <= $2")
            .bind(a)
            .bind(last_old)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert!(old >= 3, "sign-up, the settings change and the old entry");

    w.t.clock.set(t0 + Duration::days(500));
    let report = run_sweep(&w.t.privacy()).await.unwrap();
    assert_eq!(report.audit_entries, old);
    let left = seqs(&w, a).await;
    assert_eq!(left[0], at_cutoff, "the entry at the cutoff is kept");
    assert!(left.contains(&recent));
    assert!(left.iter().all(|s| *s > last_old));
    let before_cutoff: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE tenant_id = $1 AND at < $2")
            .bind(a)
            .bind(t0 + Duration::days(135))
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(before_cutoff, 0);

    // The prune is itself audited (a count and a sequence number, nothing else), and counted
    // in the sweep record.
    let detail: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE tenant_id = $1 AND action = 'audit.pruned'",
    )
    .bind(a)
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(detail, json!({ "count": old, "through_seq": last_old }));
    let counted: i32 =
        sqlx::query_scalar("SELECT audit_entries FROM retention_runs WHERE tenant_id = $1")
            .bind(a)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(i64::from(counted), old);
    let (through, dropped): (i64, i64) =
        sqlx::query_as("SELECT through_seq, dropped FROM audit_checkpoints WHERE tenant_id = $1")
            .bind(a)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!((through, dropped), (last_old, old));

    // What is left still verifies, from the checkpoint.
    let v = verify(&w, a).await.unwrap();
    assert_eq!(v.pruned.as_ref().map(|p| p.through_seq), Some(last_old));
    assert_eq!(v.entries, seqs(&w, a).await.len());
    let p = page(&w.owner, "owner@a.test", "/t/clinic-a/audit").await;
    assert!(p.body.contains("Integrity verified"), "{}", p.body);
    let note = format!(
        "{old} older entries, the last written {}",
        (t0 + Duration::days(135) - Duration::seconds(1))
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
            ))
            .unwrap()
    );
    assert!(p.body.contains(&note), "{note} not in {}", p.body);
    let p = page(&w.owner, "owner@a.test", "/t/clinic-a/privacy").await;
    assert!(p.body.contains("Audit entries"));

    // Running again drops nothing more: the entry at the old cutoff is still in the window.
    let again = run_sweep(&w.t.privacy()).await.unwrap();
    assert_eq!(again.audit_entries, 0);
    // Ten days later it is not: a second checkpoint, and the chain still verifies.
    w.t.clock.advance(Duration::days(10));
    let later = run_sweep(&w.t.privacy()).await.unwrap();
    assert_eq!(later.audit_entries, 1);
    assert_eq!(seqs(&w, a).await[0], at_cutoff + 1);
    let v = verify(&w, a).await.unwrap();
    assert_eq!(v.pruned.map(|p| p.through_seq), Some(at_cutoff));
}

#[tokio::test]
async fn the_newest_entry_survives_when_every_entry_is_old() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    let r = set_audit_days(&w.owner, "clinic-a", "365").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let newest = log_now(&w, a, "test.newest").await;
    w.t.clock.advance(Duration::days(4000));
    let report = run_sweep(&w.t.privacy()).await.unwrap();
    assert_eq!(report.audit_entries, newest - 1);
    let left = seqs(&w, a).await;
    assert_eq!(left[0], newest, "the chain's head is never dropped");
    assert!(verify(&w, a).await.is_ok());
}

#[tokio::test]
async fn with_audit_retention_unset_nothing_is_pruned() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    // The default is "for the life of the account": an empty field.
    let p = w.owner.get("/t/clinic-a/privacy").await;
    assert_eq!(p.input_value("audit_days").as_deref(), Some(""));
    // Saving the other settings leaves it unset.
    let r = set_audit_days(&w.owner, "clinic-a", "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    log_now(&w, a, "test.old").await;
    let before = seqs(&w, a).await;
    w.t.clock.advance(Duration::days(5000));
    let report = run_sweep(&w.t.privacy()).await.unwrap();
    assert_eq!(report.audit_entries, 0);
    let after = seqs(&w, a).await;
    assert_eq!(&after[..before.len()], &before[..]);
    let checkpoints: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_checkpoints")
        .fetch_one(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(checkpoints, 0);
    assert_eq!(verify(&w, a).await.unwrap().pruned, None);
}

/// Clinic A keeps a year and is pruned; clinic B in the same database is left untouched.
async fn pruned_world() -> (World, Uuid, Client, Uuid) {
    let w = World::new().await;
    let b = w.other_tenant().await;
    let a_id = tenant_id(&w, "clinic-a").await;
    let b_id = tenant_id(&w, "clinic-b").await;
    let r = set_audit_days(&w.owner, "clinic-a", "365").await;
    assert_eq!(r.status, 303, "{}", r.body);
    for _ in 0..3 {
        log_now(&w, a_id, "test.a").await;
        log_now(&w, b_id, "test.b").await;
    }
    w.t.clock.advance(Duration::days(400));
    log_now(&w, a_id, "test.a_recent").await;
    (w, a_id, b, b_id)
}

#[tokio::test]
async fn one_tenants_pruning_never_touches_another_tenants_log() {
    let (w, a, b, b_id) = pruned_world().await;
    let b_before: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq")
            .bind(b_id)
            .fetch_all(&w.t.owner)
            .await
            .unwrap();
    let report = run_sweep(&w.t.privacy()).await.unwrap();
    assert!(report.audit_entries > 0);
    assert_eq!(
        seqs(&w, a).await.len(),
        3,
        "a's recent entry, audit.pruned, retention.sweep"
    );
    let b_after: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq")
            .bind(b_id)
            .fetch_all(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(b_after, b_before);
    let b_checkpoints: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_checkpoints WHERE tenant_id = $1")
            .bind(b_id)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(b_checkpoints, 0);
    assert_eq!(verify(&w, b_id).await.unwrap().pruned, None);
    let p = page(&b, "bea@b.test", "/t/clinic-b/audit").await;
    assert!(p.body.contains("Integrity verified"), "{}", p.body);
    assert!(!p.body.contains("audit-pruned"));
    // A's checkpoint is invisible from B's tenant (row-level security).
    let mut tx = db::begin_tenant(&w.t.state.db, b_id).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_checkpoints")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0);
}

#[tokio::test]
async fn tampering_with_what_remains_after_pruning_is_detected() {
    let (w, a, _, _) = pruned_world().await;
    run_sweep(&w.t.privacy()).await.unwrap();
    let first = seqs(&w, a).await[0];
    assert!(verify(&w, a).await.is_ok());
    // Someone with database access edits a kept entry (the app role itself can't).
    sqlx::query("UPDATE audit_log SET subject = 'someone-else' WHERE tenant_id = $1 AND seq = $2")
        .bind(a)
        .bind(first + 1)
        .execute(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(verify(&w, a).await, Err(Tampering::Entry(first + 1)));
    let p = page(&w.owner, "owner@a.test", "/t/clinic-a/audit").await;
    assert!(
        p.body
            .contains(&format!("Integrity check FAILED at entry {}", first + 1)),
        "{}",
        p.body
    );
    // Once the altered entry is past the window, the sweep still leaves the chain whole: a
    // checkpoint over it would vouch for the altered entry and hide the change.
    w.t.clock.advance(Duration::days(400));
    let report = run_sweep(&w.t.privacy()).await.unwrap();
    assert_eq!(report.audit_entries, 0);
    assert_eq!(seqs(&w, a).await[0], first);
    assert_eq!(verify(&w, a).await, Err(Tampering::Entry(first + 1)));
    // … or deletes the first kept entry: a gap no checkpoint accounts for.
    sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq = $2")
        .bind(a)
        .bind(first)
        .execute(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(
        verify(&w, a).await,
        Err(Tampering::Missing {
            from: first,
            to: first
        })
    );
    let p = page(&w.owner, "owner@a.test", "/t/clinic-a/audit").await;
    assert!(
        p.body.contains(&format!(
            "entries {first} to {first} were deleted without a valid checkpoint"
        )),
        "{}",
        p.body
    );
}

#[tokio::test]
async fn an_altered_checkpoint_is_detected() {
    let (w, a, _, _) = pruned_world().await;
    run_sweep(&w.t.privacy()).await.unwrap();
    let through: i64 =
        sqlx::query_scalar("SELECT through_seq FROM audit_checkpoints WHERE tenant_id = $1")
            .bind(a)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    // Claiming fewer entries were dropped, or that they were older, breaks the signature.
    for (change, undo) in [
        ("dropped = dropped - 1", "dropped = dropped + 1"),
        (
            "through_at = through_at - interval '1 day'",
            "through_at = through_at + interval '1 day'",
        ),
    ] {
        for (sql, expected) in [
            (change, Err(Tampering::Checkpoint(through))),
            (undo, Ok(())),
        ] {
            sqlx::query(&format!(
                "UPDATE audit_checkpoints SET {sql} WHERE tenant_id = $1"
            ))
            .bind(a)
            .execute(&w.t.owner)
            .await
            .unwrap();
            assert_eq!(verify(&w, a).await.map(drop), expected, "{sql}");
        }
    }
}

#[tokio::test]
async fn a_forged_checkpoint_hiding_deleted_entries_is_detected() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    for _ in 0..5 {
        log_now(&w, a, "test.event").await;
    }
    // Someone with write access to the database drops entries 1..=4 and covers the gap with
    // a checkpoint of their own: they have the hash, but not the tenant's key.
    let head: Vec<u8> =
        sqlx::query_scalar("SELECT hash FROM audit_log WHERE tenant_id = $1 AND seq = 4")
            .bind(a)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    sqlx::query("DELETE FROM audit_log WHERE tenant_id = $1 AND seq <= 4")
        .bind(a)
        .execute(&w.t.owner)
        .await
        .unwrap();
    assert_eq!(
        verify(&w, a).await,
        Err(Tampering::Missing { from: 1, to: 4 })
    );
    sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, through_seq, through_at, head_hash, dropped, at, signature)
         VALUES ($1, 4, $2, $3, 4, $2, $4)",
    )
    .bind(a)
    .bind(w.t.clock.now())
    .bind(&head)
    .bind(vec![7u8; 32])
    .execute(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(verify(&w, a).await, Err(Tampering::Checkpoint(4)));
    let p = w.owner.get("/t/clinic-a/audit").await;
    assert!(
        p.body
            .contains("the checkpoint through entry 4 is not genuine"),
        "{}",
        p.body
    );
}

#[tokio::test]
async fn the_app_role_prunes_only_through_the_checked_function() {
    let (w, a, _, b_id) = pruned_world().await;
    let mut tx = db::begin_tenant(&w.t.state.db, a).await.unwrap();
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.unwrap();
    let mut tx = db::begin_tenant(&w.t.state.db, a).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, through_seq, through_at, head_hash, dropped, at, signature)
         VALUES ($1, 1, now(), $2, 1, now(), $2)",
    )
    .bind(a)
    .bind(vec![0u8; 32])
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    tx.rollback().await.unwrap();

    let entry = |seq: i64| {
        let owner = w.t.owner.clone();
        async move {
            sqlx::query_as::<_, (Vec<u8>, OffsetDateTime)>(
                "SELECT hash, at FROM audit_log WHERE tenant_id = $1 AND seq = $2",
            )
            .bind(a)
            .bind(seq)
            .fetch_one(&owner)
            .await
            .unwrap()
        }
    };
    let newest = *seqs(&w, a).await.last().unwrap();
    let (newest_hash, newest_at) = entry(newest).await;
    let (second_hash, second_at) = entry(2).await;
    let now = w.t.clock.now();
    // Calls audit_prune as the app role, unsigned, and rolls back.
    let prune = |tenant: Uuid,
                 through: i64,
                 hash: Vec<u8>,
                 at: OffsetDateTime,
                 dropped: i64,
                 p_at: OffsetDateTime| {
        let pool = w.t.state.db.clone();
        async move {
            let mut tx = db::begin_tenant(&pool, tenant).await.unwrap();
            let r = sqlx::query_scalar::<_, i64>("SELECT audit_prune($1, $2, $3, $4, $5, $6)")
                .bind(through)
                .bind(hash)
                .bind(at)
                .bind(dropped)
                .bind(p_at)
                .bind(vec![1u8; 32])
                .fetch_one(&mut *tx)
                .await;
            tx.rollback().await.unwrap();
            r.map_err(|e| e.to_string())
        }
    };
    // Never the newest entry, never for a tenant that keeps its log for life, never a wrong
    // count or hash, never an entry inside the window.
    let e = prune(a, newest, newest_hash, newest_at, newest, now)
        .await
        .unwrap_err();
    assert!(e.contains("keeps the newest entry"), "{e}");
    let e = prune(b_id, 2, second_hash.clone(), second_at, 2, now)
        .await
        .unwrap_err();
    assert!(e.contains("life of the account"), "{e}");
    let e = prune(a, 2, second_hash.clone(), second_at, 1, now)
        .await
        .unwrap_err();
    assert!(e.contains("claimed"), "{e}");
    let e = prune(a, 2, vec![9u8; 32], second_at, 2, now)
        .await
        .unwrap_err();
    assert!(e.contains("does not match"), "{e}");
    let e = prune(
        a,
        2,
        second_hash.clone(),
        second_at,
        2,
        second_at + Duration::days(300),
    )
    .await
    .unwrap_err();
    assert!(e.contains("not all older than 365 days"), "{e}");
    assert_eq!(
        prune(a, 2, second_hash.clone(), second_at, 2, now).await,
        Ok(2)
    );
    // The database cannot check the signature, so an unsigned prune of old entries goes
    // through; verification is what catches it.
    let mut tx = db::begin_tenant(&w.t.state.db, a).await.unwrap();
    sqlx::query_scalar::<_, i64>("SELECT audit_prune($1, $2, $3, $4, $5, $6)")
        .bind(2_i64)
        .bind(&second_hash)
        .bind(second_at)
        .bind(2_i64)
        .bind(now)
        .bind(vec![1u8; 32])
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(verify(&w, a).await, Err(Tampering::Checkpoint(2)));
}

#[tokio::test]
async fn audit_retention_is_bounded_on_the_privacy_page() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    for bad in ["30", "364", "3651", "forever"] {
        let r = set_audit_days(&w.owner, "clinic-a", bad).await;
        assert_eq!(r.status, 422, "{bad}");
        assert!(
            r.body
                .contains("The audit log is kept 365 to 3650 days; leave the field empty"),
            "{}",
            r.body
        );
        assert_eq!(
            r.input_value("audit_days").as_deref(),
            Some(bad),
            "input kept"
        );
    }
    let stored: Option<Option<i32>> =
        sqlx::query_scalar("SELECT audit_days FROM privacy_settings WHERE tenant_id = $1")
            .bind(a)
            .fetch_optional(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(stored.flatten(), None);
    // The database refuses it too, whoever writes.
    sqlx::query(
        "INSERT INTO privacy_settings (tenant_id, message_days, updated_at) VALUES ($1, 365, now())",
    )
    .bind(a)
    .execute(&w.t.owner)
    .await
    .unwrap();
    let err = sqlx::query("UPDATE privacy_settings SET audit_days = 30 WHERE tenant_id = $1")
        .bind(a)
        .execute(&w.t.owner)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("check constraint"), "{err}");

    let r = set_audit_days(&w.owner, "clinic-a", "730").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let p = w.owner.get("/t/clinic-a/privacy").await;
    assert_eq!(p.input_value("audit_days").as_deref(), Some("730"));
    // The change is audited like the other settings.
    let detail: serde_json::Value = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE tenant_id = $1 AND action = 'privacy.settings_changed' ORDER BY seq DESC LIMIT 1",
    )
    .bind(a)
    .fetch_one(&w.t.owner)
    .await
    .unwrap();
    assert_eq!(detail["audit_days"], json!(730));
    // Emptying the field goes back to keeping the log for life.
    let r = set_audit_days(&w.owner, "clinic-a", "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let stored: Option<i32> =
        sqlx::query_scalar("SELECT audit_days FROM privacy_settings WHERE tenant_id = $1")
            .bind(a)
            .fetch_one(&w.t.owner)
            .await
            .unwrap();
    assert_eq!(stored, None);
}

#[tokio::test]
async fn the_privacy_page_explains_audit_retention_in_english_and_portuguese() {
    let w = World::new().await;
    let en = w.owner.get("/t/clinic-a/privacy").await;
    assert!(
        en.body
            .contains(r#"<label for="audit_days">Keep the audit log for (days)</label>"#),
        "{}",
        en.body
    );
    assert!(en.body.contains(
        "Empty: kept for the life of the account (our default). Otherwise 365 to 3650 days"
    ));
    assert!(en.body.contains(r#"min="365" max="3650""#));
    let r = w.owner.get("/lang?to=pt-BR&next=/t/clinic-a/privacy").await;
    assert_eq!(r.status, 303);
    let pt = w.owner.get("/t/clinic-a/privacy").await;
    assert!(pt.body.contains(r#"<html lang="pt-BR">"#));
    assert!(
        pt.body.contains(
            r#"<label for="audit_days">Guardar o registro de auditoria por (dias)</label>"#
        ),
        "{}",
        pt.body
    );
    assert!(pt.body.contains(
        "Vazio: guardado enquanto a conta existir (nosso padrão). Ou de 365 a 3650 dias"
    ));
    let r = set_audit_days(&w.owner, "clinic-a", "10").await;
    assert_eq!(r.status, 422);
    assert!(
        r.body
            .contains("O registro de auditoria fica de 365 a 3650 dias")
    );
}

#[tokio::test]
async fn entries_recorded_between_microseconds_still_verify() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    // The real clock has nanoseconds; PostgreSQL keeps microseconds.
    w.t.clock.advance(Duration::nanoseconds(1_234_567));
    log_now(&w, a, "test.sub_microsecond").await;
    assert!(verify(&w, a).await.is_ok());
    let p = w.owner.get("/t/clinic-a/audit").await;
    assert!(p.body.contains("Integrity verified"), "{}", p.body);
}
