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
}
