//! Object storage for media, through the `object_store` crate: a local directory by default
//! (`file://…`, under the data directory), or any S3-compatible store (`s3://bucket/prefix`
//! with `SIGMAAI_S3_ENDPOINT`, `SIGMAAI_S3_REGION` and the standard `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`; path-style requests, so self-hosted stores work). Objects are
//! stored sealed (the caller seals under the contact's key before `put`), so the storage
//! provider never holds readable media; crypto-deletion and retention call `delete`.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::{
    ObjectStore as _, PutPayload, aws::AmazonS3Builder, local::LocalFileSystem, path::Path as Key,
    prefix::PrefixStore,
};
use secrecy::ExposeSecret;
use url::Url;

use crate::config::Config;

#[async_trait]
pub(crate) trait ObjectStore: Send + Sync {
    async fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()>;
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Deleting a missing object is not an error (deletion is idempotent).
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Deletes every object under a prefix ending in `/` (a terminated tenant's media).
    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<()>;
}

/// Our keys are relative paths of `[A-Za-z0-9/_.-]`, never `..` nor absolute.
fn key(raw: &str) -> anyhow::Result<Key> {
    let ok = !raw.is_empty()
        && !raw.starts_with('/')
        && !raw.contains("..")
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
    anyhow::ensure!(ok, "invalid object key");
    Key::parse(raw.trim_end_matches('/')).context("invalid object key")
}

/// Any `object_store` backend behind our small trait.
pub(crate) struct Store {
    inner: Arc<dyn object_store::ObjectStore>,
    /// What it is, for logs (`file` or `s3`); never the credentials.
    pub(crate) kind: &'static str,
}

impl Store {
    /// A directory on this machine (created if missing).
    pub(crate) fn local(root: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("could not create the media directory {}", root.display()))?;
        let fs = LocalFileSystem::new_with_prefix(root)?.with_automatic_cleanup(true);
        Ok(Store {
            inner: Arc::new(fs),
            kind: "file",
        })
    }

    /// The store the configuration names (`SIGMAAI_OBJECT_STORE_URL`, else the data dir).
    pub(crate) fn from_config(config: &Config) -> anyhow::Result<Store> {
        let Some(raw) = config.object_store_url.as_deref() else {
            return Store::local(&media_root(&config.data_dir));
        };
        let url = Url::parse(raw).context("SIGMAAI_OBJECT_STORE_URL is not a URL")?;
        match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| anyhow::anyhow!("SIGMAAI_OBJECT_STORE_URL: not a file path"))?;
                Store::local(&path)
            }
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .context("SIGMAAI_OBJECT_STORE_URL: s3://BUCKET/prefix names no bucket")?;
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(config.s3_region.as_deref().unwrap_or("us-east-1"))
                    // Path-style (`endpoint/bucket/key`): what self-hosted stores expect.
                    .with_virtual_hosted_style_request(false);
                if let Some(e) = &config.s3_endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if let (Some(id), Some(secret)) =
                    (&config.aws_access_key_id, &config.aws_secret_access_key)
                {
                    b = b
                        .with_access_key_id(id.expose_secret())
                        .with_secret_access_key(secret.expose_secret());
                }
                let s3 = b.build().context("SIGMAAI_OBJECT_STORE_URL: S3 settings")?;
                let prefix = url.path().trim_matches('/').to_owned();
                let inner: Arc<dyn object_store::ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                };
                Ok(Store { inner, kind: "s3" })
            }
            other => anyhow::bail!(
                "SIGMAAI_OBJECT_STORE_URL: unsupported scheme {other:?} (file:// or s3://)"
            ),
        }
    }
}

fn not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

#[async_trait]
impl ObjectStore for Store {
    async fn put(&self, k: &str, bytes: &[u8]) -> anyhow::Result<()> {
        // One request: a crash never leaves half an object (the local store writes a
        // temporary file and renames it).
        self.inner
            .put(&key(k)?, PutPayload::from(bytes.to_vec()))
            .await
            .context("storing an object")?;
        Ok(())
    }

    async fn get(&self, k: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.inner.get(&key(k)?).await {
            Ok(r) => Ok(Some(r.bytes().await?.to_vec())),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context("reading an object")),
        }
    }

    async fn delete(&self, k: &str) -> anyhow::Result<()> {
        match self.inner.delete(&key(k)?).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context("deleting an object")),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<()> {
        anyhow::ensure!(prefix.ends_with('/'), "a prefix ends with /");
        let p = key(prefix)?;
        let locations = self.inner.list(Some(&p)).map_ok(|m| m.location).boxed();
        let mut deleted = self.inner.delete_stream(locations);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(anyhow::Error::new(e).context("deleting a prefix")),
            }
        }
        Ok(())
    }
}

/// A store whose settings failed: every call fails with the reason.
pub(crate) struct Unavailable(pub String);

#[async_trait]
impl ObjectStore for Unavailable {
    async fn put(&self, _: &str, _: &[u8]) -> anyhow::Result<()> {
        anyhow::bail!("media store unavailable: {}", self.0)
    }
    async fn get(&self, _: &str) -> anyhow::Result<Option<Vec<u8>>> {
        anyhow::bail!("media store unavailable: {}", self.0)
    }
    async fn delete(&self, _: &str) -> anyhow::Result<()> {
        anyhow::bail!("media store unavailable: {}", self.0)
    }
    async fn delete_prefix(&self, _: &str) -> anyhow::Result<()> {
        anyhow::bail!("media store unavailable: {}", self.0)
    }
}

pub(crate) fn media_root(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("media")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_and_reject_traversal() {
        let dir = std::env::temp_dir().join(format!("sigmaai-store-{}", uuid::Uuid::new_v4()));
        let s = Store::local(&dir).unwrap();
        s.put("tenants/a/media/x", b"sealed").await.unwrap();
        s.put("tenants/a/media/y", b"sealed").await.unwrap();
        s.put("tenants/b/media/z", b"sealed").await.unwrap();
        assert_eq!(
            s.get("tenants/a/media/x").await.unwrap().unwrap(),
            b"sealed"
        );
        s.delete("tenants/a/media/x").await.unwrap();
        s.delete("tenants/a/media/x").await.unwrap();
        assert!(s.get("tenants/a/media/x").await.unwrap().is_none());
        s.delete_prefix("tenants/a/").await.unwrap();
        assert!(s.get("tenants/a/media/y").await.unwrap().is_none());
        assert!(s.get("tenants/b/media/z").await.unwrap().is_some());
        assert!(s.put("../escape", b"x").await.is_err());
        assert!(s.put("/abs", b"x").await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
