//! Format parsers: pure nom functions from one record's text to the fields of an [`Event`].
//!
//! Each module parses one format and fills the event it is given (timestamp, core fields,
//! `fields`, logsource, `format`), or returns a [`FormatError`] saying what was wrong and at
//! which byte. None of them does I/O, allocates beyond the event, or panics on any input.
//!
//! Syslog is an envelope as much as a format: after the RFC 3164/5424 header, [`embedded`]
//! looks at the message for CEF, LEEF, key=value and filterlog payloads and parses them too.

use std::borrow::Cow;

pub mod access_log;
pub mod auditd;
pub mod cef;
pub mod embedded;
pub mod evtx;
pub mod json;
pub mod kv;
mod kv_known;
mod kv_names;
mod kv_store;
pub mod leef;
pub mod rfc3164;
pub mod rfc5424;
pub mod sshd;
pub mod syslog_common;
pub mod winevent;

/// Why a format parser rejected a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// What was expected or wrong, e.g. "expecting a version value in the range 1-999".
    pub message: Cow<'static, str>,
    /// Byte offset in the text given to the parser.
    pub offset: usize,
}

impl FormatError {
    /// An error at `offset`.
    pub fn new(message: impl Into<Cow<'static, str>>, offset: usize) -> Self {
        FormatError {
            message: message.into(),
            offset,
        }
    }

    /// The same error moved `by` bytes further (for a payload parsed inside an envelope).
    pub fn shifted(self, by: usize) -> Self {
        FormatError {
            offset: self.offset + by,
            ..self
        }
    }
}

/// Byte offset of `rest` inside `whole`, where `rest` is a suffix of `whole` (as nom leaves it).
pub(crate) fn offset_in(whole: &str, rest: &str) -> usize {
    whole.len().saturating_sub(rest.len())
}
