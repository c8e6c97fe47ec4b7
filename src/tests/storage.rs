//! Media in an S3-compatible store (issue 20): a real server (moto in server mode, started
//! by scripts/test), reached through `object_store` with path-style requests. What the store
//! holds is sealed; another instance reads it; deletion removes the object.

use crate::clock::Clock;
use serde_json::json;

use crate::tests::{
    client::{Client, World},
    harness::TestApp,
    wa::{Gw, evo_upsert},
};

fn s3_url() -> String {
    std::env::var("SIGMAAI_TEST_S3_URL")
        .expect("SIGMAAI_TEST_S3_URL is unset: run the tests with scripts/test, which starts moto")
}

/// A fresh bucket for this test (moto accepts unsigned requests for set-up and inspection).
async fn make_bucket() -> String {
    let bucket = format!("media-{}", uuid::Uuid::new_v4().simple());
    let r = reqwest::Client::new()
        .put(format!("{}/{bucket}", s3_url()))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "could not create the bucket: {}",
        r.status()
    );
    bucket
}

/// The raw object as the store holds it, read with a plain S3 client of its own (no
/// prefix, nothing of ours): (200, bytes) or (404, empty).
async fn raw_object(bucket: &str, key: &str) -> (u16, Vec<u8>) {
    use object_store::ObjectStore as _;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_endpoint(s3_url())
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let path = object_store::path::Path::parse(format!("sigmaai/{key}")).unwrap();
    match s3.get(&path).await {
        Ok(r) => (200, r.bytes().await.unwrap().to_vec()),
        Err(object_store::Error::NotFound { .. }) => (404, Vec::new()),
        Err(e) => panic!("reading the raw object: {e}"),
    }
}

#[tokio::test]
async fn media_goes_sealed_to_s3_is_read_by_another_instance_and_deleted_with_the_turn() {
    let bucket = make_bucket().await;
    let t = TestApp::with_config(|c| {
        c.object_store_url = Some(format!("s3://{bucket}/sigmaai"));
        c.s3_endpoint = Some(s3_url());
        c.s3_region = Some("us-east-1".into());
        c.aws_access_key_id = Some(secrecy::SecretString::from("testing"));
        c.aws_secret_access_key = Some(secrecy::SecretString::from("testing"));
    })
    .await;
    let server = t.spawn().await;
    let owner = Client::new(&server);
    assert_eq!(
        owner
            .sign_up("Ana Owner", "owner@a.test", "Clinic A", "clinic-a")
            .await
            .status,
        303
    );
    let gw = Gw::evolution_in(World { t, server, owner }).await;
    let plaintext = b"exam-image-PLAINTEXT-MARKER";
    let png = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, plaintext);
    let now = gw.w.t.clock.now().unix_timestamp();
    gw.evo(&evo_upsert(
        "S1",
        "5511988887777",
        "Ana",
        now,
        json!({ "imageMessage": { "mimetype": "image/png", "caption": "meu exame" }, "base64": png }),
        "imageMessage",
    ))
    .await;
    gw.run_jobs().await;
    let (id, key): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT id, media_key FROM messages WHERE external_id = 'S1' AND media_state = 'stored'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();

    // The store has it, and never saw the plaintext.
    let (status, stored) = raw_object(&bucket, &key).await;
    assert_eq!(status, 200);
    assert!(stored.len() > plaintext.len());
    assert!(
        !stored.windows(plaintext.len()).any(|w| w == plaintext),
        "the object store holds the plaintext"
    );
    // Staff see it through the portal, and another instance (its own process state, same
    // store) reads the same object.
    let r =
        gw.w.owner
            .http
            .get(gw.w.server.url(&format!("/t/clinic-a/messages/{id}/media")))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), plaintext);
    let other = gw.w.t.second_instance().await;
    assert_eq!(other.media.get(&key).await.unwrap().unwrap(), stored);

    // The turn handled (staff take over): media after triage is deleted from the store.
    let conv = gw.only_conversation().await;
    let r =
        gw.w.owner
            .submit(
                "/t/clinic-a/review",
                &format!("/t/clinic-a/conversations/{conv}/take-over"),
                &[],
            )
            .await;
    assert_eq!(r.status, 303);
    assert_eq!(raw_object(&bucket, &key).await.0, 404, "object deleted");
    assert!(other.media.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_terminated_tenant_prefix_is_emptied_and_bad_settings_are_refused() {
    let bucket = make_bucket().await;
    let mut config = crate::config::Config::for_tests("postgres://unused/db", None, "x:");
    config.object_store_url = Some(format!("s3://{bucket}/sigmaai"));
    config.s3_endpoint = Some(s3_url());
    config.aws_access_key_id = Some(secrecy::SecretString::from("testing"));
    config.aws_secret_access_key = Some(secrecy::SecretString::from("testing"));
    let store = crate::storage::Store::from_config(&config).unwrap();
    use crate::storage::ObjectStore;
    for k in [
        "tenants/a/media/1",
        "tenants/a/media/2",
        "tenants/b/media/1",
    ] {
        store.put(k, b"sealed").await.unwrap();
    }
    store.delete_prefix("tenants/a/").await.unwrap();
    assert_eq!(raw_object(&bucket, "tenants/a/media/1").await.0, 404);
    assert_eq!(raw_object(&bucket, "tenants/a/media/2").await.0, 404);
    assert_eq!(raw_object(&bucket, "tenants/b/media/1").await.0, 200);
    store.delete("tenants/a/media/1").await.unwrap();
    assert!(store.put("../x", b"x").await.is_err());

    let vars = |url: &str| {
        std::collections::HashMap::from([
            ("DATABASE_URL".to_owned(), "postgres://u@h/db".to_owned()),
            ("SIGMAAI_OBJECT_STORE_URL".to_owned(), url.to_owned()),
        ])
    };
    for bad in [
        "ftp://x/y",
        "s3:///no-bucket",
        "file://remote-host/x",
        "not a url",
    ] {
        assert!(
            crate::config::Config::from_vars(&vars(bad)).is_err(),
            "{bad} accepted"
        );
    }
    assert!(crate::config::Config::from_vars(&vars("s3://bucket/prefix")).is_ok());
}
