//! The deletion ledger: an append-only, hash-chained JSON-lines file recording every
//! destroyed key, kept outside the main database and outside the key store, because either
//! may be restored from a backup that predates an erasure. `sigmaai restore-replay` reads it
//! and destroys again whatever a restore brought back.
//!
//! Each line holds `prev` (the previous line's hash) and `hash` = SHA-256 of `prev`, a
//! newline and the line's JSON without `hash`; removing or editing a line breaks the chain.
//! An append takes an exclusive `flock` (several instances may share the file), reads the
//! last line, writes one line and `fsync`s before the destroy is reported done.

use std::{
    fs::{File, OpenOptions},
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::CryptoError;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DestroyedKind {
    /// One contact's data key.
    Contact,
    /// A tenant key and every data key under it.
    Tenant,
}

/// One destroyed key (or tenant), as recorded. Ids only: never names, phones or text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LedgerEntry {
    pub(crate) seq: u64,
    /// RFC 3339.
    pub(crate) at: String,
    pub(crate) kind: DestroyedKind,
    pub(crate) tenant_id: Uuid,
    pub(crate) contact_id: Option<Uuid>,
    pub(crate) key_ids: Vec<Uuid>,
    pub(crate) reason: String,
    pub(crate) prev: String,
    #[serde(default)]
    pub(crate) hash: String,
}

impl LedgerEntry {
    fn compute_hash(&self) -> Result<String, CryptoError> {
        let unhashed = LedgerEntry {
            hash: String::new(),
            ..self.clone()
        };
        let json = serde_json::to_vec(&unhashed).map_err(|e| CryptoError::Ledger(e.to_string()))?;
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        h.update(&json);
        Ok(hex::encode(h.finalize()))
    }
}

/// What a destroy asks the ledger to record.
#[derive(Clone, Debug)]
pub(crate) struct NewEntry {
    pub(crate) kind: DestroyedKind,
    pub(crate) tenant_id: Uuid,
    pub(crate) contact_id: Option<Uuid>,
    pub(crate) key_ids: Vec<Uuid>,
    pub(crate) reason: String,
    pub(crate) at: time::OffsetDateTime,
}

/// The ledger's entries and any problems found in its chain.
#[derive(Debug, Default)]
pub(crate) struct LedgerContents {
    pub(crate) entries: Vec<LedgerEntry>,
    /// Broken links, bad hashes, unparsable lines (by line number). A torn last line (a crash
    /// before its `fsync`, so never reported done) is listed too.
    pub(crate) problems: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Ledger {
    path: PathBuf,
}

impl Ledger {
    pub(crate) fn new(path: impl Into<PathBuf>) -> Ledger {
        Ledger { path: path.into() }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry durably (written and fsynced when this returns).
    pub(crate) async fn append(&self, entry: NewEntry) -> Result<LedgerEntry, CryptoError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || append_blocking(&path, entry))
            .await
            .map_err(|e| CryptoError::Ledger(format!("append task failed: {e}")))?
    }

    /// Reads and verifies the whole ledger. A missing file is an empty ledger.
    pub(crate) async fn read(&self) -> Result<LedgerContents, CryptoError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_blocking(&path))
            .await
            .map_err(|e| CryptoError::Ledger(format!("read task failed: {e}")))?
    }
}

fn io_err(path: &Path, what: &str) -> impl FnOnce(std::io::Error) -> CryptoError {
    let msg = format!("{what} {}", path.display());
    move |e| CryptoError::Ledger(format!("{msg}: {e}"))
}

fn append_blocking(path: &Path, new: NewEntry) -> Result<LedgerEntry, CryptoError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io_err(dir, "could not create"))?;
    }
    let created = !path.exists();
    let mut opts = OpenOptions::new();
    opts.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(path).map_err(io_err(path, "could not open"))?;
    let _lock = FileLock::exclusive(&file).map_err(io_err(path, "could not lock"))?;

    let (last, torn) = last_entry(&mut file).map_err(io_err(path, "could not read"))?;
    let (seq, prev) = match last {
        Some(e) => (e.seq + 1, e.hash),
        None => (1, GENESIS.to_owned()),
    };
    let at = new
        .at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| CryptoError::Ledger(e.to_string()))?;
    let mut entry = LedgerEntry {
        seq,
        at,
        kind: new.kind,
        tenant_id: new.tenant_id,
        contact_id: new.contact_id,
        key_ids: new.key_ids,
        reason: new.reason,
        prev,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash()?;
    let mut line = Vec::new();
    if torn {
        // Finish the torn line so ours starts on its own.
        line.push(b'\n');
    }
    serde_json::to_writer(&mut line, &entry).map_err(|e| CryptoError::Ledger(e.to_string()))?;
    line.push(b'\n');
    file.write_all(&line)
        .map_err(io_err(path, "could not write"))?;
    file.sync_all().map_err(io_err(path, "could not fsync"))?;
    if created {
        // Make the new directory entry durable too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir, "could not fsync"))?;
        }
    }
    Ok(entry)
}

/// The last complete, parsable entry, and whether the file ends in a torn (unterminated) line.
fn last_entry(file: &mut File) -> std::io::Result<(Option<LedgerEntry>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        Read::by_ref(file).take(len - start).read_to_end(&mut buf)?;
        let torn = !buf.is_empty() && !buf.ends_with(b"\n");
        // Whole lines only: the first one in the window may be cut unless we read from 0.
        let mut lines: Vec<&[u8]> = buf.split(|b| *b == b'\n').collect();
        if torn {
            lines.pop();
        }
        if start > 0 && !lines.is_empty() {
            lines.remove(0);
        }
        for line in lines.iter().rev() {
            if let Ok(e) = serde_json::from_slice::<LedgerEntry>(line) {
                return Ok((Some(e), torn));
            }
        }
        if start == 0 {
            return Ok((None, torn));
        }
        window *= 4;
    }
}

fn read_blocking(path: &Path) -> Result<LedgerContents, CryptoError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LedgerContents::default()),
        Err(e) => return Err(io_err(path, "could not read")(e)),
    };
    let mut out = LedgerContents::default();
    let mut prev_hash = GENESIS.to_owned();
    let mut prev_seq = 0;
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let entry: LedgerEntry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => {
                out.problems
                    .push(format!("line {lineno}: not a ledger entry ({e})"));
                continue;
            }
        };
        if entry.compute_hash()? != entry.hash {
            out.problems
                .push(format!("line {lineno}: hash does not match its content"));
        }
        if entry.prev != prev_hash {
            out.problems.push(format!(
                "line {lineno}: does not follow the previous entry (a line was removed or edited)"
            ));
        }
        if entry.seq != prev_seq + 1 {
            out.problems.push(format!(
                "line {lineno}: sequence {} after {prev_seq}",
                entry.seq
            ));
        }
        prev_hash = entry.hash.clone();
        prev_seq = entry.seq;
        out.entries.push(entry);
    }
    Ok(out)
}

/// An exclusive advisory lock on an open file, released on drop.
/// Declared after the file it locks, so it is dropped (unlocked) first.
struct FileLock(std::os::fd::RawFd);

impl FileLock {
    fn exclusive(file: &File) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: flock takes a plain descriptor, open for the lock's lifetime; no memory involved.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock(fd))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: as above. Closing the file would release the lock anyway.
        unsafe {
            libc::flock(self.0, libc::LOCK_UN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_ledger() -> Ledger {
        Ledger::new(std::env::temp_dir().join(format!("sigmaai-ledger-{}/l.jsonl", Uuid::new_v4())))
    }

    fn entry(reason: &str) -> NewEntry {
        NewEntry {
            kind: DestroyedKind::Contact,
            tenant_id: Uuid::new_v4(),
            contact_id: Some(Uuid::new_v4()),
            key_ids: vec![Uuid::new_v4()],
            reason: reason.into(),
            at: time::OffsetDateTime::now_utc(),
        }
    }

    #[tokio::test]
    async fn chain_grows_and_verifies() {
        let l = temp_ledger();
        let a = l.append(entry("one")).await.unwrap();
        let b = l.append(entry("two")).await.unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(b.prev, a.hash);
        let read = l.read().await.unwrap();
        assert_eq!(read.entries, vec![a, b]);
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(l.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn concurrent_appends_keep_one_chain() {
        let l = temp_ledger();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let l = Ledger::new(l.path());
                tokio::spawn(async move { l.append(entry(&format!("r{i}"))).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let read = l.read().await.unwrap();
        assert_eq!(read.entries.len(), 16);
        assert!(read.problems.is_empty(), "{:?}", read.problems);
    }

    #[tokio::test]
    async fn edits_and_removals_are_detected_and_torn_lines_survived() {
        let l = temp_ledger();
        for r in ["a", "b", "c"] {
            l.append(entry(r)).await.unwrap();
        }
        let text = std::fs::read_to_string(l.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Remove the middle line.
        std::fs::write(l.path(), format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        let read = l.read().await.unwrap();
        assert_eq!(read.entries.len(), 2);
        assert!(!read.problems.is_empty());
        // Edit a reason.
        std::fs::write(
            l.path(),
            text.replace("\"reason\":\"b\"", "\"reason\":\"x\""),
        )
        .unwrap();
        assert!(
            l.read()
                .await
                .unwrap()
                .problems
                .iter()
                .any(|p| p.contains("hash"))
        );
        // A torn last line (crash mid-write): the next append still chains to the last good one.
        std::fs::write(l.path(), format!("{text}{{\"seq\":4,\"at")).unwrap();
        let d = l.append(entry("d")).await.unwrap();
        assert_eq!(d.seq, 4);
        let read = l.read().await.unwrap();
        assert_eq!(read.entries.len(), 4);
        assert_eq!(read.problems.len(), 1, "{:?}", read.problems);
    }
}
