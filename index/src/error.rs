//! The one error type of the `index` crate.

use std::path::PathBuf;

/// What can go wrong storing or searching events.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The query string is malformed or names an unknown field; `position` is the byte offset
    /// in the query where the problem is.
    #[error("query error at position {position}: {message}")]
    Query {
        /// Byte offset into the query string.
        position: usize,
        /// What is wrong, for people.
        message: String,
    },
    /// A request that cannot be answered as asked (time range backwards, bad cursor, …).
    #[error("{0}")]
    InvalidRequest(String),
    /// A file or directory of the data folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// tantivy failed.
    #[error("tantivy index {path}: {source}")]
    Tantivy {
        /// The day index.
        path: PathBuf,
        /// The cause.
        source: tantivy::TantivyError,
    },
    /// A day index written with a schema this version cannot use (another citysoc version
    /// made it).
    #[error("day index {path} has a schema citysoc {version} cannot use (it writes schema version {schema_version}); move the directory away and re-import its events with this version")]
    IncompatibleIndex {
        /// The day index.
        path: PathBuf,
        /// This crate's version.
        version: &'static str,
        /// The schema version this build writes.
        schema_version: u32,
    },
    /// The ClickHouse server failed or is unreachable.
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// The ClickHouse sink did not insert everything it was given (yet): an insert failed
    /// while flushing (the events stay queued and are retried), or the sink is closed.
    #[error("ClickHouse sink: {0}")]
    Sink(String),
    /// Events were added to a day index whose writer was closed before they were committed:
    /// they are not stored and must be sent again.
    #[error("{events} events added to day index {path} were not committed (its writer was closed first); they are not stored")]
    Uncommitted {
        /// The day index.
        path: PathBuf,
        /// How many events were lost.
        events: u64,
    },
    /// A day index writer failed (a commit or a hand-over inside tantivy) while this batch
    /// was being stored; its uncommitted events, perhaps some of this batch's, were dropped
    /// with it. The batch is not stored as a whole and must be sent again.
    #[error("{writers} day index writer(s) failed while this batch was being stored; it is not stored and must be sent again")]
    WriterFailed {
        /// How many writers failed since the batch began.
        writers: u64,
    },
    /// A stored event could not be read back.
    #[error("stored event {id} is corrupt: {message}")]
    CorruptEvent {
        /// The event id, or where it was stored.
        id: String,
        /// What is wrong.
        message: String,
    },
}

impl IndexError {
    /// A query error at `position`.
    pub fn query(position: usize, message: impl Into<String>) -> Self {
        IndexError::Query {
            position,
            message: message.into(),
        }
    }
}
