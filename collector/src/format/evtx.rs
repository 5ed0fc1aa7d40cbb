//! EVTX files (the binary Windows event log format), read with the `evtx` crate from a buffer
//! in memory.
//!
//! Each record is rendered to JSON by the crate (`{"Event": {"System": …, "EventData": …}}`)
//! and read by [`winevent::fill_from_value`], so an event from an EVTX file looks exactly like
//! the same event sent as JSON by an agent.
//!
//! - `raw` of an EVTX event is the record's JSON rendering (compact), not its bytes: binary XML
//!   records depend on their chunk's string and template tables and cannot be cut out alone.
//! - `source.sequence` is the record's EventRecordID.
//! - A chunk or record the crate cannot read becomes one `format: unknown` event with the
//!   crate's error text (`parse_error.format` = `evtx`), counted in [`EvtxSummary::errors`];
//!   its `raw` is that error text (there are no record bytes to keep) and it has no sequence.
//!   Reading goes on with the next record or chunk.

use std::panic::{catch_unwind, AssertUnwindSafe};

use evtx::{EvtxParser, ParserSettings};

use crate::error::CollectorError;
use crate::event::Event;
use crate::format::{winevent, FormatError};
use crate::parse::{mark_unknown, new_event, ParseContext};

/// The 8-byte magic at the start of an EVTX file.
pub const EVTX_MAGIC: &[u8; 8] = b"ElfFile\0";

/// What reading an EVTX file produced.
#[derive(Debug, Default, Clone)]
pub struct EvtxSummary {
    /// Records turned into events.
    pub records: u64,
    /// Records or chunks that could not be read (each also became an unknown event).
    pub errors: u64,
}

/// Decodes a whole EVTX file into events, appended to `out` in record order. Only a file
/// whose header cannot be read at all is an error; damaged chunks and records become unknown
/// events (see the module docs).
pub fn decode_evtx(
    bytes: Vec<u8>,
    context: &ParseContext,
    out: &mut Vec<Event>,
) -> Result<EvtxSummary, CollectorError> {
    let parser =
        EvtxParser::from_buffer(bytes).map_err(|error| CollectorError::EvtxUnreadable {
            reason: error_chain(&error),
        })?;
    // Compact JSON: it becomes `raw`, and is parsed again right away.
    let mut parser = parser.with_configuration(ParserSettings::new().indent(false));
    let mut summary = EvtxSummary::default();
    let mut items: u64 = 0;
    // The crate is careful with damaged input, but a panic deep in a third-party binary
    // parser must not take the collector down with it: what was read is kept, and the rest
    // of the file is reported as one unreadable part.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        for record in parser.records_json() {
            items += 1;
            match record {
                Ok(record) => {
                    out.push(record_event(&record.data, record.event_record_id, context));
                    summary.records += 1;
                }
                Err(error) => {
                    out.push(error_event(&error_chain(&error), items, context));
                    summary.errors += 1;
                }
            }
        }
    }));
    if outcome.is_err() {
        out.push(error_event(
            "the evtx parser failed on damaged data; the rest of the file was not read",
            items + 1,
            context,
        ));
        summary.errors += 1;
    }
    Ok(summary)
}

/// One record's JSON rendering → an event (winevent, or unknown if it does not read as one).
fn record_event(json: &str, record_id: u64, context: &ParseContext) -> Event {
    let mut event = new_event(json.as_bytes(), context, record_id);
    let result = serde_json::from_str(json)
        .map_err(|error| crate::format::json::serde_error(json.as_bytes(), &error))
        .and_then(crate::format::json::within_depth)
        .and_then(|document| winevent::fill_from_value(document, context, &mut event));
    if let Err(error) = result {
        mark_unknown(&mut event, "evtx", error);
    }
    event
}

/// An unreadable chunk or record. `index` (its position among what the crate yielded) only
/// makes the event id unique; the event carries no sequence.
fn error_event(message: &str, index: u64, context: &ParseContext) -> Event {
    let mut event = new_event(message.as_bytes(), context, index);
    event.source.sequence = None;
    mark_unknown(&mut event, "evtx", FormatError::new(message.to_owned(), 0));
    event
}

/// The error and its causes, joined with `: ` (the crate's top-level messages alone, such as
/// "Failed to parse chunk number 3", do not say what was wrong).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose rendering nests deeper than a stored event can be read back at becomes
    /// an `unknown` event with its text kept, like any JSON document that deep.
    #[test]
    fn a_record_nested_past_the_fields_limit_is_kept_unknown() {
        let context = ParseContext::new("test");
        let depth = crate::fields::MAX_DEPTH + 1;
        let json = format!(
            "{{\"Event\":{{\"System\":{{\"EventID\":4625}},\"EventData\":{{\"Deep\":{}1{}}}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let event = record_event(&json, 1, &context);
        assert_eq!(event.format, crate::event::Format::Unknown);
        let message = event
            .parse_error
            .map(|error| error.message)
            .unwrap_or_default();
        assert!(message.contains("nested deeper than"), "{message}");
        assert_eq!(event.raw.as_deref(), Some(json.as_str()));
    }

    #[test]
    fn unreadable_header_is_an_error() {
        let context = ParseContext::new("test");
        let mut out = Vec::new();
        for bytes in [
            Vec::new(),
            b"ElfFile\0".to_vec(),
            b"not an evtx file at all".to_vec(),
        ] {
            let result = decode_evtx(bytes, &context, &mut out);
            assert!(
                matches!(result, Err(CollectorError::EvtxUnreadable { .. })),
                "{result:?}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn header_with_garbage_chunks_does_not_panic() {
        let context = ParseContext::new("test");
        let mut bytes = vec![0u8; 4096 + 65536];
        bytes[..8].copy_from_slice(EVTX_MAGIC);
        // Header block size 4096 (offset 40), major version 3 (offset 38), minor 1 (36).
        bytes[32..36].copy_from_slice(&128u32.to_le_bytes());
        bytes[36..38].copy_from_slice(&1u16.to_le_bytes());
        bytes[38..40].copy_from_slice(&3u16.to_le_bytes());
        bytes[40..42].copy_from_slice(&4096u16.to_le_bytes());
        bytes[42..44].copy_from_slice(&1u16.to_le_bytes());
        for (index, byte) in bytes.iter_mut().enumerate().skip(4096) {
            *byte = (index * 31 % 251) as u8;
        }
        let mut out = Vec::new();
        match decode_evtx(bytes, &context, &mut out) {
            Ok(summary) => assert_eq!(
                summary.errors as usize + summary.records as usize,
                out.len()
            ),
            Err(CollectorError::EvtxUnreadable { .. }) => {}
            Err(other) => panic!("{other}"),
        }
    }
}
