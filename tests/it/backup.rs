//! The restore drill (issue 20), with the real tools: `scripts/backup` dumps this test's main
//! database and key store (`pg_dump`, as they share a server here), a contact is erased
//! after the backup, both dumps are restored into new databases with `pg_restore`, and the
//! real `sigmaai restore-replay` makes the erased contact unreadable again.

use std::{path::Path, process::Command, sync::Arc};

use secrecy::ExposeSecret;
use sigmaai::crypto::{Aad, CryptoError, Keyring};
use uuid::Uuid;

use crate::harness::TestApp;

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
    let redis = sigmaai::redis::Redis::new(None, "drill:").unwrap();
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

    let out = run(Command::new(env!("CARGO_BIN_EXE_sigmaai"))
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
