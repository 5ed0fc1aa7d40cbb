//! `SigmaEngine` against the Sigma specification v2.1.0 (2025-08-02): the rules specification,
//! the modifiers appendix, the correlation rules specification and the filters specification
//! (public domain; their examples are copied here as literal strings, nothing is read from
//! outside the repository at run time).
//!
//! Every modifier and condition form the specification lists gets at least one event that
//! must match and one that must not. Events are JSON documents parsed by the collector, as
//! in production: a generic document has an empty logsource, so most rules here say
//! `logsource: {}` (seen by every event); Windows-shaped documents (`EventID` + `Channel`)
//! carry product/service/category and are used where the specification's example names a
//! Windows logsource. Where the engine disagrees with the specification the test stays as
//! the specification says and is `#[ignore]`d with the reason: run them with
//! `cargo test -p citysoc-detect --test sigma_spec -- --ignored` to see the current gaps.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use citysoc_detect::{Alert, AlertKind, LoadReport, SigmaEngine, SigmaOptions};
use serde_json::{json, Value};

// =============================================================================================
// Harness

/// 2024-05-01T00:00:00Z: event time zero for every test.
const BASE_SECONDS: i64 = 1_714_521_600;

/// The id every single-rule test gives its rule.
const RULE_ID: &str = "spec-rule";

static SEQUENCE: AtomicU64 = AtomicU64::new(1);

fn base_time() -> DateTime<Utc> {
    Utc.timestamp_opt(BASE_SECONDS, 0)
        .single()
        .unwrap_or_default()
}

fn context() -> ParseContext {
    let mut context = ParseContext::new("test");
    context.timezone = chrono_tz::UTC;
    context.received_at = base_time();
    context.agency = Some("quan-1".into());
    context
}

/// A JSON document as the collector parses it, with `@timestamp` set `seconds` after
/// [`BASE_SECONDS`] unless the document has its own.
fn event_at(seconds: i64, document: &Value) -> Event {
    let mut document = document.clone();
    if let Value::Object(map) = &mut document {
        let time = Utc
            .timestamp_opt(BASE_SECONDS + seconds, 0)
            .single()
            .unwrap_or_default();
        map.entry("@timestamp").or_insert_with(|| {
            Value::from(time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        });
    }
    let text = document.to_string();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let event = parse_record(text.as_bytes(), InputFormat::Json, &context(), sequence);
    assert!(
        event.parse_error.is_none(),
        "test event did not parse: {text}: {:?}",
        event.parse_error
    );
    event
}

fn event(document: &Value) -> Event {
    event_at(0, document)
}

/// Writes `documents` (one YAML file each) to a fresh directory and loads it.
fn load_with(options: SigmaOptions, documents: &[&str]) -> (SigmaEngine, LoadReport) {
    let directory = std::env::temp_dir().join(format!(
        "citysoc-sigma-spec-{}-{}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()));
    for (index, document) in documents.iter().enumerate() {
        let path = directory.join(format!("rule_{index:02}.yml"));
        std::fs::write(&path, document)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }
    let loaded = SigmaEngine::load(&[PathBuf::from(&directory)], options);
    let _ = std::fs::remove_dir_all(&directory);
    loaded.unwrap_or_else(|error| panic!("load failed: {error}"))
}

/// Loads `documents`, which must all load without a problem.
fn engine_with(options: SigmaOptions, documents: &[&str]) -> SigmaEngine {
    let (engine, report) = load_with(options, documents);
    assert!(
        report.problems.is_empty(),
        "rules did not load: {:#?}\n{}",
        report.problems,
        documents.join("\n---\n")
    );
    engine
}

fn engine(documents: &[&str]) -> SigmaEngine {
    engine_with(SigmaOptions::default(), documents)
}

/// Indents every line of `text` by `spaces`.
fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.trim_matches('\n')
        .lines()
        .map(|line| format!("{pad}{line}\n"))
        .collect()
}

/// A detection rule with id `id`, the given logsource (YAML flow mapping) and detection body
/// (written flush left; indented here).
fn rule_with_logsource(id: &str, logsource: &str, detection: &str) -> String {
    format!(
        "title: Spec test {id}\nid: {id}\nlogsource: {logsource}\ndetection:\n{}level: medium\n",
        indent(detection, 4)
    )
}

/// A detection rule seen by every event (`logsource: {}`).
fn rule(id: &str, detection: &str) -> String {
    rule_with_logsource(id, "{}", detection)
}

fn rule_ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|alert| alert.rule_id.as_str()).collect()
}

fn fires(engine: &mut SigmaEngine, event: &Event, rule_id: &str) -> bool {
    engine
        .process(event)
        .iter()
        .any(|alert| alert.rule_id == rule_id)
}

/// The detection `body` (as a rule seen by every event) matches every positive document and
/// none of the negative ones.
fn check_with(options: SigmaOptions, body: &str, positives: &[Value], negatives: &[Value]) {
    let text = rule(RULE_ID, body);
    let mut engine = engine_with(options, &[&text]);
    for document in positives {
        assert!(
            fires(&mut engine, &event(document), RULE_ID),
            "expected a match\nrule:\n{text}\nevent: {document}"
        );
    }
    for document in negatives {
        assert!(
            !fires(&mut engine, &event(document), RULE_ID),
            "expected NO match\nrule:\n{text}\nevent: {document}"
        );
    }
}

fn check(body: &str, positives: &[Value], negatives: &[Value]) {
    check_with(SigmaOptions::default(), body, positives, negatives);
}

/// A Sysmon process-creation event (product windows, service sysmon, category
/// process_creation).
fn sysmon_process(image: &str, command_line: &str) -> Value {
    json!({
        "EventID": 1,
        "Channel": "Microsoft-Windows-Sysmon/Operational",
        "Computer": "pc1.corp.local",
        "Image": image,
        "CommandLine": command_line,
        "User": "CORP\\alice"
    })
}

// =============================================================================================
// Rules specification: values

/// The first example of the rules specification, verbatim.
const SPEC_WHOAMI: &str = r"title: Whoami Execution
description: Detects a whoami.exe execution
references:
      - https://speakerdeck.com/heirhabarov/hunting-for-privilege-escalation-in-windows-environment
author: Florian Roth
date: 2019-10-23
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image: 'C:\Windows\System32\whoami.exe'
    condition: selection
level: high
";

#[test]
fn spec_example_whoami_matches_the_whole_value_ignoring_case() {
    let mut engine = engine(&[SPEC_WHOAMI]);
    // No id: the alert names the rule by its title.
    let hit = engine.process(&event(&sysmon_process(
        r"C:\Windows\System32\whoami.exe",
        "whoami",
    )));
    assert_eq!(rule_ids(&hit), ["Whoami Execution"]);
    assert_eq!(hit[0].kind, AlertKind::Sigma);
    assert!(fires(
        &mut engine,
        &event(&sysmon_process(r"c:\windows\system32\WHOAMI.EXE", "whoami")),
        "Whoami Execution"
    ));
    // A plain value is the whole field, not a part of it.
    assert!(!fires(
        &mut engine,
        &event(&sysmon_process(r"C:\Windows\System32\whoami.exe.bak", "x")),
        "Whoami Execution"
    ));
    assert!(!fires(
        &mut engine,
        &event(&sysmon_process(r"D:\C:\Windows\System32\whoami.exe", "x")),
        "Whoami Execution"
    ));
}

#[test]
fn question_mark_is_exactly_one_character() {
    // Spec: `progA.exe or progB.exe or ...` will be `prog?.exe`.
    check(
        "selection:\n    Image: 'prog?.exe'\ncondition: selection",
        &[json!({"Image": "progA.exe"}), json!({"Image": "PROGB.EXE"})],
        &[json!({"Image": "prog.exe"}), json!({"Image": "progAB.exe"})],
    );
}

#[test]
fn star_is_any_number_of_characters() {
    // Spec: `antivirus_V1.exe or antivirus_V21.2.1.exe or ...` will be `antivirus_V*.exe`.
    check(
        "selection:\n    Image: 'antivirus_V*.exe'\ncondition: selection",
        &[
            json!({"Image": "antivirus_V1.exe"}),
            json!({"Image": "antivirus_V21.2.1.exe"}),
            json!({"Image": "antivirus_V.exe"}),
        ],
        &[
            json!({"Image": "antivirus_V1.dll"}),
            json!({"Image": "my_antivirus_V1.exe"}),
        ],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: `*`/`?` compile to regex `.` without the s flag, so a wildcard never spans a line break (multi-line ScriptBlockText/CommandLine)"]
fn wildcards_span_line_breaks() {
    // `*` is "an unbounded length wildcard" and `?` "a single mandatory character": any
    // character, line breaks included.
    check(
        "selection:\n    ScriptBlockText: 'New-Object*DownloadString*'\ncondition: selection",
        &[
            json!({"ScriptBlockText": "New-Object Net.WebClient\r\n$c.DownloadString('http://x/a.ps1')"}),
        ],
        &[json!({"ScriptBlockText": "$c.DownloadString('http://x/a.ps1')"})],
    );
    check(
        "selection:\n    Text: 'a?b'\ncondition: selection",
        &[json!({"Text": "a\nb"})],
        &[json!({"Text": "ab"})],
    );
}

#[test]
fn escaped_wildcards_are_plain_characters() {
    check(
        r"selection:
    Value: 'abc\*def'
condition: selection",
        &[json!({"Value": "abc*def"})],
        &[json!({"Value": "abcXdef"}), json!({"Value": "abcdef"})],
    );
    check(
        r"selection:
    Value: 'what\?'
condition: selection",
        &[json!({"Value": "what?"})],
        &[json!({"Value": "whatX"})],
    );
}

#[test]
fn backslash_escaping_follows_the_specification_table() {
    // Plain backslash not followed by a wildcard: single `\` or double `\\`.
    for value in [r"'a\b'", r"'a\\b'"] {
        check(
            &format!("selection:\n    Path: {value}\ncondition: selection"),
            &[json!({"Path": r"a\b"})],
            &[json!({"Path": "ab"}), json!({"Path": r"a\\b"})],
        );
    }
    // `\\*`: a backslash followed by a wildcard.
    check(
        r"selection:
    Path: 'C:\\*'
condition: selection",
        &[json!({"Path": r"C:\Temp"}), json!({"Path": r"C:\"})],
        &[json!({"Path": "C:Temp"})],
    );
    // `\\\*`: a backslash and a plain star.
    check(
        r"selection:
    Path: 'C:\\\*'
condition: selection",
        &[json!({"Path": r"C:\*"})],
        &[json!({"Path": r"C:\Temp"})],
    );
    // Three or four backslashes are a double backslash.
    for value in [r"'a\\\b'", r"'a\\\\b'"] {
        check(
            &format!("selection:\n    Path: {value}\ncondition: selection"),
            &[json!({"Path": r"a\\b"})],
            &[json!({"Path": r"a\b"})],
        );
    }
}

#[test]
fn values_are_case_insensitive_by_default() {
    check(
        "selection:\n    User: 'Administrator'\ncondition: selection",
        &[
            json!({"User": "ADMINISTRATOR"}),
            json!({"User": "administrator"}),
        ],
        &[json!({"User": "Administrators"})],
    );
}

#[test]
fn spec_example_lists_are_or_and_maps_are_and() {
    // "matches on EventLog 'Security' and ( Event ID 517 or Event ID 1102 )"
    let body = "selection:
    EventLog: Security
    EventID:
        - 517
        - 1102
condition: selection";
    check(
        body,
        &[
            json!({"EventLog": "Security", "EventID": 517}),
            json!({"EventLog": "security", "EventID": 1102}),
        ],
        &[
            json!({"EventLog": "Security", "EventID": 4624}),
            json!({"EventLog": "System", "EventID": 517}),
            json!({"EventID": 517}),
        ],
    );
}

#[test]
fn spec_example_every_map_item_must_match() {
    let body = "selection:
      EventLog: Security
      EventID: 4769
      TicketOptions: '0x40810000'
      TicketEncryption: '0x17'
condition: selection";
    let hit = json!({"EventLog": "Security", "EventID": 4769, "TicketOptions": "0x40810000", "TicketEncryption": "0x17"});
    let mut other_encryption = hit.clone();
    other_encryption["TicketEncryption"] = json!("0x12");
    let mut no_options = hit.clone();
    if let Value::Object(map) = &mut no_options {
        map.remove("TicketOptions");
    }
    check(body, &[hit], &[other_encryption, no_options]);
}

#[test]
fn spec_example_list_of_maps_is_or() {
    let body = r"selection:
    - Image|endswith: '\\example.exe'
    - Description|contains: 'Test executable'
condition: selection";
    check(
        body,
        &[
            json!({"Image": r"C:\tmp\example.exe"}),
            json!({"Image": "x", "Description": "A test executable of ours"}),
        ],
        &[
            json!({"Image": r"C:\tmp\example.exe.txt", "Description": "Production build"}),
            json!({"Image": r"C:\tmp\notexample.exe"}),
        ],
    );
}

#[test]
fn numbers_match_numbers_and_numeric_strings() {
    let negatives = [
        json!({"EventID": 4689}),
        json!({"EventID": "46880"}),
        json!({"EventID": "4688x"}),
        json!({"EventID": 46880}),
    ];
    check(
        "selection:\n    EventID: 4688\ncondition: selection",
        &[json!({"EventID": 4688}), json!({"EventID": "4688"})],
        &negatives,
    );
    check(
        "selection:\n    EventID: '4688'\ncondition: selection",
        &[json!({"EventID": 4688}), json!({"EventID": "4688"})],
        &negatives,
    );
}

#[test]
fn empty_value_matches_an_empty_string() {
    check(
        "selection:\n    FieldB: ''\ncondition: selection",
        &[json!({"FieldB": ""})],
        &[json!({"FieldB": "x"}), json!({"FieldB": " "})],
    );
}

#[test]
fn spec_example_null_means_the_field_is_absent() {
    // "To get an expression that says `not null` you have to create another selection and
    // negate it in the condition."
    let body = "selection:
    EventID: 4738
filter:
    PasswordLastSet: null
condition: selection and not filter";
    check(
        body,
        &[json!({"EventID": 4738, "PasswordLastSet": "2024-05-01 08:00:00"})],
        &[
            json!({"EventID": 4738}),
            json!({"EventID": 4738, "PasswordLastSet": null}),
            json!({"EventID": 4624, "PasswordLastSet": "x"}),
        ],
    );
}

#[test]
fn spec_valid_example_empty_or_null_as_separate_selections() {
    let body = "selection_main:
    FieldA: 'something'
selection_empty1:
    FieldB: ''
selection_empty2:
    FieldB: null
condition: selection_main and 1 of selection_empty*";
    check(
        body,
        &[
            json!({"FieldA": "something", "FieldB": ""}),
            json!({"FieldA": "something"}),
            json!({"FieldA": "something", "FieldB": null}),
        ],
        &[
            json!({"FieldA": "something", "FieldB": "x"}),
            json!({"FieldA": "other", "FieldB": ""}),
        ],
    );
}

#[test]
fn a_value_matches_when_any_element_of_an_event_array_matches() {
    check(
        "selection:\n    Tags: 'evil'\ncondition: selection",
        &[json!({"Tags": ["good", "EVIL"]}), json!({"Tags": ["evil"]})],
        &[json!({"Tags": ["good", "evil-ish"]}), json!({"Tags": []})],
    );
    check(
        "selection:\n    Ports: 445\ncondition: selection",
        &[json!({"Ports": [80, 445]})],
        &[json!({"Ports": [80, 4450]})],
    );
    check(
        "selection:\n    Tags|contains: 'vil'\ncondition: selection",
        &[json!({"Tags": ["good", "devil"]})],
        &[json!({"Tags": ["good"]})],
    );
}

#[test]
fn spec_example_keywords_search_the_whole_event() {
    let body = "mimikatz_keywords:
    - 'event::clear'
    - 'event::drop'
condition: mimikatz_keywords";
    check(
        body,
        &[
            json!({"message": "mimikatz # event::clear"}),
            json!({"Payload": "EVENT::DROP", "Other": "x"}),
            json!({"Nested": {"deep": ["a", "privilege::debug event::drop exit"]}}),
        ],
        &[
            json!({"message": "event clear", "Payload": "event:drop"}),
            json!({"event::clear": "the key is not the value"}),
        ],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: a `'|all':` keyword list compiles to whole-value (exact) matchers, so each keyword must EQUAL some string of the event, while a plain keyword list searches inside the strings"]
fn spec_example_keywords_with_all_are_and() {
    let body = "keywords_cmdlet:
    '|all':
        - 'OabVirtualDirectory'
        - ' -ExternalUrl '
condition: keywords_cmdlet";
    check(
        body,
        &[
            json!({"ScriptBlockText": "Set-OabVirtualDirectory -Identity x -ExternalUrl 'http://evil'"}),
            json!({"A": "set-oabvirtualdirectory", "B": "x -externalurl y"}),
        ],
        &[
            json!({"ScriptBlockText": "Set-OabVirtualDirectory -Identity x"}),
            json!({"ScriptBlockText": "x -ExternalUrl y"}),
        ],
    );
}

// =============================================================================================
// Modifiers appendix: generic modifiers

#[test]
fn contains_matches_anywhere() {
    check(
        "selection:\n    CommandLine|contains: 'whoami'\ncondition: selection",
        &[
            json!({"CommandLine": "cmd /c WhoAmI /all"}),
            json!({"CommandLine": "whoami"}),
        ],
        &[
            json!({"CommandLine": "who ami"}),
            json!({"Other": "whoami"}),
        ],
    );
}

#[test]
fn startswith_matches_the_beginning() {
    check(
        "selection:\n    User|startswith: 'adm_'\ncondition: selection",
        &[json!({"User": "adm_bob"}), json!({"User": "ADM_alice"})],
        &[json!({"User": "xadm_bob"}), json!({"User": "adm"})],
    );
}

#[test]
fn endswith_matches_the_end() {
    check(
        r"selection:
    Image|endswith: '\cmd.exe'
condition: selection",
        &[
            json!({"Image": r"C:\Windows\System32\cmd.exe"}),
            json!({"Image": r"c:\x\CMD.EXE"}),
        ],
        &[
            json!({"Image": r"C:\x\cmd.exe.bak"}),
            json!({"Image": r"C:\x\notcmd.exe"}),
        ],
    );
}

#[test]
fn all_turns_a_value_list_into_and() {
    check(
        "selection:
    CommandLine|contains|all:
        - ' -nop '
        - ' -w hidden '
condition: selection",
        &[json!({"CommandLine": "powershell -w hidden -nop -c x"})],
        &[
            json!({"CommandLine": "powershell -nop -c x"}),
            json!({"CommandLine": "powershell -w hidden -c x"}),
        ],
    );
}

#[test]
fn all_on_a_single_value_is_rejected() {
    let text = rule(
        RULE_ID,
        "selection:\n    CommandLine|contains|all: 'whoami'\ncondition: selection",
    );
    let (_, report) = load_with(SigmaOptions::default(), &[&text]);
    assert_eq!((report.rules, report.problems.len()), (0, 1), "{report:?}");
}

#[test]
fn exists_checks_presence_only() {
    // Spec example; "this check only verifies the presence of a field, not its value, be it
    // empty or null".
    check(
        "selection:
    EventID: 4738
    PasswordLastSet|exists: true
condition: selection",
        &[
            json!({"EventID": 4738, "PasswordLastSet": "2024-05-01"}),
            json!({"EventID": 4738, "PasswordLastSet": ""}),
        ],
        &[
            json!({"EventID": 4738}),
            json!({"EventID": 4624, "PasswordLastSet": "x"}),
        ],
    );
    check(
        "selection:
    EventID: 4738
    PasswordLastSet|exists: false
condition: selection",
        &[json!({"EventID": 4738})],
        &[
            json!({"EventID": 4738, "PasswordLastSet": "2024-05-01"}),
            json!({"EventID": 4738, "PasswordLastSet": ""}),
        ],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: |exists is computed as `value is not null`, so a field present with a null value counts as missing (the spec: presence only, be it empty or null)"]
fn exists_is_true_for_a_field_holding_null() {
    check(
        "selection:\n    PasswordLastSet|exists: true\ncondition: selection",
        &[json!({"PasswordLastSet": null})],
        &[json!({"Other": null})],
    );
    check(
        "selection:\n    PasswordLastSet|exists: false\ncondition: selection",
        &[json!({"Other": 1})],
        &[json!({"PasswordLastSet": null})],
    );
}

#[test]
fn cased_makes_matching_case_sensitive() {
    check(
        "selection:\n    User|cased: 'Admin'\ncondition: selection",
        &[json!({"User": "Admin"})],
        &[json!({"User": "admin"}), json!({"User": "ADMIN"})],
    );
    check(
        "selection:\n    CommandLine|contains|cased: 'WhoAmI'\ncondition: selection",
        &[json!({"CommandLine": "cmd /c WhoAmI"})],
        &[json!({"CommandLine": "cmd /c whoami"})],
    );
}

#[test]
fn neq_matches_different_values() {
    check(
        "selection:\n    User|neq: 'admin'\ncondition: selection",
        &[json!({"User": "bob"})],
        &[json!({"User": "admin"}), json!({"User": "ADMIN"})],
    );
    check(
        "selection:\n    EventID|neq: 4624\ncondition: selection",
        &[json!({"EventID": 4625}), json!({"EventID": "4625"})],
        &[json!({"EventID": 4624}), json!({"EventID": "4624"})],
    );
}

// =============================================================================================
// Modifiers appendix: string modifiers

#[test]
fn windash_accepts_every_dash_variant() {
    check(
        "selection:\n    CommandLine|windash|contains: ' -enc '\ncondition: selection",
        &[
            json!({"CommandLine": "powershell -enc SQBFAFgA"}),
            json!({"CommandLine": "powershell /enc SQBFAFgA"}),
            json!({"CommandLine": "powershell \u{2013}enc SQBFAFgA"}),
            json!({"CommandLine": "powershell \u{2014}enc SQBFAFgA"}),
            json!({"CommandLine": "powershell \u{2015}enc SQBFAFgA"}),
        ],
        &[
            json!({"CommandLine": "powershell +enc SQBFAFgA"}),
            json!({"CommandLine": "powershell enc SQBFAFgA"}),
        ],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: |windash expands the value's original text and compiles each variant as a plain string, so `*`/`?` in a windash value become literal characters"]
fn windash_keeps_wildcards() {
    check(
        "selection:\n    CommandLine|windash: '*powershell* -enc *'\ncondition: selection",
        &[
            json!({"CommandLine": r"C:\x\powershell.exe /enc abc"}),
            json!({"CommandLine": "powershell.exe -enc abc"}),
        ],
        &[json!({"CommandLine": "powershell.exe -x abc"})],
    );
}

#[test]
fn re_is_case_sensitive_by_default() {
    check(
        "selection:\n    CommandLine|re: '^cmd.+(whoami|hostname)$'\ncondition: selection",
        &[
            json!({"CommandLine": "cmd.exe /c whoami"}),
            json!({"CommandLine": "cmd /c hostname"}),
        ],
        &[
            json!({"CommandLine": "CMD.EXE /C WHOAMI"}),
            json!({"CommandLine": "cmd.exe /c whoami /all"}),
            json!({"CommandLine": "x cmd /c whoami"}),
        ],
    );
}

#[test]
fn re_i_is_case_insensitive() {
    check(
        "selection:\n    CommandLine|re|i: '^cmd.+(whoami|hostname)$'\ncondition: selection",
        &[
            json!({"CommandLine": "CMD.EXE /C WHOAMI"}),
            json!({"CommandLine": "cmd /c hostname"}),
        ],
        &[json!({"CommandLine": "CMD.EXE /C WHOAMI /ALL"})],
    );
}

#[test]
fn re_m_anchors_match_at_line_boundaries() {
    let multi_line = json!({"Text": "line one\nwhoami\nline three"});
    check(
        "selection:\n    Text|re|m: '^whoami$'\ncondition: selection",
        &[multi_line.clone(), json!({"Text": "whoami"})],
        &[json!({"Text": "x whoami"})],
    );
    check(
        "selection:\n    Text|re: '^whoami$'\ncondition: selection",
        &[json!({"Text": "whoami"})],
        &[multi_line],
    );
}

#[test]
fn re_s_lets_dot_match_a_line_break() {
    let multi_line = json!({"Text": "begin\nend"});
    check(
        "selection:\n    Text|re|s: 'begin.end'\ncondition: selection",
        &[multi_line.clone(), json!({"Text": "beginXend"})],
        &[json!({"Text": "begin\n\nend"})],
    );
    check(
        "selection:\n    Text|re: 'begin.end'\ncondition: selection",
        &[json!({"Text": "beginXend"})],
        &[multi_line],
    );
}

#[test]
fn re_flags_combine() {
    check(
        "selection:\n    Text|re|i|m: '^WHOAMI$'\ncondition: selection",
        &[json!({"Text": "a\nwhoami\nb"})],
        &[json!({"Text": "a whoami b"})],
    );
}

/// base64 of `prefix` followed by `text`.
fn base64_of(prefix: &[u8], text: &[u8]) -> String {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(text);
    BASE64.encode(bytes)
}

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16be(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

#[test]
fn base64_matches_the_encoded_value() {
    // base64("http://") = "aHR0cDovLw=="
    assert_eq!(base64_of(b"", b"http://"), "aHR0cDovLw==");
    check(
        "selection:\n    Data|base64: 'http://'\ncondition: selection",
        &[json!({"Data": "aHR0cDovLw=="})],
        &[
            json!({"Data": "http://"}),
            json!({"Data": "x aHR0cDovLw=="}),
        ],
    );
    check(
        "selection:\n    Data|base64|contains: 'http://'\ncondition: selection",
        &[json!({"Data": "x aHR0cDovLw== y"})],
        &[json!({"Data": "aHR0cDovL"})],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: base64offset keeps the last base64 character of each variant, which also depends on the byte AFTER the value; pySigma cuts it (end offsets -3/-2), so rsigma only finds values that end the encoded text"]
fn base64offset_finds_the_value_at_every_offset() {
    let positives: Vec<Value> = [&b""[..], b"X", b"XY"]
        .iter()
        .map(|prefix| json!({"CommandLine": format!("powershell -e {}", base64_of(prefix, b"http://evil.example/a"))}))
        .collect();
    check(
        "selection:\n    CommandLine|base64offset|contains: 'http://'\ncondition: selection",
        &positives,
        &[
            json!({"CommandLine": format!("powershell -e {}", base64_of(b"", b"htp://evil.example/a"))}),
            json!({"CommandLine": "http://evil.example"}),
        ],
    );
}

#[test]
fn base64offset_finds_a_value_that_ends_the_encoded_text() {
    // The part of base64offset that works in rsigma 0.23 (see the ignored test above).
    let positives: Vec<Value> =
        [&b""[..], b"X", b"XY"].iter().map(|prefix| json!({"CommandLine": format!("powershell -e {}", base64_of(prefix, b"http://"))})).collect();
    check(
        "selection:\n    CommandLine|base64offset|contains: 'http://'\ncondition: selection",
        &positives,
        &[
            json!({"CommandLine": format!("powershell -e {}", base64_of(b"", b"htp://"))}),
            json!({"CommandLine": "http://"}),
        ],
    );
}

fn encoded_powershell(bytes: impl Fn(&str) -> Vec<u8>, prefixes: &[&[u8]]) -> Vec<Value> {
    prefixes
        .iter()
        .map(|prefix| json!({"CommandLine": format!("powershell -enc {}", base64_of(prefix, &bytes("cmd /c ping 10.0.0.1 -n 1")))}))
        .collect()
}

#[test]
#[ignore = "rsigma 0.23 gap: base64offset drops matches inside longer encoded text (see base64offset_finds_the_value_at_every_offset), which breaks SigmaHQ's encoded-PowerShell pattern `|wide|base64offset|contains`"]
fn utf16le_and_wide_encode_before_base64offset() {
    let prefixes: [&[u8]; 3] = [b"", b"\x00", b"a\x00"];
    let negative = json!({"CommandLine": format!("powershell -enc {}", base64_of(b"", b"cmd /c ping 10.0.0.1 -n 1"))});
    for modifier in ["wide", "utf16le"] {
        check(
            &format!("selection:\n    CommandLine|{modifier}|base64offset|contains: 'ping '\ncondition: selection"),
            &encoded_powershell(utf16le, &prefixes),
            std::slice::from_ref(&negative),
        );
    }
}

#[test]
fn utf16le_wide_and_utf16be_encode_before_base64() {
    let text = "cmd /c ping 10.0.0.1";
    let utf8 = json!({"Data": BASE64.encode(text)});
    for modifier in ["wide", "utf16le"] {
        check(
            &format!("selection:\n    Data|{modifier}|base64: '{text}'\ncondition: selection"),
            &[json!({"Data": BASE64.encode(utf16le(text))})],
            &[utf8.clone(), json!({"Data": BASE64.encode(utf16be(text))})],
        );
    }
    check(
        &format!("selection:\n    Data|utf16be|base64: '{text}'\ncondition: selection"),
        &[json!({"Data": BASE64.encode(utf16be(text))})],
        &[utf8, json!({"Data": BASE64.encode(utf16le(text))})],
    );
}

#[test]
fn utf16be_encodes_before_base64offset() {
    // Passes despite the base64offset gap above: in UTF-16BE the byte after an ASCII value is
    // always 0x00, which is what rsigma's untrimmed last character assumes.
    let prefixes: [&[u8]; 3] = [b"", b"\x00", b"\x00a"];
    check(
        "selection:\n    CommandLine|utf16be|base64offset|contains: 'ping '\ncondition: selection",
        &encoded_powershell(utf16be, &prefixes),
        // (UTF-16LE text shifted by one byte IS UTF-16BE, so the negative is UTF-8.)
        &[
            json!({"CommandLine": format!("powershell -enc {}", base64_of(b"", b"cmd /c ping 10.0.0.1 -n 1"))}),
        ],
    );
}

#[test]
fn utf16_prepends_a_byte_order_mark() {
    // Spec: `cmd` > `FF FE 63 00 6d 00 64 00`.
    let mut with_bom = vec![0xFF, 0xFE];
    with_bom.extend(utf16le("cmd"));
    assert_eq!(with_bom, [0xFF, 0xFE, 0x63, 0x00, 0x6d, 0x00, 0x64, 0x00]);
    check(
        "selection:\n    Data|utf16|base64: 'cmd'\ncondition: selection",
        &[json!({"Data": BASE64.encode(&with_bom)})],
        &[
            json!({"Data": BASE64.encode(utf16le("cmd"))}),
            json!({"Data": BASE64.encode(utf16be("cmd"))}),
        ],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: without base64/base64offset the wide/utf16le/utf16be/utf16 bytes are dropped and the ORIGINAL value is matched, so `|wide` alone is silently a no-op"]
fn wide_alone_matches_utf16le_text_in_a_field() {
    // Spec: `cmd` > `63 00 6d 00 64 00`; a field holding those bytes (as a JSON string with
    // NULs) matches, the plain text does not.
    check(
        "selection:\n    Data|wide|contains: 'cmd'\ncondition: selection",
        &[json!({"Data": "x\u{0}c\u{0}m\u{0}d\u{0}y\u{0}"})],
        &[json!({"Data": "cmd"})],
    );
}

// =============================================================================================
// Modifiers appendix: numeric, time, IP and specific modifiers

#[test]
fn numeric_comparisons() {
    check(
        "selection:\n    Size|gt: 100\ncondition: selection",
        &[json!({"Size": 101}), json!({"Size": 100.5})],
        &[json!({"Size": 100}), json!({"Size": 99})],
    );
    check(
        "selection:\n    Size|gte: 100\ncondition: selection",
        &[json!({"Size": 100}), json!({"Size": 101})],
        &[json!({"Size": 99})],
    );
    check(
        "selection:\n    Size|lt: 100\ncondition: selection",
        &[json!({"Size": 99}), json!({"Size": -5})],
        &[json!({"Size": 100}), json!({"Size": 101})],
    );
    check(
        "selection:\n    Size|lte: 100\ncondition: selection",
        &[json!({"Size": 100}), json!({"Size": 0})],
        &[json!({"Size": 101})],
    );
    check(
        "selection:\n    Ratio|gt: 0.5\ncondition: selection",
        &[json!({"Ratio": 0.75})],
        &[json!({"Ratio": 0.25}), json!({"Ratio": 0.5})],
    );
    // A missing field or a non-number is not greater than anything.
    check(
        "selection:\n    Size|gt: 100\ncondition: selection",
        &[],
        &[json!({"Other": 1000}), json!({"Size": "big"})],
    );
}

#[test]
fn numeric_comparisons_read_numbers_written_as_text() {
    // Windows event data arrives as text ("EventData" values); the comparison is numeric.
    check(
        "selection:\n    Size|gt: 100\ncondition: selection",
        &[json!({"Size": "101"})],
        &[json!({"Size": "99"}), json!({"Size": "100"})],
    );
}

#[test]
fn time_modifiers_extract_parts_of_a_date() {
    // 2024-05-01T03:15:42Z is a Wednesday in ISO week 18.
    let hit = json!({"LogonTime": "2024-05-01T03:15:42Z"});
    let miss = json!({"LogonTime": "2023-12-31T22:45:00Z"});
    for (modifier, value) in [
        ("minute", 15),
        ("hour", 3),
        ("day", 1),
        ("week", 18),
        ("month", 5),
        ("year", 2024),
    ] {
        check(
            &format!("selection:\n    LogonTime|{modifier}: {value}\ncondition: selection"),
            std::slice::from_ref(&hit),
            &[miss.clone(), json!({"Other": "x"})],
        );
    }
}

#[test]
#[ignore = "rsigma 0.23 gap: a time modifier cannot be chained with gt/gte/lt/lte (`at most one operator` load error), so `LogonTime|hour|lt: 6` (off-hours) cannot be written"]
fn time_modifiers_chain_with_numeric_comparisons() {
    check(
        "selection:\n    LogonTime|hour|lt: 6\ncondition: selection",
        &[json!({"LogonTime": "2024-05-01T03:15:42Z"})],
        &[json!({"LogonTime": "2024-05-01T13:15:42Z"})],
    );
}

#[test]
fn cidr_matches_ipv4_and_ipv6_ranges() {
    // Spec example: `DestinationIp|cidr: 10.0.0.0/8`.
    check(
        "selection:\n    DestinationIp|cidr: 10.0.0.0/8\ncondition: selection",
        &[
            json!({"DestinationIp": "10.1.2.3"}),
            json!({"DestinationIp": "10.255.255.255"}),
        ],
        &[
            json!({"DestinationIp": "11.0.0.1"}),
            json!({"DestinationIp": "9.255.255.255"}),
            json!({"DestinationIp": "not an ip"}),
        ],
    );
    check(
        "selection:\n    DestinationIp|cidr:\n        - '192.168.0.0/16'\n        - '172.16.0.0/12'\ncondition: selection",
        &[json!({"DestinationIp": "192.168.7.1"}), json!({"DestinationIp": "172.31.0.1"})],
        &[json!({"DestinationIp": "172.32.0.1"})],
    );
    check(
        "selection:\n    DestinationIp|cidr: '2001:db8::/32'\ncondition: selection",
        &[
            json!({"DestinationIp": "2001:db8:1::1"}),
            json!({"DestinationIp": "2001:DB8::ff"}),
        ],
        &[
            json!({"DestinationIp": "2001:db9::1"}),
            json!({"DestinationIp": "10.0.0.1"}),
        ],
    );
}

fn placeholders(entries: &[(&str, &[&str])]) -> SigmaOptions {
    let mut options = SigmaOptions::default();
    for (name, values) in entries {
        options.placeholders.insert(
            (*name).to_owned(),
            values.iter().map(|value| (*value).to_owned()).collect(),
        );
    }
    options
}

#[test]
fn expand_replaces_a_placeholder_with_its_values() {
    check_with(
        placeholders(&[("Administrators", &["admin", "root"])]),
        "selection:\n    User|expand: '%Administrators%'\ncondition: selection",
        &[json!({"User": "admin"}), json!({"User": "ROOT"})],
        &[json!({"User": "bob"}), json!({"User": "%Administrators%"})],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: an item keeps its Expand modifier after the placeholder pipeline ran, and the compiler turns Expand into a whole-value, wildcard-free comparison: `srv*` only matches the text `srv*`"]
fn expand_values_may_be_patterns() {
    // Spec: "the placeholder `%Servers%` is replaced with the pattern `srv*`".
    check_with(
        placeholders(&[("Servers", &["srv*"])]),
        "selection:\n    Computer|expand: '%Servers%'\ncondition: selection",
        &[json!({"Computer": "srv-db01"}), json!({"Computer": "SRV1"})],
        &[json!({"Computer": "ws-01"})],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: Expand is compiled as a whole-value comparison that ignores contains/startswith/endswith, so SigmaHQ's `CommandLine|contains|expand: '%userdomain%'` only matches a command line equal to the domain"]
fn expand_keeps_the_other_modifiers() {
    check_with(
        placeholders(&[("userdomain", &["CORP"])]),
        "selection:\n    CommandLine|contains|expand: '%userdomain%'\ncondition: selection",
        &[
            json!({"CommandLine": "net group \"Domain Admins\" /domain CORP"}),
            json!({"CommandLine": "CORP"}),
        ],
        &[json!({"CommandLine": "net group /domain OTHER"})],
    );
}

#[test]
fn a_placeholder_without_expand_is_a_literal_value() {
    // Spec: "`field: %name%` handles `%name%` as literal value".
    check_with(
        placeholders(&[("name", &["bob"])]),
        "selection:\n    User: '%name%'\ncondition: selection",
        &[json!({"User": "%name%"})],
        &[json!({"User": "bob"})],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: the placeholder transformations rewrite every value of a rule that uses |expand, not only the |expand values: a literal %TEMP% in another item becomes `*`"]
fn expand_only_touches_values_with_the_expand_modifier() {
    check_with(
        placeholders(&[("Administrators", &["admin"])]),
        "selection:\n    User|expand: '%Administrators%'\n    CommandLine|contains: '%TEMP%'\ncondition: selection",
        &[json!({"User": "admin", "CommandLine": r"copy x %TEMP%\y"})],
        &[json!({"User": "admin", "CommandLine": r"copy x C:\y"}), json!({"User": "bob", "CommandLine": "%TEMP%"})],
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: `\\%` does not escape a percent sign in an |expand value (`\\%plain%name%` is read as placeholder `plain`)"]
fn expand_escaped_percent_is_plain() {
    // Spec: "`field|expand: \%plain%name%` handles `%plain` as plain value and `%name%` as
    // placeholder".
    check_with(
        placeholders(&[("name", &["bob"])]),
        r"selection:
    Field|expand: '\%plain%name%'
condition: selection",
        &[json!({"Field": "%plainbob"})],
        &[json!({"Field": "xbob"}), json!({"Field": "%plain%name%"})],
    );
}

#[test]
fn text_mentioning_expand_does_not_enable_placeholders() {
    check(
        "selection:\n    CommandLine|contains|all:\n        - 'Expand-Archive'\n        - '%TEMP%'\ncondition: selection",
        &[json!({"CommandLine": r"Expand-Archive %TEMP%\a.zip"})],
        &[json!({"CommandLine": r"Expand-Archive C:\a.zip"})],
    );
}

#[test]
#[ignore = "SigmaEngine gap: the `*` substituted by wildcard_placeholders is compared literally (the item keeps its Expand modifier, compiled as a whole-value comparison), so an unknown placeholder matches only the text `*`, not anything as SigmaEngine documents"]
fn unknown_placeholder_falls_back_to_a_wildcard() {
    // Not the specification's choice (it says a tool that cannot handle a placeholder must
    // reject the rule; a wildcard is pySigma's "last resort"); this is SigmaEngine's
    // documented behaviour, pinned so a change is deliberate.
    check(
        "selection:\n    Computer|expand: '%JumpServers%'\ncondition: selection",
        &[json!({"Computer": "anything"})],
        &[json!({"Other": "x"})],
    );
}

#[test]
fn fieldref_compares_two_fields_of_the_event() {
    check(
        "selection:\n    TargetUserName|fieldref: SubjectUserName\ncondition: selection",
        &[json!({"TargetUserName": "bob", "SubjectUserName": "bob"})],
        &[
            json!({"TargetUserName": "bob", "SubjectUserName": "alice"}),
            json!({"TargetUserName": "bob"}),
        ],
    );
}

#[test]
fn fieldref_combines_with_neq() {
    check(
        "selection:\n    TargetUserName|fieldref|neq: SubjectUserName\ncondition: selection",
        &[json!({"TargetUserName": "bob", "SubjectUserName": "alice"})],
        &[json!({"TargetUserName": "bob", "SubjectUserName": "bob"})],
    );
}

// =============================================================================================
// Rules specification: conditions

const FOUR_SELECTIONS: &str = "selection_a:
    A: 'yes'
selection_b:
    B: 'yes'
selection_c:
    C: 'yes'
filter_x:
    X: 'yes'
";

fn with_condition(selections: &str, condition: &str) -> String {
    format!("{selections}condition: {condition}")
}

#[test]
fn and_or_not() {
    let body = with_condition(FOUR_SELECTIONS, "selection_a and selection_b");
    check(
        &body,
        &[json!({"A": "yes", "B": "yes"})],
        &[json!({"A": "yes"}), json!({"B": "yes"})],
    );
    let body = with_condition(FOUR_SELECTIONS, "selection_a or selection_b");
    check(
        &body,
        &[json!({"A": "yes"}), json!({"B": "yes"})],
        &[json!({"C": "yes"})],
    );
    let body = with_condition(FOUR_SELECTIONS, "selection_a and not filter_x");
    check(
        &body,
        &[json!({"A": "yes"}), json!({"A": "yes", "X": "no"})],
        &[json!({"A": "yes", "X": "yes"})],
    );
}

#[test]
fn parentheses_group() {
    // Spec: `selection1 and (keywords1 or keywords2)`.
    let body = with_condition(
        FOUR_SELECTIONS,
        "selection_a and (selection_b or selection_c)",
    );
    check(
        &body,
        &[
            json!({"A": "yes", "B": "yes"}),
            json!({"A": "yes", "C": "yes"}),
        ],
        &[json!({"A": "yes"}), json!({"B": "yes", "C": "yes"})],
    );
    let body = with_condition(
        FOUR_SELECTIONS,
        "not (selection_a or selection_b) and selection_c",
    );
    check(
        &body,
        &[json!({"C": "yes"})],
        &[
            json!({"A": "yes", "C": "yes"}),
            json!({"B": "yes", "C": "yes"}),
        ],
    );
}

#[test]
fn operator_precedence_is_or_and_not() {
    // or binds least: `a or b and c` is `a or (b and c)`.
    let body = with_condition(
        FOUR_SELECTIONS,
        "selection_a or selection_b and selection_c",
    );
    check(
        &body,
        &[json!({"A": "yes"}), json!({"B": "yes", "C": "yes"})],
        &[json!({"B": "yes"}), json!({"C": "yes"})],
    );
    // not binds more than and: `not a and b` is `(not a) and b`.
    let body = with_condition(FOUR_SELECTIONS, "not selection_a and selection_b");
    check(
        &body,
        &[json!({"B": "yes"})],
        &[json!({"A": "yes", "B": "yes"}), json!({})],
    );
    // `x of` binds more than not.
    let body = with_condition(FOUR_SELECTIONS, "not 1 of selection_* and filter_x");
    check(
        &body,
        &[json!({"X": "yes"})],
        &[json!({"X": "yes", "C": "yes"})],
    );
}

#[test]
fn one_of_and_all_of_a_pattern() {
    let body = with_condition(FOUR_SELECTIONS, "1 of selection_*");
    check(
        &body,
        &[json!({"A": "yes"}), json!({"C": "yes"})],
        &[json!({"X": "yes"})],
    );
    let body = with_condition(FOUR_SELECTIONS, "all of selection_*");
    check(
        &body,
        &[json!({"A": "yes", "B": "yes", "C": "yes"})],
        &[json!({"A": "yes", "B": "yes", "X": "yes"})],
    );
    // "Matching is done with * wildcards (any number of characters) at arbitrary positions".
    let body = with_condition(FOUR_SELECTIONS, "1 of *_x");
    check(&body, &[json!({"X": "yes"})], &[json!({"A": "yes"})]);
}

#[test]
fn spec_example_one_of_selection_and_not_one_of_filter() {
    let body = "selection1:
    A: 'yes'
selection2:
    B: 'yes'
filter1:
    X: 'yes'
filter2:
    Y: 'yes'
condition: 1 of selection* and not 1 of filter*";
    check(
        body,
        &[json!({"A": "yes"}), json!({"B": "yes", "X": "no"})],
        &[
            json!({"A": "yes", "X": "yes"}),
            json!({"B": "yes", "Y": "yes"}),
            json!({"X": "yes"}),
        ],
    );
}

#[test]
fn them_excludes_identifiers_starting_with_an_underscore() {
    let selections =
        "selection_a:\n    A: 'yes'\nselection_b:\n    B: 'yes'\n_helper:\n    H: 'yes'\n";
    let body = with_condition(selections, "1 of them");
    check(
        &body,
        &[json!({"A": "yes"}), json!({"B": "yes"})],
        &[json!({"H": "yes"})],
    );
    let body = with_condition(selections, "all of them");
    check(
        &body,
        &[json!({"A": "yes", "B": "yes"})],
        &[json!({"A": "yes", "H": "yes"})],
    );
}

#[test]
fn a_number_of_a_pattern() {
    let body = with_condition(FOUR_SELECTIONS, "2 of selection_*");
    check(
        &body,
        &[
            json!({"A": "yes", "B": "yes"}),
            json!({"A": "yes", "B": "yes", "C": "yes"}),
        ],
        &[json!({"A": "yes"}), json!({"A": "yes", "X": "yes"})],
    );
    let body = with_condition(FOUR_SELECTIONS, "3 of them");
    check(
        &body,
        &[json!({"A": "yes", "B": "yes", "X": "yes"})],
        &[json!({"A": "yes", "B": "yes"})],
    );
}

#[test]
fn a_condition_list_is_or() {
    let body = "selection_a:\n    A: 'yes'\nselection_b:\n    B: 'yes'\ncondition:\n    - selection_a\n    - selection_b";
    check(
        body,
        &[json!({"A": "yes"}), json!({"B": "yes"})],
        &[json!({"C": "yes"})],
    );
    // One alert per event even when both conditions hold.
    let text = rule(RULE_ID, body);
    let mut engine = engine(&[&text]);
    assert_eq!(
        engine
            .process(&event(&json!({"A": "yes", "B": "yes"})))
            .len(),
        1
    );
}

// =============================================================================================
// Logsource routing

#[test]
fn rules_only_see_events_of_their_logsource() {
    let windows = rule_with_logsource(
        "windows-rule",
        "{product: windows, category: process_creation}",
        "selection:\n    CommandLine|contains: 'whoami'\ncondition: selection",
    );
    let linux = rule_with_logsource(
        "linux-rule",
        "{product: linux, service: sshd}",
        "keywords:\n    - 'whoami'\ncondition: keywords",
    );
    let anything = rule("any-rule", "keywords:\n    - 'whoami'\ncondition: keywords");
    let definition_only = "title: Definition only\nid: definition-rule\nlogsource:\n    definition: 'any source that logs command lines'\ndetection:\n    keywords:\n        - 'whoami'\n    condition: keywords\n";
    let mut engine = engine(&[&windows, &linux, &anything, definition_only]);

    let sysmon = event(&sysmon_process(
        r"C:\Windows\System32\cmd.exe",
        "cmd /c whoami",
    ));
    assert_eq!(sysmon.logsource.product.as_deref(), Some("windows"));
    let mut hits = rule_ids(&engine.process(&sysmon))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    hits.sort();
    assert_eq!(hits, ["any-rule", "definition-rule", "windows-rule"]);

    let mut context = context();
    context.timezone = chrono_tz::UTC;
    let sshd = parse_record(b"<38>May  1 00:00:00 host sshd[1]: Invalid user whoami CommandLine=whoami from 203.0.113.4 port 4 ssh2", InputFormat::Auto, &context, 1);
    assert_eq!(
        (
            sshd.logsource.product.as_deref(),
            sshd.logsource.service.as_deref()
        ),
        (Some("linux"), Some("sshd"))
    );
    let mut hits = rule_ids(&engine.process(&sshd))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    hits.sort();
    assert_eq!(hits, ["any-rule", "definition-rule", "linux-rule"]);

    // A generic document with the same fields has no logsource: only logsource-free rules.
    let generic =
        event(&json!({"CommandLine": "cmd /c whoami", "Image": r"C:\Windows\System32\cmd.exe"}));
    let mut hits = rule_ids(&engine.process(&generic))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    hits.sort();
    assert_eq!(hits, ["any-rule", "definition-rule"]);
}

// =============================================================================================
// Correlation rules

fn correlations(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|alert| alert.kind == AlertKind::Correlation)
        .collect()
}

/// Runs `(seconds, document)` through `engine` in order; every alert that came out.
fn run(engine: &mut SigmaEngine, events: &[(i64, Value)]) -> Vec<Alert> {
    events
        .iter()
        .flat_map(|(seconds, document)| engine.process(&event_at(*seconds, document)))
        .collect()
}

/// How many correlation alerts `rule_id` raised over `events`.
fn correlation_count(engine: &mut SigmaEngine, events: &[(i64, Value)], rule_id: &str) -> usize {
    run(engine, events)
        .iter()
        .filter(|alert| alert.kind == AlertKind::Correlation && alert.rule_id == rule_id)
        .count()
}

const FAILED_LOGIN: &str = "title: Failed login
id: 5638f7c0-ac70-491d-8465-2a65075e0d86
name: failed_login
logsource: {}
detection:
    selection:
        EventID: 4625
    condition: selection
level: low
";

fn failed_login(computer: &str, user: &str, workstation: &str) -> Value {
    json!({"EventID": 4625, "ComputerName": computer, "User": user, "WorkstationName": workstation})
}

/// The specification's event_count example with a smaller threshold.
const MANY_FAILED_LOGINS: &str = "title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
    type: event_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
    timespan: 1h
    condition:
        gte: 3
level: high
";

#[test]
fn event_count_counts_per_group_inside_the_timespan() {
    let mut engine = engine(&[FAILED_LOGIN, MANY_FAILED_LOGINS]);
    let events: Vec<(i64, Value)> = (0..3)
        .map(|i| (i * 600, failed_login("dc1", &format!("u{i}"), "ws1")))
        .collect();
    let alerts = run(&mut engine, &events);
    let fired = correlations(&alerts);
    assert_eq!(fired.len(), 1, "{alerts:#?}");
    let alert = fired[0];
    assert_eq!(alert.rule_id, "0e95725d-7320-415d-80f7-004da920fc11");
    assert_eq!(
        alert.details.get("group"),
        Some(&json!({"ComputerName": "dc1"}))
    );
    assert_eq!(
        alert
            .details
            .get("aggregated_value")
            .and_then(Value::as_f64),
        Some(3.0)
    );
    assert_eq!(alert.event_ids.len(), 3, "{:?}", alert.event_ids);
    assert_eq!(alert.agency.as_deref(), Some("quan-1"));

    // Two events are not enough.
    let mut engine = self::engine(&[FAILED_LOGIN, MANY_FAILED_LOGINS]);
    assert_eq!(
        correlation_count(
            &mut engine,
            &events[..2],
            "0e95725d-7320-415d-80f7-004da920fc11"
        ),
        0
    );
    // Three events over two groups are not enough.
    let mut engine = self::engine(&[FAILED_LOGIN, MANY_FAILED_LOGINS]);
    let split = [
        (0, failed_login("dc1", "a", "w")),
        (1, failed_login("dc2", "a", "w")),
        (2, failed_login("dc1", "a", "w")),
    ];
    assert_eq!(
        correlation_count(&mut engine, &split, "0e95725d-7320-415d-80f7-004da920fc11"),
        0
    );
    // Three events over more than the hour are not enough.
    let mut engine = self::engine(&[FAILED_LOGIN, MANY_FAILED_LOGINS]);
    let spread = [
        (0, failed_login("dc1", "a", "w")),
        (1800, failed_login("dc1", "a", "w")),
        (3700, failed_login("dc1", "a", "w")),
    ];
    assert_eq!(
        correlation_count(&mut engine, &spread, "0e95725d-7320-415d-80f7-004da920fc11"),
        0
    );
}

fn pair_within(timespan: &str, gap: i64) -> usize {
    let correlation = format!(
        "title: Two failures\nid: two-failures\ncorrelation:\n    type: event_count\n    rules: [failed_login]\n    group-by: [ComputerName]\n    timespan: {timespan}\n    condition:\n        gte: 2\n"
    );
    let mut engine = engine(&[FAILED_LOGIN, &correlation]);
    correlation_count(
        &mut engine,
        &[
            (0, failed_login("dc1", "a", "w")),
            (gap, failed_login("dc1", "a", "w")),
        ],
        "two-failures",
    )
}

#[test]
fn timespan_window_edges() {
    assert_eq!(pair_within("60s", 59), 1, "inside the window");
    assert_eq!(pair_within("60s", 61), 0, "outside the window");
    assert_eq!(pair_within("1m", 59), 1);
    assert_eq!(pair_within("1m", 61), 0);
    assert_eq!(pair_within("2h", 7199), 1);
    assert_eq!(pair_within("2h", 7201), 0);
    assert_eq!(pair_within("1d", 86_399), 1);
    assert_eq!(pair_within("1d", 86_401), 0);
    // The specification does not say whether an event exactly `timespan` later is inside;
    // rsigma keeps it (the window is closed at both ends). Pinned so a change is noticed.
    assert_eq!(pair_within("60s", 60), 1);
}

#[test]
fn timespan_in_minutes_like_90m() {
    // Spec: "example for 1h30 : `timespan: 90m`".
    assert_eq!(pair_within("90m", 5399), 1);
    assert_eq!(pair_within("90m", 5401), 0);
}

fn count_condition(condition: &str, events: usize) -> usize {
    let correlation = format!(
        "title: Counted\nid: counted\ncorrelation:\n    type: event_count\n    rules: [failed_login]\n    group-by: [ComputerName]\n    timespan: 1h\n    condition:\n{}",
        indent(condition, 8)
    );
    let mut engine = engine(&[FAILED_LOGIN, &correlation]);
    let documents: Vec<(i64, Value)> = (0..events)
        .map(|i| (i as i64, failed_login("dc1", "a", "w")))
        .collect();
    correlation_count(&mut engine, &documents, "counted")
}

#[test]
fn correlation_condition_operators_and_ranges() {
    // Fired after the event that makes the condition true, for every event it stays true.
    assert_eq!(count_condition("gt: 2", 2), 0);
    assert_eq!(count_condition("gt: 2", 3), 1);
    assert_eq!(count_condition("gte: 2", 1), 0);
    assert_eq!(count_condition("gte: 2", 2), 1);
    assert_eq!(count_condition("eq: 2", 1), 0);
    assert_eq!(count_condition("eq: 2", 2), 1);
    assert_eq!(
        count_condition("eq: 2", 3),
        1,
        "eq holds at the second event only"
    );
    // Spec: "101 to 200" as `gt: 100` and `lte: 200`.
    assert_eq!(count_condition("gt: 1\nlte: 2", 1), 0);
    assert_eq!(
        count_condition("gt: 1\nlte: 2", 3),
        1,
        "the range holds at the second event only"
    );
}

#[test]
fn correlation_condition_lt_lte_neq() {
    assert_eq!(count_condition("lt: 2", 1), 1);
    assert_eq!(
        count_condition("lt: 2", 3),
        1,
        "lt holds at the first event only"
    );
    assert_eq!(count_condition("lte: 1", 2), 1);
    assert_eq!(count_condition("neq: 1", 1), 0);
    assert_eq!(count_condition("neq: 1", 2), 1);
}

/// The specification's value_count example with a smaller threshold.
const FAILED_LOGIN_USERS: &str = "title: Failed login
id: 0e95725d-7320-415d-80f7-004da920fc12
correlation:
    type: value_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
        - WorkstationName
    timespan: 1d
    condition:
        field: User
        gte: 3
";

#[test]
fn value_count_counts_distinct_values_per_group() {
    let id = "0e95725d-7320-415d-80f7-004da920fc12";
    let mut engine = engine(&[FAILED_LOGIN, FAILED_LOGIN_USERS]);
    let distinct = [
        (0, failed_login("dc1", "a", "ws1")),
        (60, failed_login("dc1", "b", "ws1")),
        (120, failed_login("dc1", "c", "ws1")),
    ];
    let alerts = run(&mut engine, &distinct);
    let fired = correlations(&alerts);
    assert_eq!(fired.len(), 1, "{alerts:#?}");
    assert_eq!(
        fired[0].details.get("group"),
        Some(&json!({"ComputerName": "dc1", "WorkstationName": "ws1"}))
    );
    assert_eq!(
        fired[0]
            .details
            .get("aggregated_value")
            .and_then(Value::as_f64),
        Some(3.0)
    );

    let mut engine = self::engine(&[FAILED_LOGIN, FAILED_LOGIN_USERS]);
    let repeated = [
        (0, failed_login("dc1", "a", "ws1")),
        (60, failed_login("dc1", "b", "ws1")),
        (120, failed_login("dc1", "a", "ws1")),
    ];
    assert_eq!(
        correlation_count(&mut engine, &repeated, id),
        0,
        "two distinct users"
    );
    // group-by fields are linked with AND: another workstation is another group.
    let mut engine = self::engine(&[FAILED_LOGIN, FAILED_LOGIN_USERS]);
    let other_workstation = [
        (0, failed_login("dc1", "a", "ws1")),
        (60, failed_login("dc1", "b", "ws1")),
        (120, failed_login("dc1", "c", "ws2")),
    ];
    assert_eq!(correlation_count(&mut engine, &other_workstation, id), 0);
    // Outside the day.
    let mut engine = self::engine(&[FAILED_LOGIN, FAILED_LOGIN_USERS]);
    let late = [
        (0, failed_login("dc1", "a", "ws1")),
        (60, failed_login("dc1", "b", "ws1")),
        (86_461, failed_login("dc1", "c", "ws1")),
    ];
    assert_eq!(correlation_count(&mut engine, &late, id), 0);
}

#[test]
fn value_count_over_several_fields_counts_distinct_combinations() {
    // "When you use multiple values in `field` they are linked by an AND."
    let correlation = "title: Pairs\nid: pairs\ncorrelation:\n    type: value_count\n    rules: [failed_login]\n    group-by: [ComputerName]\n    timespan: 1h\n    condition:\n        field:\n            - User\n            - WorkstationName\n        gte: 3\n";
    let mut engine = engine(&[FAILED_LOGIN, correlation]);
    let three_pairs = [
        (0, failed_login("dc1", "a", "w1")),
        (1, failed_login("dc1", "a", "w2")),
        (2, failed_login("dc1", "b", "w1")),
    ];
    assert_eq!(correlation_count(&mut engine, &three_pairs, "pairs"), 1);
    let mut engine = self::engine(&[FAILED_LOGIN, correlation]);
    let two_pairs = [
        (0, failed_login("dc1", "a", "w1")),
        (1, failed_login("dc1", "a", "w2")),
        (2, failed_login("dc1", "a", "w1")),
    ];
    assert_eq!(correlation_count(&mut engine, &two_pairs, "pairs"), 0);
}

fn recon_rule(letter: &str, command: &str) -> String {
    format!(
        "title: Recon {letter}\nid: recon-{letter}\nname: recon_cmd_{letter}\nlogsource: {{}}\ndetection:\n    selection:\n        CommandLine|contains: '{command}'\n    condition: selection\n"
    )
}

fn recon_rules() -> Vec<String> {
    vec![
        recon_rule("a", "whoami"),
        recon_rule("b", "ipconfig"),
        recon_rule("c", "net user"),
    ]
}

fn recon_event(command: &str, user: &str) -> Value {
    json!({"CommandLine": command, "ComputerName": "pc1", "User": user})
}

/// The specification's temporal examples (tests/schema/correlation/temporal*.yml) with ids,
/// and optionally an explicit condition.
fn recon_correlation(kind: &str, condition: Option<&str>) -> String {
    let condition = condition
        .map(|condition| format!("    condition:\n{}", indent(condition, 8)))
        .unwrap_or_default();
    format!(
        "title: Recon {kind}\nid: recon-{kind}\ncorrelation:\n    type: {kind}\n    rules:\n        - recon_cmd_a\n        - recon_cmd_b\n        - recon_cmd_c\n    group-by:\n        - ComputerName\n        - User\n    timespan: 5m\n{condition}"
    )
}

fn recon_count_with(kind: &str, condition: Option<&str>, events: &[(i64, Value)]) -> usize {
    let mut documents: Vec<String> = recon_rules();
    documents.push(recon_correlation(kind, condition));
    let documents: Vec<&str> = documents.iter().map(String::as_str).collect();
    let mut engine = engine(&documents);
    correlation_count(&mut engine, events, &format!("recon-{kind}"))
}

fn recon_count(kind: &str, events: &[(i64, Value)]) -> usize {
    recon_count_with(kind, None, events)
}

/// The temporal cases: (events, expected correlation alerts).
fn temporal_cases() -> Vec<(Vec<(i64, Value)>, usize)> {
    vec![
        // Any order.
        (
            vec![
                (0, recon_event("net user /domain", "bob")),
                (60, recon_event("whoami /all", "bob")),
                (120, recon_event("ipconfig /all", "bob")),
            ],
            1,
        ),
        // Two of the three rules.
        (
            vec![
                (0, recon_event("whoami", "bob")),
                (60, recon_event("ipconfig", "bob")),
                (120, recon_event("whoami", "bob")),
            ],
            0,
        ),
        // group-by: the third one is another user.
        (
            vec![
                (0, recon_event("whoami", "bob")),
                (60, recon_event("ipconfig", "bob")),
                (120, recon_event("net user", "alice")),
            ],
            0,
        ),
        // Outside, then inside the five minutes.
        (
            vec![
                (0, recon_event("whoami", "bob")),
                (60, recon_event("ipconfig", "bob")),
                (301, recon_event("net user", "bob")),
            ],
            0,
        ),
        (
            vec![
                (0, recon_event("whoami", "bob")),
                (60, recon_event("ipconfig", "bob")),
                (299, recon_event("net user", "bob")),
            ],
            1,
        ),
    ]
}

#[test]
#[ignore = "rsigma 0.23 gap: a temporal correlation without condition defaults to `gte: 1` (parser comment says 'all rules must match'), so it fires on the FIRST matching event of any one rule; temporal_ordered is not affected"]
fn temporal_needs_every_rule_in_any_order_within_the_timespan() {
    // Spec: "All events defined by the rules referred by the rule field must occur in the
    // time frame defined by timespan"; the examples have no condition.
    for (index, (events, expected)) in temporal_cases().into_iter().enumerate() {
        assert_eq!(recon_count("temporal", &events), expected, "case {index}");
    }
}

#[test]
fn temporal_with_a_count_of_rules_condition() {
    // "For a temporal or temporal_ordered correlation it specified the count of different
    // event types (Sigma rules matching) in the given time frame."
    for (index, (events, expected)) in temporal_cases().into_iter().enumerate() {
        assert_eq!(
            recon_count_with("temporal", Some("gte: 3"), &events),
            expected,
            "case {index}"
        );
    }
    let two_of_three = [
        (0, recon_event("whoami", "bob")),
        (60, recon_event("ipconfig", "bob")),
    ];
    assert_eq!(
        recon_count_with("temporal", Some("gte: 2"), &two_of_three),
        1
    );
}

#[test]
fn temporal_ordered_needs_the_rules_in_order() {
    let in_order = [
        (0, recon_event("whoami", "bob")),
        (60, recon_event("ipconfig", "bob")),
        (120, recon_event("net user", "bob")),
    ];
    assert_eq!(recon_count("temporal_ordered", &in_order), 1);
    let reversed = [
        (0, recon_event("net user", "bob")),
        (60, recon_event("ipconfig", "bob")),
        (120, recon_event("whoami", "bob")),
    ];
    assert_eq!(recon_count("temporal_ordered", &reversed), 0);
    let too_slow = [
        (0, recon_event("whoami", "bob")),
        (60, recon_event("ipconfig", "bob")),
        (301, recon_event("net user", "bob")),
    ];
    assert_eq!(recon_count("temporal_ordered", &too_slow), 0);
}

const WEBSITE_ACCESS: &str = "title: Website access
id: website-access
name: website_access
logsource: {}
detection:
    selection:
        EventType: 'web'
    condition: selection
";

fn web(source: &str, user: &str, field: &str, bytes: i64) -> Value {
    json!({"EventType": "web", "SourceIP": source, "User": user, field: bytes})
}

#[test]
fn value_sum_adds_a_numeric_field() {
    // The specification's example, verbatim apart from the id.
    let correlation = "title: Possible Exfiltration to Website
id: exfiltration
correlation:
    type: value_sum
    rules:
        - website_access
    group-by:
        - SourceIP
        - User
    timespan: 1h
    condition:
        field: bytes_sent
        gt: 1000000
";
    let mut engine = engine(&[WEBSITE_ACCESS, correlation]);
    let big = [
        (0, web("10.0.0.5", "bob", "bytes_sent", 600_000)),
        (60, web("10.0.0.5", "bob", "bytes_sent", 600_000)),
    ];
    let alerts = run(&mut engine, &big);
    let fired = correlations(&alerts);
    assert_eq!(fired.len(), 1, "{alerts:#?}");
    assert_eq!(
        fired[0]
            .details
            .get("aggregated_value")
            .and_then(Value::as_f64),
        Some(1_200_000.0)
    );
    let mut engine = self::engine(&[WEBSITE_ACCESS, correlation]);
    let small = [
        (0, web("10.0.0.5", "bob", "bytes_sent", 400_000)),
        (60, web("10.0.0.5", "bob", "bytes_sent", 600_000)),
    ];
    assert_eq!(
        correlation_count(&mut engine, &small, "exfiltration"),
        0,
        "exactly 1000000 is not greater"
    );
    let mut engine = self::engine(&[WEBSITE_ACCESS, correlation]);
    let two_users = [
        (0, web("10.0.0.5", "bob", "bytes_sent", 600_000)),
        (60, web("10.0.0.5", "eve", "bytes_sent", 600_000)),
    ];
    assert_eq!(
        correlation_count(&mut engine, &two_users, "exfiltration"),
        0
    );
}

#[test]
fn value_avg_averages_a_numeric_field() {
    let correlation = "title: Suspicious average network traffic
id: average-traffic
correlation:
    type: value_avg
    rules: 
        - website_access
    group-by:
        - SourceIP
        - User
    timespan: 24h
    condition:
        field: BytesOut
        gt: 500
";
    let mut engine = engine(&[WEBSITE_ACCESS, correlation]);
    let high = [
        (0, web("10.0.0.5", "bob", "BytesOut", 400)),
        (60, web("10.0.0.5", "bob", "BytesOut", 700)),
    ];
    let alerts = run(&mut engine, &high);
    let fired = correlations(&alerts);
    assert_eq!(fired.len(), 1, "{alerts:#?}");
    assert_eq!(
        fired[0]
            .details
            .get("aggregated_value")
            .and_then(Value::as_f64),
        Some(550.0)
    );
    let mut engine = self::engine(&[WEBSITE_ACCESS, correlation]);
    let low = [
        (0, web("10.0.0.5", "bob", "BytesOut", 600)),
        (60, web("10.0.0.5", "bob", "BytesOut", 300)),
    ];
    assert_eq!(
        correlation_count(&mut engine, &low, "average-traffic"),
        1,
        "the first event alone averages 600"
    );
    let mut engine = self::engine(&[WEBSITE_ACCESS, correlation]);
    let low = [
        (0, web("10.0.0.5", "bob", "BytesOut", 400)),
        (60, web("10.0.0.5", "bob", "BytesOut", 500)),
    ];
    assert_eq!(correlation_count(&mut engine, &low, "average-traffic"), 0);
}

/// The specification's value_percentile example, verbatim apart from the id.
const RARE_PROCESS: &str =
    "title: A computer spawned a processes name in the last 24h than 1% of all the processes.
id: rare-process
correlation:
    type: value_percentile
    rules: 
        - process_creation
    group-by:
        - ComputerName
    timespan: 24h
    condition:
        field: image
        lte: 1
";

const PROCESS_CREATION: &str = "title: Process creation
id: process-creation
name: process_creation
logsource: {}
detection:
    selection:
        EventID: 1
    condition: selection
";

#[test]
fn value_percentile_spec_example_loads() {
    let (engine, report) = load_with(SigmaOptions::default(), &[PROCESS_CREATION, RARE_PROCESS]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(engine.correlation_count(), 1);
}

#[test]
#[ignore = "rsigma 0.23 gap: value_percentile aggregates a NUMERIC field (the value at a percentile rank, median by default); the spec's example asks for a process name seen in at most 1% of a computer's processes, which a text field like `image` can never satisfy there"]
fn value_percentile_flags_a_rare_value() {
    let mut engine = engine(&[PROCESS_CREATION, RARE_PROCESS]);
    let mut events: Vec<(i64, Value)> = (0..199)
        .map(|i| {
            (
                i,
                json!({"EventID": 1, "ComputerName": "pc1", "image": r"C:\Windows\explorer.exe"}),
            )
        })
        .collect();
    events.push((
        300,
        json!({"EventID": 1, "ComputerName": "pc1", "image": r"C:\Users\Public\rare.exe"}),
    ));
    assert!(correlation_count(&mut engine, &events, "rare-process") >= 1);
}

/// The specification's complete example ("Failed Logins Followed by Successful Login"),
/// verbatim apart from the threshold in the comment below.
const SPEC_FAILED_THEN_SUCCESS: &str = "title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
description: Detects multiple failed logins by a single user followed by a successful login of that user
references:
    - https://reference.com
author: Florian Roth (Nextron Systems)
date: 2023-06-16
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
description: Detects multiple failed logins within a certain amount of time
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
description: Detects a successful login
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
";

fn security(event_id: u32, user: &str) -> Value {
    json!({"EventID": event_id, "Channel": "Security", "Computer": "dc1.corp.local", "User": user})
}

const FAILED_THEN_SUCCESS_ID: &str = "b180ead8-d58f-40b2-ae54-c8940995b9b6";

#[test]
fn spec_example_failed_logins_followed_by_success_chains_correlations() {
    let mut engine = engine(&[SPEC_FAILED_THEN_SUCCESS]);
    assert_eq!(engine.correlation_count(), 2);
    let mut events: Vec<(i64, Value)> = (0..10).map(|i| (i * 10, security(4625, "bob"))).collect();
    events.push((200, security(4624, "bob")));
    let alerts = run(&mut engine, &events);
    let chained: Vec<&Alert> = alerts
        .iter()
        .filter(|alert| alert.rule_id == FAILED_THEN_SUCCESS_ID)
        .collect();
    assert_eq!(chained.len(), 1, "{:#?}", rule_ids(&alerts));
    assert_eq!(chained[0].kind, AlertKind::Correlation);
    assert_eq!(
        chained[0].details.get("group"),
        Some(&json!({"User": "bob"}))
    );
    assert!(alerts
        .iter()
        .any(|alert| alert.rule_id == "a8418a5a-5fc4-46b5-b23b-6c73beb19d41"));

    // Nine failures are not "multiple" here.
    let mut engine = self::engine(&[SPEC_FAILED_THEN_SUCCESS]);
    let mut nine: Vec<(i64, Value)> = (0..9).map(|i| (i * 10, security(4625, "bob"))).collect();
    nine.push((200, security(4624, "bob")));
    assert_eq!(
        correlation_count(&mut engine, &nine, FAILED_THEN_SUCCESS_ID),
        0
    );
    // Success first, then the failures: wrong order.
    let mut engine = self::engine(&[SPEC_FAILED_THEN_SUCCESS]);
    let mut reversed = vec![(0, security(4624, "bob"))];
    reversed.extend((1..11).map(|i| (i * 10, security(4625, "bob"))));
    assert_eq!(
        correlation_count(&mut engine, &reversed, FAILED_THEN_SUCCESS_ID),
        0
    );
    // Another user's success does not complete bob's sequence.
    let mut engine = self::engine(&[SPEC_FAILED_THEN_SUCCESS]);
    let mut other_user: Vec<(i64, Value)> =
        (0..10).map(|i| (i * 10, security(4625, "bob"))).collect();
    other_user.push((200, security(4624, "alice")));
    assert_eq!(
        correlation_count(&mut engine, &other_user, FAILED_THEN_SUCCESS_ID),
        0
    );
}

fn generate_documents(generate: Option<bool>) -> String {
    let generate = generate
        .map(|flag| format!("generate: {flag}\n"))
        .unwrap_or_default();
    format!(
        "{FAILED_LOGIN}---\ntitle: Two failures\nid: two-failures\ncorrelation:\n    type: event_count\n    rules: [5638f7c0-ac70-491d-8465-2a65075e0d86]\n    group-by: [ComputerName]\n    timespan: 1h\n    condition:\n        gte: 2\n{generate}"
    )
}

#[test]
fn referenced_rules_do_not_alert_on_their_own_by_default() {
    // Spec: `generate` "defines if the rules referred from the correlation rule should be
    // converted as stand-alone rules or if only the correlation query should be generated
    // (default)".
    for documents in [generate_documents(None), generate_documents(Some(false))] {
        let mut engine = engine(&[&documents]);
        let alerts = run(
            &mut engine,
            &[
                (0, failed_login("dc1", "a", "w")),
                (1, failed_login("dc1", "a", "w")),
            ],
        );
        assert_eq!(rule_ids(&alerts), ["two-failures"], "{documents}");
    }
}

#[test]
fn generate_true_keeps_the_referenced_rules_alerting() {
    let mut engine = engine(&[&generate_documents(Some(true))]);
    let alerts = run(
        &mut engine,
        &[
            (0, failed_login("dc1", "a", "w")),
            (1, failed_login("dc1", "a", "w")),
        ],
    );
    let mut ids = rule_ids(&alerts);
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "5638f7c0-ac70-491d-8465-2a65075e0d86",
            "5638f7c0-ac70-491d-8465-2a65075e0d86",
            "two-failures"
        ]
    );
}

/// The specification's field name aliases example (the two rules get titles, ids and a
/// logsource, which the excerpt leaves out; the correlation gets a title and id).
const ALIASES: &str = "title: Internal error
id: internal-error
name: internal_error
logsource: {}
detection:
    selection:
        http.response.status_code: 500
    condition: selection
---
title: New network connection
id: new-network-connection
name: new_network_connection
logsource: {}
detection:
    selection:
        event.category: network
        event.type: connection
        event.outcome: success
    condition: selection
---
title: Error then connection
id: error-then-connection
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
        - remote_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
";

fn http_error(client: &str, server: &str) -> Value {
    json!({"http": {"response": {"status_code": 500}}, "source": {"ip": client}, "destination": {"ip": server}})
}

fn connection(from: &str, to: &str) -> Value {
    json!({"event": {"category": "network", "type": "connection", "outcome": "success"}, "source": {"ip": from}, "destination": {"ip": to}})
}

fn alias_cases() -> Vec<(Vec<(i64, Value)>, usize)> {
    vec![
        // The web server 10.0.0.5 answered 203.0.113.9 with a 500, then connected to it.
        (
            vec![
                (0, http_error("203.0.113.9", "10.0.0.5")),
                (5, connection("10.0.0.5", "203.0.113.9")),
            ],
            1,
        ),
        // The connection goes the other way: the aliases do not line up.
        (
            vec![
                (0, http_error("203.0.113.9", "10.0.0.5")),
                (5, connection("203.0.113.9", "10.0.0.5")),
            ],
            0,
        ),
        // Another remote.
        (
            vec![
                (0, http_error("203.0.113.9", "10.0.0.5")),
                (5, connection("10.0.0.5", "198.51.100.1")),
            ],
            0,
        ),
        // Outside the 10 seconds.
        (
            vec![
                (0, http_error("203.0.113.9", "10.0.0.5")),
                (11, connection("10.0.0.5", "203.0.113.9")),
            ],
            0,
        ),
    ]
}

#[test]
#[ignore = "rsigma 0.23 gap: the spec's aliases example is a temporal correlation without condition, which rsigma fires on the first event (see temporal_needs_every_rule_in_any_order_within_the_timespan)"]
fn spec_example_aliases() {
    for (index, (events, expected)) in alias_cases().into_iter().enumerate() {
        let mut engine = engine(&[ALIASES]);
        assert_eq!(
            correlation_count(&mut engine, &events, "error-then-connection"),
            expected,
            "case {index}"
        );
    }
}

#[test]
fn aliases_group_different_fields_of_different_rules() {
    // The spec's example with an explicit condition (both rules), which rsigma needs.
    let documents = ALIASES.replace(
        "    timespan: 10s\n",
        "    timespan: 10s\n    condition:\n        gte: 2\n",
    );
    for (index, (events, expected)) in alias_cases().into_iter().enumerate() {
        let mut engine = engine(&[&documents]);
        let alerts = run(&mut engine, &events);
        let fired = correlations(&alerts);
        assert_eq!(
            fired.len(),
            expected,
            "case {index}: {:#?}",
            rule_ids(&alerts)
        );
        if let Some(alert) = fired.first() {
            assert_eq!(
                alert.details.get("group"),
                Some(&json!({"internal_ip": "10.0.0.5", "remote_ip": "203.0.113.9"}))
            );
        }
    }
}

#[test]
fn correlations_reference_rules_by_id_or_by_name() {
    for reference in ["5638f7c0-ac70-491d-8465-2a65075e0d86", "failed_login"] {
        let correlation = format!("title: Ref\nid: ref\ncorrelation:\n    type: event_count\n    rules: [{reference}]\n    group-by: [ComputerName]\n    timespan: 1h\n    condition:\n        gte: 2\n");
        let mut engine = engine(&[FAILED_LOGIN, &correlation]);
        assert_eq!(
            correlation_count(
                &mut engine,
                &[
                    (0, failed_login("dc1", "a", "w")),
                    (1, failed_login("dc1", "a", "w"))
                ],
                "ref"
            ),
            1,
            "{reference}"
        );
    }
}

#[test]
fn a_rule_without_id_is_referenced_by_name() {
    let base = "title: Failed login without id\nname: failed_login_no_id\nlogsource: {}\ndetection:\n    selection:\n        EventID: 4625\n    condition: selection\n";
    let correlation = "title: Ref\nid: ref\ncorrelation:\n    type: event_count\n    rules: [failed_login_no_id]\n    group-by: [ComputerName]\n    timespan: 1h\n    condition:\n        gte: 2\n";
    let mut engine = engine(&[base, correlation]);
    assert_eq!(
        correlation_count(
            &mut engine,
            &[
                (0, failed_login("dc1", "a", "w")),
                (1, failed_login("dc1", "a", "w"))
            ],
            "ref"
        ),
        1
    );
}

#[test]
fn correlation_alerts_name_the_group_entities() {
    // group-by on ECS names: the alert's entities are the group's, not the last sender's.
    let base = "title: Denied\nid: denied\nlogsource: {}\ndetection:\n    selection:\n        event.outcome: failure\n    condition: selection\n";
    let correlation = "title: Denied many\nid: denied-many\ncorrelation:\n    type: event_count\n    rules: [denied]\n    group-by: [source.ip, user.name]\n    timespan: 5m\n    condition:\n        gte: 2\n";
    let mut engine = engine(&[base, correlation]);
    let denied = json!({"event": {"outcome": "failure"}, "source": {"ip": "203.0.113.7"}, "user": {"name": "bob"}, "host": {"name": "web1"}});
    let alerts = run(&mut engine, &[(0, denied.clone()), (30, denied)]);
    let fired = correlations(&alerts);
    assert_eq!(fired.len(), 1, "{alerts:#?}");
    assert_eq!(fired[0].entities.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(fired[0].entities.user.as_deref(), Some("bob"));
    assert_eq!(
        fired[0]
            .details
            .get("timespan_secs")
            .and_then(Value::as_u64),
        Some(300)
    );
}

// =============================================================================================
// Filters

const RAR_RULE: &str = "title: Data Compressed - rar.exe
id: 6f3e2987-db24-4c78-a860-b4f4095a7095
name: data_compressed_rar
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\rar.exe'
    condition: selection
";

/// The same detection under another id: filters aimed at RAR_RULE must leave it alone.
const RAR_RULE_COPY: &str = "title: Data Compressed - rar.exe (copy)
id: 11111111-2222-3333-4444-555555555555
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\rar.exe'
    condition: selection
";

fn rar_by(user: &str) -> Event {
    let mut document = sysmon_process(r"C:\Program Files\WinRAR\rar.exe", "rar a x.rar secret");
    document["User"] = json!(user);
    event(&document)
}

/// The specification's filter example with `condition: not selection`, the form pySigma and
/// rsigma read as an exclusion (the filter's condition is ANDed to the rule's).
const FILTER_ADMINS: &str = "title: Filter Administrator account
description: The valid administrator account start with adm_
logsource:
    category: process_creation
    product: windows
filter:
    rules:
        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe
        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host
    selection:
        User|startswith: 'adm_'
    condition: not selection
";

#[test]
fn a_filter_excludes_matches_of_the_rules_it_names() {
    let (mut engine, report) = load_with(
        SigmaOptions::default(),
        &[RAR_RULE, RAR_RULE_COPY, FILTER_ADMINS],
    );
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.filters, 1);
    let mut admin = rule_ids(&engine.process(&rar_by("adm_alice")))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    admin.sort();
    assert_eq!(
        admin,
        ["11111111-2222-3333-4444-555555555555"],
        "only the rule the filter does not name"
    );
    let mut user = rule_ids(&engine.process(&rar_by("CORP\\bob")))
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    user.sort();
    assert_eq!(
        user,
        [
            "11111111-2222-3333-4444-555555555555",
            "6f3e2987-db24-4c78-a860-b4f4095a7095"
        ]
    );
}

#[test]
fn a_filter_only_applies_to_rules_of_its_logsource() {
    let linux_rule = "title: Linux rar\nid: 6f3e2987-db24-4c78-a860-b4f4095a7095\nlogsource: {product: linux}\ndetection:\n    keywords:\n        - 'rar a'\n    condition: keywords\n";
    let (mut engine, _) = load_with(SigmaOptions::default(), &[linux_rule, FILTER_ADMINS]);
    let mut context = context();
    context.timezone = chrono_tz::UTC;
    let line = parse_record(
        b"<38>May  1 00:00:00 host sshd[1]: adm_alice ran rar a x.rar",
        InputFormat::Auto,
        &context,
        7,
    );
    assert_eq!(line.logsource.product.as_deref(), Some("linux"));
    assert_eq!(
        rule_ids(&engine.process(&line)),
        ["6f3e2987-db24-4c78-a860-b4f4095a7095"]
    );
}

#[test]
#[ignore = "rsigma 0.23 gap: filter `rules` entries are compared with the rule's id and title, not its `name` (the spec says a filter refers to Sigma rules; correlations accept id or name)"]
fn a_filter_names_a_rule_by_its_name() {
    let by_name = FILTER_ADMINS.replace(
        "6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe",
        "data_compressed_rar",
    );
    let mut engine = engine(&[RAR_RULE, &by_name]);
    assert!(engine.process(&rar_by("adm_alice")).is_empty());
    assert_eq!(engine.process(&rar_by("bob")).len(), 1);
}

#[test]
#[ignore = "rsigma 0.23 gap (pySigma does the same): the filter's condition is ANDed to the rule's, so the spec's own example (`condition: selection`, 'the valid administrator account start with adm_') keeps ONLY the adm_ matches instead of suppressing them"]
fn spec_example_filter_suppresses_the_administrators() {
    let spec_filter = FILTER_ADMINS.replace("condition: not selection", "condition: selection");
    let mut engine = engine(&[RAR_RULE, &spec_filter]);
    assert!(
        engine.process(&rar_by("adm_alice")).is_empty(),
        "the filter names valid administrator activity"
    );
    assert_eq!(engine.process(&rar_by("bob")).len(), 1);
}

#[test]
#[ignore = "SigmaEngine gap: Engine::apply_filter returns Ok when the filter names no loaded rule, so the `filter applies to no loaded rule` problem is never reported and LoadReport.filters counts it"]
fn a_filter_naming_no_loaded_rule_is_reported() {
    let (_, report) = load_with(
        SigmaOptions::default(),
        &[
            RAR_RULE,
            &FILTER_ADMINS.replace(
                "6f3e2987-db24-4c78-a860-b4f4095a7095",
                "99999999-0000-0000-0000-000000000000",
            ),
        ],
    );
    assert_eq!(report.filters, 0, "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
}
