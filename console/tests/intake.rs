//! The intake over real HTTP: what is stored, what is refused (with which status and reason),
//! and that a refused batch leaves nothing in the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use citysoc_collector::protocol::{
    self, IntakeAck, Rejection, Signed, HEADER_COLLECTOR, HEADER_HEAD_SIGNATURE, HEADER_SEQUENCE,
    HEADER_SIGNATURE, HEADER_TIME, HEARTBEAT_PATH, INTAKE_PATH, MAX_BODY_BYTES, MAX_CLOCK_SKEW_MS,
};
use citysoc_console::ServerConfig;
use common::{
    batch, event, events, expect_rejection, metric, now_ms, plain_client, rejected_metric,
    TestCollector, TestServer,
};

#[tokio::test]
async fn events_are_stored_under_the_registry_agency_not_the_payload_one() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let sent = vec![
        event("aa01", Some("so-tai-chinh"), "claims another agency"),
        event("aa02", None, "claims none"),
    ];
    let response = collector.send(&server, INTAKE_PATH, 1, batch(&sent)).await;
    assert_eq!(response.status(), 200);
    let ack: IntakeAck = response.json().await.unwrap();
    assert_eq!(
        ack,
        IntakeAck {
            sequence: 1,
            stored: 2,
            duplicates: 0
        }
    );
    let stored = server.stored();
    assert_eq!(stored.len(), 2);
    for event in &stored {
        assert_eq!(event.agency.as_deref(), Some("quan-1"));
        assert_eq!(event.collector.as_deref(), Some(collector.id.as_str()));
    }
    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.last_sequence_acked, 1);
    assert_eq!(
        (record.batches, record.events, record.duplicates),
        (1, 2, 0)
    );
    assert!(record.last_seen.is_some());
    // The agency-scoped search of the claimed agency sees nothing.
    let request = citysoc_index::AggregationRequest {
        query: citysoc_index::Query::All,
        time: citysoc_index::TimeRange::everything(),
        scope: citysoc_index::AgencyScope::agency("so-tai-chinh"),
    };
    assert_eq!(server.store.count(&request).unwrap(), 0);
}

/// Sends a refused request and checks: the status and reason, the counter in /metrics and in
/// the registry, and an empty store.
async fn refused(
    server: &TestServer,
    collector: Option<&TestCollector>,
    response: reqwest::Response,
    status: u16,
    reason: &str,
    expected_count: u64,
) {
    refused_counted(
        server,
        collector.map(|collector| (collector, expected_count)),
        response,
        status,
        reason,
        expected_count,
    )
    .await;
}

/// As `refused`, when the collector's own count differs from the server's (some refusals
/// named no collector).
async fn refused_counted(
    server: &TestServer,
    collector: Option<(&TestCollector, u64)>,
    response: reqwest::Response,
    status: u16,
    reason: &str,
    expected_count: u64,
) {
    expect_rejection(response, status, reason).await;
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, &rejected_metric("intake", reason)),
        expected_count,
        "{reason}"
    );
    if let Some((collector, count)) = collector {
        let record = server.registry.collector(&collector.id).unwrap().unwrap();
        assert_eq!(
            record.rejected.get(reason).copied(),
            Some(count),
            "{reason}"
        );
    }
    assert_eq!(server.stored_count(), 0, "{reason}: nothing stored");
}

#[tokio::test]
async fn bad_batches_are_refused_counted_and_not_stored() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let body = batch(&events("bb", 10));

    // Tampered body: signed, then one byte changed.
    let mut tampered = body.clone();
    let signed = protocol::Signed {
        collector: collector.id.clone(),
        sequence: 1,
        time_ms: now_ms(),
    };
    let signature = protocol::sign(&collector.key, INTAKE_PATH, &signed, &body);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let response = server
        .client
        .post(server.url(INTAKE_PATH))
        .header(HEADER_COLLECTOR, &collector.id)
        .header(HEADER_SEQUENCE, "1")
        .header(HEADER_TIME, signed.time_ms.to_string())
        .header(HEADER_SIGNATURE, signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 401, "bad_signature", 1).await;

    // Signed with another key.
    let impostor = TestCollector {
        id: collector.id.clone(),
        key: vec![7u8; 32],
    };
    let response = impostor
        .request_without_head_signature(&server, INTAKE_PATH, 1, now_ms(), body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 401, "bad_signature", 2).await;

    // Signed for another path (a heartbeat signature replayed on the intake).
    let time = now_ms();
    let heartbeat_signature = protocol::sign(
        &collector.key,
        protocol::HEARTBEAT_PATH,
        &protocol::Signed {
            collector: collector.id.clone(),
            sequence: 1,
            time_ms: time,
        },
        &body,
    );
    let response = server
        .client
        .post(server.url(INTAKE_PATH))
        .header(HEADER_COLLECTOR, &collector.id)
        .header(HEADER_SEQUENCE, "1")
        .header(HEADER_TIME, time.to_string())
        .header(HEADER_SIGNATURE, heartbeat_signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 401, "bad_signature", 3).await;

    // Signing time too old and too far ahead.
    let old = now_ms() - MAX_CLOCK_SKEW_MS - 60_000;
    let response = collector
        .request(&server, INTAKE_PATH, 1, old, body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 401, "expired", 1).await;
    let ahead = now_ms() + MAX_CLOCK_SKEW_MS + 60_000;
    let response = collector
        .request(&server, INTAKE_PATH, 1, ahead, body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 401, "expired", 2).await;

    // Truncated zstd, correctly signed.
    let truncated = body[..body.len() / 2].to_vec();
    let response = collector.send(&server, INTAKE_PATH, 1, truncated).await;
    refused(&server, Some(&collector), response, 400, "bad_body", 1).await;

    // Not zstd at all.
    let response = collector
        .send(&server, INTAKE_PATH, 1, b"plain text".to_vec())
        .await;
    refused(&server, Some(&collector), response, 400, "bad_body", 2).await;

    // One bad NDJSON line among good ones: the whole batch is refused.
    let good = serde_json::to_vec(&event("cc01", None, "good")).unwrap();
    let with_bad_line =
        protocol::encode_lines([good.as_slice(), b"{\"id\": 5".as_slice(), good.as_slice()])
            .unwrap();
    let response = collector.send(&server, INTAKE_PATH, 1, with_bad_line).await;
    let rejection = expect_rejection(response, 400, "bad_body").await;
    assert!(
        rejection.message.contains("line 2"),
        "{}",
        rejection.message
    );
    assert_eq!(server.stored_count(), 0);

    // A batch small on the wire that would decode to millions of values (two bytes of JSON
    // each, ~100 bytes each decoded: a broken or compromised collector's way to exhaust the
    // server's memory): refused before it is parsed, counted, nothing stored.
    let zeros = vec!["0"; protocol::MAX_BATCH_VALUES].join(",");
    let mut flood = serde_json::to_value(event("cc02", None, "flood")).unwrap();
    flood["fields"] = serde_json::json!({ "a": [] });
    let flood = serde_json::to_string(&flood)
        .unwrap()
        .replace(r#""a":[]"#, &format!(r#""a":[{zeros}]"#));
    let flood = protocol::encode_lines([flood.as_bytes()]).unwrap();
    assert!(flood.len() < 64 << 10, "{} bytes on the wire", flood.len());
    let response = collector.send(&server, INTAKE_PATH, 1, flood).await;
    refused(&server, Some(&collector), response, 400, "bad_body", 4).await;
    assert_eq!(server.stored_count(), 0);

    // Missing and garbled headers.
    let response = server
        .client
        .post(server.url(INTAKE_PATH))
        .header(HEADER_COLLECTOR, &collector.id)
        .header(HEADER_SEQUENCE, "one")
        .header(HEADER_TIME, now_ms().to_string())
        .header(HEADER_SIGNATURE, "AAAA")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 400, "bad_headers", 1).await;
    let response = server
        .client
        .post(server.url(INTAKE_PATH))
        .header(HEADER_COLLECTOR, &collector.id)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, Some(&collector), response, 400, "bad_headers", 2).await;
    let response = server
        .client
        .post(server.url(INTAKE_PATH))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    refused(&server, None, response, 400, "bad_headers", 3).await;
    // Batch numbers start at 1.
    let response = collector.send(&server, INTAKE_PATH, 0, body.clone()).await;
    refused_counted(
        &server,
        Some((&collector, 3)),
        response,
        400,
        "bad_headers",
        4,
    )
    .await;

    // Unknown collector.
    let stranger = TestCollector {
        id: "c-nobody".into(),
        key: collector.key.clone(),
    };
    let response = stranger.send(&server, INTAKE_PATH, 1, body.clone()).await;
    refused(&server, None, response, 401, "unknown_collector", 1).await;

    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.last_sequence_acked, 0);
    assert_eq!(record.batches, 0);

    // After all that, the right batch is accepted.
    let response = collector.send(&server, INTAKE_PATH, 1, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(server.stored_count(), 10);
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    // Random bytes do not compress: a real body over the limit, signed correctly.
    let mut body = vec![0u8; MAX_BODY_BYTES + 1];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for byte in body.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let response = collector.send(&server, INTAKE_PATH, 1, body).await;
    refused(&server, Some(&collector), response, 413, "too_large", 1).await;

    // Exactly at the limit is read (and then refused for what it is, not for its size).
    let at_limit = vec![b'x'; MAX_BODY_BYTES];
    let response = collector.send(&server, INTAKE_PATH, 1, at_limit).await;
    refused(&server, Some(&collector), response, 400, "bad_body", 1).await;
}

#[tokio::test]
async fn a_revoked_collector_is_refused() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let body = batch(&events("rv", 3));
    server
        .registry
        .revoke(&collector.id, chrono::Utc::now())
        .unwrap();
    let response = collector.send(&server, INTAKE_PATH, 1, body).await;
    refused(&server, Some(&collector), response, 403, "revoked", 1).await;
    let response = collector
        .send(
            &server,
            protocol::HEARTBEAT_PATH,
            0,
            serde_json::to_vec(&protocol::Heartbeat::default()).unwrap(),
        )
        .await;
    expect_rejection(response, 403, "revoked").await;
}

#[tokio::test]
async fn a_batch_sent_twice_is_stored_once_and_acknowledged_twice() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let body = batch(&events("dd", 50));
    let first: IntakeAck = collector
        .send(&server, INTAKE_PATH, 1, body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((first.stored, first.duplicates), (50, 0));
    // The acknowledgement was lost: the collector sends the same batch again.
    let response = collector.send(&server, INTAKE_PATH, 1, body.clone()).await;
    assert_eq!(response.status(), 200);
    let second: IntakeAck = response.json().await.unwrap();
    assert_eq!(
        second,
        IntakeAck {
            sequence: 1,
            stored: 0,
            duplicates: 50
        }
    );
    assert_eq!(server.stored_count(), 50);

    // A later batch re-carrying some events (a collector restarted mid-batch) stores only the
    // new ones; a batch repeating an id within itself stores it once.
    let mut mixed = events("dd", 50)[40..].to_vec();
    mixed.extend(events("ee", 5));
    mixed.push(event("ee0000", None, "line 0"));
    let third: IntakeAck = collector
        .send(&server, INTAKE_PATH, 2, batch(&mixed))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((third.stored, third.duplicates), (5, 11));
    assert_eq!(server.stored_count(), 55);

    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(
        (
            record.batches,
            record.events,
            record.duplicates,
            record.last_sequence_acked
        ),
        (3, 55, 61, 2)
    );
    // Older than the last acknowledged: a replay.
    let response = collector.send(&server, INTAKE_PATH, 1, body).await;
    let rejection = refused_but_stored(&server, response, "replay", 55).await;
    // It says how far the server is, so a collector that lost its numbering renumbers.
    assert_eq!(rejection.last_acknowledged, Some(2));
}

async fn refused_but_stored(
    server: &TestServer,
    response: reqwest::Response,
    reason: &str,
    stored: u64,
) -> Rejection {
    let rejection = expect_rejection(response, 409, reason).await;
    assert_eq!(server.stored_count(), stored);
    rejection
}

#[tokio::test]
async fn a_skipped_batch_number_is_accepted_and_counted_as_a_gap() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-7").await;
    for (sequence, prefix) in [(1, "g1"), (2, "g2"), (5, "g5"), (6, "g6"), (10, "g10")] {
        let response = collector
            .send(&server, INTAKE_PATH, sequence, batch(&events(prefix, 2)))
            .await;
        assert_eq!(response.status(), 200, "batch {sequence}");
    }
    assert_eq!(server.stored_count(), 10);
    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!((record.gaps, record.missing_batches), (2, 5));
    let gaps: Vec<(u64, u64)> = server
        .registry
        .gaps(&collector.id)
        .unwrap()
        .into_iter()
        .map(|gap| (gap.first_missing, gap.last_missing))
        .collect();
    assert_eq!(gaps, vec![(3, 4), (7, 9)]);
    // The missing batches arriving late are older than the last acknowledged.
    let response = collector
        .send(&server, INTAKE_PATH, 3, batch(&events("g3", 2)))
        .await;
    let rejection = refused_but_stored(&server, response, "replay", 10).await;
    assert_eq!(rejection.last_acknowledged, Some(10));
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_intake_gaps_total"), 2);
    assert_eq!(metric(&text, "citysoc_intake_missing_batches_total"), 5);
}

#[tokio::test]
async fn batches_of_one_collector_are_handled_one_at_a_time() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let collector = server.enroll("quan-1").await;
    // The same batch, four times at once (as many requests as one collector may have in
    // flight): exactly one stores it, the others see it stored.
    let body = batch(&events("pp", 200));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let server = server.clone();
        let collector = collector.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let response = collector.send(&server, INTAKE_PATH, 1, body).await;
            assert_eq!(response.status(), 200);
            response.json::<IntakeAck>().await.unwrap()
        }));
    }
    let mut stored = 0;
    let mut duplicates = 0;
    for task in tasks {
        let ack = task.await.unwrap();
        stored += ack.stored;
        duplicates += ack.duplicates;
    }
    assert_eq!((stored, duplicates), (200, 3 * 200));
    assert_eq!(server.stored_count(), 200);
}

/// Writes a request's head (and the first bytes of its body) on a raw connection and leaves
/// the rest of the body unsent, as a slow or hostile sender would.
async fn stalled_request(
    server: &TestServer,
    collector: &str,
    signature: &str,
    declared_length: usize,
) -> tokio::net::TcpStream {
    stalled_request_to(server, INTAKE_PATH, collector, signature, declared_length).await
}

/// [`stalled_request`] to another signed endpoint.
async fn stalled_request_to(
    server: &TestServer,
    path: &str,
    collector: &str,
    signature: &str,
    declared_length: usize,
) -> tokio::net::TcpStream {
    let sequence = u64::from(path == INTAKE_PATH);
    stalled_request_with(
        server,
        path,
        collector,
        (sequence, now_ms()),
        signature,
        declared_length,
        "",
    )
    .await
}

/// [`stalled_request_to`] with this sequence number and signing time, and `extra` header lines
/// (each ending in `\r\n`).
async fn stalled_request_with(
    server: &TestServer,
    path: &str,
    collector: &str,
    (sequence, time_ms): (u64, i64),
    signature: &str,
    declared_length: usize,
    extra: &str,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {declared_length}\r\n{HEADER_COLLECTOR}: {collector}\r\n{HEADER_SEQUENCE}: {sequence}\r\n{HEADER_TIME}: {time_ms}\r\n{HEADER_SIGNATURE}: {signature}\r\n{extra}\r\nfirst bytes",
        server.address,
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads the status code of the answer on a raw connection (the test fails if none comes).
async fn status_of(stream: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("an answer before the body was sent")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..read]).to_string();
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A sender without a key learns it is refused from the headers alone: the server answers
/// without waiting for (or holding memory for) a body it announced as 16 MiB.
#[tokio::test]
async fn unauthenticated_requests_are_refused_before_their_body_is_read() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let mut unknown = stalled_request(&server, "nobody", "AAAA", MAX_BODY_BYTES).await;
    assert_eq!(status_of(&mut unknown).await, 401);
    // A known collector whose signing time is far off: refused on the headers too.
    use tokio::io::AsyncWriteExt;
    let mut stale = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let head = format!(
        "POST {INTAKE_PATH} HTTP/1.1\r\nhost: x\r\ncontent-length: {MAX_BODY_BYTES}\r\n{HEADER_COLLECTOR}: {}\r\n{HEADER_SEQUENCE}: 1\r\n{HEADER_TIME}: {}\r\n{HEADER_SIGNATURE}: AAAA\r\n\r\n",
        collector.id,
        now_ms() - 2 * MAX_CLOCK_SKEW_MS
    );
    stale.write_all(head.as_bytes()).await.unwrap();
    assert_eq!(status_of(&mut stale).await, 401);
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, &rejected_metric("intake", "unknown_collector")),
        1
    );
    assert_eq!(metric(&text, &rejected_metric("intake", "expired")), 1);
}

/// Takes all 32 places for signed batches with bodies that never finish arriving: four places
/// per collector id, so eight newly enrolled ids. Returns the ids and the connections (the
/// places come back when they are dropped), once the server has taken every one in.
async fn fill_batch_places(server: &TestServer) -> (Vec<String>, Vec<tokio::net::TcpStream>) {
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(server.enroll(&format!("quan-{}", n + 2)).await.id);
    }
    let mut stalled = Vec::new();
    for id in &ids {
        for _ in 0..4 {
            stalled.push(stalled_request(server, id, "AAAA", 1 << 20).await);
        }
    }
    assert_eq!(
        gauge_reaches(server, "citysoc_signed_requests_in_progress", 32).await,
        32
    );
    (ids, stalled)
}

/// Requests whose bodies are still arriving hold a place each; past the limit the server
/// answers 503 `busy` (the collector retries) instead of holding ever more bodies, and the
/// places come back when those senders go away.
#[tokio::test]
async fn requests_past_the_concurrency_limit_get_busy_and_places_come_back() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let (_, stalled) = fill_batch_places(&server).await;
    let body = batch(&events("busy", 3));
    let response = collector.send(&server, INTAKE_PATH, 1, body.clone()).await;
    expect_rejection(response, 503, "busy").await;
    drop(stalled);
    let stored = send_until_stored(&server, &collector, 1, &body).await;
    assert_eq!(
        stored, 3,
        "the places came back once the stalled senders left"
    );
}

/// Sends batch `sequence` until it is stored (a place came back; up to 5 s) and returns how
/// many events the server stored, 0 if it never was.
async fn send_until_stored(
    server: &TestServer,
    collector: &TestCollector,
    sequence: u64,
    body: &[u8],
) -> u64 {
    for _ in 0..100 {
        let response = collector
            .send(server, INTAKE_PATH, sequence, body.to_vec())
            .await;
        if response.status().is_success() {
            return response.json::<IntakeAck>().await.unwrap().stored;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    0
}

/// Waits until the server's gauge `name` reads `expected` (the stalled requests' tasks have
/// taken their places), and returns what it last read.
async fn gauge_reaches(server: &TestServer, name: &str, expected: u64) -> u64 {
    let mut value = 0;
    for _ in 0..200 {
        value = metric(&server.metrics_text().await, name);
        if value == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    value
}

/// Heartbeats do not compete with batches for places: with every batch place held (slow
/// uploads from many collectors at once), another collector's heartbeat is still stored, while
/// its batch gets 503 `busy`. A collector id holds at most two of the heartbeat places.
#[tokio::test]
async fn heartbeats_have_places_of_their_own() {
    let server = TestServer::start().await;
    let reporting = server.enroll("quan-1").await;
    let (uploading, stalled) = fill_batch_places(&server).await;
    let response = reporting
        .send(&server, INTAKE_PATH, 1, batch(&events("held-up", 2)))
        .await;
    expect_rejection(response, 503, "busy").await;
    let heartbeat = serde_json::to_vec(&protocol::Heartbeat {
        version: "0.1.0".into(),
        ..protocol::Heartbeat::default()
    })
    .unwrap();
    let response = reporting
        .send(&server, HEARTBEAT_PATH, 0, heartbeat.clone())
        .await;
    assert_eq!(response.status(), 200, "the heartbeat found a place");
    let record = server.registry.collector(&reporting.id).unwrap().unwrap();
    assert_eq!(
        record.last_heartbeat.map(|heartbeat| heartbeat.version),
        Some("0.1.0".to_owned())
    );

    // One collector id's heartbeats: two places, the third refused; the batches' places and
    // other collectors' heartbeats are not touched.
    let target = &uploading[0];
    let mut control_stalled = Vec::new();
    for _ in 0..2 {
        control_stalled
            .push(stalled_request_to(&server, HEARTBEAT_PATH, target, "AAAA", 4096).await);
    }
    assert_eq!(
        gauge_reaches(&server, "citysoc_control_requests_in_progress", 2).await,
        2
    );
    let mut third = stalled_request_to(&server, HEARTBEAT_PATH, target, "AAAA", 4096).await;
    assert_eq!(status_of(&mut third).await, 503);
    let response = reporting
        .send(&server, HEARTBEAT_PATH, 0, heartbeat.clone())
        .await;
    assert_eq!(response.status(), 200, "another collector's heartbeat");
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_signed_requests_in_progress"), 32);
    assert_eq!(metric(&text, "citysoc_control_requests_in_progress"), 2);

    // Every place comes back once the senders go away.
    drop(stalled);
    drop(control_stalled);
    assert_eq!(
        gauge_reaches(&server, "citysoc_signed_requests_in_progress", 0).await,
        0
    );
    assert_eq!(
        gauge_reaches(&server, "citysoc_control_requests_in_progress", 0).await,
        0
    );
}

/// With one place for batches and no wait for it, collectors sending at once are handled one
/// batch at a time: a batch that finds the place taken is refused `busy` (503), counted, and
/// stored when its collector sends it again. Nothing is lost and the place comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_past_the_batch_places_get_busy_and_are_stored_when_sent_again() {
    let data = tempfile::tempdir().unwrap();
    let mut config = citysoc_console::ServerConfig::new(data.path());
    config.max_batches_in_process = 1;
    config.batch_place_wait = std::time::Duration::ZERO;
    let server = std::sync::Arc::new(
        TestServer::start_with(data, config, "http", common::plain_client()).await,
    );
    const COLLECTORS: usize = 6;
    const EVENTS: usize = 2_000;
    let mut senders = tokio::task::JoinSet::new();
    for n in 0..COLLECTORS {
        let collector = server.enroll(&format!("quan-{n}")).await;
        let server = server.clone();
        // Large enough batches that handling one takes a while.
        let body = batch(&events(&format!("c{n}-"), EVENTS));
        senders.spawn(async move {
            let mut busy = 0u64;
            for _ in 0..600 {
                let response = collector.send(&server, INTAKE_PATH, 1, body.clone()).await;
                if response.status() == 503 {
                    expect_rejection(response, 503, "busy").await;
                    busy += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
                assert_eq!(response.status(), 200);
                let ack: IntakeAck = response.json().await.unwrap();
                return (ack.stored, busy);
            }
            panic!("collector {n} never got a place");
        });
    }
    let mut busy = 0;
    while let Some(result) = senders.join_next().await {
        let (stored, refused) = result.unwrap();
        assert_eq!(stored, EVENTS as u64);
        busy += refused;
    }
    assert_eq!(server.stored_count(), (COLLECTORS * EVENTS) as u64);
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, &rejected_metric("intake", "busy")), busy);
    // Every refused batch had waited (a batch that waited can still get a place that came
    // free in that instant).
    assert!(metric(&text, "citysoc_intake_batches_waited_total") >= busy);
    assert_eq!(metric(&text, "citysoc_intake_batches_in_process"), 0);
    assert!(text.contains("at most 1;"), "{text}");
}

/// A collector's `received_at` in the future or over a year old is replaced by the server's
/// time (it decides the day index when the device clock is implausible), the reported value
/// kept in `fields`, and counted.
#[tokio::test]
async fn implausible_received_at_is_replaced_and_kept_as_reported() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let mut sent = events("ra", 3);
    sent[0].received_at = "2100-01-01T00:00:00Z".parse().unwrap();
    sent[1].received_at = "2003-01-01T00:00:00Z".parse().unwrap();
    let before = chrono::Utc::now();
    let response = collector.send(&server, INTAKE_PATH, 1, batch(&sent)).await;
    assert_eq!(response.status(), 200);
    let after = chrono::Utc::now();
    let mut stored = server.stored();
    stored.sort_by(|a, b| a.id.cmp(&b.id));
    for (event, reported) in stored.iter().zip([
        Some("2100-01-01T00:00:00+00:00"),
        Some("2003-01-01T00:00:00+00:00"),
        None,
    ]) {
        let kept = event
            .fields
            .get("received_at_reported")
            .and_then(|value| value.as_str());
        assert_eq!(kept, reported, "{}", event.id);
        if reported.is_some() {
            assert!(
                (before..=after).contains(&event.received_at),
                "{}",
                event.id
            );
        }
    }
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, "citysoc_intake_received_at_corrected_total"),
        2
    );
}

/// Refusals naming a collector are counted against it exactly, but written to the registry
/// at most about once a second (a sender without the key could otherwise make the server sync
/// the registry per request): readers in the server see every one at once, the file has them
/// all once the server stops.
#[tokio::test]
async fn many_refusals_are_counted_exactly_and_written_when_the_server_stops() {
    let mut server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let impostor = TestCollector {
        id: collector.id.clone(),
        key: vec![7u8; 32],
    };
    for sequence in 1..=50 {
        let response = impostor
            .send(&server, INTAKE_PATH, sequence, b"x".to_vec())
            .await;
        assert_eq!(response.status(), 401);
    }
    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.rejected.get("bad_head_signature").copied(), Some(50));
    server.stop().await;
    let reopened = citysoc_console::Registry::open(&server.data.path().join("citysoc.db")).unwrap();
    let record = reopened.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.rejected.get("bad_head_signature").copied(), Some(50));
}

/// The day index under `root` (the directory holding tantivy's `meta.json`).
fn day_index_under(root: &std::path::Path) -> std::path::PathBuf {
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        if directory.join("meta.json").exists() {
            return directory;
        }
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    panic!("no day index under {}", root.display());
}

/// A batch the store cannot make durable (its disk goes away while the segment is written) is
/// answered 500, never acknowledged, counted; the store recovers, and the batch sent again is
/// stored.
#[tokio::test]
async fn a_batch_the_store_fails_to_commit_is_refused_and_stored_when_sent_again() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let response = collector
        .send(&server, INTAKE_PATH, 1, batch(&events("ok", 3)))
        .await;
    assert_eq!(response.status(), 200);
    let day = day_index_under(server.data.path());
    let away = day.with_extension("away");

    std::fs::rename(&day, &away).unwrap();
    let second = batch(&events("lost", 5));
    let response = collector
        .send(&server, INTAKE_PATH, 2, second.clone())
        .await;
    std::fs::rename(&away, &day).unwrap();
    let rejection = expect_rejection(response, 500, "internal").await;
    // It says what to do, and nothing about the server's files.
    assert!(
        rejection.message.contains("send it again"),
        "{}",
        rejection.message
    );
    let data = server.data.path().to_string_lossy().into_owned();
    assert!(!rejection.message.contains(&data), "{}", rejection.message);
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_store_failed_writers_total"), 1);
    assert_eq!(
        metric(
            &text,
            "citysoc_store_events_dropped_with_failed_writers_total"
        ),
        5
    );
    assert_eq!(server.stored_count(), 3);

    let again: IntakeAck = collector
        .send(&server, INTAKE_PATH, 2, second)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (5, 0));
    assert_eq!(server.stored_count(), 8);
}

/// A sender that knows one collector's id but not its key holds at most four places, however
/// many bodies it trickles: the fifth gets 503 `busy`, other collectors are not held up, and
/// the places come back once the sender goes away.
#[tokio::test]
async fn one_collector_id_holds_at_most_four_places() {
    let server = TestServer::start().await;
    let target = server.enroll("quan-1").await;
    let other = server.enroll("quan-2").await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_request(&server, &target.id, "AAAA", 1 << 20).await);
    }
    let mut in_progress = 0;
    for _ in 0..200 {
        let text = server.metrics_text().await;
        in_progress = metric(&text, "citysoc_signed_requests_in_progress");
        if in_progress == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(in_progress, 4);
    let mut fifth = stalled_request(&server, &target.id, "AAAA", 1 << 20).await;
    assert_eq!(status_of(&mut fifth).await, 503);
    let response = other
        .send(&server, INTAKE_PATH, 1, batch(&events("other", 2)))
        .await;
    assert_eq!(response.status(), 200, "another collector is not held up");

    drop(stalled);
    let body = batch(&events("back", 2));
    let stored = send_until_stored(&server, &target, 1, &body).await;
    assert_eq!(stored, 2, "the collector's places came back");
}

/// Once a collector has signed its requests' headers, a sender that knows its id but not its
/// key cannot take its places at all: a request without the head signature, or with a wrong
/// one, or with a right one over another body length, is refused from its headers (401),
/// before a place is taken or a byte of the body read. The first head signature counts even
/// when the places are already held (its request gets 503 and is sent again), so a collector
/// upgraded while a sender holds its places gets them back. A collector that has never sent
/// the head signature (older than it) is still taken without one.
#[tokio::test]
async fn a_collector_that_signs_its_headers_cannot_have_its_places_taken() {
    let server = TestServer::start().await;
    let target = server.enroll("quan-1").await;
    let older = server.enroll("quan-2").await;
    // A sender holds the four places of the collector while it is still an older one.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled_request(&server, &target.id, "AAAA", 1 << 20).await);
    }
    assert_eq!(
        gauge_reaches(&server, "citysoc_signed_requests_in_progress", 4).await,
        4
    );
    // Upgraded, it signs its headers: busy for now, but from now on it is known to sign them.
    let body = batch(&events("signed", 2));
    let response = target.send(&server, INTAKE_PATH, 1, body.clone()).await;
    expect_rejection(response, 503, "busy").await;
    let mut without = stalled_request(&server, &target.id, "AAAA", 1 << 20).await;
    assert_eq!(status_of(&mut without).await, 401);
    // The same for its heartbeats.
    let response = target
        .request_without_head_signature(&server, HEARTBEAT_PATH, 0, now_ms(), b"{}".to_vec())
        .send()
        .await
        .unwrap();
    expect_rejection(response, 401, "missing_head_signature").await;
    drop(held);
    let stored = send_until_stored(&server, &target, 1, &body).await;
    assert_eq!(stored, 2, "its places came back");
    let mut without = stalled_request(&server, &target.id, "AAAA", 1 << 20).await;
    assert_eq!(status_of(&mut without).await, 401);
    let head = |signature: &str| format!("{HEADER_HEAD_SIGNATURE}: {signature}\r\n");
    let mut wrong = stalled_request_with(
        &server,
        INTAKE_PATH,
        &target.id,
        (2, now_ms()),
        "AAAA",
        1 << 20,
        &head("AAAA"),
    )
    .await;
    assert_eq!(status_of(&mut wrong).await, 401);
    // A head signature the collector made for a 100-byte body, replayed with a 1 MiB one.
    let time_ms = now_ms();
    let signed = Signed {
        collector: target.id.clone(),
        sequence: 2,
        time_ms,
    };
    let for_100_bytes = protocol::sign_head(&target.key, INTAKE_PATH, &signed, 100);
    let mut longer = stalled_request_with(
        &server,
        INTAKE_PATH,
        &target.id,
        (2, time_ms),
        "AAAA",
        1 << 20,
        &head(&for_100_bytes),
    )
    .await;
    assert_eq!(status_of(&mut longer).await, 401);
    // The held requests' places come back as their tasks end, not all before the answers.
    assert_eq!(
        gauge_reaches(&server, "citysoc_signed_requests_in_progress", 0).await,
        0
    );
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, &rejected_metric("intake", "missing_head_signature")),
        2
    );
    assert_eq!(
        metric(&text, &rejected_metric("intake", "bad_head_signature")),
        2
    );

    // Headers signed right, body changed on the way: refused on the body's signature.
    let body = batch(&events("tampered", 2));
    let mut tampered = body.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let time_ms = now_ms();
    let signed = Signed {
        collector: target.id.clone(),
        sequence: 2,
        time_ms,
    };
    let response = server
        .client
        .post(server.url(INTAKE_PATH))
        .header(HEADER_COLLECTOR, &target.id)
        .header(HEADER_SEQUENCE, "2")
        .header(HEADER_TIME, time_ms.to_string())
        .header(
            HEADER_SIGNATURE,
            protocol::sign(&target.key, INTAKE_PATH, &signed, &body),
        )
        .header(
            HEADER_HEAD_SIGNATURE,
            protocol::sign_head(&target.key, INTAKE_PATH, &signed, tampered.len() as u64),
        )
        .body(tampered)
        .send()
        .await
        .unwrap();
    expect_rejection(response, 401, "bad_signature").await;

    // Its own requests go on as before; the older collector's are taken without the header.
    let response = target
        .send(&server, INTAKE_PATH, 2, batch(&events("signed-2", 2)))
        .await;
    assert_eq!(response.status(), 200);
    let response = older
        .request_without_head_signature(
            &server,
            INTAKE_PATH,
            1,
            now_ms(),
            batch(&events("older", 3)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.stored_count(), 7);
    let record = |id: &str| server.registry.collector(id).unwrap().unwrap();
    assert!(record(&target.id).head_signed_since.is_some());
    assert_eq!(record(&older.id).head_signed_since, None);
}

/// A collector downgraded on purpose below head signatures: once the admin makes the server
/// forget that it signed them (`citysoc server collectors forget-head-signing`), its unsigned
/// requests are taken again, and its next signed request turns the check back on.
#[tokio::test]
async fn a_forgotten_head_signing_takes_unsigned_requests_until_the_next_signed_one() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let unsigned = |sequence: u64, name: &str| {
        collector.request_without_head_signature(
            &server,
            INTAKE_PATH,
            sequence,
            now_ms(),
            batch(&events(name, 1)),
        )
    };
    let response = collector
        .send(&server, INTAKE_PATH, 1, batch(&events("signed-1", 1)))
        .await;
    assert_eq!(response.status(), 200);
    let response = unsigned(2, "unsigned-refused").send().await.unwrap();
    expect_rejection(response, 401, "missing_head_signature").await;

    let record = server.registry.forget_head_signing(&collector.id).unwrap();
    assert_eq!(record.head_signed_since, None);
    let response = unsigned(2, "unsigned-taken").send().await.unwrap();
    assert_eq!(response.status(), 200);

    let response = collector
        .send(&server, INTAKE_PATH, 3, batch(&events("signed-3", 1)))
        .await;
    assert_eq!(response.status(), 200);
    let response = unsigned(4, "unsigned-refused-again").send().await.unwrap();
    expect_rejection(response, 401, "missing_head_signature").await;
    assert_eq!(server.stored_count(), 3);
    assert!(server.registry.forget_head_signing("c-nobody").is_err());
}

/// A head-signed batch older than the last acknowledged one (a captured request replayed
/// within the clock's window) is refused from its headers: it takes no place (the collector's
/// places all held, it still gets its 409 and not a 503) and the server answers without waiting
/// for the body it announced.
#[tokio::test]
async fn an_old_head_signed_batch_is_refused_before_it_takes_a_place() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    for sequence in 1..=2u64 {
        let body = batch(&events(&format!("b{sequence}"), 3));
        let response = collector.send(&server, INTAKE_PATH, sequence, body).await;
        assert_eq!(response.status(), 200);
    }
    let length = 1 << 20;
    let signed_head = |sequence: u64, time_ms: i64| {
        let signed = Signed {
            collector: collector.id.clone(),
            sequence,
            time_ms,
        };
        let signature = protocol::sign_head(&collector.key, INTAKE_PATH, &signed, length as u64);
        format!("{HEADER_HEAD_SIGNATURE}: {signature}\r\n")
    };
    // Batch 3 announced four times and never sent: the collector's four places are held.
    let mut held = Vec::new();
    for _ in 0..4 {
        let time_ms = now_ms();
        let head = signed_head(3, time_ms);
        held.push(
            stalled_request_with(
                &server,
                INTAKE_PATH,
                &collector.id,
                (3, time_ms),
                "AAAA",
                length,
                &head,
            )
            .await,
        );
    }
    assert_eq!(
        gauge_reaches(&server, "citysoc_signed_requests_in_progress", 4).await,
        4
    );
    let time_ms = now_ms();
    let head = signed_head(1, time_ms);
    let mut replayed = stalled_request_with(
        &server,
        INTAKE_PATH,
        &collector.id,
        (1, time_ms),
        "AAAA",
        length,
        &head,
    )
    .await;
    assert_eq!(status_of(&mut replayed).await, 409);
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, &rejected_metric("intake", "replay")), 1);
    assert_eq!(metric(&text, &rejected_metric("intake", "busy")), 0);
    drop(held);
    assert_eq!(
        gauge_reaches(&server, "citysoc_signed_requests_in_progress", 0).await,
        0
    );
    assert_eq!(server.stored_count(), 6);
    // The last batch sent again (its acknowledgement lost) is still acknowledged.
    let response = collector
        .send(&server, INTAKE_PATH, 2, batch(&events("b2", 3)))
        .await;
    assert_eq!(response.status(), 200);
    let ack: IntakeAck = response.json().await.unwrap();
    assert_eq!((ack.stored, ack.duplicates), (0, 3));
}

/// A server started with `require_head_signatures` (`citysoc server
/// --require-head-signatures`) refuses a request without a head signature from a collector
/// that has never sent one (a forged request for any collector id goes no further than its
/// headers), and takes the collector's signed requests.
#[tokio::test]
async fn a_server_requiring_head_signatures_refuses_every_unsigned_head() {
    let data = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        require_head_signatures: true,
        ..ServerConfig::new(data.path())
    };
    let server = TestServer::start_with(data, config, "http", plain_client()).await;
    let collector = server.enroll("quan-1").await;
    let body = batch(&events("fleet", 2));
    let response = collector
        .request_without_head_signature(&server, INTAKE_PATH, 1, now_ms(), body.clone())
        .send()
        .await
        .unwrap();
    let rejection = expect_rejection(response, 401, "missing_head_signature").await;
    assert!(
        rejection.message.contains("--require-head-signatures"),
        "{}",
        rejection.message
    );
    let response = collector.send(&server, INTAKE_PATH, 1, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<IntakeAck>().await.unwrap().stored, 2);
    let text = server.metrics_text().await;
    assert_eq!(
        metric(&text, &rejected_metric("intake", "missing_head_signature")),
        1
    );
}
