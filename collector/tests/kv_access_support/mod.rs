//! Shared by golden_kv.rs and golden_access_log.rs: reading CrowdSec `parser.assert` files,
//! running records through the public API, and comparing values.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use serde_json::Value;

/// The corpus folder of CrowdSec hub tests, copied into the repository.
pub const CROWDSEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/syslog-firewall-crowdsec-hub"
);

/// A fixed context (UTC, received 2026-11-22) so year inference is deterministic.
pub fn context() -> ParseContext {
    let mut context = ParseContext::new("file");
    context.timezone = chrono_tz::UTC;
    context.received_at = DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|error| panic!("{error}"));
    context
}

/// Reads a corpus file.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// The non-empty lines of a log file, in order (CrowdSec numbers its results the same way).
pub fn log_lines(path: &str) -> Vec<String> {
    read(path)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses one line.
pub fn parse(line: &str, format: InputFormat, sequence: u64) -> Event {
    parse_record(line.as_bytes(), format, &context(), sequence)
}

/// One `results["stage"]["parser"][line].Evt.<kind>["key"] == "value"` assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// Line index in the log file.
    pub line: usize,
    /// `Parsed`, `Meta` or `Unmarshaled` (`Unmarshaled["fortinet"]` reads as `Unmarshaled`).
    pub kind: String,
    /// The CrowdSec key.
    pub key: String,
    /// The expected value.
    pub value: String,
}

/// The string-valued assertions of `parser` at `stage` (e.g. `s01-parse`).
pub fn assertions(path: &str, stage: &str, parser: &str) -> Vec<Assertion> {
    let head = format!("results[\"{stage}\"][\"{parser}\"][");
    read(path)
        .lines()
        .filter_map(|line| assertion(line, &head))
        .collect()
}

fn assertion(line: &str, head: &str) -> Option<Assertion> {
    let rest = line.strip_prefix(head)?;
    let (index, rest) = rest.split_once(']')?;
    let rest = rest.strip_prefix(".Evt.")?;
    let (kind, rest) = rest.split_once('[')?;
    let rest = match rest.strip_prefix("\"fortinet\"][") {
        Some(inner) => inner,
        None => rest,
    };
    let rest = rest.strip_prefix('"')?;
    let (key, rest) = rest.split_once("\"]")?;
    let quoted = rest.strip_prefix(" == \"")?.strip_suffix('"')?;
    Some(Assertion {
        line: index.parse().ok()?,
        kind: kind.to_owned(),
        key: key.to_owned(),
        value: go_unquote(quoted),
    })
}

/// Resolves the escapes of a Go string literal that the assert files use.
fn go_unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            out.push(character);
            continue;
        }
        match characters.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A value as text for comparison: strings as they are, numbers and booleans printed.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// `event.fields[name]`, or its last value when the key was repeated.
pub fn last_field(event: &Event, name: &str) -> Option<String> {
    match event.fields.get(name)? {
        Value::Array(values) => values.last().and_then(as_text),
        value => as_text(value),
    }
}

/// `event.fields[name]`, or its first value when the key was repeated.
pub fn first_field(event: &Event, name: &str) -> Option<String> {
    match event.fields.get(name)? {
        Value::Array(values) => values.first().and_then(as_text),
        value => as_text(value),
    }
}

/// A core field by its ECS name, as text.
pub fn core(event: &Event, name: &str) -> Option<String> {
    event.core.get(name).as_ref().and_then(as_text)
}

/// Running totals of a golden comparison.
#[derive(Debug, Default)]
pub struct Tally {
    /// Assertions that matched.
    pub matched: usize,
    /// Assertions skipped on purpose (documented differences).
    pub skipped: usize,
    /// Why assertions were skipped.
    pub skip_reasons: std::collections::BTreeSet<&'static str>,
    /// Mismatches, described.
    pub mismatches: Vec<String>,
}

impl Tally {
    /// Records one comparison.
    pub fn check(&mut self, what: &str, ours: Option<String>, expected: &str) {
        if ours.as_deref() == Some(expected) {
            self.matched += 1;
        } else {
            self.mismatches
                .push(format!("{what}: expected {expected:?}, got {ours:?}"));
        }
    }
}
