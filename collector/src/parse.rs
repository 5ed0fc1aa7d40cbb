//! From framed records to events: the parse context, the format choice (`auto` or fixed per
//! source), and the [`Decoder`] that keeps the little state some formats need across records
//! (auditd records grouped by serial number, JSON documents spread over several lines).
//!
//! Every record yields an event. When no parser accepts it, the event has `format: unknown`
//! and a [`ParseError`] with the reason and the byte offset; the raw bytes are always kept.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use xxhash_rust::xxh3::Xxh3;

use crate::error::CollectorError;
use crate::event::{
    CoreFields, CoreValue, Event, EventSource, Fields, Format, LogSource, ParseError,
};
use crate::format::{self, FormatError};
use crate::framing::{Frame, FrameKind};

/// The zone device times without one are read in, unless configured otherwise.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Ho_Chi_Minh;

/// What the parsers need to know about where and when a record was read.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// Zone for device times written without one.
    pub timezone: Tz,
    /// When the record was read; also gives the year of BSD syslog times.
    pub received_at: DateTime<Utc>,
    /// The agency the record belongs to (from the collector's identity, never the payload).
    /// An `Arc` because every event of the stream gets it.
    pub agency: Option<Arc<str>>,
    /// The collector that read the record (an `Arc`, like `agency`).
    pub collector: Option<Arc<str>>,
    /// Transport and address the record came from.
    pub source: EventSource,
}

impl ParseContext {
    /// A context for records read now, in the default zone, from `transport`.
    pub fn new(transport: &str) -> Self {
        ParseContext {
            timezone: DEFAULT_TIMEZONE,
            received_at: Utc::now(),
            agency: None,
            collector: None,
            source: EventSource {
                transport: transport_name(transport),
                address: None,
                sequence: None,
            },
        }
    }

    /// This context for records of `agency`'s (what a collector's identity gives its sources).
    #[must_use]
    pub fn with_agency(mut self, agency: &str) -> Self {
        self.agency = Some(agency.into());
        self
    }

    /// This context for records read by the collector `collector`.
    #[must_use]
    pub fn with_collector(mut self, collector: &str) -> Self {
        self.collector = Some(collector.into());
        self
    }

    /// This context for records from the peer or file at `address`.
    #[must_use]
    pub fn with_address(mut self, address: &str) -> Self {
        self.source.address = Some(address.into());
        self
    }

    /// Parses an IANA zone name such as `Asia/Ho_Chi_Minh` or `UTC`.
    pub fn parse_timezone(name: &str) -> Result<Tz, CollectorError> {
        name.parse::<Tz>()
            .map_err(|_| CollectorError::UnknownTimeZone {
                name: name.to_owned(),
            })
    }
}

/// The transport name as a `Cow`: borrowed for the names sources use, so building an event
/// (which clones the context's source) does not allocate a copy of it every time.
fn transport_name(transport: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &["file", "stdin", "udp", "tcp", "tls", "http", "evtx"];
    match KNOWN.iter().find(|known| **known == transport) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(transport.to_owned()),
    }
}

/// Which parser to use for a source: `auto` guesses per record, the others are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Guess per record.
    Auto,
    /// BSD syslog (and CEF/LEEF/kv inside it).
    Rfc3164,
    /// IETF syslog (and CEF/LEEF/kv inside it).
    Rfc5424,
    /// CEF, bare or after a syslog header.
    Cef,
    /// LEEF 1.0/2.0, bare or after a syslog header.
    Leef,
    /// key=value, and pfSense/OPNsense filterlog CSV.
    Kv,
    /// JSON / NDJSON documents.
    Json,
    /// Windows events as JSON.
    Winevent,
    /// EVTX files.
    Evtx,
    /// auditd records.
    Auditd,
    /// Apache/nginx access logs.
    Access,
}

impl InputFormat {
    /// The names `--format` accepts.
    pub const NAMES: &'static str =
        "auto, rfc3164, rfc5424, cef, leef, kv, json, winevent, evtx, auditd, access";
}

impl FromStr for InputFormat {
    type Err = CollectorError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Ok(match name {
            "auto" => InputFormat::Auto,
            "rfc3164" | "bsd" => InputFormat::Rfc3164,
            "rfc5424" => InputFormat::Rfc5424,
            "cef" => InputFormat::Cef,
            "leef" => InputFormat::Leef,
            "kv" => InputFormat::Kv,
            "json" | "ndjson" => InputFormat::Json,
            "winevent" => InputFormat::Winevent,
            "evtx" => InputFormat::Evtx,
            "auditd" => InputFormat::Auditd,
            "access" | "access_log" => InputFormat::Access,
            _ => {
                return Err(CollectorError::UnknownFormat {
                    name: name.to_owned(),
                    expected: InputFormat::NAMES,
                })
            }
        })
    }
}

/// A fresh event for `record`: id, times, identity and raw bytes set, `format: unknown`.
pub fn new_event(record: &[u8], context: &ParseContext, sequence: u64) -> Event {
    new_event_from(record, std::str::from_utf8(record).ok(), context, sequence)
}

/// [`new_event`] for a record whose UTF-8 check was already made: `utf8` is the record as text
/// when it is valid UTF-8. `parse_record` needs the text too, and validating twice showed in
/// profiles.
pub(crate) fn new_event_from(
    record: &[u8],
    utf8: Option<&str>,
    context: &ParseContext,
    sequence: u64,
) -> Event {
    new_event_with_room(record, utf8, context, sequence, FIRST_ENTRIES)
}

/// Entries a fresh event's `fields` has room for when its format tells nothing more: most
/// records carry a handful of fields.
const FIRST_ENTRIES: usize = 8;

/// [`new_event_from`] with room for `entries` fields.
fn new_event_with_room(
    record: &[u8],
    utf8: Option<&str>,
    context: &ParseContext,
    sequence: u64,
    entries: usize,
) -> Event {
    Event {
        id: event_id(record, context, sequence),
        timestamp: context.received_at,
        received_at: context.received_at,
        agency: context.agency.clone(),
        collector: context.collector.clone(),
        source: EventSource {
            sequence: Some(sequence),
            ..context.source.clone()
        },
        format: Format::Unknown,
        logsource: LogSource::default(),
        core: CoreFields::default(),
        // One allocation up front instead of several regrowths while the parser fills them.
        fields: Fields::with_capacity(entries),
        parse_error: None,
        // As `Event::set_raw` stores it: text when valid UTF-8, base64 otherwise.
        raw: utf8.map(str::to_owned),
        raw_base64: match utf8 {
            Some(_) => None,
            None => Some(base64::engine::general_purpose::STANDARD.encode(record)),
        },
    }
}

/// Makes `event` what [`new_event_with_room`] would return, keeping the memory its id, raw
/// text and fields already hold (a decoder's events are used again record after record:
/// [`Decoder::recycle`]). Every field is named in the pattern below, so a field added to
/// [`Event`] does not compile until it is reset here too: nothing of the previous record may
/// reach the next one.
fn renew_event(
    event: &mut Event,
    record: &[u8],
    utf8: Option<&str>,
    context: &ParseContext,
    sequence: u64,
    entries: usize,
) {
    let Event {
        id,
        timestamp,
        received_at,
        agency,
        collector,
        source,
        format,
        logsource,
        core,
        fields,
        parse_error,
        raw,
        raw_base64,
    } = event;
    id.clear();
    write_event_id(record, context, sequence, id);
    *timestamp = context.received_at;
    *received_at = context.received_at;
    agency.clone_from(&context.agency);
    collector.clone_from(&context.collector);
    source.clone_from(&context.source);
    source.sequence = Some(sequence);
    *format = Format::Unknown;
    *logsource = LogSource::default();
    *core = CoreFields::default();
    fields.clear();
    fields.reserve(entries);
    *parse_error = None;
    match utf8 {
        Some(text) => {
            let kept = raw.get_or_insert_with(String::new);
            kept.clear();
            kept.push_str(text);
            *raw_base64 = None;
        }
        None => {
            *raw = None;
            *raw_base64 = Some(base64::engine::general_purpose::STANDARD.encode(record));
        }
    }
}

/// The stable event id: xxh3-128 over collector, source address, sequence and raw bytes. Not a
/// security boundary (batches are HMAC-signed); its job is to make a retried record collide with
/// its first copy and nothing else.
fn event_id(record: &[u8], context: &ParseContext, sequence: u64) -> String {
    let mut id = String::with_capacity(32);
    write_event_id(record, context, sequence, &mut id);
    id
}

/// Appends [`event_id`] to `id`.
fn write_event_id(record: &[u8], context: &ParseContext, sequence: u64, id: &mut String) {
    // The hashed bytes are put side by side in a per-thread scratch buffer and hashed in one
    // call: the same digest as feeding the pieces to a streaming `Xxh3` (a test holds it to
    // that, since ids must not change between versions: dedup relies on them), without
    // setting up the streaming state's 500-odd bytes per record.
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let digest = SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            return id_digest_streaming(record, context, sequence);
        };
        scratch.clear();
        id_pieces(record, context, sequence, |piece| {
            scratch.extend_from_slice(piece)
        });
        let digest = xxhash_rust::xxh3::xxh3_128(&scratch);
        // A huge record should not pin its size in every thread's scratch.
        if scratch.capacity() > 64 * 1024 {
            *scratch = Vec::new();
        }
        digest
    });
    push_hex128(digest, id);
}

/// The bytes an event id hashes, in order: collector, 0, source address, 0, sequence, raw.
fn id_pieces(record: &[u8], context: &ParseContext, sequence: u64, mut piece: impl FnMut(&[u8])) {
    piece(context.collector.as_deref().unwrap_or("").as_bytes());
    piece(&[0]);
    piece(context.source.address.as_deref().unwrap_or("").as_bytes());
    piece(&[0]);
    piece(&sequence.to_le_bytes());
    piece(record);
}

/// The id digest fed piece by piece (what ids always were; the reference for the test).
fn id_digest_streaming(record: &[u8], context: &ParseContext, sequence: u64) -> u128 {
    let mut hasher = Xxh3::new();
    id_pieces(record, context, sequence, |piece| hasher.update(piece));
    hasher.digest128()
}

/// 32 lower-case hex digits. `format!("{:032x}")` goes through the formatting machinery and
/// showed in profiles of the syslog hot path. (Also how the compact record gives a 16-byte id
/// back as text.)
pub(crate) fn hex128(value: u128) -> String {
    let mut text = String::with_capacity(32);
    push_hex128(value, &mut text);
    text
}

/// Appends [`hex128`]'s digits to `text`.
#[inline]
pub(crate) fn push_hex128(value: u128, text: &mut String) {
    let digits = hex128_digits(value);
    // Only ASCII hex digits were written, so this never falls back. Validating 32 ASCII bytes
    // on the stack and copying them once is cheaper than collecting chars (profiled).
    text.push_str(std::str::from_utf8(&digits).unwrap_or_default());
}

/// The 32 lower-case hex digits of `value`, most significant first: two digits per byte
/// from a 256-entry table (16 lookups instead of 32 shifts and masks; this runs for every
/// record, and the record encoder checks ids with it). Spreading eight nibbles over a 64-bit
/// word and adding the digits' offsets word by word was tried: no fewer instructions.
#[inline]
pub(crate) fn hex128_digits(value: u128) -> [u8; 32] {
    static PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut pairs = [[0u8; 2]; 256];
        let mut byte = 0;
        while byte < 256 {
            pairs[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0xf]];
            byte += 1;
        }
        pairs
    };
    let mut digits = [0u8; 32];
    for (pair, byte) in digits.chunks_exact_mut(2).zip(value.to_be_bytes()) {
        pair.copy_from_slice(&PAIRS[usize::from(byte)]);
    }
    digits
}

/// The id of the `part`-th event cut from one record (elements of a JSON array, several
/// documents on one line). Identical elements would otherwise share the record-level id and be
/// collapsed as duplicates downstream.
pub(crate) fn part_id(record_id: &str, part: usize) -> String {
    let mut hasher = Xxh3::new();
    hasher.update(record_id.as_bytes());
    hasher.update(&(part as u64).to_le_bytes());
    hex128(hasher.digest128())
}

/// Record text for the parsers: the bytes themselves when they are UTF-8; otherwise the bytes
/// read as Windows-1258, the code page legacy Vietnamese devices still use (it also maps the
/// Latin-1 letters), so "Phòng" stays readable instead of turning into U+FFFD. Every byte maps
/// to a character, and the event keeps the exact bytes in `raw_base64`. A leading byte-order
/// mark is skipped.
fn record_text(record: &[u8]) -> Cow<'_, str> {
    record_text_from(record, std::str::from_utf8(record).ok())
}

/// [`record_text`] when the whole record's UTF-8 check was already made (`utf8`). A BOM is one
/// whole character, so the record without it is valid UTF-8 exactly when the record is.
fn record_text_from<'a>(record: &'a [u8], utf8: Option<&'a str>) -> Cow<'a, str> {
    match utf8 {
        Some(text) => Cow::Borrowed(text.strip_prefix('\u{feff}').unwrap_or(text)),
        None => {
            let record = record.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(record);
            encoding_rs::WINDOWS_1258
                .decode_without_bom_handling(record)
                .0
        }
    }
}

/// Parses one record on its own (no grouping across records): the function the collector's
/// sources, the benches and the property tests call.
pub fn parse_record(
    record: &[u8],
    input_format: InputFormat,
    context: &ParseContext,
    sequence: u64,
) -> Event {
    // One UTF-8 check serves both the raw copy and the parsers' text.
    let utf8 = std::str::from_utf8(record).ok();
    let text = record_text_from(record, utf8);
    let entries = fields_room(input_format, &text);
    let mut event = new_event_with_room(record, utf8, context, sequence, entries);
    parse_text(&text, input_format, context, &mut event);
    event
}

/// [`parse_record`] into `event`, which is first made a fresh event for `record`
/// ([`renew_event`]): the same result, with the memory `event` holds used again instead of
/// allocated.
pub fn parse_record_into(
    record: &[u8],
    input_format: InputFormat,
    context: &ParseContext,
    sequence: u64,
    event: &mut Event,
) {
    let utf8 = std::str::from_utf8(record).ok();
    let text = record_text_from(record, utf8);
    let entries = fields_room(input_format, &text);
    renew_event(event, record, utf8, context, sequence, entries);
    parse_text(&text, input_format, context, event);
}

/// Runs the parsers on a fresh event's text.
#[inline]
fn parse_text(text: &str, input_format: InputFormat, context: &ParseContext, event: &mut Event) {
    let attempt = match input_format {
        InputFormat::Auto => parse_auto(text, context, event),
        fixed => parse_fixed(fixed, text, context, event),
    };
    if let Err((format_name, error)) = attempt {
        mark_unknown(event, format_name, error);
    }
    keep_time_within_event_years(event);
}

/// The flag on events a decoder gave out before their document ended
/// ([`Decoder::release_held`]).
pub const HELD_RELEASED_FIELD: &str = "held_released_early";

/// The name of the field that keeps a device time outside the years an event takes.
pub const TIME_OUT_OF_RANGE_FIELD: &str = "timestamp_out_of_range";

/// Every parser reads device times through `timestamp`, which refuses times outside
/// [`timestamp::EVENT_YEARS`]; this holds any other path to it too (a parser added later, a
/// chrono reading with an explicit offset): such a time becomes the receive time, and the
/// time as read is kept in [`TIME_OUT_OF_RANGE_FIELD`]. Detection and storage add windows to
/// event times, which would panic at chrono's ends.
pub(crate) fn keep_time_within_event_years(event: &mut Event) {
    if crate::timestamp::within_event_years(event.timestamp).is_some() {
        return;
    }
    let read = event.timestamp.to_rfc3339();
    event.timestamp = event.received_at;
    event
        .fields
        .insert(TIME_OUT_OF_RANGE_FIELD.into(), read.into());
}

/// Room for the fields of a record of `input_format`: the formats that are pairs (bare
/// key=value, CEF, LEEF) get room for about one pair per 10 bytes up front, as the pairs
/// reader would reserve it anyway (an entry block grown later is allocated twice). BSD syslog
/// keeps the default: only some of its messages are pairs, and room for them on every line
/// cost the sshd line more than it saved the netfilter one (+123 against −213 instructions;
/// the pairs reader grows the block when they come, `Fields::reserve`).
fn fields_room(input_format: InputFormat, text: &str) -> usize {
    /// The header's entries (syslog priority, facility, timestamp, procid, a kernel time or
    /// log prefix) and CEF's or LEEF's header fields are covered by this many.
    const HEADER_ENTRIES: usize = 8;
    /// At most this many pairs are made room for ahead, however long the record.
    const MAX_PAIRS_AHEAD: usize = 56;
    let may_hold_pairs = matches!(
        input_format,
        InputFormat::Kv | InputFormat::Cef | InputFormat::Leef
    );
    if !may_hold_pairs {
        return FIRST_ENTRIES;
    }
    HEADER_ENTRIES + (text.len() / 10).min(MAX_PAIRS_AHEAD)
}

/// Fields that describe how a record arrived rather than what it says: an event that loses
/// its parsed values (`record::encode_within_ceiling`) or is cut in pieces
/// ([`into_pieces`]) keeps them.
const RECORD_FLAGS: [&str; 9] = [
    "frame_truncated",
    "frame_missing_bytes",
    "datagram_truncated",
    "datagram_kept_bytes",
    "fragment_index",
    "fragment_last",
    "audit_group_late",
    "audit_group_continued",
    "audit_group_truncated",
];

/// The [`RECORD_FLAGS`] `fields` holds, with their values.
pub(crate) fn record_flags(fields: &Fields) -> Vec<(&'static str, serde_json::Value)> {
    RECORD_FLAGS
        .iter()
        .filter_map(|name| Some((*name, fields.get(name)?.clone())))
        .collect()
}

/// `event`, whose raw record is longer than `max` bytes, as events of its pieces of at most
/// `max` bytes each (cut before a UTF-8 character, so that text stays text): `format: unknown`,
/// raw bytes exact, `fragment_index`/`fragment_last` as the stream sources' pieces have, the
/// parse error saying which piece of how many, and the record's flags on the last. Their ids
/// come from the event's and the piece's number, so the same record gives the same pieces.
/// What the sources do with an event too large for any batch the server accepts (an NDJSON
/// line posted to the HTTP intake, an audit group of many long records).
pub(crate) fn into_pieces(event: &Event, max: usize) -> Vec<Event> {
    let raw = event.raw_bytes();
    let max = max.max(4);
    if raw.len() <= max {
        return vec![event.clone()];
    }
    let mut ends = Vec::new();
    let mut start = 0;
    while start < raw.len() {
        let end = piece_end(&raw, start, max);
        ends.push((start, end));
        start = end;
    }
    let count = ends.len();
    // A record that arrived in pieces already is never this long (frames are shorter).
    let flags: Vec<_> = record_flags(&event.fields)
        .into_iter()
        .filter(|(name, _)| !name.starts_with("fragment_"))
        .collect();
    ends.iter()
        .enumerate()
        .map(|(index, &(start, end))| {
            let number = index + 1;
            let mut piece = Event {
                id: piece_id(&event.id, number),
                timestamp: event.received_at,
                received_at: event.received_at,
                agency: event.agency.clone(),
                collector: event.collector.clone(),
                source: event.source.clone(),
                format: Format::Unknown,
                logsource: LogSource::default(),
                core: CoreFields::default(),
                fields: Fields::with_capacity(2),
                parse_error: None,
                raw: None,
                raw_base64: None,
            };
            piece.set_raw(raw.get(start..end).unwrap_or_default());
            mark_piece(
                &mut piece,
                number as u64,
                number == count,
                format!(
                    "record of {} bytes, longer than the {max} one event may carry; kept raw in pieces, this is piece {number} of {count}",
                    raw.len()
                ),
                start,
            );
            if number == count {
                for (name, value) in &flags {
                    piece.fields.insert((*name).into(), value.clone());
                }
            }
            piece
        })
        .collect()
}

/// Marks `event` as piece `number` of a record kept in pieces, the same way wherever the
/// record was cut (a stream's frames, an event too long for a batch): `fragment_index`,
/// `fragment_last`, and `message` as its `framing` parse error at byte `offset`.
fn mark_piece(event: &mut Event, number: u64, last: bool, message: String, offset: usize) {
    event.fields.insert("fragment_index".into(), number.into());
    event.fields.insert("fragment_last".into(), last.into());
    event.parse_error = Some(ParseError {
        format: "framing".into(),
        message,
        offset,
    });
}

/// Where the piece of `raw` from `start` ends: `max` bytes on, or earlier at the first byte of
/// a UTF-8 character (backing off at most 3 bytes, and never to `start`).
pub(crate) fn piece_end(raw: &[u8], start: usize, max: usize) -> usize {
    let end = start.saturating_add(max).min(raw.len());
    if end == raw.len() {
        return end;
    }
    (end.saturating_sub(3).max(start + 1)..=end)
        .rev()
        .find(|&cut| raw.get(cut).is_some_and(|byte| byte & 0xC0 != 0x80))
        .unwrap_or(end)
}

fn piece_id(event_id: &str, number: usize) -> String {
    let mut digest = Xxh3::new();
    digest.update(event_id.as_bytes());
    digest.update(b"/piece/");
    digest.update(&(number as u64).to_le_bytes());
    hex128(digest.digest128())
}

/// Turns a half-filled event into `format: unknown` with the reason: what a parser wrote before
/// it failed is dropped, the raw bytes stay. Every format module uses this one.
pub(crate) fn mark_unknown(event: &mut Event, format_name: &str, error: FormatError) {
    reset(event);
    event.parse_error = Some(ParseError {
        format: format_name.to_owned(),
        message: error.message.into_owned(),
        offset: error.offset,
    });
}

type Attempt = Result<(), (&'static str, FormatError)>;

fn parse_fixed(
    input_format: InputFormat,
    text: &str,
    context: &ParseContext,
    event: &mut Event,
) -> Attempt {
    let (name, result) = match input_format {
        InputFormat::Rfc3164 => ("rfc3164", format::rfc3164::parse(text, context, event)),
        InputFormat::Rfc5424 => ("rfc5424", format::rfc5424::parse(text, context, event)),
        InputFormat::Cef => (
            "cef",
            format::cef::parse_with_optional_syslog(text, context, event),
        ),
        InputFormat::Leef => (
            "leef",
            format::leef::parse_with_optional_syslog(text, context, event),
        ),
        InputFormat::Kv => ("kv", format::kv::parse(text, context, event)),
        InputFormat::Json => ("json", format::json::parse(text, context, event)),
        InputFormat::Winevent => ("winevent", format::winevent::parse(text, context, event)),
        InputFormat::Auditd => ("auditd", format::auditd::parse_single(text, context, event)),
        InputFormat::Access => ("access", format::access_log::parse(text, context, event)),
        InputFormat::Evtx => (
            "evtx",
            Err(FormatError::new(
                "EVTX is a binary file format, not a line format; give the file itself",
                0,
            )),
        ),
        InputFormat::Auto => return parse_auto(text, context, event),
    };
    result.map_err(|error| (name, error))
}

/// Guesses the format from the record's first bytes, then falls back through the lenient
/// parsers. The error reported is the one from the most likely format.
fn parse_auto(text: &str, context: &ParseContext, event: &mut Event) -> Attempt {
    let trimmed = text.trim_start_matches([' ', '\t']);
    let first = trimmed.as_bytes().first().copied();
    let candidate = match first {
        None => return Err(("auto", FormatError::new("empty record", 0))),
        Some(b'<') if trimmed.starts_with("<Event") => {
            return Err((
                "winevent",
                FormatError::new(
                    "Windows events in XML are not parsed; send them as JSON (Winlogbeat, NXLog, Fluent Bit) or as EVTX files",
                    0,
                ),
            ))
        }
        Some(b'<') => {
            // audispd and rsyslog forward audit records behind a syslog header.
            if format::auditd::looks_like(trimmed) {
                InputFormat::Auditd
            } else if format::rfc5424::looks_like(trimmed) {
                InputFormat::Rfc5424
            } else {
                InputFormat::Rfc3164
            }
        }
        // json::parse hands Windows-shaped documents to winevent itself.
        Some(b'{') | Some(b'[') => InputFormat::Json,
        _ if trimmed.starts_with("CEF:") => InputFormat::Cef,
        _ if trimmed.starts_with("LEEF:") => InputFormat::Leef,
        _ if format::auditd::looks_like(trimmed) => InputFormat::Auditd,
        _ if format::access_log::looks_like(trimmed) => InputFormat::Access,
        _ if format::rfc3164::looks_like_headerless(trimmed) => InputFormat::Rfc3164,
        _ if format::kv::looks_like(trimmed) => InputFormat::Kv,
        _ => {
            return Err((
                "auto",
                FormatError::new(
                    "no parser recognised the record (not syslog, CEF, LEEF, JSON, auditd, access log or key=value)",
                    0,
                ),
            ))
        }
    };
    let first_attempt = parse_fixed(candidate, trimmed, context, event);
    let Err(first_error) = first_attempt else {
        return Ok(());
    };
    // A record that looked like a syslog header but did not parse strictly as RFC 5424 gets the
    // lenient RFC 5424 reading, then the BSD parser, which takes almost anything after a PRI.
    if candidate == InputFormat::Rfc5424 {
        reset(event);
        if format::rfc5424::parse_lenient(trimmed, context, event).is_ok() {
            return Ok(());
        }
        reset(event);
        if parse_fixed(InputFormat::Rfc3164, trimmed, context, event).is_ok() {
            return Ok(());
        }
    }
    Err(first_error)
}

/// Flags `event` as holding a record its stream cut short: `missing` announced bytes never came.
/// The same two fields on every path (network sources, `citysoc parse` and `import`).
pub(crate) fn flag_cut(event: &mut Event, missing: u64) {
    event.fields.insert("frame_truncated".into(), true.into());
    event
        .fields
        .insert("frame_missing_bytes".into(), missing.into());
}

fn reset(event: &mut Event) {
    event.format = Format::Unknown;
    event.logsource = LogSource::default();
    event.core = CoreFields::default();
    event.fields.clear();
    event.timestamp = event.received_at;
}

/// Decodes a stream of framed records into events, keeping the state that spans records.
#[derive(Debug)]
pub struct Decoder {
    input_format: InputFormat,
    context: ParseContext,
    next_sequence: u64,
    audit_grouper: format::auditd::AuditGrouper,
    json_continuation: format::json::Continuation,
    stats: DecoderStats,
    fragment_index: u64,
    /// Bytes missing from the cut record the open JSON document holds (see
    /// [`Decoder::decode_cut`]); flagged on the document's event when it comes out.
    json_cut: u64,
    /// Events handed back after they were written ([`Decoder::recycle`]), which later records
    /// are parsed into: their id, raw text and fields keep their memory, so a record costs
    /// fewer allocations and lands in memory still in the cache.
    spare: Vec<Event>,
    /// True while a record is parsed into the last event of `out` (a spare pushed there
    /// first): should the parser panic, [`Decoder::guard`] takes that half-made event back out.
    parsing_in_place: bool,
}

/// The most events a decoder keeps for reuse: a source hands back a few at a time
/// (`sources::ENCODE_EVERY`).
pub const MAX_SPARE_EVENTS: usize = 32;

/// An event handed back is kept for reuse only when its raw text, its fields' blocks, its
/// core fields' text and its parse error hold at most this many bytes together: a spare event keeps its memory while it waits, and
/// a decoder's spares must stay small whatever records passed through it (a 64 KiB line
/// would otherwise leave its buffers in each of them).
pub const MAX_SPARE_EVENT_BYTES: usize = 16 << 10;

/// True when `event` is worth keeping for reuse: its fields own no memory beyond their blocks
/// (text spans, numbers, known names: what the syslog and key=value readers store; a JSON
/// document's values or an audit group's owned names are not counted by size, and such
/// events are not the ones later records are parsed into anyway), and what it holds is at most
/// [`MAX_SPARE_EVENT_BYTES`].
fn worth_reusing(event: &Event) -> bool {
    if !event.fields.owns_nothing() {
        return false;
    }
    let raw = event.raw.as_ref().map_or(0, String::capacity);
    let base64 = event.raw_base64.as_ref().map_or(0, String::capacity);
    let mut core = 0;
    event.core.visit(|_, value| {
        if let CoreValue::Text(text) = value {
            core += text.len();
        }
    });
    let error = event
        .parse_error
        .as_ref()
        .map_or(0, |error| error.message.len());
    raw + base64 + event.fields.block_bytes() + core + error <= MAX_SPARE_EVENT_BYTES
}

/// What a decoder has seen, for summaries and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Framed records given to [`Decoder::decode`].
    pub records: u64,
    /// Blank records skipped in `auto` mode (the only records that yield no event).
    pub blank_records: u64,
    /// Events no parser understood (`format: unknown`), among those from single records.
    pub unknown_events: u64,
    /// Pieces of records longer than the maximum frame size (each kept as an unknown event).
    pub fragments: u64,
    /// What the auditd grouper saw (its unparsed records are unknown events too).
    pub audit: format::auditd::AuditGrouperStats,
    /// Records their stream cut short (given to [`Decoder::decode_cut`]): their events are
    /// flagged `frame_truncated`.
    pub truncated_records: u64,
    /// Records on which a parser panicked (a bug): each is kept raw as an unknown event
    /// ([`Decoder::decode`]).
    pub parser_failures: u64,
}

/// Records on which a parser panicked, in this process (`/metrics`:
/// `citysoc_collector_parser_failures_total`).
static PARSER_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Records on which a parser panicked since the process started (see [`Decoder::decode`]).
pub fn parser_failures() -> u64 {
    PARSER_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// [`parse_record`] for callers without a [`Decoder`] (UDP datagrams): should a parser panic
/// (a bug), the record becomes an unknown event saying so, kept raw and counted
/// ([`parser_failures`]), as [`Decoder::decode`] does.
pub fn parse_record_guarded(
    record: &[u8],
    input_format: InputFormat,
    context: &ParseContext,
    sequence: u64,
) -> Event {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_record(record, input_format, context, sequence)
    }))
    .unwrap_or_else(|payload| {
        PARSER_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        failed_event(record, context, sequence, panic_message(payload.as_ref()))
    })
}

/// The unknown event that keeps `raw` after a parser panicked on it (or on bytes held with
/// it) with `message`.
fn failed_event(raw: &[u8], context: &ParseContext, sequence: u64, message: &str) -> Event {
    let mut event = new_event(raw, context, sequence);
    mark_unknown(
        &mut event,
        "citysoc",
        FormatError::new(
            format!(
                "a parser stopped on this record or on one held with it ({message}); kept raw. A bug in citysoc: please report it with this record"
            ),
            0,
        ),
    );
    event
}

/// The message a panic carried, when it is text.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

impl Decoder {
    /// A decoder for one stream (one file, one connection).
    pub fn new(input_format: InputFormat, context: ParseContext) -> Self {
        Decoder {
            input_format,
            context,
            next_sequence: 1,
            audit_grouper: format::auditd::AuditGrouper::default(),
            json_continuation: format::json::Continuation::default(),
            stats: DecoderStats::default(),
            fragment_index: 0,
            json_cut: 0,
            spare: Vec::new(),
            parsing_in_place: false,
        }
    }

    /// Holds JSON documents spread over several records to at most `max_document` bytes
    /// (at most `json::MAX_DOCUMENT_BYTES`, the default): a longer one is kept raw as one
    /// unknown event. Call before the first record.
    pub fn with_max_document(mut self, max_document: usize) -> Self {
        self.json_continuation = format::json::Continuation::with_max_document(max_document);
        self
    }

    /// What the decoder has seen so far.
    pub fn stats(&self) -> DecoderStats {
        DecoderStats {
            audit: self.audit_grouper.stats(),
            ..self.stats
        }
    }

    /// The context records are parsed in.
    pub fn context(&self) -> &ParseContext {
        &self.context
    }

    /// Sets when the next records were read: a long-lived stream (a TCP connection, a tailed
    /// file) is read over hours, and each record's `received_at` (and the year of BSD times)
    /// must be the time of its own read.
    pub fn set_received_at(&mut self, received_at: DateTime<Utc>) {
        self.context.received_at = received_at;
    }

    /// The sequence number the next record gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Continues numbering at `sequence` (at least 1): a tailed file resumed from its checkpoint
    /// gives its records the numbers, and so the event ids, they had before the restart, so a
    /// record read twice after a crash is a duplicate the server drops, and a new record never
    /// collides with an old one.
    pub fn set_next_sequence(&mut self, sequence: u64) {
        self.next_sequence = sequence.max(1);
    }

    /// True while records given to [`Decoder::decode`] have not yet come out as events (an
    /// auditd event or a JSON document still open). A source that checkpoints its position
    /// only does so when this is false, or after [`Decoder::finish`].
    pub fn holds_records(&self) -> bool {
        self.json_continuation.is_open() || self.audit_grouper.has_open_events()
    }

    /// Decodes one framed record, appending the events it completes to `out` (none while an
    /// auditd event or a multi-line JSON document is still open, several when a record closes
    /// earlier groups).
    ///
    /// Parsers must not panic, and property tests hold them to it; should one still do on some
    /// record (a bug), that record becomes an unknown event saying so, kept raw and counted
    /// ([`DecoderStats::parser_failures`], [`parser_failures`]), and the stream goes on: one
    /// bad line must not stop a source, whose other records would then be lost.
    pub fn decode(&mut self, record: &[u8], out: &mut Vec<Event>) {
        self.decode_guarded(record, 0, out);
    }

    /// [`Decoder::decode_record`] with the panic guard [`Decoder::decode`] describes.
    fn decode_guarded(&mut self, record: &[u8], missing: u64, out: &mut Vec<Event>) {
        self.guard(record, missing, out, Decoder::decode_record);
    }

    /// Runs `decode` on `record`; a panic in it becomes the record's unknown event.
    fn guard(
        &mut self,
        record: &[u8],
        missing: u64,
        out: &mut Vec<Event>,
        decode: impl FnOnce(&mut Decoder, &[u8], u64, &mut Vec<Event>),
    ) {
        let sequence = self.next_sequence;
        // Unwind safety: after a panic, what the decoder holds (an open JSON document, open
        // audit events; each parser keeps its bytes held until its events are out) is given
        // out raw, unparsed, so no state a parser failed on is parsed again; the record too,
        // unless it is among those bytes or already out in an event. Events a parser had
        // made but not yet handed out are lost with the panic, their bytes are not.
        self.audit_grouper.begin_record();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decode(self, record, missing, out)
        }));
        let Err(payload) = outcome else {
            return;
        };
        if std::mem::take(&mut self.parsing_in_place) {
            // The half-made event of the record the parser stopped on: the record comes out
            // below as the unknown event that says so (as when a fresh event was being built
            // and was lost with the panic).
            out.pop();
        }
        self.stats.parser_failures += 1;
        PARSER_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.next_sequence = sequence.saturating_add(1);
        let message = panic_message(payload.as_ref()).to_owned();
        // Every record goes into an open JSON document, appended first; and the grouper says
        // whether it placed the record.
        let record_placed = self.json_continuation.is_open() || self.audit_grouper.placed_current();
        let mut held = Vec::new();
        if let Some((raw, first)) = self.json_continuation.take_held() {
            let cut = std::mem::take(&mut self.json_cut);
            held.push((raw, first, cut));
        }
        held.extend(self.audit_grouper.take_open());
        if !record_placed {
            held.push((record.to_vec(), sequence, missing));
        }
        for (raw, first, missing) in held {
            let mut event = failed_event(&raw, &self.context, first, &message);
            if missing > 0 {
                flag_cut(&mut event, missing);
            }
            out.push(event);
        }
    }

    /// [`Decoder::decode`] for a record its stream cut short: its octet count announced
    /// `missing` more bytes than came before the end. The event that holds the record is
    /// flagged `frame_truncated` with `frame_missing_bytes`, whenever it comes out: at once for
    /// a record of its own, when its group closes for an auditd record (the group's event),
    /// when its document closes for a line of a JSON document. Events of other records that
    /// come out at the same time are left alone.
    pub fn decode_cut(&mut self, record: &[u8], missing: u64, out: &mut Vec<Event>) {
        self.stats.truncated_records += 1;
        self.decode_guarded(record, missing.max(1), out);
    }

    /// Keeps one piece of a record as [`Decoder::decode_fragment`] does, for the last piece of
    /// a record its stream cut short (`missing` announced bytes never came): flagged as
    /// [`Decoder::decode_cut`] flags a whole record.
    pub fn decode_cut_fragment(
        &mut self,
        piece: &[u8],
        kind: FrameKind,
        missing: u64,
        out: &mut Vec<Event>,
    ) {
        self.stats.truncated_records += 1;
        let first = out.len();
        self.decode_fragment(piece, kind, out);
        out.get_mut(first..)
            .unwrap_or_default()
            .iter_mut()
            .for_each(|event| flag_cut(event, missing.max(1)));
    }

    /// Decodes one frame as the framer cut it: a whole record, a piece of one, or one its
    /// stream cut short (`missing` not 0, see [`Decoder::decode_cut`]). What every reader of
    /// framed bytes calls (the stream sources, `citysoc parse` and `import`), so a cut record
    /// is flagged the same way everywhere.
    pub fn decode_frame(&mut self, frame: &Frame<'_>, out: &mut Vec<Event>) {
        let missing = frame.missing as u64;
        match (frame.kind, missing) {
            (FrameKind::Complete, 0) => self.decode(frame.bytes, out),
            (FrameKind::Complete, _) => self.decode_cut(frame.bytes, missing, out),
            (kind, 0) => self.decode_fragment(frame.bytes, kind, out),
            (kind, _) => self.decode_cut_fragment(frame.bytes, kind, missing, out),
        }
    }

    /// `missing`: 0 for a whole record, else the bytes its stream never delivered.
    fn decode_record(&mut self, record: &[u8], missing: u64, out: &mut Vec<Event>) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.stats.records += 1;

        if self.json_continuation.is_open() || self.json_may_start(record) {
            // JSON interrupts an audit stream: what the grouper holds came first and goes out
            // first, so events keep the order of their records. (Flushed before the push, so
            // that what the push returns is out as soon as it exists: see `guard`.)
            self.audit_grouper.flush(&self.context, out);
            match self
                .json_continuation
                .push(record, sequence, self.input_format, &self.context)
            {
                format::json::Pushed::Taken(mut done) => {
                    if missing > 0 {
                        if self.json_continuation.is_open() {
                            // The record's end is in the open document: flagged when it
                            // closes.
                            self.json_cut = missing;
                        } else if let Some(last) = done.last_mut() {
                            // The record is the last bytes of what was pushed, so the last
                            // event holds its end.
                            flag_cut(last, missing);
                        }
                    }
                    self.flag_closed_json_document(&mut done);
                    out.extend(done);
                    return;
                }
                format::json::Pushed::Closed(mut done) => {
                    self.flag_closed_json_document(&mut done);
                    out.extend(done);
                }
                format::json::Pushed::NotJson => {}
            }
        }

        if matches!(self.input_format, InputFormat::Auto | InputFormat::Auditd) {
            let text = record_text(record);
            if self.input_format == InputFormat::Auditd || format::auditd::looks_like(&text) {
                self.audit_grouper
                    .push(record, &text, sequence, missing, &self.context, out);
                return;
            }
            // Any other record means the audit stream was interrupted: close what is open.
            self.audit_grouper.flush(&self.context, out);
        }
        if record.iter().all(u8::is_ascii_whitespace) && self.input_format == InputFormat::Auto {
            // Blank lines separate records in many files and carry nothing; they are counted,
            // not turned into events.
            self.stats.blank_records += 1;
            return;
        }
        // Parsed where it will be handed out: an event is several hundred bytes, and each
        // move of one showed in profiles.
        match self.spare.pop() {
            Some(spare) => {
                out.push(spare);
                if let Some(event) = out.last_mut() {
                    self.parsing_in_place = true;
                    parse_record_into(record, self.input_format, &self.context, sequence, event);
                    self.parsing_in_place = false;
                }
            }
            None => out.push(parse_record(
                record,
                self.input_format,
                &self.context,
                sequence,
            )),
        }
        let Some(event) = out.last_mut() else {
            return;
        };
        if event.format == Format::Unknown {
            self.stats.unknown_events += 1;
        }
        if missing > 0 {
            flag_cut(event, missing);
        }
    }

    /// `done` came out of the JSON continuation: when the document held a cut record, its
    /// event (the first of `done`: held bytes come out before anything after them) is flagged.
    fn flag_closed_json_document(&mut self, done: &mut [Event]) {
        if self.json_cut == 0 || self.json_continuation.is_open() {
            return;
        }
        if let Some(first) = done.first_mut() {
            flag_cut(first, self.json_cut);
            self.json_cut = 0;
        }
    }

    /// Keeps one piece of a record longer than the maximum frame size as its own event:
    /// `format: unknown`, raw bytes exact, the parse error saying which piece it is. Memory
    /// stays bounded whatever the sender does, and nothing is cut away.
    pub fn decode_fragment(&mut self, piece: &[u8], kind: FrameKind, out: &mut Vec<Event>) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.stats.records += 1;
        self.stats.fragments += 1;
        self.fragment_index += 1;
        let mut event = new_event(piece, &self.context, sequence);
        let last = kind == FrameKind::Final;
        mark_piece(
            &mut event,
            self.fragment_index,
            last,
            format!(
                "record longer than the maximum frame size; kept raw in pieces, this is piece {}{}",
                self.fragment_index,
                if last { " (the last)" } else { "" }
            ),
            0,
        );
        if kind != FrameKind::Fragment {
            self.fragment_index = 0;
        }
        out.push(event);
    }

    /// Takes back `events` (emptying it) once they are written, to parse later records into
    /// their memory; at most [`MAX_SPARE_EVENTS`] are kept, and only small ones
    /// ([`MAX_SPARE_EVENT_BYTES`]). What a record's event holds is all reset before it is used
    /// again, so nothing of one record reaches another.
    pub fn recycle(&mut self, events: &mut Vec<Event>) {
        if self.spare.len() + events.len() > MAX_SPARE_EVENTS {
            events.truncate(MAX_SPARE_EVENTS.saturating_sub(self.spare.len()));
        }
        events.retain(worth_reusing);
        // One copy of the block, not a move per event (an event is several hundred bytes).
        self.spare.append(events);
    }

    /// Bytes of records held in open documents (a JSON document, audit events) that have not
    /// come out as events yet.
    pub fn held_bytes(&self) -> usize {
        self.json_continuation
            .held_bytes()
            .saturating_add(self.audit_grouper.open_bytes())
    }

    /// Gives out what is held now, as [`Decoder::finish`] does, flagging those events
    /// [`HELD_RELEASED_FIELD`]: a source that holds too much for its connections together
    /// has them release it (`sources::stream`). The stream goes on: the rest of a JSON
    /// document released this way is read as records of its own (kept raw, as whatever they
    /// parse as, unflagged), the next records of an audit event start one flagged
    /// `audit_group_continued`.
    pub fn release_held(&mut self, out: &mut Vec<Event>) {
        let first = out.len();
        let mut held = self.json_continuation.release(&self.context);
        self.flag_closed_json_document(&mut held);
        out.extend(held);
        self.audit_grouper.release(&self.context, out);
        for event in out.get_mut(first..).unwrap_or_default() {
            event.fields.insert(HELD_RELEASED_FIELD.into(), true.into());
        }
    }

    /// Gives out what is held because nothing more has arrived for a while
    /// (`sources::QUIET_CLOSE`), and goes on: the open audit events close as complete (a
    /// record of one that comes later starts an event flagged `audit_group_late`), an open
    /// JSON document comes out as an unknown event saying it was not complete then (what
    /// follows it is read as records of its own). Without it, an audit event that has no `EOE`
    /// record (one of a single record, such as `CONFIG_CHANGE`) would wait for the sender's
    /// next event, which on a quiet host may be hours away.
    pub fn close_quiet(&mut self, out: &mut Vec<Event>) {
        let mut held = self.json_continuation.close_quiet(&self.context);
        self.flag_closed_json_document(&mut held);
        out.extend(held);
        self.audit_grouper.flush(&self.context, out);
    }

    /// Ends the stream: everything still open becomes an event.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        let mut held = self.json_continuation.finish(&self.context);
        self.flag_closed_json_document(&mut held);
        out.extend(held);
        self.audit_grouper.flush(&self.context, out);
    }

    fn json_may_start(&self, record: &[u8]) -> bool {
        matches!(
            self.input_format,
            InputFormat::Auto | InputFormat::Json | InputFormat::Winevent
        ) && matches!(
            record.iter().find(|byte| !byte.is_ascii_whitespace()),
            Some(b'{') | Some(b'[')
        )
    }
}

#[cfg(test)]
mod hex_tests {
    use super::{event_id, hex128, id_digest_streaming, ParseContext};

    #[test]
    fn event_ids_are_the_streaming_digest() {
        // Ids must not change between versions (dedup of re-sent records relies on them).
        let context = ParseContext::new("tcp")
            .with_collector("col-q1")
            .with_address("10.0.0.7:514");
        for length in [0, 1, 15, 16, 17, 128, 129, 240, 241, 1_000, 70_000] {
            let record: Vec<u8> = (0..length).map(|index| (index % 251) as u8).collect();
            assert_eq!(
                event_id(&record, &context, 42),
                hex128(id_digest_streaming(&record, &context, 42)),
                "{length}"
            );
        }
        // The id `citysoc parse` printed for this line before this code changed (no collector,
        // no address, first record).
        assert_eq!(
            event_id(
                b"<13>Nov 22 08:00:00 host app: hello",
                &ParseContext::new("stdin"),
                1
            ),
            "9d3ba4fae39423625ad5f2a2146f5f48"
        );
    }

    proptest::proptest! {
        #[test]
        fn hex128_matches_format_for_any_value(value in proptest::prelude::any::<u128>()) {
            proptest::prop_assert_eq!(hex128(value), format!("{value:032x}"));
        }
    }

    #[test]
    fn hex128_matches_format() {
        for value in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
        ] {
            assert_eq!(hex128(value), format!("{value:032x}"));
        }
    }
}

#[cfg(test)]
mod piece_tests {
    use super::{flag_cut, into_pieces, new_event, ParseContext};
    use crate::event::Format;

    fn event_of(raw: &[u8]) -> crate::Event {
        let context = ParseContext::new("http").with_collector("col-q1");
        new_event(raw, &context, 7)
    }

    #[test]
    fn pieces_hold_the_record_exactly_and_text_stays_text() {
        // "ệ" is three bytes: a cut every 10 bytes would land inside one.
        let text = "ệệệệệệệệệệ abc ệệệệ".repeat(5);
        let mut event = event_of(text.as_bytes());
        flag_cut(&mut event, 9);
        let pieces = into_pieces(&event, 10);
        let joined: String = pieces
            .iter()
            .map(|piece| piece.raw.clone().unwrap_or_default())
            .collect();
        assert_eq!(joined, text);
        assert!(pieces.iter().all(|piece| piece.raw_len() <= 10));
        let count = pieces.len();
        for (index, piece) in pieces.iter().enumerate() {
            assert_eq!(piece.format, Format::Unknown);
            assert_eq!(
                piece.fields.get("fragment_index"),
                Some(&(index as u64 + 1).into())
            );
            let last = index + 1 == count;
            assert_eq!(piece.fields.get("fragment_last"), Some(&last.into()));
            // The cut flags go with the end of the record.
            assert_eq!(piece.fields.get("frame_missing_bytes").is_some(), last);
            let error = piece
                .parse_error
                .as_ref()
                .map(|error| error.message.clone());
            assert!(error.is_some_and(
                |message| message.contains(&format!("piece {} of {count}", index + 1))
            ),);
            assert_eq!(piece.source, event.source);
            assert_eq!(piece.collector, event.collector);
        }
    }

    #[test]
    fn identical_pieces_get_distinct_ids_the_same_each_time() {
        let event = event_of(&[0xFF; 64]);
        let pieces = into_pieces(&event, 16);
        assert_eq!(pieces.len(), 4);
        let ids: std::collections::HashSet<&str> =
            pieces.iter().map(|piece| piece.id.as_str()).collect();
        assert_eq!(ids.len(), 4);
        assert!(!ids.contains(event.id.as_str()));
        let again: Vec<String> = into_pieces(&event, 16)
            .into_iter()
            .map(|piece| piece.id)
            .collect();
        assert_eq!(
            again,
            pieces
                .iter()
                .map(|piece| piece.id.clone())
                .collect::<Vec<_>>()
        );
        // Bytes that are not UTF-8 stay byte-exact, as base64.
        let bytes: Vec<u8> = pieces
            .iter()
            .flat_map(|piece| piece.raw_bytes().into_owned())
            .collect();
        assert_eq!(bytes, vec![0xFF; 64]);
        assert!(pieces.iter().all(|piece| piece.raw.is_none()));
    }
}

#[cfg(test)]
mod guard_tests {
    use super::{
        keep_time_within_event_years, new_event, parser_failures, Decoder, InputFormat,
        ParseContext, TIME_OUT_OF_RANGE_FIELD,
    };
    use crate::event::Format;
    use chrono::{DateTime, Utc};

    /// A parser that panics (none should; this stands for the bug the guard is for): the
    /// record comes out as an unknown event saying so, kept raw, counted, numbered as it would
    /// have been, and the records after it decode as usual.
    #[test]
    fn a_panicking_parser_leaves_the_record_raw_and_the_stream_going() {
        let mut decoder = Decoder::new(InputFormat::Auto, ParseContext::new("tcp"));
        let mut events = Vec::new();
        decoder.decode(b"<13>Nov 22 10:00:00 host app: first", &mut events);
        let failures_before = parser_failures();
        decoder.guard(
            b"bad record",
            5,
            &mut events,
            |decoder, record, missing, out| {
                decoder.decode_record(record, missing, out);
                panic!("a parser bug");
            },
        );
        decoder.decode(b"<13>Nov 22 10:00:01 host app: third", &mut events);

        assert_eq!(decoder.stats().parser_failures, 1);
        assert!(parser_failures() > failures_before);
        let sequences: Vec<Option<u64>> =
            events.iter().map(|event| event.source.sequence).collect();
        // The record's own event came out before the panic, then the guard's: same number,
        // same id, so the server keeps one.
        assert_eq!(sequences, [Some(1), Some(2), Some(2), Some(3)]);
        assert_eq!(events[1].id, events[2].id);
        let failed = &events[2];
        assert_eq!(failed.format, Format::Unknown);
        assert_eq!(failed.raw.as_deref(), Some("bad record"));
        let error = failed
            .parse_error
            .as_ref()
            .map(|error| error.message.as_str());
        assert!(
            error.is_some_and(
                |message| message.contains("a parser bug") && message.contains("kept raw")
            ),
            "{error:?}"
        );
        assert_eq!(
            failed.fields.get("frame_missing_bytes"),
            Some(&serde_json::Value::from(5))
        );
        assert_eq!(events[3].format, Format::Rfc3164);
    }

    /// A panic while a JSON document is open: the document's held lines (the record among
    /// them) come out raw as one event, nothing twice, and the stream goes on.
    #[test]
    fn a_panic_with_a_json_document_open_keeps_its_lines_raw() {
        let mut decoder = Decoder::new(InputFormat::Auto, ParseContext::new("tcp"));
        let mut events = Vec::new();
        decoder.decode(b"{\"a\":", &mut events);
        assert!(events.is_empty() && decoder.holds_records());
        decoder.guard(b"[1,", 0, &mut events, |decoder, record, missing, out| {
            decoder.decode_record(record, missing, out);
            panic!("a JSON bug");
        });
        assert!(!decoder.holds_records());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].raw.as_deref(), Some("{\"a\":\n[1,"));
        assert_eq!(events[0].source.sequence, Some(1));
        assert_eq!(events[0].format, Format::Unknown);
        decoder.decode(b"{\"c\": 3}", &mut events);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].format, Format::Json);
    }

    /// A panic while audit events are open: their records come out raw, the record of the
    /// failed call among them and not again on its own.
    #[test]
    fn a_panic_with_audit_events_open_keeps_their_records_raw() {
        let mut decoder = Decoder::new(InputFormat::Auto, ParseContext::new("tcp"));
        let mut events = Vec::new();
        let first = b"type=SYSCALL msg=audit(1.0:10): arch=c000003e syscall=59 success=yes";
        let second = b"type=EXECVE msg=audit(1.0:10): argc=1 a0=\"ls\"";
        let other = b"type=SYSCALL msg=audit(1.0:11): arch=c000003e syscall=2 success=no";
        decoder.decode(first, &mut events);
        decoder.decode(other, &mut events);
        decoder.guard(second, 0, &mut events, |decoder, record, missing, out| {
            decoder.decode_record(record, missing, out);
            panic!("an auditd bug");
        });
        assert!(!decoder.holds_records());
        let raws: Vec<&str> = events
            .iter()
            .filter_map(|event| event.raw.as_deref())
            .collect();
        let joined = |lines: &[&[u8]]| {
            lines
                .iter()
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(raws, [joined(&[first, second]), joined(&[other])]);
        assert!(events.iter().all(|event| event.format == Format::Unknown));
        // A record the grouper never saw is kept on its own.
        let mut more = Vec::new();
        decoder.guard(b"plain line", 0, &mut more, |_, _, _, _| {
            panic!("elsewhere")
        });
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].raw.as_deref(), Some("plain line"));
    }

    /// Given out early: an open JSON document says so (not "the end of the stream"), an
    /// open audit event's next records continue it (not late), and only those events are
    /// flagged.
    #[test]
    fn held_documents_given_out_early_say_so() {
        let mut decoder = Decoder::new(InputFormat::Auto, ParseContext::new("tcp"));
        let mut events = Vec::new();
        decoder.decode(b"{\"a\":", &mut events);
        assert!(decoder.held_bytes() > 0);
        decoder.release_held(&mut events);
        assert_eq!(decoder.held_bytes(), 0);
        let message = events[0]
            .parse_error
            .as_ref()
            .map(|error| error.message.clone());
        assert!(
            message
                .as_deref()
                .is_some_and(|message| message.contains("given out early")),
            "{message:?}"
        );
        let audit = |kind: &str| {
            format!("type={kind} msg=audit(1.0:10): arch=c000003e syscall=59 success=yes")
        };
        decoder.decode(audit("SYSCALL").as_bytes(), &mut events);
        decoder.release_held(&mut events);
        decoder.decode(audit("EXECVE").as_bytes(), &mut events);
        decoder.finish(&mut events);
        assert_eq!(events.len(), 3);
        assert!(events[..2]
            .iter()
            .all(|event| event.fields.get(super::HELD_RELEASED_FIELD).is_some()));
        assert!(events[2].fields.get(super::HELD_RELEASED_FIELD).is_none());
        assert!(events[2].fields.get("audit_group_continued").is_some());
        assert!(events[2].fields.get("audit_group_late").is_none());
    }

    /// A time outside the years an event takes, however a parser came by it, becomes the
    /// receive time, and the time read is kept.
    #[test]
    fn a_time_beyond_the_event_years_becomes_the_receive_time() {
        let mut event = new_event(b"x", &ParseContext::new("tcp"), 1);
        event.timestamp = DateTime::<Utc>::MIN_UTC;
        keep_time_within_event_years(&mut event);
        assert_eq!(event.timestamp, event.received_at);
        assert_eq!(
            event.fields.get(TIME_OUT_OF_RANGE_FIELD),
            Some(&serde_json::Value::from(
                DateTime::<Utc>::MIN_UTC.to_rfc3339()
            ))
        );
        let mut usual = new_event(b"x", &ParseContext::new("tcp"), 1);
        keep_time_within_event_years(&mut usual);
        assert!(usual.fields.get(TIME_OUT_OF_RANGE_FIELD).is_none());
    }
}

#[cfg(test)]
mod recycle_tests {
    use super::{Decoder, InputFormat, ParseContext, MAX_SPARE_EVENTS, MAX_SPARE_EVENT_BYTES};

    fn decoder() -> Decoder {
        Decoder::new(InputFormat::Auto, ParseContext::new("tcp"))
    }

    #[test]
    fn a_decoder_keeps_at_most_its_bound_of_spare_events() {
        let mut decoder = decoder();
        let mut events = Vec::new();
        for index in 0..MAX_SPARE_EVENTS + 10 {
            decoder.decode(
                format!("<13>Jan  1 00:00:00 h app: line {index}").as_bytes(),
                &mut events,
            );
        }
        decoder.recycle(&mut events);
        assert!(events.is_empty());
        assert_eq!(decoder.spare.len(), MAX_SPARE_EVENTS);
        // Two records take two spares; the three events handed back then (one spare's worth
        // too many) leave the pool at its bound, the extra one dropped.
        decoder.decode(b"<13>Jan  1 00:00:00 h app: one more", &mut events);
        decoder.decode(b"<13>Jan  1 00:00:00 h app: and another", &mut events);
        assert_eq!(decoder.spare.len(), MAX_SPARE_EVENTS - 2);
        events.push(events[0].clone());
        decoder.recycle(&mut events);
        assert!(events.is_empty());
        assert_eq!(decoder.spare.len(), MAX_SPARE_EVENTS);
    }

    /// The events of the lines the collector mostly reads own nothing beyond their blocks, so
    /// they are kept; a JSON document's event (whose values own memory the size check does not
    /// see) is not.
    #[test]
    fn syslog_and_key_value_events_are_kept_and_json_ones_are_not() {
        let mut decoder = decoder();
        let mut events = Vec::new();
        for line in [
            "<86>May 14 09:46:40 web-18 sshd[41960]: Accepted publickey for www-data from 10.14.51.98 port 15652 ssh2",
            "<133>May 14 09:46:40 fw-edge-06 filterlog[52209]: action=pass rule=1000298 proto=ICMP src=45.185.112.36 dst=10.31.46.194 spt=4111",
            "<85>1 2024-05-14T09:46:40.146413Z web-21 sudo 43254 SUDO [meta sequenceId=\"2\"][origin ip=\"10.29.73.68\"] carol : TTY=pts/1",
            "<4>Jun 12 06:25:01 gw kernel: IN=eth0 OUT= SRC=203.0.113.9 DST=10.0.0.5 LEN=60 PROTO=TCP SPT=4444 DPT=22",
            "{\"message\":\"x\",\"nested\":{\"a\":[1,2,3]}}",
        ] {
            decoder.decode(line.as_bytes(), &mut events);
        }
        assert_eq!(events.len(), 5);
        decoder.recycle(&mut events);
        assert_eq!(decoder.spare.len(), 4);
        assert!(decoder
            .spare
            .iter()
            .all(|event| event.format != crate::event::Format::Json));
    }

    /// A parser that panics on a record parsed into a spare leaves no half-made event behind:
    /// the record comes out once, as the unknown event that says a parser stopped on it.
    #[test]
    fn a_panic_while_parsing_into_a_spare_leaves_one_event() {
        let mut decoder = decoder();
        let mut events = Vec::new();
        decoder.decode(b"<13>Jan  1 00:00:00 h app: one", &mut events);
        decoder.recycle(&mut events);
        decoder.guard(
            b"<13>Jan  1 00:00:00 h app: two",
            0,
            &mut events,
            |decoder, record, missing, out| {
                decoder.decode_record(record, missing, out);
                assert!(!decoder.parsing_in_place);
                // As if the parser had stopped inside `parse_record_into`.
                decoder.parsing_in_place = true;
                panic!("a parser bug");
            },
        );
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].format, crate::event::Format::Unknown);
        assert_eq!(
            events[0].raw.as_deref(),
            Some("<13>Jan  1 00:00:00 h app: two")
        );
        assert!(!decoder.parsing_in_place);
    }

    #[test]
    fn a_large_event_is_not_kept_for_reuse() {
        let mut decoder = decoder();
        let mut events = Vec::new();
        let long = format!(
            "<13>Jan  1 00:00:00 h app: {}",
            "x".repeat(MAX_SPARE_EVENT_BYTES)
        );
        decoder.decode(long.as_bytes(), &mut events);
        decoder.decode(b"<13>Jan  1 00:00:00 h app: short", &mut events);
        decoder.recycle(&mut events);
        assert_eq!(decoder.spare.len(), 1);
        assert!(decoder.spare[0].raw_len() < 100);
    }

    #[test]
    fn a_spare_event_is_used_for_the_next_record() {
        let mut decoder = decoder();
        let mut events = Vec::new();
        decoder.decode(b"<13>Jan  1 00:00:00 h app: one", &mut events);
        let first_raw = events[0].raw.as_ref().map(|raw| raw.as_ptr());
        decoder.recycle(&mut events);
        decoder.decode(b"<13>Jan  1 00:00:00 h app: two", &mut events);
        assert!(decoder.spare.is_empty());
        assert_eq!(
            events[0].raw.as_deref(),
            Some("<13>Jan  1 00:00:00 h app: two")
        );
        // The raw text went into the first event's buffer (as long as the first one).
        assert_eq!(events[0].raw.as_ref().map(|raw| raw.as_ptr()), first_raw);
    }
}
