//! The one error type of the collector crate.

/// Errors the collector library reports to its callers. Parse failures are not errors: they
/// become `format: unknown` events.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// A time zone name that the tz database does not know.
    #[error("unknown time zone `{name}` (expected an IANA name such as Asia/Ho_Chi_Minh)")]
    UnknownTimeZone {
        /// The name given.
        name: String,
    },
    /// A format name that `--format` does not know.
    #[error("unknown format `{name}` (expected one of: {expected})")]
    UnknownFormat {
        /// The name given.
        name: String,
        /// The accepted names.
        expected: &'static str,
    },
    /// A frame larger than the configured maximum.
    #[error("frame of {length} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Declared or observed length.
        length: usize,
        /// The configured maximum.
        max: usize,
    },
    /// An EVTX file whose header could not be read at all.
    #[error("could not open EVTX data: {reason}")]
    EvtxUnreadable {
        /// What the evtx crate said.
        reason: String,
    },
    /// The collector's key file cannot be read or written.
    #[error("collector key file {path}: {reason}")]
    Identity {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A collector–server protocol violation (bad signature, body, batch line).
    #[error("{0}")]
    Protocol(String),
    /// A compact event record (disk buffer, batch body) that cannot be read back: truncated,
    /// damaged, or written by a newer version.
    #[error("malformed event record: {0}")]
    BadRecord(String),
    /// A file operation of the disk buffer (or the forwarder's `rejected/` files) failed.
    #[error("could not {action} `{path}`: {source}")]
    BufferIo {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A buffer file that cannot be trusted and cannot be repaired without losing track of
    /// what was delivered.
    #[error("disk buffer file `{path}` is damaged: {reason}")]
    BufferCorrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process has the buffer directory open.
    #[error("disk buffer `{path}` is in use by another process (only one collector per buffer directory)")]
    BufferLocked {
        /// The directory.
        path: std::path::PathBuf,
    },
    /// The buffer stayed full for the whole wait of a `block` append; nothing was written.
    #[error("disk buffer is full: {bytes} of {max_bytes} bytes hold unacknowledged records and {needed} more are needed")]
    BufferFull {
        /// Bytes of unacknowledged records.
        bytes: u64,
        /// Bytes the refused append needed.
        needed: u64,
        /// The configured limit.
        max_bytes: u64,
    },
    /// An append that could never fit in the buffer, however empty.
    #[error("an append of {bytes} bytes can never fit: {reason}")]
    RecordTooLarge {
        /// Bytes the append needed on disk.
        bytes: u64,
        /// Which limit it breaks.
        reason: String,
    },
    /// An acknowledgement of records that were never appended.
    #[error("cannot acknowledge up to offset {upto}: the newest record has offset {newest:?}")]
    InvalidAck {
        /// The offset given.
        upto: u64,
        /// The newest offset appended, if any.
        newest: Option<u64>,
    },
    /// A buffer setting that cannot work.
    #[error("invalid disk buffer configuration: {0}")]
    InvalidBufferConfig(String),
    /// A forwarder setting that cannot work (server URL, key, CA file, sizes).
    #[error("invalid forwarder configuration: {0}")]
    InvalidForwarderConfig(String),
    /// An I/O operation on a named thing (a file, a socket, an address) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the file or address.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The collector configuration has problems; every one found is listed.
    #[error("{}", format_config_problems(.file, .problems))]
    Config {
        /// The configuration file (or `command line` for the quick start).
        file: String,
        /// Every problem found, each with the key it is about.
        problems: Vec<crate::config::ConfigProblem>,
    },
    /// A TLS certificate, key or CA file that cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// A sink (local archive, disk buffer) refused a write.
    #[error("sink: {0}")]
    Sink(String),
}

impl CollectorError {
    /// An [`CollectorError::Io`] saying what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        CollectorError::Io {
            what: what.into(),
            source,
        }
    }
}

fn format_config_problems(file: &str, problems: &[crate::config::ConfigProblem]) -> String {
    let mut text = format!(
        "{file}: {} problem{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(&problem.to_string());
    }
    text
}
