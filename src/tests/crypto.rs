//! Encryption at rest and cryptographic deletion, against the real key store and Redis.

use crate::crypto::{Aad, CryptoError, Keyring};
use uuid::Uuid;

use crate::tests::harness::{TestApp, start_time};

fn body(row: Uuid) -> Aad<'static> {
    Aad::new("messages", "body", row)
}

/// A raw copy of the key store's rows for one subject, as a backup would hold them.
async fn data_key_rows(app: &TestApp, tenant: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM data_keys WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.keystore_owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn round_trips_for_contacts_and_tenant_secrets() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let (tenant, contact, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    keys.ensure_tenant_key(tenant).await.unwrap();
    keys.ensure_contact_key(tenant, contact).await.unwrap();
    for plaintext in [&b""[..], b"Ol\xc3\xa1, tudo bem?", &[7u8; 70_000]] {
        let sealed = keys
            .seal(tenant, contact, body(row), plaintext)
            .await
            .unwrap();
        assert!(
            !sealed
                .windows(plaintext.len().max(1))
                .any(|w| w == plaintext)
                || plaintext.is_empty()
        );
        assert_eq!(
            keys.open(tenant, contact, body(row), &sealed)
                .await
                .unwrap(),
            plaintext
        );
    }
    let s = keys
        .seal_str(tenant, contact, body(row), "Consulta às 15h")
        .await
        .unwrap();
    assert_eq!(
        keys.open_str(tenant, contact, body(row), &s).await.unwrap(),
        "Consulta às 15h"
    );
    let aad = Aad::new("mcp_servers", "token", row);
    let t = keys
        .seal_tenant_str(tenant, aad, "sk-live-123")
        .await
        .unwrap();
    assert_eq!(
        keys.open_tenant_str(tenant, aad, &t).await.unwrap(),
        "sk-live-123"
    );

    // Nothing in the key store is readable without the master key: no key material in clear.
    let rows: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT wrapped FROM data_keys UNION ALL SELECT wrapped FROM tenant_keys",
    )
    .fetch_all(&app.keystore_owner)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "tenant key + tenant data key + contact key");

    // A fresh keyring (a restarted instance) opens what this one sealed.
    let other = app.second_keyring(app.clock.clone()).await;
    assert_eq!(
        other
            .open_str(tenant, contact, body(row), &s)
            .await
            .unwrap(),
        "Consulta às 15h"
    );
}

#[tokio::test]
async fn ensure_is_idempotent_under_concurrency() {
    let app = TestApp::new().await;
    let tenant = Uuid::new_v4();
    let contact = Uuid::new_v4();
    let other = app.second_keyring(app.clock.clone()).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let k: Keyring = if i % 2 == 0 {
            app.keys.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            k.ensure_contact_key(tenant, contact).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        data_key_rows(&app, tenant).await,
        2,
        "one tenant data key, one contact key"
    );
    let tenant_keys: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenant_keys WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&app.keystore_owner)
            .await
            .unwrap();
    assert_eq!(tenant_keys, 1);
    // Both instances seal with the same key: each opens the other's.
    let sealed = other
        .seal(tenant, contact, body(Uuid::nil()), b"x")
        .await
        .unwrap();
    assert_eq!(
        app.keys
            .open(tenant, contact, body(Uuid::nil()), &sealed)
            .await
            .unwrap(),
        b"x"
    );
}

#[tokio::test]
async fn tampering_wrong_context_and_moved_ciphertexts_fail() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let (tenant, contact, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let sealed = keys
        .seal(tenant, contact, body(row), b"secret text")
        .await
        .unwrap();

    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        keys.open(tenant, contact, body(row), &flipped).await,
        Err(CryptoError::Tampered)
    ));
    let mut flipped_body = sealed.clone();
    flipped_body[40] ^= 0x80;
    assert!(matches!(
        keys.open(tenant, contact, body(row), &flipped_body).await,
        Err(CryptoError::Tampered)
    ));
    assert!(matches!(
        keys.open(tenant, contact, body(row), &sealed[..20]).await,
        Err(CryptoError::Malformed)
    ));

    // Moved to another row, column or table of the same contact.
    for aad in [
        body(Uuid::new_v4()),
        Aad::new("messages", "caption", row),
        Aad::new("drafts", "body", row),
    ] {
        assert!(
            matches!(
                keys.open(tenant, contact, aad, &sealed).await,
                Err(CryptoError::Tampered)
            ),
            "{aad:?}"
        );
    }
    // Moved to another contact of the tenant (whose key is a different one).
    let other_contact = Uuid::new_v4();
    keys.ensure_contact_key(tenant, other_contact)
        .await
        .unwrap();
    assert!(matches!(
        keys.open(tenant, other_contact, body(row), &sealed).await,
        Err(CryptoError::Tampered)
    ));
    // Tenant secrets are bound to their tenant too.
    let aad = Aad::new("tenant_settings", "api_key", row);
    let secret = keys.seal_tenant(tenant, aad, b"k").await.unwrap();
    let other_tenant = Uuid::new_v4();
    keys.ensure_tenant_key(other_tenant).await.unwrap();
    assert!(matches!(
        keys.open_tenant(other_tenant, aad, &secret).await,
        Err(CryptoError::Tampered)
    ));
    assert!(
        keys.open_tenant(tenant, Aad::new("tenant_settings", "other", row), &secret)
            .await
            .is_err()
    );
    assert_eq!(keys.open_tenant(tenant, aad, &secret).await.unwrap(), b"k");

    // A wrapped key moved to another subject's row in the key store does not unwrap.
    sqlx::query(
        "UPDATE data_keys SET wrapped = (SELECT wrapped FROM data_keys WHERE subject_id = $1) WHERE subject_id = $2",
    )
    .bind(contact)
    .bind(other_contact)
    .execute(&app.keystore_owner)
    .await
    .unwrap();
    let fresh = app.second_keyring(app.clock.clone()).await;
    assert!(
        fresh
            .ensure_contact_key(tenant, other_contact)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn destroying_a_contact_key_makes_its_backed_up_ciphertexts_unreadable_only() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let tenant = Uuid::new_v4();
    let (erased, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let mut backup = Vec::new(); // (contact, row, ciphertext) as a database backup holds them
    for contact in [erased, kept] {
        for i in 0..3 {
            let row = Uuid::new_v4();
            let c = keys
                .seal_str(tenant, contact, body(row), &format!("message {i}"))
                .await
                .unwrap();
            backup.push((contact, row, c));
        }
    }
    keys.destroy_contact_key(tenant, erased, "dsr:test-erasure")
        .await
        .unwrap();

    for (contact, row, c) in &backup {
        let opened = keys.open_str(tenant, *contact, body(*row), c).await;
        if *contact == erased {
            assert!(
                matches!(opened, Err(CryptoError::KeyDestroyed)),
                "{opened:?}"
            );
        } else {
            assert!(opened.unwrap().starts_with("message "));
        }
    }
    // A restarted instance (empty cache) can't either.
    let fresh = app.second_keyring(app.clock.clone()).await;
    let (_, row, c) = &backup[0];
    assert!(matches!(
        fresh.open(tenant, erased, body(*row), c).await,
        Err(CryptoError::KeyDestroyed)
    ));
    // The erased contact's key is never recreated, so nothing new is sealed for them.
    assert!(matches!(
        keys.ensure_contact_key(tenant, erased).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert!(matches!(
        keys.seal(tenant, erased, body(*row), b"late job").await,
        Err(CryptoError::KeyDestroyed)
    ));

    // The ledger recorded it durably, ids only.
    let ledger = std::fs::read_to_string(&app.config.deletion_ledger).unwrap();
    assert_eq!(ledger.lines().count(), 1);
    assert!(ledger.contains(&erased.to_string()) && ledger.contains("dsr:test-erasure"));
    assert!(!ledger.contains("message"));
}

#[tokio::test]
async fn destroying_a_tenant_key_erases_the_whole_tenant_only() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let (gone, stays) = (Uuid::new_v4(), Uuid::new_v4());
    let (c1, c2, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let a = keys.seal(gone, c1, body(row), b"a").await.unwrap();
    let s = keys.seal_tenant(gone, body(row), b"secret").await.unwrap();
    let b = keys.seal(stays, c2, body(row), b"b").await.unwrap();
    let phone_before = keys.blind_phone(stays, "5511999990000").await.unwrap();
    keys.destroy_tenant_key(gone, "termination").await.unwrap();
    assert!(matches!(
        keys.open(gone, c1, body(row), &a).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert!(matches!(
        keys.open_tenant(gone, body(row), &s).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert!(matches!(
        keys.ensure_tenant_key(gone).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert!(matches!(
        keys.ensure_contact_key(gone, Uuid::new_v4()).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert!(keys.blind_phone(gone, "5511999990000").await.is_err());
    assert_eq!(data_key_rows(&app, gone).await, 0);
    assert_eq!(keys.open(stays, c2, body(row), &b).await.unwrap(), b"b");
    assert_eq!(
        keys.blind_phone(stays, "5511999990000").await.unwrap(),
        phone_before
    );
}

#[tokio::test]
async fn a_second_instance_stops_decrypting_within_seconds() {
    let app = TestApp::new().await;
    assert!(
        app.config.redis_url.is_some(),
        "REDIS_URL unset: cross-instance invalidation needs Redis (scripts/test starts one)"
    );
    let (tenant, contact, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let sealed = app
        .keys
        .seal(tenant, contact, body(row), b"hi")
        .await
        .unwrap();
    // Instance B has its own clock that never moves: only the invalidation can evict its cache.
    let b_clock = crate::clock::ManualClock::new(start_time());
    let b = app.second_keyring(b_clock).await;
    crate::tests::harness::eventually("instance B subscribed to invalidations", || async {
        b.invalidation_live()
    })
    .await;
    assert_eq!(
        b.open(tenant, contact, body(row), &sealed).await.unwrap(),
        b"hi"
    ); // now cached

    app.keys
        .destroy_contact_key(tenant, contact, "dsr:1")
        .await
        .unwrap();
    // B's clock never moves, so its cache TTL can't be what evicts the key: only the
    // invalidation can, and it must arrive (no wall-clock limit: a loaded CI is slow).
    crate::tests::harness::eventually("instance B refuses the destroyed key", || async {
        match b.open(tenant, contact, body(row), &sealed).await {
            Err(CryptoError::KeyDestroyed) => true,
            Ok(_) => false,
            Err(e) => panic!("{e}"),
        }
    })
    .await;
}

#[tokio::test]
async fn without_redis_the_cache_ttl_bounds_a_destroyed_key() {
    let app = TestApp::new().await;
    let (tenant, contact, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let sealed = app
        .keys
        .seal(tenant, contact, body(row), b"hi")
        .await
        .unwrap();
    let b_clock = crate::clock::ManualClock::new(start_time());
    let mut cfg = app.config.clone();
    cfg.redis_url = None;
    let b = Keyring::connect(
        &cfg,
        crate::redis::Redis::disabled(),
        std::sync::Arc::new(b_clock.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        b.open(tenant, contact, body(row), &sealed).await.unwrap(),
        b"hi"
    );
    app.keys
        .destroy_contact_key(tenant, contact, "dsr:2")
        .await
        .unwrap();
    // No invalidation reaches B: it keeps its cached key until the TTL...
    assert!(b.open(tenant, contact, body(row), &sealed).await.is_ok());
    b_clock.advance(time::Duration::try_from(cfg.key_cache_ttl).unwrap());
    // ...and not a moment longer.
    assert!(matches!(
        b.open(tenant, contact, body(row), &sealed).await,
        Err(CryptoError::KeyDestroyed)
    ));
}

#[tokio::test]
async fn blind_indexes_are_per_tenant_and_fold_case_and_accents() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let (t1, t2) = (Uuid::new_v4(), Uuid::new_v4());
    let p1 = keys.blind_phone(t1, "5511987654321").await.unwrap();
    assert_eq!(p1, keys.blind_phone(t1, "5511987654321").await.unwrap());
    assert_ne!(
        p1,
        keys.blind_phone(t2, "5511987654321").await.unwrap(),
        "same phone, two tenants"
    );
    assert_ne!(p1, keys.blind_phone(t1, "5511987654320").await.unwrap());
    assert!(!p1.contains("5511987654321"));

    let name = keys.blind_words(t1, "José da Conceição").await.unwrap();
    assert_eq!(name.len(), 3);
    let query = keys.blind_words(t1, "conceicao").await.unwrap();
    assert!(
        name.contains(&query[0]),
        "a search for one word matches the name's token"
    );
    assert_eq!(keys.blind_words(t1, "JOSÉ").await.unwrap()[0], name[0]);
    assert_ne!(keys.blind_words(t2, "José").await.unwrap()[0], name[0]);

    // Tokens survive a tenant-key rotation (the index key hangs off the tenant's data key).
    keys.rotate_tenant(t1).await.unwrap();
    let fresh = app.second_keyring(app.clock.clone()).await;
    assert_eq!(fresh.blind_phone(t1, "5511987654321").await.unwrap(), p1);
}

#[tokio::test]
async fn master_rotation_rewraps_tenant_keys_and_old_data_stays_readable() {
    let old_master = crate::crypto::master::generate_master_key();
    let app = TestApp::with_config(|c| c.master_key = Some(old_master.clone().into())).await;
    let (t1, t2, contact, row) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let m1 = app
        .keys
        .seal(t1, contact, body(row), b"before")
        .await
        .unwrap();
    let m2 = app
        .keys
        .seal_tenant(t2, body(row), b"tenant secret")
        .await
        .unwrap();
    let wrapped_before: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT wrapped FROM data_keys ORDER BY key_id")
            .fetch_all(&app.keystore_owner)
            .await
            .unwrap();

    // The operator sets a new master key and lists the old one as previous.
    let mut cfg = app.config.clone();
    cfg.master_key = Some(crate::crypto::master::generate_master_key().into());
    cfg.master_key_previous = vec![old_master.clone().into()];
    let rotated = Keyring::connect(
        &cfg,
        crate::redis::Redis::disabled(),
        app.state.clock.clone(),
    )
    .await
    .unwrap();
    // Before rotating, the old master key still unwraps.
    assert_eq!(
        rotated.open(t1, contact, body(row), &m1).await.unwrap(),
        b"before"
    );
    let report = rotated.rotate_master().await.unwrap();
    assert_eq!(report.rewrapped, 2);
    assert_eq!(
        report.per_master_key,
        vec![(report.current_master_key_id.clone(), 2)]
    );
    assert_eq!(
        rotated.rotate_master().await.unwrap().rewrapped,
        0,
        "idempotent"
    );
    // Data keys were not touched, data was not re-encrypted.
    let wrapped_after: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT wrapped FROM data_keys ORDER BY key_id")
            .fetch_all(&app.keystore_owner)
            .await
            .unwrap();
    assert_eq!(wrapped_before, wrapped_after);

    // With the old master key retired, everything still opens, and new data too.
    cfg.master_key_previous.clear();
    let retired = Keyring::connect(
        &cfg,
        crate::redis::Redis::disabled(),
        app.state.clock.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        retired.open(t1, contact, body(row), &m1).await.unwrap(),
        b"before"
    );
    assert_eq!(
        retired.open_tenant(t2, body(row), &m2).await.unwrap(),
        b"tenant secret"
    );
    let m3 = retired
        .seal(t1, Uuid::new_v4(), body(row), b"after")
        .await
        .unwrap();
    assert!(!m3.is_empty());
    // The old master key alone no longer opens anything.
    let mut old_only = app.config.clone();
    old_only.master_key = Some(old_master.into());
    let stale = Keyring::connect(
        &old_only,
        crate::redis::Redis::disabled(),
        app.state.clock.clone(),
    )
    .await
    .unwrap();
    assert!(matches!(
        stale.open(t1, contact, body(row), &m1).await,
        Err(CryptoError::UnknownMasterKey(_))
    ));
}

#[tokio::test]
async fn tenant_rotation_adds_a_version_rewraps_contact_keys_and_keeps_old_data_readable() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let (tenant, row) = (Uuid::new_v4(), Uuid::new_v4());
    let contacts: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let mut sealed = Vec::new();
    for c in &contacts {
        sealed.push(
            keys.seal(tenant, *c, body(row), c.as_bytes())
                .await
                .unwrap(),
        );
    }
    let secret = keys.seal_tenant(tenant, body(row), b"s").await.unwrap();
    let r = keys.rotate_tenant(tenant).await.unwrap();
    assert_eq!(r.new_version, 2);
    assert_eq!(
        r.rewrapped_data_keys, 4,
        "three contacts and the tenant's own data key"
    );
    let versions: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT tenant_key_version, count(*) FROM data_keys WHERE tenant_id = $1 GROUP BY 1",
    )
    .bind(tenant)
    .fetch_all(&app.keystore_owner)
    .await
    .unwrap();
    assert_eq!(versions, vec![(2, 4)]);

    // Old data (sealed before) opens on a fresh instance; new contacts use version 2.
    let fresh = app.second_keyring(app.clock.clone()).await;
    for (c, s) in contacts.iter().zip(&sealed) {
        assert_eq!(
            fresh.open(tenant, *c, body(row), s).await.unwrap(),
            c.as_bytes()
        );
    }
    assert_eq!(
        fresh.open_tenant(tenant, body(row), &secret).await.unwrap(),
        b"s"
    );
    // Retiring version 1 is safe now: nothing is wrapped by it.
    assert_eq!(keys.retire_tenant_versions(tenant).await.unwrap(), 1);
    assert_eq!(keys.retire_tenant_versions(tenant).await.unwrap(), 0);
    let fresh = app.second_keyring(app.clock.clone()).await;
    assert_eq!(
        fresh
            .open(tenant, contacts[0], body(row), &sealed[0])
            .await
            .unwrap(),
        contacts[0].as_bytes()
    );

    // A version still wrapping a data key can't be retired (the key store refuses).
    sqlx::query("INSERT INTO tenant_keys (tenant_id, version, master_key_id, wrapped) SELECT tenant_id, 3, master_key_id, wrapped FROM tenant_keys WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&app.keystore_owner)
        .await
        .unwrap();
    let refused = sqlx::query("DELETE FROM tenant_keys WHERE tenant_id = $1 AND version = 2")
        .bind(tenant)
        .execute(&app.keystore_owner)
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn restore_replay_destroys_keys_a_restore_brought_back() {
    let app = TestApp::new().await;
    let keys = &app.keys;
    let (tenant, erased, kept, row) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    let gone = keys
        .seal(tenant, erased, body(row), b"erase me")
        .await
        .unwrap();
    let stays = keys
        .seal(tenant, kept, body(row), b"keep me")
        .await
        .unwrap();
    let other_tenant = Uuid::new_v4();
    let terminated = keys
        .seal(other_tenant, kept, body(row), b"tenant gone")
        .await
        .unwrap();

    // The key-store backup, taken before the erasure.
    let backup_data: Vec<(Uuid, Uuid, Uuid, i32, i32, Vec<u8>)> = sqlx::query_as(
        "SELECT tenant_id, subject_id, key_id, key_version, tenant_key_version, wrapped FROM data_keys",
    )
    .fetch_all(&app.keystore_owner)
    .await
    .unwrap();
    let backup_tenants: Vec<(Uuid, i32, String, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, version, master_key_id, wrapped FROM tenant_keys")
            .fetch_all(&app.keystore_owner)
            .await
            .unwrap();

    keys.destroy_contact_key(tenant, erased, "dsr:42")
        .await
        .unwrap();
    keys.destroy_tenant_key(other_tenant, "termination")
        .await
        .unwrap();

    // The restore: the key store goes back to the backup (tombstones included, i.e. none).
    let mut tx = app.keystore_owner.begin().await.unwrap();
    for table in ["data_keys", "tenant_keys", "tombstones"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    for (t, v, m, w) in &backup_tenants {
        sqlx::query("INSERT INTO tenant_keys (tenant_id, version, master_key_id, wrapped) VALUES ($1, $2, $3, $4)")
            .bind(t).bind(v).bind(m).bind(w)
            .execute(&mut *tx).await.unwrap();
    }
    for (t, s, k, kv, tv, w) in &backup_data {
        sqlx::query("INSERT INTO data_keys (tenant_id, subject_id, key_id, key_version, tenant_key_version, wrapped) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(t).bind(s).bind(k).bind(kv).bind(tv).bind(w)
            .execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    // The restore brought the erased contact back: the reason replay exists.
    let restored = app.second_keyring(app.clock.clone()).await;
    assert_eq!(
        restored
            .open(tenant, erased, body(row), &gone)
            .await
            .unwrap(),
        b"erase me"
    );

    let report = keys.replay_ledger().await.unwrap();
    assert_eq!(report.entries, 2);
    assert!(
        report.chain_problems.is_empty(),
        "{:?}",
        report.chain_problems
    );
    // The contact key; the other tenant's key, its data key and its contact's key.
    assert_eq!(report.keys_destroyed_again, 4);

    let after = app.second_keyring(app.clock.clone()).await;
    assert!(matches!(
        after.open(tenant, erased, body(row), &gone).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert!(matches!(
        after.open(other_tenant, kept, body(row), &terminated).await,
        Err(CryptoError::KeyDestroyed)
    ));
    assert_eq!(
        after.open(tenant, kept, body(row), &stays).await.unwrap(),
        b"keep me"
    );
    assert!(matches!(
        after.ensure_contact_key(tenant, erased).await,
        Err(CryptoError::KeyDestroyed)
    ));
    // Replaying again changes nothing.
    assert_eq!(keys.replay_ledger().await.unwrap().keys_destroyed_again, 0);
}

/// The operator commands, through the real binary: `keys rotate --tenant SLUG` resolves the
/// slug in the main database; `restore-replay` re-destroys a key row re-inserted after a
/// destroy and fails loudly on a tampered ledger.
#[tokio::test]
async fn cli_rotates_by_slug_and_replays_the_ledger() {
    let app = TestApp::new().await;
    let (tenant, contact, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    sqlx::query("INSERT INTO tenants (id, slug, name, created_at) VALUES ($1, 'clinica-sol', 'Clínica Sol', now())")
        .bind(tenant)
        .execute(&app.owner)
        .await
        .unwrap();
    let sealed = app
        .keys
        .seal(tenant, contact, body(row), b"hello")
        .await
        .unwrap();
    let data_dir = std::env::temp_dir().join(format!("sigmaai-cli-{}", app.db_name));
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::tests::harness::sigmaai_bin())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                secrecy::ExposeSecret::expose_secret(&app.config.database_url),
            )
            .env(
                "SIGMAAI_MASTER_KEY",
                secrecy::ExposeSecret::expose_secret(app.config.master_key.as_ref().unwrap()),
            )
            .env("SIGMAAI_DELETION_LEDGER", &app.config.deletion_ledger)
            .env("SIGMAAI_DATA_DIR", &data_dir)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };

    let (ok, out) = cli(&["keys", "rotate", "--tenant", "clinica-sol"]);
    assert!(ok, "{out}");
    assert!(out.contains("version 2"), "{out}");
    let (ok, out) = cli(&["keys", "rotate", "--tenant", "nope"]);
    assert!(!ok && out.contains("no tenant"), "{out}");
    let (ok, out) = cli(&["keys", "rotate", "--master"]);
    assert!(ok && out.contains("0 tenant key"), "{out}");

    // Copy the contact's key row, destroy, re-insert the copy (a restore), replay.
    let copy: (Uuid, Uuid, i32, i32, Vec<u8>) = sqlx::query_as(
        "SELECT subject_id, key_id, key_version, tenant_key_version, wrapped FROM data_keys WHERE subject_id = $1",
    )
    .bind(contact)
    .fetch_one(&app.keystore_owner)
    .await
    .unwrap();
    app.keys
        .destroy_contact_key(tenant, contact, "dsr:cli")
        .await
        .unwrap();
    sqlx::query("DELETE FROM tombstones")
        .execute(&app.keystore_owner)
        .await
        .unwrap();
    sqlx::query("INSERT INTO data_keys (tenant_id, subject_id, key_id, key_version, tenant_key_version, wrapped) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(tenant).bind(copy.0).bind(copy.1).bind(copy.2).bind(copy.3).bind(&copy.4)
        .execute(&app.keystore_owner)
        .await
        .unwrap();
    let revived = app.second_keyring(app.clock.clone()).await;
    assert_eq!(
        revived
            .open(tenant, contact, body(row), &sealed)
            .await
            .unwrap(),
        b"hello"
    );

    let (ok, out) = cli(&["restore-replay"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("1 ledger entr") && out.contains("1 key"),
        "{out}"
    );
    let gone = app.second_keyring(app.clock.clone()).await;
    assert!(matches!(
        gone.open(tenant, contact, body(row), &sealed).await,
        Err(CryptoError::KeyDestroyed)
    ));

    // A tampered ledger: replay still applies every entry but exits non-zero.
    let text = std::fs::read_to_string(&app.config.deletion_ledger).unwrap();
    std::fs::write(
        &app.config.deletion_ledger,
        text.replace("dsr:cli", "dsr:xxx"),
    )
    .unwrap();
    let (ok, out) = cli(&["restore-replay"]);
    assert!(!ok && out.contains("hash"), "{out}");
}
