//! The server as a whole: TLS with a self-signed certificate, exact /metrics counters,
//! detection on received events, and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use citysoc_collector::protocol::{IntakeAck, INTAKE_PATH, MAX_CLOCK_SKEW_MS};
use citysoc_console::{Detection, ServerConfig, TlsFiles};
use common::{batch, event, events, metric, now_ms, rejected_metric, TestServer};

fn self_signed(dir: &std::path::Path) -> (TlsFiles, Vec<u8>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.cert, &cert_pem).unwrap();
    std::fs::write(&files.key, certified.signing_key.serialize_pem()).unwrap();
    (files, certified.cert.der().to_vec())
}

fn client_trusting(certificate: Vec<u8>) -> reqwest::Client {
    common::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(certificate))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve("localhost", std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test]
async fn enrollment_and_batches_work_over_tls_with_a_self_signed_certificate() {
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let (files, der) = self_signed(certs.path());
    let config = ServerConfig {
        tls: Some(files),
        ..ServerConfig::new(data.path())
    };
    let server = TestServer::start_with(data, config, "https", client_trusting(der)).await;
    let collector = server.enroll("quan-1").await;
    let response = collector
        .send(&server, INTAKE_PATH, 1, batch(&events("tls", 3)))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.stored_count(), 3);

    // Plain HTTP to the TLS port gets no answer.
    let plain = common::plain_client();
    assert!(plain
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            server.address.port()
        ))
        .send()
        .await
        .is_err());
    // A client that does not trust the certificate cannot connect.
    let untrusting = client_trusting(
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .unwrap()
            .cert
            .der()
            .to_vec(),
    );
    assert!(untrusting.get(server.url("/healthz")).send().await.is_err());
    // The trusting one can.
    let health = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn unusable_tls_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsFiles {
        cert: dir.path().join("none.crt"),
        key: dir.path().join("none.key"),
    };
    let error = citysoc_console::server_config(&missing).err().unwrap();
    assert!(error.to_string().contains("none.crt"), "{error}");
    let (files, _) = self_signed(dir.path());
    let other = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
    std::fs::write(&files.key, other.signing_key.serialize_pem()).unwrap();
    let error = citysoc_console::server_config(&files).err().unwrap();
    assert!(error.to_string().contains("usable"), "{error}");
}

#[tokio::test]
async fn metrics_count_exactly() {
    let server = TestServer::start().await;
    let first = server.enroll("quan-1").await;
    let second = server.enroll("quan-2").await;
    let body = batch(&events("m", 4));
    for _ in 0..2 {
        assert_eq!(
            first
                .send(&server, INTAKE_PATH, 1, body.clone())
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        first
            .send(&server, INTAKE_PATH, 4, batch(&events("n", 3)))
            .await
            .status(),
        200
    );
    assert_eq!(
        second
            .send(&server, INTAKE_PATH, 1, body.clone())
            .await
            .status(),
        200
    );
    // Refusals: two replays, one expired, one bad body, one bad signature.
    for _ in 0..2 {
        let _ = first
            .send(&server, INTAKE_PATH, 2, body.clone())
            .await
            .bytes()
            .await;
    }
    let _ = first
        .request(
            &server,
            INTAKE_PATH,
            5,
            now_ms() - MAX_CLOCK_SKEW_MS - 1000,
            body.clone(),
        )
        .send()
        .await
        .unwrap()
        .bytes()
        .await;
    let _ = first
        .send(&server, INTAKE_PATH, 5, b"x".to_vec())
        .await
        .bytes()
        .await;
    let wrong = common::TestCollector {
        id: second.id.clone(),
        key: first.key.clone(),
    };
    let _ = wrong
        .send(&server, INTAKE_PATH, 2, body.clone())
        .await
        .bytes()
        .await;

    let text = server.metrics_text().await;
    let expected = [
        ("citysoc_intake_batches_total", 4),
        ("citysoc_intake_batches_resent_total", 1),
        // 4 + 3 from the first collector, 4 from the second (another agency, so not duplicates)
        ("citysoc_intake_events_total", 11),
        ("citysoc_intake_duplicates_total", 4),
        ("citysoc_intake_gaps_total", 1),
        ("citysoc_intake_missing_batches_total", 2),
        ("citysoc_enrollments_total", 2),
        (&rejected_metric("intake", "replay"), 2),
        (&rejected_metric("intake", "expired"), 1),
        (&rejected_metric("intake", "bad_body"), 1),
        (&rejected_metric("intake", "bad_head_signature"), 1),
    ];
    for (name, value) in expected {
        assert_eq!(metric(&text, name), value, "{name}\n{text}");
    }
    let rejection_lines = text
        .lines()
        .filter(|line| line.starts_with("citysoc_rejected_total"))
        .count();
    assert_eq!(rejection_lines, 4, "{text}");
    let first_record = server.registry.collector(&first.id).unwrap().unwrap();
    assert_eq!(first_record.rejected.values().sum::<u64>(), 4);
    let second_record = server.registry.collector(&second.id).unwrap().unwrap();
    assert_eq!(second_record.rejected.get("bad_head_signature"), Some(&1));
}

const RULE: &str = r#"
title: Test marker in a message
id: 5e0ac1a1-0000-4000-8000-000000000001
status: test
level: high
logsource:
  product: test
detection:
  selection:
    message|contains: 'EVIL-MARKER'
  condition: selection
"#;

#[tokio::test]
async fn detection_runs_on_new_events_only_and_alerts_are_written_before_the_answer() {
    let data = tempfile::tempdir().unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("marker.yml"), RULE).unwrap();
    let detector_config = citysoc_detect::DetectorConfig {
        sigma_paths: vec![rules.path().to_path_buf()],
        mappings_dir: None,
        placeholders_file: None,
        exceptions_dir: None,
        intel_paths: Vec::new(),
    };
    let (detector, report) =
        citysoc_detect::Detector::build(&detector_config, chrono::Utc::now()).unwrap();
    assert_eq!(report.rules, 1, "{:?}", report.problems);
    let config = ServerConfig {
        detection: Some(Detection::new(detector, None)),
        ..ServerConfig::new(data.path())
    };
    let server = TestServer::start_with(data, config, "http", common::plain_client()).await;
    let collector = server.enroll("quan-1").await;
    let sent = vec![
        event("ev01", Some("elsewhere"), "user EVIL-MARKER logged in"),
        event("ev02", None, "nothing to see"),
    ];
    let ack: IntakeAck = collector
        .send(&server, INTAKE_PATH, 1, batch(&sent))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ack.stored, 2);
    let alerts_path = server.data.path().join("alerts.ndjson");
    let alerts = std::fs::read_to_string(&alerts_path).unwrap();
    #[cfg(unix)]
    {
        // Alerts name hosts, users and addresses of every agency: owner only.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&alerts_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let lines: Vec<serde_json::Value> = alerts
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{alerts}");
    assert!(alerts.contains("ev01"), "{alerts}");
    assert!(
        alerts.contains("quan-1"),
        "the alert carries the registry's agency: {alerts}"
    );
    assert!(!alerts.contains("elsewhere"), "{alerts}");
    // Sent again: duplicates are not detected on twice.
    let _ = collector.send(&server, INTAKE_PATH, 1, batch(&sent)).await;
    assert_eq!(std::fs::read_to_string(&alerts_path).unwrap(), alerts);
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_alerts_total"), 1);
}

#[tokio::test]
async fn shutdown_stops_accepting_and_leaves_every_acknowledged_event_durable() {
    let mut server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    for sequence in 1..=3u64 {
        let response = collector
            .send(
                &server,
                INTAKE_PATH,
                sequence,
                batch(&events(&format!("s{sequence}-"), 100)),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    server.stop().await;
    assert!(tokio::net::TcpStream::connect(server.address)
        .await
        .is_err());
    // A fresh store over the same directory sees every acknowledged event.
    let store = citysoc_index::TantivyStore::open(
        server.data.path().join("events"),
        citysoc_index::TantivyConfig::default(),
    )
    .unwrap();
    let count = store
        .count(&citysoc_index::AggregationRequest {
            query: citysoc_index::Query::All,
            time: citysoc_index::TimeRange::everything(),
            scope: citysoc_index::AgencyScope::All,
        })
        .unwrap();
    assert_eq!(count, 300);
    // The registry survives too.
    let registry = citysoc_console::Registry::open_in(server.data.path()).unwrap();
    let record = registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.last_sequence_acked, 3);
}

#[tokio::test]
async fn a_request_in_flight_finishes_during_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let body = batch(&events("fly", 500));
    let time = now_ms();
    let signature = citysoc_collector::protocol::sign(
        &collector.key,
        INTAKE_PATH,
        &citysoc_collector::protocol::Signed {
            collector: collector.id.clone(),
            sequence: 1,
            time_ms: time,
        },
        &body,
    );
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    // One full exchange first, so the connection is surely accepted and being served.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The batch's headers and half its body, then the shutdown, then the rest.
    let head = format!(
        "POST {INTAKE_PATH} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n\
         x-citysoc-collector: {}\r\nx-citysoc-sequence: 1\r\nx-citysoc-time: {time}\r\n\
         x-citysoc-signature: {signature}\r\n\r\n",
        body.len(),
        collector.id
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(async move {
        server.stop().await;
        server
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(&body[half..]).await.unwrap();
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"stored\":500"), "{answer}");
    // The server closes the connection after that answer, and shutdown completes.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    let server = stopping.await.unwrap();
    assert!(tokio::net::TcpStream::connect(server.address)
        .await
        .is_err());

    async fn read_response(stream: &mut tokio::net::TcpStream) -> String {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = stream.read(&mut chunk).await.unwrap();
            assert!(
                read > 0,
                "connection closed early: {}",
                String::from_utf8_lossy(&buffer)
            );
            buffer.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&buffer).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buffer.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    }
}
