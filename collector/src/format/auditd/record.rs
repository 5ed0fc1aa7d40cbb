//! One audit record as auditd writes it: an optional envelope (a syslog header when audispd or
//! rsyslog forwarded it, `node=host` when the record came from another machine), `type=`, the
//! `msg=audit(seconds.millis:serial):` stamp, then the key/value body.
//!
//! The body is read the way auditd writes it rather than as generic key=value: strings are
//! either `"quoted"` or, when they hold spaces or control characters, written unquoted as
//! upper-case hex (`proctitle=617270002D61`); userspace records carry a second key/value list in
//! `msg='…'`; ENRICHED logs add interpreted upper-case keys after a 0x1D byte. Free words
//! (`avc:  denied  { read } for`, `PAM: accounting`) are skipped, so one odd token never costs
//! the rest of the record.

use chrono::{DateTime, Utc};
use memchr::memmem;
use serde_json::Value;

use crate::event::Fields;
use crate::format::syslog_common::parse_pri;
use crate::format::FormatError;
use crate::timestamp::{bsd_timestamp, epoch_seconds, iso8601};

/// The stamp every audit record carries after its type.
const STAMP_PREFIX: &str = "msg=audit(";

/// How far into a line `looks_like` searches for the stamp: a syslog envelope plus `node=` and
/// the longest record type name fit easily, and scanning stops early on long lines.
const DETECTION_WINDOW: usize = 512;

/// Group separator: ENRICHED auditd logs put it before the interpreted upper-case fields.
const ENRICHED_SEPARATOR: u8 = 0x1D;

/// Keys whose unquoted values auditd writes hex-encoded (untrusted strings). Decoded to text the
/// way `ausearch -i` does. EXECVE arguments are handled separately (`a0`, `a1[2]`, …).
const HEX_ENCODED_KEYS: &[&str] = &[
    "proctitle",
    "exe",
    "comm",
    "name",
    "cwd",
    "data",
    "acct",
    "cmd",
    "dir",
    "path",
    "new_name",
    "old_name",
];

/// One parsed audit record, owned so the grouper can keep it until its event is complete.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditRecord {
    /// `SYSCALL`, `EXECVE`, `USER_LOGIN`, … as written.
    pub record_type: String,
    /// The event time from the stamp.
    pub timestamp: DateTime<Utc>,
    /// The stamp's time as written (`1170021493.977`); with `serial` and `node` it names the event.
    pub seconds: String,
    /// The serial number from the stamp.
    pub serial: u64,
    /// `node=` before `type=`, when the record came through a multi-host dispatcher.
    pub node: Option<String>,
    /// The host name of a syslog envelope.
    pub syslog_host: Option<String>,
    /// The program name of a syslog envelope (`audispd`, `audisp-syslog`).
    pub syslog_program: Option<String>,
    /// The body's key/values, hex already decoded, `msg='…'` flattened.
    pub fields: Fields,
    /// Things that were odd but did not stop the record from being read.
    pub warnings: Vec<String>,
}

/// The searcher for [`STAMP_PREFIX`], built once: `memmem::find` builds one per call, and
/// `auto` asks every syslog line whether it is audit (3% of the collector's profile).
fn stamp_finder() -> &'static memmem::Finder<'static> {
    static FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(STAMP_PREFIX));
    &FINDER
}

/// True when `text` carries an audit stamp after a `type=` (bare, after `node=`, or inside a
/// syslog envelope). Cheap: one substring search over the first few hundred bytes.
pub fn looks_like(text: &str) -> bool {
    let bytes = text.as_bytes();
    let window = &bytes[..bytes.len().min(DETECTION_WINDOW)];
    // A stamp needs a `(`, which most syslog lines lack: one `memchr` (a quarter of the
    // searcher's cost, which every line `auto` reads paid) rules them out.
    if memchr::memchr(b'(', window).is_none() {
        return false;
    }
    match stamp_finder().find(window) {
        Some(stamp) => text.get(..stamp).and_then(last_type_key).is_some(),
        None => false,
    }
}

/// Byte position of the last `type=` that starts a word in `prefix`.
fn last_type_key(prefix: &str) -> Option<usize> {
    let mut search_end = prefix.len();
    while let Some(position) = prefix.get(..search_end)?.rfind("type=") {
        if position == 0
            || prefix
                .as_bytes()
                .get(position - 1)
                .is_some_and(u8::is_ascii_whitespace)
        {
            return Some(position);
        }
        search_end = position;
    }
    None
}

/// Byte position of the first `type=` that starts a word.
fn first_type_key(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text.get(from..)?.find("type=") {
        let position = from + found;
        if position == 0
            || text
                .as_bytes()
                .get(position - 1)
                .is_some_and(u8::is_ascii_whitespace)
        {
            return Some(position);
        }
        from = position + 1;
    }
    None
}

/// Parses one audit record line.
pub(crate) fn parse_record(text: &str) -> Result<AuditRecord, FormatError> {
    let stamp_position = stamp_finder().find(text.as_bytes());
    let type_position = match stamp_position {
        Some(stamp) => text.get(..stamp).and_then(last_type_key),
        None => first_type_key(text),
    }
    .ok_or_else(|| {
        FormatError::new(
            "expecting `type=` (an audit record starts with `type=`, `node=` or a syslog header)",
            0,
        )
    })?;

    let (node, syslog_host, syslog_program) = parse_prefix(&text[..type_position]);

    let type_start = type_position + "type=".len();
    let after_type = &text[type_start..];
    let type_length = after_type.find([' ', '\t']).unwrap_or(after_type.len());
    let record_type = &after_type[..type_length];
    if record_type.is_empty() {
        return Err(FormatError::new(
            "expecting a record type after `type=`",
            type_start,
        ));
    }

    let stamp_search = type_start + type_length;
    let rest = text[stamp_search..].trim_start_matches([' ', '\t']);
    let stamp_start = text.len() - rest.len();
    let Some(stamp_inner) = rest.strip_prefix(STAMP_PREFIX) else {
        return Err(FormatError::new(
            "expecting `msg=audit(seconds.millis:serial)` after the record type",
            stamp_start,
        ));
    };
    let inner_start = stamp_start + STAMP_PREFIX.len();
    let (seconds, serial, after_stamp) = parse_stamp(stamp_inner, inner_start)?;
    let timestamp = epoch_seconds(seconds).ok_or_else(|| {
        FormatError::new(
            "the event time in `audit(...)` is out of range",
            inner_start,
        )
    })?;

    let body = after_stamp.strip_prefix(':').unwrap_or(after_stamp);
    let mut record = AuditRecord {
        record_type: record_type.to_owned(),
        timestamp,
        seconds: seconds.to_owned(),
        serial,
        node: node.map(str::to_owned),
        syslog_host: syslog_host.map(str::to_owned),
        syslog_program: syslog_program.map(str::to_owned),
        fields: Fields::new(),
        warnings: Vec::new(),
    };
    read_selinux_avc_verdict(body, &mut record.fields);
    scan_pairs(
        body,
        &record.record_type,
        &mut record.fields,
        &mut record.warnings,
    );
    if record.record_type == "EXECVE" {
        join_split_arguments(&mut record.fields);
    }
    Ok(record)
}

/// Reads `seconds.millis:serial)` and returns the rest after `)`.
fn parse_stamp(inner: &str, offset: usize) -> Result<(&str, u64, &str), FormatError> {
    let seconds_length = inner
        .bytes()
        .take_while(|byte| byte.is_ascii_digit() || *byte == b'.')
        .count();
    if seconds_length == 0 {
        return Err(FormatError::new(
            "expecting the event time (seconds.millis) in `audit(...)`",
            offset,
        ));
    }
    let seconds = &inner[..seconds_length];
    let Some(after_colon) = inner[seconds_length..].strip_prefix(':') else {
        return Err(FormatError::new(
            "expecting `:` and a serial number after the event time",
            offset + seconds_length,
        ));
    };
    let serial_start = seconds_length + 1;
    let serial_length = after_colon.bytes().take_while(u8::is_ascii_digit).count();
    let serial = after_colon[..serial_length].parse::<u64>().map_err(|_| {
        FormatError::new(
            "expecting a serial number after `:` in `audit(...)`",
            offset + serial_start,
        )
    })?;
    let Some(rest) = after_colon[serial_length..].strip_prefix(')') else {
        return Err(FormatError::new(
            "expecting `)` after the serial number",
            offset + serial_start + serial_length,
        ));
    };
    Ok((seconds, serial, rest))
}

/// Splits what precedes `type=` into `node=`, and a syslog envelope's host and program.
fn parse_prefix(prefix: &str) -> (Option<&str>, Option<&str>, Option<&str>) {
    let prefix = prefix.trim_end();
    if prefix.is_empty() {
        return (None, None, None);
    }
    let (envelope, node) = match prefix.rfind("node=") {
        Some(position)
            if position == 0
                || prefix
                    .as_bytes()
                    .get(position - 1)
                    .is_some_and(u8::is_ascii_whitespace) =>
        {
            let value = &prefix[position + "node=".len()..];
            let value = value.split_ascii_whitespace().next().unwrap_or("");
            (&prefix[..position], (!value.is_empty()).then_some(value))
        }
        _ => (prefix, None),
    };
    let (host, program) = parse_envelope(envelope);
    (node, host, program)
}

/// Reads `[<PRI>][timestamp] [host] program[pid]:` loosely: the host is the word before the
/// program, the program the last word when it ends with `:`.
fn parse_envelope(envelope: &str) -> (Option<&str>, Option<&str>) {
    let mut rest = envelope.trim();
    if rest.starts_with('<') {
        if let Ok((_, used)) = parse_pri(rest) {
            rest = rest.get(used..).unwrap_or("").trim_start();
        }
    }
    if let Ok((after, _)) = bsd_timestamp(rest) {
        rest = after;
    } else if let Ok((after, _)) = iso8601(rest, chrono_tz::UTC) {
        rest = after;
    }
    let words: Vec<&str> = rest.split_ascii_whitespace().collect();
    let Some(last) = words.last() else {
        return (None, None);
    };
    let Some(program) = last.strip_suffix(':') else {
        return (None, None);
    };
    let program = program.split('[').next().unwrap_or(program);
    let host = words
        .len()
        .checked_sub(2)
        .and_then(|index| words.get(index))
        .copied();
    (host, (!program.is_empty()).then_some(program))
}

/// SELinux AVC records start with `avc:  denied  { read } for`; keep the verdict and the
/// permissions (`seresult`, `seperms`, go-libaudit's names) since they are not key=value.
fn read_selinux_avc_verdict(body: &str, fields: &mut Fields) {
    let Some(after) = body.trim_start().strip_prefix("avc:") else {
        return;
    };
    let after = after.trim_start();
    let verdict = after.split_ascii_whitespace().next().unwrap_or("");
    if !verdict.is_empty() && verdict != "{" {
        fields.insert("seresult".into(), Value::from(verdict));
    }
    if let (Some(open), Some(close)) = (after.find('{'), after.find('}')) {
        if open < close {
            let permissions: Vec<&str> = after[open + 1..close].split_ascii_whitespace().collect();
            fields.insert("seperms".into(), Value::from(permissions.join(",")));
        }
    }
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'[' | b']')
}

/// Where a bare value ends. auditd never writes a quote inside a bare value (such strings are
/// hex-encoded), so a stray quote ends it too (`key=6578…74"` seen on Ubuntu 17.04).
fn is_value_end(byte: u8) -> bool {
    byte.is_ascii_whitespace() || matches!(byte, ENRICHED_SEPARATOR | b'"' | b'\'')
}

/// How a value was written, which decides whether it may be hex.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Bare,
    Double,
    Single,
}

/// Scans `body` for `key=value` pairs into `fields`, skipping free words.
fn scan_pairs(body: &str, record_type: &str, fields: &mut Fields, warnings: &mut Vec<String>) {
    let bytes = body.as_bytes();
    let mut position = 0;
    // A free word just before a key: `old auid=… new auid=…` (LOGIN) becomes `old_auid`/`new_auid`
    // instead of one silently overwriting the other.
    let mut previous_word: Option<&str> = None;
    while position < bytes.len() {
        let start = position;
        while position < bytes.len() && is_key_byte(bytes[position]) {
            position += 1;
        }
        if position == start {
            if !bytes[position].is_ascii_whitespace() {
                previous_word = None;
            }
            position += 1;
            continue;
        }
        let key = &body[start..position];
        if bytes.get(position) != Some(&b'=') {
            previous_word = Some(key);
            continue;
        }
        position += 1;
        let (value, quoting, next) = read_value(body, position, key, warnings);
        position = next;
        let key_name = match previous_word.take() {
            Some(word @ ("old" | "new")) => format!("{word}_{key}"),
            _ => key.to_owned(),
        };
        if key == "msg" && quoting == Quoting::Single {
            // Userspace records: the inner list is the interesting part; flatten it.
            scan_pairs(value, record_type, fields, warnings);
            continue;
        }
        let value = if quoting == Quoting::Bare {
            trim_bare_value(value)
        } else {
            value
        };
        fields.insert(
            key_name.into(),
            decode_value(record_type, key, value, quoting),
        );
    }
}

/// Reads the value starting at `position`; returns it, how it was quoted, and where to go on.
fn read_value<'a>(
    body: &'a str,
    position: usize,
    key: &str,
    warnings: &mut Vec<String>,
) -> (&'a str, Quoting, usize) {
    let bytes = body.as_bytes();
    let quote = match bytes.get(position) {
        Some(b'"') => Some((b'"', Quoting::Double)),
        Some(b'\'') => Some((b'\'', Quoting::Single)),
        _ => None,
    };
    if let Some((quote, quoting)) = quote {
        let inner_start = position + 1;
        let rest = body.get(inner_start..).unwrap_or("");
        return match memchr::memchr(quote, rest.as_bytes()) {
            Some(length) => (&rest[..length], quoting, inner_start + length + 1),
            None => {
                // Syslog relays cut long records; keep what arrived and say so.
                warnings.push(format!(
                    "unterminated quoted value of `{key}` at byte {position}; kept up to the end of the record"
                ));
                (rest, quoting, body.len())
            }
        };
    }
    let length = bytes
        .get(position..)
        .unwrap_or(&[])
        .iter()
        .position(|byte| is_value_end(*byte))
        .unwrap_or(bytes.len().saturating_sub(position));
    let value = body.get(position..position + length).unwrap_or("");
    let length = without_glued_enriched_key(value).len();
    (
        body.get(position..position + length).unwrap_or(""),
        Quoting::Bare,
        position + length,
    )
}

/// ENRICHED records relayed by tools that drop the 0x1D byte arrive as `key=(null)ARCH=x86_64`
/// or `res=1AUID="bui"`: an upper-case key glued to the previous value. Cut the value before
/// such a key so both pairs are read.
fn without_glued_enriched_key(value: &str) -> &str {
    let Some(equals) = value.find('=') else {
        return value;
    };
    let before = &value[..equals];
    let key_length = before
        .bytes()
        .rev()
        .take_while(|byte| byte.is_ascii_uppercase() || *byte == b'_')
        .count();
    if key_length >= 2 && key_length < before.len() {
        &before[..before.len() - key_length]
    } else {
        value
    }
}

/// RHEL 6 PAM records wrap the tail in parentheses (`(hostname=?, addr=?, terminal=cron
/// res=success)`): drop the list punctuation that is not part of the value.
fn trim_bare_value(value: &str) -> &str {
    let value = value.strip_suffix(',').unwrap_or(value);
    match value.strip_suffix(')') {
        Some(trimmed) if !value.contains('(') => trimmed,
        _ => value,
    }
}

/// The value to store: hex-decoded where auditd hex-encodes, `key` split on 0x01 into a list
/// when several rule keys matched.
fn decode_value(record_type: &str, key: &str, value: &str, quoting: Quoting) -> Value {
    if quoting != Quoting::Bare {
        return Value::from(value);
    }
    let hex_key =
        HEX_ENCODED_KEYS.contains(&key) || (record_type == "EXECVE" && is_execve_argument(key));
    if hex_key {
        if let Some(decoded) = decode_hex(value) {
            return Value::from(nuls_to_spaces(&decoded));
        }
    } else if key == "key" {
        if let Some(decoded) = decode_hex(value) {
            let keys: Vec<Value> = decoded
                .split(|byte| *byte == 0x01)
                .map(|part| Value::from(String::from_utf8_lossy(part).into_owned()))
                .collect();
            return match <[Value; 1]>::try_from(keys) {
                Ok([single]) => single,
                Err(keys) => Value::Array(keys),
            };
        }
    }
    Value::from(value)
}

/// `a0`, `a12`, `a1[0]` (a piece of a long argument); not `argc` or `a1_len`.
fn is_execve_argument(key: &str) -> bool {
    let Some(rest) = key.strip_prefix('a') else {
        return false;
    };
    let number_length = rest.bytes().take_while(u8::is_ascii_digit).count();
    number_length > 0 && (number_length == rest.len() || rest[number_length..].starts_with('['))
}

/// Upper-case hex of even length, as auditd writes it, decoded to bytes.
pub(crate) fn decode_hex(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return None;
    }
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    };
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Text from decoded bytes: NULs separate arguments (proctitle, cmd), so they become spaces
/// and trailing ones go; bytes that are not UTF-8 are replaced, the raw record keeps them.
fn nuls_to_spaces(decoded: &[u8]) -> String {
    let trimmed_length = decoded
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |last| last + 1);
    let text: Vec<u8> = decoded[..trimmed_length]
        .iter()
        .map(|byte| if *byte == 0 { b' ' } else { *byte })
        .collect();
    String::from_utf8_lossy(&text).into_owned()
}

/// auditd splits an argument longer than its buffer into `aN_len=… aN[0]=… aN[1]=…`; put the
/// pieces back together as `aN` so rules see the whole argument.
fn join_split_arguments(fields: &mut Fields) {
    let mut pieces: Vec<(u64, u64, String)> = Vec::new();
    for (key, value) in fields.iter() {
        let Some((argument, index)) = key.strip_prefix('a').and_then(|rest| rest.split_once('['))
        else {
            continue;
        };
        let (Ok(argument), Some(Ok(index))) = (
            argument.parse::<u64>(),
            index.strip_suffix(']').map(str::parse::<u64>),
        ) else {
            continue;
        };
        pieces.push((
            argument,
            index,
            value.as_str().unwrap_or_default().to_owned(),
        ));
    }
    if pieces.is_empty() {
        return;
    }
    pieces.sort_by_key(|(argument, index, _)| (*argument, *index));
    for (argument, index, _) in &pieces {
        fields.remove(&format!("a{argument}[{index}]"));
    }
    let mut joined: Vec<(u64, String)> = Vec::new();
    for (argument, _, text) in pieces {
        match joined.last_mut() {
            Some((last, value)) if *last == argument => value.push_str(&text),
            _ => joined.push((argument, text)),
        }
    }
    for (argument, value) in joined {
        fields.insert(format!("a{argument}").into(), Value::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> AuditRecord {
        parse_record(text).unwrap_or_else(|error| panic!("{text}: {error:?}"))
    }

    fn field<'a>(record: &'a AuditRecord, key: &str) -> &'a str {
        record
            .fields
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {key} in {:?}", record.fields))
    }

    #[test]
    fn detects_bare_node_and_syslog_wrapped_records() {
        assert!(looks_like(
            "type=SYSCALL msg=audit(1170021493.977:293): arch=c000003e"
        ));
        assert!(looks_like(
            "node=web1 type=EXECVE msg=audit(1.2:3): argc=1 a0=\"x\""
        ));
        assert!(looks_like(
            "Nov  2 10:00:00 web1 audispd: type=USER_LOGIN msg=audit(1.2:3): pid=1"
        ));
        assert!(looks_like(
            "<14>Nov  2 10:00:00 web1 audispd: node=a type=X msg=audit(1.2:3):"
        ));
        assert!(!looks_like(
            "Nov  2 10:00:00 web1 sshd[1]: Accepted password for root"
        ));
        assert!(!looks_like("subtype=x msg=audit(1.2:3)"));
        assert!(!looks_like("type=UNKNOWN[1329] msg=?"));
    }

    #[test]
    fn reads_stamp_quoted_bare_and_hex_values() {
        let record = parsed(
            "type=SYSCALL msg=audit(1490995752.404:20614537): arch=c000003e syscall=44 success=yes comm=\"charon\" exe=2F7573722F62696E2F782079 key=(null)",
        );
        assert_eq!(record.record_type, "SYSCALL");
        assert_eq!(record.serial, 20614537);
        assert_eq!(record.seconds, "1490995752.404");
        assert_eq!(record.timestamp.timestamp_millis(), 1490995752404);
        assert_eq!(field(&record, "comm"), "charon");
        assert_eq!(field(&record, "exe"), "/usr/bin/x y");
        assert_eq!(field(&record, "key"), "(null)");
        assert_eq!(field(&record, "arch"), "c000003e");
    }

    #[test]
    fn proctitle_nuls_become_spaces_and_execve_args_decode() {
        let record = parsed("type=PROCTITLE msg=audit(1.5:7): proctitle=617270002D6100");
        assert_eq!(field(&record, "proctitle"), "arp -a");
        let record =
            parsed("type=EXECVE msg=audit(1.5:7): argc=3 a0=\"jq\" a1=\".\" a2=7B0A7D a2_len=3");
        assert_eq!(field(&record, "a2"), "{\n}");
        assert_eq!(field(&record, "a2_len"), "3");
        // A SYSCALL record's a0 is a register value, never text.
        let record = parsed("type=SYSCALL msg=audit(1.5:7): a0=DEAD");
        assert_eq!(field(&record, "a0"), "DEAD");
    }

    #[test]
    fn split_long_arguments_are_joined() {
        let record = parsed(
            "type=EXECVE msg=audit(1.5:7): argc=2 a0=\"echo\" a1_len=6 a1[0]=\"abc\" a1[1]=646566",
        );
        assert_eq!(field(&record, "a1"), "abcdef");
        assert!(!record.fields.contains_key("a1[0]"));
    }

    #[test]
    fn userspace_msg_is_flattened_and_punctuation_trimmed() {
        let record = parsed(
            "type=USER_START msg=audit(1170021601.344:297): user pid=13015 uid=0 auid=0 msg='PAM: session open acct=root : exe=\"/usr/sbin/crond\" (hostname=?, addr=?, terminal=cron res=success)'",
        );
        assert_eq!(field(&record, "acct"), "root");
        assert_eq!(field(&record, "hostname"), "?");
        assert_eq!(field(&record, "res"), "success");
        assert_eq!(field(&record, "pid"), "13015");
        assert!(!record.fields.contains_key("msg"));
        let record = parsed(
            "type=USER_LOGIN msg=audit(1492896301.818:19955): pid=12635 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" res=failed'",
        );
        assert_eq!(field(&record, "acct"), "(invalid user)");
    }

    #[test]
    fn login_old_new_and_avc_verdict() {
        let record = parsed(
            "type=LOGIN msg=audit(1.2:296): login pid=13015 uid=0 old auid=4294967295 new auid=0",
        );
        assert_eq!(field(&record, "old_auid"), "4294967295");
        assert_eq!(field(&record, "new_auid"), "0");
        let record = parsed("type=AVC msg=audit(1.2:293): avc:  denied  { read write } for  pid=13010 comm=\"pickup\"");
        assert_eq!(field(&record, "seresult"), "denied");
        assert_eq!(field(&record, "seperms"), "read,write");
        assert_eq!(field(&record, "pid"), "13010");
    }

    #[test]
    fn envelope_and_node_and_enriched_fields() {
        let record = parsed("<14>Nov  2 10:00:00 web1 audispd[77]: node=db2 type=SYSCALL msg=audit(1.2:3): syscall=59 key=\"x\"\u{1d}ARCH=x86_64 SYSCALL=execve AUID=\"bui\"");
        assert_eq!(record.node.as_deref(), Some("db2"));
        assert_eq!(record.syslog_host.as_deref(), Some("web1"));
        assert_eq!(record.syslog_program.as_deref(), Some("audispd"));
        assert_eq!(field(&record, "SYSCALL"), "execve");
        assert_eq!(field(&record, "AUID"), "bui");
        assert_eq!(field(&record, "key"), "x");
        // Relays that dropped the 0x1D byte glue the enriched keys to the quoted value.
        let record =
            parsed("type=SYSCALL msg=audit(1.2:3): key=\"priv_esc\"ARCH=x86_64 SYSCALL=execve");
        assert_eq!(field(&record, "key"), "priv_esc");
        assert_eq!(field(&record, "ARCH"), "x86_64");
        let record = parsed("type=PATH msg=audit(1.2:3): cap_frootid=0OUID=\"root\" key=(null)ARCH=x86_64 res=1AUID=\"bui\" x=a=b");
        assert_eq!(field(&record, "cap_frootid"), "0");
        assert_eq!(field(&record, "OUID"), "root");
        assert_eq!(field(&record, "key"), "(null)");
        assert_eq!(field(&record, "ARCH"), "x86_64");
        assert_eq!(field(&record, "res"), "1");
        assert_eq!(field(&record, "AUID"), "bui");
        assert_eq!(field(&record, "x"), "a=b");
    }

    #[test]
    fn hex_rule_keys_split_on_0x01() {
        let record = parsed("type=SYSCALL msg=audit(1.2:3): key=65786563013634626974\" x=1");
        assert_eq!(
            record.fields.get("key"),
            Some(&serde_json::json!(["exec", "64bit"]))
        );
        assert_eq!(field(&record, "x"), "1");
    }

    #[test]
    fn errors_name_the_problem_and_the_byte() {
        let error = |text: &str| {
            parse_record(text)
                .err()
                .map(|error| (error.message.into_owned(), error.offset))
        };
        assert_eq!(error("hello").map(|e| e.1), Some(0));
        assert_eq!(error("type=UNKNOWN[1329] msg=?").map(|e| e.1), Some(19),);
        assert_eq!(error("type=X msg=audit(abc:1)").map(|e| e.1), Some(17));
        assert_eq!(error("type=X msg=audit(1.5-1)").map(|e| e.1), Some(20));
        assert_eq!(error("type=X msg=audit(1.5:1").map(|e| e.1), Some(22));
        assert_eq!(error("type= msg=audit(1.5:1)").map(|e| e.1), Some(5));
    }

    #[test]
    fn unterminated_quote_keeps_the_tail_with_a_warning() {
        let record = parsed("type=USER_CMD msg=audit(1.2:3): pid=1 msg='cwd=\"/ro");
        assert_eq!(field(&record, "cwd"), "/ro");
        assert_eq!(record.warnings.len(), 2);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        for text in [
            "type=",
            "type=X msg=audit(",
            "type=X msg=audit(1:",
            "a=\"",
            "type=X msg=audit(1.1:1): \u{e9}=\u{e9} ==\"",
            "type=X msg=audit(1.1:1):a",
        ] {
            let _ = parse_record(text);
            let _ = looks_like(text);
        }
    }
}
