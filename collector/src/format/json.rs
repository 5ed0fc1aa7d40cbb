//! JSON documents: NDJSON (one per line), several documents one after another, a top-level
//! array of documents, and documents pretty-printed over several lines.
//!
//! A document's top-level keys go into `fields` as written (nested objects stay nested, and
//! [`Event::field`] walks them with dotted names). A small table fills the ECS core fields
//! from the common names (ECS itself, and a few widespread alternatives). Documents shaped
//! like Windows events are handed to [`winevent`].
//!
//! [`Continuation`] is the part of the stream decoder that sees JSON: it splits records into
//! documents, and holds a document that is not complete yet until the records that complete
//! it arrive.

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::event::{Event, Format, ShortText};
use crate::fields::{key_bit, Fields};
use crate::format::{winevent, FormatError};
use crate::parse::{mark_unknown, new_event, new_event_from, part_id, InputFormat, ParseContext};
use crate::timestamp;

/// The longest document held open across records. Past this the buffered bytes are kept as
/// one unknown event: memory stays bounded whatever a sender does.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Up to this size an open document is re-parsed on every record (which finds a broken
/// document at once); beyond it only when its brackets balance, so a huge document costs
/// linear time, not quadratic.
const REPARSE_EVERY_RECORD_BELOW: usize = 64 * 1024;

/// Parses one JSON document holding one object. Windows-shaped documents are read as
/// `winevent`. (A stream with several documents, arrays or multi-line documents goes through
/// [`Continuation`].)
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    let document = read_object(text)?;
    fill_object(document, context, event);
    Ok(())
}

/// Reads a document that must be one JSON object straight into [`Fields`]. Building a
/// `serde_json::Map` first (an `IndexMap` with SipHash) and copying it over took about as long
/// as the rest of the parse (BENCHMARKS.md "Parsing"). Anything else gets an error naming what
/// was found instead.
pub(crate) fn read_object(text: &str) -> Result<Fields, FormatError> {
    if text.trim_start().starts_with('{') {
        let document: Fields =
            serde_json::from_str(text).map_err(|error| serde_error(text.as_bytes(), &error))?;
        if document.depth() > crate::fields::MAX_DEPTH {
            return Err(too_deep());
        }
        return Ok(document);
    }
    let document: Value =
        serde_json::from_str(text).map_err(|error| serde_error(text.as_bytes(), &error))?;
    Err(match document {
        Value::Array(_) => FormatError::new(
            "a top-level JSON array holds several documents; read it as a stream to get one event per element",
            0,
        ),
        other => FormatError::new(
            format!("expecting a JSON object at the top level, found {}", kind_of(&other)),
            0,
        ),
    })
}

/// `document` when the fields it makes nest at most [`crate::fields::MAX_DEPTH`] levels (the
/// document itself is the `fields` level).
pub(crate) fn within_depth(document: Value) -> Result<Value, FormatError> {
    if crate::fields::value_depth(&document) > crate::fields::MAX_DEPTH + 1 {
        return Err(too_deep());
    }
    Ok(document)
}

/// A document whose fields would nest deeper than [`crate::fields::MAX_DEPTH`]: stored, the
/// event could not be read back.
fn too_deep() -> FormatError {
    FormatError::new(
        format!(
            "JSON nested deeper than {} levels (the event could not be read back once stored)",
            crate::fields::MAX_DEPTH + 1
        ),
        0,
    )
}

/// Fills `event` from a JSON object: a Windows event in one of the shapes [`winevent`] knows,
/// or a generic document otherwise.
pub fn fill_object(document: Fields, context: &ParseContext, event: &mut Event) {
    let document = if winevent::is_winevent(&document) {
        match winevent::fill_from_fields(document, context, event) {
            Ok(()) => return,
            // Windows-looking but without a usable EventID: a plain document after all.
            Err((_, document)) => document,
        }
    } else {
        document
    };
    fill_core(&document, context, event);
    event.fields = document;
    event.format = Format::Json;
}

// ---------------------------------------------------------------------------------------------
// Core fields

/// A name `fill_core` reads: a top-level key and, for a dotted name, its parts. Dotted names
/// match a literal top-level key first (`"host.name": …`), then nested objects
/// (`"host": {"name": …}`). The parts are split here, once, instead of on every lookup:
/// splitting ~20 names per document was a quarter of a JSON parse (BENCHMARKS.md "Parsing").
struct Name {
    literal: &'static str,
    /// The literal's `.`-separated parts; empty for a name without a dot.
    path: &'static [&'static str],
    /// The literal's and the path's first part's [`NameFilter`] slots and `fields::key_bit`s,
    /// computed at compile time: the names are looked up in every document, nearly always in
    /// vain, and a miss is decided by the filter alone.
    literal_slots: FilterSlots,
    first_slots: FilterSlots,
    literal_bit: u64,
    first_bit: u64,
}

/// A name without a dot.
const fn key(literal: &'static str) -> Name {
    dotted(literal, &[])
}

/// A dotted name and its parts (a test holds them to `literal.split('.')`).
const fn dotted(literal: &'static str, path: &'static [&'static str]) -> Name {
    let first = match path.first() {
        Some(first) => first,
        None => "",
    };
    Name {
        literal,
        path,
        literal_slots: FilterSlots::of(literal),
        first_slots: FilterSlots::of(first),
        literal_bit: key_bit(literal),
        first_bit: key_bit(first),
    }
}

/// The two slots of [`NameFilter`] a key sets, from its length and its first, second and
/// last bytes (enough to tell the names `fill_core` asks for apart from each other and from
/// a document's usual keys; two keys that share them only cost a real lookup).
#[derive(Clone, Copy)]
struct FilterSlots(u16, u16);

impl FilterSlots {
    const fn of(key: &str) -> Self {
        let bytes = key.as_bytes();
        let last = byte_at(bytes, bytes.len().wrapping_sub(1));
        let mixed =
            (byte_at(bytes, 0) | byte_at(bytes, 1) << 8 | last << 16 | (bytes.len() as u64) << 24)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        FilterSlots(
            (mixed >> (64 - FILTER_SLOT_BITS)) as u16,
            ((mixed >> (64 - 2 * FILTER_SLOT_BITS)) as u16) & (FILTER_SLOTS as u16 - 1),
        )
    }
}

/// The byte at `index`, 0 past the end (a `const fn`: closures cannot be called in one).
const fn byte_at(bytes: &[u8], index: usize) -> u64 {
    if index < bytes.len() {
        bytes[index] as u64
    } else {
        0
    }
}

/// Slots of a [`NameFilter`]: with a document's ~10–40 keys, two slots each, a name it does
/// not hold passes the filter 0.3–4% of the time.
const FILTER_SLOT_BITS: u32 = 10;
const FILTER_SLOTS: usize = 1 << FILTER_SLOT_BITS;

/// Which top-level keys a document may hold, built once from its keys (two slots each) so
/// that the ~80 names `fill_core` tries cost a pair of bit tests each when absent, instead of
/// a lookup in the map (its own 64-bit filter, which a Sysmon event's keys fill a third of, and
/// a scan or a hash probe behind it). Lookups of names that pass it are real lookups.
struct NameFilter {
    bits: [u64; FILTER_SLOTS / 64],
}

impl NameFilter {
    fn of(document: &Fields) -> Self {
        let mut filter = NameFilter {
            bits: [0; FILTER_SLOTS / 64],
        };
        for key in document.keys() {
            let FilterSlots(first, second) = FilterSlots::of(key);
            filter.set(first);
            filter.set(second);
        }
        filter
    }

    fn set(&mut self, slot: u16) {
        if let Some(word) = self.bits.get_mut(usize::from(slot / 64)) {
            *word |= 1 << (slot % 64);
        }
    }

    fn is_set(&self, slot: u16) -> bool {
        self.bits
            .get(usize::from(slot / 64))
            .is_some_and(|word| word & (1 << (slot % 64)) != 0)
    }

    /// False when the document certainly has no key with these slots.
    fn may_hold(&self, FilterSlots(first, second): FilterSlots) -> bool {
        self.is_set(first) && self.is_set(second)
    }
}

/// Names tried, in order, for each core field.
const MESSAGE: &[Name] = &[key("message"), key("msg"), key("Message")];
const HOST_NAME: &[Name] = &[
    dotted("host.name", &["host", "name"]),
    key("hostname"),
    key("host"),
    key("Hostname"),
];
const SOURCE_IP: &[Name] = &[
    dotted("source.ip", &["source", "ip"]),
    key("src_ip"),
    key("srcip"),
    key("client_ip"),
    dotted("id.orig_h", &["id", "orig_h"]),
];
const SOURCE_PORT: &[Name] = &[
    dotted("source.port", &["source", "port"]),
    key("src_port"),
    key("srcport"),
    dotted("id.orig_p", &["id", "orig_p"]),
];
const DESTINATION_IP: &[Name] = &[
    dotted("destination.ip", &["destination", "ip"]),
    key("dest_ip"),
    key("dst_ip"),
    key("dstip"),
    dotted("id.resp_h", &["id", "resp_h"]),
];
const DESTINATION_PORT: &[Name] = &[
    dotted("destination.port", &["destination", "port"]),
    key("dest_port"),
    key("dst_port"),
    key("dstport"),
    dotted("id.resp_p", &["id", "resp_p"]),
];
const USER_NAME: &[Name] = &[
    dotted("user.name", &["user", "name"]),
    key("user"),
    key("username"),
    key("userName"),
];
const PROCESS_NAME: &[Name] = &[dotted("process.name", &["process", "name"]), key("program")];
const PROCESS_PID: &[Name] = &[dotted("process.pid", &["process", "pid"]), key("pid")];
const PROCESS_EXECUTABLE: &[Name] = &[dotted("process.executable", &["process", "executable"])];
const PROCESS_COMMAND_LINE: &[Name] =
    &[dotted("process.command_line", &["process", "command_line"])];
const EVENT_CODE: &[Name] = &[dotted("event.code", &["event", "code"])];
const EVENT_ACTION: &[Name] = &[dotted("event.action", &["event", "action"]), key("action")];
const EVENT_OUTCOME: &[Name] = &[
    dotted("event.outcome", &["event", "outcome"]),
    key("outcome"),
];
const LOG_LEVEL: &[Name] = &[
    dotted("log.level", &["log", "level"]),
    key("level"),
    key("severity"),
];
const URL_ORIGINAL: &[Name] = &[dotted("url.original", &["url", "original"]), key("url")];
const HTTP_METHOD: &[Name] = &[
    dotted("http.request.method", &["http", "request", "method"]),
    key("method"),
];
const HTTP_STATUS: &[Name] = &[
    dotted(
        "http.response.status_code",
        &["http", "response", "status_code"],
    ),
    key("status"),
];
const USER_AGENT: &[Name] = &[
    dotted("user_agent.original", &["user_agent", "original"]),
    key("user_agent"),
    key("http_user_agent"),
];
const TIMESTAMP: &[Name] = &[key("@timestamp"), key("timestamp"), key("time"), key("ts")];

/// Fills the core fields and the timestamp from the common names (see the tables above).
/// Only sets what it finds; used for generic documents and as the first pass for Winlogbeat.
pub fn fill_core(document: &Fields, context: &ParseContext, event: &mut Event) {
    let filter = NameFilter::of(document);
    let lookup = |name: &Name| lookup(document, &filter, name);
    let text = |names: &[Name]| first_text::<String>(names, lookup);
    let short_text = |names: &[Name]| first_text::<ShortText>(names, lookup);
    let number = |names: &[Name]| names.iter().find_map(|name| lookup(name).and_then(as_u64));
    let core = &mut event.core;
    core.message = text(MESSAGE);
    core.host_name = short_text(HOST_NAME);
    core.source_ip = short_text(SOURCE_IP);
    core.source_port = number(SOURCE_PORT).and_then(|port| u16::try_from(port).ok());
    core.destination_ip = short_text(DESTINATION_IP);
    core.destination_port = number(DESTINATION_PORT).and_then(|port| u16::try_from(port).ok());
    core.user_name = short_text(USER_NAME);
    core.process_name = short_text(PROCESS_NAME);
    core.process_pid = number(PROCESS_PID).and_then(|pid| u32::try_from(pid).ok());
    core.process_executable = text(PROCESS_EXECUTABLE);
    core.process_command_line = text(PROCESS_COMMAND_LINE);
    core.event_code = text(EVENT_CODE);
    core.event_action = text(EVENT_ACTION).map(Into::into);
    core.event_outcome = text(EVENT_OUTCOME).map(Into::into);
    core.log_level = text(LOG_LEVEL).map(Into::into);
    core.url_original = text(URL_ORIGINAL);
    core.http_request_method = text(HTTP_METHOD);
    core.http_response_status_code =
        number(HTTP_STATUS).and_then(|status| u16::try_from(status).ok());
    core.user_agent_original = text(USER_AGENT);
    if let Some(time) = TIMESTAMP
        .iter()
        .find_map(|name| lookup(name).and_then(|value| time_of(value, context)))
    {
        event.timestamp = time;
    }
}

/// Objects of at most this many members are searched by comparing names ([`member`]).
const SCAN_MEMBERS: usize = 16;

/// The member `name` of a JSON object. A small object (Winlogbeat's `winlog`, ECS's `host`,
/// the evtx crate's `Event`: a handful of members) is searched by comparing names, which
/// costs a fraction of the SipHash of the name that `Map::get` computes (serde_json's objects
/// keep their order in an `IndexMap` with std's hasher): ~10 lookups an event were 7% of a
/// Winlogbeat event's parse. The same answer either way: names in an object are unique.
pub(crate) fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if object.len() > SCAN_MEMBERS {
        return object.get(name);
    }
    object
        .iter()
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// A value by name: a literal top-level key first, then a walk through nested objects.
/// `filter` is the document's [`NameFilter`].
fn lookup<'a>(document: &'a Fields, filter: &NameFilter, name: &Name) -> Option<&'a Value> {
    if filter.may_hold(name.literal_slots) {
        if let Some(value) = document.get_with_bit(name.literal, name.literal_bit) {
            return Some(value);
        }
    }
    if name.path.is_empty() || !filter.may_hold(name.first_slots) {
        return None;
    }
    walk(document, name)
}

/// The walk of [`lookup`] through nested objects, out of line: the filter answers nearly
/// every lookup, and with the walk inlined each of the ~80 cost ~5 instructions more.
#[inline(never)]
fn walk<'a>(document: &'a Fields, name: &Name) -> Option<&'a Value> {
    let (first, rest) = name.path.split_first()?;
    let mut current = document.get_with_bit(first, name.first_bit)?;
    for part in rest {
        current = member(current.as_object()?, part)?;
    }
    Some(current)
}

/// The first of `names` holding a non-empty string or a number (objects and arrays do not
/// count: `"user": {"id": 1}` is not a user name), as a `String` or, for a short core field,
/// a [`ShortText`] made from the document's text directly.
fn first_text<'a, T: From<&'a str> + From<String>>(
    names: &[Name],
    lookup: impl Fn(&Name) -> Option<&'a Value>,
) -> Option<T> {
    names.iter().find_map(|name| match lookup(name)? {
        Value::String(text) if !text.is_empty() => Some(T::from(text.as_str())),
        Value::Number(number) => Some(T::from(number.to_string())),
        _ => None,
    })
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A time as JSON writes it: ISO 8601 text (zone-less is local to `context.timezone`), or
/// Unix epoch seconds (with fractions, as Zeek writes `ts`) or milliseconds, as a number or
/// as digits in a string.
fn time_of(value: &Value, context: &ParseContext) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => {
            let text = text.trim();
            if let Ok((_, time)) = timestamp::iso8601(text, context.timezone) {
                return Some(time);
            }
            epoch_time(text)
        }
        Value::Number(number) => epoch_time(&number.to_string()),
        _ => None,
    }
}

/// Epoch digits: 13 or more integer digits are milliseconds (seconds that large are past
/// the year 5000), fewer are seconds.
fn epoch_time(text: &str) -> Option<DateTime<Utc>> {
    let integer_digits = text.split('.').next().unwrap_or("");
    if integer_digits.is_empty() || !integer_digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    if integer_digits.len() >= 13 && !text.contains('.') {
        timestamp::epoch_millis(text)
    } else {
        timestamp::epoch_seconds(text)
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's error as a [`FormatError`]: its message without the "at line L column C"
/// suffix, and the byte offset that line and column point at in `bytes`.
pub fn serde_error(bytes: &[u8], error: &serde_json::Error) -> FormatError {
    let full = error.to_string();
    let message = match full.rfind(" at line ") {
        Some(end) => full.get(..end).unwrap_or(&full).to_owned(),
        None => full,
    };
    FormatError::new(message, byte_offset(bytes, error.line(), error.column()))
}

/// serde_json counts lines from 1 and columns (in bytes) from 1, with column 0 meaning "at
/// the line break before". Clamped to the input.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut line_start = 0;
    for _ in 1..line {
        match memchr::memchr(b'\n', bytes.get(line_start..).unwrap_or(&[])) {
            Some(position) => line_start += position + 1,
            None => break,
        }
    }
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

// ---------------------------------------------------------------------------------------------
// Splitting a byte stream into documents

/// Tracks bracket depth outside strings, to find where documents and array elements end
/// without parsing.
#[derive(Debug, Default, Clone, Copy)]
struct BracketScanner {
    depth: i64,
    in_string: bool,
    escaped: bool,
}

impl BracketScanner {
    fn feed(&mut self, byte: u8) {
        if self.in_string {
            match byte {
                _ if self.escaped => self.escaped = false,
                b'\\' => self.escaped = true,
                b'"' => self.in_string = false,
                _ => {}
            }
            return;
        }
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => self.depth -= 1,
            _ => {}
        }
    }

    fn feed_all(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.feed(*byte);
        }
    }
}

/// What follows the complete documents of a buffer.
#[derive(Debug)]
enum Tail {
    /// Nothing but whitespace.
    Nothing,
    /// A document that starts at this offset and has not ended yet.
    Incomplete { start: usize },
    /// Bytes from `start` that are not JSON; serde's error points into the whole buffer.
    Invalid { start: usize, error: FormatError },
}

/// Splits `bytes` into the complete JSON values it holds (with their byte ranges) and what
/// follows them.
fn split_documents(bytes: &[u8]) -> (Vec<(Range<usize>, Value)>, Tail) {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let mut end = 0;
    loop {
        let start = end + leading_whitespace(bytes.get(end..).unwrap_or(&[]));
        match stream.next() {
            None => return (documents, Tail::Nothing),
            Some(Ok(value)) => {
                end = stream.byte_offset();
                documents.push((start..end, value));
            }
            Some(Err(error)) if error.is_eof() => return (documents, Tail::Incomplete { start }),
            Some(Err(error)) => {
                let error = serde_error(bytes, &error);
                return (documents, Tail::Invalid { start, error });
            }
        }
    }
}

fn leading_whitespace(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|byte| byte.is_ascii_whitespace())
        .count()
}

/// The byte ranges of a top-level array's elements (`bytes` is the array's own text).
fn array_element_ranges(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut scanner = BracketScanner::default();
    let mut element_start = None;
    for (index, byte) in bytes.iter().enumerate() {
        let outside_string = !scanner.in_string;
        let depth = scanner.depth;
        scanner.feed(*byte);
        if !outside_string {
            continue;
        }
        match (depth, *byte) {
            (0, b'[') => element_start = Some(index + 1),
            (1, b',') => {
                if let Some(start) = element_start {
                    ranges.push(trim_range(bytes, start..index));
                }
                element_start = Some(index + 1);
            }
            (1, b']') => {
                if let Some(start) = element_start.take() {
                    ranges.push(trim_range(bytes, start..index));
                }
            }
            _ => {}
        }
    }
    ranges.retain(|range| !range.is_empty());
    ranges
}

fn trim_range(bytes: &[u8], range: Range<usize>) -> Range<usize> {
    let slice = bytes.get(range.clone()).unwrap_or(&[]);
    let start = range.start + leading_whitespace(slice);
    let trailing = slice
        .iter()
        .rev()
        .take_while(|byte| byte.is_ascii_whitespace())
        .count();
    start..range.end.saturating_sub(trailing).max(start)
}

// ---------------------------------------------------------------------------------------------
// Continuation

/// JSON across records: a document pretty-printed over several lines is held here until it
/// completes; records holding several documents, or a top-level array, yield one event each.
#[derive(Debug)]
pub struct Continuation {
    /// The longest document held open ([`MAX_DOCUMENT_BYTES`] unless a source asks for less).
    max_document: usize,
    /// The open document's bytes (records joined with `\n`); empty when nothing is open.
    buffer: Vec<u8>,
    /// Sequence number of the record the open document started in.
    first_sequence: u64,
    /// Bracket depth of `buffer`, updated as records arrive.
    scanner: BracketScanner,
}

/// What [`Continuation::push`] did with a record.
pub enum Pushed {
    /// The record belongs to JSON; these events are complete (none while a document is still
    /// open).
    Taken(Vec<Event>),
    /// The record is not JSON; parse it normally.
    NotJson,
    /// The record ended an open document without continuing it: these are the events of what
    /// was held, and the record itself is to be parsed normally (after them).
    Closed(Vec<Event>),
}

impl Default for Continuation {
    fn default() -> Self {
        Continuation::with_max_document(MAX_DOCUMENT_BYTES)
    }
}

impl Continuation {
    /// A continuation that holds documents of at most `max_document` bytes (at most
    /// [`MAX_DOCUMENT_BYTES`], at least one byte): a longer one is kept raw as one unknown
    /// event. The HTTP intake holds documents to its source's `max_frame`, the longest record
    /// it parses, so that a document spread over many short lines is not parsed where the
    /// same text on one line would not be.
    pub fn with_max_document(max_document: usize) -> Self {
        Continuation {
            max_document: max_document.clamp(1, MAX_DOCUMENT_BYTES),
            buffer: Vec::new(),
            first_sequence: 0,
            scanner: BracketScanner::default(),
        }
    }

    /// True while a document is open.
    pub fn is_open(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// Bytes of the open document.
    pub fn held_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Offers a record (the decoder offers every record while a document is open, and records
    /// starting with `{`/`[` otherwise).
    ///
    /// - complete documents → one event each (`raw` = the record when it holds exactly one
    ///   document, else the document's own text; array elements likewise);
    /// - a document that continues past the record → held, `Taken(vec![])`;
    /// - not JSON at all (a fresh record) → `NotJson`;
    /// - an open document broken by this record → one `format: unknown` event holding all its
    ///   bytes with serde's message and offset. When the record cannot continue the document
    ///   at all (the error is at its first byte), only the held bytes become that unknown
    ///   event and the record itself is read afresh;
    /// - a record that would take an open document past its maximum ([`MAX_DOCUMENT_BYTES`]
    ///   by default) → the held bytes as one unknown event, and the record read on its own.
    pub fn push(
        &mut self,
        record: &[u8],
        sequence: u64,
        input_format: InputFormat,
        context: &ParseContext,
    ) -> Pushed {
        if self.buffer.is_empty() {
            return self.push_fresh(record, sequence, input_format, context);
        }
        if self.buffer.len() + 1 + record.len() > self.max_document {
            // The lines held so far are kept raw as one event; the record that would take the
            // document past its maximum is read on its own, as the lines after it are (a
            // complete JSON line there still parses).
            let error = FormatError::new(
                format!(
                    "JSON document longer than {} bytes with the next record; the lines held so far kept raw",
                    self.max_document
                ),
                self.buffer.len(),
            );
            let event = unknown_event(&self.buffer, error, self.first_sequence, context);
            self.close();
            return match self.push_fresh(record, sequence, input_format, context) {
                Pushed::Taken(more) => Pushed::Taken(std::iter::once(event).chain(more).collect()),
                // The caller parses the record, so it goes through auditd grouping and the
                // counters like any other.
                Pushed::NotJson | Pushed::Closed(_) => Pushed::Closed(vec![event]),
            };
        }
        let record_start = self.buffer.len() + 1;
        self.buffer.push(b'\n');
        self.buffer.extend_from_slice(record);
        self.scanner.feed(b'\n');
        self.scanner.feed_all(record);
        if self.buffer.len() > REPARSE_EVERY_RECORD_BELOW && self.scanner.depth > 0 {
            return Pushed::Taken(Vec::new());
        }

        let first_sequence = self.first_sequence;
        let sequence_at = |start: usize| {
            if start >= record_start {
                sequence
            } else {
                first_sequence
            }
        };
        // The documents are read while the buffer is still held: should a parser panic on
        // one (a bug), the decoder's guard finds every byte still here and keeps it raw
        // (`Continuation::take_held`).
        let (documents, tail) = split_documents(&self.buffer);
        let mut events = Vec::new();
        for (range, value) in documents {
            let raw = self.buffer.get(range.clone()).unwrap_or(&[]);
            document_events(
                raw,
                value,
                sequence_at(range.start),
                input_format,
                context,
                &mut events,
            );
        }
        distinguish_part_ids(&mut events);
        let buffer = std::mem::take(&mut self.buffer);
        self.close();
        match tail {
            Tail::Nothing => {}
            Tail::Incomplete { start } => {
                self.open(buffer.get(start..).unwrap_or(&[]), sequence_at(start));
            }
            Tail::Invalid { start, error } => {
                let record_first_byte = record_start + leading_whitespace(record);
                if start < record_start && error.offset == record_first_byte {
                    // The record cannot continue the held document: the held part is the
                    // broken one, and the record gets its own reading.
                    let held = buffer.get(start..record_start - 1).unwrap_or(&[]);
                    let error = FormatError::new(
                        "JSON document not complete: the next record does not continue it",
                        held.len(),
                    );
                    events.push(unknown_event(held, error, first_sequence, context));
                    match self.push_fresh(record, sequence, input_format, context) {
                        Pushed::Taken(more) => events.extend(more),
                        // The caller parses the record, so it goes through auditd grouping and
                        // the counters like any other.
                        Pushed::NotJson | Pushed::Closed(_) => return Pushed::Closed(events),
                    }
                } else {
                    let broken = buffer.get(start..).unwrap_or(&[]);
                    let error = FormatError::new(error.message, error.offset.saturating_sub(start));
                    events.push(unknown_event(broken, error, sequence_at(start), context));
                }
            }
        }
        Pushed::Taken(events)
    }

    /// Closes what is open: a document still incomplete at the end of the stream becomes one
    /// `format: unknown` event with serde's message.
    pub fn finish(&mut self, context: &ParseContext) -> Vec<Event> {
        self.close_incomplete("at the end of the stream", context)
    }

    /// [`Continuation::finish`] before the stream ends: the decoder gives out what it holds
    /// because its source holds too much (`Decoder::release_held`).
    pub fn release(&mut self, context: &ParseContext) -> Vec<Event> {
        self.close_incomplete(
            "when given out early (the source held too many open documents)",
            context,
        )
    }

    /// [`Continuation::finish`] while the stream goes on: nothing more has arrived for a while
    /// (`sources::QUIET_CLOSE`), so the document is given out as it is (`Decoder::close_quiet`).
    pub fn close_quiet(&mut self, context: &ParseContext) -> Vec<Event> {
        self.close_incomplete(
            "after nothing more came for a while (a second; ten in the middle of a record)",
            context,
        )
    }

    /// The open document as one unknown event whose message says it was not complete `when`.
    fn close_incomplete(&mut self, when: &str, context: &ParseContext) -> Vec<Event> {
        if self.buffer.is_empty() {
            return Vec::new();
        }
        let buffer = std::mem::take(&mut self.buffer);
        let error = match serde_json::from_slice::<Value>(&buffer) {
            Err(error) => {
                let error = serde_error(&buffer, &error);
                FormatError::new(
                    format!("JSON document not complete {when}: {}", error.message),
                    error.offset,
                )
            }
            Ok(_) => FormatError::new(format!("JSON document not complete {when}"), buffer.len()),
        };
        let event = unknown_event(&buffer, error, self.first_sequence, context);
        self.close();
        vec![event]
    }

    fn push_fresh(
        &mut self,
        record: &[u8],
        sequence: u64,
        input_format: InputFormat,
        context: &ParseContext,
    ) -> Pushed {
        // Only objects and arrays start a JSON record: a line starting with a quote or a digit
        // is text that happens to begin like a JSON scalar.
        let first = record.iter().find(|byte| !byte.is_ascii_whitespace());
        if !matches!(first, Some(b'{') | Some(b'[')) {
            return Pushed::NotJson;
        }
        if first == Some(&b'{') {
            if let Some(event) = whole_object_event(record, sequence, input_format, context) {
                return Pushed::Taken(vec![event]);
            }
        }
        let (documents, tail) = split_documents(record);
        if documents.is_empty() && matches!(tail, Tail::Invalid { .. }) {
            return Pushed::NotJson;
        }
        let whole_record = documents.len() == 1 && matches!(tail, Tail::Nothing);
        let mut events = Vec::new();
        for (range, value) in documents {
            let raw = if whole_record {
                record
            } else {
                record.get(range).unwrap_or(&[])
            };
            document_events(raw, value, sequence, input_format, context, &mut events);
        }
        distinguish_part_ids(&mut events);
        match tail {
            Tail::Nothing => {}
            Tail::Incomplete { start } => self.open(record.get(start..).unwrap_or(&[]), sequence),
            Tail::Invalid { start, error } => {
                let rest = record.get(start..).unwrap_or(&[]);
                let error = FormatError::new(error.message, error.offset.saturating_sub(start));
                events.push(unknown_event(rest, error, sequence, context));
            }
        }
        Pushed::Taken(events)
    }

    fn open(&mut self, bytes: &[u8], sequence: u64) {
        self.buffer = bytes.to_vec();
        self.first_sequence = sequence;
        self.scanner = BracketScanner::default();
        self.scanner.feed_all(bytes);
    }

    fn close(&mut self) {
        self.buffer.clear();
        self.scanner = BracketScanner::default();
    }

    /// The open document's bytes and the sequence number of its first record, closing it
    /// without parsing: what the decoder keeps raw after a parser panicked on it.
    pub(crate) fn take_held(&mut self) -> Option<(Vec<u8>, u64)> {
        if self.buffer.is_empty() {
            return None;
        }
        let held = std::mem::take(&mut self.buffer);
        self.close();
        Some((held, self.first_sequence))
    }
}

/// Several events cut from one record get distinct ids (the first keeps the record-level one).
fn distinguish_part_ids(events: &mut [Event]) {
    for (part, event) in events.iter_mut().enumerate().skip(1) {
        event.id = part_id(&event.id, part);
    }
}

/// The event of a record that is one whole JSON object (nearly every NDJSON line), read as
/// [`parse`] reads one: straight into [`Fields`], the record's UTF-8 checked once. The general
/// path below builds a `serde_json::Map` (an `IndexMap` hashing every key with SipHash) and
/// copies it over, which made a JSON record read this way cost 1.3–1.5 times its parse
/// (BENCHMARKS.md "Parsing", "JSON records as the sources read them").
/// `None` when it is anything else (several documents, one cut short or broken, invalid
/// UTF-8, too deep, or a Windows event that is not one): the general path then reads it and
/// says what is wrong, so the answer is the same as the general path's either way.
fn whole_object_event(
    record: &[u8],
    sequence: u64,
    input_format: InputFormat,
    context: &ParseContext,
) -> Option<Event> {
    let text = std::str::from_utf8(record).ok()?;
    if input_format == InputFormat::Winevent {
        let mut event = new_event_from(record, Some(text), context, sequence);
        winevent::parse(text, context, &mut event).ok()?;
        return Some(event);
    }
    // Read before the event is made: a record that is not one whole object costs only this
    // attempt on top of the general path, not an event's id and copy of `raw` too.
    let document = read_object(text).ok()?;
    let mut event = new_event_from(record, Some(text), context, sequence);
    fill_object(document, context, &mut event);
    Some(event)
}

/// The events of one complete document: one, or one per element of a top-level array.
fn document_events(
    raw: &[u8],
    value: Value,
    sequence: u64,
    input_format: InputFormat,
    context: &ParseContext,
    out: &mut Vec<Event>,
) {
    let Value::Array(elements) = value else {
        out.push(document_event(raw, value, sequence, input_format, context));
        return;
    };
    if elements.is_empty() {
        // An empty array holds no document, but the record is still kept as an event.
        let mut event = new_event(raw, context, sequence);
        event.format = Format::Json;
        out.push(event);
        return;
    }
    let ranges = array_element_ranges(raw);
    let exact = ranges.len() == elements.len();
    for (index, element) in elements.into_iter().enumerate() {
        let element_raw = match ranges.get(index).filter(|_| exact) {
            Some(range) => raw
                .get(range.clone())
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            // Should not happen (the scanner and serde agree on valid JSON); re-serializing
            // still keeps the content.
            None => serde_json::to_vec(&element).unwrap_or_default(),
        };
        out.push(document_event(
            &element_raw,
            element,
            sequence,
            input_format,
            context,
        ));
    }
}

fn document_event(
    raw: &[u8],
    value: Value,
    sequence: u64,
    input_format: InputFormat,
    context: &ParseContext,
) -> Event {
    let mut event = new_event(raw, context, sequence);
    let value = match within_depth(value) {
        Ok(value) => value,
        Err(error) => {
            mark_unknown(&mut event, "json", error);
            return event;
        }
    };
    let result = match (input_format, value) {
        (InputFormat::Winevent, value) => winevent::fill_from_value(value, context, &mut event)
            .map_err(|error| ("winevent", error)),
        (_, Value::Object(document)) => {
            fill_object(document.into(), context, &mut event);
            Ok(())
        }
        (_, other) => Err((
            "json",
            FormatError::new(
                format!("expecting a JSON object, found {}", kind_of(&other)),
                0,
            ),
        )),
    };
    if let Err((format_name, error)) = result {
        mark_unknown(&mut event, format_name, error);
    }
    event
}

fn unknown_event(raw: &[u8], error: FormatError, sequence: u64, context: &ParseContext) -> Event {
    let mut event = new_event(raw, context, sequence);
    mark_unknown(&mut event, "json", error);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table of names `fill_core` tries.
    const TABLES: [&[Name]; 20] = [
        MESSAGE,
        HOST_NAME,
        SOURCE_IP,
        SOURCE_PORT,
        DESTINATION_IP,
        DESTINATION_PORT,
        USER_NAME,
        PROCESS_NAME,
        PROCESS_PID,
        PROCESS_EXECUTABLE,
        PROCESS_COMMAND_LINE,
        EVENT_CODE,
        EVENT_ACTION,
        EVENT_OUTCOME,
        LOG_LEVEL,
        URL_ORIGINAL,
        HTTP_METHOD,
        HTTP_STATUS,
        USER_AGENT,
        TIMESTAMP,
    ];

    /// [`lookup`] without the filter and the precomputed bits: what it always answered.
    fn reference_lookup<'a>(document: &'a Fields, name: &Name) -> Option<&'a Value> {
        if let Some(value) = document.get(name.literal) {
            return Some(value);
        }
        let (first, rest) = name.path.split_first()?;
        let mut current = document.get(first)?;
        for part in rest {
            current = current.as_object()?.get(*part)?;
        }
        Some(current)
    }

    /// Keys for documents: the names `fill_core` tries, their first parts, near misses
    /// (another case, a letter more or less) and anything else.
    fn document_key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let names: Vec<String> = TABLES
            .iter()
            .flat_map(|table| table.iter())
            .flat_map(|name| {
                let mut keys = vec![name.literal.to_owned(), name.literal.to_uppercase()];
                keys.extend(name.path.first().map(|first| (*first).to_owned()));
                keys.push(format!("{}s", name.literal));
                keys
            })
            .collect();
        prop_oneof![proptest::sample::select(names), "[a-zA-Z_.@]{0,12}",]
    }

    proptest::proptest! {
        /// The filter only ever skips lookups that would have found nothing: every name gives
        /// what a plain lookup gives, in any document (nested objects included).
        #[test]
        fn the_name_filter_never_hides_a_key(
            keys in proptest::collection::vec(document_key(), 0..48),
            nested in proptest::collection::vec(document_key(), 0..4),
        ) {
            let mut document = Fields::new();
            for (index, key) in keys.iter().enumerate() {
                let value = match index % 3 {
                    0 => Value::from(index),
                    1 => Value::from(format!("v{index}")),
                    _ => nested.iter().map(|part| (part.clone(), Value::from("x"))).collect(),
                };
                document.insert(key.clone().into(), value);
            }
            let filter = NameFilter::of(&document);
            for name in TABLES.iter().flat_map(|table| table.iter()) {
                proptest::prop_assert_eq!(
                    lookup(&document, &filter, name),
                    reference_lookup(&document, name),
                    "{}", name.literal
                );
            }
        }
    }

    proptest::proptest! {
        /// Comparing names (small objects) and hashing them (large ones) find the same member,
        /// on both sides of `SCAN_MEMBERS`.
        #[test]
        fn member_finds_what_get_finds(
            keys in proptest::collection::vec("[a-z_]{0,6}", 0..(2 * SCAN_MEMBERS)),
            probe in "[a-z_]{0,6}",
        ) {
            let object: Map<String, Value> = keys
                .iter()
                .enumerate()
                .map(|(index, key)| (key.clone(), Value::from(index)))
                .collect();
            for name in keys.iter().chain(std::iter::once(&probe)) {
                proptest::prop_assert_eq!(member(&object, name), object.get(name.as_str()));
            }
        }
    }

    /// The general path's events for one record (what `push_fresh` did for every record).
    fn general_path(
        record: &[u8],
        input_format: InputFormat,
        context: &ParseContext,
    ) -> Vec<Event> {
        let (documents, _) = split_documents(record);
        let mut events = Vec::new();
        for (_, value) in documents {
            document_events(record, value, 7, input_format, context, &mut events);
        }
        events
    }

    /// A record that is one whole object gives the event the general path gives (times set
    /// from the clock aside), and every other record is left to the general path.
    #[test]
    fn a_whole_object_is_read_as_the_general_path_reads_it() {
        let context = ParseContext::new("http");
        // Within serde_json's recursion limit (128), past ours.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(110), "]".repeat(110));
        let records: Vec<&[u8]> = vec![
            br#"{"@timestamp":"2026-11-22T03:15:00.000Z","winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","event_id":1,"computer_name":"pc-1","event_data":{"Image":"C:\\Windows\\System32\\cmd.exe","ProcessId":"42"}},"host":{"name":"pc-1"}}"#,
            br#"{"EventID":4624,"Channel":"Security","TargetUserName":"alice","IpAddress":"10.0.0.5","EventTime":"2020-10-19 22:47:18"}"#,
            br#"{"message":"hi","source":{"ip":"10.1.1.1","port":51000},"user.name":"bob","n":1.5,"a":[1,{"b":null}]}"#,
            br#"  {"k":"first","k":"second","t":1700000000}  "#,
            br#"{"winlog":{"event_id":"not a number"},"message":"looks Windows"}"#,
            br#"{}"#,
            deep.as_bytes(),
            br#"{"a":1}{"b":2}"#,
            br#"{"a":1} trailing"#,
            br#"{"a":"cut short"#,
            b"{\"a\":\"\xff\"}",
        ];
        for input_format in [InputFormat::Auto, InputFormat::Json, InputFormat::Winevent] {
            for record in &records {
                let general = general_path(record, input_format, &context);
                let whole = whole_object_event(record, 7, input_format, &context);
                let Some(mut whole) = whole else {
                    continue;
                };
                let label = format!("{input_format:?} {}", String::from_utf8_lossy(record));
                assert_eq!(general.len(), 1, "{label}");
                let general = &general[0];
                assert!(
                    general.parse_error.is_none(),
                    "taken whole but failed: {label}"
                );
                if whole.timestamp == whole.received_at {
                    whole.timestamp = general.timestamp;
                }
                whole.received_at = general.received_at;
                assert_eq!(&whole, general, "{label}");
            }
        }
        // What the general path alone reads.
        for record in &records[6..] {
            assert!(
                whole_object_event(record, 7, InputFormat::Auto, &context).is_none(),
                "{}",
                String::from_utf8_lossy(record)
            );
        }
    }

    #[test]
    fn every_dotted_name_is_split_as_written_and_plain_names_have_no_dot() {
        for name in TABLES.iter().flat_map(|table| table.iter()) {
            if name.literal.contains('.') {
                let parts: Vec<&str> = name.literal.split('.').collect();
                assert_eq!(name.path, parts.as_slice(), "{}", name.literal);
            } else {
                assert!(name.path.is_empty(), "{}", name.literal);
            }
        }
    }

    /// A document `n` arrays deep under one key: `fields` of depth `n`.
    fn nested(n: usize) -> String {
        format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n))
    }

    /// Nested deeper than a stored event can be read back at: refused (the line is kept raw
    /// with the error), not stored to break every search that meets it.
    #[test]
    fn documents_nested_past_the_fields_limit_are_refused() {
        let fine = read_object(&nested(crate::fields::MAX_DEPTH));
        assert_eq!(
            fine.map(|fields| fields.depth()).ok(),
            Some(crate::fields::MAX_DEPTH)
        );
        let error = read_object(&nested(crate::fields::MAX_DEPTH + 1))
            .err()
            .map(|error| error.message.into_owned())
            .unwrap_or_default();
        assert!(error.contains("nested deeper than"), "{error}");
        let event = crate::parse::parse_record(
            nested(crate::fields::MAX_DEPTH + 1).as_bytes(),
            crate::parse::InputFormat::Json,
            &context(),
            1,
        );
        assert_eq!(event.format, crate::event::Format::Unknown);
        assert!(event.raw.is_some());
        // The same in a stream of documents (several per read, or one over several lines).
        let stream = format!(
            "{}\n{}\n",
            nested(crate::fields::MAX_DEPTH),
            nested(crate::fields::MAX_DEPTH + 1)
        );
        let events = split_documents(stream.as_bytes())
            .0
            .into_iter()
            .map(|(range, value)| {
                document_event(
                    &stream.as_bytes()[range],
                    value,
                    1,
                    crate::parse::InputFormat::Json,
                    &context(),
                )
            })
            .collect::<Vec<_>>();
        let formats: Vec<_> = events.iter().map(|event| event.format).collect();
        assert_eq!(
            formats,
            [crate::event::Format::Json, crate::event::Format::Unknown]
        );
    }

    fn context() -> ParseContext {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::UTC;
        context.received_at = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        context
    }

    fn push_all(lines: &[&str], input_format: InputFormat) -> Vec<Event> {
        let context = context();
        let mut continuation = Continuation::default();
        let mut events = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            match continuation.push(line.as_bytes(), index as u64 + 1, input_format, &context) {
                Pushed::Taken(done) => events.extend(done),
                Pushed::Closed(done) => {
                    events.extend(done);
                    events.push(crate::parse::parse_record(
                        line.as_bytes(),
                        input_format,
                        &context,
                        index as u64 + 1,
                    ));
                }
                Pushed::NotJson => events.push(crate::parse::parse_record(
                    line.as_bytes(),
                    input_format,
                    &context,
                    index as u64 + 1,
                )),
            }
        }
        events.extend(continuation.finish(&context));
        events
    }

    #[test]
    fn ecs_document_fills_core_and_keeps_nesting() {
        let text = r#"{"@timestamp":"2024-05-01T08:00:00Z","host":{"name":"web1"},"message":"hi","source":{"ip":"10.1.1.1","port":51000},"user.name":"alice","http":{"response":{"status_code":404}}}"#;
        let context = context();
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse(text, &context, &mut event).unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(event.format, Format::Json);
        assert_eq!(event.core.host_name.as_deref(), Some("web1"));
        assert_eq!(event.core.source_ip.as_deref(), Some("10.1.1.1"));
        assert_eq!(event.core.source_port, Some(51000));
        assert_eq!(event.core.user_name.as_deref(), Some("alice"));
        assert_eq!(event.core.http_response_status_code, Some(404));
        assert_eq!(event.timestamp.to_rfc3339(), "2024-05-01T08:00:00+00:00");
        assert_eq!(
            event.field("source.ip").as_deref(),
            Some(&Value::from("10.1.1.1"))
        );
        assert_eq!(
            event.field("http.response.status_code").as_deref(),
            Some(&Value::from(404))
        );
        let keys: Vec<&str> = event.fields.keys().collect();
        assert_eq!(
            keys,
            [
                "@timestamp",
                "host",
                "message",
                "source",
                "user.name",
                "http"
            ]
        );
    }

    #[test]
    fn epoch_times() {
        let context = context();
        for (text, expected) in [
            (
                r#"{"ts":1591367999.305988}"#,
                "2020-06-05T14:39:59.305988+00:00",
            ),
            (
                r#"{"timestamp":1700000000000}"#,
                "2023-11-14T22:13:20+00:00",
            ),
            (r#"{"time":"1700000000"}"#, "2023-11-14T22:13:20+00:00"),
        ] {
            let mut event = new_event(text.as_bytes(), &context, 1);
            parse(text, &context, &mut event).unwrap_or_else(|error| panic!("{error:?}"));
            assert_eq!(event.timestamp.to_rfc3339(), expected, "{text}");
        }
    }

    #[test]
    fn parse_errors_carry_serde_message_and_offset() {
        let context = context();
        let text = r#"{"a":1,"b":}"#;
        let mut event = new_event(text.as_bytes(), &context, 1);
        let error = parse(text, &context, &mut event)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(error.message, "expected value");
        assert_eq!(error.offset, 11);
        let error = parse("[1]", &context, &mut event)
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert!(error.message.contains("array"));
    }

    #[test]
    fn several_documents_on_one_line_and_arrays() {
        let events = push_all(
            &[r#"{"a":1} {"b":2}"#, r#"[{"c":3}, {"d":"x,]"} ]"#],
            InputFormat::Auto,
        );
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].raw.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(events[1].raw.as_deref(), Some(r#"{"b":2}"#));
        assert_eq!(events[2].raw.as_deref(), Some(r#"{"c":3}"#));
        assert_eq!(events[3].raw.as_deref(), Some(r#"{"d":"x,]"}"#));
        assert!(events.iter().all(|event| event.format == Format::Json));
        assert_ne!(events[0].id, events[1].id);
    }

    #[test]
    fn single_document_keeps_the_whole_record_as_raw() {
        let events = push_all(&["  {\"a\":1}  "], InputFormat::Json);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].raw.as_deref(), Some("  {\"a\":1}  "));
    }

    #[test]
    fn pretty_printed_document_spans_records() {
        let events = push_all(
            &[
                "{",
                "  \"message\": \"multi\",",
                "  \"n\": [1,",
                "2]",
                "}",
                "{\"next\":true}",
            ],
            InputFormat::Auto,
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].core.message.as_deref(), Some("multi"));
        assert_eq!(events[0].source.sequence, Some(1));
        assert_eq!(
            events[0].raw.as_deref(),
            Some("{\n  \"message\": \"multi\",\n  \"n\": [1,\n2]\n}")
        );
        assert_eq!(events[1].source.sequence, Some(6));
    }

    /// Every event of `lines` pushed in turn into `continuation` (records it does not take
    /// parsed on their own, as the decoder does).
    fn events_of(continuation: &mut Continuation, lines: &[&str]) -> Vec<Event> {
        let context = context();
        let mut events = Vec::new();
        for (index, line) in lines.iter().enumerate() {
            let sequence = index as u64 + 1;
            let parse_alone = |events: &mut Vec<Event>| {
                events.push(crate::parse::parse_record(
                    line.as_bytes(),
                    InputFormat::Auto,
                    &context,
                    sequence,
                ));
            };
            match continuation.push(line.as_bytes(), sequence, InputFormat::Auto, &context) {
                Pushed::Taken(taken) => events.extend(taken),
                Pushed::Closed(taken) => {
                    events.extend(taken);
                    parse_alone(&mut events);
                }
                Pushed::NotJson => parse_alone(&mut events),
            }
        }
        events
    }

    #[test]
    fn a_document_past_its_maximum_is_kept_raw_and_the_next_one_parses() {
        let mut continuation = Continuation::with_max_document(40);
        let lines = [
            "{",
            "\"message\": \"a long one\",",
            "\"more\": \"0123456789\",",
            "{\"whole\": 1}",
            "}",
        ];
        let events = events_of(&mut continuation, &lines);
        // The third line would take the document to 49 bytes: the two held lines become one
        // unknown event byte for byte, and the lines from the third on are read one by one
        // (a complete JSON line among them parses). Nothing is lost.
        let raw: Vec<&str> = events
            .iter()
            .filter_map(|event| event.raw.as_deref())
            .collect();
        assert_eq!(
            raw,
            [
                "{\n\"message\": \"a long one\",",
                "\"more\": \"0123456789\",",
                "{\"whole\": 1}",
                "}"
            ]
        );
        assert_eq!(events[0].format, Format::Unknown);
        assert!(events[0]
            .parse_error
            .as_ref()
            .is_some_and(|error| error.message.contains("longer than 40 bytes")));
        assert_eq!(events[2].format, Format::Json);
        assert!(!continuation.is_open());

        // The same continuation takes the next document, and one of exactly 40 bytes is whole.
        let exactly = format!("\"k\": \"{}\"", "a".repeat(29));
        let events = events_of(&mut continuation, &["{", &exactly, "}"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].format, Format::Json);
        assert_eq!(events[0].raw.as_deref().map(str::len), Some(40));
        let one_more = format!("\"k\": \"{}\"", "a".repeat(30));
        let events = events_of(&mut continuation, &["{", &one_more, "}"]);
        assert_eq!(events[0].format, Format::Unknown);
        assert_eq!(
            events[0].raw.as_deref(),
            Some(format!("{{\n{one_more}").as_str())
        );
        assert_eq!(events.len(), 2, "the closing brace read on its own");
    }

    #[test]
    fn fresh_syntax_error_is_not_json() {
        let context = context();
        let mut continuation = Continuation::default();
        assert!(matches!(
            continuation.push(b"[INFO] started", 1, InputFormat::Auto, &context),
            Pushed::NotJson
        ));
        assert!(matches!(
            continuation.push(b"{not json", 2, InputFormat::Auto, &context),
            Pushed::NotJson
        ));
        assert!(!continuation.is_open());
    }

    #[test]
    fn broken_open_document_becomes_one_unknown_event() {
        let events = push_all(&["{", "\"a\": 1", "\"b\": 2", "}"], InputFormat::Auto);
        // Line 3 could start a key (the error is at its first byte, a missing comma), so the
        // held part is cut there and "\"b\": 2" and "}" are read afresh.
        assert!(
            events.iter().all(|event| event.format == Format::Unknown),
            "{events:?}"
        );
        assert_eq!(events[0].raw.as_deref(), Some("{\n\"a\": 1"));
        let error = events[0]
            .parse_error
            .as_ref()
            .unwrap_or_else(|| panic!("no error"));
        assert_eq!(error.format, "json");

        let events = push_all(&["{", "\"a\": tru"], InputFormat::Auto);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].raw.as_deref(), Some("{\n\"a\": tru"));
        assert!(events[0]
            .parse_error
            .as_ref()
            .is_some_and(|error| error.message.contains("end of the stream")));
    }

    #[test]
    fn stray_open_brace_does_not_swallow_the_next_syslog_line() {
        let events = push_all(
            &["{", "<34>Oct 11 22:14:15 mymachine su: 'su root' failed"],
            InputFormat::Auto,
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].format, Format::Unknown);
        assert_eq!(events[0].raw.as_deref(), Some("{"));
        assert_eq!(
            events[1].raw.as_deref(),
            Some("<34>Oct 11 22:14:15 mymachine su: 'su root' failed")
        );
        assert_eq!(events[1].source.sequence, Some(2));
    }

    #[test]
    fn trailing_garbage_after_a_document_is_kept() {
        let events = push_all(&[r#"{"a":1} oops"#], InputFormat::Auto);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].format, Format::Json);
        assert_eq!(events[1].format, Format::Unknown);
        assert_eq!(events[1].raw.as_deref(), Some("oops"));
        assert_eq!(
            events[1].parse_error.as_ref().map(|error| error.offset),
            Some(0)
        );
    }

    #[test]
    fn windows_documents_become_winevent() {
        let events = push_all(
            &[r#"{"EventID":4624,"Channel":"Security","TargetUserName":"bob"}"#],
            InputFormat::Json,
        );
        assert_eq!(events[0].format, Format::Winevent);
        let events = push_all(&[r#"{"message":"plain"}"#], InputFormat::Winevent);
        assert_eq!(events[0].format, Format::Unknown);
        assert_eq!(
            events[0]
                .parse_error
                .as_ref()
                .map(|error| error.format.as_str()),
            Some("winevent")
        );
    }

    #[test]
    fn oversized_document_is_cut_loose() {
        let context = context();
        let mut continuation = Continuation::default();
        let mut events = Vec::new();
        let line = format!("\"k\": \"{}\",", "x".repeat(1024 * 1024));
        assert!(
            matches!(continuation.push(b"{", 1, InputFormat::Auto, &context), Pushed::Taken(ref done) if done.is_empty())
        );
        let mut handed_back = 0;
        for sequence in 2..10 {
            match continuation.push(line.as_bytes(), sequence, InputFormat::Auto, &context) {
                Pushed::Taken(done) => events.extend(done),
                Pushed::Closed(done) => {
                    events.extend(done);
                    handed_back += 1;
                }
                Pushed::NotJson => handed_back += 1,
            }
        }
        // `{` and three 1 MiB lines are held; the fourth would pass 4 MiB: what is held
        // becomes one event, and that line and the four after it go back to the caller.
        assert_eq!(events.len(), 1);
        assert!(events[0]
            .parse_error
            .as_ref()
            .is_some_and(|error| error.message.contains("longer than")));
        assert_eq!(events[0].raw_len(), 1 + 3 * (line.len() + 1));
        assert!(events[0].raw_len() <= MAX_DOCUMENT_BYTES);
        assert_eq!(handed_back, 5);
        assert!(!continuation.is_open());
    }

    #[test]
    fn array_element_ranges_handle_nesting_and_strings() {
        let text = br#"[ {"a":[1,2]}, "s,]", 3 ,{"b":{"c":"}"}} ]"#;
        let ranges = array_element_ranges(text);
        let parts: Vec<&[u8]> = ranges
            .iter()
            .filter_map(|range| text.get(range.clone()))
            .collect();
        assert_eq!(
            parts,
            [
                &br#"{"a":[1,2]}"#[..],
                br#""s,]""#,
                b"3",
                br#"{"b":{"c":"}"}}"#
            ]
        );
    }

    fn counted(byte: u8) -> bool {
        !byte.is_ascii_whitespace() && !matches!(byte, b'[' | b']' | b',')
    }

    #[test]
    fn array_of_scalars_keeps_each_element() {
        let events = push_all(&["[0, \"a\"]"], InputFormat::Auto);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].raw.as_deref(), Some("0"));
        assert_eq!(events[1].raw.as_deref(), Some("\"a\""));
        assert!(events
            .iter()
            .all(|event| event.format == Format::Unknown && event.parse_error.is_some()));
        let events = push_all(&["[]"], InputFormat::Auto);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].format, Format::Json);
    }

    proptest::proptest! {
        /// Whatever bytes arrive, split into whatever records: no panic, and every byte of
        /// every record offered ends up in some event's raw (nothing is dropped), except the
        /// whitespace between documents and the brackets and commas of a top-level array
        /// (each element keeps its own text).
        #[test]
        fn arbitrary_records_never_panic_or_vanish(
            records in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(b"{}[]\",:0a \n\xff".to_vec()), 0..24),
                1..8,
            )
        ) {
            let context = context();
            let mut continuation = Continuation::default();
            let mut events = Vec::new();
            let mut offered = 0;
            for (index, record) in records.iter().enumerate() {
                let sequence = index as u64 + 1;
                let first = record.iter().find(|byte| !byte.is_ascii_whitespace());
                if !continuation.is_open() && !matches!(first, Some(b'{') | Some(b'[')) {
                    continue;
                }
                offered += record.iter().filter(|byte| counted(**byte)).count();
                match continuation.push(record, sequence, InputFormat::Auto, &context) {
                    Pushed::Taken(done) => events.extend(done),
                    Pushed::Closed(done) => {
                        events.extend(done);
                        events.push(crate::parse::parse_record(record, InputFormat::Auto, &context, sequence));
                    }
                    Pushed::NotJson => events.push(crate::parse::parse_record(record, InputFormat::Auto, &context, sequence)),
                }
            }
            events.extend(continuation.finish(&context));
            let kept: usize = events
                .iter()
                .map(|event| event.raw_bytes().iter().filter(|byte| counted(**byte)).count())
                .sum();
            proptest::prop_assert!(kept >= offered, "kept {kept} of {offered} bytes");
        }
    }
}
