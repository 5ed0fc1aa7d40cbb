//! JSON. HELPER-OWNED: to be written.
use crate::event::Event;
use crate::format::FormatError;
use crate::parse::{InputFormat, ParseContext};

/// Parses one JSON document.
pub fn parse(_text: &str, _context: &ParseContext, _event: &mut Event) -> Result<(), FormatError> {
    Err(FormatError::new("json parser not written yet", 0))
}

/// A JSON document spread over several records.
#[derive(Debug, Default)]
pub struct Continuation {}

/// What [`Continuation::push`] did with a record.
pub enum Pushed {
    /// The record belongs to JSON; these events are complete.
    Taken(Vec<Event>),
    /// The record is not JSON; parse it normally.
    NotJson,
}

impl Continuation {
    /// True while a document is open.
    pub fn is_open(&self) -> bool { false }
    /// Offers a record.
    pub fn push(&mut self, _record: &[u8], _sequence: u64, _format: InputFormat, _context: &ParseContext) -> Pushed { Pushed::NotJson }
    /// Closes what is open.
    pub fn finish(&mut self, _context: &ParseContext) -> Vec<Event> { Vec::new() }
}
