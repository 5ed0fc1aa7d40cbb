//! Where a file source stopped: the file's identity (device, inode and a hash of its first
//! bytes, because inodes are reused), the offset of the first byte not yet confirmed by the
//! sink, and the next record number (event ids depend on it). Written atomically: a temporary
//! file, fsync, rename, fsync of the directory, so a crash leaves the old or the new
//! checkpoint, never half of one.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::CollectorError;

/// How many leading bytes identify a file besides its inode.
pub(crate) const HEAD_BYTES: u64 = 1024;

/// One file source's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    /// The path the file was read under when the checkpoint was written (informative: a
    /// rotated file has another name now).
    pub path: PathBuf,
    /// Device of the file.
    pub device: u64,
    /// Inode of the file.
    pub inode: u64,
    /// First byte not yet confirmed.
    pub offset: u64,
    /// Sequence number of the next record.
    pub next_sequence: u64,
    /// How many leading bytes `head_hash` covers (at most [`HEAD_BYTES`], at most `offset`).
    pub head_len: u64,
    /// xxh3 of those bytes, hex.
    pub head_hash: String,
}

/// A file's identity as a checkpoint records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    pub device: u64,
    pub inode: u64,
}

impl FileIdentity {
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        FileIdentity {
            device: metadata.dev(),
            inode: metadata.ino(),
        }
    }
}

impl Checkpoint {
    /// The identity of the file the checkpoint is about.
    pub fn identity(&self) -> FileIdentity {
        FileIdentity {
            device: self.device,
            inode: self.inode,
        }
    }

    /// True when `file` (already known to have the checkpoint's device and inode) starts with
    /// the bytes the checkpoint saw: the same file, not a new one that got the freed inode.
    pub fn head_matches(&self, file: &mut File) -> bool {
        if self.head_len == 0 {
            return true;
        }
        match read_head(file, self.head_len) {
            Ok(head) => head.len() as u64 == self.head_len && head_hash(&head) == self.head_hash,
            Err(_) => false,
        }
    }
}

/// Reads up to `length` bytes from the start of `file`, without moving its cursor.
pub(crate) fn read_head(file: &mut File, length: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; usize::try_from(length).unwrap_or(0)];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    head.truncate(filled);
    Ok(head)
}

/// Hex xxh3 of a file's first bytes.
pub(crate) fn head_hash(bytes: &[u8]) -> String {
    format!("{:016x}", xxh3_64(bytes))
}

/// Reads a checkpoint; `Ok(None)` when there is none yet.
pub(crate) fn load(path: &Path) -> Result<Option<Checkpoint>, CollectorError> {
    let damaged = |error: Box<dyn std::error::Error + Send + Sync>| CollectorError::Io {
        what: format!(
            "checkpoint {} is damaged (remove it to read the file again from its start)",
            path.display()
        ),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let checkpoint: Checkpoint =
                serde_json::from_slice(&bytes).map_err(|error| damaged(error.into()))?;
            // `head_len` sizes the read of the file's head: a number this collector never
            // writes (a damaged or hand-edited file) must not become a huge allocation.
            if checkpoint.head_len > HEAD_BYTES.min(checkpoint.offset) {
                return Err(damaged(
                    format!(
                        "head_len {} is over {HEAD_BYTES} or over the offset {}",
                        checkpoint.head_len, checkpoint.offset
                    )
                    .into(),
                ));
            }
            Ok(Some(checkpoint))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(CollectorError::io(
            format!("cannot read checkpoint {}", path.display()),
            error,
        )),
    }
}

/// Writes a checkpoint atomically.
pub(crate) fn store(path: &Path, checkpoint: &Checkpoint) -> Result<(), CollectorError> {
    let temporary = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = File::create(&temporary)?;
        let bytes = serde_json::to_vec_pretty(checkpoint).map_err(std::io::Error::other)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    };
    write().map_err(|error| {
        CollectorError::io(format!("cannot write checkpoint {}", path.display()), error)
    })?;
    crate::sink::sync_directory(path);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_a_missing_one_is_none() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("checkpoints/auth.json");
        assert_eq!(load(&path).unwrap(), None);
        let checkpoint = Checkpoint {
            path: "/var/log/auth.log".into(),
            device: 1,
            inode: 2,
            offset: 3,
            next_sequence: 4,
            head_len: 3,
            head_hash: head_hash(b"abc"),
        };
        store(&path, &checkpoint).unwrap();
        assert_eq!(load(&path).unwrap(), Some(checkpoint.clone()));
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, b"{garbage").unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("damaged"), "{error}");
        // A head length this collector never writes would size the head read: refused.
        for (offset, head_len) in [(u64::MAX, u64::MAX), (u64::MAX, HEAD_BYTES + 1), (3, 4)] {
            let bad = Checkpoint {
                offset,
                head_len,
                ..checkpoint.clone()
            };
            std::fs::write(&path, serde_json::to_vec(&bad).unwrap()).unwrap();
            let error = load(&path).unwrap_err().to_string();
            assert!(error.contains("damaged"), "{error}");
        }
    }
}
