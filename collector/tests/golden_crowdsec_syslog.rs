//! Golden tests against CrowdSec hub test expectations (`parser.assert`) for plain syslog
//! sources: the raw stage (program, pid, message, timestamp, machine) and the sshd stage
//! (client address and target user), which our sshd reader fills as `source.ip`/`user.name`.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use citysoc_collector::{Decoder, Event, Format, InputFormat, ParseContext};

const FOLDERS: &[&str] = &[
    "sshd-logs",
    "sshd-invalid-bf",
    "sshd-success-logs",
    "ssh-timeout",
    "sshd-bad-keyexchange-bf",
    "syslog-logs",
    "postfix-logs",
    "dovecot-logs",
];

/// `results["stage"]["parser"][index].Evt.Parsed["key"] == "value"` → (stage, index, Parsed|Meta, key) → value.
type Assertions = BTreeMap<(String, usize, String, String), String>;

fn read_assertions(text: &str) -> (Assertions, BTreeMap<(String, usize), bool>) {
    let mut values = Assertions::new();
    let mut successes = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("results[\"") else {
            continue;
        };
        let Some((stage, rest)) = rest.split_once("\"][\"") else {
            continue;
        };
        let Some((_parser, rest)) = rest.split_once("\"][") else {
            continue;
        };
        let Some((index, rest)) = rest.split_once(']') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if let Some(success) = rest.strip_prefix(".Success == ") {
            successes.insert((stage.to_owned(), index), success.trim() == "true");
            continue;
        }
        for kind in ["Parsed", "Meta"] {
            let prefix = format!(".Evt.{kind}[\"");
            if let Some(rest) = rest.strip_prefix(prefix.as_str()) {
                if let Some((key, value)) = rest.split_once("\"] == ") {
                    let value = unquote_go(value.trim());
                    values.insert(
                        (stage.to_owned(), index, kind.to_owned(), key.to_owned()),
                        value,
                    );
                }
            }
        }
    }
    (values, successes)
}

/// A Go string literal's content: `\"` and `\\` are the characters themselves.
fn unquote_go(literal: &str) -> String {
    let body = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(literal);
    let mut text = String::with_capacity(body.len());
    let mut characters = body.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            if let Some(escaped) = characters.next() {
                text.push(escaped);
            }
        } else {
            text.push(character);
        }
    }
    text
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ours(event: &Event, kind: &str, key: &str) -> Option<Option<String>> {
    let text = |name: &str| {
        event
            .fields
            .get(name)
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    Some(match (kind, key) {
        ("Parsed", "program") => event.core.process_name.as_deref().map(str::to_owned),
        ("Parsed", "pid") => event
            .core
            .process_pid
            .map(|pid| pid.to_string())
            .or_else(|| text("syslog.procid")),
        ("Parsed", "message") => event.core.message.clone(),
        ("Parsed", "timestamp") => text("syslog.timestamp").map(|time| squeeze(&time)),
        ("Meta", "machine") => event.core.host_name.as_deref().map(str::to_owned),
        ("Parsed", "sshd_client_ip") | ("Meta", "source_ip") => {
            event.core.source_ip.as_deref().map(str::to_owned)
        }
        ("Parsed", "sshd_invalid_user") | ("Meta", "target_user") => {
            event.core.user_name.as_deref().map(str::to_owned)
        }
        _ => return None,
    })
}

#[test]
fn crowdsec_syslog_and_sshd_expectations() {
    let mut context = ParseContext::new("file");
    context.timezone = chrono_tz::UTC;
    context.received_at = Utc
        .with_ymd_and_hms(2026, 11, 22, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let (mut compared, mut matched) = (0, 0);
    let mut failures = Vec::new();
    for folder in FOLDERS {
        let directory = format!(
            "{}/../tests/data/syslog-firewall-crowdsec-hub/{folder}",
            env!("CARGO_MANIFEST_DIR")
        );
        let log = std::fs::read_dir(&directory)
            .unwrap_or_else(|error| panic!("{directory}: {error}"))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|extension| extension == "log"))
            .unwrap_or_else(|| panic!("no .log in {directory}"));
        let bytes = std::fs::read(&log).unwrap_or_default();
        let mut decoder = Decoder::new(InputFormat::Auto, context.clone());
        let mut events = Vec::new();
        for line in bytes
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
        {
            decoder.decode(line, &mut events);
        }
        decoder.finish(&mut events);
        for event in &events {
            assert_ne!(
                event.format,
                Format::Unknown,
                "{folder}: {:?} {:?}",
                event.raw,
                event.parse_error
            );
        }
        let assertions =
            std::fs::read_to_string(format!("{directory}/parser.assert")).unwrap_or_default();
        let (expected, successes) = read_assertions(&assertions);
        for ((stage, index, kind, key), value) in &expected {
            // Later stages only list the lines their parser took; count them in order.
            let line_index = successes
                .iter()
                .filter(|((entry_stage, _), _)| entry_stage == stage)
                .position(|((_, entry_index), _)| entry_index == index)
                .unwrap_or(*index);
            let Some(event) = events.get(line_index) else {
                failures.push(format!("{folder}: no event {line_index}"));
                continue;
            };
            // The mail servers' own address fields come from CrowdSec's postfix/dovecot parsers,
            // which we do not have; their raw-stage fields are still compared.
            if !folder.starts_with("ssh") && matches!(key.as_str(), "source_ip" | "target_user") {
                continue;
            }
            let Some(ours) = ours(event, kind, key) else {
                continue;
            };
            compared += 1;
            let (ours, value) = if key == "timestamp" {
                (ours.map(|time| squeeze(&time)), squeeze(value))
            } else {
                (ours, value.clone())
            };
            if ours.as_deref() == Some(value.as_str()) {
                matched += 1;
            } else {
                failures.push(format!("{folder} [{line_index}] {kind}.{key}: ours {ours:?}, expected {value:?} ({:?})", event.raw));
            }
        }
    }
    println!("crowdsec syslog/sshd: {matched}/{compared} expected values match");
    assert!(compared > 300, "only {compared} values compared");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The Elastic Beats system-module samples have no expectations upstream; what we can hold
/// them to is that every line is read as syslog with a host and a program, and the multi-line
/// macOS sample keeps its continuation lines as events of their own.
#[test]
fn elastic_beats_linux_samples_parse_as_syslog() {
    let context = ParseContext::new("file");
    for file in [
        "auth/test/test.log",
        "syslog/test/test-syslog.log",
        "syslog/test/suse-syslog.log",
        "syslog/test/tz-offset.log",
    ] {
        let path = format!(
            "{}/../tests/data/linux-syslog-elastic-beats-oss/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        let mut decoder = Decoder::new(InputFormat::Auto, context.clone());
        let mut events = Vec::new();
        for line in text.lines() {
            decoder.decode(line.as_bytes(), &mut events);
        }
        decoder.finish(&mut events);
        assert_eq!(
            events.len() as u64 + decoder.stats().blank_records,
            text.lines().count() as u64,
            "{file}"
        );
        // test-syslog.log is Beats' multiline test: its second line ("syslog") continues the
        // first. We do not join lines, so it is kept as an unknown event of its own, flagged.
        let unknown: Vec<_> = events
            .iter()
            .filter(|event| event.format == Format::Unknown)
            .filter_map(|event| event.raw.clone())
            .collect();
        let expected_unknown: &[&str] = if file.ends_with("test-syslog.log") {
            &["syslog"]
        } else {
            &[]
        };
        assert_eq!(unknown, expected_unknown, "{file}");
        for event in events
            .iter()
            .filter(|event| event.format != Format::Unknown)
        {
            assert_eq!(
                event.format,
                Format::Rfc3164,
                "{file}: {:?} {:?}",
                event.raw,
                event.parse_error
            );
            assert!(
                event.core.host_name.is_some(),
                "{file}: no host in {:?}",
                event.raw
            );
        }
        let events: Vec<_> = events
            .into_iter()
            .filter(|event| event.format != Format::Unknown)
            .collect();
        // The multiline test file has continuation lines that carry a timestamp and host but no
        // program; every other line names its program.
        let without_program: Vec<_> = events
            .iter()
            .filter(|event| event.core.process_name.is_none())
            .filter_map(|event| event.raw.clone())
            .collect();
        let allowed = if file.ends_with("test-syslog.log") {
            1
        } else {
            0
        };
        assert!(
            without_program.len() <= allowed,
            "{file}: no program in {without_program:?}"
        );
    }
}
