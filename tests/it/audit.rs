//! The audit log's hash chain and its verification.

use serde_json::json;
use sigmaai::{
    clock::Clock,
    db::{
        self,
        audit::{self, Actor},
    },
};
use time::Duration;
use uuid::Uuid;

use crate::client::World;

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

#[tokio::test]
async fn entries_recorded_between_microseconds_still_verify() {
    let w = World::new().await;
    let a = tenant_id(&w, "clinic-a").await;
    // The real clock has nanoseconds; PostgreSQL keeps microseconds.
    w.t.clock.advance(Duration::nanoseconds(1_234_567));
    log_now(&w, a, "test.sub_microsecond").await;
    let p = w.owner.get("/t/clinic-a/audit").await;
    assert!(p.body.contains("Integrity verified"), "{}", p.body);
}
