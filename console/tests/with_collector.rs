//! The real collector code (identity, disk buffer, forwarder from the `collector` crate)
//! against the real server over TLS: both sides of the protocol agree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use citysoc_collector::identity::{self, Identity};
use citysoc_collector::protocol::Heartbeat;
use citysoc_collector::{
    BufferConfig, DiskBuffer, Forwarder, ForwarderConfig, ForwarderStatsSnapshot, SyncPolicy,
    WhenFull,
};
use citysoc_console::{ServerConfig, TlsFiles};
use common::TestServer;

fn line(number: u64) -> Vec<u8> {
    format!(
        r#"{{"id":"ev-{number:06}","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","agency":"forged","source":{{"transport":"udp"}},"format":"unknown","raw":"line {number}"}}"#
    )
    .into_bytes()
}

fn open_buffer(dir: &Path) -> Arc<DiskBuffer> {
    Arc::new(
        DiskBuffer::open(
            &dir.join("buffer"),
            BufferConfig {
                max_bytes: 64 << 20,
                segment_bytes: 1 << 20,
                when_full: WhenFull::Block,
                sync: SyncPolicy::EveryAppend,
            },
        )
        .unwrap(),
    )
}

/// Forwards until `buffer` is empty, with small batches and quick retries; the counters then.
async fn forward_all(
    buffer: &Arc<DiskBuffer>,
    server: String,
    collector_id: String,
    key: Vec<u8>,
    ca: Option<&Path>,
) -> ForwarderStatsSnapshot {
    let config = ForwarderConfig {
        batch_max_events: 100,
        linger: Duration::from_millis(20),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        ca_file: ca.map(Path::to_path_buf),
        ..ForwarderConfig::new(server, collector_id, key)
    };
    let forwarder = Forwarder::start(buffer.clone(), config).unwrap();
    let started = Instant::now();
    while buffer.stats().records > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "buffer not drained: {:?}",
            forwarder.stats().snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = forwarder.stats().snapshot();
    forwarder.shutdown().await;
    stats
}

async fn drain(buffer: &Arc<DiskBuffer>, identity: &Identity, ca: &Path) {
    let stats = forward_all(
        buffer,
        identity.server.clone(),
        identity.collector_id.clone(),
        identity.key_bytes().unwrap(),
        Some(ca),
    )
    .await;
    assert_eq!(stats.rejected_batches, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_enrolls_forwards_rotates_and_reports_to_the_server() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = work.path().join("server-ca.pem");
    std::fs::write(&ca, certified.cert.pem()).unwrap();
    let tls = TlsFiles {
        cert: work.path().join("server.crt"),
        key: work.path().join("server.key"),
    };
    std::fs::write(&tls.cert, certified.cert.pem()).unwrap();
    std::fs::write(&tls.key, certified.signing_key.serialize_pem()).unwrap();
    let config = ServerConfig {
        tls: Some(tls),
        ..ServerConfig::new(data.path())
    };
    let server = TestServer::start_with(data, config, "https", common::plain_client()).await;
    let url = format!("https://localhost:{}", server.address.port());

    let token = server.token("phuong-ben-nghe");
    let mut identity = identity::enroll(&url, &token, "log01", Some(&ca))
        .await
        .unwrap();
    assert_eq!(identity.agency, "phuong-ben-nghe");
    let identity_file = work.path().join("identity.json");
    identity.save(&identity_file).unwrap();

    let buffer = open_buffer(work.path());
    let records: Vec<Vec<u8>> = (0..1000).map(line).collect();
    buffer.append(&records, Duration::from_secs(5)).unwrap();
    drain(&buffer, &identity, &ca).await;
    assert_eq!(server.stored_count(), 1000);
    assert!(server
        .stored()
        .iter()
        .all(|event| event.agency.as_deref() == Some("phuong-ben-nghe")));

    // Rotate, then forward more with the new key; the old key stops working after that.
    let old_key = identity.key_bytes().unwrap();
    identity.rotate(&identity_file).await.unwrap();
    assert_ne!(identity.key_bytes().unwrap(), old_key);
    let records: Vec<Vec<u8>> = (1000..1500).map(line).collect();
    buffer.append(&records, Duration::from_secs(5)).unwrap();
    drain(&buffer, &identity, &ca).await;
    assert_eq!(server.stored_count(), 1500);

    identity
        .send_heartbeat(&Heartbeat {
            version: "0.1.0".into(),
            uptime_seconds: 42,
            ..Heartbeat::default()
        })
        .await
        .unwrap();
    let record = server
        .registry
        .collector(&identity.collector_id)
        .unwrap()
        .unwrap();
    assert_eq!(record.last_heartbeat.map(|h| h.uptime_seconds), Some(42));
    assert_eq!(record.events, 1500);
    assert_eq!(record.gaps, 0);
    assert_eq!(
        record.rejected.values().sum::<u64>(),
        0,
        "{:?}",
        record.rejected
    );
}

/// A record the real server cannot take (one an older collector stored before records were
/// held to their ceilings: a long key over thousands of values) costs only itself: the
/// forwarder cuts its refused batch in halves until that record alone is set aside, and the
/// server stores every other event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_record_the_server_refuses_is_all_that_is_set_aside() {
    let server = TestServer::start().await;
    let collector = server.enroll("phuong-da-kao").await;
    let work = tempfile::tempdir().unwrap();
    let buffer = open_buffer(work.path());
    let hostile = format!(
        r#"{{"id":"ev-hostile","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{{"transport":"udp"}},"format":"json","fields":{{"{}":[{}]}}}}"#,
        "k".repeat(64 << 10),
        vec!["0"; 5_000].join(",")
    );
    let mut records: Vec<Vec<u8>> = (0..300).map(line).collect();
    records.insert(137, hostile.into_bytes());
    buffer.append(&records, Duration::from_secs(5)).unwrap();

    let stats = forward_all(
        &buffer,
        server.url(""),
        collector.id.clone(),
        collector.key.clone(),
        None,
    )
    .await;

    assert_eq!(
        (stats.rejected_batches, stats.rejected_events),
        (1, 1),
        "{stats:?}"
    );
    assert!(stats.split > 0, "{stats:?}");
    assert_eq!(server.stored_count(), 300);
    let stored: std::collections::HashSet<String> =
        server.stored().into_iter().map(|event| event.id).collect();
    assert_eq!(stored.len(), 300);
    assert!(!stored.contains("ev-hostile"));
    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.events, 300);
}
