//! Object storage for media. A local directory by default; an S3-compatible store can
//! implement the same trait. Objects are stored sealed (the caller seals under the contact's
//! key), so the storage provider never holds readable media.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()>;
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Deleting a missing object is not an error (deletion is idempotent).
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Deletes every object under a prefix ending in `/` (a terminated tenant's media).
    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<()>;
}

/// Files under a root directory; keys are relative paths of `[a-z0-9/_-]`.
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> FsStore {
        FsStore { root: root.into() }
    }

    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && !key.contains("..")
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-.".contains(&b));
        anyhow::ensure!(ok, "invalid object key");
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Write to a temporary name and rename, so a crash never leaves half an object.
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, bytes).await?;
        let f = tokio::fs::File::open(&tmp).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<()> {
        anyhow::ensure!(prefix.ends_with('/'), "a prefix ends with /");
        match tokio::fs::remove_dir_all(self.path(prefix.trim_end_matches('/'))?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

pub fn media_root(data_dir: &Path) -> PathBuf {
    data_dir.join("media")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_and_reject_traversal() {
        let dir = std::env::temp_dir().join(format!("sigmaai-store-{}", uuid::Uuid::new_v4()));
        let s = FsStore::new(&dir);
        s.put("tenants/a/media/x", b"sealed").await.unwrap();
        assert_eq!(
            s.get("tenants/a/media/x").await.unwrap().unwrap(),
            b"sealed"
        );
        s.delete("tenants/a/media/x").await.unwrap();
        s.delete("tenants/a/media/x").await.unwrap();
        assert!(s.get("tenants/a/media/x").await.unwrap().is_none());
        assert!(s.put("../escape", b"x").await.is_err());
        assert!(s.put("/abs", b"x").await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
