//! auditd. HELPER-OWNED: to be written.
use crate::event::Event;
use crate::format::FormatError;
use crate::parse::ParseContext;

/// True when the text looks like an audit record.
pub fn looks_like(_text: &str) -> bool { false }

/// Parses one audit record on its own.
pub fn parse_single(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("auditd parser not written yet", 0))
}

/// Groups records by serial number.
#[derive(Debug, Default)]
pub struct AuditGrouper {}

impl AuditGrouper {
    /// Offers a record.
    pub fn push(&mut self, _record: &[u8], _text: &str, _sequence: u64, _context: &ParseContext, _out: &mut Vec<Event>) {}
    /// Closes what is open.
    pub fn flush(&mut self, _context: &ParseContext, _out: &mut Vec<Event>) {}
}
