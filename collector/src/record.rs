//! The compact event record: how an [`Event`] is kept in the disk buffer and sent to the
//! server, instead of its JSON.
//!
//! Why not JSON: the JSON of a 200-byte syslog line is about 950 bytes (every key spelled out,
//! `message` repeating most of `raw`, every string escaped). Writing that into the buffer was
//! the collector's largest single cost (the kernel copying it into the page cache, then the
//! forwarder reading it back), and the server parsed it again. A record stores the same event
//! in about half the bytes, with no escaping: strings are copied as they are, core fields are
//! named by position, and a `message` that is part of `raw` is stored as a range of it.
//! `fields` (nested, any JSON) is binary too (`record/binary_fields.rs`: common names as one-
//! or two-byte codes from a fixed table, `record/keys.rs`, values by type tag); records
//! written before that keep `fields` as JSON text (`TAG_FIELDS`), which is still read. An id made by
//! `parse_record` (32 hex digits) is stored as its 16 bytes.
//!
//! Layout: the byte [`RECORD_MARK`] (0xC1 can start neither JSON text nor UTF-8, so a JSON
//! record written by an older collector is told apart by its first byte), then one entry per
//! part that is set: a tag byte and its value, and an end byte. Numbers are LEB128 (zig-zag for signed), text is
//! a LEB128 length and UTF-8 bytes. Reading checks everything (lengths, UTF-8, ranges, required
//! parts, no part twice, tags it does not know): records come back from disk and from the
//! network, so a damaged one is an error, never a panic or a wrong event.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::event::{
    CoreFields, CoreValue, Event, EventSource, Fields, Format, LogSource, ParseError,
};
use crate::CollectorError;

mod binary_fields;
mod budget;
mod ceiling;
mod keys;

pub use budget::{
    fields_cost, json_values, FieldsCost, ValueBudget, MAX_BATCH_PATH_BYTES, MAX_BATCH_VALUES,
};
pub use ceiling::{
    encode_within_ceiling, EVENT_PATH_BYTES_FLOOR, EVENT_PATH_BYTES_PER_RAW_BYTE,
    EVENT_VALUES_PER_RECORD_BYTE, MAX_EVENT_PATH_BYTES, MAX_EVENT_VALUES, MAX_RECORD_BYTES,
};

use binary_fields::NotBinary;

/// How a sink wants the events it is handed: what the sources serialize them to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordEncoding {
    /// One JSON object per event (the NDJSON archive; what people and `citysoc import` read).
    #[default]
    Json,
    /// The compact record of this module (the disk buffer, hence the forwarder's batches).
    Compact,
}

/// Serializes `event` the way `encoding` says, appending to `out`.
pub fn encode_as(
    encoding: RecordEncoding,
    event: &Event,
    out: &mut Vec<u8>,
) -> Result<(), CollectorError> {
    match encoding {
        RecordEncoding::Compact => encode(event, out),
        // sonic-rs writes the same JSON as serde_json (a test in `sources` holds it to that),
        // escaping strings with SIMD.
        RecordEncoding::Json => sonic_rs::to_writer(&mut *out, event)
            .map_err(|error| CollectorError::BadRecord(format!("cannot write an event: {error}"))),
    }
}

/// A record (compact or JSON) in `encoding`: copied when it already is, converted otherwise.
pub fn convert(bytes: &[u8], encoding: RecordEncoding) -> Result<Vec<u8>, CollectorError> {
    match (encoding, is_record(bytes)) {
        (RecordEncoding::Json, true) => to_json(bytes),
        (RecordEncoding::Compact, false) => to_vec(&decode_any(bytes)?),
        _ => Ok(bytes.to_vec()),
    }
}

/// First byte of every compact record.
pub const RECORD_MARK: u8 = 0xC1;

/// Ends every record, so a record cut at a part boundary is not taken for a shorter event.
const TAG_END: u8 = 0;
const TAG_ID: u8 = 1;
const TAG_TIMESTAMP: u8 = 2;
const TAG_RECEIVED_AT: u8 = 3;
const TAG_AGENCY: u8 = 4;
const TAG_COLLECTOR: u8 = 5;
const TAG_TRANSPORT: u8 = 6;
const TAG_ADDRESS: u8 = 7;
const TAG_SEQUENCE: u8 = 8;
const TAG_FORMAT: u8 = 9;
const TAG_PRODUCT: u8 = 10;
const TAG_CATEGORY: u8 = 11;
const TAG_SERVICE: u8 = 12;
const TAG_PARSE_ERROR: u8 = 13;
const TAG_RAW: u8 = 14;
const TAG_RAW_BASE64: u8 = 15;
const TAG_FIELDS: u8 = 16;
/// `message` as a byte range of `raw`.
const TAG_MESSAGE_IN_RAW: u8 = 17;
/// `fields` in binary ([`binary_fields`]). A reader older than this tag refuses the record
/// ("unknown (written by a newer version?) part …"): servers are upgraded before collectors.
const TAG_FIELDS_BINARY: u8 = 18;
/// The id when it is what `parse_record` makes (32 lower-case hex digits of an xxh3-128):
/// its 16 bytes, big-endian, instead of 32 characters and a length. Like
/// [`TAG_FIELDS_BINARY`], older readers refuse it (it is the first part of nearly every record,
/// so their message names part 19 at byte 1).
const TAG_ID_HEX128: u8 = 19;
/// Core field number N (position in [`CoreFields::NAMES`]) holding text: `CORE_TEXT + N`.
const CORE_TEXT: u8 = 64;
/// Core field number N holding a number: `CORE_NUMBER + N`.
const CORE_NUMBER: u8 = 128;
/// Tags are one byte, so at most this many core fields fit each range.
const CORE_SLOTS: usize = 64;
/// Bytes of the padded length before the fields' JSON: up to 32 GiB, far past any event.
const FIELDS_LENGTH_BYTES: usize = 5;
/// Highest tag below the core ranges, for the "seen" set.
const LAST_PLAIN_TAG: u8 = TAG_ID_HEX128;

/// Position of `message` in [`CoreFields::NAMES`] (a test holds it there).
const MESSAGE_INDEX: usize = 0;
/// [`CoreFields::NAMES`] positions of the fields that must fit a tag.
const _: () = assert!(CoreFields::NAMES.len() <= CORE_SLOTS);

/// The formats in the order of their record code (never reorder: records on disk keep them).
const FORMATS: [Format; 10] = [
    Format::Rfc3164,
    Format::Rfc5424,
    Format::Cef,
    Format::Leef,
    Format::Kv,
    Format::Json,
    Format::Winevent,
    Format::Auditd,
    Format::AccessLog,
    Format::Unknown,
];

/// The record code of `format`: its position in [`FORMATS`]. A match, so a new `Format`
/// cannot be forgotten here; a test holds the two in step.
fn format_code(format: Format) -> u8 {
    match format {
        Format::Rfc3164 => 0,
        Format::Rfc5424 => 1,
        Format::Cef => 2,
        Format::Leef => 3,
        Format::Kv => 4,
        Format::Json => 5,
        Format::Winevent => 6,
        Format::Auditd => 7,
        Format::AccessLog => 8,
        Format::Unknown => 9,
    }
}

/// Appends the compact record of `event` to `out`. `fields` goes in binary, or as JSON text
/// for a number the binary form cannot hold. Fails for `fields` nested deeper than
/// [`crate::fields::MAX_DEPTH`] (a server refuses such a record), or when that JSON cannot be
/// written (a map key that is not a string cannot happen with [`Fields`], but the serializer
/// says so rather than panic).
pub fn encode(event: &Event, out: &mut Vec<u8>) -> Result<(), CollectorError> {
    encode_with(event, out, Layout::Current)
}

/// Appends the record of `event` as collectors before binary `fields` and 16-byte ids wrote
/// it (`fields` as JSON text, the id as text). For tests of that compatibility and for the
/// record bench's peer; collectors write [`encode`].
#[doc(hidden)]
pub fn encode_legacy(event: &Event, out: &mut Vec<u8>) -> Result<(), CollectorError> {
    encode_with(event, out, Layout::Legacy)
}

/// Which record [`encode_with`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Binary `fields`, 16-byte ids.
    Current,
    /// As before those: `fields` as JSON text, every id as text.
    Legacy,
}

fn encode_with(event: &Event, out: &mut Vec<u8>, layout: Layout) -> Result<(), CollectorError> {
    out.push(RECORD_MARK);
    match hex128_value(&event.id).filter(|_| layout == Layout::Current) {
        Some(value) => {
            out.push(TAG_ID_HEX128);
            out.extend_from_slice(&value.to_be_bytes());
        }
        None => put_text(out, TAG_ID, &event.id),
    }
    put_time(out, TAG_TIMESTAMP, &event.timestamp);
    put_time(out, TAG_RECEIVED_AT, &event.received_at);
    put_optional_text(out, TAG_AGENCY, event.agency.as_deref());
    put_optional_text(out, TAG_COLLECTOR, event.collector.as_deref());
    put_text(out, TAG_TRANSPORT, &event.source.transport);
    put_optional_text(out, TAG_ADDRESS, event.source.address.as_deref());
    if let Some(sequence) = event.source.sequence {
        out.push(TAG_SEQUENCE);
        put_varint(out, sequence);
    }
    out.push(TAG_FORMAT);
    out.push(format_code(event.format));
    put_optional_text(out, TAG_PRODUCT, event.logsource.product.as_deref());
    put_optional_text(out, TAG_CATEGORY, event.logsource.category.as_deref());
    put_optional_text(out, TAG_SERVICE, event.logsource.service.as_deref());
    if let Some(error) = &event.parse_error {
        out.push(TAG_PARSE_ERROR);
        put_str(out, &error.format);
        put_str(out, &error.message);
        put_varint(out, error.offset as u64);
    }
    put_optional_text(out, TAG_RAW, event.raw.as_deref());
    put_optional_text(out, TAG_RAW_BASE64, event.raw_base64.as_deref());
    let message_range = match (&event.core.message, &event.raw) {
        (Some(message), Some(raw)) => range_within(raw, message),
        _ => None,
    };
    if let Some((start, length)) = message_range {
        out.push(TAG_MESSAGE_IN_RAW);
        put_varint(out, start as u64);
        put_varint(out, length as u64);
    }
    // Tags are below 256 by construction: CORE_SLOTS is checked above.
    event.core.visit_indexed(|index, value| {
        let slot = index as u8;
        match value {
            CoreValue::Text(_) if index == MESSAGE_INDEX && message_range.is_some() => {}
            CoreValue::Text(text) => put_text(out, CORE_TEXT + slot, text),
            CoreValue::Number(number) => {
                out.push(CORE_NUMBER + slot);
                put_varint(out, u64::from(number));
            }
        }
    });
    if !event.fields.is_empty() {
        let start = out.len();
        let written = match layout {
            Layout::Current => {
                out.push(TAG_FIELDS_BINARY);
                binary_fields::put_fields(out, &event.fields)
            }
            Layout::Legacy => Err(NotBinary::Number),
        };
        match written {
            Ok(()) => {}
            // The parsers keep to the limit; an event built otherwise would make the server
            // refuse the whole batch it travels in.
            Err(NotBinary::TooDeep) => return Err(too_deep()),
            Err(NotBinary::Number) => {
                out.truncate(start);
                put_json_fields(out, &event.fields)?;
            }
        }
    }
    out.push(TAG_END);
    Ok(())
}

/// `fields` as JSON text after `TAG_FIELDS` (what older collectors wrote).
fn put_json_fields(out: &mut Vec<u8>, fields: &Fields) -> Result<(), CollectorError> {
    out.push(TAG_FIELDS);
    // The JSON's length is known only once it is written: keep room for a length of
    // FIELDS_LENGTH_BYTES (LEB128 padded with continuation bytes, which reading accepts),
    // write the JSON after it, then fill it in.
    let length_at = out.len();
    out.extend_from_slice(&[0; FIELDS_LENGTH_BYTES]);
    sonic_rs::to_writer(&mut *out, fields)
        .map_err(|error| CollectorError::BadRecord(format!("cannot write fields: {error}")))?;
    let length = out.len() - length_at - FIELDS_LENGTH_BYTES;
    if length >> (7 * FIELDS_LENGTH_BYTES) != 0 {
        return Err(bad("fields are too large for one record"));
    }
    for (index, byte) in out[length_at..length_at + FIELDS_LENGTH_BYTES]
        .iter_mut()
        .enumerate()
    {
        let more = if index + 1 < FIELDS_LENGTH_BYTES {
            0x80
        } else {
            0
        };
        *byte = ((length >> (7 * index)) & 0x7f) as u8 | more;
    }
    Ok(())
}

/// The compact record of `event` in a `Vec` of its own.
pub fn to_vec(event: &Event) -> Result<Vec<u8>, CollectorError> {
    let mut out = Vec::with_capacity(512);
    encode(event, &mut out)?;
    Ok(out)
}

/// Where `part` sits in `whole`, when it is a substring of it. A message is nearly always the
/// end of the raw line, so that is tried before a search.
fn range_within(whole: &str, part: &str) -> Option<(usize, usize)> {
    if part.is_empty() {
        return None;
    }
    if whole.ends_with(part) {
        return Some((whole.len() - part.len(), part.len()));
    }
    memchr::memmem::find(whole.as_bytes(), part.as_bytes()).map(|start| (start, part.len()))
}

/// What every reader of records (this one and the older ones) says of a part or a value it
/// does not know: a record from a newer collector.
const NEWER_VERSION: &str = "written by a newer version";

/// Whether a server's refusal `message` says it could not read a record because the record
/// is newer than the server (an older server met a part it does not know, e.g. binary
/// `fields`): the collector then tells the admin to upgrade the server first.
pub fn is_newer_version_refusal(message: &str) -> bool {
    message.contains(NEWER_VERSION)
}

/// Whether `bytes` is a compact record (and not the JSON an older collector buffered).
pub fn is_record(bytes: &[u8]) -> bool {
    bytes.first() == Some(&RECORD_MARK)
}

/// Reads back an event from a compact record, or from the JSON of one (what collectors before
/// the compact record wrote into their buffers).
pub fn decode_any(bytes: &[u8]) -> Result<Event, CollectorError> {
    decode_any_within(bytes, &mut ValueBudget::unlimited())
}

/// `event` with its times within the years an event takes, as parsers make them (an event in
/// JSON may say any time chrono reads): a `timestamp` outside them becomes `received_at`, kept
/// as read in a field (`parse_record`'s last guard); a `received_at` outside them is refused.
pub(crate) fn within_event_years(mut event: Event) -> Result<Event, CollectorError> {
    if crate::timestamp::within_event_years(event.received_at).is_none() {
        return Err(bad("no received_at within years 1 to 9999"));
    }
    crate::parse::keep_time_within_event_years(&mut event);
    Ok(event)
}

/// [`decode_any`] for a record from outside (a batch the server receives): the values and keys
/// it decodes, and the paths its values will be indexed under, are charged to `budget`, and it
/// fails once that is spent.
pub fn decode_any_within(bytes: &[u8], budget: &mut ValueBudget) -> Result<Event, CollectorError> {
    let event = if is_record(bytes) {
        decode_within(bytes, budget)?
    } else {
        budget.charge_json(bytes)?;
        let event = serde_json::from_slice::<Event>(bytes)
            .map_err(|error| CollectorError::BadRecord(format!("not an event: {error}")))?;
        within_event_years(event)?
    };
    budget.charge_paths(&event.fields)?;
    Ok(event)
}

/// The JSON text of a record (compact or JSON already), for the NDJSON archive and for files a
/// person reads.
pub fn to_json(bytes: &[u8]) -> Result<Vec<u8>, CollectorError> {
    if !is_record(bytes) {
        return Ok(bytes.to_vec());
    }
    let event = decode(bytes)?;
    sonic_rs::to_vec(&event)
        .map_err(|error| CollectorError::BadRecord(format!("cannot write an event: {error}")))
}

/// Reads an event from a compact record.
pub fn decode(bytes: &[u8]) -> Result<Event, CollectorError> {
    decode_within(bytes, &mut ValueBudget::unlimited())
}

/// [`decode`], charging the values and keys of `fields` to `budget` (see [`decode_any_within`]).
pub fn decode_within(bytes: &[u8], budget: &mut ValueBudget) -> Result<Event, CollectorError> {
    let mut reader = Reader {
        bytes,
        at: 0,
        budget,
    };
    if reader.byte()? != RECORD_MARK {
        return Err(bad("does not start with the record mark"));
    }
    let mut seen = [false; 256];
    let mut id = None;
    let mut timestamp = None;
    let mut received_at = None;
    let mut transport = None;
    let mut format = None;
    let mut message_range = None;
    let mut event_fields = Fields::new();
    let mut event = Event {
        id: String::new(),
        timestamp: DateTime::<Utc>::UNIX_EPOCH,
        received_at: DateTime::<Utc>::UNIX_EPOCH,
        agency: None,
        collector: None,
        source: EventSource::default(),
        format: Format::Unknown,
        logsource: LogSource::default(),
        core: CoreFields::default(),
        fields: Fields::new(),
        parse_error: None,
        raw: None,
        raw_base64: None,
    };
    loop {
        let at = reader.at;
        let tag = reader.byte()?;
        if tag == TAG_END {
            if !reader.is_done() {
                return Err(bad(&format!(
                    "bytes after the end of the record (byte {at})"
                )));
            }
            break;
        }
        if std::mem::replace(&mut seen[usize::from(tag)], true) {
            return Err(bad(&format!("part {tag} appears twice (byte {at})")));
        }
        match tag {
            TAG_ID | TAG_ID_HEX128 => {
                if id.is_some() {
                    return Err(bad(&format!("id given twice (byte {at})")));
                }
                id = Some(if tag == TAG_ID {
                    reader.text()?.to_owned()
                } else {
                    crate::parse::hex128(u128::from_be_bytes(reader.array::<16>()?))
                });
            }
            TAG_TIMESTAMP => timestamp = Some(reader.time()?),
            TAG_RECEIVED_AT => received_at = Some(reader.time()?),
            TAG_AGENCY => event.agency = Some(reader.text()?.into()),
            TAG_COLLECTOR => event.collector = Some(reader.text()?.into()),
            TAG_TRANSPORT => transport = Some(static_transport(reader.text()?)),
            TAG_ADDRESS => event.source.address = Some(reader.text()?.into()),
            TAG_SEQUENCE => event.source.sequence = Some(reader.varint()?),
            TAG_FORMAT => {
                let code = reader.byte()?;
                format = Some(
                    *FORMATS
                        .get(usize::from(code))
                        .ok_or_else(|| bad(&format!("unknown format code {code}")))?,
                );
            }
            TAG_PRODUCT => event.logsource.product = Some(reader.text()?.to_owned().into()),
            TAG_CATEGORY => event.logsource.category = Some(reader.text()?.to_owned().into()),
            TAG_SERVICE => event.logsource.service = Some(reader.text()?.to_owned().into()),
            TAG_PARSE_ERROR => {
                let format = reader.text()?.to_owned();
                let message = reader.text()?.to_owned();
                let offset = usize::try_from(reader.varint()?)
                    .map_err(|_| bad("parse error offset out of range"))?;
                event.parse_error = Some(ParseError {
                    format,
                    message,
                    offset,
                });
            }
            TAG_RAW => event.raw = Some(reader.text()?.to_owned()),
            TAG_RAW_BASE64 => event.raw_base64 = Some(reader.text()?.to_owned()),
            TAG_FIELDS_BINARY => {
                if seen[usize::from(TAG_FIELDS)] {
                    return Err(bad(&format!("fields given twice (byte {at})")));
                }
                event_fields = binary_fields::read_fields(&mut reader)?;
            }
            TAG_FIELDS => {
                if seen[usize::from(TAG_FIELDS_BINARY)] {
                    return Err(bad(&format!("fields given twice (byte {at})")));
                }
                let text = reader.text()?;
                reader.budget.charge_json(text.as_bytes())?;
                event_fields = serde_json::from_str(text)
                    .map_err(|error| bad(&format!("fields are not a JSON object: {error}")))?;
                // The binary reader stops at the limit itself.
                if event_fields.depth() > crate::fields::MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            TAG_MESSAGE_IN_RAW => message_range = Some((reader.varint()?, reader.varint()?)),
            tag if tag >= CORE_TEXT && tag < CORE_TEXT + CORE_SLOTS as u8 => {
                let value = CoreValue::Text(reader.text()?);
                set_core(&mut event.core, usize::from(tag - CORE_TEXT), value)?;
            }
            tag if tag >= CORE_NUMBER && tag < CORE_NUMBER + CORE_SLOTS as u8 => {
                let number = u32::try_from(reader.varint()?)
                    .map_err(|_| bad(&format!("core field number too large (byte {at})")))?;
                set_core(
                    &mut event.core,
                    usize::from(tag - CORE_NUMBER),
                    CoreValue::Number(number),
                )?;
            }
            other => {
                let kind = if other <= LAST_PLAIN_TAG {
                    "misplaced"
                } else {
                    "unknown (written by a newer version?)"
                };
                return Err(bad(&format!("{kind} part {other} at byte {at}")));
            }
        }
    }
    event.id = id.ok_or_else(|| bad("no id"))?;
    event.timestamp = timestamp.ok_or_else(|| bad("no timestamp"))?;
    event.received_at = received_at.ok_or_else(|| bad("no received_at"))?;
    event.source.transport = transport.ok_or_else(|| bad("no source transport"))?;
    event.format = format.ok_or_else(|| bad("no format"))?;
    event.fields = event_fields;
    if let Some((start, length)) = message_range {
        if event.core.message.is_some() {
            return Err(bad("message given twice"));
        }
        let raw = event
            .raw
            .as_deref()
            .ok_or_else(|| bad("message refers to a raw text that is not there"))?;
        let message = usize::try_from(start)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(start, length)| raw.get(start..start.checked_add(length)?))
            .ok_or_else(|| bad("message range is outside the raw text"))?;
        event.core.message = Some(message.to_owned());
    }
    // Parsers hold event times to those years; a record written before they did (or by
    // anything else) is held to them here, as `parse_record` would have.
    within_event_years(event)
}

/// `fields` nested deeper than [`crate::fields::MAX_DEPTH`]: stored, the event could not be
/// read back, so no record holds them (our parsers refuse such documents).
fn too_deep() -> CollectorError {
    bad(&format!(
        "fields nested deeper than {} levels",
        crate::fields::MAX_DEPTH
    ))
}

/// The value of an id that is exactly 32 lower-case hex digits (so that `parse::hex128` gives
/// it back byte for byte); any other id is stored as text.
fn hex128_value(id: &str) -> Option<u128> {
    // Eight digits at a time in a 64-bit word, read as if they were all valid (a digit's low
    // nibble, plus 9 for a letter), then written back with `parse::hex128_digits` and
    // compared: only the 32 lower-case hex digits of a value come back as themselves. No
    // branch per digit (a `match` per digit mispredicted on the mix of digits and letters
    // every id has: 3.8% of the collector's time in a profile of the peer bench).
    const BYTES: u64 = 0x0101_0101_0101_0101;
    let digits: &[u8; 32] = id.as_bytes().try_into().ok()?;
    let mut value = 0u128;
    for chunk in digits.chunks_exact(8) {
        let word = u64::from_be_bytes(chunk.try_into().ok()?);
        let mut nibbles = (word & (0x0F * BYTES)) + ((word >> 6) & BYTES) * 9;
        nibbles = (nibbles | nibbles >> 4) & 0x00FF_00FF_00FF_00FF;
        nibbles = (nibbles | nibbles >> 8) & 0x0000_FFFF_0000_FFFF;
        nibbles = (nibbles | nibbles >> 16) & 0xFFFF_FFFF;
        value = value << 32 | u128::from(nibbles);
    }
    (crate::parse::hex128_digits(value) == *digits).then_some(value)
}

/// The transports sources set are a handful of words: keep them unallocated.
fn static_transport(text: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 8] = [
        "file", "stdin", "udp", "tcp", "tls", "http", "https", "evtx",
    ];
    match KNOWN.iter().find(|known| **known == text) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(text.to_owned()),
    }
}

fn set_core(
    core: &mut CoreFields,
    index: usize,
    value: CoreValue<'_>,
) -> Result<(), CollectorError> {
    core.set_indexed(index, value).ok_or_else(|| {
        let name = CoreFields::NAMES.get(index).copied().unwrap_or("(none)");
        bad(&format!(
            "core field {index} ({name}) cannot hold {value:?}"
        ))
    })
}

fn bad(message: &str) -> CollectorError {
    CollectorError::BadRecord(message.to_owned())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// A short text's tag and length are written as one piece.
fn put_text(out: &mut Vec<u8>, tag: u8, text: &str) {
    match u8::try_from(text.len()) {
        Ok(length) if length < 0x80 => out.extend_from_slice(&[tag, length]),
        _ => {
            out.push(tag);
            put_varint(out, text.len() as u64);
        }
    }
    out.extend_from_slice(text.as_bytes());
}

fn put_optional_text(out: &mut Vec<u8>, tag: u8, text: Option<&str>) {
    if let Some(text) = text {
        put_text(out, tag, text);
    }
}

fn put_time(out: &mut Vec<u8>, tag: u8, time: &DateTime<Utc>) {
    let seconds = time.timestamp();
    // Written into a piece on the stack and appended once (two LEB128 numbers of up to ten
    // bytes each, pushed byte by byte, cost a capacity check per byte).
    let mut piece = [0u8; 21];
    piece[0] = tag;
    // Zig-zag: times before 1970 stay short too.
    let mut length = 1 + varint_into(&mut piece[1..], ((seconds << 1) ^ (seconds >> 63)) as u64);
    length += varint_into(
        &mut piece[length..],
        u64::from(time.timestamp_subsec_nanos()),
    );
    out.extend_from_slice(&piece[..length]);
}

/// Writes `value` as LEB128 at the start of `piece` (at least ten bytes: a whole `u64`);
/// returns the bytes written, or as many as fit.
#[inline(always)]
fn varint_into(piece: &mut [u8], mut value: u64) -> usize {
    let mut written = 0;
    for byte in piece.iter_mut() {
        written += 1;
        if value < 0x80 {
            *byte = value as u8;
            return written;
        }
        *byte = (value as u8) | 0x80;
        value >>= 7;
    }
    written
}

/// A cursor over a record that reports where it ran out.
struct Reader<'a, 'b> {
    bytes: &'a [u8],
    at: usize,
    /// What the values and keys read are charged to.
    budget: &'b mut ValueBudget,
}

impl<'a> Reader<'a, '_> {
    fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn byte(&mut self) -> Result<u8, CollectorError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or_else(|| bad(&format!("truncated at byte {}", self.at)))?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self) -> Result<u64, CollectorError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad(&format!("number at byte {start} is too long")))
    }

    fn text(&mut self) -> Result<&'a str, CollectorError> {
        let start = self.at;
        let length = usize::try_from(self.varint()?).map_err(|_| bad("length out of range"))?;
        self.str_of_length(length, start)
    }

    /// The next `length` bytes as UTF-8 text; `start` is where its length began, for errors.
    fn str_of_length(&mut self, length: usize, start: usize) -> Result<&'a str, CollectorError> {
        let bytes = self
            .at
            .checked_add(length)
            .and_then(|end| self.bytes.get(self.at..end))
            .ok_or_else(|| bad(&format!("text at byte {start} runs past the end")))?;
        self.at += length;
        std::str::from_utf8(bytes).map_err(|_| bad(&format!("text at byte {start} is not UTF-8")))
    }

    /// The next `N` bytes.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CollectorError> {
        let bytes = self
            .at
            .checked_add(N)
            .and_then(|end| self.bytes.get(self.at..end))
            .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
            .ok_or_else(|| bad(&format!("truncated at byte {}", self.at)))?;
        self.at += N;
        Ok(bytes)
    }

    /// A count of items that each take at least `min_bytes` of what is left: a count the
    /// rest of the record cannot hold is refused before anything is allocated for it.
    fn count(&mut self, min_bytes: usize) -> Result<usize, CollectorError> {
        let start = self.at;
        let left = self.bytes.len().saturating_sub(self.at);
        usize::try_from(self.varint()?)
            .ok()
            .filter(|count| count.saturating_mul(min_bytes) <= left)
            .ok_or_else(|| bad(&format!("count at byte {start} is larger than the record")))
    }

    fn time(&mut self) -> Result<DateTime<Utc>, CollectorError> {
        let start = self.at;
        let zigzag = self.varint()?;
        let seconds = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let nanos = u32::try_from(self.varint()?).ok();
        nanos
            .and_then(|nanos| DateTime::from_timestamp(seconds, nanos))
            .ok_or_else(|| bad(&format!("time at byte {start} is out of range")))
    }
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
