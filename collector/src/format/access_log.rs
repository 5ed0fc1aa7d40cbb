//! Apache/nginx access logs: common and combined formats, with the variants seen in the wild
//! (a virtual host `vhost[:port]` before the client, a missing ident column, `-` for absent
//! values, extra nginx fields after the user agent, request lines that are not HTTP at all such
//! as TLS handshakes logged as `"\x16\x03\x01"`).
//!
//! ```text
//! [vhost[:port]] host ident authuser [dd/Mon/yyyy:HH:MM:SS +zzzz] "METHOD URL PROTO" status bytes ["referer" "user-agent" [extra]]
//! ```
//!
//! Field names (in `fields`, values as strings exactly as written, quotes removed, escapes kept):
//! Logstash's `HTTPD_COMBINEDLOG` names, which the CrowdSec apache2 parser shares: `clientip`,
//! `ident`, `auth`, `timestamp`, `verb`, `request`, `httpversion` (`1.1`), `rawrequest` (a request
//! line that is not `METHOD target [HTTP/x.y]`), `response`, `bytes`, `referrer`, `agent`, plus
//! `vhost`/`vhost_port` and `extra` (anything after the user agent). The same values are also
//! stored under the W3C names SigmaHQ's webserver rules use: `c-ip`, `cs-username`, `cs-method`,
//! `cs-uri-stem` (path), `cs-uri-query` (query without `?`, only when there is one), `cs-version`
//! (`HTTP/1.1`), `sc-status`, `sc-bytes`, `cs-referer`, `cs-user-agent`, `cs-host`.
//!
//! Core: `source.ip` (when the client is an address), `user.name` (unless `-`),
//! `http.request.method`, `url.original`, `http.response.status_code`, `user_agent.original`
//! (unless `-`). Logsource category `webserver`; the product (apache or nginx) cannot be told
//! from the line.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::event::{Event, Format, LogSource};
use crate::format::FormatError;
use crate::parse::ParseContext;
use crate::timestamp::{local_to_utc, within_event_years};

/// How far into the line [`looks_like`] looks for the `[` of the timestamp.
const MAX_HEAD: usize = 320;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// True when the line has 1 to 4 words, then `[dd/Mon/yyyy:HH:MM:SS …] "`. Scans bytes only.
pub fn looks_like(text: &str) -> bool {
    let bytes = text.as_bytes();
    let head = &bytes[..bytes.len().min(MAX_HEAD)];
    let Some(open) = memchr::memchr(b'[', head) else {
        return false;
    };
    if open < 2 || bytes[open - 1] != b' ' || bytes[0] == b' ' {
        return false;
    }
    let words = bytes[..open - 1].split(|byte| *byte == b' ').count();
    if words > 4 || bytes[..open - 1].contains(&b'"') {
        return false;
    }
    let Some(date) = bytes.get(open + 1..open + 21) else {
        return false;
    };
    if !is_clf_date(date) {
        return false;
    }
    let after_date = &bytes[open + 21..];
    match memchr::memchr(b']', &after_date[..after_date.len().min(8)]) {
        Some(close) => after_date.get(close + 1..close + 3) == Some(b" \""),
        None => false,
    }
}

/// `dd/Mon/yyyy:HH:MM:SS` (exactly 20 bytes).
fn is_clf_date(date: &[u8]) -> bool {
    let digit = |index: usize| date.get(index).is_some_and(u8::is_ascii_digit);
    date.len() == 20
        && digit(0)
        && digit(1)
        && date[2] == b'/'
        && MONTHS
            .iter()
            .any(|month| date[3..6].eq_ignore_ascii_case(&month[..]))
        && date[6] == b'/'
        && (7..11).all(digit)
        && date[11] == b':'
        && digit(12)
        && digit(13)
        && date[14] == b':'
        && digit(15)
        && digit(16)
        && date[17] == b':'
        && digit(18)
        && digit(19)
}

/// Reads `dd/Mon/yyyy:HH:MM:SS` with an optional `±hhmm` zone (without one, the time is local
/// to the context's zone). Also used for the Proxmox firewall header, which writes the same.
pub(crate) fn clf_timestamp(
    date: &str,
    zone: Option<&str>,
    context: &ParseContext,
) -> Option<DateTime<Utc>> {
    let bytes = date.as_bytes();
    if !is_clf_date(bytes) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| date.get(range)?.parse::<u32>().ok();
    let month = MONTHS
        .iter()
        .position(|month| bytes[3..6].eq_ignore_ascii_case(&month[..]))? as u32
        + 1;
    let day = NaiveDate::from_ymd_opt(number(7..11)? as i32, month, number(0..2)?)?;
    let time = NaiveTime::from_hms_opt(number(12..14)?, number(15..17)?, number(18..20)?.min(59))?;
    let naive = NaiveDateTime::new(day, time);
    match zone {
        Some(zone) => {
            let offset = numeric_zone(zone)?;
            offset
                .from_local_datetime(&naive)
                .single()
                .map(|time| time.with_timezone(&Utc))
                .and_then(within_event_years)
        }
        None => local_to_utc(naive, context.timezone),
    }
}

/// `+0200`, `-0700`.
fn numeric_zone(zone: &str) -> Option<FixedOffset> {
    let bytes = zone.as_bytes();
    if bytes.len() != 5 || !bytes[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hours = i32::from(bytes[1] - b'0') * 10 + i32::from(bytes[2] - b'0');
    let minutes = i32::from(bytes[3] - b'0') * 10 + i32::from(bytes[4] - b'0');
    let seconds = hours * 3600 + minutes * 60;
    match bytes[0] {
        b'+' => FixedOffset::east_opt(seconds),
        b'-' => FixedOffset::east_opt(-seconds),
        _ => None,
    }
}

/// The index of the `"` closing a quoted field whose content starts at `from`: a quote not
/// escaped by a backslash and followed by a space or the end of the line. Apache writes a quote
/// inside the request as `\"`; nginx as `\x22`.
fn closing_quote(bytes: &[u8], from: usize) -> Option<usize> {
    let mut position = from;
    while let Some(byte) = bytes.get(position) {
        match byte {
            b'\\' => position += 2,
            b'"' if matches!(bytes.get(position + 1), None | Some(b' ')) => return Some(position),
            _ => position += 1,
        }
    }
    None
}

/// The parts of one access log line, as slices of it.
#[derive(Default)]
struct AccessLine<'a> {
    vhost: Option<&'a str>,
    clientip: Option<&'a str>,
    ident: Option<&'a str>,
    auth: Option<&'a str>,
    timestamp: &'a str,
    request_line: &'a str,
    response: &'a str,
    bytes: Option<&'a str>,
    referrer: Option<&'a str>,
    agent: Option<&'a str>,
    extra: Option<&'a str>,
}

/// Parses an access log line.
pub fn parse(text: &str, context: &ParseContext, event: &mut Event) -> Result<(), FormatError> {
    let (line, time) = split_line(text, context)?;
    event.format = Format::AccessLog;
    event.timestamp = time;
    record_fields(&line, event);
    if event.core.message.is_none() {
        event.core.message = Some(text.to_owned());
    }
    event.logsource = LogSource::from_static(None, Some("webserver"), None);
    Ok(())
}

fn split_line<'a>(
    text: &'a str,
    context: &ParseContext,
) -> Result<(AccessLine<'a>, DateTime<Utc>), FormatError> {
    let bytes = text.as_bytes();
    let open = memchr::memchr(b'[', bytes).ok_or_else(|| {
        FormatError::new("expecting a `[dd/Mon/yyyy:HH:MM:SS +zzzz]` timestamp", 0)
    })?;
    let mut line = AccessLine::default();
    read_client(&text[..open], &mut line)?;

    let close = memchr::memchr(b']', &bytes[open..])
        .map(|close| open + close)
        .ok_or_else(|| FormatError::new("expecting `]` after the timestamp", open))?;
    line.timestamp = &text[open + 1..close];
    let (date, zone) = match line.timestamp.split_once(' ') {
        Some((date, zone)) => (date, Some(zone)),
        None => (line.timestamp, None),
    };
    let time = clf_timestamp(date, zone, context).ok_or_else(|| {
        FormatError::new(
            "expecting a `dd/Mon/yyyy:HH:MM:SS +zzzz` timestamp",
            open + 1,
        )
    })?;

    let request_start = close + 3;
    if bytes.get(close + 1..request_start) != Some(b" \"") {
        return Err(FormatError::new(
            "expecting a quoted request line after the timestamp",
            close + 1,
        ));
    }
    let request_end = closing_quote(bytes, request_start)
        .ok_or_else(|| FormatError::new("unterminated quoted request line", request_start - 1))?;
    line.request_line = &text[request_start..request_end];

    let mut position = request_end + 1;
    let (response, after) = next_word(text, position);
    if response.is_empty()
        || !(response == "-" || response.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return Err(FormatError::new(
            "expecting an HTTP status code after the request line",
            position,
        ));
    }
    line.response = response;
    position = after;
    let (size, after) = next_word(text, position);
    if !size.is_empty() {
        line.bytes = Some(size);
        position = after;
    }
    line.referrer = quoted_at(text, &mut position);
    if line.referrer.is_some() {
        line.agent = quoted_at(text, &mut position);
    }
    let extra = text[position.min(text.len())..].trim();
    if !extra.is_empty() {
        line.extra = Some(extra);
    }
    Ok((line, time))
}

/// `[vhost[:port]] clientip ident auth`, with the ident column missing in some nginx formats.
fn read_client<'a>(head: &'a str, line: &mut AccessLine<'a>) -> Result<(), FormatError> {
    let mut words = [""; 4];
    let mut count = 0;
    for word in head.split(' ').filter(|word| !word.is_empty()) {
        if count == words.len() {
            return Err(FormatError::new(
                "expecting at most four words before the timestamp",
                0,
            ));
        }
        words[count] = word;
        count += 1;
    }
    let (vhost, clientip, ident, auth) = match count {
        4 => (Some(words[0]), words[1], Some(words[2]), Some(words[3])),
        3 => (None, words[0], Some(words[1]), Some(words[2])),
        // `$remote_addr - [time]`: nginx formats that drop one of the two columns.
        2 => (None, words[0], None, Some(words[1])),
        1 => (None, words[0], None, None),
        _ => {
            return Err(FormatError::new(
                "expecting the client address before the timestamp",
                0,
            ))
        }
    };
    line.vhost = vhost;
    line.clientip = Some(clientip);
    line.ident = ident;
    line.auth = auth;
    Ok(())
}

/// The next space-separated word after `position` and where it ends.
fn next_word(text: &str, position: usize) -> (&str, usize) {
    let Some(rest) = text.get(position..) else {
        return ("", text.len());
    };
    let trimmed = rest.trim_start_matches(' ');
    let start = position + (rest.len() - trimmed.len());
    let length = trimmed.find(' ').unwrap_or(trimmed.len());
    (&trimmed[..length], start + length)
}

/// A quoted field at `position` (after spaces); moves `position` past it.
fn quoted_at<'a>(text: &'a str, position: &mut usize) -> Option<&'a str> {
    let bytes = text.as_bytes();
    let mut start = *position;
    while bytes.get(start) == Some(&b' ') {
        start += 1;
    }
    if bytes.get(start) != Some(&b'"') {
        return None;
    }
    let close = closing_quote(bytes, start + 1)?;
    *position = close + 1;
    Some(&text[start + 1..close])
}

/// `METHOD target HTTP/x.y` (or HTTP/0.9's `METHOD target`), when the line is one.
fn split_request(request_line: &str) -> Option<(&str, &str, Option<&str>)> {
    let (method, rest) = request_line.split_once(' ')?;
    let method_ok = !method.is_empty()
        && method.len() <= 24
        && method
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte == b'_' || byte == b'-');
    if !method_ok || rest.is_empty() {
        return None;
    }
    match rest.rsplit_once(' ') {
        Some((target, protocol)) if protocol.starts_with("HTTP/") && !target.is_empty() => {
            Some((method, target, Some(protocol)))
        }
        _ if !rest.contains(' ') => Some((method, rest, None)),
        _ => None,
    }
}

fn record_fields(line: &AccessLine<'_>, event: &mut Event) {
    let raw_len = event.raw_len();
    let fields = &mut event.fields;
    // Text values in the map's one text buffer (`Fields::insert_text`) rather than a
    // `Value::String` each. Several values are stored under two names (`clientip` and
    // `c-ip`, the request's parts), so the buffer gets room for two copies of the line: one
    // allocation for nearly every line (a longer one grows it once).
    fields.reserve_text(raw_len.saturating_mul(2));
    let mut put = |names: &[&'static str], value: &str| {
        for name in names {
            fields.insert_text((*name).into(), value);
        }
    };
    if let Some(vhost) = line.vhost {
        put(&["cs-host"], vhost);
        match vhost
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|byte| byte.is_ascii_digit()))
        {
            Some((host, port)) => {
                put(&["vhost"], host);
                put(&["vhost_port"], port);
            }
            None => put(&["vhost"], vhost),
        }
    }
    if let Some(clientip) = line.clientip {
        put(&["clientip", "c-ip"], clientip);
    }
    if let Some(ident) = line.ident {
        put(&["ident"], ident);
    }
    if let Some(auth) = line.auth {
        put(&["auth", "cs-username"], auth);
    }
    put(&["timestamp"], line.timestamp);
    let request = split_request(line.request_line);
    match request {
        Some((method, target, protocol)) => {
            put(&["verb", "cs-method"], method);
            put(&["request"], target);
            match target.split_once('?') {
                Some((stem, query)) => {
                    put(&["cs-uri-stem"], stem);
                    put(&["cs-uri-query"], query);
                }
                None => put(&["cs-uri-stem"], target),
            }
            if let Some(protocol) = protocol {
                put(&["cs-version"], protocol);
                put(&["httpversion"], protocol.trim_start_matches("HTTP/"));
            }
        }
        None => put(&["rawrequest"], line.request_line),
    }
    put(&["response", "sc-status"], line.response);
    if let Some(size) = line.bytes {
        put(&["bytes", "sc-bytes"], size);
    }
    if let Some(referrer) = line.referrer {
        put(&["referrer", "cs-referer"], referrer);
    }
    if let Some(agent) = line.agent {
        put(&["agent", "cs-user-agent"], agent);
    }
    if let Some(extra) = line.extra {
        put(&["extra"], extra);
    }

    let core = &mut event.core;
    core.source_ip = line
        .clientip
        .filter(|client| client.parse::<std::net::IpAddr>().is_ok())
        .map(Into::into);
    core.user_name = line.auth.filter(|auth| *auth != "-").map(Into::into);
    if let Some((method, target, _)) = request {
        core.http_request_method = Some(method.to_owned());
        core.url_original = Some(target.to_owned());
    }
    core.http_response_status_code = line.response.parse().ok();
    core.user_agent_original = line
        .agent
        .filter(|agent| !agent.is_empty() && *agent != "-")
        .map(str::to_owned);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::new_event;
    use serde_json::Value;

    fn parse_line(text: &str) -> Event {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::UTC;
        let mut event = new_event(text.as_bytes(), &context, 1);
        parse(text, &context, &mut event).unwrap_or_else(|error| panic!("{text}: {error:?}"));
        event
    }

    fn field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
        event.fields.get(name).and_then(Value::as_str)
    }

    #[test]
    fn looks_like_access_lines_only() {
        assert!(looks_like(
            r#"127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326"#
        ));
        assert!(looks_like(
            r#"www.x.net:80 1.2.3.4 - - [08/Jun/2020:08:04:43 +0000] "GET / HTTP/1.1" 301 0"#
        ));
        assert!(!looks_like(
            "[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10]"
        ));
        assert!(!looks_like(
            "Feb  5 17:32:18 web01 sshd[4321]: Accepted password for root"
        ));
        assert!(!looks_like(
            "a b c d e [10/Oct/2000:13:55:36 -0700] \"GET\""
        ));
        assert!(!looks_like(""));
    }

    #[test]
    fn combined_line() {
        let event = parse_line(
            r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1&b=2 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
        );
        assert_eq!(event.format, Format::AccessLog);
        assert_eq!(event.timestamp.to_rfc3339(), "2000-10-10T20:55:36+00:00");
        assert_eq!(event.core.source_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(event.core.user_name.as_deref(), Some("frank"));
        assert_eq!(event.core.http_request_method.as_deref(), Some("GET"));
        assert_eq!(
            event.core.url_original.as_deref(),
            Some("/apache_pb.gif?a=1&b=2")
        );
        assert_eq!(event.core.http_response_status_code, Some(200));
        assert_eq!(
            event.core.user_agent_original.as_deref(),
            Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
        );
        assert_eq!(field(&event, "cs-uri-stem"), Some("/apache_pb.gif"));
        assert_eq!(field(&event, "cs-uri-query"), Some("a=1&b=2"));
        assert_eq!(field(&event, "httpversion"), Some("1.0"));
        assert_eq!(
            field(&event, "cs-referer"),
            Some("http://www.example.com/start.html")
        );
        assert_eq!(event.logsource.category.as_deref(), Some("webserver"));
    }

    #[test]
    fn malformed_request_and_escaped_quote_and_extras() {
        let event = parse_line(
            r#"1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "\x16\x03\x01\x01 \x02" 400 226 "-" "-""#,
        );
        assert_eq!(field(&event, "rawrequest"), Some(r"\x16\x03\x01\x01 \x02"));
        assert!(event.core.http_request_method.is_none());
        assert!(event.core.user_agent_original.is_none());
        let event = parse_line(
            r#"1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "GET /a\"b HTTP/1.1" 200 1 "-" "ua" 0.003 "upstream""#,
        );
        assert_eq!(field(&event, "request"), Some(r#"/a\"b"#));
        assert_eq!(field(&event, "extra"), Some(r#"0.003 "upstream""#));
        let event = parse_line(
            r#"83.149.9.216 - a.user [11/Jan/2020:23:05:27 +0100] "OPTIONS /remote.php/ HTTP/1.1" - 7908 "-" "monitoring-client (v2.2)""#,
        );
        assert_eq!(event.core.http_response_status_code, None);
        assert_eq!(field(&event, "bytes"), Some("7908"));
    }

    #[test]
    fn errors_say_where() {
        let mut context = ParseContext::new("test");
        context.timezone = chrono_tz::UTC;
        let mut event = new_event(b"", &context, 1);
        let offset = |text: &str, event: &mut Event| {
            parse(text, &context, event).err().map(|error| error.offset)
        };
        assert_eq!(
            offset(
                "1.2.3.4 - - [99/Foo/2023:05:57:49 +1100] \"GET /\" 200 1",
                &mut event
            ),
            Some(13)
        );
        assert_eq!(
            offset(
                "1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] \"GET / 200 1",
                &mut event
            ),
            Some(41)
        );
        assert_eq!(
            offset(
                "1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] \"GET /\" OK 1",
                &mut event
            ),
            Some(48)
        );
        assert!(event.fields.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "[ a-zA-Z0-9\"\\\\\\[\\]:/+-]{0,60}|1\\.2 - - \\[[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9:]{8} [+-][0-9]{4}\\] \\PC{0,40}") {
            let mut context = ParseContext::new("test");
            context.timezone = chrono_tz::UTC;
            let mut event = new_event(text.as_bytes(), &context, 1);
            let _ = looks_like(&text);
            let _ = parse(&text, &context, &mut event);
        }
    }
}
