//! The layout of a data directory, the one place that knows it:
//! `DATA/events/` (tantivy, one index per agency and day) and `DATA/alerts.ndjson`.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// A data directory.
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens `root`, creating it if missing (import, server).
    pub fn create(root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing `root` (search): a missing directory is an error, not an empty result.
    pub fn existing(root: &Path) -> anyhow::Result<Self> {
        if !root.join("events").is_dir() {
            anyhow::bail!(
                "{} is not a citysoc data directory (no events/ inside): import into it first",
                root.display()
            );
        }
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The tantivy store.
    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }

    /// The alert log.
    pub fn alerts(&self) -> PathBuf {
        self.root.join("alerts.ndjson")
    }
}
