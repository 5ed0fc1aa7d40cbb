//! Access logs. HELPER-OWNED: to be written.
use crate::event::Event;
use crate::format::FormatError;
use crate::parse::ParseContext;

/// True when the text looks like an access log line.
pub fn looks_like(_text: &str) -> bool { false }

/// Parses an access log line.
pub fn parse(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("access parser not written yet", 0))
}
