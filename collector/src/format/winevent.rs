//! Windows events as JSON. HELPER-OWNED: to be written.
use crate::event::Event;
use crate::format::FormatError;
use crate::parse::ParseContext;

/// True when the text looks like a Windows event as JSON.
pub fn looks_like(_text: &str) -> bool { false }

/// Parses a Windows event JSON document.
pub fn parse(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("winevent parser not written yet", 0))
}
