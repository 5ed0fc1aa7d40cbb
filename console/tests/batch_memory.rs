//! How much memory the server takes to handle the densest batches a collector can send: the
//! bound behind `batch_places.rs` (a few batches handled at once, each within its allowance)
//! as a measured number rather than a reasoned one.
//!
//! Each batch is built as a collector builds it (parsed, its records held to the per-event
//! ceilings, packed up to the forwarder's batch size and the server's event cap) from the worst
//! shapes `collector/tests/batch_budget.rs` knows, plus one past the forwarder's size and up to
//! the server's value cap, as only a sender holding a collector's key could build it. Each is
//! sent signed to a real server in a fresh process of its own (this binary run again as a
//! child), so that no memory freed by an earlier batch, or by building this one, can be reused
//! and hide part of it. The child reads the process's peak resident memory during the request
//! from the kernel (`VmHWM`, reset just before it through `/proc/self/clear_refs`; where that
//! cannot be written, the rise of the peak over the start-up's). The server's allocator is the
//! binary's. The figures print on every run and are recorded in BENCHMARKS.md; the test
//! fails past [`MAX_BATCH_GROWTH_BYTES`] (the worst measured is ~380 MiB), so that a change
//! which makes a batch cost much more is caught before a server meets it.
//!
//! No test harness (`harness = false`): `main` is the parent, or a child when
//! [`CHILD_BODY`] is set. It answers the harness's `--list`, `--ignored`, `--skip`, `--exact`
//! and name filters as the harness would, so filtered runs of other tests do not start it.
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
    ParseContext::new("tcp")
        .with_agency("quan-1")
        .with_collector("col-quan-1-0001")
        .with_address("10.1.2.3:51514")
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

/// The environment variable that makes this binary a child: the path of the body to send.
const CHILD_BODY: &str = "CITYSOC_BATCH_MEMORY_BODY";
/// The number of events in the child's body.
const CHILD_EVENTS: &str = "CITYSOC_BATCH_MEMORY_EVENTS";

/// The test's name, as `--list` and filters see it.
const TEST_NAME: &str = "the_densest_batches_stay_within_the_memory_allowance";

/// How long one child may take (the crafted batch takes ~10 s in a debug build).
const CHILD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(300);

fn main() {
    common::install_crypto_provider();
    if let Some(body) = std::env::var_os(CHILD_BODY) {
        let events: usize = std::env::var(CHILD_EVENTS)
            .ok()
            .and_then(|events| events.parse().ok())
            .unwrap_or(0);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (growth, reset) = runtime.block_on(child(std::path::Path::new(&body), events));
        println!("growth={growth}");
        println!("reset={reset}");
        return;
    }
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments.iter().any(|argument| argument == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    if !selected(&arguments) {
        println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
        return;
    }
    let failures = parent();
    // A summary line as the test harness writes it, one check per shape, so that totals made
    // from the harness's lines (scripts/test.sh) count these too.
    let passed = SHAPES.len() - failures;
    if failures > 0 {
        println!("test result: FAILED. {passed} passed; {failures} failed; 0 ignored; 0 measured; 0 filtered out");
        std::process::exit(1);
    }
    println!("test result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

/// Whether the test harness's arguments would run this test: `--ignored` runs only ignored
/// tests (this one is not), `--skip S` skips names containing S, and name filters (`--exact`
/// for the whole name) select. Arguments this binary does not know are passed over.
fn selected(arguments: &[String]) -> bool {
    const WITH_VALUE: &[&str] = &[
        "--skip",
        "--test-threads",
        "--format",
        "--color",
        "--logfile",
        "-Z",
        "--shuffle-seed",
    ];
    let exact = arguments.iter().any(|argument| argument == "--exact");
    let matches = |filter: &str| {
        if exact {
            filter == TEST_NAME
        } else {
            TEST_NAME.contains(filter)
        }
    };
    let mut filters = Vec::new();
    let mut words = arguments.iter();
    while let Some(argument) = words.next() {
        if argument == "--ignored" {
            return false;
        }
        if WITH_VALUE.contains(&argument.as_str()) {
            let value = words.next();
            if argument == "--skip" && value.is_some_and(|skip| TEST_NAME.contains(skip.as_str())) {
                return false;
            }
        } else if !argument.starts_with('-') {
            filters.push(argument.as_str());
        }
    }
    filters.is_empty() || filters.iter().any(|filter| matches(filter))
}

/// Builds each shape's batch, has a child send it, and checks what the child measured.
/// Returns how many shapes failed.
fn parent() -> usize {
    let scratch = tempfile::tempdir().unwrap();
    let mut failures = 0;
    println!("the densest batches' resident memory, one fresh server process each:");
    for (name, format, max_events, max_bytes, line) in SHAPES {
        let (body, events) = fullest_batch(*format, *max_events, *max_bytes, line);
        let path = scratch.path().join("body");
        std::fs::write(&path, &body).unwrap();
        let (status, stdout, stderr) = run_child(scratch.path(), &path, events);
        let growth = stdout
            .lines()
            .find_map(|line| line.strip_prefix("growth="))
            .and_then(|growth| growth.parse::<u64>().ok());
        let reset = stdout.lines().any(|line| line == "reset=true");
        match growth {
            Some(growth) if status.success() && growth < MAX_BATCH_GROWTH_BYTES => {
                println!(
                    "  {name}: {events} events, body {:.1} MiB, peak resident +{:.0} MiB{}",
                    body.len() as f64 / f64::from(1 << 20),
                    growth as f64 / f64::from(1 << 20),
                    if reset {
                        ""
                    } else {
                        " (the peak could not be reset: the rise over the start-up's peak, a floor)"
                    }
                );
            }
            _ => {
                failures += 1;
                eprintln!(
                    "  {name}: FAILED (limit {MAX_BATCH_GROWTH_BYTES} bytes): {status}\n{stdout}\n{stderr}"
                );
            }
        }
    }
    failures
}

/// Runs this binary as a child sending the body at `body`, its output in files under
/// `scratch` (a pipe could fill and stall it), killed past [`CHILD_DEADLINE`]. Returns its exit
/// status, standard output and standard error.
fn run_child(
    scratch: &std::path::Path,
    body: &std::path::Path,
    events: usize,
) -> (std::process::ExitStatus, String, String) {
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_BODY, body)
        .env(CHILD_EVENTS, events.to_string())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let read = |path: &std::path::Path| {
        String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
    };
    (status, read(&out_path), read(&err_path))
}

/// In a fresh process: a server, one collector, the body sent once. Panics (a failed child)
/// unless every event is stored; returns how far the request raised the peak resident memory,
/// and whether the peak could be reset before it (if not, the figure is the rise over the
/// start-up's peak: a floor, which still catches a batch far past the allowance).
async fn child(body: &std::path::Path, events: usize) -> (u64, bool) {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let body = std::fs::read(body).unwrap();
    let before = status_bytes("VmRSS").unwrap_or(0);
    // Where the peak cannot be reset, the rise of the start-up's peak is what is left to read.
    let reset = reset_peak();
    let floor = if reset {
        before
    } else {
        status_bytes("VmHWM").unwrap_or(0).max(before)
    };
    let response = collector.send(&server, INTAKE_PATH, 1, body).await;
    let peak = status_bytes("VmHWM").unwrap_or(0);
    assert_eq!(response.status(), 200);
    let ack: IntakeAck = response.json().await.unwrap();
    assert_eq!(ack.stored as usize, events, "every event stored");
    // Linux only: without `/proc/self/status` there is nothing to measure, and a pass would
    // say nothing.
    assert!(peak > 0, "no VmHWM in /proc/self/status");
    (peak.saturating_sub(floor), reset)
}
