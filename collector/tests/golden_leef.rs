//! Golden tests for the LEEF parser over tenzir's LEEF samples
//! (tests/data/leef-cef-syslog-tenzir). Upstream ships no expectations for them, so the values
//! below were read off the sample lines by hand; junk must become `format: unknown` with a
//! reason, never a panic.

use chrono::{DateTime, Utc};
use citysoc_collector::{parse_record, Decoder, Event, Format, InputFormat, ParseContext};
use serde_json::Value;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/leef-cef-syslog-tenzir"
);

fn context() -> ParseContext {
    let mut context = ParseContext::new("file");
    context.timezone = chrono_tz::UTC;
    context.received_at = utc("2026-01-15T00:00:00Z");
    context
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_else(|error| panic!("{text}: {error}"))
}

fn lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(format!("{DATA}/{path}"))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Parses every line of `path` both with the format fixed to LEEF and in `auto` mode, checks
/// the two agree, and returns the fixed-format events.
fn parse_file(path: &str) -> Vec<Event> {
    let context = context();
    lines(path)
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let fixed = parse_record(
                line.as_bytes(),
                InputFormat::Leef,
                &context,
                index as u64 + 1,
            );
            let auto = parse_record(
                line.as_bytes(),
                InputFormat::Auto,
                &context,
                index as u64 + 1,
            );
            assert_eq!(
                fixed.format,
                Format::Leef,
                "{path}:{index}: {:?}",
                fixed.parse_error
            );
            assert_eq!(
                auto.format,
                Format::Leef,
                "{path}:{index} (auto): {:?}",
                auto.parse_error
            );
            assert_eq!(
                (&auto.fields, &auto.core, auto.timestamp),
                (&fixed.fields, &fixed.core, fixed.timestamp),
                "{path}:{index}"
            );
            fixed
        })
        .collect()
}

fn field<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event.fields.get(name).and_then(Value::as_str)
}

/// (field, expected) pairs checked on one event; returns how many were checked.
fn expect_fields(event: &Event, expected: &[(&str, &str)]) -> usize {
    for (name, value) in expected {
        assert_eq!(
            field(event, name),
            Some(*value),
            "{name} in {:?}",
            event.raw
        );
    }
    expected.len()
}

#[test]
fn leef1_cyberark_and_edge_cases() {
    let events = parse_file("leef/leef1.log");
    assert_eq!(events.len(), 5);
    let mut checked = 0;

    let pta = &events[0];
    checked += expect_fields(
        pta,
        &[
            ("leefVersion", "1.0"),
            ("vendor", "CyberArk"),
            ("product", "PTA"),
            ("version", "14.0"),
            ("eventId", "1"),
            // LEEF 1.0 separates attributes with tabs only; this sample uses `|` for its first
            // three, so by the spec they are one value. Kept that way rather than guessed.
            ("Cat", "Suspected credentials theft|sev=8|src=src1"),
            ("userName", "mike"),
            ("dst", "192.168.0.1"),
            ("EventID", "52b06812ec3500ed864c461e"),
            (
                "PTALink",
                "https://1.1.1.1/incidents/52b06812ec3500ed864c461e",
            ),
            ("suser", "mike2"),
            ("ExternalLink", "None"),
            ("devTime", "1388577600000"),
        ],
    );
    assert_eq!(pta.core.event_code.as_deref(), Some("1"));
    assert_eq!(pta.core.user_name.as_deref(), Some("mike"));
    assert_eq!(pta.core.destination_ip.as_deref(), Some("192.168.0.1"));
    assert_eq!(pta.timestamp, utc("2014-01-01T12:00:00Z"));

    // No `key=` at all: the header is kept, the attribute error says which bytes were skipped.
    let junk = &events[1];
    checked += expect_fields(junk, &[("vendor", "Tenzir"), ("eventId", "42")]);
    assert_eq!(
        field(junk, "leef_attribute_error"),
        Some("text without `key=` at bytes 31..52 of the record was not parsed")
    );

    checked += expect_fields(&events[2], &[("key", "")]);
    checked += expect_fields(&events[3], &[("key", "trailing tab next")]);
    checked += expect_fields(&events[4], &[("key", "yikes")]);
    assert!(events[2..]
        .iter()
        .all(|event| field(event, "leef_attribute_error").is_none()));
    println!("leef golden (leef1.log): 5/5 lines parsed, {checked} values checked");
    assert_eq!(checked, 18);
}

#[test]
fn leef2_pan_os_templates() {
    // PAN-OS's LEEF 2.0 templates: no delimiter field, attributes separated by a literal `\t`
    // (backslash, t), which is taken as the delimiter because the record holds no real tab.
    let events = parse_file("leef/leef2.log");
    assert_eq!(events.len(), 3);
    for event in &events {
        expect_fields(
            event,
            &[
                ("leefVersion", "2.0"),
                ("vendor", "Palo Alto Networks"),
                ("product", "PAN-OS Syslog Integration"),
                ("eventId", "$result"),
                ("cat", "$type"),
                ("usrName", "$admin"),
                ("src", "$host"),
                ("devTime", "$cef-formatted-receive_time"),
                ("msg", "$cmd"),
            ],
        );
        assert_eq!(event.core.user_name.as_deref(), Some("$admin"));
        assert_eq!(event.core.message.as_deref(), Some("$cmd"));
        // A placeholder is not an address: it stays in `fields` only.
        assert_eq!(event.core.source_ip, None);
        // An unreadable devTime leaves the receive time.
        assert_eq!(event.timestamp, event.received_at);
    }
    expect_fields(
        &events[0],
        &[
            ("version", "4.0"),
            ("serial", "$serial"),
            ("sequence", "$seqno"),
        ],
    );
    expect_fields(
        &events[1],
        &[
            ("version", "$sender_sw_version"),
            ("DeviceName", "$device_name"),
            ("SerialNumber", "$serial"),
        ],
    );
    expect_fields(
        &events[2],
        &[("DeviceSN", "$serial"), ("TimeReceived", "$receive_time")],
    );
    assert_eq!(events[1].fields.len(), 5 + 21);
}

#[test]
fn leef_over_rfc5424() {
    let events = parse_file("syslog/leef-over-syslog.log");
    let windows = &events[0];
    expect_fields(
        windows,
        &[
            ("leefVersion", "2.0"),
            ("vendor", "Microsoft"),
            ("product", "Microsoft-Windows-Security-Mitigations"),
            ("version", "4.6.4640-trial"),
            ("eventId", "10"),
            ("identHostName", "LAPTOP-45Q5L6E5"),
            ("sev", "6"),
            ("EventID", "10"),
            ("Message", "Process 'chrome.exe' was blocked"),
        ],
    );
    assert_eq!(windows.core.host_name.as_deref(), Some("LAPTOP-45Q5L6E5"));
    assert_eq!(
        windows.core.process_name.as_deref(),
        Some("Microsoft-Windows-Security-Mitigations")
    );
    assert_eq!(windows.core.process_pid, Some(4340));
    assert_eq!(windows.core.log_level.as_deref(), Some("6"));
    assert_eq!(
        windows.core.message.as_deref(),
        Some("Process 'chrome.exe' was blocked")
    );
    // devTime (zone-less, configured zone UTC) wins over the syslog header's time.
    assert_eq!(windows.timestamp, utc("2019-11-21T13:44:35Z"));

    let zscaler = &events[1];
    expect_fields(
        zscaler,
        &[
            ("vendor", "Zscaler"),
            ("product", "NSS"),
            ("eventId", "ALLOW"),
            ("cat", "firewall"),
        ],
    );
    assert_eq!(zscaler.core.user_name.as_deref(), Some("jane.doe"));
    assert_eq!(zscaler.core.source_ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(
        zscaler.core.destination_ip.as_deref(),
        Some("198.51.100.20")
    );
    assert_eq!(zscaler.core.host_name.as_deref(), Some("ZSCALER"));
    assert_eq!(zscaler.timestamp, utc("2019-11-21T13:44:37Z"));
}

#[test]
fn zscaler_nss_firewall_over_bsd_syslog() {
    let events = parse_file("syslog/zscaler-nss.log");
    let event = &events[0];
    expect_fields(
        event,
        &[
            ("leefVersion", "1.0"),
            ("vendor", "Zscaler"),
            ("product", "NSS-FW"),
            ("version", "5.5"),
            ("eventId", "Drop"),
            ("role", "Default Department"),
            ("proto", "TCP"),
            ("nwapp", "adultadworld"),
            ("destcountry", "United States"),
            ("rulelabel", "Firewall_Adult"),
            ("numsessions", "1"),
        ],
    );
    assert_eq!(event.core.user_name.as_deref(), Some("GCL->SBL-1"));
    assert_eq!(event.core.source_ip.as_deref(), Some("10.11.12.13"));
    assert_eq!(event.core.destination_ip.as_deref(), Some("10.66.69.21"));
    assert_eq!(event.core.source_port, Some(30513));
    assert_eq!(event.core.destination_port, Some(53));
    assert_eq!(event.core.event_code.as_deref(), Some("Drop"));
    assert_eq!(event.core.host_name.as_deref(), Some("zscaler-nss"));
    assert_eq!(event.logsource.category.as_deref(), Some("firewall"));
    // `Jun 02` read on 2026-01-15 is last June.
    assert_eq!(event.timestamp, utc("2025-06-02T16:34:55Z"));
    // syslog.timestamp (the host name lives in host.name only), 34 attributes, 5 header fields.
    assert_eq!(
        event.fields.len(),
        1 + 34 + 5,
        "{:?}",
        event.fields.keys().collect::<Vec<_>>()
    );
}

#[test]
fn junk_is_unknown_with_a_reason_never_a_panic() {
    let context = context();
    let mut junk: Vec<String> = lines("syslog/multiline.log");
    junk.extend(lines("syslog/syslog-rfc3164.log"));
    junk.extend(
        [
            "LEEF:",
            "LEEF:9.9|V|P|1|E|a=b",
            "LEEF:1.0|V|P",
            "LEEF:2.0|V|P|1|E|0xZZ|a=b",
            "LEEF:2.0|V|P|1|E|é|a=b",
            "LEEF:2.0",
            "LEEF:1.0|||||",
            "LEEF:2.0|V|P|1|E||",
            "LEEF:2.0|V|P|1|E|x|",
            "LEEF:2.0|V|P|1|E|x09|=\t=\t\t",
        ]
        .map(str::to_owned),
    );
    let mut unknown = 0;
    for line in &junk {
        let event = parse_record(line.as_bytes(), InputFormat::Leef, &context, 1);
        assert_eq!(event.raw.as_deref(), Some(line.as_str()));
        if event.format == Format::Unknown {
            let error = event
                .parse_error
                .unwrap_or_else(|| panic!("{line}: unknown without a reason"));
            assert!(
                !error.message.is_empty() && error.offset <= line.len(),
                "{line}: {error}"
            );
            unknown += 1;
        }
        let _ = parse_record(line.as_bytes(), InputFormat::Auto, &context, 1);
    }
    // Everything but the last four synthetic lines (well-formed headers with empty or odd
    // attribute sections) is not LEEF.
    assert_eq!(unknown, junk.len() - 4);

    // Through the stream decoder too, with the format fixed.
    let mut decoder = Decoder::new(InputFormat::Leef, context);
    let mut out = Vec::new();
    for line in &junk {
        decoder.decode(line.as_bytes(), &mut out);
    }
    decoder.finish(&mut out);
    assert_eq!(out.len(), junk.len());
    println!("leef golden (junk): {unknown}/{} junk lines unknown with a reason, 4 odd-but-valid headers kept", junk.len());
}
