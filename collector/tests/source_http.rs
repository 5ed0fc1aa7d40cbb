//! HTTP intake with a real HTTP/1.1 client over loopback: NDJSON and JSON arrays (plain,
//! gzip, zstd), the Elasticsearch bulk API Beats use, refusals (413, 415, 400, 408) counted,
//! and a 503 when the pipeline stays full or every request place stays taken.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use citysoc_collector::metrics::SourceErrorKind;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP_SOURCE: &str = r#"
[[source]]
name = "agents"
type = "http"
listen = "127.0.0.1:0"
max_body = "64 KiB"
"#;

/// One request with `Connection: close`; returns the status and the body.
async fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading the whole body.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A POST of `body` gzipped, as Beats, Vector and Fluent Bit send.
async fn post_gzip(address: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    request(
        address,
        "POST",
        path,
        &[("Content-Encoding", "gzip")],
        &gzip(body),
    )
    .await
}

/// Requests the `agents` source refused (counted as `http_request` errors).
fn refused_requests(harness: &Harness) -> u64 {
    harness
        .collector
        .metrics()
        .source("agents")
        .unwrap()
        .errors(SourceErrorKind::HttpRequest)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const SYSMON: &str = r#"{"@timestamp":"2026-11-22T03:15:00.000Z","winlog":{"channel":"Microsoft-Windows-Sysmon/Operational","event_id":1,"computer_name":"pc-ketoan-01","event_data":{"Image":"C:\\Windows\\System32\\cmd.exe","CommandLine":"cmd.exe /c whoami"}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_and_gzipped_or_zstd_json_arrays_are_taken_whole() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), HTTP_SOURCE).await;
    let address = harness.address("agents");

    // Fluent Bit `format json_lines`, uncompressed.
    let ndjson =
        format!("{SYSMON}\n{{\"message\":\"second\",\"host\":{{\"name\":\"srv-01\"}}}}\n\n");
    let (status, body) = request(
        address,
        "POST",
        "/",
        &[("Content-Type", "application/x-ndjson")],
        ndjson.as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"accepted\":2,\"events\":2}")
    );

    // Vector `codec = "json"` as an array, gzip (on a path of the agent's choosing).
    let array =
        format!("[{SYSMON},\n {{\"message\":\"array two\"}}, {{\"message\":\"array three\"}}]");
    let (status, _) = post_gzip(address, "/vector/logs", array.as_bytes()).await;
    assert_eq!(status, 200);

    // zstd NDJSON.
    let zstd = zstd::encode_all("{\"message\":\"zstd one\"}\n".as_bytes(), 3).unwrap();
    let (status, _) = request(
        address,
        "POST",
        "/ingest",
        &[("Content-Encoding", "zstd")],
        &zstd,
    )
    .await;
    assert_eq!(status, 200);

    // NXLog om_http posting one pretty-printed document.
    let pretty = "{\n  \"message\": \"pretty\",\n  \"EventID\": 4625\n}\n";
    let (status, _) = request(address, "POST", "/", &[], pretty.as_bytes()).await;
    assert_eq!(status, 200);

    harness.wait_for_events("agents", 7).await;
    let events = harness.stop().await;
    assert_eq!(events.len(), 7);
    assert_eq!(events[0]["format"], "winevent");
    assert_eq!(events[0]["process.command_line"], "cmd.exe /c whoami");
    assert_eq!(events[0]["raw"], SYSMON);
    assert_eq!(events[0]["source"]["transport"], "http");
    assert_eq!(events[0]["agency"], "quan-1");
    assert_eq!(
        events[2]["raw"], SYSMON,
        "array elements keep their exact bytes"
    );
    assert_eq!(events[3]["message"], "array two");
    assert_eq!(events[5]["message"], "zstd one");
    assert_eq!(events[6]["message"], "pretty");
    let ids: std::collections::HashSet<_> =
        events.iter().map(|event| event["id"].clone()).collect();
    assert_eq!(ids.len(), 7, "the same document posted twice is two events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beats_talk_to_it_as_to_elasticsearch() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), HTTP_SOURCE).await;
    let address = harness.address("agents");
    let (status, info) = request(address, "GET", "/", &[], b"").await;
    assert_eq!(status, 200);
    assert!(info.contains("\"number\":\"8."), "{info}");
    let bulk = format!(
        "{{\"create\":{{\"_index\":\"winlogbeat-8.17.0\"}}}}\n{SYSMON}\n{{\"index\":{{}}}}\n{{\"message\":\"second\"}}\n{{\"delete\":{{\"_id\":\"x\"}}}}\n"
    );
    let (status, answer) = post_gzip(address, "/_bulk", bulk.as_bytes()).await;
    assert_eq!(status, 200);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["errors"], false);
    assert_eq!(answer["items"].as_array().unwrap().len(), 3);
    assert_eq!(answer["items"][0]["create"]["status"], 201);
    let (status, _) = request(
        address,
        "POST",
        "/winlogbeat-8.17.0/_bulk",
        &[],
        format!("{{\"create\":{{}}}}\n{SYSMON}\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    // Plain NDJSON posted to `_bulk`: documents whose first key is an action's name are
    // documents all the same (an action line is one member whose value is an object).
    let documents = "{\"index\":\"web-01\",\"message\":\"a\"}\n{\"delete\":{\"path\":\"/tmp/x\"},\"user\":\"b\"}\n{\"update\":3}\n";
    let (status, _) = request(address, "POST", "/_bulk", &[], documents.as_bytes()).await;
    assert_eq!(status, 200);
    harness.wait_for_events("agents", 6).await;
    let events = harness.stop().await;
    let mut expected = vec![SYSMON, "{\"message\":\"second\"}", SYSMON];
    expected.extend(documents.lines());
    assert_eq!(raws(&events), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_a_reason_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), HTTP_SOURCE).await;
    let address = harness.address("agents");
    let (status, _) = request(address, "POST", "/", &[], &vec![b'x'; 100 * 1024]).await;
    assert_eq!(status, 413);
    let (status, body) = request(address, "POST", "/", &[("Content-Encoding", "br")], b"x").await;
    assert_eq!(status, 415);
    assert!(body.contains("br"), "{body}");
    let (status, _) = request(
        address,
        "POST",
        "/",
        &[("Content-Encoding", "gzip")],
        b"not gzip",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = post_gzip(address, "/", &vec![b'{'; 2 << 20]).await;
    assert_eq!(status, 413, "decompressed size is bounded too");
    let (status, _) = request(address, "GET", "/anything", &[], b"").await;
    assert_eq!(status, 404);
    assert_eq!(refused_requests(&harness), 4);
    assert!(harness.stop().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_answers_503_and_the_agent_can_retry() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    // Places for every request below, so that the pipeline is what refuses.
    let sources = format!("{HTTP_SOURCE}max_requests = 64\n");
    let collector = start_with_sink(dir.path(), &sources, sink.clone()).await;
    let address = collector.local_address("agents").unwrap();
    // One request is taken by the blocked sink, CHANNEL_BATCHES wait in the pipeline; the one
    // after waits for room, then is refused.
    let waiting = citysoc_collector::pipeline::CHANNEL_BATCHES + 1;
    let mut requests = Vec::new();
    for index in 0..waiting {
        requests.push(tokio::spawn(async move {
            request(
                address,
                "POST",
                "/",
                &[],
                format!("{{\"n\":{index}}}\n").as_bytes(),
            )
            .await
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = request(address, "POST", "/", &[], b"{\"n\":\"late\"}\n").await;
    assert_eq!(status, 503, "{body}");
    let metrics = collector.metrics();
    assert_eq!(
        metrics
            .source("agents")
            .unwrap()
            .errors(SourceErrorKind::HttpBusy),
        1
    );
    sink.open();
    for request in requests {
        assert_eq!(request.await.unwrap().0, 200);
    }
    let (status, _) = request(address, "POST", "/", &[], b"{\"n\":\"late\"}\n").await;
    assert_eq!(status, 200, "the retry is taken");
    collector.stop().await;
    assert_eq!(sink.line_count(), waiting + 1);
    // The refused request is not counted in: in = out, the refusal is an error.
    let source = metrics.source("agents").unwrap();
    assert_eq!(
        (source.records_in(), source.events_out()),
        (waiting as u64 + 1, waiting as u64 + 1)
    );
}

/// A request is decompressed and decoded only in one of `max_requests` places, which it holds
/// until its records are encoded (a request larger than the pipeline, sent in parts, holds it
/// while its parts wait for the sink). One that waits too long for a place is answered 503
/// (counted as busy, not taken in), one whose place frees in time is served, and the agent's
/// retry of the refused one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_max_requests_wait_for_a_place_or_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    let _open_if_failing = sink.opened_on_drop();
    let sources = format!(
        "{}max_requests = 1\n",
        HTTP_SOURCE.replace("64 KiB", "1 MiB")
    );
    let mut config = config(dir.path(), &sources);
    config.collector.queue_max_bytes = citysoc_collector::pipeline::MIN_QUEUE_BYTES;
    let collector =
        citysoc_collector::RunningCollector::start(&config, identity(&config), sink.clone())
            .await
            .unwrap();
    let address = collector.local_address("agents").unwrap();
    let large: String = (0..5_000)
        .map(|n| format!("{{\"message\":\"record {n} of a large post\",\"n\":{n}}}\n"))
        .collect();
    let first = tokio::spawn(async move { post_gzip(address, "/", large.as_bytes()).await });
    // Its first part is in the sink, held: the request holds the only place meanwhile.
    sink.wait_for_writes(1).await;
    let (status, body) = request(address, "POST", "/", &[], b"{\"n\":\"small\"}\n").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("max_requests"), "{body}");
    let metrics = collector.metrics();
    let busy = || {
        metrics
            .source("agents")
            .unwrap()
            .errors(SourceErrorKind::HttpBusy)
    };
    assert_eq!(busy(), 1);
    // From before the spawn: the place comes free 500 ms after it, however late the task
    // starts.
    let started = std::time::Instant::now();
    let retry = tokio::spawn(async move {
        let (status, _) = request(address, "POST", "/", &[], b"{\"n\":\"small\"}\n").await;
        (status, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.open();
    assert_eq!(
        first.await.unwrap(),
        (200, "{\"accepted\":5000,\"events\":5000}".to_owned())
    );
    let (status, waited) = retry.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(450),
        "the retry waited for the place: answered after {waited:?}"
    );
    assert_eq!(busy(), 1);
    collector.stop().await;
    assert_eq!(sink.line_count(), 5_001);
    let source = metrics.source("agents").unwrap();
    assert_eq!((source.records_in(), source.events_out()), (5_001, 5_001));
}

/// A request gives its place back once its records are encoded: one waiting for a sink that
/// is slow to confirm (a full buffer) does not keep other agents' requests from being read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_the_sink_holds_no_place() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    let _open_if_failing = sink.opened_on_drop();
    let sources = format!("{HTTP_SOURCE}max_requests = 1\n");
    let collector = start_with_sink(dir.path(), &sources, sink.clone()).await;
    let address = collector.local_address("agents").unwrap();
    let mut waiting = Vec::new();
    for n in 0..3 {
        waiting.push(tokio::spawn(async move {
            request(
                address,
                "POST",
                "/",
                &[],
                format!("{{\"n\":{n}}}\n").as_bytes(),
            )
            .await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sink.wait_for_writes(1).await;
    let metrics = collector.metrics();
    let source = metrics.source("agents").unwrap().clone();
    // A request's bytes are counted in once it has a place: all three had it in turn, well
    // before a request would give up waiting for it (5 s), with the sink still closed.
    let bodies = 3 * b"{\"n\":0}\n".len() as u64;
    assert!(
        wait_until(Duration::from_secs(3), || source.bytes_in() == bodies).await,
        "{} bytes in",
        source.bytes_in()
    );
    assert_eq!(source.errors(SourceErrorKind::HttpBusy), 0);
    sink.open();
    for request in waiting {
        assert_eq!(request.await.unwrap().0, 200);
    }
    collector.stop().await;
    assert_eq!(sink.line_count(), 3);
}

/// A client that goes away while the sink has not confirmed its request yet: its records
/// were taken by the pipeline and are stored, and they are counted in, so `records_in` and
/// `events_out` still agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_client_gone_before_the_answer_are_counted_in() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    let _open_if_failing = sink.opened_on_drop();
    let collector = start_with_sink(dir.path(), HTTP_SOURCE, sink.clone()).await;
    let address = collector.local_address("agents").unwrap();
    let mut client = TcpStream::connect(address).await.unwrap();
    let body = b"{\"n\":1}\n{\"n\":2}\n";
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    client.write_all(body).await.unwrap();
    sink.wait_for_writes(1).await;
    drop(client);
    let metrics = collector.metrics();
    let source = metrics.source("agents").unwrap().clone();
    assert!(wait_until(Duration::from_secs(5), || source.records_in() == 2).await);
    sink.open();
    collector.stop().await;
    assert_eq!(sink.line_count(), 2);
    assert_eq!((source.records_in(), source.events_out()), (2, 2));
}

/// Bodies arriving at once are bounded together in bytes, charged as they arrive: with
/// `max_body` 64 KiB and one place there is room for 256 KiB of bodies. While four requests
/// hold 63 KiB each (sent, the rest of their bodies not), a request whose body does not fit the
/// rest gets 503 at once (counted as busy); once one of them goes away, the agent's retry is
/// taken. A declared `Content-Length` alone costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_arriving_at_once_are_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!("{HTTP_SOURCE}max_requests = 1\n");
    let harness = start_in(dir.path(), &sources).await;
    let address = harness.address("agents");
    let source = harness.source_metrics("agents");
    // Declared only: no room taken.
    let mut declared = TcpStream::connect(address).await.unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: 65536\r\n\r\n");
    declared.write_all(head.as_bytes()).await.unwrap();
    let sent = 63 * 1024;
    let mut trickling = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b' '; sent]).await.unwrap();
        trickling.push(stream);
    }
    let held = |bytes: usize| {
        let source = source.clone();
        move || source.http_body_bytes() == bytes as u64
    };
    assert!(
        wait_until(Duration::from_secs(10), held(4 * sent)).await,
        "{} bytes held",
        source.http_body_bytes()
    );
    let line = format!("{{\"n\":\"{}\"}}\n", "x".repeat(8 * 1024));
    let (status, body) = request(address, "POST", "/", &[], line.as_bytes()).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("request bodies"), "{body}");
    assert_eq!(source.errors(SourceErrorKind::HttpBusy), 1);
    drop(trickling.pop());
    assert!(
        wait_until(Duration::from_secs(10), held(3 * sent)).await,
        "{} bytes held",
        source.http_body_bytes()
    );
    let (status, body) = request(address, "POST", "/", &[], line.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    drop((trickling, declared));
    assert!(wait_until(Duration::from_secs(10), held(0)).await);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec![line.trim_end().to_owned()]);
}

/// A body that does not arrive within `body_timeout_ms` is answered 408 and counted; while it
/// trickles in it holds no request place, so other agents are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_slow_to_arrive_is_answered_408_without_holding_a_place() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!("{HTTP_SOURCE}max_requests = 1\nbody_timeout_ms = 5000\n");
    let harness = start_in(dir.path(), &sources).await;
    let address = harness.address("agents");
    let slow = tokio::spawn(async move {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!("POST / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{{\"n\":");
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        (
            String::from_utf8_lossy(&response).into_owned(),
            started.elapsed(),
        )
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = request(address, "POST", "/", &[], b"{\"n\":1}\n").await;
    assert_eq!(status, 200, "the slow body holds no place: {body}");
    assert!(
        !slow.is_finished(),
        "the other request was served while the slow body was still arriving"
    );
    let (response, waited) = slow.await.unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("body_timeout_ms"), "{response}");
    assert!(
        waited >= Duration::from_millis(4000),
        "answered after {waited:?}"
    );
    assert_eq!(refused_requests(&harness), 1);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec!["{\"n\":1}"]);
}

/// An NDJSON line longer than the source's `max_frame` (here the largest one event may carry,
/// 4 MiB, `framing::MAX_MAX_FRAME`) is kept in flagged pieces, byte-exact and unparsed, and
/// the lines around it are parsed as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_too_long_for_any_batch_is_kept_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let source = HTTP_SOURCE.replace("64 KiB", "2 MiB") + "max_frame = \"4 MiB\"\n";
    let harness = start_in(dir.path(), &source).await;
    let address = harness.address("agents");
    let long = format!(r#"{{"message":"{}"}}"#, "ệ".repeat(2_000_000));
    let body = format!("{{\"message\":\"before\"}}\n{long}\n{{\"message\":\"after\"}}\n");
    let (status, _) = request(
        address,
        "POST",
        "/",
        &[("Content-Encoding", "zstd")],
        &zstd::encode_all(body.as_bytes(), 3).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    harness.wait_for_events("agents", 4).await;
    let events = harness.stop().await;
    let formats: Vec<&str> = events
        .iter()
        .map(|event| event["format"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(formats, ["json", "unknown", "unknown", "json"]);
    let joined: String = events[1..3]
        .iter()
        .map(|event| event["raw"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(joined, long, "the pieces are the line, byte for byte");
    assert_eq!(events[1]["fields"]["fragment_index"], 1);
    assert_eq!(events[2]["fields"]["fragment_last"], true);
    let message = events[2]["parse_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("piece 2 (the last)"), "{message}");
    assert_eq!(events[3]["message"], "after");
}

/// A line over `max_frame` (1 MiB for HTTP sources by default) is not parsed at all: a JSON
/// array of a million numbers, 2 MB as text and a few kilobytes gzipped, would be tens of
/// megabytes of values. It is kept in pieces, counted, and the record numbers of the request
/// and the next one do not collide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_max_frame_is_kept_raw_in_pieces_without_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let source = HTTP_SOURCE.replace("64 KiB", "1 MiB");
    let harness = start_in(dir.path(), &source).await;
    let address = harness.address("agents");
    let numbers = vec!["0"; 1_000_000].join(",");
    let long = format!(r#"{{"a":[{numbers}]}}"#);
    assert!((1 << 20..2 << 20).contains(&long.len()), "two pieces");
    let body = format!("{long}\n{{\"message\":\"after\"}}\n");
    let (status, _) = post_gzip(address, "/", body.as_bytes()).await;
    assert_eq!(status, 200);
    let (status, _) = request(address, "POST", "/", &[], b"{\"message\":\"next\"}\n").await;
    assert_eq!(status, 200);
    let metrics = harness.source_metrics("agents");
    assert_eq!(metrics.fragments(), 2);
    let events = harness.stop().await;
    let formats: Vec<&str> = events
        .iter()
        .map(|event| event["format"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(formats, ["unknown", "unknown", "json", "json"]);
    let joined: String = events[..2]
        .iter()
        .map(|event| event["raw"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(joined, long, "the pieces are the line, byte for byte");
    assert_eq!(events[0]["raw"].as_str().unwrap_or_default().len(), 1 << 20);
    assert_eq!(events[1]["fields"]["fragment_last"], true);
    let sequences: Vec<u64> = events
        .iter()
        .map(|event| event["source"]["sequence"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(sequences[1], sequences[0] + 1);
    assert_eq!(sequences[2], sequences[1] + 1);
    assert!(sequences[3] > sequences[2], "{sequences:?}");
}

/// A JSON document spread over many lines of one request is held to the source's
/// `max_frame` as a single line is: the lines held when the next would pass it are kept raw
/// as one unparsed event, the rest are read one by one (nothing lost), and a document within
/// it parses whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_over_many_lines_is_held_to_max_frame() {
    let dir = tempfile::tempdir().unwrap();
    let source = HTTP_SOURCE.to_owned() + "max_frame = \"4 KiB\"\n";
    let harness = start_in(dir.path(), &source).await;
    let address = harness.address("agents");
    let short_lines = (0..200)
        .map(|index| format!("  \"key{index}\": \"value {index}\","))
        .collect::<Vec<_>>()
        .join("\n");
    let long = format!("{{\n{short_lines}\n  \"last\": 1\n}}");
    assert!(long.len() > 4096 && long.lines().all(|line| line.len() < 100));
    let small = "{\n  \"message\": \"pretty\",\n  \"n\": 2\n}";
    let body = format!("{long}\n{small}\n{{\"message\":\"after\"}}\n");
    let (status, _) = request(address, "POST", "/", &[], body.as_bytes()).await;
    assert_eq!(status, 200);
    let events = harness.stop().await;
    let first = &events[0];
    assert_eq!(first["format"], "unknown");
    let error = first["parse_error"]["message"].as_str().unwrap_or_default();
    assert!(error.contains("longer than 4096 bytes"), "{error}");
    let raw = first["raw"].as_str().unwrap_or_default();
    assert!(
        (4000..=4096).contains(&raw.len()) && long.starts_with(raw),
        "the lines held up to max_frame, byte for byte"
    );
    // The lines after the cut are read one by one: the events' raw texts, in order and
    // joined as the lines were, are the body.
    let joined = events
        .iter()
        .map(|event| event["raw"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(joined + "\n", body, "nothing lost");
    let pretty = events
        .iter()
        .find(|event| event["message"] == "pretty")
        .unwrap_or_else(|| panic!("the small document parsed: {events:?}"));
    assert_eq!(pretty["format"], "json");
    assert_eq!(
        events.last().map(|event| &event["message"]),
        Some(&serde_json::json!("after"))
    );
}

/// A request whose events outgrow what the pipeline may hold (`queue_max_bytes`) goes to the
/// sink in parts as it is decoded (its memory stays within that bound); every record arrives,
/// in order, and is counted in once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_pipeline_goes_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let source = HTTP_SOURCE.replace("64 KiB", "1 MiB");
    let mut config = config(dir.path(), &source);
    config.collector.queue_max_bytes = citysoc_collector::pipeline::MIN_QUEUE_BYTES;
    let archive = config.archive.as_ref().unwrap().path.clone();
    let sink =
        std::sync::Arc::new(citysoc_collector::NdjsonFileSink::open(&archive, 1 << 30).unwrap());
    let collector = citysoc_collector::RunningCollector::start(&config, identity(&config), sink)
        .await
        .unwrap();
    let harness = Harness {
        collector,
        dir: dir.path().to_owned(),
        archive,
    };
    let address = harness.address("agents");
    let records = 20_000;
    let body: String = (0..records)
        .map(|n| format!("{{\"message\":\"record {n} of a large post\",\"n\":{n}}}\n"))
        .collect();
    assert!(body.len() > 2 * citysoc_collector::pipeline::MIN_QUEUE_BYTES);
    let (status, answer) = post_gzip(address, "/", body.as_bytes()).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, "{\"accepted\":20000,\"events\":20000}")
    );
    let metrics = harness.collector.metrics();
    let source = metrics.source("agents").unwrap().clone();
    // In parts: one batch would have been a single sink write.
    let writes = metrics
        .sink
        .writes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(writes >= 4, "{writes} sink writes");
    let events = harness.stop().await;
    let numbers: Vec<u64> = events
        .iter()
        .map(|event| event["fields"]["n"].as_u64().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(numbers, (0..records).collect::<Vec<u64>>());
    assert_eq!(
        (source.records_in(), source.events_out()),
        (records, records)
    );
}

/// More records in one request than the intake takes (a million): refused with a reason
/// before any is decoded, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_over_a_million_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &HTTP_SOURCE.replace("64 KiB", "1 MiB")).await;
    let address = harness.address("agents");
    let lines = b"x\n".repeat(1_000_001);
    for path in ["/", "/_bulk"] {
        let (status, body) = post_gzip(address, path, &lines).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert!(body.contains("1000000 records"), "{body}");
    }
    let (status, _) = post_gzip(address, "/", &b"x\n".repeat(1_000)).await;
    assert_eq!(status, 200);
    assert_eq!(refused_requests(&harness), 2);
    harness.wait_for_events("agents", 1_000).await;
    assert_eq!(harness.stop().await.len(), 1_000);
}

/// Agents keep their connections open between requests: past `max_connections` a new one is
/// closed at once and counted, and a slot comes free when a connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_max_connections_are_refused_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!("{HTTP_SOURCE}max_connections = 2\n");
    let harness = start_in(dir.path(), &sources).await;
    let address = harness.address("agents");
    let metrics = harness.source_metrics("agents");

    let mut kept_open = TcpStream::connect(address).await.unwrap();
    let host = address.to_string();
    let response = post_kept_open(&mut kept_open, &host, b"{\"n\":1}\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let idle = TcpStream::connect(address).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 2).await);

    // A third: closed before anything is read (the write may already fail).
    let mut refused = TcpStream::connect(address).await.unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: 8\r\n\r\n");
    let _ = refused.write_all(head.as_bytes()).await;
    let _ = refused.write_all(b"{\"n\":2}\n").await;
    let mut answer = Vec::new();
    let _ = refused.read_to_end(&mut answer).await;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert_eq!(metrics.errors(SourceErrorKind::TooManyConnections), 1);

    drop(kept_open);
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 1).await);
    let (status, body) = request(address, "POST", "/", &[], b"{\"n\":3}\n").await;
    assert_eq!(status, 200, "{body}");
    drop(idle);
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 0).await);
    assert_eq!(metrics.errors(SourceErrorKind::TooManyConnections), 1);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec!["{\"n\":1}", "{\"n\":3}"]);
}

/// A connection that sends no request head within `head_timeout_ms` is closed: one that
/// opens and says nothing, and a kept-alive one after its response. So idle sockets cannot
/// hold every slot and lock agents out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_sending_no_request_are_closed_after_head_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sources = format!("{HTTP_SOURCE}max_connections = 1\nhead_timeout_ms = 1000\n");
    let harness = start_in(dir.path(), &sources).await;
    let address = harness.address("agents");
    let metrics = harness.source_metrics("agents");

    // From before the connection: the server's wait for a head starts after it.
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(address).await.unwrap();
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 1).await);
    let mut answer = Vec::new();
    let _ = silent.read_to_end(&mut answer).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 0).await);

    let mut kept_open = TcpStream::connect(address).await.unwrap();
    let host = address.to_string();
    let response = post_kept_open(&mut kept_open, &host, b"{\"n\":1}\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let mut rest = Vec::new();
    let _ = kept_open.read_to_end(&mut rest).await;
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 0).await);

    let (status, body) = request(address, "POST", "/", &[], b"{\"n\":2}\n").await;
    assert_eq!(status, 200, "the slots came free: {body}");
    assert_eq!(metrics.errors(SourceErrorKind::TooManyConnections), 0);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec!["{\"n\":1}", "{\"n\":2}"]);
}

/// Writes `head` and then `body` in 64 KiB pieces, as an agent that sends its whole request
/// before it reads the answer (Fluent Bit, NXLog's `om_http`, Python's clients). `Err` is the
/// write error, with how many body bytes went out before it.
async fn write_request_whole(
    stream: &mut TcpStream,
    head: &str,
    body: &[u8],
) -> Result<(), (usize, std::io::Error)> {
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|error| (0, error))?;
    let mut sent = 0;
    for piece in body.chunks(64 * 1024) {
        stream
            .write_all(piece)
            .await
            .map_err(|error| (sent, error))?;
        sent += piece.len();
    }
    Ok(())
}

/// Reads one response whose body is `Content-Length` long; returns its head and body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut piece = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while bytes.len() < end + 4 + length {
                let read = stream.read(&mut piece).await.unwrap();
                assert!(read > 0, "connection closed mid-answer: {head}");
                bytes.extend_from_slice(&piece[..read]);
            }
            let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into_owned();
            return (head, body);
        }
        let read = stream.read(&mut piece).await.unwrap();
        assert!(
            read > 0,
            "connection closed before an answer: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&piece[..read]);
    }
}

/// A body refused before it was read whole (413: declared or grown past `max_body`) is read
/// and thrown away to its end while the answer goes out, instead of the connection being
/// closed on the agent's unread bytes: the kernel would answer them with a reset, and an agent
/// that writes its whole request before it reads would fail on the write and never see the
/// refusal or its reason. Then the same connection serves the agent's next request. The body
/// is 16 MiB so that it cannot all wait in the sockets' buffers. An agent waiting for
/// `100 Continue` is not asked for a body it would only have thrown away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_body_is_read_to_its_end_so_the_agent_sees_the_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), HTTP_SOURCE).await;
    let address = harness.address("agents");
    let body = vec![b'x'; 16 << 20];
    let line = b"{\"n\":1}\n";

    // Declared past max_body: refused before a byte of the body is read.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    if let Err((sent, error)) = write_request_whole(&mut stream, &head, &body).await {
        panic!("the agent's write failed after {sent} bytes of the body: {error}");
    }
    let (answer, reason) = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(reason.contains("max_body"), "{reason}");
    let next = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
        line.len()
    );
    write_request_whole(&mut stream, &next, line).await.unwrap();
    let (answer, _) = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Chunked, so the size shows only as the body grows past max_body.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\n\r\n");
    let mut chunked = Vec::new();
    for piece in body.chunks(32 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    if let Err((sent, error)) = write_request_whole(&mut stream, &head, &chunked).await {
        panic!("the agent's write failed after {sent} bytes of the body: {error}");
    }
    let (answer, reason) = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(reason.contains("max_body"), "{reason}");
    write_request_whole(&mut stream, &next, line).await.unwrap();
    let (answer, _) = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // An agent that waits for `100 Continue` before it sends its body (curl does for large
    // ones) is told no at once, without being asked for the body first.
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, reason) = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(reason.contains("max_body"), "{reason}");

    assert_eq!(refused_requests(&harness), 3);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec!["{\"n\":1}", "{\"n\":1}"]);
}

/// Reading a refused body on is bounded: an agent that goes on sending a body declared at a
/// gigabyte gets its 413 at once, and the connection is closed long before the gigabyte has
/// gone out (after `refused_body::DISCARD_BYTES` or `DISCARD_TIME`, whichever comes first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_refused_body_on_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), HTTP_SOURCE).await;
    let address = harness.address("agents");
    let declared: usize = 1 << 30;
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!("POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: {declared}\r\n\r\n");
    writer.write_all(head.as_bytes()).await.unwrap();
    let sending = tokio::spawn(async move {
        let piece = vec![b'x'; 256 * 1024];
        let mut sent = 0;
        while sent < declared && writer.write_all(&piece).await.is_ok() {
            sent += piece.len();
        }
        sent
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        let mut piece = [0u8; 4096];
        // Until the server closes: end of stream, or a reset after the answer.
        while let Ok(read @ 1..) = reader.read(&mut piece).await {
            answer.extend_from_slice(&piece[..read]);
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection is still open after 60 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let sent = sending.await.unwrap();
    assert!(
        sent < 256 << 20,
        "{sent} bytes went out of the declared {declared}"
    );
    assert_eq!(refused_requests(&harness), 1);
    assert!(harness.stop().await.is_empty());
}
