//! Key rotation (including a lost answer), heartbeats, and revocation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use citysoc_collector::protocol::{
    Heartbeat, RotateResponse, SourceHealth, HEARTBEAT_PATH, INTAKE_PATH, ROTATE_PATH,
};
use common::{
    batch, events, expect_rejection, metric, now_ms, rejected_metric, TestCollector, TestServer,
};

fn decode_key(response: RotateResponse) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(response.key)
        .unwrap()
}

#[tokio::test]
async fn rotation_issues_a_new_key_and_retires_the_old_one_on_first_use() {
    let server = TestServer::start().await;
    let old = server.enroll("quan-1").await;
    let response = old.send(&server, ROTATE_PATH, 0, Vec::new()).await;
    assert_eq!(response.status(), 200);
    let new = TestCollector {
        id: old.id.clone(),
        key: decode_key(response.json().await.unwrap()),
    };
    assert_ne!(new.key, old.key);
    assert_eq!(new.key.len(), 32);

    // Until the new key is used, the old one still works.
    let response = old
        .send(&server, INTAKE_PATH, 1, batch(&events("r1", 2)))
        .await;
    assert_eq!(response.status(), 200);
    // First use of the new key.
    let response = new
        .send(&server, INTAKE_PATH, 2, batch(&events("r2", 2)))
        .await;
    assert_eq!(response.status(), 200);
    // From now on the old key is refused.
    let response = old
        .send(&server, INTAKE_PATH, 3, batch(&events("r3", 2)))
        .await;
    expect_rejection(response, 401, "bad_head_signature").await;
    assert_eq!(server.stored_count(), 4);
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_key_rotations_total"), 1);
}

#[tokio::test]
async fn a_lost_rotation_answer_does_not_lock_the_collector_out() {
    let server = TestServer::start().await;
    let original = server.enroll("quan-1").await;
    // The answer to this rotation is "lost": the collector never learns `lost_key`.
    let response = original.send(&server, ROTATE_PATH, 0, Vec::new()).await;
    assert_eq!(response.status(), 200);
    let lost = TestCollector {
        id: original.id.clone(),
        key: decode_key(response.json().await.unwrap()),
    };
    // The collector keeps working with the key it has...
    let response = original
        .send(&server, INTAKE_PATH, 1, batch(&events("l1", 3)))
        .await;
    assert_eq!(response.status(), 200);
    // ...and asks again, signing with the old key: it gets a third key.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let response = original.send(&server, ROTATE_PATH, 0, Vec::new()).await;
    assert_eq!(response.status(), 200);
    let third = TestCollector {
        id: original.id.clone(),
        key: decode_key(response.json().await.unwrap()),
    };
    // The key whose answer was lost is gone; the old one works until the third is used.
    let response = lost
        .send(&server, INTAKE_PATH, 2, batch(&events("l2", 1)))
        .await;
    expect_rejection(response, 401, "bad_head_signature").await;
    let response = original
        .send(&server, INTAKE_PATH, 2, batch(&events("l2", 1)))
        .await;
    assert_eq!(response.status(), 200);
    let response = third
        .send(&server, INTAKE_PATH, 3, batch(&events("l3", 1)))
        .await;
    assert_eq!(response.status(), 200);
    let response = original
        .send(&server, INTAKE_PATH, 4, batch(&events("l4", 1)))
        .await;
    expect_rejection(response, 401, "bad_head_signature").await;
    assert_eq!(server.stored_count(), 5);
}

#[tokio::test]
async fn a_replayed_rotation_or_heartbeat_is_refused() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let time = now_ms();
    let request = || collector.request(&server, ROTATE_PATH, 0, time, Vec::new());
    let response = request().send().await.unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    // The same signed request again, within the clock window (signed with the now
    // previous key, which is still accepted): refused, the key is not rotated again.
    expect_rejection(request().send().await.unwrap(), 409, "replay").await;

    let heartbeat = serde_json::to_vec(&Heartbeat::default()).unwrap();
    // Still the old key: accepted, since the new one was never used.
    let current = collector.clone();
    let time = now_ms();
    let send = || {
        current
            .request(&server, HEARTBEAT_PATH, 0, time, heartbeat.clone())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    expect_rejection(send().await.unwrap(), 409, "replay").await;
    // Heartbeats and rotations carry sequence 0.
    let response = current
        .send(&server, HEARTBEAT_PATH, 3, heartbeat.clone())
        .await;
    expect_rejection(response, 400, "bad_headers").await;
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, &rejected_metric("rotate", "replay")), 1);
    assert_eq!(metric(&text, &rejected_metric("heartbeat", "replay")), 1);
    assert_eq!(
        metric(&text, &rejected_metric("heartbeat", "bad_headers")),
        1
    );
    assert_eq!(metric(&text, "citysoc_key_rotations_total"), 1);
}

#[tokio::test]
async fn heartbeats_are_stored_with_last_seen() {
    let server = TestServer::start().await;
    let collector = server.enroll("quan-1").await;
    let mut heartbeat = Heartbeat {
        version: "0.1.0".into(),
        uptime_seconds: 3600,
        buffer_bytes: 1024,
        buffer_events: 12,
        buffer_max_bytes: 4096,
        batches_acked: 7,
        config_hash: "ab".repeat(32),
        ..Heartbeat::default()
    };
    heartbeat.sources.insert(
        "syslog-udp".into(),
        SourceHealth {
            events_in: 100,
            events_out: 99,
            drops: 1,
            errors: 0,
        },
    );
    let response = collector
        .send(
            &server,
            HEARTBEAT_PATH,
            0,
            serde_json::to_vec(&heartbeat).unwrap(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let record = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(record.last_heartbeat.as_ref(), Some(&heartbeat));
    assert!(record.last_heartbeat_at.is_some());
    assert!(record.last_seen.is_some());
    assert_eq!(
        citysoc_console::registry::heartbeat_summary(&heartbeat),
        "v0.1.0 up 60m in 100 buffer 25% (12 events) drops 1 errors 0"
    );

    // A body that is not a heartbeat is refused and changes nothing.
    let response = collector
        .send(&server, HEARTBEAT_PATH, 0, b"{\"version\": 3}".to_vec())
        .await;
    expect_rejection(response, 400, "bad_body").await;
    let again = server.registry.collector(&collector.id).unwrap().unwrap();
    assert_eq!(again.last_heartbeat.as_ref(), Some(&heartbeat));
    let text = server.metrics_text().await;
    assert_eq!(metric(&text, "citysoc_heartbeats_total"), 1);
}
