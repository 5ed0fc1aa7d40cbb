//! TCP source with a real client: newline and octet-counting framing across split writes,
//! many connections at once, oversized records kept in pieces, the connection limit,
//! backpressure (a blocked sink slows the sender down instead of losing data), and open
//! documents: bounded per source, given out when their sender goes quiet.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use citysoc_collector::metrics::SourceErrorKind;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn tcp_source(name: &str, framing: &str, extra: &str) -> String {
    format!(
        r#"
[[source]]
name = "{name}"
type = "tcp"
listen = "127.0.0.1:0"
framing = "{framing}"
{extra}
"#
    )
}

async fn write_in_pieces(stream: &mut TcpStream, bytes: &[u8], piece: usize) {
    for chunk in bytes.chunks(piece) {
        stream.write_all(chunk).await.unwrap();
        stream.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newline_framing_round_trips_split_writes() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("switches", "newline", "")).await;
    let mut client = TcpStream::connect(harness.address("switches"))
        .await
        .unwrap();
    let client_address = client.local_addr().unwrap().to_string();
    // Two blank lines between the records: skipped, and counted.
    let text = "<189>Nov 22 10:15:00 sw-core-1 %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to down\r\n\
                \n   \r\n\
                <189>Nov 22 10:15:01 sw-core-1 %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to up\n\
                <13>Nov 22 10:15:02 cam-07 nvr: motion detected";
    write_in_pieces(&mut client, text.as_bytes(), 7).await;
    client.shutdown().await.unwrap();
    harness.wait_for_events("switches", 3).await;
    let source = harness
        .collector
        .metrics()
        .source("switches")
        .unwrap()
        .clone();
    let events = harness.stop().await;
    assert_eq!(
        (
            source.records_in(),
            source.blank_records(),
            source.events_out()
        ),
        (5, 2, 3),
        "records in = blank + events out"
    );
    assert_eq!(
        raws(&events),
        [
            "<189>Nov 22 10:15:00 sw-core-1 %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to down",
            "<189>Nov 22 10:15:01 sw-core-1 %LINK-3-UPDOWN: Interface Gi1/0/1, changed state to up",
            "<13>Nov 22 10:15:02 cam-07 nvr: motion detected",
        ],
        "the last record, cut by the close, is kept"
    );
    // The sequence numbers the stream's records, blank lines included.
    for (event, sequence) in events.iter().zip([1, 4, 5]) {
        assert_eq!(event["source"]["transport"], "tcp");
        assert_eq!(event["source"]["address"], client_address.as_str());
        assert_eq!(event["source"]["sequence"], sequence);
        assert_eq!(event["agency"], "quan-1");
        assert_eq!(event["format"], "rfc3164");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octet_counting_round_trips_split_writes_and_embedded_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("rsyslog", "octet_counting", "")).await;
    let messages = [
        "<34>1 2026-11-22T10:15:00.003Z web01 nginx 1234 - - GET /login 200",
        "<34>1 2026-11-22T10:15:01.000Z web01 app 99 ID47 - stack trace:\n  at line 1\n  at line 2",
        "<13>Nov 22 10:15:02 host legacy: an uncounted record after counted ones",
    ];
    let mut wire = Vec::new();
    for message in &messages[..2] {
        wire.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
    }
    wire.extend_from_slice(format!("{}\n", messages[2]).as_bytes());
    let mut client = TcpStream::connect(harness.address("rsyslog"))
        .await
        .unwrap();
    // Pieces of 3 bytes split the length prefixes themselves.
    write_in_pieces(&mut client, &wire, 3).await;
    client.shutdown().await.unwrap();
    harness.wait_for_events("rsyslog", 3).await;
    let events = harness.stop().await;
    assert_eq!(raws(&events), messages);
    assert_eq!(events[0]["format"], "rfc5424");
    assert_eq!(events[1]["format"], "rfc5424");
}

/// A sender that closes in the middle of a counted record: what came is kept, flagged with
/// how many announced bytes never did, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_record_cut_by_the_close_is_kept_flagged_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("rsyslog", "octet_counting", "")).await;
    let whole = "<34>1 2026-11-22T10:15:00.003Z web01 nginx 1234 - - GET /login 200";
    let cut = "<34>1 2026-11-22T10:15:01.000Z web01 nginx 1234 - - GET /log";
    let wire = format!("{} {whole}{} {cut}", whole.len(), cut.len() + 12);
    let mut client = TcpStream::connect(harness.address("rsyslog"))
        .await
        .unwrap();
    client.write_all(wire.as_bytes()).await.unwrap();
    client.shutdown().await.unwrap();
    harness.wait_for_events("rsyslog", 2).await;
    let source = harness
        .collector
        .metrics()
        .source("rsyslog")
        .unwrap()
        .clone();
    let events = harness.stop().await;
    assert_eq!(raws(&events), [whole, cut]);
    assert_eq!(events[0]["fields"].get("frame_truncated"), None);
    assert_eq!(events[1]["fields"]["frame_truncated"], true);
    assert_eq!(events[1]["fields"]["frame_missing_bytes"], 12);
    assert_eq!(
        source.drops(citysoc_collector::metrics::DropReason::FrameTruncated),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once_lose_nothing_and_keep_each_streams_order() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("many", "octet_counting", "")).await;
    let address = harness.address("many");
    let connections = 40;
    let per_connection = 250;
    let mut clients = Vec::new();
    for connection in 0..connections {
        clients.push(tokio::spawn(async move {
            let mut client = TcpStream::connect(address).await.unwrap();
            let mut wire = Vec::new();
            for index in 0..per_connection {
                let message =
                    format!("<13>Nov 22 10:15:00 host{connection} app: c={connection} n={index}");
                if index % 2 == 0 {
                    wire.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
                } else {
                    wire.extend_from_slice(format!("{message}\n").as_bytes());
                }
            }
            for chunk in wire.chunks(1000) {
                client.write_all(chunk).await.unwrap();
            }
            client.shutdown().await.unwrap();
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let total = (connections * per_connection) as u64;
    harness.wait_for_events("many", total).await;
    let metrics = harness.collector.metrics();
    let events = harness.stop().await;
    assert_eq!(events.len() as u64, total);
    let mut per_peer: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for event in &events {
        per_peer
            .entry(event["source"]["address"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                event["source"]["sequence"].as_u64().unwrap(),
                event["raw"].as_str().unwrap().to_owned(),
            ));
    }
    assert_eq!(per_peer.len(), connections);
    for records in per_peer.values() {
        assert_eq!(records.len(), per_connection);
        let connection = records[0]
            .1
            .split("c=")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        for (index, (sequence, raw)) in records.iter().enumerate() {
            assert_eq!(*sequence, index as u64 + 1);
            assert!(raw.ends_with(&format!("c={connection} n={index}")), "{raw}");
        }
    }
    let source = metrics.source("many").unwrap();
    assert_eq!(source.health().drops, 0);
    assert_eq!(source.connections_active(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_over_max_frame_is_kept_in_flagged_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("big", "newline", "max_frame = 100")).await;
    let mut client = TcpStream::connect(harness.address("big")).await.unwrap();
    let long = "L".repeat(250);
    client
        .write_all(format!("{long}\nshort\n").as_bytes())
        .await
        .unwrap();
    client.shutdown().await.unwrap();
    harness.wait_for_events("big", 4).await;
    let events = harness.stop().await;
    let pieces: String = events[..3]
        .iter()
        .map(|event| event["raw"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, long);
    assert_eq!(events[2]["fields"]["fragment_last"], true);
    assert_eq!(events[3]["raw"], "short");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(
        dir.path(),
        &tcp_source("limited", "newline", "max_connections = 2"),
    )
    .await;
    let address = harness.address("limited");
    let mut first = TcpStream::connect(address).await.unwrap();
    let mut second = TcpStream::connect(address).await.unwrap();
    first.write_all(b"one\n").await.unwrap();
    second.write_all(b"two\n").await.unwrap();
    harness.wait_for_events("limited", 2).await;
    let mut third = TcpStream::connect(address).await.unwrap();
    let _ = third.write_all(b"three\n").await;
    let metrics = harness.collector.metrics();
    let limited = metrics.source("limited").unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(5), || limited
            .errors(SourceErrorKind::TooManyConnections)
            == 1)
        .await
    );
    drop((first, second, third));
    let events = harness.stop().await;
    assert_eq!(raws(&events).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_sink_slows_the_sender_down_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let sink = GateSink::closed();
    let collector =
        start_with_sink(dir.path(), &tcp_source("bulk", "newline", ""), sink.clone()).await;
    let address = collector.local_address("bulk").unwrap();
    // 16 MB: more than the pipeline and the socket buffers hold together.
    let total = 40_000usize;
    let padding = "p".repeat(360);
    let writer = tokio::spawn(async move {
        let padding = padding;
        let mut client = TcpStream::connect(address).await.unwrap();
        let mut wire = Vec::new();
        for index in 0..total {
            wire.extend_from_slice(
                format!("<13>Nov 22 10:15:00 host app: bulk record {index:07} {padding}\n")
                    .as_bytes(),
            );
        }
        client.write_all(&wire).await.unwrap();
        client.shutdown().await.unwrap();
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !writer.is_finished(),
        "the sender was not slowed down while the sink was blocked"
    );
    sink.open();
    writer.await.unwrap();
    let metrics = collector.metrics();
    let bulk = metrics.source("bulk").unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(30), || bulk.events_out()
            == total as u64)
        .await
    );
    collector.stop().await;
    assert_eq!(sink.line_count(), total);
    assert_eq!(bulk.health().drops, 0);
}

/// A record whose values would cost the server too much to index (a long key over thousands
/// of zeros) is kept raw and flagged before it is stored in the disk buffer, so it cannot get
/// the batch it would travel in refused; the records around it are parsed as usual, and it
/// counts as unparsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_no_server_would_index_is_kept_raw_and_flagged() {
    use citysoc_collector::{record, BufferConfig, BufferSink, DiskBuffer, SyncPolicy, WhenFull};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let buffer = Arc::new(
        DiskBuffer::open(
            &dir.path().join("buffer"),
            BufferConfig {
                max_bytes: 64 << 20,
                segment_bytes: 8 << 20,
                when_full: WhenFull::Block,
                sync: SyncPolicy::EveryAppend,
            },
        )
        .unwrap(),
    );
    let sink = Arc::new(BufferSink::new(Arc::clone(&buffer)));
    let collector = start_with_sink(dir.path(), &tcp_source("agents", "newline", ""), sink).await;
    let mut client = TcpStream::connect(collector.local_address("agents").unwrap())
        .await
        .unwrap();
    let hostile = format!(
        r#"{{"{}":[{}]}}"#,
        "k".repeat(64),
        vec!["0"; 5_000].join(",")
    );
    let text = format!("{{\"user\":\"an\"}}\n{hostile}\n{{\"user\":\"binh\"}}\n");
    client.write_all(text.as_bytes()).await.unwrap();
    client.shutdown().await.unwrap();
    let source = collector.metrics().source("agents").unwrap().clone();
    assert!(wait_until(Duration::from_secs(20), || source.events_out() >= 3).await);
    collector.stop().await;

    let events: Vec<citysoc_collector::Event> = buffer
        .read(None, usize::MAX, usize::MAX, Duration::ZERO)
        .unwrap()
        .iter()
        .map(|(_, bytes)| record::decode(bytes).unwrap())
        .collect();
    let formats: Vec<&str> = events.iter().map(|event| event.format.as_str()).collect();
    assert_eq!(formats, ["json", "unknown", "json"]);
    assert_eq!(events[1].raw.as_deref(), Some(hostile.as_str()));
    let error = events[1].parse_error.as_ref().unwrap();
    assert_eq!(error.format, "json");
    assert!(error.message.contains("field paths"), "{}", error.message);
    assert_eq!(source.unparsed(), 1);
}

/// Senders that leave multi-line JSON documents open on many connections: what the source's
/// connections hold together stays near its bound (a connection that reads while the source
/// is over it gives out what it holds, flagged), and every byte still comes out, in order per
/// connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_documents_on_many_connections_are_bounded_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("agents", "newline", "")).await;
    let address = harness.address("agents");
    let source = harness.source_metrics("agents");
    const CONNECTIONS: usize = 14;
    // 14 connections × ~3.5 MB of one open document each: ~49 MB, over the 32 MiB bound.
    // They all write at once, so the source reads them side by side and their open documents
    // add up (one written after another would each go quiet, and give out, before the next).
    let line = format!("\"{}\",", "x".repeat(1_000));
    let lines_per_connection = 3_500;
    // After its 3.5 MB, each writer adds a line every 200 ms until the bound has been met:
    // a connection that went quiet for a second would give out its document (`QUIET_CLOSE`)
    // before the others had filled theirs, on a machine slow to read them all.
    let filled = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut client = TcpStream::connect(address).await.unwrap();
        let mut text = String::from("{\"a\":[\n");
        for _ in 0..lines_per_connection {
            text.push_str(&line);
            text.push('\n');
        }
        let line = line.clone();
        let filled = filled.clone();
        writers.push(tokio::spawn(async move {
            client.write_all(text.as_bytes()).await.unwrap();
            while !filled.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let more = format!("{line}\n");
                client.write_all(more.as_bytes()).await.unwrap();
                text.push_str(&more);
            }
            client.flush().await.unwrap();
            (client.local_addr().unwrap().to_string(), client, text)
        }));
    }
    let mut largest = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while source.held_releases() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no connection gave out what it held; {} records read",
            source.records_in()
        );
        largest = largest.max(source.held_bytes());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    filled.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for writer in writers {
        clients.push(writer.await.unwrap());
    }
    let expected_records: u64 = clients
        .iter()
        .map(|(_, _, text)| text.lines().count() as u64)
        .sum();
    while source.records_in() < expected_records {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} records of {expected_records}",
            source.records_in()
        );
        largest = largest.max(source.held_bytes());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Within the bound plus what each connection reads before it checks (one read each).
    let bound = 32u64 << 20;
    assert!(largest <= bound + 4 * 1024 * 1024, "held {largest} bytes");
    // Quiet holders give out what they hold with their connections still open
    // (`QUIET_CLOSE`), so they cannot keep the source at its bound.
    assert!(wait_until(Duration::from_secs(10), || source.held_bytes() == 0).await);
    for (_, client, _) in &mut clients {
        client.shutdown().await.unwrap();
    }
    let events = harness.stop().await;
    assert!(events
        .iter()
        .any(|event| event["fields"]["held_released_early"] == true));
    // Every connection's bytes, in order: its events' raw text joined by newlines.
    let mut by_peer: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for event in &events {
        by_peer
            .entry(
                event["source"]["address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default()
            .push(event["raw"].as_str().unwrap_or_default());
    }
    assert_eq!(by_peer.len(), CONNECTIONS);
    for (peer, _, text) in &clients {
        let joined = by_peer
            .get(peer)
            .map(|raws| raws.join("\n"))
            .unwrap_or_default();
        assert_eq!(joined, text.trim_end_matches('\n'), "{peer}");
    }
}

/// What a sender left open and then stopped sending on (an audit event of one record, which
/// has no `EOE` to close it; a JSON document cut off) comes out about a second later with the
/// connection still open: a `CONFIG_CHANGE` that removes an audit rule must not wait for the
/// host's next audit event to reach detection. What comes after is read as it comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_quiet_sender_left_open_comes_out_while_it_stays_connected() {
    let dir = tempfile::tempdir().unwrap();
    let harness = start_in(dir.path(), &tcp_source("hosts", "newline", "")).await;
    let address = harness.address("hosts");
    let audit = "type=CONFIG_CHANGE msg=audit(1763800000.123:4242): auid=1000 ses=3 op=remove_rule key=\"sshd_config\" list=4 res=1";
    let started = std::time::Instant::now();
    let mut auditd = TcpStream::connect(address).await.unwrap();
    auditd
        .write_all(format!("{audit}\n").as_bytes())
        .await
        .unwrap();
    let mut agent = TcpStream::connect(address).await.unwrap();
    agent.write_all(b"{\"user\":\n").await.unwrap();
    // A record begun and not ended gives the event it belongs to longer: the second record of
    // this event arrives in two pieces 1.5 s apart, and the event comes out whole.
    let syscall = "type=SYSCALL msg=audit(1763800001.500:4243): arch=c000003e syscall=59 success=yes exit=0 auid=1000 comm=\"id\"";
    let execve = "type=EXECVE msg=audit(1763800001.500:4243): argc=1 a0=\"id\"";
    let (execve_start, execve_end) = execve.split_at(20);
    let mut slow = TcpStream::connect(address).await.unwrap();
    slow.write_all(format!("{syscall}\n{execve_start}").as_bytes())
        .await
        .unwrap();
    harness.wait_for_events("hosts", 2).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "given out after {:?}, before the sender went quiet",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(started.elapsed())).await;
    slow.write_all(format!("{execve_end}\n").as_bytes())
        .await
        .unwrap();
    // The rest of the document, late: a record of its own.
    agent.write_all(b"\"an\"}\n").await.unwrap();
    harness.wait_for_events("hosts", 4).await;
    drop((auditd, agent, slow));
    let events = harness.stop().await;
    assert_eq!(events.len(), 4, "{events:#?}");
    let audit_event = events
        .iter()
        .find(|event| event["raw"] == audit)
        .expect("the audit event");
    assert_eq!(audit_event["format"], "auditd", "{audit_event:#}");
    assert!(audit_event["parse_error"].is_null(), "{audit_event:#}");
    assert_eq!(audit_event["fields"]["op"], "remove_rule");
    let whole = events
        .iter()
        .find(|event| event["raw"] == format!("{syscall}\n{execve}"))
        .expect("the two-record event, whole");
    assert_eq!(whole["format"], "auditd", "{whole:#}");
    assert!(whole["fields"]["audit_group_late"].is_null(), "{whole:#}");
    let open_document = events
        .iter()
        .find(|event| event["raw"] == "{\"user\":")
        .expect("the open document");
    assert_eq!(open_document["format"], "unknown");
    let message = open_document["parse_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("nothing more came"), "{message}");
    assert!(events.iter().any(|event| event["raw"] == "\"an\"}"));
}
