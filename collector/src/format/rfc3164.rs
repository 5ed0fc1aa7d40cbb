//! RFC 3164 (BSD syslog) as devices really send it: PRI optional, BSD or ISO timestamps (with
//! or without year, with or without zone), hostname optional, `tag[pid]:` optional, Cisco
//! sequence numbers and `%FAC-SEV-MNEMONIC` message ids, rsyslog structured data after the tag,
//! and FortiGate-style records that go straight from PRI to key=value.
//!
//! Where the real-world variants are ambiguous, the reading follows syslog_loose (used by
//! Vector), whose expectations the golden tests check.

use serde_json::Value;

use crate::event::{Event, Format};
use crate::format::syslog_common::{parse_pri, record_hostname, record_priority, record_program};
use crate::format::{embedded, offset_in, FormatError};
use crate::parse::ParseContext;
use crate::timestamp::{bsd_timestamp, iso8601, resolve_bsd_time};

/// True when a record without PRI starts with a BSD or ISO timestamp followed by a space.
pub fn looks_like_headerless(text: &str) -> bool {
    if let Ok((rest, _)) = bsd_timestamp(text) {
        return rest.starts_with([' ', ':']);
    }
    matches!(iso8601(text, chrono_tz::UTC), Ok((rest, _)) if rest.starts_with(' '))
}

/// Parses a BSD syslog record into `event`.
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    let (priority, mut rest) = match parse_pri(text) {
        Ok((priority, used)) => (Some(priority), &text[used..]),
        Err(_) if text.starts_with('<') => {
            return Err(parse_pri(text)
                .err()
                .unwrap_or_else(|| FormatError::new("bad PRI", 0)));
        }
        Err(_) => (None, text),
    };
    rest = rest.strip_prefix(' ').unwrap_or(rest);
    rest = skip_cisco_sequence(rest);

    let timestamp_start = rest;
    let timestamp = read_timestamp(rest, context);
    if priority.is_none() && timestamp.is_none() {
        return Err(FormatError::new(
            "expecting a PRI (<0>..<191>) or a timestamp at the start of a BSD syslog record",
            0,
        ));
    }
    event.format = Format::Rfc3164;
    // One buffer for the text values of the header and of a key=value, CEF or LEEF payload
    // (see `Fields::insert_text`): nearly all parts of the line (the facility's name is
    // short), so the line's length covers them. A payload that stores no text (sshd's prose,
    // JSON) leaves most of it unused: one allocation of the line's size per event.
    event.fields.reserve_text(text.len());
    if let Some(priority) = priority {
        record_priority(event, priority);
    }
    if let Some((time, after)) = timestamp {
        event.timestamp = time;
        let original = &timestamp_start[..offset_in(timestamp_start, after)];
        event
            .fields
            .insert_text("syslog.timestamp".into(), original);
        rest = after.strip_prefix(':').unwrap_or(after);
        rest = rest.trim_start_matches(' ');
        let (hostname, appname, procid, message) = split_header(rest);
        if let Some(hostname) = hostname {
            record_hostname(event, hostname);
        }
        record_program(event, appname, procid);
        finish_message(text, message, appname, context, event);
    } else {
        // PRI straight followed by the message (FortiGate kv, bare programs).
        finish_message(text, rest, None, context, event);
    }
    Ok(())
}

fn finish_message(
    text: &str,
    message: &str,
    appname: Option<&str>,
    context: &ParseContext,
    event: &mut Event,
) {
    let mut message = message;
    if message.starts_with('[') {
        message = take_structured_data(message, event);
    }
    if let Some(code) = cisco_message_id(message) {
        event.core.event_code = Some(code.to_owned());
    }
    event.core.message = Some(message.to_owned());
    if !message.is_empty() {
        embedded::parse_payload(message, offset_in(text, message), appname, context, event);
    }
    embedded::infer_logsource_from_program(event, appname);
}

/// `123: ` or `123: *` before a Cisco IOS timestamp.
fn skip_cisco_sequence(text: &str) -> &str {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || !text[digits..].starts_with(": ") {
        return text.strip_prefix(['*', '.']).unwrap_or(text);
    }
    let rest = &text[digits + 2..];
    rest.strip_prefix(['*', '.']).unwrap_or(rest)
}

fn read_timestamp<'a>(
    text: &'a str,
    context: &ParseContext,
) -> Option<(chrono::DateTime<chrono::Utc>, &'a str)> {
    if let Ok((rest, bsd)) = bsd_timestamp(text) {
        // `Mmm dd hh:mm:ss yyyy` (some appliances put the year last).
        let (rest, bsd) = match trailing_year(rest) {
            Some((after, year)) if bsd.year.is_none() => (
                after,
                crate::timestamp::BsdTime {
                    year: Some(year),
                    ..bsd
                },
            ),
            _ => (rest, bsd),
        };
        if rest.is_empty() || rest.starts_with([' ', ':']) {
            let time = resolve_bsd_time(bsd, context.timezone, context.received_at)?;
            return Some((time, rest));
        }
        return None;
    }
    match iso8601(text, context.timezone) {
        Ok((rest, time)) if rest.is_empty() || rest.starts_with([' ', ':']) => Some((time, rest)),
        _ => None,
    }
}

fn trailing_year(text: &str) -> Option<(&str, i32)> {
    let candidate = text.strip_prefix(' ')?;
    let year = candidate.get(..4)?;
    if !year.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let after = &candidate[4..];
    if !(after.is_empty() || after.starts_with([' ', ':'])) {
        return None;
    }
    Some((after, year.parse().ok()?))
}

/// Splits `HOSTNAME TAG[PID]: MSG` where hostname and tag are each optional.
fn split_header(text: &str) -> (Option<&str>, Option<&str>, Option<&str>, &str) {
    if let Some(message) = text.strip_prefix(':') {
        return (None, None, None, message.trim_start_matches(' '));
    }
    if starts_message(text) {
        return (None, None, None, text);
    }
    let token_end = byte_position(text, b' ').unwrap_or(text.len());
    let token = &text[..token_end];
    if token.contains('[') && !token.starts_with('[') {
        // `haproxy[73411]: …` with no hostname.
        if let Some((appname, procid, message)) = split_tag(text) {
            return (None, Some(appname), procid, message);
        }
    }
    let hostname = token.strip_suffix(':').unwrap_or(token);
    let after_host = &text[token_end..];
    if token.ends_with(':') {
        // `mymachine: a message`: syslog_loose reads the word as the hostname.
        return (
            Some(hostname),
            None,
            None,
            after_host.trim_start_matches(' '),
        );
    }
    let Some(after_space) = after_host.strip_prefix(' ') else {
        return (Some(hostname), None, None, "");
    };
    if after_space.starts_with(' ') {
        // Two spaces after the hostname: no tag (syslog_loose's reading).
        return (
            Some(hostname),
            None,
            None,
            after_space.trim_start_matches(' '),
        );
    }
    if let Some(message) = after_space.strip_prefix(':') {
        return (Some(hostname), None, None, message.trim_start_matches(' '));
    }
    if starts_message(after_space) {
        return (Some(hostname), None, None, after_space);
    }
    match split_tag(after_space) {
        Some((appname, procid, message)) => (Some(hostname), Some(appname), procid, message),
        None => (Some(hostname), None, None, after_space),
    }
}

/// Text that is clearly message, not a tag: structured data, JSON, quoted text, Cisco ids,
/// key=value.
fn starts_message(text: &str) -> bool {
    if text.starts_with(['[', '{', '"', '%', '<']) {
        return true;
    }
    // Whether the first word holds a `=`.
    text.bytes()
        .take_while(|byte| *byte != b' ')
        .any(|byte| byte == b'=')
}

/// Where `byte` (ASCII) first occurs in `text`. A plain loop: the header words searched here
/// are a few dozen bytes long, where `str::find`'s `memchr` set-up costs more than the scan
/// (it showed in profiles).
fn byte_position(text: &str, byte: u8) -> Option<usize> {
    text.bytes().position(|candidate| candidate == byte)
}

/// `TAG[PID]: MSG`, `TAG: MSG` or `TAG[PID] MSG`.
fn split_tag(text: &str) -> Option<(&str, Option<&str>, &str)> {
    let tag_end = text.find([' ', '[', ':'])?;
    let appname = &text[..tag_end];
    if appname.is_empty() || appname.len() > 64 {
        return None;
    }
    let mut rest = &text[tag_end..];
    let mut procid = None;
    if let Some(after_bracket) = rest.strip_prefix('[') {
        let close = byte_position(after_bracket, b']')?;
        procid = Some(&after_bracket[..close]);
        rest = &after_bracket[close + 1..];
    }
    // A tag ends in a colon (`sshd:`) or carries a pid (`sshd[42]`); a bare word is the
    // message's first word, as go-syslog reads `host Use the BFG!`.
    let has_colon = rest.starts_with(':');
    rest = rest.strip_prefix(':').unwrap_or(rest);
    if !(has_colon || procid.is_some()) || !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some((appname, procid, rest.trim_start_matches(' ')))
}

/// rsyslog puts RFC 5424 structured data after a BSD tag; keep it when it is well formed.
fn take_structured_data<'a>(message: &'a str, event: &mut Event) -> &'a str {
    let mut elements = serde_json::Map::new();
    let mut rest = message;
    while let Some(after_open) = rest.strip_prefix('[') {
        let Some((id, params, after)) = structured_element(after_open) else {
            return message;
        };
        elements.insert(id.to_owned(), Value::Object(params));
        rest = after;
    }
    if elements.is_empty() || !(rest.is_empty() || rest.starts_with(' ')) {
        return message;
    }
    event
        .fields
        .insert("structured_data".into(), Value::Object(elements));
    rest.trim_start_matches(' ')
}

fn structured_element(text: &str) -> Option<(&str, serde_json::Map<String, Value>, &str)> {
    let id_end = text.find([' ', ']', '=', '"'])?;
    let id = &text[..id_end];
    // `[50028442.088484]` is a kernel uptime stamp, not an SD-ID.
    if id.is_empty() || id.bytes().all(|byte| byte.is_ascii_digit() || byte == b'.') {
        return None;
    }
    let mut params = serde_json::Map::new();
    let mut rest = &text[id_end..];
    loop {
        if let Some(after) = rest.strip_prefix(']') {
            return Some((id, params, after));
        }
        rest = rest.strip_prefix(' ')?;
        let name_end = rest.find('=')?;
        let name = &rest[..name_end];
        if name.is_empty() || name.contains([' ', ']', '"']) {
            return None;
        }
        rest = rest[name_end + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut characters = rest.char_indices();
        let end = loop {
            match characters.next()? {
                (index, '"') => break index,
                (_, '\\') => match characters.next()? {
                    (_, escaped @ ('"' | '\\' | ']')) => value.push(escaped),
                    (_, other) => {
                        value.push('\\');
                        value.push(other);
                    }
                },
                (_, other) => value.push(other),
            }
        };
        params.insert(name.to_owned(), Value::from(value));
        rest = &rest[end + 1..];
    }
}

/// `%ASA-4-106023: …` → `ASA-4-106023` (Cisco IOS/ASA/NX-OS message ids).
fn cisco_message_id(message: &str) -> Option<&str> {
    let after = message.strip_prefix('%')?;
    let end = after.find(':')?;
    let id = &after[..end];
    let well_formed = id.matches('-').count() >= 2
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    well_formed.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{new_event, ParseContext};

    fn parse_text(text: &str) -> Event {
        let context = ParseContext::new("test");
        let mut event = new_event(text.as_bytes(), &context, 1);
        if let Err(error) = parse(text, &context, &mut event) {
            panic!("{text}: {error:?}");
        }
        event
    }

    fn header(event: &Event) -> (Option<&str>, Option<&str>, Option<u32>, Option<&str>) {
        (
            event.core.host_name.as_deref(),
            event.core.process_name.as_deref(),
            event.core.process_pid,
            event.core.message.as_deref(),
        )
    }

    #[test]
    fn classic_header() {
        let event = parse_text("<38>Feb  5 17:32:18 web01 sshd[4321]: Accepted password for root");
        assert_eq!(
            header(&event),
            (
                Some("web01"),
                Some("sshd"),
                Some(4321),
                Some("Accepted password for root")
            )
        );
        assert_eq!(event.logsource.service.as_deref(), Some("sshd"));
    }

    #[test]
    fn missing_pri_and_missing_hostname() {
        let event =
            parse_text("Feb  5 17:32:18 web01 sudo: pam_unix(sudo:session): session opened");
        assert_eq!(header(&event).1, Some("sudo"));
        let event = parse_text("<133>Jan 13 16:33:35 haproxy[73411]: Proxy started.");
        assert_eq!(
            header(&event),
            (None, Some("haproxy"), Some(73411), Some("Proxy started."))
        );
    }

    #[test]
    fn cisco_asa_with_year_and_message_id() {
        let event =
            parse_text("<166>Jun 11 2013 19:41:20: %ASA-6-302013: Built outbound TCP connection");
        assert_eq!(event.core.event_code.as_deref(), Some("ASA-6-302013"));
        assert_eq!(event.timestamp.to_rfc3339(), "2013-06-11T12:41:20+00:00");
        assert!(event.core.host_name.is_none());
    }

    #[test]
    fn iso_timestamp_and_rsyslog_structured_data() {
        let event = parse_text("<190>2019-02-13T21:53:30.605850+00:00 host liblogging-stdlog:  [origin software=\"rsyslogd\" x-pid=\"9043\"] start");
        assert_eq!(event.core.message.as_deref(), Some("start"));
        assert_eq!(
            event.field("structured_data.origin.x-pid").as_deref(),
            Some(&Value::from("9043"))
        );
    }

    #[test]
    fn headerless_text_is_rejected() {
        let context = ParseContext::new("test");
        let mut event = new_event(b"gobbledegook", &context, 1);
        assert!(parse("complete and utter gobbledegook", &context, &mut event).is_err());
    }
}
