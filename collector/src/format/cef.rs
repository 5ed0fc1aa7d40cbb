//! CEF (ArcSight Common Event Format). HELPER-OWNED: to be written.
use crate::event::Event;
use crate::format::FormatError;
use crate::parse::ParseContext;

/// Parses a bare CEF record (text starts with `CEF:`).
pub fn parse(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("cef parser not written yet", 0))
}

/// Parses CEF with or without a syslog header before it.
pub fn parse_with_optional_syslog(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    parse(text, context, event)
}
