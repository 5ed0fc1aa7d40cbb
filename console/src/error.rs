//! The one error type of the console crate.

use std::path::PathBuf;

/// What can go wrong running the server or managing its registry. Requests that are refused
/// (bad signature, replay, …) are not errors of the server: they are answered with a
/// [`Rejection`](citysoc_collector::protocol::Rejection) body and counted.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The registry database failed.
    #[error("registry {path}: {source}")]
    Registry {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The registry database was written by a newer citysoc.
    #[error("registry {path} has schema version {found}, this citysoc knows up to {known}: upgrade citysoc")]
    RegistryTooNew {
        /// The database file.
        path: PathBuf,
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A value in the registry that this build cannot read.
    #[error("registry {path}: collector `{collector}`: {message}")]
    CorruptRecord {
        /// The database file.
        path: PathBuf,
        /// The collector id.
        collector: String,
        /// What is wrong.
        message: String,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The event store failed.
    #[error("event store: {0}")]
    Store(#[from] citysoc_index::IndexError),
    /// The certificate or key for TLS could not be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// A value given by the operator is not acceptable (agency name, time to live, …).
    #[error("{0}")]
    Invalid(String),
    /// No collector with this id.
    #[error("no collector with id `{0}`")]
    UnknownCollector(String),
    /// The protocol helpers failed (random generator, encoding).
    #[error("{0}")]
    Protocol(#[from] citysoc_collector::CollectorError),
    /// A server task (a request worker, the store's closing) stopped before finishing.
    #[error("server task failed: {0}")]
    Task(String),
    /// Accepting connections failed.
    #[error("listener: {0}")]
    Listen(std::io::Error),
}
