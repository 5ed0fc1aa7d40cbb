//! File source: appends, rotation by rename (also while the collector is stopped), copytruncate,
//! restarts from the checkpoint with no line lost and none read twice, and a checkpoint that
//! stays before lines the sink lost.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use citysoc_collector::metrics::{DropReason, SourceErrorKind};
use support::*;

fn file_source(path: &Path) -> String {
    format!(
        r#"
[[source]]
name = "auth"
type = "file"
path = "{}"
poll_interval_ms = 20
"#,
        path.display()
    )
}

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file.sync_all().unwrap();
}

fn lines(prefix: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|index| format!("<38>Nov 22 10:15:00 host sshd[1]: {prefix} line {index}\n"))
        .collect()
}

fn expected(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|index| format!("<38>Nov 22 10:15:00 host sshd[1]: {prefix} line {index}"))
        .collect()
}

/// Every event's raw text, asserting ids and sequence numbers are unique.
fn checked_raws(events: &[serde_json::Value]) -> Vec<String> {
    let ids: HashSet<_> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), events.len(), "event ids must be unique");
    let sequences: Vec<u64> = events
        .iter()
        .map(|event| event["source"]["sequence"].as_u64().unwrap())
        .collect();
    let unique: HashSet<_> = sequences.iter().collect();
    assert_eq!(
        unique.len(),
        sequences.len(),
        "sequence numbers must be unique: {sequences:?}"
    );
    raws(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_lines_are_read_and_a_partial_line_waits_for_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &lines("a", 0..3));
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 3).await;
    append(&log, "<38>Nov 22 10:15:00 host sshd[1]: a line ");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    append(&log, "3\n");
    append(&log, &lines("a", 4..6));
    harness.wait_for_events("auth", 6).await;
    let events = harness.stop().await;
    assert_eq!(checked_raws(&events), expected("a", 0..6));
    assert_eq!(events[0]["source"]["transport"], "file");
    assert_eq!(events[0]["source"]["address"], log.display().to_string());
    assert_eq!(events[0]["agency"], "quan-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_finishes_the_old_file_then_reads_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    writer.write_all(lines("old", 0..3).as_bytes()).unwrap();
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 3).await;
    // The writer keeps writing to the old file after the rename, until it reopens (as rsyslog
    // does until logrotate's postrotate HUP), and its last line has no newline.
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    writer.write_all(lines("old", 3..5).as_bytes()).unwrap();
    writer
        .write_all(b"<38>Nov 22 10:15:00 host sshd[1]: old line 5")
        .unwrap();
    writer.sync_all().unwrap();
    append(&log, &lines("new", 0..4));
    harness.wait_for_events("auth", 10).await;
    let metrics = harness.collector.metrics();
    let events = harness.stop().await;
    let mut all = expected("old", 0..6);
    all.extend(expected("new", 0..4));
    assert_eq!(checked_raws(&events), all);
    assert_eq!(metrics.source("auth").unwrap().rotations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_restarts_at_the_start_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &lines("before", 0..5));
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 5).await;
    std::fs::copy(&log, dir.path().join("auth.log.1")).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    append(&log, &lines("after", 0..2));
    harness.wait_for_events("auth", 7).await;
    let metrics = harness.collector.metrics();
    let events = harness.stop().await;
    let mut all = expected("before", 0..5);
    all.extend(expected("after", 0..2));
    assert_eq!(checked_raws(&events), all);
    assert_eq!(metrics.source("auth").unwrap().truncations(), 1);
}

/// `copytruncate` and a writer that writes past the old end before the next poll: the length
/// never looks truncated, the first bytes show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_then_fast_regrowth_is_read_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &lines("before", 0..5));
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 5).await;
    // Let an idle poll see the file's first bytes.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Truncated and, at once, longer than before.
    let after = lines("after", 0..20);
    let file = OpenOptions::new().write(true).open(&log).unwrap();
    file.set_len(0).unwrap();
    drop(file);
    append(&log, &after);
    harness.wait_for_events("auth", 25).await;
    let source = harness.collector.metrics().source("auth").unwrap().clone();
    let events = harness.stop().await;
    let mut all = expected("before", 0..5);
    all.extend(expected("after", 0..20));
    assert_eq!(raws(&events), all);
    assert_eq!(source.truncations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_continues_from_the_checkpoint_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &lines("run1", 0..10));
    append(&log, "<38>Nov 22 10:15:00 host sshd[1]: split line ");
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 10).await;
    harness.collector.stop().await;

    // While stopped: the split line is completed, more lines come.
    append(&log, "finished\n");
    append(&log, &lines("run2", 0..5));
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 6).await;
    harness.collector.stop().await;

    // A third start with nothing new reads nothing.
    let harness = start_in(dir.path(), &file_source(&log)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events = harness.stop().await;

    let mut all = expected("run1", 0..10);
    all.push("<38>Nov 22 10:15:00 host sshd[1]: split line finished".to_owned());
    all.extend(expected("run2", 0..5));
    assert_eq!(checked_raws(&events), all);
    let sequences: Vec<u64> = events
        .iter()
        .map(|event| event["source"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sequences,
        (1..=16).collect::<Vec<_>>(),
        "numbering continues across restarts"
    );
}

/// A write that fails (disk error) loses lines of the file; later writes succeed. The
/// checkpoint must not move past the lost lines, so a restart reads them again (the ones that
/// did arrive come again with the same ids, which the server drops as duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_the_sink_lost_are_read_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let archive = dir.path().join("archive.ndjson");
    append(&log, &lines("lost", 0..10));
    let sink = FailingSink::new(
        1,
        Arc::new(citysoc_collector::NdjsonFileSink::open(&archive, 1 << 30).unwrap()),
    );
    let collector = start_with_sink(dir.path(), &file_source(&log), sink).await;
    let metrics = collector.metrics();
    let source = metrics.source("auth").unwrap().clone();
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            source.drops(DropReason::SinkFailed) == 10
        })
        .await,
        "the first write fails"
    );
    append(&log, &lines("kept", 0..5));
    assert!(
        wait_until(std::time::Duration::from_secs(20), || source.events_out()
            == 5)
        .await,
        "later writes go through"
    );
    // Past the checkpoint interval, so a checkpoint was due while running, and one more at
    // the stop.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    collector.stop().await;
    let first_run = read_events(&archive);
    assert_eq!(raws(&first_run), expected("kept", 0..5));

    // Stopped before asserting, so a failure ends the test instead of leaving the file
    // source's thread running.
    let harness = start_in(dir.path(), &file_source(&log)).await;
    let restarted = harness.collector.metrics().source("auth").unwrap().clone();
    wait_until(std::time::Duration::from_secs(10), || {
        restarted.events_out() >= 15
    })
    .await;
    let events = harness.stop().await;
    let mut all = expected("kept", 0..5);
    all.extend(expected("lost", 0..10));
    all.extend(expected("kept", 0..5));
    assert_eq!(
        raws(&events),
        all,
        "the lost lines come back after a restart"
    );
    // The lines read twice are the same events.
    let ids = |events: &[serde_json::Value]| -> Vec<String> {
        events
            .iter()
            .map(|event| event["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&events[..5]), ids(&events[15..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_rotated_while_stopped_is_finished_from_its_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, &lines("first", 0..4));
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 4).await;
    harness.collector.stop().await;

    append(&log, &lines("first", 4..6));
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, &lines("second", 0..3));
    let harness = start_in(dir.path(), &file_source(&log)).await;
    harness.wait_for_events("auth", 5).await;
    let metrics = harness.collector.metrics();
    let events = harness.stop().await;

    let mut all = expected("first", 0..6);
    all.extend(expected("second", 0..3));
    assert_eq!(checked_raws(&events), all);
    assert_eq!(metrics.source("auth").unwrap().rotations(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_appears_later_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.log");
    let harness = start_in(dir.path(), &file_source(&log)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    append(&log, &lines("late", 0..2));
    harness.wait_for_events("auth", 2).await;
    let events = harness.stop().await;
    assert_eq!(checked_raws(&events), expected("late", 0..2));
}

/// A file that fails every read (here a directory: opening works, reading says EISDIR) is
/// counted at every poll, not only the first time, in the counters and in the heartbeat view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_error_is_counted_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let unreadable = dir.path().join("not-a-file");
    std::fs::create_dir(&unreadable).unwrap();
    let harness = start_in(dir.path(), &file_source(&unreadable)).await;
    let metrics = harness.collector.metrics();
    let source = metrics.source("auth").unwrap().clone();
    let counted = wait_until(std::time::Duration::from_secs(10), || {
        source.errors(SourceErrorKind::Read) >= 3
    })
    .await;
    let text = metrics.render_prometheus();
    let health = source.health();
    let events = harness.stop().await;
    assert!(
        counted,
        "read errors after the first are counted too: {}",
        source.errors(SourceErrorKind::Read)
    );
    assert!(health.errors >= 3, "{health:?}");
    assert!(
        !text.contains(
            "citysoc_collector_source_errors_total{source=\"auth\",type=\"file\",kind=\"read\"} 0\n"
        ) && !text.contains(
            "citysoc_collector_source_errors_total{source=\"auth\",type=\"file\",kind=\"read\"} 1\n"
        ),
        "{text}"
    );
    assert!(events.is_empty());
}
