//! Golden tests for the access log parser over real samples: CrowdSec hub parser tests (nginx,
//! apache2, and their "malformed" request-line variants) and logstash-patterns-core's
//! `HTTPD_COMBINEDLOG` specs.

mod kv_access_support;

use citysoc_collector::{Event, Format, InputFormat};
use kv_access_support::{assertions, core, last_field, log_lines, parse, read, Tally, CROWDSEC};

/// Our field for a CrowdSec key (nginx and apache parsers name them differently), or why the
/// key is not compared.
fn our_field(key: &str) -> Result<&'static str, &'static str> {
    Ok(match key {
        "remote_addr" | "clientip" => "clientip",
        "ident" => "ident",
        "remote_user" | "auth" => "auth",
        "time_local" | "timestamp" => "timestamp",
        "verb" => "verb",
        "request" => "request",
        "rawrequest" => "rawrequest",
        "http_version" | "httpversion" => "httpversion",
        "status" | "response" => "response",
        "body_bytes_sent" | "bytes" => "bytes",
        "http_referer" | "referrer" => "referrer",
        "http_user_agent" => "agent",
        "target_fqdn" => "vhost",
        "port" => "vhost_port",
        "message" | "program" => return Err("CrowdSec's raw message and program label"),
        // Keys of the error-log lines in the same files (not access logs, not ours to parse).
        _ => return Err("error-log fields"),
    })
}

/// `error_lines`: lines of the file that are error-log lines, which this parser does not take.
fn run(
    folder: &str,
    log: &str,
    parser: &str,
    format: InputFormat,
    error_lines: &[usize],
) -> (Tally, Vec<Event>) {
    let lines = log_lines(&format!("{CROWDSEC}/{folder}/{log}"));
    let events: Vec<Event> = lines
        .iter()
        .enumerate()
        .map(|(index, line)| parse(line, format, index as u64 + 1))
        .collect();
    let mut tally = Tally::default();
    for assertion in assertions(
        &format!("{CROWDSEC}/{folder}/parser.assert"),
        "s01-parse",
        parser,
    ) {
        let event = &events[assertion.line];
        if error_lines.contains(&assertion.line) {
            tally.skipped += 1;
            tally
                .skip_reasons
                .insert("error-log line, not an access log");
            continue;
        }
        if assertion.kind != "Parsed" {
            tally.skipped += 1;
            tally.skip_reasons.insert("CrowdSec meta");
            continue;
        }
        let name = match our_field(&assertion.key) {
            Ok(name) => name,
            Err(reason) => {
                tally.skipped += 1;
                tally.skip_reasons.insert(reason);
                continue;
            }
        };
        // CrowdSec's nginx parser puts a request line that is not `METHOD target HTTP/x` into
        // `request`; we keep such lines apart in `rawrequest` (as its apache parser does).
        let name = if name == "request" && !event.fields.contains_key("request") {
            "rawrequest"
        } else {
            name
        };
        let what = format!("{folder}[{}] {}", assertion.line, assertion.key);
        tally.check(&what, last_field(event, name), &assertion.value);
    }
    println!(
        "{folder} access golden ({format:?}): {} assertions match, {} skipped, {} mismatches",
        tally.matched,
        tally.skipped,
        tally.mismatches.len()
    );
    for reason in &tally.skip_reasons {
        println!("  skipped: {reason}");
    }
    for mismatch in &tally.mismatches {
        println!("  {mismatch}");
    }
    (tally, events)
}

fn access_events(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|event| event.format == Format::AccessLog)
        .count()
}

#[test]
fn nginx_access_logs() {
    for format in [InputFormat::Auto, InputFormat::Access] {
        let (tally, events) = run(
            "nginx_http-logs",
            "nginx_http-logs.log",
            "crowdsecurity/nginx-logs",
            format,
            &[8],
        );
        assert!(tally.mismatches.is_empty());
        assert_eq!((tally.matched, tally.skipped), (83, 102));
        // The last line is an nginx error log line.
        assert_eq!(access_events(&events), 8);
        assert_eq!(events[8].format, Format::Unknown);
        let event = &events[2];
        assert_eq!(event.timestamp.to_rfc3339(), "2020-06-08T08:04:43+00:00");
        assert_eq!(core(event, "source.ip").as_deref(), Some("192.168.1.1"));
        assert_eq!(core(event, "http.request.method").as_deref(), Some("GET"));
        assert_eq!(
            core(event, "url.original").as_deref(),
            Some("/solr/admin/info/system?wt=json")
        );
        assert_eq!(
            core(event, "http.response.status_code").as_deref(),
            Some("500")
        );
        assert_eq!(
            last_field(event, "cs-uri-stem").as_deref(),
            Some("/solr/admin/info/system")
        );
        assert_eq!(
            last_field(event, "cs-uri-query").as_deref(),
            Some("wt=json")
        );
        assert_eq!(event.logsource.category.as_deref(), Some("webserver"));
        assert_eq!(core(&events[6], "user.name").as_deref(), Some("user123"));
    }
}

#[test]
fn nginx_malformed_requests() {
    for format in [InputFormat::Auto, InputFormat::Access] {
        let (tally, events) = run(
            "nginx-http-malformed",
            "nginx_http-logs.log",
            "crowdsecurity/nginx-logs",
            format,
            &[],
        );
        assert!(tally.mismatches.is_empty());
        assert_eq!((tally.matched, tally.skipped), (96, 120));
        assert_eq!(access_events(&events), 12);
        assert!(events
            .iter()
            .all(|event| event.core.http_request_method.is_none()));
        assert_eq!(
            last_field(&events[4], "rawrequest").as_deref(),
            Some("HELP")
        );
        // 29/Jul/2023:10:26:06 -0700
        assert_eq!(
            events[0].timestamp.to_rfc3339(),
            "2023-07-29T17:26:06+00:00"
        );
    }
}

#[test]
fn apache_access_logs() {
    for format in [InputFormat::Auto, InputFormat::Access] {
        let (tally, events) = run(
            "apache2-logs",
            "apache2-logs.log",
            "crowdsecurity/apache2-logs",
            format,
            &[7, 8],
        );
        assert!(tally.mismatches.is_empty());
        assert_eq!((tally.matched, tally.skipped), (78, 107));
        // The last two lines are apache error log lines.
        assert_eq!(access_events(&events), 7);
        // A common-log line (no referrer or agent).
        assert_eq!(core(&events[5], "user_agent.original"), None);
        assert_eq!(
            last_field(&events[6], "cs-host").as_deref(),
            Some("website.com:443")
        );
    }
}

#[test]
fn apache_malformed_requests() {
    for format in [InputFormat::Auto, InputFormat::Access] {
        let (tally, events) = run(
            "apache2-malformed",
            "apache2-logs.log",
            "crowdsecurity/apache2-logs",
            format,
            &[],
        );
        assert!(tally.mismatches.is_empty());
        assert_eq!((tally.matched, tally.skipped), (99, 110));
        assert_eq!(access_events(&events), 11);
    }
}

/// `HTTPD_COMBINEDLOG` rows of logstash-patterns-core-spec-cases.jsonl, with expectations
/// transcribed from each row's `expected_rspec` (legacy names, ECS names for the core fields);
/// the test checks every expected value occurs in that text. Legacy grok keeps the quotes of
/// `referrer`/`agent` (`'"http://…"'`); we store them without, so those are compared unquoted.
const HTTPD_CASES: &[(usize, &[(&str, &str)])] = &[
    (60, &[
        ("clientip", "83.149.9.216"),
        ("verb", "GET"),
        ("request", "/presentations/logstash-monitorama-2013/images/kibana-search.png"),
        ("httpversion", "1.1"),
        ("response", "200"),
        ("bytes", "203023"),
        ("referrer", "http://semicomplete.com/presentations/logstash-monitorama-2013/"),
        ("agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"),
        ("auth", "-"),
        ("ident", "-"),
        ("source.ip", "83.149.9.216"),
        ("http.request.method", "GET"),
        ("url.original", "/presentations/logstash-monitorama-2013/images/kibana-search.png"),
        ("http.response.status_code", "200"),
        ("user_agent.original", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"),
    ]),
    (61, &[("auth", "username@example.com"), ("user.name", "username@example.com")]),
    (62, &[
        ("verb", "OPTIONS"),
        ("request", "/remote.php/"),
        ("httpversion", "1.1"),
        ("bytes", "7908"),
        ("url.original", "/remote.php/"),
        ("user_agent.original", "monitoring-client (v2.2)"),
    ]),
];

#[test]
fn logstash_httpd_combined() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/syslog-firewall-web-logstash-patterns-core/logstash-patterns-core-spec-cases.jsonl"
    );
    let rows: Vec<serde_json::Value> = read(path)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}")))
        .collect();
    let mut tally = Tally::default();
    for (row, expectations) in HTTPD_CASES {
        assert_eq!(rows[*row]["pattern"], "HTTPD_COMBINEDLOG");
        let input = rows[*row]["input"].as_str().unwrap_or_default();
        let rspec = rows[*row]["expected_rspec"].as_str().unwrap_or_default();
        for format in [InputFormat::Auto, InputFormat::Access] {
            let event = parse(input, format, *row as u64);
            assert_eq!(event.format, Format::AccessLog, "{input}");
            for (name, expected) in *expectations {
                assert!(
                    rspec.contains(expected),
                    "row {row}: {expected} is not in the spec"
                );
                let ours = if name.contains('.') {
                    core(&event, name)
                } else {
                    last_field(&event, name)
                };
                tally.check(&format!("row {row} {name}"), ours, expected);
            }
        }
        // Row 62's status is `-`: grok captures no `response`, we keep `-` in fields and no
        // status code in the core (documented difference).
        if *row == 62 {
            let event = parse(input, InputFormat::Auto, 62);
            assert_eq!(event.core.http_response_status_code, None);
            assert_eq!(last_field(&event, "response").as_deref(), Some("-"));
        }
    }
    println!(
        "logstash httpd golden: {} match, {} mismatches",
        tally.matched,
        tally.mismatches.len()
    );
    for mismatch in &tally.mismatches {
        println!("  {mismatch}");
    }
    assert!(tally.mismatches.is_empty());
    assert_eq!(tally.matched, 46);
}

#[test]
fn error_logs_are_not_access_logs() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/syslog-firewall-web-logstash-patterns-core/logstash-patterns-core-spec-cases.jsonl"
    );
    for line in read(path).lines() {
        let row: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}"));
        let input = row["input"].as_str().unwrap_or_default();
        let is_access = row["pattern"] == "HTTPD_COMBINEDLOG";
        assert_eq!(
            citysoc_collector::format::access_log::looks_like(input),
            is_access,
            "{input}"
        );
    }
}
