//! `collector.toml` checking: every problem listed at once, with the key it is about; the
//! packaged sample is valid; the hash is the file's SHA-256.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use citysoc_collector::config::{config_hash, CheckOptions, SourceKind, WhenFullPolicy};
use citysoc_collector::{CollectorConfig, CollectorError};

fn problems(text: &str) -> Vec<String> {
    match CollectorConfig::from_toml(text, "collector.toml", &CheckOptions::default()) {
        Ok(_) => panic!("expected problems"),
        Err(CollectorError::Config { problems, .. }) => {
            problems.iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn assert_listed(problems: &[String], path: &str, fragment: &str) {
    assert!(
        problems
            .iter()
            .any(|problem| problem.starts_with(path) && problem.contains(fragment)),
        "no problem at `{path}` mentioning `{fragment}` in:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_problem_is_listed_at_once_with_its_key() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let text = format!(
        r#"
name = "misplaced"

[collector]
agency = "ubnd-quan-1"
timezone = "Asia/Saigon City"
colector_id = "typo"

[[source]]
name = "fw"
type = "udp"
listen = "0.0.0.0:5514"
framing = "newline"
format = "syslog"
max_frame = true

[[source]]
name = "fw"
type = "tcp"
listen = "127.0.0.1:{busy_port}"
lisen = "typo"

[[source]]
name = "secure"
type = "tls"
listen = "127.0.0.1:0"
tls_cert = "/nonexistent/collector.pem"
tls_key = "/nonexistent/collector.key"
timezone = "Mars/Olympus"

[[source]]
type = "ftp"

[[source]]
name = "tail"
type = "file"
path = "relative/auth.log"
max_requests = 4

[[source]]
name = "agents"
type = "http"
listen = "127.0.0.1:0"
max_requests = 0
body_timeout_ms = 10
max_connections = 0
head_timeout_ms = 0

[buffer]
when_full = "drop_newest"
sync_interval_ms = 3600000

[server]
url = "http://soc.example:8080"
key_file = "/nonexistent/collector.key"
"#
    );
    let problems = problems(&text);
    assert_listed(
        &problems,
        "name",
        "did you mean to write it under [collector]",
    );
    assert_listed(&problems, "collector.timezone", "Asia/Saigon City");
    assert_listed(&problems, "collector.colector_id", "unknown key");
    assert_listed(&problems, "source \"fw\".framing", "does not apply to udp");
    assert_listed(&problems, "source \"fw\".format", "unknown format `syslog`");
    assert_listed(&problems, "source \"fw\".max_frame", "invalid type");
    assert_listed(&problems, "source \"fw\".lisen", "unknown key `lisen`");
    assert_listed(&problems, "source \"fw\".name", "same name");
    assert_listed(
        &problems,
        "source \"fw\".listen",
        "cannot listen on 127.0.0.1",
    );
    assert_listed(
        &problems,
        "source \"secure\".tls_cert",
        "/nonexistent/collector.pem",
    );
    assert_listed(&problems, "source \"secure\".timezone", "Mars/Olympus");
    assert_listed(&problems, "source[3].name", "missing");
    assert_listed(&problems, "source[3].type", "unknown source type `ftp`");
    assert_listed(&problems, "source \"tail\".path", "relative");
    assert_listed(
        &problems,
        "source \"tail\".max_requests",
        "does not apply to file",
    );
    assert_listed(
        &problems,
        "source \"agents\".max_requests",
        "must be 1 to 256",
    );
    assert_listed(
        &problems,
        "source \"agents\".body_timeout_ms",
        "at least 100",
    );
    assert_listed(&problems, "source \"agents\".max_connections", "at least 1");
    assert_listed(
        &problems,
        "source \"agents\".head_timeout_ms",
        "at least 100",
    );
    assert_listed(&problems, "buffer.when_full", "drop_newest");
    assert_listed(&problems, "buffer.sync_interval_ms", "power cut");
    assert_listed(&problems, "server.url", "plain HTTP");
    assert_listed(&problems, "server.key_file", "enroll first");
    assert_eq!(problems.len(), 23, "{}", problems.join("\n"));

    // The error's message lists them all, one per line.
    let message = CollectorConfig::from_toml(&text, "collector.toml", &CheckOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("collector.toml: 23 problems"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 24);
    drop(busy);
}

#[test]
fn syntax_errors_and_missing_sections_are_explained() {
    let syntax = problems("[collector\nname = 1");
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].contains("not valid TOML"), "{syntax:?}");
    let empty = problems("");
    assert_listed(&empty, "source", "no [[source]]");
    assert_listed(&empty, "nowhere to send events", "");
    let single = problems("[source]\nname = \"x\"\n[archive]\npath = \"/tmp/x.ndjson\"");
    assert_listed(&single, "source", "[[source]] tables");
}

#[test]
fn the_packaged_sample_is_valid_and_says_what_it_does() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/collector.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let offline = CheckOptions {
        check_ports: false,
        check_files: false,
    };
    let config = CollectorConfig::load(&path, &offline).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.config_hash, config_hash(text.as_bytes()));
    let kinds: Vec<&str> = config
        .sources
        .iter()
        .map(|source| source.kind.type_name())
        .collect();
    assert_eq!(kinds, ["udp", "tcp", "http"]);
    assert!(
        matches!(&config.sources[0].kind, SourceKind::Udp(udp) if udp.receive_buffer == Some(8 << 20))
    );
    assert_eq!(config.buffer.max_bytes, 10 << 30);
    assert_eq!(config.buffer.when_full, WhenFullPolicy::Block);
    // Lossless on power cuts unless the admin chooses otherwise.
    assert_eq!(config.buffer.sync_interval, None);
    assert_eq!(
        config.server.as_ref().unwrap().url,
        "https://soc.hcm.example:8443"
    );
    assert_eq!(config.collector.timezone, chrono_tz::Asia::Ho_Chi_Minh);
    // Every commented-out example is valid too once uncommented.
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if looks_like_toml(rest) => rest.to_owned(),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config = CollectorConfig::from_toml(&uncommented, "uncommented sample", &offline)
        .unwrap_or_else(|error| panic!("{error}"));
    let kinds: Vec<&str> = config
        .sources
        .iter()
        .map(|source| source.kind.type_name())
        .collect();
    assert_eq!(kinds, ["udp", "tcp", "tls", "http", "file"]);
    assert!(config.archive.is_some());
    assert_eq!(
        config.buffer.sync_interval,
        Some(std::time::Duration::from_millis(1000))
    );
    assert_eq!(config.collector.queue_max_bytes, 8 << 20);
}

#[test]
fn the_memory_queue_is_bounded_and_its_bound_checked() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!(
        "[[source]]\nname = \"udp\"\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n[[source]]\nname = \"agents\"\ntype = \"http\"\nlisten = \"127.0.0.1:0\"\n[archive]\npath = \"{}\"\n",
        dir.path().join("a.ndjson").display()
    );
    let config = CollectorConfig::from_toml(&source, "default", &CheckOptions::default()).unwrap();
    assert_eq!(
        config.collector.queue_max_bytes,
        citysoc_collector::pipeline::CHANNEL_BYTES
    );
    for (size, expected) in [("\"256 KiB\"", 256 << 10), ("\"64 MiB\"", 64 << 20)] {
        let text = format!("[collector]\nqueue_max_bytes = {size}\n{source}");
        let config = CollectorConfig::from_toml(&text, "set", &CheckOptions::default()).unwrap();
        assert_eq!(config.collector.queue_max_bytes, expected);
    }
    for size in ["\"64 KiB\"", "\"2 GiB\""] {
        let text = format!("[collector]\nqueue_max_bytes = {size}\n{source}");
        assert_listed(&problems(&text), "collector.queue_max_bytes", "between");
    }
}

/// A commented line that is a TOML key or table of the sample (not prose).
fn looks_like_toml(line: &str) -> bool {
    let line = line.trim_start_matches("# ");
    line.starts_with('[')
        || line.split_once(" = ").is_some_and(|(key, _)| {
            !key.contains(' ') && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
}

#[test]
fn defaults_fill_what_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[source]]\nname = \"udp\"\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n[[source]]\nname = \"agents\"\ntype = \"http\"\nlisten = \"127.0.0.1:0\"\n[archive]\npath = \"{}\"\n",
        dir.path().join("a.ndjson").display()
    );
    let config = CollectorConfig::from_toml(&text, "minimal", &CheckOptions::default()).unwrap();
    assert!(!config.collector.name.is_empty());
    assert_eq!(
        config.collector.data_dir,
        Path::new("/var/lib/citysoc-collector")
    );
    assert_eq!(
        config.collector.metrics_listen,
        Some("127.0.0.1:9780".parse().unwrap())
    );
    assert_eq!(config.sources[0].max_frame, 64 * 1024);
    assert_eq!(
        config.sources[0].format,
        citysoc_collector::InputFormat::Auto
    );
    assert!(config.server.is_none());
    let SourceKind::Http(http) = &config.sources[1].kind else {
        panic!("expected the http source second");
    };
    assert_eq!(
        (
            http.max_body,
            http.max_requests,
            http.body_timeout,
            http.max_connections
        ),
        (10 << 20, 4, std::time::Duration::from_secs(60), 1024)
    );
}

/// A frame must make a record that fits a batch the server accepts (`framing::MAX_MAX_FRAME`).
#[test]
fn max_frame_stops_at_what_one_batch_can_carry() {
    let source = |size: &str| {
        format!(
            "[[source]]\nname = \"tcp\"\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\nmax_frame = \"{size}\"\n[archive]\npath = \"/tmp/citysoc-max-frame-check.ndjson\"\n"
        )
    };
    assert_listed(
        &problems(&source("5 MiB")),
        "source \"tcp\".max_frame",
        "1 byte to 4 MiB",
    );
    let config =
        CollectorConfig::from_toml(&source("4 MiB"), "largest", &CheckOptions::default()).unwrap();
    assert_eq!(
        config.sources[0].max_frame,
        citysoc_collector::framing::MAX_MAX_FRAME
    );
}
