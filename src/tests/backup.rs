//! The restore drill (issue 20), with the real tools: `scripts/backup` dumps this test's main
//! database and key store (`pg_dump`, as they share a server here), a contact is erased
//! after the backup, both dumps are restored into new databases with `pg_restore`, and the
//! real `sigmaai restore-replay` makes the erased contact unreadable again.

use std::{path::Path, process::Command, sync::Arc};

use crate::crypto::{Aad, CryptoError, Keyring};
use secrecy::ExposeSecret;
use sqlx::Connection;
use uuid::Uuid;

use crate::tests::harness::TestApp;

fn pg_tool(name: &str) -> String {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed by scripts/test")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join(name).exists())
        .collect();
    dirs.sort();
    dirs.last()
        .unwrap_or_else(|| panic!("no {name}"))
        .join(name)
        .display()
        .to_string()
}

fn with_db(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{db}"));
    u.to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

async fn keyring_on(app: &TestApp, main_url: &str) -> Keyring {
    let mut config = app.config.clone();
    config.database_url = secrecy::SecretString::from(main_url.to_owned());
    config.keystore_url = None; // `<db>_keys` beside it, like the app
    let redis = crate::redis::Redis::new(None, "drill:").unwrap();
    Keyring::connect(&config, redis, Arc::new(app.clock.clone()))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_contact_erased_after_the_backup_stays_unreadable_after_a_restore() {
    let app = TestApp::new().await;
    let (tenant, contact, row) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let aad = || Aad::new("messages", "body", row);
    let sealed = app
        .keys
        .seal(tenant, contact, aad(), b"exame alterado")
        .await
        .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("sigmaai-drill-{}", app.db_name));
    let _ = std::fs::remove_dir_all(&dir);
    let owner_url = app.config.database_url.expose_secret().to_owned();

    // The backup, by the script operators run.
    let out = run(Command::new("bash")
        .arg(root.join("scripts/backup"))
        .env("DATABASE_URL", &owner_url)
        .env("SIGMAAI_BACKUP_DIR", &dir)
        .env_remove("SIGMAAI_KEYSTORE_URL"));
    assert!(out.contains("dumping the main database"), "{out}");
    let only = |sub: &str| {
        let mut f: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(f.len(), 1, "{f:?}");
        f.remove(0)
    };
    let (main_dump, keys_dump) = (only("main"), only("keystore"));

    // After the backup, the contact is erased (its key destroyed, the ledger appended).
    app.keys
        .destroy_contact_key(tenant, contact, "dsr:drill")
        .await
        .unwrap();

    // Restore both into new databases.
    let restored = format!("{}r", app.db_name);
    let restored_keys = format!("{restored}_keys");
    for (db, dump) in [(&restored, &main_dump), (&restored_keys, &keys_dump)] {
        run(Command::new(pg_tool("createdb"))
            .arg("--maintenance-db")
            .arg(&owner_url)
            .arg(db));
        run(Command::new(pg_tool("pg_restore"))
            .arg("--exit-on-error")
            .arg("-d")
            .arg(with_db(&owner_url, db))
            .arg(dump));
    }
    let restored_url = with_db(&owner_url, &restored);
    // The restore brought the key back: exactly why restore-replay exists.
    let before = keyring_on(&app, &restored_url).await;
    assert_eq!(
        before.open(tenant, contact, aad(), &sealed).await.unwrap(),
        b"exame alterado"
    );

    let out = run(Command::new(crate::tests::harness::sigmaai_bin())
        .arg("restore-replay")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &restored_url)
        .env(
            "SIGMAAI_MASTER_KEY",
            app.config.master_key.as_ref().unwrap().expose_secret(),
        )
        .env("SIGMAAI_DELETION_LEDGER", &app.config.deletion_ledger)
        .env("SIGMAAI_DATA_DIR", &dir)
        .env("RUST_LOG", "warn"));
    assert!(out.contains("1 key"), "{out}");
    let after = keyring_on(&app, &restored_url).await;
    assert!(matches!(
        after.open(tenant, contact, aad(), &sealed).await,
        Err(CryptoError::KeyDestroyed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The drill's second cluster (scripts/test starts it): the main database on a server of its
/// own, as in production, so `scripts/backup` takes a base backup plus WAL.
fn drill_cluster_url() -> String {
    std::env::var("SIGMAAI_TEST_DRILL_DATABASE_URL").expect(
        "SIGMAAI_TEST_DRILL_DATABASE_URL is unset: run the tests with scripts/test, which starts the drill cluster",
    )
}

fn with_port(url: &str, port: u16) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_port(Some(port)).unwrap();
    u.to_string()
}

async fn keyring_on_store(app: &TestApp, keystore_owner_url: &str) -> Keyring {
    let mut config = app.config.clone();
    config.keystore_url = Some(secrecy::SecretString::from(keystore_owner_url.to_owned()));
    let redis = crate::redis::Redis::new(None, "drill:").unwrap();
    Keyring::connect(&config, redis, Arc::new(app.clock.clone()))
        .await
        .unwrap()
}

/// Sets a file's modification time `days` ago (what retention looks at).
fn age(path: &Path, days: u32) {
    run(Command::new("touch")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(path));
}

#[tokio::test]
async fn a_base_backup_and_its_wal_restore_to_a_new_cluster_where_erased_contacts_stay_erased() {
    // The key store: this test's own, on the shared test server. The main database: a new
    // one on the drill cluster, another server.
    let app = TestApp::new().await;
    let keys_url = app
        .config
        .keystore_owner_url()
        .unwrap()
        .expose_secret()
        .to_owned();
    let drill = drill_cluster_url();
    // Databases of earlier drills (a failed run leaves its own) would only grow each backup.
    let mut admin = sqlx::PgConnection::connect(&with_db(&drill, "postgres"))
        .await
        .unwrap();
    let stale: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'drill\\_%'")
            .fetch_all(&mut admin)
            .await
            .unwrap();
    for db in stale {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    // Likewise their replication slots, which would hold WAL on the drill cluster forever.
    let _ = sqlx::query(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
         WHERE slot_name LIKE 'drill\\_%' AND NOT active",
    )
    .execute(&mut admin)
    .await;
    let main_db = format!("drill_{}", Uuid::new_v4().simple());
    let main_url = with_db(&drill, &main_db);
    run(Command::new(pg_tool("createdb"))
        .arg("--maintenance-db")
        .arg(&drill)
        .arg(&main_db));
    let main = sqlx::PgPool::connect(&main_url).await.unwrap();
    sqlx::query("CREATE TABLE notes (id uuid PRIMARY KEY, body bytea NOT NULL)")
        .execute(&main)
        .await
        .unwrap();
    let (tenant, contact) = (Uuid::new_v4(), Uuid::new_v4());
    let note = |id: Uuid, text: &'static [u8]| {
        let keys = app.keys.clone();
        let main = main.clone();
        async move {
            let sealed = keys
                .seal(tenant, contact, Aad::new("notes", "body", id), text)
                .await
                .unwrap();
            sqlx::query("INSERT INTO notes VALUES ($1, $2)")
                .bind(id)
                .bind(sealed)
                .execute(&main)
                .await
                .unwrap();
        }
    };
    let (before_backup, after_backup) = (Uuid::new_v4(), Uuid::new_v4());
    note(before_backup, b"exame alterado").await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("sigmaai-basedrill-{main_db}"));
    let _ = std::fs::remove_dir_all(&dir);
    // Earlier backups, some past the policy's retention (main and WAL 90 days, key store 7).
    for sub in ["main", "wal", "keystore"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let old = [
        ("main/20250101T000000Z", 91),
        ("wal/000000FF0000000000000001", 91),
        ("keystore/20250101T000000Z.dump", 8),
    ];
    let kept = [
        ("main/20250102T000000Z", 89),
        ("wal/000000FF0000000000000002", 89),
        ("keystore/20250102T000000Z.dump", 6),
    ];
    for (p, days) in old.iter().chain(&kept) {
        let path = dir.join(p);
        if p.starts_with("main/") {
            std::fs::create_dir_all(&path).unwrap();
        } else {
            std::fs::write(&path, b"old").unwrap();
        }
        age(&path, *days);
    }

    // The WAL archive streams the whole time, as the `scripts/backup wal` service does.
    let mut receiver = tokio::process::Command::new("bash")
        .arg(root.join("scripts/backup"))
        .arg("wal")
        .env("DATABASE_URL", &main_url)
        .env("SIGMAAI_BACKUP_WAL_SLOT", &main_db)
        .env("SIGMAAI_BACKUP_DIR", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let partial = || {
        std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
    };
    crate::tests::harness::eventually("pg_receivewal is streaming", || async { partial() }).await;

    // The daily base backup: the key store is on another server, so the main cluster gets
    // a real base backup (and the key store its own dump).
    let out = run(Command::new("bash")
        .arg(root.join("scripts/backup"))
        .env("DATABASE_URL", &main_url)
        .env("SIGMAAI_KEYSTORE_URL", &keys_url)
        .env("SIGMAAI_BACKUP_DIR", &dir));
    assert!(out.contains("main: base backup"), "{out}");
    for (p, _) in old {
        assert!(!dir.join(p).exists(), "{p} outlived its retention");
    }
    for (p, _) in kept {
        assert!(dir.join(p).exists(), "{p} was deleted before its time");
    }
    let newest = |sub: &str| {
        let mut f: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().contains("2025010"))
            .collect();
        assert_eq!(f.len(), 1, "{f:?}");
        f.remove(0)
    };
    let (base, keys_dump) = (newest("main"), newest("keystore"));
    assert!(base.join("base.tar.gz").exists());

    // After the backup: one more note (only the WAL archive has it), then the contact is
    // erased (key destroyed, ledger appended).
    note(after_backup, b"segundo exame").await;
    let segment: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_switch_wal())")
        .fetch_one(&main)
        .await
        .unwrap();
    crate::tests::harness::eventually("the WAL segment with the last note is archived", || async {
        dir.join("wal").join(&segment).exists()
    })
    .await;
    app.keys
        .destroy_contact_key(tenant, contact, "dsr:drill")
        .await
        .unwrap();
    let pid = receiver.id().unwrap() as libc::pid_t;
    // SAFETY: signals our own child (pg_receivewal, exec'd by the script).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = receiver.wait().await;
    main.close().await;

    // Restore: the base backup plus WAL into a new cluster, the key store dump into a new
    // database.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let restored_dir = dir.join("restored");
    let out = run(Command::new("bash")
        .arg(root.join("scripts/restore"))
        .arg(&base)
        .arg(&restored_dir)
        .arg(port.to_string()));
    assert!(out.contains("promoted"), "{out}");
    let _stop_restored = StopCluster(restored_dir.clone());
    let restored_main = with_port(&main_url, port);
    let restored_keys_db = format!("{}_rk", app.db_name);
    let restored_keys = with_db(&keys_url, &restored_keys_db);
    run(Command::new(pg_tool("createdb"))
        .arg("--maintenance-db")
        .arg(&keys_url)
        .arg(&restored_keys_db));
    run(Command::new(pg_tool("pg_restore"))
        .arg("--exit-on-error")
        .arg("-d")
        .arg(&restored_keys)
        .arg(&keys_dump));

    // Both notes are back (the second through the WAL), readable again: the restored key
    // store still holds the erased contact's key.
    let restored = sqlx::PgPool::connect(&restored_main).await.unwrap();
    let notes: Vec<(Uuid, Vec<u8>)> = sqlx::query_as("SELECT id, body FROM notes")
        .fetch_all(&restored)
        .await
        .unwrap();
    restored.close().await;
    let body = |id: Uuid| notes.iter().find(|(i, _)| *i == id).map(|(_, b)| b.clone());
    let (first, second) = (
        body(before_backup).expect("the note from before the backup is restored"),
        body(after_backup).expect("the note written after the backup came back through the WAL"),
    );
    let revived = keyring_on_store(&app, &restored_keys).await;
    assert_eq!(
        revived
            .open(
                tenant,
                contact,
                Aad::new("notes", "body", before_backup),
                &first
            )
            .await
            .unwrap(),
        b"exame alterado"
    );

    let out = Command::new(crate::tests::harness::sigmaai_bin())
        .arg("restore-replay")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &restored_main)
        .env("SIGMAAI_KEYSTORE_URL", &restored_keys)
        .env(
            "SIGMAAI_MASTER_KEY",
            app.config.master_key.as_ref().unwrap().expose_secret(),
        )
        .env("SIGMAAI_DELETION_LEDGER", &app.config.deletion_ledger)
        .env("SIGMAAI_DATA_DIR", &dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 key"), "{text}");
    let after = keyring_on_store(&app, &restored_keys).await;
    for (id, sealed) in [(before_backup, &first), (after_backup, &second)] {
        assert!(matches!(
            after
                .open(tenant, contact, Aad::new("notes", "body", id), sealed)
                .await,
            Err(CryptoError::KeyDestroyed)
        ));
    }
    drop(_stop_restored);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&main_db)
        .execute(&mut admin)
        .await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {main_db} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

/// Stops a restored cluster (however the test ends).
struct StopCluster(std::path::PathBuf);

impl Drop for StopCluster {
    fn drop(&mut self) {
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(pg_tool("pg_ctl"));
            c
        } else {
            Command::new(pg_tool("pg_ctl"))
        };
        let _ = cmd
            .arg("-D")
            .arg(&self.0)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
