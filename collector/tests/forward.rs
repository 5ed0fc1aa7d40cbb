//! The forwarder against a real intake server on loopback (axum over hyper, plain HTTP and
//! TLS with a self-signed certificate): the server checks every signature with
//! `protocol::verify`, decodes every batch with `protocol::decode_batch`, and answers as the
//! test scripts it to (acknowledge, fail with a status, refuse, refuse once the test lets it,
//! or store and hang up).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use citysoc_collector::protocol::{self, IntakeAck, Rejection, Signed};
use citysoc_collector::{
    BufferConfig, DiskBuffer, Forwarder, ForwarderConfig, SyncPolicy, WhenFull,
};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;

const COLLECTOR: &str = "c-test";
const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// What the server does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Ack,
    Status(u16),
    Refuse,
    /// Says so on `Intake::holding`, waits for `Intake::release`, then refuses.
    HoldThenRefuse,
    StoreThenHangUp,
}

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    sequence: u64,
    ids: Vec<String>,
    reply: Reply,
}

#[derive(Default)]
struct Intake {
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Seen>>,
    /// Event ids stored, in order, duplicates included.
    stored: Mutex<Vec<String>>,
    bad_requests: AtomicU64,
    /// Event ids the server cannot read: a batch holding any of them is refused as `bad_body`,
    /// as the real intake refuses a record it cannot decode (`None`: every batch).
    unreadable: Mutex<Option<Vec<String>>>,
    /// Whether `unreadable` is in force.
    refuse_unreadable: std::sync::atomic::AtomicBool,
    /// Notified when a `HoldThenRefuse` request has arrived.
    holding: Notify,
    /// Lets a held request be refused.
    release: Notify,
}

impl Intake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn stored(&self) -> Vec<String> {
        self.stored.lock().unwrap().clone()
    }

    fn script(&self, replies: &[Reply]) {
        self.script.lock().unwrap().extend(replies.iter().copied());
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn intake(
    State(intake): State<Arc<Intake>>,
    Extension(hang_up): Extension<Arc<Notify>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = Signed {
        collector: header(&headers, protocol::HEADER_COLLECTOR),
        sequence: header(&headers, protocol::HEADER_SEQUENCE)
            .parse()
            .unwrap_or(0),
        time_ms: header(&headers, protocol::HEADER_TIME).parse().unwrap_or(0),
    };
    let signature = header(&headers, protocol::HEADER_SIGNATURE);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let valid = signed.collector == COLLECTOR
        && (now - signed.time_ms).abs() < protocol::MAX_CLOCK_SKEW_MS
        && protocol::verify(KEY, protocol::INTAKE_PATH, &signed, &body, &signature).is_ok()
        && protocol::verify_head(
            KEY,
            protocol::INTAKE_PATH,
            &signed,
            body.len() as u64,
            &header(&headers, protocol::HEADER_HEAD_SIGNATURE),
        )
        .is_ok();
    let Ok(events) = protocol::decode_batch(&body) else {
        intake.bad_requests.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !valid {
        intake.bad_requests.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let ids: Vec<String> = events.iter().map(|event| event.id.clone()).collect();
    if intake.refuse_unreadable.load(Ordering::Relaxed) {
        let unreadable = intake.unreadable.lock().unwrap().clone();
        let refused =
            unreadable.is_none_or(|unreadable| ids.iter().any(|id| unreadable.contains(id)));
        if refused {
            intake.seen.lock().unwrap().push(Seen {
                sequence: signed.sequence,
                ids,
                reply: Reply::Refuse,
            });
            return (
                StatusCode::BAD_REQUEST,
                Json(Rejection {
                    reason: "bad_body".into(),
                    message: "record 1: cannot be read by the test".into(),
                    last_acknowledged: None,
                }),
            )
                .into_response();
        }
    }
    let reply = intake
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Ack);
    intake.seen.lock().unwrap().push(Seen {
        sequence: signed.sequence,
        ids: ids.clone(),
        reply,
    });
    match reply {
        Reply::Ack | Reply::StoreThenHangUp => {
            intake.stored.lock().unwrap().extend(ids.iter().cloned());
            if reply == Reply::StoreThenHangUp {
                // Stored, and the answer never leaves: the connection is closed under it.
                hang_up.notify_one();
                std::future::pending::<()>().await;
            }
            Json(IntakeAck {
                sequence: signed.sequence,
                stored: ids.len() as u64,
                duplicates: 0,
            })
            .into_response()
        }
        Reply::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Reply::Refuse | Reply::HoldThenRefuse => {
            if reply == Reply::HoldThenRefuse {
                intake.holding.notify_one();
                intake.release.notified().await;
            }
            refusal()
        }
    }
}

fn refusal() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(Rejection {
            reason: "bad_batch".into(),
            message: "refused by the test".into(),
            last_acknowledged: None,
        }),
    )
        .into_response()
}

struct TestServer {
    address: SocketAddr,
    intake: Arc<Intake>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    intake: Arc<Intake>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> TestServer {
    let address = listener.local_addr().unwrap();
    let router = Router::new()
        .route(protocol::INTAKE_PATH, post(self::intake))
        .with_state(Arc::clone(&intake));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let hang_up = Arc::new(Notify::new());
            let service =
                TowerToHyperService::new(router.clone().layer(Extension(Arc::clone(&hang_up))));
            let tls = tls.clone();
            tokio::spawn(async move {
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        let Ok(stream) = acceptor.accept(stream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = builder.serve_connection(TokioIo::new(stream), service) => {}
                            () = hang_up.notified() => {}
                        }
                    }
                    None => {
                        tokio::select! {
                            _ = builder.serve_connection(TokioIo::new(stream), service) => {}
                            () = hang_up.notified() => {}
                        }
                    }
                }
            });
        }
    });
    TestServer {
        address,
        intake,
        task,
    }
}

async fn start_server() -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve(listener, Arc::new(Intake::default()), None).await
}

fn event_line(number: u64) -> Vec<u8> {
    format!(
        r#"{{"id":"event-{number:06}","timestamp":"2026-11-22T00:00:00Z","received_at":"2026-11-22T00:00:00Z","source":{{"transport":"udp"}},"format":"unknown","raw":"line {number:06}"}}"#
    )
    .into_bytes()
}

fn ids(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|number| format!("event-{number:06}")).collect()
}

fn open_buffer(dir: &Path, when_full: WhenFull, max_bytes: u64) -> Arc<DiskBuffer> {
    Arc::new(
        DiskBuffer::open(
            dir,
            BufferConfig {
                max_bytes,
                segment_bytes: 16 << 10,
                when_full,
                sync: SyncPolicy::EveryAppend,
            },
        )
        .unwrap(),
    )
}

/// A `drop_oldest` buffer with room for exactly 20 events (every test line has the same
/// length; 20 bytes of frame header each).
fn buffer_for_20_events(dir: &Path) -> Arc<DiskBuffer> {
    let frame = event_line(0).len() as u64 + 20;
    open_buffer(dir, WhenFull::DropOldest, frame * 20)
}

fn append(buffer: &DiskBuffer, range: std::ops::Range<u64>) {
    let records: Vec<Vec<u8>> = range.map(event_line).collect();
    buffer.append(&records, Duration::from_secs(5)).unwrap();
}

fn forwarder_config(url: String) -> ForwarderConfig {
    ForwarderConfig {
        batch_max_events: 10,
        batch_max_bytes: 1 << 20,
        linger: Duration::from_millis(20),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        ..ForwarderConfig::new(url, COLLECTOR, KEY.to_vec())
    }
}

/// Runs a forwarder with `config` until `buffer` is drained; its counters then.
async fn forward_until_drained(
    buffer: &Arc<DiskBuffer>,
    config: ForwarderConfig,
) -> citysoc_collector::ForwarderStatsSnapshot {
    let forwarder = Forwarder::start(Arc::clone(buffer), config).unwrap();
    wait_until("the buffer drains", Duration::from_secs(30), || {
        drained(buffer)
    })
    .await;
    let stats = forwarder.stats();
    forwarder.shutdown().await;
    stats.snapshot()
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn drained(buffer: &DiskBuffer) -> bool {
    buffer.stats().records == 0
}

/// A loopback address nothing listens on yet (the server comes up later in the test).
fn unused_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_arrive_signed_in_order_with_increasing_numbers() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..95);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{}", server.address)),
    )
    .unwrap();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    append(&buffer, 95..120);
    wait_until("the buffer drains again", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    let stats = forwarder.stats();
    forwarder.shutdown().await;
    let stats = stats.snapshot();

    assert_eq!(server.intake.stored(), ids(0..120));
    assert_eq!(server.intake.bad_requests.load(Ordering::Relaxed), 0);
    let seen = server.intake.seen();
    let sequences: Vec<u64> = seen.iter().map(|seen| seen.sequence).collect();
    assert_eq!(sequences, (1..=seen.len() as u64).collect::<Vec<_>>());
    assert!(seen.iter().all(|seen| seen.ids.len() <= 10));
    assert_eq!(stats.batches_acked, seen.len() as u64);
    assert_eq!(stats.batches_sent, seen.len() as u64);
    assert_eq!(stats.events_acked, 120);
    assert_eq!(stats.retries, 0);
    assert!(stats.last_ack_time_ms > 0);
    assert_eq!(
        buffer.next_sequence(),
        seen.len() as u64 + 1,
        "the next number is stored with the ack"
    );
    assert_eq!(buffer.stats().segments, 0, "delivered segments are deleted");
}

/// A batch never holds more than `batch_max_bytes` of records, except a record larger than
/// that on its own: the server's allowance of decoded values and paths per batch is sized on
/// the ceiling (record/budget.rs). Records of uneven sizes, all waiting when the forwarder
/// starts, so every batch is topped up to the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stop_before_the_byte_limit_whatever_the_record_sizes() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    let record = |number: u64| {
        // 140–1,400 bytes, and now and then one larger than a whole batch.
        let padding = if number % 17 == 5 {
            2_500
        } else {
            (number * 37 % 10) * 140
        };
        let mut line = event_line(number);
        let raw_end = line.len() - 2;
        line.splice(
            raw_end..raw_end,
            std::iter::repeat_n(b'x', padding as usize),
        );
        line
    };
    let records: Vec<Vec<u8>> = (0..200).map(record).collect();
    buffer.append(&records, Duration::from_secs(5)).unwrap();
    let size_of = |id: &str| {
        let number: usize = id.trim_start_matches("event-").parse().unwrap();
        records[number].len()
    };
    let max_bytes = 2_000;
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        ForwarderConfig {
            batch_max_events: 100,
            batch_max_bytes: max_bytes,
            linger: Duration::from_millis(200),
            ..forwarder_config(format!("http://{}", server.address))
        },
    )
    .unwrap();
    wait_until("the buffer drains", Duration::from_secs(30), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;

    assert_eq!(server.intake.stored(), ids(0..200));
    let seen = server.intake.seen();
    for batch in &seen {
        let bytes: usize = batch.ids.iter().map(|id| size_of(id)).sum();
        assert!(
            bytes <= max_bytes || batch.ids.len() == 1,
            "batch {} holds {bytes} bytes in {} records",
            batch.sequence,
            batch.ids.len()
        );
    }
    // Filled, not cut short: a batch ends where the next record would not fit.
    for pair in seen.windows(2) {
        let bytes: usize = pair[0].ids.iter().map(|id| size_of(id)).sum();
        let next = size_of(&pair[1].ids[0]);
        assert!(
            bytes + next > max_bytes,
            "batch {} stopped early",
            pair[0].sequence
        );
    }
}

/// Forwards `events` test events in batches of `batch_max_events` to a server that refuses,
/// as `bad_body`, every batch holding one of `unreadable` (all of them when `None`); the
/// server, the buffer's directory and the forwarder's counters once the buffer is drained.
async fn forward_to_a_server_refusing(
    unreadable: Option<Vec<String>>,
    events: u64,
    batch_max_events: usize,
) -> (
    TestServer,
    tempfile::TempDir,
    citysoc_collector::ForwarderStatsSnapshot,
) {
    let server = start_server().await;
    *server.intake.unreadable.lock().unwrap() = unreadable;
    server
        .intake
        .refuse_unreadable
        .store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..events);
    let stats = forward_until_drained(
        &buffer,
        ForwarderConfig {
            batch_max_events,
            ..forwarder_config(format!("http://{}", server.address))
        },
    )
    .await;
    (server, dir, stats)
}

/// One record the server cannot read costs only itself: its batch is refused, cut in halves
/// sent again under the same number, down to that record, which alone goes to `rejected/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_one_record_is_split_until_only_that_record_is_set_aside() {
    let (server, dir, stats) =
        forward_to_a_server_refusing(Some(vec!["event-000042".into()]), 100, 100).await;

    let mut expected = ids(0..100);
    expected.retain(|id| id != "event-000042");
    assert_eq!(
        server.intake.stored(),
        expected,
        "everything else, in order, once"
    );
    assert_eq!((stats.rejected_batches, stats.rejected_events), (1, 1));
    assert!(stats.split >= 6, "100 → 50 → 25 → … → 1: {stats:?}");
    let rejected: Vec<String> =
        std::fs::read_dir(dir.path().join(citysoc_collector::forward::REJECTED_DIR))
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default())
            .collect();
    assert!(
        rejected.iter().any(|text| text.contains("event-000042")),
        "{rejected:?}"
    );
    assert!(rejected.iter().all(|text| !text.contains("event-000041")));
    // Numbers still count up by one per batch that went through or was set aside.
    let seen = server.intake.seen();
    let acked: Vec<u64> = seen
        .iter()
        .filter(|seen| seen.reply == Reply::Ack)
        .map(|seen| seen.sequence)
        .collect();
    assert!(acked.windows(2).all(|pair| pair[0] < pair[1]), "{acked:?}");
}

/// When the server refuses every record, halving stops after a few single records and the
/// batches are set aside whole: fewer requests than records, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_everything_is_not_flooded_with_halves() {
    let (server, _dir, stats) = forward_to_a_server_refusing(None, 200, 20).await;
    assert!(server.intake.stored().is_empty());
    assert_eq!(stats.rejected_events, 200, "{stats:?}");
    assert!(
        stats.batches_sent < 40,
        "{} requests for 200 records: {stats:?}",
        stats.batches_sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_the_same_number_and_nothing_is_lost() {
    let server = start_server().await;
    server.intake.script(&[
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(500),
        Reply::Ack,
        Reply::Status(429),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..10);
    append(&buffer, 10..20);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{}", server.address)),
    )
    .unwrap();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    let stats = forwarder.stats();
    forwarder.shutdown().await;
    let stats = stats.snapshot();

    let seen = server.intake.seen();
    let summary: Vec<(u64, Reply)> = seen
        .iter()
        .map(|seen| (seen.sequence, seen.reply))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Reply::Status(503)),
            (1, Reply::Status(503)),
            (1, Reply::Status(500)),
            (1, Reply::Ack),
            (2, Reply::Status(429)),
            (2, Reply::Ack),
        ]
    );
    assert!(
        seen[..4].iter().all(|attempt| attempt.ids == ids(0..10)),
        "the same batch each time"
    );
    assert_eq!(server.intake.stored(), ids(0..20));
    assert_eq!(stats.retries, 4);
    assert_eq!(stats.batches_sent, 6);
    assert_eq!(stats.batches_acked, 2);
    assert!(stats.last_error.unwrap_or_default().contains("429"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_for_a_while_finds_everything_waiting() {
    // A port with nobody listening, then a server on it.
    let address = unused_address();
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{address}")),
    )
    .unwrap();
    let stats = forwarder.stats();
    for chunk in 0..10 {
        append(&buffer, chunk * 10..chunk * 10 + 10);
    }
    wait_until("some retries", Duration::from_secs(20), || {
        stats.snapshot().retries >= 5
    })
    .await;
    assert_eq!(
        buffer.stats().records,
        100,
        "the buffer holds everything while the server is down"
    );
    assert!(stats
        .snapshot()
        .last_error
        .unwrap_or_default()
        .contains("batch 1"));

    let listener = TcpListener::bind(address).await.unwrap();
    let server = serve(listener, Arc::new(Intake::default()), None).await;
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;
    assert_eq!(server.intake.stored(), ids(0..100));
    let sequences: Vec<u64> = server
        .intake
        .seen()
        .iter()
        .map(|seen| seen.sequence)
        .collect();
    assert_eq!(
        sequences,
        (1..=10).collect::<Vec<_>>(),
        "numbering starts where it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_resends_exactly_that_batch() {
    let server = start_server().await;
    server.intake.script(&[Reply::Ack, Reply::StoreThenHangUp]);
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..30);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{}", server.address)),
    )
    .unwrap();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    let stats = forwarder.stats();
    forwarder.shutdown().await;
    let stats = stats.snapshot();

    let seen = server.intake.seen();
    let summary: Vec<(u64, Reply)> = seen
        .iter()
        .map(|seen| (seen.sequence, seen.reply))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Reply::Ack),
            (2, Reply::StoreThenHangUp),
            (2, Reply::Ack),
            (3, Reply::Ack)
        ]
    );
    assert_eq!(seen[1].ids, ids(10..20));
    assert_eq!(
        seen[2].ids, seen[1].ids,
        "the same records under the same number"
    );
    // The server saw batch 2 twice: dropping the copy is its job (by event id).
    let mut expected = ids(0..20);
    expected.extend(ids(10..30));
    assert_eq!(server.intake.stored(), expected);
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.events_acked, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_flight_at_a_stop_goes_again_with_its_number_and_records() {
    let server = start_server().await;
    // The first attempt is stored but never answered; everything after fails until restart.
    server.intake.script(&[
        Reply::StoreThenHangUp,
        Reply::Status(503),
        Reply::Status(503),
        Reply::Status(503),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..5);
    let mut config = forwarder_config(format!("http://{}", server.address));
    config.retry_initial = Duration::from_millis(200);
    config.retry_max = Duration::from_millis(200);
    let forwarder = Forwarder::start(Arc::clone(&buffer), config.clone()).unwrap();
    wait_until("a retry", Duration::from_secs(20), || {
        server.intake.seen().len() >= 2
    })
    .await;
    forwarder.shutdown().await;
    assert_eq!(buffer.stats().records, 5, "nothing acknowledged");
    // More records arrive while the collector is down; the batch in flight must not grow.
    append(&buffer, 5..9);
    drop(buffer);

    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{}", server.address)),
    )
    .unwrap();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;
    let acked: Vec<(u64, Vec<String>)> = server
        .intake
        .seen()
        .into_iter()
        .filter(|seen| seen.reply == Reply::Ack)
        .map(|seen| (seen.sequence, seen.ids))
        .collect();
    assert_eq!(acked, vec![(1, ids(0..5)), (2, ids(5..9))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_is_saved_and_counted_and_the_next_ones_go_on() {
    let server = start_server().await;
    server.intake.script(&[Reply::Ack, Reply::Refuse]);
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..40);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{}", server.address)),
    )
    .unwrap();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    let stats = forwarder.stats();
    forwarder.shutdown().await;
    let stats = stats.snapshot();

    let summary: Vec<(u64, Reply)> = server
        .intake
        .seen()
        .iter()
        .map(|seen| (seen.sequence, seen.reply))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Reply::Ack),
            (2, Reply::Refuse),
            (3, Reply::Ack),
            (4, Reply::Ack)
        ]
    );
    let mut expected = ids(0..10);
    expected.extend(ids(20..40));
    assert_eq!(server.intake.stored(), expected);
    assert_eq!(
        (stats.rejected_batches, stats.rejected_events, stats.retries),
        (1, 10, 0)
    );

    let rejected = dir.path().join(citysoc_collector::forward::REJECTED_DIR);
    let events = std::fs::read_to_string(rejected.join(format!("{:020}-10-19.ndjson", 2))).unwrap();
    let lines: Vec<String> = events.lines().map(str::to_string).collect();
    let expected_lines: Vec<String> = (10..20)
        .map(|n| String::from_utf8(event_line(n)).unwrap())
        .collect();
    assert_eq!(lines, expected_lines);
    let reason: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(rejected.join(format!("{:020}-10-19.rejection.json", 2))).unwrap(),
    )
    .unwrap();
    assert_eq!(reason["status"], 400);
    assert_eq!(reason["reason"], "bad_batch");
    assert_eq!(reason["events"], 10);
    assert_eq!(reason["dropped_before_saving"], 0);
}

/// `drop_oldest` takes every record of a batch while the server is deciding to refuse it: there
/// is nothing left to save, so no (empty) events file; the reason is kept, and the events are
/// counted as dropped before delivery, not as saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_that_drop_oldest_emptied_keeps_only_its_reason() {
    let server = start_server().await;
    server.intake.script(&[Reply::HoldThenRefuse]);
    let dir = tempfile::tempdir().unwrap();
    let buffer = buffer_for_20_events(dir.path());
    append(&buffer, 0..10);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{}", server.address)),
    )
    .unwrap();
    let stats = forwarder.stats();
    tokio::time::timeout(Duration::from_secs(20), server.intake.holding.notified())
        .await
        .expect("the first batch reaches the server");
    // 20 more while the server holds its answer: the whole waiting batch makes room.
    append(&buffer, 10..30);
    assert_eq!(buffer.stats().dropped, 10);
    server.intake.release.notify_one();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;
    let stats = stats.snapshot();
    assert_eq!(
        (
            stats.rejected_batches,
            stats.rejected_events,
            stats.dropped_before_delivery
        ),
        (1, 0, 10),
        "{stats:?}"
    );
    assert_eq!(server.intake.stored(), ids(10..30));
    // Neither stored nor saved: still dropped (a stored batch would take them back out).
    assert_eq!(buffer.stats().dropped, 10);

    let rejected = dir.path().join(citysoc_collector::forward::REJECTED_DIR);
    let mut files: Vec<String> = std::fs::read_dir(&rejected)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let stem = format!("{:020}-0-9", 1);
    assert_eq!(files, [format!("{stem}.rejection.json")]);
    let reason: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(rejected.join(format!("{stem}.rejection.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(reason["events"], 0);
    assert_eq!(reason["dropped_before_saving"], 10);
    assert_eq!(
        (
            reason["first_offset"].clone(),
            reason["last_offset"].clone()
        ),
        (0.into(), 9.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_while_the_server_is_down_counts_exactly_what_never_arrives() {
    let address = unused_address();
    let dir = tempfile::tempdir().unwrap();
    let buffer = buffer_for_20_events(dir.path());
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{address}")),
    )
    .unwrap();
    let stats = forwarder.stats();
    append(&buffer, 0..10);
    wait_until("a batch is in flight", Duration::from_secs(20), || {
        stats.snapshot().retries >= 2
    })
    .await;
    for chunk in 1..10 {
        append(&buffer, chunk * 10..chunk * 10 + 10);
    }
    assert_eq!(buffer.stats().dropped, 80);

    let listener = TcpListener::bind(address).await.unwrap();
    let server = serve(listener, Arc::new(Intake::default()), None).await;
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;
    let forwarder_stats = stats.snapshot();
    let stored = server.intake.stored();
    let dropped = buffer.stats().dropped;
    // The newest survive, the oldest are gone; a batch already on the wire when its records
    // were dropped may still arrive, and then they are not counted as dropped.
    let mut unique = stored.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "nothing twice: {stored:?}");
    assert_eq!(
        stored[stored.len() - 20..],
        ids(80..100),
        "{forwarder_stats:?}"
    );
    assert_eq!(
        stored.len() as u64 + dropped,
        100,
        "delivered + dropped = appended"
    );
    assert!(
        (70..=80).contains(&dropped) && forwarder_stats.dropped_before_delivery >= 10,
        "{forwarder_stats:?}"
    );
}

/// The forwarder keeps only a waiting batch's body and offsets across retries: when
/// `drop_oldest` takes part of the batch, the rest is read again from the buffer, and exactly
/// that goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_partly_dropped_while_waiting_sends_exactly_what_is_left() {
    let address = unused_address();
    let dir = tempfile::tempdir().unwrap();
    let buffer = buffer_for_20_events(dir.path());
    append(&buffer, 0..10);
    let forwarder = Forwarder::start(
        Arc::clone(&buffer),
        forwarder_config(format!("http://{address}")),
    )
    .unwrap();
    let stats = forwarder.stats();
    wait_until(
        "the batch of 0..10 is retried",
        Duration::from_secs(20),
        || stats.snapshot().retries >= 2,
    )
    .await;
    // 15 more: the 5 oldest, half of the waiting batch, make room.
    append(&buffer, 10..25);
    assert_eq!(buffer.stats().dropped, 5);

    let listener = TcpListener::bind(address).await.unwrap();
    let server = serve(listener, Arc::new(Intake::default()), None).await;
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;
    let forwarder_stats = stats.snapshot();
    assert_eq!(server.intake.stored(), ids(5..25), "{forwarder_stats:?}");
    assert_eq!(forwarder_stats.dropped_before_delivery, 5);
    assert_eq!(forwarder_stats.events_acked, 20);
    assert_eq!(buffer.stats().dropped, 5);
    let sequences: Vec<u64> = server
        .intake
        .seen()
        .iter()
        .map(|seen| seen.sequence)
        .collect();
    assert_eq!(sequences.first(), Some(&1), "{sequences:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_certificate_and_its_ca_file() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("server-ca.pem");
    std::fs::write(&ca_file, certified.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = serve(
        listener,
        Arc::new(Intake::default()),
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))),
    )
    .await;
    let url = format!("https://localhost:{}", server.address.port());

    // Without the CA file the server is not trusted: nothing is sent, the error says why.
    let untrusted_dir = tempfile::tempdir().unwrap();
    let untrusted = open_buffer(untrusted_dir.path(), WhenFull::Block, 1 << 20);
    append(&untrusted, 0..5);
    let forwarder =
        Forwarder::start(Arc::clone(&untrusted), forwarder_config(url.clone())).unwrap();
    let stats = forwarder.stats();
    wait_until("a failed attempt", Duration::from_secs(20), || {
        stats.snapshot().retries >= 1
    })
    .await;
    forwarder.shutdown().await;
    let error = stats.snapshot().last_error.unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(server.intake.seen().is_empty());
    assert_eq!(untrusted.stats().records, 5);

    let buffer = open_buffer(&dir.path().join("buffer"), WhenFull::Block, 1 << 20);
    append(&buffer, 0..25);
    let mut config = forwarder_config(url);
    config.ca_file = Some(ca_file);
    let forwarder = Forwarder::start(Arc::clone(&buffer), config).unwrap();
    wait_until("the buffer drains", Duration::from_secs(20), || {
        drained(&buffer)
    })
    .await;
    forwarder.shutdown().await;
    assert_eq!(server.intake.stored(), ids(0..25));
    assert_eq!(server.intake.bad_requests.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_while_waiting_to_retry() {
    let address = unused_address();
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    append(&buffer, 0..3);
    let mut config = forwarder_config(format!("http://{address}"));
    config.retry_initial = Duration::from_secs(30);
    config.retry_max = Duration::from_secs(30);
    let forwarder = Forwarder::start(Arc::clone(&buffer), config).unwrap();
    let stats = forwarder.stats();
    wait_until("a failed attempt", Duration::from_secs(20), || {
        stats.snapshot().retries >= 1
    })
    .await;
    let started = Instant::now();
    forwarder.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(buffer.stats().records, 3);
}

#[test]
fn settings_are_checked_with_every_problem_listed() {
    let mut config = ForwarderConfig::new("http://soc.example.vn", "", Vec::new());
    config.batch_max_events = 0;
    config.ca_file = Some("/nonexistent/ca.pem".into());
    let error = config.validate().unwrap_err().to_string();
    for expected in [
        "plain http",
        "collector id",
        "key is empty",
        "batch_max_events",
        "ca.pem",
    ] {
        assert!(
            error.contains(expected),
            "`{expected}` missing from: {error}"
        );
    }
    assert!(
        !format!("{config:?}").contains("0123"),
        "the key never shows in logs"
    );
    let good = ForwarderConfig::new("https://soc.example.vn", "c-1", KEY.to_vec());
    good.validate().unwrap();
    assert!(!format!("{good:?}").contains("0123456789"));
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = open_buffer(dir.path(), WhenFull::Block, 1 << 20);
    let error =
        Forwarder::start(buffer, forwarder_config("http://127.0.0.1:9".into())).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}
