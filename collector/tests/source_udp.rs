//! UDP source: datagrams in, events out, oversized datagrams kept cut and counted, every
//! datagram accounted for when the sink blocks (pipeline drops and kernel drops counted).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use citysoc_collector::metrics::DropReason;
use support::*;

const UDP_SOURCE: &str = r#"
[[source]]
name = "fw"
type = "udp"
listen = "127.0.0.1:0"
max_frame = 1024
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_become_stamped_events_and_an_oversized_one_is_kept_flagged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), UDP_SOURCE).await;
    let target = harness.address("fw");
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender_address = sender.local_addr().unwrap().to_string();
    sender
        .send_to(b"<134>Nov 22 10:15:00 fw01 sshd[42]: Failed password for root from 203.0.113.9 port 4242 ssh2\n", target)
        .unwrap();
    let oversized = format!("<14>Nov 22 10:15:01 cam01 nvr: {}", "A".repeat(3000));
    sender.send_to(oversized.as_bytes(), target).unwrap();
    sender.send_to(b"", target).unwrap();
    sender
        .send_to(
            b"date=2026-11-22 time=10:15:02 devname=\"FGT\" srcip=10.1.2.3 action=deny",
            target,
        )
        .unwrap();
    harness.wait_for_events("fw", 3).await;
    let metrics = harness.collector.metrics();
    let fw = metrics.source("fw").unwrap().clone();
    let events = harness.stop().await;

    assert_eq!(events.len(), 3, "{events:#?}");
    let first = &events[0];
    assert_eq!(first["agency"], "quan-1");
    assert_eq!(first["collector"], "test-collector");
    assert_eq!(first["source"]["transport"], "udp");
    assert_eq!(first["source"]["address"], sender_address.as_str());
    assert_eq!(first["source.ip"], "203.0.113.9");
    assert_eq!(
        first["raw"],
        "<134>Nov 22 10:15:00 fw01 sshd[42]: Failed password for root from 203.0.113.9 port 4242 ssh2",
        "the trailing newline is framing, not message"
    );
    let cut = &events[1];
    assert_eq!(cut["fields"]["datagram_truncated"], true);
    assert_eq!(cut["raw"].as_str().unwrap().len(), 1024);
    assert!(oversized.starts_with(cut["raw"].as_str().unwrap()));
    assert_eq!(events[2]["format"], "kv");

    assert_eq!(fw.drops(DropReason::DatagramTruncated), 1);
    let health = fw.health();
    assert_eq!(health.events_in, 4);
    assert_eq!(health.events_out, 3);
    assert_eq!(health.drops, 1);
    let ids: std::collections::HashSet<_> =
        events.iter().map(|event| event["id"].clone()).collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_sink_blocks_every_datagram_is_delivered_or_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    let source = r#"
[[source]]
name = "flood"
type = "udp"
listen = "127.0.0.1:0"
receive_buffer = "256 KiB"
"#;
    let (flood, pipeline_drops) = flood_while_closed(dir.path(), source, &sink, 200).await;
    let delivered = sink.line_count() as u64;
    let pipeline = flood.drops(DropReason::PipelineFull);
    let kernel = flood.drops(DropReason::KernelReceiveBuffer);
    assert!(
        pipeline_drops,
        "the pipeline never filled while the sink was closed"
    );
    assert_eq!(flood.events_out(), delivered);
    assert_eq!(
        flood.records_in(),
        delivered + pipeline,
        "every datagram read is delivered or counted"
    );
    assert_eq!(
        delivered + pipeline + kernel,
        FLOOD,
        "delivered {delivered} + pipeline drops {pipeline} + kernel drops {kernel} must equal sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_datagram_from_the_same_port_after_a_restart_is_a_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let harness = start_in(dir.path(), UDP_SOURCE).await;
        sender
            .send_to(b"<14>camera-03: tamper alarm", harness.address("fw"))
            .unwrap();
        harness.wait_for_events("fw", 1).await;
        harness.collector.stop().await;
    }
    for event in read_events(&dir.path().join("archive.ndjson")) {
        assert_eq!(event["raw"], "<14>camera-03: tamper alarm");
        ids.push(event["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 2);
    assert_ne!(
        ids[0], ids[1],
        "the server would drop the second as a duplicate"
    );
}

/// Oversized datagrams while the sink blocks: a cut datagram that is then dropped because the
/// pipeline stayed full counts once (under `pipeline_full`), not also under
/// `datagram_truncated`; the delivered ones count under `datagram_truncated`. So the source's
/// drops are exactly one per datagram here (every one was cut or lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_datagram_dropped_for_a_full_pipeline_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    let source = r#"
[[source]]
name = "flood"
type = "udp"
listen = "127.0.0.1:0"
receive_buffer = "256 KiB"
max_frame = 256
"#;
    let (flood, pipeline_drops) = flood_while_closed(dir.path(), source, &sink, 400).await;
    let delivered = sink.line_count() as u64;
    let pipeline = flood.drops(DropReason::PipelineFull);
    let kernel = flood.drops(DropReason::KernelReceiveBuffer);
    let truncated = flood.drops(DropReason::DatagramTruncated);
    assert!(
        pipeline_drops,
        "the pipeline never filled while the sink was closed"
    );
    assert_eq!(delivered + pipeline + kernel, FLOOD);
    assert_eq!(
        truncated, delivered,
        "only delivered cut datagrams count as datagram_truncated"
    );
    assert_eq!(
        flood.health().drops,
        FLOOD,
        "each datagram counts once in drops: cut and delivered, or lost"
    );
}

/// Datagrams [`flood_while_closed`] sends.
const FLOOD: u64 = 20_000;

/// Starts the UDP source `flood` of `source` with `sink` closed, sends [`FLOOD`] datagrams
/// padded by `padding` bytes, waits until the pipeline has dropped some (true if it did),
/// then opens the sink and stops the collector; returns the source's metrics.
async fn flood_while_closed(
    dir: &std::path::Path,
    source: &str,
    sink: &std::sync::Arc<GateSink>,
    padding: usize,
) -> (
    std::sync::Arc<citysoc_collector::metrics::SourceMetrics>,
    bool,
) {
    let collector = start_with_sink(dir, source, sink.clone()).await;
    let target = collector.local_address("flood").unwrap();
    let metrics = collector.metrics();
    let flood = metrics.source("flood").unwrap().clone();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for index in 0..FLOOD {
        let message = format!(
            "<13>Nov 22 10:15:00 host app: message {index:06} {}",
            "x".repeat(padding)
        );
        sender.send_to(message.as_bytes(), target).unwrap();
        if index % 50 == 0 {
            // A sender on loopback outruns any receiver; a short pause lets the source fill
            // the pipeline rather than the kernel dropping nearly everything.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The pipeline holds only so much while the sink is closed: some datagrams must have been
    // dropped, and counted.
    let pipeline_drops = wait_until(Duration::from_secs(10), || {
        flood.drops(DropReason::PipelineFull) > 0
    })
    .await;
    sink.open();
    tokio::time::sleep(Duration::from_millis(500)).await;
    collector.stop().await;
    (flood, pipeline_drops)
}
