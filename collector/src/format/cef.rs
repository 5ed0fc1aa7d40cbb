//! CEF (ArcSight Common Event Format):
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`.
//!
//! The seven header fields land in `fields` under logstash-codec-cef's names (`cefVersion`,
//! `deviceVendor`, `deviceProduct`, `deviceVersion`, `deviceEventClassId`, `name`, `severity`);
//! extension pairs land under the key the device wrote (`src`, `suser`, `cs1Label`, `ad.field[0]`).
//! Values stay strings, as the device wrote them; the ECS core fields are filled from the
//! well-known keys in their short and long forms (`src`/`sourceAddress`, …).
//!
//! What is an error and what is not (chosen for a SOC, where an event with a readable header is
//! worth keeping even when its extension is sloppy):
//! - a record without `CEF:`, without a numeric version, or with fewer than seven header fields
//!   is rejected (the caller keeps it as `format: unknown` with the reason and byte offset);
//! - empty header fields (`CEF:0|||1.0|…`) are accepted, as logstash does;
//! - extension text that is not `key=value` (logstash fails the whole record with "keyless
//!   value present") is kept: the header and every later pair are parsed, and
//!   `cef_extension_error` says which bytes were not understood. The raw record is always kept.
//! - `CEF: 0|` (a space after the colon, seen from UniFi) is accepted.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use memchr::{memchr, memchr2};
use serde_json::Value;

use crate::event::{Event, Format, LogSource};
use crate::format::{embedded, FormatError};
use crate::parse::ParseContext;
use crate::timestamp::{
    bsd_timestamp, epoch_millis, epoch_seconds, iso8601, local_to_utc, resolve_bsd_time,
};

/// The names the seven header fields are stored under (logstash-codec-cef's names).
pub const HEADER_NAMES: [&str; 7] = [
    "cefVersion",
    "deviceVendor",
    "deviceProduct",
    "deviceVersion",
    "deviceEventClassId",
    "name",
    "severity",
];

/// Field that says which part of the extension was not `key=value` (the record is kept).
pub const EXTENSION_ERROR_FIELD: &str = "cef_extension_error";

/// Parses a bare CEF record (text starts with `CEF:`).
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    if !text.starts_with("CEF:") {
        return Err(FormatError::new(
            "expecting `CEF:` at the start of the record",
            0,
        ));
    }
    parse_from(text, 4, context, event)
}

/// Parses a CEF record whose `CEF:` marker was dropped by a relay or split off as a syslog tag
/// (`CEF: 0|Vendor|…` read as tag `CEF`): the text starts at the version, `0|Vendor|…`.
pub fn parse_without_marker(
    text: &str,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    parse_from(text, 0, context, event)
}

/// True when `text` starts like a CEF header without its marker: a version number then `|`.
pub fn looks_like_unmarked(text: &str) -> bool {
    let trimmed = text.trim_start_matches(' ');
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    (1..=3).contains(&digits)
        && trimmed[digits..].starts_with('|')
        && trimmed.bytes().filter(|b| *b == b'|').count() >= 7
}

/// Parses CEF with or without a syslog header before it.
///
/// Besides a real syslog header, a source fixed to CEF also accepts what logstash-codec-cef
/// accepts: any short prefix before ` CEF:` (`Syslogdate Sysloghost CEF:0|…`, kept in
/// `syslog.header`), and records whose `CEF:` marker was dropped (`0|Vendor|…`).
pub fn parse_with_optional_syslog(
    text: &str,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let error = match embedded::parse_enveloped(text, Format::Cef, parse, context, event) {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    if let Some(start) = text
        .find(" CEF:")
        .map(|space| space + 1)
        .filter(|start| *start <= 256)
    {
        reset(event);
        parse(&text[start..], context, event).map_err(|error| error.shifted(start))?;
        let header = text[..start].trim_end_matches(' ');
        event
            .fields
            .insert("syslog.header".into(), Value::from(header));
        return Ok(());
    }
    if looks_like_unmarked(text) {
        reset(event);
        return parse_without_marker(text, context, event);
    }
    Err(error)
}

/// Undoes what a failed envelope attempt wrote, so a second reading starts clean.
pub(crate) fn reset(event: &mut Event) {
    event.format = Format::Unknown;
    event.logsource = LogSource::default();
    event.core = Default::default();
    event.fields.clear();
    event.timestamp = event.received_at;
}

/// Parses from `start` (just after `CEF:`, or 0 when the marker is missing) to the end.
fn parse_from(
    text: &str,
    start: usize,
    context: &ParseContext,
    event: &mut Event,
) -> Result<(), FormatError> {
    let (header, extension_start) = split_header(text, start)?;
    check_version(text, &header)?;
    event.format = Format::Cef;
    // One buffer for every value's text (see `Fields::insert_text`).
    event.fields.reserve_text(text.len().saturating_sub(start));
    if let Some(extension) = text.get(extension_start..) {
        parse_extension(extension, extension_start, event);
    }
    // Header fields last: they are what the record is about, a same-named extension key
    // (rare) does not get to overwrite them.
    for (index, (name, value)) in HEADER_NAMES.iter().zip(header.fields.iter()).enumerate() {
        // The version is stored without the spaces `CEF: 0|` puts around it.
        let value = if index == 0 {
            value.trim_matches(' ')
        } else {
            value.as_ref()
        };
        event.fields.insert_text((*name).into(), value);
    }
    fill_core(&header, context, event);
    event.logsource = logsource_for(&header.fields[1], &header.fields[2]);
    Ok(())
}

/// The seven header fields, unescaped, and where each began (for error offsets).
struct Header<'a> {
    fields: [Cow<'a, str>; 7],
    starts: [usize; 7],
}

/// Splits the seven `|`-separated header fields starting at `start`; returns them and the byte
/// where the extension begins. `\|` and `\\` are escapes; any other backslash is kept.
fn split_header(text: &str, start: usize) -> Result<(Header<'_>, usize), FormatError> {
    let bytes = text.as_bytes();
    let mut fields: [Cow<'_, str>; 7] = Default::default();
    let mut starts = [0usize; 7];
    let mut field_start = start;
    for index in 0..7 {
        let Some((end, escaped)) = find_unescaped_pipe(bytes, field_start) else {
            return Err(FormatError::new(
                format!(
                    "expecting 7 `|`-terminated CEF header fields (version, vendor, product, device version, signature id, name, severity), found {index}"
                ),
                text.len(),
            ));
        };
        let raw = &text[field_start..end];
        fields[index] = if escaped {
            Cow::Owned(unescape_header(raw))
        } else {
            Cow::Borrowed(raw)
        };
        starts[index] = field_start;
        field_start = end + 1;
    }
    Ok((Header { fields, starts }, field_start))
}

/// Position of the next `|` not escaped by a backslash, and whether a backslash was seen.
fn find_unescaped_pipe(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut position = from;
    let mut escaped = false;
    loop {
        let found = position + memchr2(b'|', b'\\', bytes.get(position..)?)?;
        if bytes[found] == b'|' {
            return Some((found, escaped));
        }
        escaped = true;
        // Skip the escaped byte only when it is one the header escapes (`|` or `\`); a lone
        // backslash before anything else stays literal and must not hide the next byte.
        position = match bytes.get(found + 1) {
            Some(b'|') | Some(b'\\') => found + 2,
            _ => found + 1,
        };
    }
}

fn unescape_header(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(character) = chars.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        match chars.clone().next() {
            Some(next @ ('|' | '\\')) => {
                out.push(next);
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// The version must be a number (0 and 1 exist); spaces around it are tolerated (`CEF: 0|`).
fn check_version(text: &str, header: &Header<'_>) -> Result<(), FormatError> {
    let version = header.fields[0].trim_matches(' ');
    let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
    let numeric = |part: &str| {
        !part.is_empty() && part.len() <= 3 && part.bytes().all(|byte| byte.is_ascii_digit())
    };
    if numeric(major) && numeric(minor) {
        return Ok(());
    }
    let offset = header.starts[0].min(text.len());
    Err(FormatError::new(
        "expecting a CEF version number (such as 0 or 1) after `CEF:`",
        offset,
    ))
}

/// Parses the space-separated `key=value` extension. A value runs until the next ` key=`, so
/// values may hold spaces; `\=`, `\\`, `\n`, `\r` are escapes in values.
fn parse_extension(extension: &str, base: usize, event: &mut Event) {
    let bytes = extension.as_bytes();
    let mut position = skip_blanks(bytes, 0);
    if position >= bytes.len() {
        return;
    }
    let first_key = key_length(bytes, position);
    if first_key == 0 || bytes.get(position + first_key) != Some(&b'=') {
        // Text before the first key: keep the record, say what was skipped.
        let resume = next_key_start(bytes, position);
        event.fields.insert(
            EXTENSION_ERROR_FIELD.into(),
            Value::from(format!(
                "text without `key=` at bytes {}..{} of the record was not parsed",
                base + position,
                base + resume.unwrap_or(bytes.len())
            )),
        );
        match resume {
            Some(resume) => position = resume,
            None => return,
        }
    }
    loop {
        let key_end = position + key_length(bytes, position);
        let value_start = key_end + 1;
        let next = next_key_start(bytes, value_start);
        let value_end = next.unwrap_or(bytes.len());
        let key = &extension[position..key_end];
        let value = extension
            .get(value_start..value_end)
            .unwrap_or("")
            .trim_end_matches([' ', '\t', '\r', '\n']);
        event
            .fields
            .insert_text(key.to_owned().into(), &unescape_value(value));
        match next {
            Some(next) => position = next,
            None => return,
        }
    }
}

fn skip_blanks(bytes: &[u8], mut position: usize) -> usize {
    while matches!(bytes.get(position), Some(b' ' | b'\t')) {
        position += 1;
    }
    position
}

/// Bytes a key may hold: letters, digits, `_`, and the `.`, `,`, `[`, `]` seen in ArcSight
/// "additional data" keys (`ad.Error_,Code`, `ad.field[0]`).
fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b',' | b'[' | b']')
}

fn key_length(bytes: &[u8], from: usize) -> usize {
    bytes.get(from..).map_or(0, |rest| {
        rest.iter().take_while(|byte| is_key_byte(**byte)).count()
    })
}

/// Start of the next key after `from`: a key-shaped word after a space, directly followed by an
/// unescaped `=` (a key cannot contain `\`, so `a\=b` never looks like one).
fn next_key_start(bytes: &[u8], from: usize) -> Option<usize> {
    let mut position = from;
    loop {
        let space = position + memchr(b' ', bytes.get(position..)?)?;
        let candidate = space + 1;
        let length = key_length(bytes, candidate);
        if length > 0 && bytes.get(candidate + length) == Some(&b'=') {
            return Some(candidate);
        }
        position = candidate;
    }
}

fn unescape_value(value: &str) -> Cow<'_, str> {
    if !value.contains('\\') {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(character) = chars.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        let replacement = match chars.clone().next() {
            Some('=') => Some('='),
            Some('\\') => Some('\\'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            _ => None,
        };
        match replacement {
            Some(replacement) => {
                out.push(replacement);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// First string value among `keys` (short CEF name first, then the long form).
fn first<'a>(event: &'a Event, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| event.fields.get_str(key))
}

fn non_empty<'a>(event: &'a Event, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|key| event.fields.get_str(key).filter(|value| !value.is_empty()))
}

fn fill_core(header: &Header<'_>, context: &ParseContext, event: &mut Event) {
    let mut core = std::mem::take(&mut event.core);
    core.event_code = Some(header.fields[4].clone().into_owned());
    core.log_level = Some(header.fields[6].clone().into_owned().into());
    core.message = Some(
        first(event, &["msg", "message"])
            .map(str::to_owned)
            .unwrap_or_else(|| header.fields[5].clone().into_owned()),
    );
    set(
        &mut core.source_ip,
        address(event, &["src", "sourceAddress", "c6a2"]),
    );
    set(
        &mut core.destination_ip,
        address(event, &["dst", "destinationAddress", "c6a3"]),
    );
    set_parsed(
        &mut core.source_port,
        non_empty(event, &["spt", "sourcePort"]),
    );
    set_parsed(
        &mut core.destination_port,
        non_empty(event, &["dpt", "destinationPort"]),
    );
    set(
        &mut core.user_name,
        non_empty(
            event,
            &["suser", "sourceUserName", "duser", "destinationUserName"],
        ),
    );
    set(
        &mut core.event_action,
        non_empty(event, &["act", "deviceAction"]),
    );
    set(
        &mut core.event_outcome,
        non_empty(event, &["outcome", "eventOutcome"]).map(normalize_outcome),
    );
    set(
        &mut core.url_original,
        non_empty(event, &["request", "requestUrl"]),
    );
    set(
        &mut core.http_request_method,
        non_empty(event, &["requestMethod"]),
    );
    set(
        &mut core.user_agent_original,
        non_empty(event, &["requestClientApplication"]),
    );
    set(
        &mut core.process_name,
        non_empty(
            event,
            &[
                "sproc",
                "sourceProcessName",
                "dproc",
                "destinationProcessName",
                "deviceProcessName",
            ],
        ),
    );
    set_parsed(
        &mut core.process_pid,
        non_empty(
            event,
            &[
                "spid",
                "sourceProcessId",
                "dpid",
                "destinationProcessId",
                "dvcpid",
            ],
        ),
    );
    // The device's own name beats the syslog relay's host name; a bare address only fills in
    // when nothing named the host.
    set(
        &mut core.host_name,
        non_empty(event, &["dvchost", "deviceHostName"]),
    );
    if core.host_name.is_none() {
        set(
            &mut core.host_name,
            non_empty(event, &["dvc", "deviceAddress"]),
        );
    }
    event.core = core;

    // `rt` is CEF's event time; UniFi leaves it out and sends its own UTC time instead.
    if let Some(time) = non_empty(event, &["rt", "deviceReceiptTime", "UNIFIutcTime"]) {
        let zone = non_empty(event, &["dtz", "deviceTimeZone"])
            .and_then(|name| name.parse::<Tz>().ok())
            .unwrap_or(context.timezone);
        if let Some(time) = device_time(time, zone, context.received_at) {
            event.timestamp = time;
        }
    }
}

/// The first value among `keys` that is an IP address: `source.ip`/`destination.ip` are
/// addresses to every consumer, so a host name or a template placeholder stays in `fields` only.
pub(crate) fn address<'a>(event: &'a Event, keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| {
        event
            .fields
            .get_str(key)
            .filter(|value| value.trim().parse::<std::net::IpAddr>().is_ok())
    })
}

fn set<T: Into<String>, S: From<String>>(slot: &mut Option<S>, value: Option<T>) {
    if let Some(value) = value {
        *slot = Some(S::from(value.into()));
    }
}

fn set_parsed<T: std::str::FromStr>(slot: &mut Option<T>, value: Option<&str>) {
    if let Some(parsed) = value.and_then(|value| value.trim().parse().ok()) {
        *slot = Some(parsed);
    }
}

/// ECS wants `success`/`failure`; other words are kept as the device wrote them.
fn normalize_outcome(outcome: &str) -> String {
    if outcome.eq_ignore_ascii_case("success") {
        "success".into()
    } else if outcome.eq_ignore_ascii_case("failure") {
        "failure".into()
    } else {
        outcome.to_owned()
    }
}

/// Sigma logsource for the few products whose CEF output is clearly firewall traffic.
fn logsource_for(vendor: &str, product: &str) -> LogSource {
    let vendor = vendor.to_ascii_lowercase();
    let product = product.to_ascii_lowercase();
    let firewall = (vendor.contains("fortinet") && product.contains("fortigate"))
        || (vendor.contains("ubiquiti") && product.contains("unifi"))
        || (vendor.contains("check point") && product.contains("firewall"))
        || (vendor.contains("palo alto") && product.contains("pan-os"));
    if firewall {
        LogSource::from_static(None, Some("firewall"), None)
    } else {
        LogSource::default()
    }
}

/// Reads a device time as CEF and LEEF devices write it: epoch milliseconds (or seconds),
/// `MMM dd [yyyy] HH:mm:ss[.SSS] [zone]`, ISO 8601, or `M/d/yyyy h:mm:ss AM`. Zone-less times are
/// local to `zone`; a missing year is inferred from `received_at`.
pub(crate) fn device_time(
    value: &str,
    zone: Tz,
    received_at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Milliseconds per the spec; ten digits or fewer can only be seconds in any sane era.
        return if value.len() <= 10 {
            epoch_seconds(value)
        } else {
            epoch_millis(value)
        };
    }
    if value
        .bytes()
        .all(|byte| byte.is_ascii_digit() || byte == b'.')
    {
        return epoch_seconds(value);
    }
    if let Ok((rest, bsd)) = bsd_timestamp(value) {
        let zone_text = rest.trim();
        if zone_text.is_empty() {
            return resolve_bsd_time(bsd, zone, received_at);
        }
        let explicit = explicit_zone(zone_text)?;
        return match explicit {
            ExplicitZone::Named(named) => resolve_bsd_time(bsd, named, received_at),
            ExplicitZone::Offset(seconds) => {
                let local = resolve_bsd_time(bsd, chrono_tz::UTC, received_at)?;
                local
                    .checked_sub_signed(chrono::Duration::seconds(i64::from(seconds)))
                    .and_then(crate::timestamp::within_event_years)
            }
        };
    }
    if let Ok((rest, time)) = iso8601(value, zone) {
        if rest.trim().is_empty() {
            return Some(time);
        }
    }
    NaiveDateTime::parse_from_str(value, "%m/%d/%Y %I:%M:%S %p")
        .ok()
        .and_then(|naive| local_to_utc(naive, zone))
}

enum ExplicitZone {
    Named(Tz),
    Offset(i32),
}

/// `UTC`, `GMT`, `Z`, `+07:00`, `+0700`, `GMT+07:00` or an IANA name after a device time.
fn explicit_zone(text: &str) -> Option<ExplicitZone> {
    let offset_part = text
        .strip_prefix("GMT")
        .or_else(|| text.strip_prefix("UTC"))
        .unwrap_or(text);
    if offset_part.is_empty() || offset_part == "Z" {
        return Some(ExplicitZone::Named(chrono_tz::UTC));
    }
    if let Some(sign) = offset_part
        .chars()
        .next()
        .filter(|sign| *sign == '+' || *sign == '-')
    {
        let digits: String = offset_part[1..]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if digits.len() == 4
            && offset_part[1..]
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b':')
        {
            let hours: i32 = digits[..2].parse().ok()?;
            let minutes: i32 = digits[2..].parse().ok()?;
            let seconds = hours * 3600 + minutes * 60;
            return Some(ExplicitZone::Offset(if sign == '-' {
                -seconds
            } else {
                seconds
            }));
        }
        return None;
    }
    text.parse::<Tz>().ok().map(ExplicitZone::Named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_record, InputFormat};

    fn context() -> ParseContext {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::UTC;
        context.received_at = DateTime::parse_from_rfc3339("2024-06-01T00:00:00Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        context
    }

    fn field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
        event.fields.get_str(name)
    }

    #[test]
    fn header_extension_and_core_fields() {
        let line = "CEF:0|Fortinet|Fortigate|7.0|13|deny traffic|5|src=10.0.0.1 dst=8.8.8.8 spt=1234 dpt=53 suser=bob act=deny msg=blocked by policy 7 rt=1717200000000 dvchost=fw1";
        let event = parse_record(line.as_bytes(), InputFormat::Cef, &context(), 1);
        assert_eq!(event.format, Format::Cef, "{:?}", event.parse_error);
        assert_eq!(field(&event, "deviceVendor"), Some("Fortinet"));
        assert_eq!(field(&event, "msg"), Some("blocked by policy 7"));
        assert_eq!(event.core.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(event.core.destination_port, Some(53));
        assert_eq!(event.core.user_name.as_deref(), Some("bob"));
        assert_eq!(event.core.event_action.as_deref(), Some("deny"));
        assert_eq!(event.core.event_code.as_deref(), Some("13"));
        assert_eq!(event.core.log_level.as_deref(), Some("5"));
        assert_eq!(event.core.message.as_deref(), Some("blocked by policy 7"));
        assert_eq!(event.core.host_name.as_deref(), Some("fw1"));
        assert_eq!(event.timestamp.to_rfc3339(), "2024-06-01T00:00:00+00:00");
        assert_eq!(event.logsource.category.as_deref(), Some("firewall"));
    }

    #[test]
    fn escapes_in_header_and_values() {
        let line = r"CEF:0|a\|b|c\\|1|2|n|3|k=x\=y\\z\nw other=last";
        let event = parse_record(line.as_bytes(), InputFormat::Cef, &context(), 1);
        assert_eq!(field(&event, "deviceVendor"), Some("a|b"));
        assert_eq!(field(&event, "deviceProduct"), Some("c\\"));
        assert_eq!(field(&event, "k"), Some("x=y\\z\nw"));
        assert_eq!(field(&event, "other"), Some("last"));
    }

    #[test]
    fn malformed_records_are_errors_with_offsets() {
        let mut event = parse_record(b"CEF:0|a|b|c", InputFormat::Cef, &context(), 1);
        assert_eq!(event.format, Format::Unknown);
        let error = event
            .parse_error
            .take()
            .unwrap_or_else(|| panic!("error expected"));
        assert!(error.message.contains("found 3"), "{error}");
        let event = parse_record(b"CEF:x|a|b|c|d|e|f|", InputFormat::Cef, &context(), 1);
        assert_eq!(event.parse_error.map(|error| error.offset), Some(4));
    }

    #[test]
    fn keyless_extension_keeps_header() {
        let line = "CEF:0|v|p|1|2|n|3|junk words here src=1.2.3.4";
        let event = parse_record(line.as_bytes(), InputFormat::Cef, &context(), 1);
        assert_eq!(event.format, Format::Cef);
        assert_eq!(event.core.source_ip.as_deref(), Some("1.2.3.4"));
        assert!(field(&event, EXTENSION_ERROR_FIELD).is_some());
    }

    #[test]
    fn device_times() {
        let received = context().received_at;
        let utc =
            |text: &str| device_time(text, chrono_tz::UTC, received).map(|time| time.to_rfc3339());
        assert_eq!(
            utc("Jul 19 2017 10:50:21.127").as_deref(),
            Some("2017-07-19T10:50:21.127+00:00")
        );
        assert_eq!(
            utc("Jul 19 2017 10:50:21 +0300").as_deref(),
            Some("2017-07-19T07:50:21+00:00")
        );
        assert_eq!(
            utc("Jul 19 2017 10:50:21 Europe/Moscow").as_deref(),
            Some("2017-07-19T07:50:21+00:00")
        );
        assert_eq!(
            utc("1500464384").as_deref(),
            Some("2017-07-19T11:39:44+00:00")
        );
        assert_eq!(
            utc("3/30/2022 10:55:34 AM").as_deref(),
            Some("2022-03-30T10:55:34+00:00")
        );
        assert_eq!(
            utc("2022-03-30T10:55:34Z").as_deref(),
            Some("2022-03-30T10:55:34+00:00")
        );
        assert_eq!(utc("whenever"), None);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for line in [
            "CEF:",
            "CEF:|",
            "CEF:0|||||||",
            "CEF:0|a|b|c|d|e|f|=",
            "CEF:0|a|b|c|d|e|f| \\",
            "CEF:0|\\",
            "CEF:0|é\\|ü|||||| ké=vé",
        ] {
            let _ = parse_record(line.as_bytes(), InputFormat::Cef, &context(), 1);
            let _ = parse_record(line.as_bytes(), InputFormat::Auto, &context(), 1);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_generated_records(body in "[0-9a-zé=|\\\\ \t^x#.]{0,60}") {
            let line = format!("CEF:0|{body}");
            for format in [InputFormat::Cef, InputFormat::Auto] {
                let event = parse_record(line.as_bytes(), format, &context(), 1);
                proptest::prop_assert_eq!(event.raw.as_deref(), Some(line.as_str()));
            }
        }
    }
}
