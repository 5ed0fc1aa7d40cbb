//! The server's registry: one SQLite file (`DATA/citysoc.db`) with enrollment tokens and
//! collectors (identity, keys, sequence bookkeeping, counters, last heartbeat).
//!
//! One connection behind a mutex: every operation is a few indexed statements, so contention
//! is not worth a pool, and the mutex makes each operation's read-then-write atomic within the
//! server. Statements that change state run in `IMMEDIATE` transactions so a CLI command
//! (`citysoc server token create`) touching the same file from another process is safe too.
//! The schema is migrated forward by the `user_version` pragma ([`migrations`]).

mod collectors;
mod migrations;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use crate::ConsoleError;

pub(crate) use collectors::CollectorState;
pub use collectors::{heartbeat_summary, BatchRecord, CollectorRecord, Gap, KeyUsed};
pub use tokens::{
    validate_agency, CreatedToken, Enrolled, TokenProblem, TokenRecord, MIN_TOKEN_ID_DIGITS,
    TOKEN_ID_DIGITS,
};

/// File name of the registry inside a data directory.
pub const REGISTRY_FILE: &str = "citysoc.db";

/// The registry database.
pub struct Registry {
    path: PathBuf,
    connection: Mutex<Connection>,
    /// Refusals counted since they were last written ([`collectors`]' `count_rejection`).
    pending_rejections: Mutex<collectors::PendingRejections>,
}

impl Registry {
    /// Opens (or creates) the registry at `path`, readable and writable by its owner only
    /// (it holds the collectors' keys), and migrates its schema.
    pub fn open(path: &Path) -> Result<Registry, ConsoleError> {
        create_private_file(path)?;
        let connection = Connection::open(path).map_err(|source| ConsoleError::Registry {
            path: path.to_path_buf(),
            source,
        })?;
        let registry = Registry {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
            pending_rejections: Mutex::new(collectors::PendingRejections::default()),
        };
        {
            let mut connection = registry.lock();
            registry.configure(&connection)?;
            migrations::migrate(&mut connection, path)?;
        }
        Ok(registry)
    }

    /// Opens the registry of a data directory (`DATA/citysoc.db`).
    pub fn open_in(data_dir: &Path) -> Result<Registry, ConsoleError> {
        // Owner only: it holds every agency's events and alerts, and collector keys. An
        // existing directory keeps the mode its admin gave it.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(data_dir)
            .map_err(|source| ConsoleError::Io {
                path: data_dir.to_path_buf(),
                source,
            })?;
        Registry::open(&data_dir.join(REGISTRY_FILE))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self, connection: &Connection) -> Result<(), ConsoleError> {
        // WAL: the CLI can read while the server writes. FULL: a token marked used or a
        // sequence number acknowledged stays so after a power cut.
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(|source| self.error(source))?;
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|source| self.error(source))?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|source| self.error(source))?;
        connection
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|source| self.error(source))?;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-updated (transactions roll
        // back when dropped), so a poisoned lock is still a usable connection.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn error(&self, source: rusqlite::Error) -> ConsoleError {
        ConsoleError::Registry {
            path: self.path.clone(),
            source,
        }
    }
}

/// Creates `path` with mode 0600 if missing, and narrows it to 0600 if it exists wider. SQLite
/// gives its `-wal` and `-shm` files the database file's mode.
fn create_private_file(path: &Path) -> Result<(), ConsoleError> {
    let io_error = |source| ConsoleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(io_error)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io_error)?;
        }
    }
    drop(file);
    Ok(())
}

/// Unix milliseconds of a time (what the registry stores).
fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A time from stored Unix milliseconds.
fn from_millis(value: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(value).unwrap_or_default()
}
