//! LEEF (IBM QRadar Log Event Extended Format) 1.0 and 2.0:
//! `LEEF:1.0|Vendor|Product|Version|EventID|k=v<TAB>k=v…` and
//! `LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|k=v<D>k=v…`.
//!
//! Header fields land in `fields` as `leefVersion`, `vendor`, `product`, `version`, `eventId`
//! (the names of the LEEF spec's header, camel-cased like the attribute names); attributes land
//! under the key the device wrote (`src`, `usrName`, `devTime`, …), values as strings.
//!
//! Readings chosen for what senders really do:
//! - The 2.0 delimiter may be one character (`^`), its hex code (`x09`, `0x09`), or `\t`. When the
//!   field after EventID is missing (Zscaler and PAN-OS templates write `…|EventID|k=v…` under
//!   2.0), attributes start right there with the default tab.
//! - When the delimiter is a tab but the attributes hold none, a relay has usually rewritten it:
//!   rsyslog's `#011` or a literal `\t` (two characters) are then taken as the delimiter.
//! - A missing version, unknown version or fewer than four header fields is an error; attribute
//!   text without `=` is not: the record is kept and `leef_attribute_error` says what was skipped.

use chrono::NaiveDateTime;
use chrono_tz::Tz;
use serde_json::Value;

use crate::event::{Event, Format, LogSource};
use crate::format::cef::{address, device_time, reset};
use crate::format::{embedded, FormatError};
use crate::parse::ParseContext;

/// The names the header fields are stored under.
pub const HEADER_NAMES: [&str; 5] = ["leefVersion", "vendor", "product", "version", "eventId"];

/// Field that says which attribute text was not `key=value` (the record is kept).
pub const ATTRIBUTE_ERROR_FIELD: &str = "leef_attribute_error";

/// Parses a bare LEEF record (text starts with `LEEF:`).
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    let Some(after_marker) = text.strip_prefix("LEEF:") else {
        return Err(FormatError::new(
            "expecting `LEEF:` at the start of the record",
            0,
        ));
    };
    let (version_text, _) = after_marker
        .split_once('|')
        .ok_or_else(|| FormatError::new("expecting `|` after the LEEF version", text.len()))?;
    let version = version_text.trim_matches(' ');
    let major = match version {
        "1" | "1.0" => 1,
        "2" | "2.0" => 2,
        _ => {
            return Err(FormatError::new(
                "expecting LEEF version 1.0 or 2.0 after `LEEF:`",
                5,
            ))
        }
    };
    let mut position = 5 + version_text.len() + 1;
    let mut header = [""; 4];
    for (index, slot) in header.iter_mut().enumerate() {
        let rest = text.get(position..).unwrap_or("");
        match rest.find('|') {
            Some(end) => {
                *slot = &rest[..end];
                position += end + 1;
            }
            // EventID may end the record when there are no attributes at all.
            None if index == 3 => {
                *slot = rest;
                position = text.len();
            }
            None => {
                return Err(FormatError::new(
                    format!("expecting 4 `|`-separated LEEF header fields (vendor, product, version, event id), found {index}"),
                    text.len(),
                ))
            }
        }
    }
    let mut attributes = text.get(position..).unwrap_or("");
    let mut attributes_offset = position;
    let mut delimiter = "\t";
    if major == 2 {
        if let Some((declared, after)) = delimiter_field(attributes, position)? {
            attributes_offset += attributes.len() - after.len();
            delimiter = declared;
            attributes = after;
        }
    }
    event.format = Format::Leef;
    // One buffer for every value's text (see `Fields::insert_text`).
    event.fields.reserve_text(text.len());
    parse_attributes(
        attributes,
        attributes_offset,
        effective_delimiter(attributes, delimiter),
        event,
    );
    event.fields.insert_text(HEADER_NAMES[0].into(), version);
    for (name, value) in HEADER_NAMES[1..].iter().zip(header.iter()) {
        event.fields.insert_text((*name).into(), value);
    }
    fill_core(header[3], context, event);
    event.logsource = logsource_for(header[0], header[1]);
    Ok(())
}

/// Parses LEEF with or without a syslog header before it (or any short prefix before
/// ` LEEF:`, kept in `syslog.header`).
pub fn parse_with_optional_syslog(
    text: &str,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let error = match embedded::parse_enveloped(text, Format::Leef, parse, context, event) {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    if let Some(start) = text
        .find(" LEEF:")
        .map(|space| space + 1)
        .filter(|start| *start <= 256)
    {
        reset(event);
        parse(&text[start..], context, event).map_err(|error| error.shifted(start))?;
        event.fields.insert(
            "syslog.header".into(),
            Value::from(text[..start].trim_end_matches(' ')),
        );
        return Ok(());
    }
    Err(error)
}

/// Reads the 2.0 delimiter field when there is one. Returns the delimiter and the text after
/// its `|`; `None` when the sender left the field out (the text is already attributes).
fn delimiter_field(rest: &str, offset: usize) -> Result<Option<(&'static str, &str)>, FormatError> {
    // `||k=v`: the delimiter is `|` itself.
    if let Some(after) = rest.strip_prefix("||") {
        return Ok(Some(("|", after)));
    }
    let Some((field, after)) = rest.split_once('|') else {
        return Ok(None);
    };
    if field.contains('=') {
        // `k=v|…`: no delimiter field, the pipe belongs to a value.
        return Ok(None);
    }
    match decode_delimiter(field) {
        Some(delimiter) => Ok(Some((delimiter, after))),
        None => Err(FormatError::new(
            "expecting a LEEF 2.0 delimiter: one character, or its hex code such as x09",
            offset,
        )),
    }
}

/// `^`, `x09`, `0x09`, `\t`, or empty (the default tab). Returned as a static string so the
/// caller can keep borrowing the record; only ASCII delimiters exist in practice.
fn decode_delimiter(field: &str) -> Option<&'static str> {
    if field.is_empty() || field == "\\t" || field == "\t" {
        return Some("\t");
    }
    // One byte is the delimiter itself (`x` alone is the letter x, not a hex prefix).
    let byte = if field.len() == 1 {
        field.as_bytes()[0]
    } else {
        let digits = field
            .strip_prefix("0x")
            .or_else(|| field.strip_prefix("0X"))
            .or_else(|| field.strip_prefix('x'))
            .or_else(|| field.strip_prefix('X'))?;
        if digits.is_empty() || digits.len() > 2 {
            return None;
        }
        u8::from_str_radix(digits, 16).ok()?
    };
    ASCII_STRINGS.get(usize::from(byte)).copied()
}

/// One static string per ASCII byte, so a decoded delimiter needs no allocation.
const ASCII_STRINGS: [&str; 128] = [
    "\x00", "\x01", "\x02", "\x03", "\x04", "\x05", "\x06", "\x07", "\x08", "\t", "\n", "\x0b",
    "\x0c", "\r", "\x0e", "\x0f", "\x10", "\x11", "\x12", "\x13", "\x14", "\x15", "\x16", "\x17",
    "\x18", "\x19", "\x1a", "\x1b", "\x1c", "\x1d", "\x1e", "\x1f", " ", "!", "\"", "#", "$", "%",
    "&", "'", "(", ")", "*", "+", ",", "-", ".", "/", "0", "1", "2", "3", "4", "5", "6", "7", "8",
    "9", ":", ";", "<", "=", ">", "?", "@", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K",
    "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "[", "\\", "]", "^",
    "_", "`", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q",
    "r", "s", "t", "u", "v", "w", "x", "y", "z", "{", "|", "}", "~", "\x7f",
];

/// A tab delimiter that never occurs was rewritten on the way: rsyslog escapes it as `#011`,
/// hand-written or templated senders write `\t` literally.
fn effective_delimiter<'d>(attributes: &str, declared: &'d str) -> &'d str {
    if declared != "\t" || attributes.contains('\t') {
        return declared;
    }
    if attributes.contains("#011") {
        "#011"
    } else if attributes.contains("\\t") {
        "\\t"
    } else {
        declared
    }
}

fn parse_attributes(attributes: &str, base: usize, delimiter: &str, event: &mut Event) {
    let attributes = attributes.trim_end_matches(['\r', '\n']);
    let mut offset = base;
    let mut skipped: Vec<String> = Vec::new();
    for attribute in attributes.split(delimiter) {
        let start = offset;
        offset += attribute.len() + delimiter.len();
        if attribute.trim().is_empty() {
            continue;
        }
        match attribute.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                event
                    .fields
                    .insert_text(key.trim().to_owned().into(), value);
            }
            _ => skipped.push(format!("{}..{}", start, start + attribute.len())),
        }
    }
    if !skipped.is_empty() {
        event.fields.insert(
            ATTRIBUTE_ERROR_FIELD.into(),
            Value::from(format!(
                "text without `key=` at bytes {} of the record was not parsed",
                skipped.join(", ")
            )),
        );
    }
}

fn non_empty<'a>(event: &'a Event, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|key| event.fields.get_str(key).filter(|value| !value.is_empty()))
}

fn set<S: From<String>>(slot: &mut Option<S>, value: Option<&str>) {
    if let Some(value) = value {
        *slot = Some(S::from(value.to_owned()));
    }
}

fn set_parsed<T: std::str::FromStr>(slot: &mut Option<T>, value: Option<&str>) {
    if let Some(parsed) = value.and_then(|value| value.trim().parse().ok()) {
        *slot = Some(parsed);
    }
}

/// Core fields from the LEEF spec's predefined attributes and the common vendor ones.
fn fill_core(event_id: &str, context: &ParseContext, event: &mut Event) {
    let mut core = std::mem::take(&mut event.core);
    core.event_code = Some(event_id.to_owned());
    set(&mut core.source_ip, address(event, &["src"]));
    set(&mut core.destination_ip, address(event, &["dst"]));
    set_parsed(&mut core.source_port, non_empty(event, &["srcPort"]));
    set_parsed(&mut core.destination_port, non_empty(event, &["dstPort"]));
    set(
        &mut core.user_name,
        non_empty(
            event,
            &["usrName", "userName", "accountName", "suser", "duser"],
        ),
    );
    set(&mut core.log_level, non_empty(event, &["sev", "severity"]));
    set(&mut core.event_action, non_empty(event, &["action", "act"]));
    set(&mut core.url_original, non_empty(event, &["url"]));
    set(
        &mut core.http_request_method,
        non_empty(event, &["method", "requestMethod"]),
    );
    set(
        &mut core.user_agent_original,
        non_empty(event, &["userAgent", "useragent", "ua"]),
    );
    set(
        &mut core.message,
        non_empty(event, &["msg", "Message", "message"]),
    );
    set(
        &mut core.host_name,
        non_empty(event, &["identHostName", "devName", "hostname"]),
    );
    event.core = core;

    if let Some(time) = non_empty(event, &["devTime"]) {
        let parsed = match non_empty(event, &["devTimeFormat"]) {
            Some(format) => with_java_format(time, format, context.timezone)
                .or_else(|| device_time(time, context.timezone, context.received_at)),
            None => device_time(time, context.timezone, context.received_at),
        };
        if let Some(parsed) = parsed {
            event.timestamp = parsed;
        }
    }
}

/// Reads `devTime` with the Java `SimpleDateFormat` pattern the sender gave in `devTimeFormat`
/// (translated to chrono's syntax for the usual letters). A pattern with a zone (`z`, `Z`, `X`)
/// is read with its offset; without one, in the configured zone.
fn with_java_format(
    value: &str,
    java_format: &str,
    zone: Tz,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut format = String::with_capacity(java_format.len() + 8);
    let mut has_zone = false;
    let bytes = java_format.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let letter = bytes[index];
        let run = bytes[index..]
            .iter()
            .take_while(|byte| **byte == letter)
            .count();
        let piece = match (letter, run) {
            (b'y', 2) => "%y",
            (b'y', _) => "%Y",
            (b'M', 1 | 2) => "%m",
            (b'M', 3) => "%b",
            (b'M', _) => "%B",
            (b'd', _) => "%d",
            (b'H', _) => "%H",
            (b'h', _) => "%I",
            (b'm', _) => "%M",
            (b's', _) => "%S",
            (b'S', _) => "%.f",
            (b'a', _) => "%p",
            (b'z' | b'Z' | b'X', _) => {
                has_zone = true;
                "%z"
            }
            (b'\'', _) => "",
            _ => {
                // Literal text: copy it, escaping chrono's `%`.
                for _ in 0..run {
                    if letter == b'%' {
                        format.push_str("%%");
                    } else if letter.is_ascii() {
                        format.push(char::from(letter));
                    } else {
                        return None;
                    }
                }
                index += run;
                continue;
            }
        };
        // `ss.SSS` must become `%S%.f`: chrono's `%.f` already contains the dot.
        if letter == b'S' && format.ends_with('.') {
            format.pop();
        }
        format.push_str(piece);
        index += run;
    }
    if has_zone {
        return chrono::DateTime::parse_from_str(value, &format)
            .ok()
            .map(|time| time.with_timezone(&chrono::Utc))
            .and_then(crate::timestamp::within_event_years);
    }
    NaiveDateTime::parse_from_str(value, &format)
        .ok()
        .and_then(|naive| crate::timestamp::local_to_utc(naive, zone))
}

/// Sigma logsource for the few products whose LEEF output is clearly firewall traffic.
fn logsource_for(vendor: &str, product: &str) -> LogSource {
    let vendor = vendor.to_ascii_lowercase();
    let product = product.to_ascii_lowercase();
    if vendor == "zscaler" && product == "nss-fw" {
        LogSource::from_static(None, Some("firewall"), None)
    } else {
        LogSource::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_record, InputFormat};
    use chrono::{DateTime, Utc};

    fn context() -> ParseContext {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::UTC;
        context.received_at = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        context
    }

    fn field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
        event.fields.get(name).and_then(Value::as_str)
    }

    #[test]
    fn leef1_tab_separated() {
        let line = "LEEF:1.0|Vendor|Prod|1.2|login|src=10.1.1.1\tdst=10.2.2.2\tusrName=alice\tsrcPort=5000\tdevTime=1717200000000";
        let event = parse_record(line.as_bytes(), InputFormat::Leef, &context(), 1);
        assert_eq!(event.format, Format::Leef, "{:?}", event.parse_error);
        assert_eq!(field(&event, "vendor"), Some("Vendor"));
        assert_eq!(field(&event, "eventId"), Some("login"));
        assert_eq!(event.core.source_ip.as_deref(), Some("10.1.1.1"));
        assert_eq!(event.core.source_port, Some(5000));
        assert_eq!(event.core.user_name.as_deref(), Some("alice"));
        assert_eq!(event.timestamp.to_rfc3339(), "2024-06-01T00:00:00+00:00");
    }

    #[test]
    fn leef2_delimiters() {
        for (spec, separator) in [
            ("^", "^"),
            ("x5E", "^"),
            ("0x09", "\t"),
            ("\\t", "\t"),
            ("", "\t"),
        ] {
            let line = format!("LEEF:2.0|V|P|1|E|{spec}|src=1.1.1.1{separator}dst=2.2.2.2");
            let event = parse_record(line.as_bytes(), InputFormat::Leef, &context(), 1);
            assert_eq!(
                event.core.destination_ip.as_deref(),
                Some("2.2.2.2"),
                "{line}"
            );
        }
        let event = parse_record(
            b"LEEF:2.0|V|P|1|E|src=1.1.1.1#011dst=2.2.2.2",
            InputFormat::Leef,
            &context(),
            1,
        );
        assert_eq!(event.core.destination_ip.as_deref(), Some("2.2.2.2"));
        let event = parse_record(
            b"LEEF:2.0|V|P|1|E|xZZ|src=1",
            InputFormat::Leef,
            &context(),
            1,
        );
        assert_eq!(event.format, Format::Unknown);
    }

    #[test]
    fn dev_time_with_java_format() {
        let line = "LEEF:2.0|V|P|1|E|^|devTime=2024-05-31 17:00:00.250^devTimeFormat=yyyy-MM-dd HH:mm:ss.SSS";
        let event = parse_record(line.as_bytes(), InputFormat::Leef, &context(), 1);
        assert_eq!(
            event.timestamp.to_rfc3339(),
            "2024-05-31T17:00:00.250+00:00"
        );
        let line = "LEEF:1.0|V|P|1|E|devTime=May 31 2024 17:00:00 +0700\tdevTimeFormat=MMM dd yyyy HH:mm:ss Z";
        let event = parse_record(line.as_bytes(), InputFormat::Leef, &context(), 1);
        assert_eq!(event.timestamp.to_rfc3339(), "2024-05-31T10:00:00+00:00");
    }

    #[test]
    fn malformed_headers() {
        for line in ["LEEF:3.0|V|P|1|E|", "LEEF:1.0|V|P", "LEEF:", "LEEF:1.0"] {
            let event = parse_record(line.as_bytes(), InputFormat::Leef, &context(), 1);
            assert_eq!(event.format, Format::Unknown, "{line}");
            assert!(event.parse_error.is_some());
        }
        for line in [
            "LEEF:2.0|V|P|1|E|||",
            "LEEF:2.0|V|P|1|E|é|a=b",
            "LEEF:1.0|V|P|1|E",
            "LEEF:2.0|é|||||=|=",
        ] {
            let _ = parse_record(line.as_bytes(), InputFormat::Auto, &context(), 1);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_generated_records(body in "[0-9a-zé=|\\\\ \t^x#.]{0,60}") {
            let line = format!("LEEF:2.0|{body}");
            for format in [InputFormat::Leef, InputFormat::Auto] {
                let event = parse_record(line.as_bytes(), format, &context(), 1);
                proptest::prop_assert_eq!(event.raw.as_deref(), Some(line.as_str()));
            }
        }
    }
}
