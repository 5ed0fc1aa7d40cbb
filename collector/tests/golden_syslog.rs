//! Golden tests for RFC 5424 and RFC 3164 over real test suites of other syslog parsers:
//! go-syslog's machine tests (valid messages parse to the expected fields; invalid ones are
//! flagged with the same problem named) and syslog_loose's expectations (Vector's parser).
//! The data lives in `tests/data/`, with its PROVENANCE.md.

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use citysoc_collector::{parse_record, Event, Format, InputFormat, ParseContext};
use serde_json::Value;

fn data(path: &str) -> String {
    let full = format!("{}/../tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{full}: {error}"))
}

fn context() -> ParseContext {
    let mut context = ParseContext::new("file");
    context.timezone = chrono_tz::UTC;
    context.received_at = Utc
        .with_ymd_and_hms(2026, 11, 22, 0, 0, 0)
        .single()
        .unwrap_or_default();
    context
}

fn text_field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.fields.get(name).and_then(Value::as_str)
}

/// The process id as the device wrote it: numeric ids live in `process.pid`, others in
/// `syslog.procid`.
fn procid(event: &Event) -> Option<String> {
    event
        .core
        .process_pid
        .map(|pid| pid.to_string())
        .or_else(|| text_field(event, "syslog.procid").map(str::to_owned))
}

fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Compares one valid go-syslog case; returns the mismatches.
fn check_valid(event: &Event, expected: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |what: &str, ours: Option<String>, theirs: Option<String>| {
        if ours != theirs {
            problems.push(format!("{what}: ours {ours:?}, expected {theirs:?}"));
        }
    };
    let expected_text = |key: &str| expected.get(key).and_then(Value::as_str).map(str::to_owned);
    check(
        "priority",
        event.fields.get("syslog.priority").map(Value::to_string),
        expected.get("priority").map(Value::to_string),
    );
    if let Some(version) = expected.get("version") {
        check(
            "version",
            event.fields.get("syslog.version").map(Value::to_string),
            Some(version.to_string()),
        );
    }
    check(
        "hostname",
        event.core.host_name.as_deref().map(str::to_owned),
        expected_text("hostname"),
    );
    check(
        "appname",
        event.core.process_name.as_deref().map(str::to_owned),
        expected_text("appname"),
    );
    check("procid", procid(event), expected_text("procid"));
    check(
        "msgid",
        text_field(event, "syslog.msgid").map(str::to_owned),
        expected_text("msgid"),
    );
    let expected_message = expected_text("message_b64").map(|encoded| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap_or_default();
        // We keep the exact bytes in raw/raw_base64; the message field is text, read as
        // Windows-1258 when the bytes are not UTF-8 (go-syslog's cases are Latin-1 letters,
        // which Windows-1258 maps the same way).
        let text = match String::from_utf8(bytes.clone()) {
            Ok(text) => text,
            Err(_) => encoding_rs::WINDOWS_1258
                .decode_without_bom_handling(&bytes)
                .0
                .into_owned(),
        };
        text.strip_prefix('\u{feff}')
            .map(str::to_owned)
            .unwrap_or(text)
    });
    check("message", event.core.message.clone(), expected_message);
    match (expected_text("timestamp"), event.format) {
        (Some(timestamp), Format::Rfc5424) => check(
            "timestamp",
            Some(event.timestamp.to_rfc3339()),
            DateTime::parse_from_rfc3339(&timestamp)
                .ok()
                .map(|time| time.with_timezone(&Utc).to_rfc3339()),
        ),
        (Some(timestamp), _) => check(
            "timestamp",
            text_field(event, "syslog.timestamp").map(squeeze),
            Some(squeeze(&timestamp)),
        ),
        (None, _) => check(
            "timestamp",
            text_field(event, "syslog.timestamp").map(str::to_owned),
            None,
        ),
    }
    // go-syslog hands out parameter values with their escapes still in (`\]`); RFC 5424
    // §6.3.3 says `\"`, `\\` and `\]` stand for the characters themselves, which is what we
    // store. Unescape the expectation before comparing.
    let structured = unescape_values(
        expected
            .get("structured_data")
            .cloned()
            .unwrap_or(Value::Null),
    );
    let ours = event
        .fields
        .get("structured_data")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    if structured != ours {
        problems.push(format!(
            "structured data: ours {ours}, expected {structured}"
        ));
    }
    problems
}

fn unescape_values(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(
            text.replace("\\\\", "\u{0}")
                .replace("\\\"", "\"")
                .replace("\\]", "]")
                .replace('\u{0}', "\\"),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key, unescape_values(value)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn go_syslog_machine_cases() {
    let context = context();
    let (mut valid_ok, mut valid_total, mut invalid_ok, mut invalid_total, mut same_column) =
        (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for line in data("syslog-parser-tests-go-syslog/go-syslog-expectations.jsonl").lines() {
        let case: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}"));
        let input = base64::engine::general_purpose::STANDARD
            .decode(case["input_b64"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let input_format = if case["format"] == "rfc3164" {
            InputFormat::Rfc3164
        } else {
            InputFormat::Rfc5424
        };
        let event = parse_record(&input, input_format, &context, 1);
        assert_eq!(
            event.raw_bytes().as_ref(),
            input.as_slice(),
            "raw bytes must be kept exactly"
        );
        let label = format!(
            "case {} {:?}",
            case["case_index"],
            String::from_utf8_lossy(&input)
        );
        if case["valid"] == true {
            valid_total += 1;
            let problems = if event.format == Format::Unknown {
                vec![format!("rejected: {:?}", event.parse_error)]
            } else {
                check_valid(&event, &case["expected"])
            };
            if problems.is_empty() {
                valid_ok += 1;
            } else {
                failures.push(format!("{label}: {}", problems.join("; ")));
            }
        } else {
            invalid_total += 1;
            let expected_message = case["error_message"].as_str().unwrap_or_default();
            match &event.parse_error {
                Some(error)
                    if event.format == Format::Unknown && error.message == expected_message =>
                {
                    invalid_ok += 1;
                    if Some(error.offset as u64) == case["error_column"].as_u64() {
                        same_column += 1;
                    }
                }
                other => failures.push(format!(
                    "{label}: expected error {expected_message:?}, got {other:?}"
                )),
            }
        }
    }
    println!(
        "go-syslog: {valid_ok}/{valid_total} valid cases parse to the expected fields; \
         {invalid_ok}/{invalid_total} invalid cases flagged with the same problem, {same_column} at the same column"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(
        same_column, invalid_total,
        "every error should be at go-syslog's column"
    );
}

/// syslog_loose keeps its expectations in Rust test code; the fields we check are pulled out of
/// that text. Cases where our reading deliberately differs are listed with the reason.
#[test]
fn syslog_loose_cases() {
    const DIFFERENT_ON_PURPOSE: &[(&str, &str)] = &[
        ("parse_invalid_message", "free text without PRI or timestamp is `unknown` for us, with an error, not a header-less syslog message"),
        ("parse_european_chars", "a word after the hostname without `:` or `[pid]` is message text for us (go-syslog's reading), not an app name"),
        ("parse_3164_3339_datetime_in_message", "the same: `apache_error [Tue …` has no `:`, so go-syslog and we read no app name"),
    ];
    let context = context();
    let (mut checked, mut matched) = (0, 0);
    let mut failures = Vec::new();
    for line in data("syslog-parser-tests-syslog-loose/syslog-loose-test-cases.jsonl").lines() {
        let case: Value = serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}"));
        let name = case["test_fn"].as_str().unwrap_or_default();
        let input = case["input"].as_str().unwrap_or_default();
        let expected_text = case["expected_rust"].as_str().unwrap_or_default();
        if case["input_is_format_template"] == true
            || !expected_text.contains("Message {")
            || input.contains("{}")
        {
            continue;
        }
        let event = parse_record(input.as_bytes(), InputFormat::Auto, &context, 1);
        let expect = |field: &str| expected_option(expected_text, field);
        let ours_appname = event.core.process_name.as_deref().map(str::to_owned);
        let ours_procid = procid(&event);
        let comparisons = [
            (
                "hostname",
                event.core.host_name.as_deref().map(str::to_owned),
                expect("hostname"),
            ),
            ("appname", ours_appname, expect("appname")),
            ("procid", ours_procid, expect("procid")),
            (
                "msgid",
                text_field(&event, "syslog.msgid").map(str::to_owned),
                expect("msgid"),
            ),
            (
                "msg",
                event.core.message.clone(),
                expected_message(expected_text),
            ),
        ];
        checked += 1;
        let problems: Vec<String> = comparisons
            .iter()
            .filter(|(_, ours, theirs)| {
                theirs.as_ref() != Some(&"<unparsed>".to_owned()) && ours != theirs
            })
            .map(|(field, ours, theirs)| format!("{field}: ours {ours:?}, expected {theirs:?}"))
            .collect();
        let known = DIFFERENT_ON_PURPOSE
            .iter()
            .any(|(case_name, _)| *case_name == name);
        match (problems.is_empty(), known) {
            (true, false) => matched += 1,
            (true, true) => failures.push(format!(
                "{name}: listed as different but now matches; update the list"
            )),
            (false, true) => {}
            (false, false) => failures.push(format!("{name} {input:?}: {}", problems.join("; "))),
        }
    }
    println!(
        "syslog_loose: {matched}/{checked} cases match, {} differ on purpose",
        checked - matched
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(matched >= 20, "only {matched} cases matched");
}

/// `field: Some("x")` → Some("x"), `field: None` → None, `Some(ProcId::PID(42))` → "42".
fn expected_option(text: &str, field: &str) -> Option<String> {
    let start = text.find("Message {")?;
    let text = &text[start..];
    let at = text.find(&format!("{field}: "))? + field.len() + 2;
    let rest = &text[at..];
    if rest.starts_with("None") {
        return None;
    }
    if let Some(pid) = rest.strip_prefix("Some(ProcId::PID(") {
        return Some(pid[..pid.find(')')?].to_owned());
    }
    if let Some(quoted) = rest.strip_prefix("Some(\"") {
        return Some(quoted[..quoted.find('"')?].to_owned());
    }
    Some("<unparsed>".to_owned())
}

/// The `msg:` value: a plain or raw Rust string literal.
fn expected_message(text: &str) -> Option<String> {
    let start = text.find("Message {")?;
    let text = &text[start..];
    let rest = &text[text.find("msg: ")? + 5..];
    if let Some(raw) = rest.strip_prefix("r#\"") {
        return Some(raw[..raw.find("\"#")?].to_owned());
    }
    let body = rest.strip_prefix('"')?;
    let mut message = String::new();
    let mut characters = body.chars();
    while let Some(character) = characters.next() {
        match character {
            '"' => return Some(message),
            '\\' => match characters.next()? {
                'n' => message.push('\n'),
                other => message.push(other),
            },
            other => message.push(other),
        }
    }
    None
}
