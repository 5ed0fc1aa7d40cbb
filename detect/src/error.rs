//! The one error type of the detect crate.

use std::path::PathBuf;

/// What can go wrong while loading or running detection content. A rule that fails to load is
/// not an error of the whole load: loaders collect those as [`RuleLoadError`](crate::alert)
/// entries and go on.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A file or directory could not be read.
    #[error("could not read `{path}`: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A data file (mapping, indicator list, sample set) is malformed.
    #[error("`{path}` is not valid: {reason}")]
    InvalidFile {
        /// The path.
        path: PathBuf,
        /// What was wrong, with the position where known.
        reason: String,
    },
    /// YARA rules did not compile.
    #[error("YARA rules in `{path}` did not compile: {reason}")]
    YaraCompile {
        /// The path.
        path: PathBuf,
        /// yara-x's message, with its error code and source position.
        reason: String,
    },
}
