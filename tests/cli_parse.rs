//! `citysoc parse` as an agency admin uses it: files and stdin in, one JSON event per record
//! out, exit code 0 unless an input cannot be read.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn citysoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
}

/// Runs `citysoc ARGS` with `input` on its standard input; its output, stderr included.
fn run_with_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = citysoc()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{error}"));
    if let Some(stdin) = child.stdin.as_mut() {
        stdin
            .write_all(input)
            .unwrap_or_else(|error| panic!("{error}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn events(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

fn sample(name: &str) -> String {
    format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_bundled_sample_record_becomes_an_event() {
    let names = [
        "quan1-fortigate.log",
        "portal-nginx-access.log",
        "linux-auth.log",
        "sysmon.ndjson",
        "audit.log",
        "firewall-cef.log",
        "legacy-windows-1258.log",
    ];
    let output = citysoc()
        .arg("parse")
        .arg("--agency")
        .arg("quan-1")
        .args(names.map(sample))
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = events(&output.stdout);
    // auditd's four records are one event; every other line is one event.
    assert_eq!(events.len(), 3 + 3 + 6 + 3 + 1 + 2 + 2);
    let formats: Vec<&str> = events
        .iter()
        .filter_map(|event| event["format"].as_str())
        .collect();
    assert!(!formats.contains(&"unknown"), "{formats:?}");
    for expected in ["kv", "access_log", "rfc3164", "winevent", "auditd", "cef"] {
        assert!(formats.contains(&expected), "no {expected} in {formats:?}");
    }
    assert!(events.iter().all(|event| event["agency"] == "quan-1"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} events from 7 input(s)", events.len())),
        "{stderr}"
    );
}

#[test]
fn unknown_lines_are_events_with_a_reason_and_exit_zero() {
    let output = run_with_stdin(&["parse", "--format", "rfc5424", "-"], b"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - ok\n<192>1 - - - - - -\n\xff\xfe binary\n");
    assert!(output.status.success());
    let events = events(&output.stdout);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["format"], "rfc5424");
    assert_eq!(events[1]["format"], "unknown");
    assert_eq!(
        events[1]["parse_error"]["message"],
        "expecting a priority value in the range 1-191 or equal to 0"
    );
    assert_eq!(events[1]["parse_error"]["offset"], 3);
    assert_eq!(events[2]["raw_base64"], "//4gYmluYXJ5");
    assert_eq!(events[0]["source"]["transport"], "stdin");
}

#[test]
fn a_missing_file_fails_naming_it_and_the_others_are_still_read() {
    let output = citysoc()
        .args(["parse", "/nonexistent/quan1.log", &sample("linux-auth.log")])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(!output.status.success());
    assert_eq!(
        events(&output.stdout).len(),
        6,
        "the readable file was still parsed"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/quan1.log"), "{stderr}");
}

#[test]
fn bad_options_are_refused_with_the_accepted_values() {
    let output = citysoc()
        .args(["parse", "--format", "xml", "-"])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("auto, rfc3164"));
    let output = citysoc()
        .args(["parse", "--timezone", "Mars/Olympus", "-"])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("Mars/Olympus"));
}

#[test]
fn evtx_files_are_recognised_by_their_signature() {
    let path = format!(
        "{}/tests/data/windows-evtx-omerbenamram-evtx-samples/evtx/new-user-security.evtx",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = citysoc()
        .args(["parse", &path])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events = events(&output.stdout);
    assert!(!events.is_empty());
    assert!(events.iter().all(|event| event["format"] == "winevent"));
    assert!(
        events
            .iter()
            .any(|event| event["EventID"] == 4720 || event["fields"]["EventID"] == 4720),
        "a user-creation event"
    );
}

#[test]
fn the_zone_flag_changes_how_local_times_are_read() {
    let run = |zone: &str| {
        let output = run_with_stdin(
            &["parse", "--timezone", zone, "-"],
            b"<13>2026-11-22T08:00:00 host app: local time\n",
        );
        events(&output.stdout)[0]["timestamp"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(run("Asia/Ho_Chi_Minh"), "2026-11-22T01:00:00Z");
    assert_eq!(run("UTC"), "2026-11-22T08:00:00Z");
}

/// A capture of an octet-counted stream whose last record was cut: `--framing octet-counting`
/// reads it as the TCP source does, the cut record's event (here an auditd record the grouper
/// holds until the end) is flagged as the network sources flag it, and the summary counts it.
#[test]
fn a_cut_octet_counted_record_is_flagged_and_counted_in_the_summary() {
    let syslog = "<34>Oct 11 22:14:15 host su: ok";
    let audit = "type=SYSCALL msg=audit(1700000001.000:43): arch=c000003e syscall=59 success=yes exit=0 comm=\"id\"";
    let capture = format!("{} {syslog}{} {audit}", syslog.len(), audit.len() + 12);
    let output = run_with_stdin(
        &["parse", "--framing", "octet-counting", "-"],
        capture.as_bytes(),
    );
    assert!(output.status.success());
    let events = events(&output.stdout);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["raw"], syslog);
    assert_eq!(events[0]["fields"]["frame_truncated"], Value::Null);
    assert_eq!(events[1]["format"], "auditd");
    assert_eq!(events[1]["fields"]["frame_truncated"], true);
    assert_eq!(events[1]["fields"]["frame_missing_bytes"], 12);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("1 record cut short (flagged frame_truncated)"),
        "{stderr}"
    );

    let output = citysoc()
        .args(["parse", "--framing", "xml", "-"])
        .output()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("newline, octet-counting"));
}
