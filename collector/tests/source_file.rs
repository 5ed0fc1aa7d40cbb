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

/// A write that fails (disk error) loses lines of the file; later writes succeed. The running
/// source reads the lost lines again from its checkpoint, with their record numbers (so the
/// same event ids), and the checkpoint then moves on: a restart reads nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_the_sink_lost_are_read_again_by_the_running_source() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let archive = dir.path().join("archive.ndjson");
    append(&log, &lines("lost", 0..10));
    let (collector, source, lost) = start_losing_the_first_write(dir.path(), &log, &archive).await;
    // The checkpoint interval is a second: the lines come back within a few.
    let read_again = wait_until(std::time::Duration::from_secs(10), || {
        source.events_out() == 10
    })
    .await;
    append(&log, &lines("kept", 0..5));
    let kept = wait_until(std::time::Duration::from_secs(10), || {
        source.events_out() == 15
    })
    .await;
    // Past the checkpoint interval, so the checkpoint moved past the lines read again.
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    collector.stop().await;
    assert!(lost, "the first write fails");
    assert!(
        read_again,
        "the lost lines are read again without a restart: {} events out",
        source.events_out()
    );
    assert!(kept, "later lines go through");
    assert_eq!(source.rereads(), 1);
    let first_run = read_events(&archive);
    let mut all = expected("lost", 0..10);
    all.extend(expected("kept", 0..5));
    assert_eq!(checked_raws(&first_run), all);
    let sequences: Vec<u64> = first_run
        .iter()
        .map(|event| event["source"]["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sequences,
        (1..=15).collect::<Vec<_>>(),
        "the lines read again keep their numbers"
    );

    // The hold is released: a restart reads nothing again. Stopped before asserting, so a
    // failure ends the test instead of leaving the file source's thread running.
    let harness = start_in(dir.path(), &file_source(&log)).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events = harness.stop().await;
    assert_eq!(raws(&events), all, "nothing read twice after the restart");
}

/// When the lines the sink lost were in a file rotated away before the source could read them
/// again, the running source cannot read them from the new file: the checkpoint stays before
/// them and a restart reads them (finding the rotated file by identity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_lost_before_a_rotation_are_read_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let archive = dir.path().join("archive.ndjson");
    append(&log, &lines("lost", 0..10));
    let (collector, source, lost) = start_losing_the_first_write(dir.path(), &log, &archive).await;
    // Rotated at once: well within the checkpoint interval the source waits (with no new
    // failure) before it reads lost lines again.
    std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap();
    append(&log, &lines("new", 0..3));
    let arrived = wait_until(std::time::Duration::from_secs(20), || {
        source.events_out() >= 3
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    collector.stop().await;
    assert!(lost, "the first write fails");
    assert!(arrived, "{} events out", source.events_out());
    assert_eq!(raws(&read_events(&archive)), expected("new", 0..3));
    assert_eq!(source.rereads(), 0);

    let harness = start_in(dir.path(), &file_source(&log)).await;
    let restarted = harness.collector.metrics().source("auth").unwrap().clone();
    wait_until(std::time::Duration::from_secs(10), || {
        restarted.events_out() >= 13
    })
    .await;
    let events = harness.stop().await;
    let mut all = expected("new", 0..3);
    all.extend(expected("lost", 0..10));
    all.extend(expected("new", 0..3));
    assert_eq!(
        raws(&events),
        all,
        "the lost lines come back after a restart"
    );
    // The new file's lines read twice are the same events.
    let ids: Vec<&str> = events
        .iter()
        .map(|event| event["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids[..3], ids[13..]);
}

/// When the lines the sink lost are truncated away (`copytruncate`: the copy has them, the
/// source follows the emptied file) before the source could read them again, they cannot be
/// read from this file any more: the source lets go of the old checkpoint instead of reading
/// the file's new lines a second time from it under other record numbers (duplicates the
/// server cannot recognize), in this run and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_lost_before_a_copytruncate_do_not_make_the_new_lines_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let archive = dir.path().join("archive.ndjson");
    append(&log, &lines("lost", 0..10));
    let (collector, source, lost) = start_losing_the_first_write(dir.path(), &log, &archive).await;
    // copytruncate at once, well within the interval before a reading again.
    std::fs::copy(&log, dir.path().join("auth.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &lines("new", 0..3));
    let arrived = wait_until(std::time::Duration::from_secs(20), || {
        source.events_out() >= 3
    })
    .await;
    // Past several checkpoint intervals: time for a wrong reading again to happen.
    tokio::time::sleep(std::time::Duration::from_millis(3_500)).await;
    collector.stop().await;
    assert!(lost, "the first write fails");
    assert!(arrived, "{} events out", source.events_out());
    assert_eq!(source.truncations(), 1);
    assert_eq!(source.rereads(), 0);
    assert_eq!(raws(&read_events(&archive)), expected("new", 0..3));

    let harness = start_in(dir.path(), &file_source(&log)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let events = harness.stop().await;
    assert_eq!(
        raws(&events),
        expected("new", 0..3),
        "nothing read twice after the restart"
    );
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

/// Starts a collector tailing `log` (10 lines in it) into an archive at `archive` whose first
/// write fails; waits until that write has lost the 10 lines (true if it did).
async fn start_losing_the_first_write(
    dir: &Path,
    log: &Path,
    archive: &Path,
) -> (
    citysoc_collector::RunningCollector,
    Arc<citysoc_collector::metrics::SourceMetrics>,
    bool,
) {
    let sink = FailingSink::new(
        1,
        Arc::new(citysoc_collector::NdjsonFileSink::open(archive, 1 << 30).unwrap()),
    );
    let collector = start_with_sink(dir, &file_source(log), sink).await;
    let metrics = collector.metrics();
    let source = metrics.source("auth").unwrap().clone();
    let lost = wait_until(std::time::Duration::from_secs(20), || {
        source.drops(DropReason::SinkFailed) == 10
    })
    .await;
    (collector, source, lost)
}
