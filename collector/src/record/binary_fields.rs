//! An event's `fields` inside a compact record, in binary instead of JSON text.
//!
//! Why: `fields` was the last part of a record kept as JSON, and the biggest one for key=value
//! devices (`"syslog.priority":4,"syslog.facility":"kern",…,"SRC":"195.54.1.2"`: every key
//! spelled and quoted, every string escaped). The buffer write is mostly the kernel copying
//! those bytes, so fewer bytes is less time, and no escaping is less encoding work.
//!
//! Layout, after the record's `TAG_FIELDS_BINARY`: the number of entries (LEB128), then each
//! entry as a key and a value.
//!
//! - Key: one LEB128 number `n`. Even: the name with code `n / 2` in the fixed table
//!   ([`super::keys::KEYS`], append-only); odd: a name of `n / 2` bytes of UTF-8 follows. So a
//!   common name costs one byte (codes below 64) or two, any other its length plus one byte
//!   (up to 63 bytes).
//! - Value: a tag byte, then what the tag says. `null`, `false`, `true`; numbers exactly as
//!   serde_json holds them (an unsigned integer as LEB128, a negative one as LEB128 of
//!   `!value`, a float as its 8 bytes little-endian), so `1`, `-1` and `1.0` stay apart; a
//!   string as LEB128 length and UTF-8; an array as its count and values; an object as its
//!   count and key/value entries (keys as above, in insertion order). Integers below 64 and
//!   strings shorter than 128 bytes are folded into the tag (most values of a log line are).
//!
//! Reading checks like the rest of the record: tags, UTF-8, lengths and counts against the
//! bytes left, reserving at most [`RESERVE_MAX`] items ahead (so forged counts cannot make
//! huge allocations, even nested), and nesting depth ([`MAX_DEPTH`], which bounds the reader's
//! recursion; the record then refuses `fields` deeper than [`crate::fields::MAX_DEPTH`], the
//! depth a stored event can still be read back at).

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use super::keys::{code_of, KEYS};
use super::{bad, put_varint, Reader};
use crate::event::Fields;
use crate::fields::Key;
use crate::fields::StoredValue;
use crate::CollectorError;

/// Deepest nesting of arrays and objects this encoding reads or writes inside `fields`: the
/// depth a stored event can still be read back at ([`crate::fields::MAX_DEPTH`]).
pub(super) const MAX_DEPTH: usize = crate::fields::MAX_DEPTH;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
/// An unsigned integer (64 or more) as LEB128.
const UNSIGNED: u8 = 3;
/// A negative integer `value` as LEB128 of `!value` (0 for -1).
const NEGATIVE: u8 = 4;
/// A float: its 8 bytes, little-endian.
const FLOAT: u8 = 5;
/// A string of 128 bytes or more: LEB128 length and UTF-8.
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;
/// `SMALL_UNSIGNED + n`: the unsigned integer `n`, for `n` below [`SMALL_UNSIGNED_LIMIT`].
const SMALL_UNSIGNED: u8 = 0x40;
const SMALL_UNSIGNED_LIMIT: u8 = 64;
/// Codes below this take one byte (LEB128 of `code << 1` below 128).
const ONE_BYTE_CODES: usize = 64;
/// `SHORT_STRING + n`: a string of `n` bytes (below 128) follows.
const SHORT_STRING: u8 = 0x80;

/// Most items reserved ahead for one array, object or `fields`. A count is checked against
/// the bytes left, but nested containers each claiming the rest of a large record would
/// still reserve that many times over (depth × count × item size) before any item is read;
/// beyond this, a container grows as its items actually arrive (each takes record bytes).
const RESERVE_MAX: usize = 256;

/// `fields` this encoding does not write.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NotBinary {
    /// Nested deeper than [`MAX_DEPTH`]: no record may hold them (the server refuses it).
    TooDeep,
    /// A number serde_json built otherwise than this crate's features allow: the record keeps
    /// the fields as JSON text instead, as older collectors did.
    Number,
}

/// Appends `fields` in binary (the layout of the module docs). On [`NotBinary`], `out` holds
/// part of them: the caller cuts it back.
pub(super) fn put_fields(out: &mut Vec<u8>, fields: &Fields) -> Result<(), NotBinary> {
    put_varint(out, fields.len() as u64);
    for (key, value) in fields.iter_stored() {
        // Most entries: a name with a one-byte code and a short text value, written as one
        // two-byte header and the text (instead of a capacity check per byte).
        if let StoredValue::Text(text) = value {
            match (code_of(key), u8::try_from(text.len())) {
                (Some(code @ 0..ONE_BYTE_CODES), Ok(length)) if length < 0x80 => {
                    out.extend_from_slice(&[(code as u8) << 1, SHORT_STRING + length]);
                    out.extend_from_slice(text.as_bytes());
                    continue;
                }
                _ => {}
            }
        }
        put_key(out, key);
        match value {
            StoredValue::Text(text) => put_string(out, text),
            StoredValue::StructuredData(section) => put_structured_data(out, section),
            StoredValue::Json(value) => put_value(out, value, 0)?,
        }
    }
    Ok(())
}

#[inline(always)]
fn put_string(out: &mut Vec<u8>, text: &str) {
    match u8::try_from(text.len()) {
        Ok(length) if length < 0x80 => out.push(SHORT_STRING + length),
        _ => {
            out.push(STRING);
            put_varint(out, text.len() as u64);
        }
    }
    out.extend_from_slice(text.as_bytes());
}

#[inline(always)]
fn put_key(out: &mut Vec<u8>, key: &str) {
    match code_of(key) {
        Some(code) => put_varint(out, (code as u64) << 1),
        None => {
            put_varint(out, ((key.len() as u64) << 1) | 1);
            out.extend_from_slice(key.as_bytes());
        }
    }
}

/// The object an RFC 5424 structured data section stands for, written from its text: the
/// same bytes [`put_value`] writes for the object (`{"id": {"name": "value"}}`), which the
/// reader builds. In one walk of the text: a count is written as one byte and filled in after
/// (a section kept as text has at most 16 elements of at most 16 parameters,
/// `structured_data::checked_end`; a larger count would be written again with its full
/// varint).
fn put_structured_data(out: &mut Vec<u8>, section: &str) {
    out.push(OBJECT);
    let elements_at = out.len();
    out.push(0);
    let mut element_count = 0u64;
    for (id, params) in crate::structured_data::elements(section) {
        element_count += 1;
        put_key(out, id);
        out.push(OBJECT);
        let params_at = out.len();
        out.push(0);
        let mut param_count = 0u64;
        for (name, written) in params {
            param_count += 1;
            put_key(out, name);
            put_string(out, &crate::structured_data::unescaped(written));
        }
        fill_count(out, params_at, param_count);
    }
    fill_count(out, elements_at, element_count);
}

/// Writes `count` at `at`, where one byte was left for it: in that byte when it fits one
/// (below 128), else as its full varint with the bytes after it moved along.
fn fill_count(out: &mut Vec<u8>, at: usize, count: u64) {
    match u8::try_from(count) {
        Ok(small) if small < 0x80 => {
            if let Some(byte) = out.get_mut(at) {
                *byte = small;
            }
        }
        _ => {
            let mut varint = Vec::new();
            put_varint(&mut varint, count);
            if at < out.len() {
                out.splice(at..at + 1, varint);
            }
        }
    }
}

fn put_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), NotBinary> {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(number) => put_number(out, number)?,
        Value::String(text) => put_string(out, text),
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(NotBinary::TooDeep);
            }
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item, depth + 1)?;
            }
        }
        Value::Object(map) => {
            if depth >= MAX_DEPTH {
                return Err(NotBinary::TooDeep);
            }
            out.push(OBJECT);
            put_varint(out, map.len() as u64);
            for (key, item) in map {
                put_key(out, key);
                put_value(out, item, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// A number in the kind serde_json holds it in: `as_u64` answers only for non-negative
/// integers, `as_i64` (after it) only for negative ones, `is_f64` only for floats.
fn put_number(out: &mut Vec<u8>, number: &Number) -> Result<(), NotBinary> {
    if number.is_f64() {
        let float = number.as_f64().ok_or(NotBinary::Number)?;
        out.push(FLOAT);
        out.extend_from_slice(&float.to_le_bytes());
    } else if let Some(unsigned) = number.as_u64() {
        match u8::try_from(unsigned) {
            Ok(small) if small < SMALL_UNSIGNED_LIMIT => out.push(SMALL_UNSIGNED + small),
            _ => {
                out.push(UNSIGNED);
                put_varint(out, unsigned);
            }
        }
    } else if let Some(negative) = number.as_i64().filter(|value| *value < 0) {
        out.push(NEGATIVE);
        put_varint(out, !negative as u64);
    } else {
        return Err(NotBinary::Number);
    }
    Ok(())
}

/// Reads `fields` written by [`put_fields`].
pub(super) fn read_fields(reader: &mut Reader<'_, '_>) -> Result<Fields, CollectorError> {
    // An entry is at least two bytes: a key and a value tag.
    let count = reader.count(2)?;
    let mut fields = Fields::with_capacity(count.min(RESERVE_MAX));
    for _ in 0..count {
        // The entry, its value charged by `read_value`.
        reader.budget.charge(1)?;
        let key = read_key(reader)?;
        let value = read_value(reader, 0)?;
        // A forged record may repeat a key: the last value wins, as in JSON.
        fields.insert(key, value);
    }
    Ok(fields)
}

fn read_key(reader: &mut Reader<'_, '_>) -> Result<Key, CollectorError> {
    let at = reader.at;
    let number = reader.varint()?;
    if number & 1 == 0 {
        let name = usize::try_from(number >> 1)
            .ok()
            .and_then(|code| KEYS.get(code))
            .ok_or_else(|| {
                bad(&format!(
                    "unknown field name code {} at byte {at} (written by a newer version?)",
                    number >> 1
                ))
            })?;
        Ok(Cow::Borrowed(name))
    } else {
        let length = usize::try_from(number >> 1).map_err(|_| bad("length out of range"))?;
        Ok(Cow::Owned(reader.str_of_length(length, at)?.to_owned()))
    }
}

fn read_value(reader: &mut Reader<'_, '_>, depth: usize) -> Result<Value, CollectorError> {
    reader.budget.charge(1)?;
    let at = reader.at;
    let tag = reader.byte()?;
    let value = match tag {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        UNSIGNED => Value::from(reader.varint()?),
        NEGATIVE => {
            let inverted = i64::try_from(reader.varint()?)
                .map_err(|_| bad(&format!("negative number out of range at byte {at}")))?;
            // `!` of a non-negative i64 is negative: the kind comes back as it was.
            Value::from(!inverted)
        }
        FLOAT => {
            let float = f64::from_le_bytes(reader.array::<8>()?);
            Value::Number(
                Number::from_f64(float)
                    .ok_or_else(|| bad(&format!("number at byte {at} is not finite")))?,
            )
        }
        STRING => Value::String(reader.text()?.to_owned()),
        ARRAY => {
            check_depth(depth, at)?;
            let count = reader.count(1)?;
            let mut items = Vec::with_capacity(count.min(RESERVE_MAX));
            for _ in 0..count {
                items.push(read_value(reader, depth + 1)?);
            }
            Value::Array(items)
        }
        OBJECT => {
            check_depth(depth, at)?;
            let count = reader.count(2)?;
            let mut map = Map::with_capacity(count.min(RESERVE_MAX));
            for _ in 0..count {
                reader.budget.charge(1)?;
                let key = read_key(reader)?.into_owned();
                let item = read_value(reader, depth + 1)?;
                map.insert(key, item);
            }
            Value::Object(map)
        }
        SHORT_STRING.. => {
            let length = usize::from(tag - SHORT_STRING);
            Value::String(reader.str_of_length(length, at)?.to_owned())
        }
        SMALL_UNSIGNED.. => Value::from(u64::from(tag - SMALL_UNSIGNED)),
        other => {
            return Err(bad(&format!(
                "unknown value tag {other} at byte {at} (written by a newer version?)"
            )))
        }
    };
    Ok(value)
}

fn check_depth(depth: usize, at: usize) -> Result<(), CollectorError> {
    if depth >= MAX_DEPTH {
        return Err(bad(&format!(
            "fields nested deeper than {MAX_DEPTH} levels at byte {at}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fill_count;

    #[test]
    fn a_count_fills_its_byte_or_grows_into_a_varint() {
        let mut out = vec![7, 0, 9];
        fill_count(&mut out, 1, 127);
        assert_eq!(out, [7, 127, 9]);
        let mut out = vec![7, 0, 9];
        fill_count(&mut out, 1, 300);
        assert_eq!(out, [7, 0xac, 0x02, 9]);
    }
}
