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
    /// A collector–server protocol violation (bad signature, body, batch line).
    #[error("{0}")]
    Protocol(String),
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
