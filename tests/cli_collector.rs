//! `citysoc collector` as an agency admin first meets it: the quick start writing to a file,
//! `/metrics`, a clean stop on SIGTERM, and `collector check` listing every problem.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::KillOnDrop;

fn citysoc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
}

fn http_get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The value of a metric line (`name{labels} value`).
fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name_and_labels} in\n{text}"))
}

#[test]
fn quick_start_listens_on_tcp_and_udp_writes_to_a_file_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let mut child = citysoc()
        .args([
            "collector",
            "run",
            "--listen",
            "tcp://127.0.0.1:0",
            "--listen",
            "udp://127.0.0.1:0",
        ])
        .args([
            "--agency",
            "phuong-ben-thanh",
            "--name",
            "trial",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--to")
        .arg(format!("file:{}", out.display()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("CITYSOC_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut child = KillOnDrop(child);
    let (mut tcp, mut udp, mut metrics) = (None, None, None);
    let mut banner = String::new();
    while metrics.is_none() {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "collector exited:\n{banner}"
        );
        banner.push_str(&line);
        let address = || {
            line.rsplit(' ')
                .next()
                .unwrap()
                .trim()
                .trim_end_matches("/metrics")
                .trim_start_matches("http://")
                .parse::<SocketAddr>()
                .ok()
        };
        if line.contains("tcp tcp-1: listening on") {
            tcp = address();
        } else if line.contains("udp udp-2: listening on") {
            udp = address();
        } else if line.contains("metrics: http://") {
            metrics = address();
        }
    }
    let (tcp, udp, metrics) = (tcp.unwrap(), udp.unwrap(), metrics.unwrap());

    let mut client = TcpStream::connect(tcp).unwrap();
    client
        .write_all(b"<134>Nov 22 10:15:00 fw-bt sshd[7]: Failed password for admin from 198.51.100.7 port 6000 ssh2\n")
        .unwrap();
    let counted = "<13>Nov 22 10:15:01 cam-12 nvr: video loss on channel 3 at gate";
    client
        .write_all(format!("{} {counted}", counted.len()).as_bytes())
        .unwrap();
    drop(client);
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .send_to(
            b"<134>Nov 22 10:15:02 sw-1 %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
            udp,
        )
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = http_get(metrics, "/metrics");
        let tcp_out = metric(
            &text,
            "citysoc_collector_events_out_total{source=\"tcp-1\",type=\"tcp\"}",
        );
        let udp_out = metric(
            &text,
            "citysoc_collector_events_out_total{source=\"udp-2\",type=\"udp\"}",
        );
        if tcp_out == 2 && udp_out == 1 {
            break text;
        }
        assert!(Instant::now() < deadline, "events did not arrive:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(metric(&text, "citysoc_collector_dropped_total{source=\"udp-2\",type=\"udp\",reason=\"datagram_truncated\"}"), 0);
    let health = http_get(metrics, "/health");
    assert!(
        health.contains("\"tcp-1\":{\"events_in\":2,\"events_out\":2,\"drops\":0,\"errors\":0}"),
        "{health}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.0.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "exit {status}:\n{banner}{rest}");
    assert!(
        rest.contains("tcp-1: 2 records in, 2 events out, 0 dropped, 0 errors"),
        "{rest}"
    );

    let events: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    for event in &events {
        assert_eq!(event["agency"], "phuong-ben-thanh");
        assert_eq!(event["collector"], "trial");
    }
    let mut raws: Vec<&str> = events
        .iter()
        .map(|event| event["raw"].as_str().unwrap())
        .collect();
    raws.sort();
    assert_eq!(
        raws,
        [
            "<134>Nov 22 10:15:00 fw-bt sshd[7]: Failed password for admin from 198.51.100.7 port 6000 ssh2",
            "<134>Nov 22 10:15:02 sw-1 %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
            "<13>Nov 22 10:15:01 cam-12 nvr: video loss on channel 3 at gate",
        ]
    );
}

#[test]
fn check_lists_every_problem_and_exits_1_and_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[collector]\ntimezone = \"Saigon\"\nagncy = \"x\"\n\n[[source]]\nname = \"fw\"\ntype = \"udp\"\nlisten = \"0.0.0.0:99999\"\n\n[buffer]\nwhen_full = \"panic\"\n",
    )
    .unwrap();
    let output = citysoc()
        .args(["collector", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        "5 problems",
        "collector.timezone: unknown time zone `Saigon`",
        "collector.agncy: unknown key `agncy`",
        "source \"fw\".listen: `0.0.0.0:99999` is not an address and port",
        "buffer.when_full: unknown policy `panic`",
        "nowhere to send events",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[collector]\nagency = \"so-y-te\"\ndata_dir = \"{}\"\n\n[[source]]\nname = \"fw\"\ntype = \"udp\"\nlisten = \"127.0.0.1:0\"\n\n[archive]\npath = \"{}\"\n",
            dir.path().join("data").display(),
            dir.path().join("events.ndjson").display()
        ),
    )
    .unwrap();
    let output = citysoc()
        .args(["collector", "check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(stdout.contains("source fw: udp 127.0.0.1:0"), "{stdout}");
}

#[test]
fn a_server_destination_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let output = citysoc()
        .args([
            "collector",
            "run",
            "--listen",
            "udp://127.0.0.1:0",
            "--to",
            "https://soc.example:8443",
            "--metrics",
            "off",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.key_file"), "{stderr}");
    assert!(stderr.contains("citysoc collector enroll"), "{stderr}");
}

/// Starts `citysoc collector run --config CONFIG` and waits for its banner.
fn start_collector(config: &std::path::Path) -> KillOnDrop {
    let mut child = citysoc()
        .args(["collector", "run", "--config"])
        .arg(config)
        .env("CITYSOC_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("running") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "collector did not start"
        );
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    KillOnDrop(child)
}

#[test]
fn enroll_takes_a_token_that_starts_with_a_hyphen() {
    // One token in 64 does (URL-safe base64): it must reach the server, not be read as an
    // option. No server listens here, so enrolling fails at the connection.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args([
            "collector",
            "enroll",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "-Sx5TBmT3q0FfZkQyQ4nR2Xo1",
            "--key-file",
        ])
        .arg(dir.path().join("collector.key"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert!(!stderr.contains("Usage:"), "{stderr}");
}

#[test]
fn kill_9_while_tailing_loses_no_line_and_repeats_only_identical_events() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let archive = dir.path().join("archive.ndjson");
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[collector]\nname = \"crashy\"\nagency = \"so-tttt\"\ndata_dir = \"{}\"\nmetrics_listen = \"off\"\n\n[[source]]\nname = \"app\"\ntype = \"file\"\npath = \"{}\"\npoll_interval_ms = 10\n\n[archive]\npath = \"{}\"\n",
            dir.path().join("data").display(),
            log.display(),
            archive.display()
        ),
    )
    .unwrap();
    let total = 6000;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            for index in 0..total {
                writeln!(file, "<14>Nov 22 10:15:00 app-01 app[9]: record {index:05}").unwrap();
                if index % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(15));
                }
            }
        })
    };
    for _ in 0..3 {
        let mut child = start_collector(&config);
        std::thread::sleep(Duration::from_millis(400));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
    }
    writer.join().unwrap();
    let mut child = start_collector(&config);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let text = std::fs::read_to_string(&archive).unwrap_or_default();
        if text.contains("record 05999\"") || Instant::now() > deadline {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(child.0.wait().unwrap().success());

    let mut id_of_raw: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut events = 0;
    for line in std::fs::read_to_string(&archive).unwrap().lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        events += 1;
        let raw = event["raw"].as_str().unwrap().to_owned();
        let id = event["id"].as_str().unwrap().to_owned();
        if let Some(previous) = id_of_raw.insert(raw.clone(), id.clone()) {
            assert_eq!(
                previous, id,
                "a line read twice must keep its event id: {raw}"
            );
        }
    }
    assert_eq!(
        id_of_raw.len(),
        total,
        "every line arrives ({events} events in all)"
    );
    for index in 0..total {
        assert!(id_of_raw.contains_key(&format!(
            "<14>Nov 22 10:15:00 app-01 app[9]: record {index:05}"
        )));
    }
}
