//! RFC 5424 (IETF syslog), strictly: the header fields with their length limits, structured data
//! with `\"`, `\\` and `\]` escapes, NILVALUE, the optional BOM before MSG.
//!
//! Errors name the same problems, in the same words and at the same byte, as the go-syslog
//! machine (the golden tests compare both), so an admin can look either up. A record that fails
//! here is still read leniently by the RFC 3164 parser when the format is `auto`.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde_json::map::Entry;
use serde_json::{Map, Value};

use crate::event::{Event, Format};
use crate::format::syslog_common::{parse_pri, record_hostname, record_priority, record_program};
use crate::format::{embedded, FormatError};
use crate::parse::ParseContext;

const EXPECTED_VERSION: &str = "expecting a version value in the range 1-999";
const EXPECTED_TIMESTAMP: &str = "expecting a RFC3339MICRO timestamp or a nil value";
const EXPECTED_HOSTNAME: &str =
    "expecting an hostname (from 1 to max 255 US-ASCII characters) or a nil value";
const EXPECTED_APPNAME: &str =
    "expecting an app-name (from 1 to max 48 US-ASCII characters) or a nil value";
const EXPECTED_PROCID: &str =
    "expecting a procid (from 1 to max 128 US-ASCII characters) or a nil value";
const EXPECTED_MSGID: &str =
    "expecting a msgid (from 1 to max 32 US-ASCII characters) or a nil value";
const EXPECTED_SD: &str = "expecting a structured data section containing one or more elements (`[id( key=\"value\")*]+`) or a nil value";
const EXPECTED_SD_ID: &str = "expecting a structured data element id (from 1 to max 32 US-ASCII characters; except `=`, ` `, `]`, and `\"`";
const EXPECTED_SD_PARAM: &str = "expecting a structured data parameter (`key=\"value\"`, both part from 1 to max 32 US-ASCII characters; key cannot contain `=`, ` `, `]`, and `\"`, while value cannot contain `]`, backslash, and `\"` unless escaped)";
const EXPECTED_ESCAPE: &str =
    "expecting chars `]`, `\"`, and `\\` to be escaped within param value";
const DUPLICATE_SD_ID: &str = "duplicate structured data element id";
const PARSING_ERROR: &str = "parsing error";

/// True when `text` starts with `<PRI>VERSION SP`, the shape only RFC 5424 has.
pub fn looks_like(text: &str) -> bool {
    let Ok((_, after_pri)) = parse_pri(text) else {
        return false;
    };
    let rest = &text.as_bytes()[after_pri..];
    let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    (1..=3).contains(&digits) && rest[0] != b'0' && rest.get(digits) == Some(&b' ')
}

/// A cursor over the record that knows where it is, for error offsets.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.position += 1;
        }
    }

    fn expect_space(&mut self, message: &'static str) -> Result<(), FormatError> {
        if self.peek() == Some(b' ') {
            self.position += 1;
            Ok(())
        } else {
            Err(FormatError::new(message, self.position))
        }
    }

    /// Reads a header field: NILVALUE, or 1..=max printable US-ASCII characters, followed by a
    /// space (not consumed). The error is at the first byte that cannot be part of the field.
    fn header_field(
        &mut self,
        max: usize,
        message: &'static str,
    ) -> Result<Option<&'a str>, FormatError> {
        let start = self.position;
        let bytes = self.text.as_bytes();
        let mut end = start;
        while end < bytes.len() && (33..=126).contains(&bytes[end]) && end - start < max {
            end += 1;
        }
        if end == start || bytes.get(end).is_some_and(|byte| *byte != b' ') {
            return Err(FormatError::new(message, end));
        }
        self.position = end;
        let field = &self.text[start..end];
        Ok(if field == "-" { None } else { Some(field) })
    }
}

/// Parses an RFC 5424 record into `event`, strictly.
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    parse_with(text, context, event, Strictness::Strict)
}

/// Parses an RFC 5424 record the way senders actually write it: spaces around `=` in
/// structured data are tolerated, and structured data that still does not parse is kept as the
/// start of the message instead of failing the record. The header must still be right. `auto`
/// uses this after the strict parse failed, so the header fields are not lost to the BSD reading.
pub fn parse_lenient(
    text: &str,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    parse_with(text, context, event, Strictness::Lenient)
}

/// A record's structured data as it is stored.
enum StructuredData<'a> {
    /// A section kept as its text.
    Text(&'a str),
    /// Parsed (empty for `-`).
    Object(Map<String, Value>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    Strict,
    Lenient,
}

fn parse_with(
    text: &str,
    context: &ParseContext,
    event: &mut Event,
    strictness: Strictness,
) -> Result<(), FormatError> {
    let (priority, after_pri) = parse_pri(text)?;
    let mut cursor = Cursor {
        text,
        position: after_pri,
    };

    let version = parse_version(&mut cursor)?;
    cursor.expect_space(PARSING_ERROR)?;
    let timestamp = parse_timestamp(&mut cursor)?;
    cursor.expect_space(PARSING_ERROR)?;
    let hostname = cursor.header_field(255, EXPECTED_HOSTNAME)?;
    cursor.expect_space(EXPECTED_HOSTNAME)?;
    let appname = cursor.header_field(48, EXPECTED_APPNAME)?;
    cursor.expect_space(EXPECTED_APPNAME)?;
    let procid = cursor.header_field(128, EXPECTED_PROCID)?;
    cursor.expect_space(EXPECTED_PROCID)?;
    let msgid = cursor.header_field(32, EXPECTED_MSGID)?;
    cursor.expect_space(EXPECTED_MSGID)?;
    let structured_data_start = cursor.position;
    // Most sections are kept as their text (`crate::structured_data`), which a reading under
    // either strictness would turn into the same object; the rest are parsed into it here.
    let kept_as_text = crate::structured_data::checked_end(text, structured_data_start)
        .filter(|end| matches!(text.as_bytes().get(*end), None | Some(b' ')));
    let (structured_data, message_start) = match kept_as_text {
        Some(end) => (
            StructuredData::Text(&text[structured_data_start..end]),
            (end < text.len()).then_some(end + 1),
        ),
        None => {
            let parsed_data = parse_structured_data(&mut cursor, strictness).and_then(|elements| {
                match cursor.peek() {
                    None => Ok((elements, None)),
                    Some(b' ') => Ok((elements, Some(cursor.position + 1))),
                    Some(_) => Err(FormatError::new(PARSING_ERROR, cursor.position)),
                }
            });
            match (parsed_data, strictness) {
                (Ok((elements, message_start)), _) => {
                    (StructuredData::Object(elements), message_start)
                }
                (Err(error), Strictness::Strict) => return Err(error),
                (Err(error), Strictness::Lenient) => {
                    event.fields.insert(
                        "syslog.structured_data_error".into(),
                        Value::from(format!("{} at byte {}", error.message, error.offset)),
                    );
                    (
                        StructuredData::Object(Map::new()),
                        Some(structured_data_start),
                    )
                }
            }
        }
    };

    event.format = Format::Rfc5424;
    // One buffer for the text values of the header and of a key=value, CEF or LEEF payload
    // (see `Fields::insert_text`): nearly all parts of the line (the facility's name is
    // short), so the line's length covers them. A payload that stores no text (sshd's prose,
    // JSON) leaves most of it unused: one allocation of the line's size per event.
    event.fields.reserve_text(text.len());
    record_priority(event, priority);
    event
        .fields
        .insert("syslog.version".into(), Value::from(version));
    if let Some((time, original)) = timestamp {
        event.timestamp = time;
        event
            .fields
            .insert_text("syslog.timestamp".into(), original);
    }
    if let Some(hostname) = hostname {
        record_hostname(event, hostname);
    }
    record_program(event, appname, procid);
    if let Some(msgid) = msgid {
        event.fields.insert_text("syslog.msgid".into(), msgid);
    }
    match structured_data {
        StructuredData::Text(section) => {
            event
                .fields
                .insert_structured_data("structured_data".into(), section);
        }
        StructuredData::Object(elements) if !elements.is_empty() => {
            event
                .fields
                .insert("structured_data".into(), Value::Object(elements));
        }
        StructuredData::Object(_) => {}
    }
    if let Some(start) = message_start {
        let message = &text[start..];
        let (message, bom_skipped) = match message.strip_prefix('\u{feff}') {
            Some(rest) => (rest, 3),
            None => (message, 0),
        };
        // go-syslog reads a lone BOM as an empty message, and no MSG as none at all.
        if !message.is_empty() || bom_skipped > 0 {
            event.core.message = Some(message.to_owned());
        }
        if !message.is_empty() {
            embedded::parse_payload(message, start + bom_skipped, appname, context, event);
        }
    }
    embedded::infer_logsource_from_program(event, appname);
    Ok(())
}

fn parse_version(cursor: &mut Cursor<'_>) -> Result<u16, FormatError> {
    let bytes = cursor.text.as_bytes();
    let start = cursor.position;
    match bytes.get(start) {
        Some(b'1'..=b'9') => {}
        _ => return Err(FormatError::new(EXPECTED_VERSION, start)),
    }
    let mut version: u16 = 0;
    let mut position = start;
    while let Some(digit @ b'0'..=b'9') = bytes.get(position) {
        if position - start == 3 {
            return Err(FormatError::new(EXPECTED_VERSION, position));
        }
        version = version * 10 + u16::from(digit - b'0');
        position += 1;
    }
    cursor.position = position;
    Ok(version)
}

/// NILVALUE or `FULL-DATE "T" FULL-TIME` with at most 6 fraction digits, as RFC 5424 allows.
/// Returns the time in UTC and the text as written.
fn parse_timestamp<'a>(
    cursor: &mut Cursor<'a>,
) -> Result<Option<(DateTime<Utc>, &'a str)>, FormatError> {
    let bytes = cursor.text.as_bytes();
    let start = cursor.position;
    if bytes.get(start) == Some(&b'-') {
        cursor.position += 1;
        return Ok(None);
    }
    let mut scanner = DigitScanner {
        bytes,
        position: start,
    };
    let year = scanner.number(4, 0, 9)?;
    scanner.literal(b'-')?;
    let month_tens = scanner.digit(0, 1)?;
    let month_units = scanner.digit(0, if month_tens == 1 { 2 } else { 9 })?;
    scanner.literal(b'-')?;
    let day_tens = scanner.digit(0, 3)?;
    let day_units = scanner.digit(0, if day_tens == 3 { 1 } else { 9 })?;
    scanner.literal(b'T')?;
    let hour_tens = scanner.digit(0, 2)?;
    let hour_units = scanner.digit(0, if hour_tens == 2 { 3 } else { 9 })?;
    scanner.literal(b':')?;
    let minute = scanner
        .number(2, 0, 9)
        .and_then(|minute| scanner.check_below(minute, 60, 2))?;
    scanner.literal(b':')?;
    let second = scanner
        .number(2, 0, 9)
        .and_then(|second| scanner.check_below(second, 60, 2))?;
    let mut nanos = 0;
    if scanner.peek() == Some(b'.') {
        scanner.position += 1;
        let fraction_start = scanner.position;
        while scanner.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            if scanner.position - fraction_start == 6 {
                return Err(FormatError::new(EXPECTED_TIMESTAMP, scanner.position));
            }
            nanos = nanos * 10 + u32::from(bytes[scanner.position] - b'0');
            scanner.position += 1;
        }
        let digits = scanner.position - fraction_start;
        if digits == 0 {
            return Err(FormatError::new(EXPECTED_TIMESTAMP, scanner.position));
        }
        nanos *= 10u32.pow(9 - digits as u32);
    }
    let offset_seconds = match scanner.peek() {
        Some(b'Z') => {
            scanner.position += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            scanner.position += 1;
            let hour_tens = scanner.digit(0, 2)?;
            let hour_units = scanner.digit(0, if hour_tens == 2 { 3 } else { 9 })?;
            scanner.literal(b':')?;
            let minute_tens = scanner.digit(0, 5)?;
            let minute_units = scanner.digit(0, 9)?;
            let seconds = ((hour_tens * 10 + hour_units) * 3600
                + (minute_tens * 10 + minute_units) * 60) as i32;
            if sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return Err(FormatError::new(EXPECTED_TIMESTAMP, scanner.position)),
    };
    let end = scanner.position;
    let original = &cursor.text[start..end];
    let out_of_range = || {
        FormatError::new(
            format!("parsing time \"{original}\": day out of range"),
            end,
        )
    };
    let date = NaiveDate::from_ymd_opt(
        year as i32,
        month_tens * 10 + month_units,
        day_tens * 10 + day_units,
    )
    .ok_or_else(out_of_range)?;
    let time = NaiveTime::from_hms_nano_opt(hour_tens * 10 + hour_units, minute, second, nanos)
        .ok_or_else(out_of_range)?;
    let offset = FixedOffset::east_opt(offset_seconds).ok_or_else(out_of_range)?;
    let local = NaiveDateTime::new(date, time);
    // Four digits keep the local time within years 0–9999, so the offset cannot overflow;
    // year 0000 with an offset east of UTC lands in year −1, outside the years an event takes.
    let utc = local
        .checked_sub_signed(chrono::Duration::seconds(i64::from(
            offset.local_minus_utc(),
        )))
        .map(|utc| utc.and_utc())
        .and_then(crate::timestamp::within_event_years)
        .ok_or_else(|| {
            FormatError::new(
                format!("parsing time \"{original}\": year out of range"),
                end,
            )
        })?;
    cursor.position = end;
    Ok(Some((utc, original)))
}

/// Reads digits one at a time so the error lands on the first byte that is wrong, as the
/// go-syslog machine reports it.
struct DigitScanner<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl DigitScanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn digit(&mut self, min: u32, max: u32) -> Result<u32, FormatError> {
        match self.peek() {
            Some(byte @ b'0'..=b'9') if (min..=max).contains(&u32::from(byte - b'0')) => {
                self.position += 1;
                Ok(u32::from(byte - b'0'))
            }
            _ => Err(FormatError::new(EXPECTED_TIMESTAMP, self.position)),
        }
    }

    fn number(&mut self, count: usize, min: u32, max: u32) -> Result<u32, FormatError> {
        let mut value = 0;
        for _ in 0..count {
            value = value * 10 + self.digit(min, max)?;
        }
        Ok(value)
    }

    /// Checks a two-digit value just read; the error points at its first digit when the tens
    /// are already too large, at the second otherwise.
    fn check_below(&self, value: u32, limit: u32, width: usize) -> Result<u32, FormatError> {
        if value < limit {
            return Ok(value);
        }
        let first_digit = self.position - width;
        let position = if value / 10 >= limit / 10 {
            first_digit
        } else {
            first_digit + 1
        };
        Err(FormatError::new(EXPECTED_TIMESTAMP, position))
    }

    fn literal(&mut self, expected: u8) -> Result<(), FormatError> {
        if self.peek() == Some(expected) {
            self.position += 1;
            Ok(())
        } else {
            Err(FormatError::new(EXPECTED_TIMESTAMP, self.position))
        }
    }
}

/// NILVALUE or one or more `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]`, into
/// `{id: {name: value}}` (a repeated parameter name becomes an array, as RFC 5424 allows).
fn parse_structured_data(
    cursor: &mut Cursor<'_>,
    strictness: Strictness,
) -> Result<Map<String, Value>, FormatError> {
    let bytes = cursor.text.as_bytes();
    let mut elements = Map::new();
    match bytes.get(cursor.position) {
        Some(b'-') => {
            cursor.position += 1;
            return Ok(elements);
        }
        Some(b'[') => {}
        _ => return Err(FormatError::new(EXPECTED_SD, cursor.position)),
    }
    while bytes.get(cursor.position) == Some(&b'[') {
        cursor.position += 1;
        let id = sd_name(cursor, EXPECTED_SD_ID)?;
        // One hash per element: the vacant entry is kept while the params are read.
        let element = match elements.entry(id) {
            Entry::Occupied(_) => {
                return Err(FormatError::new(DUPLICATE_SD_ID, cursor.position));
            }
            Entry::Vacant(element) => element,
        };
        let mut params = Map::new();
        loop {
            match bytes.get(cursor.position) {
                Some(b']') => {
                    cursor.position += 1;
                    break;
                }
                Some(b' ') => {
                    cursor.position += 1;
                    let name = sd_name(cursor, EXPECTED_SD_PARAM)?;
                    if strictness == Strictness::Lenient {
                        cursor.skip_spaces();
                    }
                    if bytes.get(cursor.position) != Some(&b'=') {
                        return Err(FormatError::new(EXPECTED_SD_PARAM, cursor.position));
                    }
                    cursor.position += 1;
                    if strictness == Strictness::Lenient {
                        cursor.skip_spaces();
                    }
                    if bytes.get(cursor.position) != Some(&b'"') {
                        return Err(FormatError::new(EXPECTED_SD_PARAM, cursor.position));
                    }
                    cursor.position += 1;
                    let value = sd_value(cursor)?;
                    // A repeated name collects its values in an array, in order.
                    match params.entry(name) {
                        Entry::Vacant(vacant) => {
                            vacant.insert(Value::from(value));
                        }
                        Entry::Occupied(mut occupied) => match occupied.get_mut() {
                            Value::Array(values) => values.push(Value::from(value)),
                            previous => {
                                let first = previous.take();
                                *previous = Value::Array(vec![first, Value::from(value)]);
                            }
                        },
                    }
                }
                _ => return Err(FormatError::new(EXPECTED_SD_PARAM, cursor.position)),
            }
        }
        element.insert(Value::Object(params));
    }
    Ok(elements)
}

/// SD-NAME: 1..=32 printable US-ASCII characters except `=`, space, `]` and `"`.
fn sd_name<'a>(cursor: &mut Cursor<'a>, message: &'static str) -> Result<&'a str, FormatError> {
    let bytes = cursor.text.as_bytes();
    let start = cursor.position;
    let mut end = start;
    while end < bytes.len()
        && (33..=126).contains(&bytes[end])
        && !matches!(bytes[end], b'=' | b']' | b'"')
    {
        if end - start == 32 {
            return Err(FormatError::new(message, end));
        }
        end += 1;
    }
    if end == start {
        return Err(FormatError::new(message, end));
    }
    cursor.position = end;
    Ok(&cursor.text[start..end])
}

/// PARAM-VALUE up to the closing quote, unescaping `\"`, `\\` and `\]`. An unescaped `]` or a
/// backslash before anything else is an error, as go-syslog has it.
fn sd_value(cursor: &mut Cursor<'_>) -> Result<String, FormatError> {
    let bytes = cursor.text.as_bytes();
    let start = cursor.position;
    let mut value = String::new();
    let mut copied_until = start;
    let mut position = start;
    loop {
        match bytes.get(position) {
            None => return Err(FormatError::new(EXPECTED_SD_PARAM, position)),
            Some(b'"') => {
                value.push_str(&cursor.text[copied_until..position]);
                cursor.position = position + 1;
                return Ok(value);
            }
            Some(b']') => return Err(FormatError::new(EXPECTED_ESCAPE, position)),
            Some(b'\\') => match bytes.get(position + 1) {
                Some(b'"' | b'\\' | b']') => {
                    value.push_str(&cursor.text[copied_until..position]);
                    copied_until = position + 1;
                    position += 2;
                }
                _ => return Err(FormatError::new(EXPECTED_ESCAPE, position + 1)),
            },
            Some(_) => position += 1,
        }
    }
}

#[cfg(test)]
mod structured_data_as_text {
    use super::*;
    use proptest::prelude::*;

    /// Sections from the characters that matter to its syntax, and some that do not.
    fn sections() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "[", "]", " ", "=", "\"", "\\", "a", "b", "x", "é", "[a", "[b", " x=\"", " y=\"",
            "\"]", "\\\"", "\\]", "\\\\", "\\n", "1",
        ]);
        let random = prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat());
        // `[id( name="value")*]+`, names from a few so that some repeat.
        let name = prop::sample::select(vec!["a", "b", "meta", "x@1", "origin"]);
        let value = prop::collection::vec(
            prop::sample::select(vec!["v", "é", "\\\"", "\\\\", "\\]", " ", "=", "["]),
            0..5,
        )
        .prop_map(|pieces| pieces.concat());
        let param = (name.clone(), value).prop_map(|(name, value)| format!(" {name}=\"{value}\""));
        let element = (name, prop::collection::vec(param, 0..4))
            .prop_map(|(id, params)| format!("[{id}{}]", params.concat()));
        let well_formed = (
            prop::collection::vec(element, 1..4),
            prop::sample::select(vec!["", " msg", "x"]),
        )
            .prop_map(|(elements, after)| elements.concat() + after);
        prop_oneof![random, well_formed]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        /// A section kept as its text stands for exactly the object the strict reader builds
        /// from it, ends where that reader ends, and is one the reader accepts.
        #[test]
        fn a_section_kept_as_text_is_the_object_the_reader_builds(text in sections()) {
            let Some(end) = crate::structured_data::checked_end(&text, 0) else {
                return Ok(());
            };
            let mut cursor = Cursor { text: &text, position: 0 };
            let parsed = parse_structured_data(&mut cursor, Strictness::Strict);
            prop_assert_eq!(
                parsed.as_ref().ok().map(|elements| Value::Object(elements.clone())),
                Some(crate::structured_data::to_value(&text[..end])),
                "{}", text
            );
            prop_assert_eq!(cursor.position, end);
            let mut lenient = Cursor { text: &text, position: 0 };
            prop_assert_eq!(parse_structured_data(&mut lenient, Strictness::Lenient).ok(), parsed.ok());
        }
    }

    /// Sections well-formed by construction (the generator above seldom makes long ones).
    #[test]
    fn typical_sections_are_kept_as_text() {
        for section in [
            r#"[meta sequenceId="2"][origin ip="10.29.73.68"]"#,
            r#"[exampleSDID@32473 iut="3" eventSource="App\"li\]cation" eventID="1011"]"#,
            "[timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"60000\"]",
        ] {
            assert_eq!(
                crate::structured_data::checked_end(section, 0),
                Some(section.len())
            );
            let mut cursor = Cursor {
                text: section,
                position: 0,
            };
            let parsed = parse_structured_data(&mut cursor, Strictness::Strict)
                .unwrap_or_else(|error| panic!("{error:?}"));
            assert_eq!(
                crate::structured_data::to_value(section),
                Value::Object(parsed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{new_event, ParseContext};

    fn parse_text(text: &str) -> Result<Event, FormatError> {
        let context = ParseContext::new("test");
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse(text, &context, &mut event).map(|()| event)
    }

    #[test]
    fn repeated_params_collect_in_order_and_duplicate_ids_fail() {
        let event =
            parse_text("<13>1 - host app - - [a x=\"1\" x=\"2\" x=\"3\" y=\"\\]\"][b x=\"4\"] msg")
                .unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(
            event.fields.get("structured_data"),
            Some(&serde_json::json!({"a": {"x": ["1", "2", "3"], "y": "]"}, "b": {"x": "4"}}))
        );
        let text = "<13>1 - host app - - [a x=\"1\"][a y=\"2\"] msg";
        assert_eq!(
            parse_text(text).err(),
            Some(FormatError::new(
                DUPLICATE_SD_ID,
                text.find("][a").unwrap_or(0) + 3
            ))
        );
    }

    #[test]
    fn rfc_example_with_structured_data_and_escapes() {
        let event = parse_text(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App\"li\]cation"][examplePriority@32473 class="high"] An application event"#,
        )
        .unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(event.format, Format::Rfc5424);
        assert_eq!(
            event.core.host_name.as_deref(),
            Some("mymachine.example.com")
        );
        assert_eq!(event.core.message.as_deref(), Some("An application event"));
        assert_eq!(
            event
                .field("structured_data.exampleSDID@32473.eventSource")
                .as_deref(),
            Some(&Value::from("App\"li]cation"))
        );
        assert_eq!(
            event.timestamp.to_rfc3339(),
            "2003-10-11T22:14:15.003+00:00"
        );
    }

    #[test]
    fn nil_values_and_bom() {
        let event = parse_text("<34>1 - - - - - - \u{feff}hello")
            .unwrap_or_else(|error| panic!("{error:?}"));
        assert_eq!(event.core.message.as_deref(), Some("hello"));
        assert!(event.core.host_name.is_none());
    }

    #[test]
    fn errors_land_where_go_syslog_puts_them() {
        let offset = |text: &str| {
            parse_text(text)
                .err()
                .map(|error| (error.offset, error.message.into_owned()))
        };
        assert_eq!(offset("<1>1").map(|e| e.0), Some(4));
        assert_eq!(offset("<101>1000 2018-11-22").map(|e| e.0), Some(8));
        assert_eq!(
            offset("<101>125 2003-09-29T22:99:16Z").map(|e| e.0),
            Some(23)
        );
        assert_eq!(
            offset("<101>127 2003-09-29T22:09:01.000000000009Z").map(|e| e.0),
            Some(35)
        );
        assert_eq!(offset("<101>123 2018-02-32").map(|e| e.0), Some(18));
        assert_eq!(
            offset("<101>12 2003-09-31T22:14:16Z").map(|e| e.0),
            Some(28)
        );
        assert_eq!(
            offset("<1>1 - - - - - [abcdefghilmnopqrstuvzabcdefghilmX]").map(|e| e.0),
            Some(48)
        );
        assert_eq!(
            offset("<29>3 2016-01-15T01:00:43Z hn S - - [meta escape=\"]\"] x").map(|e| e.0),
            Some(50)
        );
    }
}
