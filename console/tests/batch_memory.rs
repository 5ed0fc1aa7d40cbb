//! How much memory the server takes to handle the densest batches a collector can send: the
//! bound behind `batch_places.rs` (a few batches handled at once, each within its allowance)
//! as a measured number rather than a reasoned one.
//!
//! Each batch is built as a collector builds it (parsed, its records held to the per-event
//! ceilings, packed up to the forwarder's batch size and the server's event cap) from the worst
//! shapes `collector/tests/batch_budget.rs` knows, plus one past the forwarder's size and up to
//! the server's value cap, as only a sender holding a collector's key could build it. Each is
//! sent signed to a real server in this process, and the process's peak resident memory during
//! the request is read from the kernel (`VmHWM`, reset before each batch through
//! `/proc/self/clear_refs`). The server's allocator is the binary's. The figures print with
//! `--nocapture` and are recorded in BENCHMARKS.md; the test fails past
//! [`MAX_BATCH_GROWTH_BYTES`] (the worst measured is ~370 MiB), so that a change which makes a
//! batch cost much more is caught before a server meets it.
//!
//! One test in its own binary: other tests running in the same process would move the peak.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use citysoc_collector::protocol::{
    self, IntakeAck, INTAKE_PATH, MAX_BATCH_EVENTS, MAX_BODY_BYTES, MAX_DECOMPRESSED_BYTES,
};
use citysoc_collector::{record, Decoder, InputFormat, ParseContext};
use common::TestServer;

/// The same allocator as the `citysoc` binary: resident memory depends on it.
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

/// The most one batch may add to the server's peak resident memory before this test fails.
const MAX_BATCH_GROWTH_BYTES: u64 = 512 << 20;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`), `None` where there is none.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident memory to the current one (Linux ≥ 4.0); false where it cannot.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The context a TCP source gives its events.
fn context() -> ParseContext {
    let mut context = ParseContext::new("tcp");
    context.agency = Some("quan-1".into());
    context.collector = Some("col-quan-1-0001".into());
    context.source.address = Some("10.1.2.3:51514".into());
    context
}

/// The fullest batch of `line(0)`, `line(1)`, … a collector sends: each line parsed and held to
/// the per-event ceilings, records packed up to `max_bytes` of records (the forwarder's ceiling
/// is half the server's body limit) and `max_events` (at most the server's event cap). Returns the body and its event count.
fn fullest_batch(
    format: InputFormat,
    max_events: usize,
    max_bytes: usize,
    line: impl Fn(usize) -> Vec<u8>,
) -> (Vec<u8>, usize) {
    let mut records: Vec<Vec<u8>> = Vec::new();
    let mut record_bytes = 0;
    'fill: for index in 0.. {
        let mut decoder = Decoder::new(format, context());
        let mut events = Vec::new();
        decoder.decode(&line(index), &mut events);
        decoder.finish(&mut events);
        for mut event in events {
            let mut encoded = Vec::new();
            record::encode_within_ceiling(&mut event, &mut encoded).unwrap();
            if records.len() == max_events || record_bytes + encoded.len() > max_bytes {
                break 'fill;
            }
            record_bytes += encoded.len();
            records.push(encoded);
        }
    }
    let body = protocol::encode_records(records.iter().map(Vec::as_slice)).unwrap();
    (body, records.len())
}

fn zeros(count: usize) -> String {
    vec!["0"; count].join(",")
}

/// The forwarder's ceiling on a batch's records.
const FORWARDER_BYTES: usize = MAX_BODY_BYTES / 2;

/// The shapes: a name, the format, the most events and record bytes a batch takes, and the
/// line for an index.
type Shape = (
    &'static str,
    InputFormat,
    usize,
    usize,
    fn(usize) -> Vec<u8>,
);

const SHAPES: &[Shape] = &[
    (
        "the floor: batches of ordinary syslog lines, 2,000 events",
        InputFormat::Auto,
        2_000,
        FORWARDER_BYTES,
        |index| {
            format!(
                "<38>Nov 22 10:00:{:02} web-01 sshd[{index}]: Accepted publickey for admin \
                 from 10.1.2.{} port 51514 ssh2",
                index % 60,
                index % 256
            )
            .into_bytes()
        },
    ),
    (
        "the densest values: 64 KiB JSON lines of one-digit arrays",
        InputFormat::Json,
        MAX_BATCH_EVENTS,
        FORWARDER_BYTES,
        |index| format!(r#"{{"a{index}":[{}]}}"#, zeros(32_700)).into_bytes(),
    ),
    (
        // No collector builds this batch (it is past the forwarder's 8 MiB of records), but
        // the server takes it from a sender with a collector's key: its values just under the
        // server's 4,000,000. The server's worst case.
        "crafted: the densest values past the forwarder's size, just under the value cap",
        InputFormat::Json,
        120,
        MAX_DECOMPRESSED_BYTES,
        |index| format!(r#"{{"a{index}":[{}]}}"#, zeros(32_700)).into_bytes(),
    ),
    (
        "arrays under 40-byte keys, at the per-event ceiling",
        InputFormat::Json,
        MAX_BATCH_EVENTS,
        FORWARDER_BYTES,
        |index| format!(r#"{{"{}{index:08}":[{}]}}"#, "k".repeat(32), zeros(200)).into_bytes(),
    ),
    (
        "many small JSON documents, a new key each",
        InputFormat::Json,
        MAX_BATCH_EVENTS,
        FORWARDER_BYTES,
        |index| format!(r#"{{"{}{index:05}":[{}]}}"#, "k".repeat(20), zeros(12)).into_bytes(),
    ),
    (
        "key=value lines of 2,000 new keys with empty values",
        InputFormat::Kv,
        MAX_BATCH_EVENTS,
        FORWARDER_BYTES,
        |index| {
            (0..2_000)
                .map(|pair| format!("k{index}x{pair}="))
                .collect::<Vec<_>>()
                .join(" ")
                .into_bytes()
        },
    ),
    (
        "the shortest syslog lines, up to the event cap",
        InputFormat::Auto,
        MAX_BATCH_EVENTS,
        FORWARDER_BYTES,
        |index| format!("<13>{index}").into_bytes(),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_densest_batches_stay_within_the_memory_allowance() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let mut measured = true;
    for (sequence, (name, format, max_events, max_bytes, line)) in SHAPES.iter().enumerate() {
        let (body, events) = fullest_batch(*format, *max_events, *max_bytes, line);
        let before = status_bytes("VmRSS").unwrap_or(0);
        measured &= reset_peak();
        let response = collector
            .send(&server, INTAKE_PATH, sequence as u64 + 1, body.clone())
            .await;
        let peak = status_bytes("VmHWM").unwrap_or(0);
        assert_eq!(response.status(), 200, "{name}");
        let ack: IntakeAck = response.json().await.unwrap();
        assert_eq!(ack.stored as usize, events, "{name}: every event stored");
        let growth = peak.saturating_sub(before);
        println!(
            "{name}: {events} events, body {:.1} MiB, peak resident +{:.0} MiB",
            body.len() as f64 / f64::from(1 << 20),
            growth as f64 / f64::from(1 << 20)
        );
        if measured {
            assert!(
                growth < MAX_BATCH_GROWTH_BYTES,
                "{name}: one batch took the server's resident memory up by {growth} bytes"
            );
        }
    }
    if !measured {
        println!("this kernel cannot reset the peak (/proc/self/clear_refs): figures not checked");
    }
}
