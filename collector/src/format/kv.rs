//! key=value. HELPER-OWNED: to be written.
use crate::event::Event;
use crate::format::FormatError;
use crate::parse::ParseContext;

/// True when the text looks like key=value pairs.
pub fn looks_like(_text: &str) -> bool { false }

/// Parses key=value text.
pub fn parse(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("kv parser not written yet", 0))
}

/// Parses pfSense/OPNsense filterlog CSV (the message after the `filterlog:` tag).
pub fn parse_filterlog(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("filterlog parser not written yet", 0))
}
