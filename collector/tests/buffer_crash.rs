//! The disk buffer under a real kill -9: a child process (this test binary run again) appends
//! in a loop with `SyncPolicy::EveryAppend` and prints each group's offsets once `append`
//! returned; the parent kills it with SIGKILL at a random moment, reopens the buffer, and
//! checks that every reported record is there, intact, once, and that acknowledged records
//! never come back. Several rounds on the same directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use citysoc_collector::{BufferConfig, DiskBuffer, Offset, SyncPolicy, WhenFull};

const CHILD_ENV: &str = "CITYSOC_BUFFER_CRASH_CHILD";

fn config() -> BufferConfig {
    BufferConfig {
        max_bytes: 64 << 20,
        segment_bytes: 64 << 10,
        when_full: WhenFull::Block,
        sync: SyncPolicy::EveryAppend,
    }
}

/// The payload the child writes as record `index` of group `group` in round `round`: the
/// parent rebuilds it to check the bytes.
fn payload(round: u64, group: u64, index: u64) -> Vec<u8> {
    let len = 30 + ((round * 7919 + group * 131 + index * 17) % 400) as usize;
    let mut bytes =
        format!("{{\"round\":{round},\"group\":{group},\"index\":{index},\"pad\":\"").into_bytes();
    while bytes.len() < len {
        bytes.push(b'a' + ((bytes.len() as u64 + group) % 26) as u8);
    }
    bytes.extend_from_slice(b"\"}");
    bytes
}

/// The child: appends groups of 1–5 records until killed, reporting each.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // only does something when started by the parent below
    };
    let round: u64 = std::env::var("CITYSOC_BUFFER_CRASH_ROUND")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let buffer = DiskBuffer::open(Path::new(&dir), config()).unwrap();
    println!("READY");
    for group in 0.. {
        let records: Vec<Vec<u8>> = (0..1 + group % 5)
            .map(|index| payload(round, group, index))
            .collect();
        let (first, last) = buffer
            .append_with_offsets(&records, Duration::from_secs(5))
            .unwrap()
            .unwrap();
        println!("OK {round} {group} {} {}", first.0, last.0);
    }
}

#[test]
fn kill_9_never_loses_a_reported_append_nor_revives_an_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    // (offset → (round, group, index)) of every record reported written and not yet acknowledged.
    let mut expected = std::collections::BTreeMap::new();
    let mut acked_below = 0u64;
    for round in 0..8u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("CITYSOC_BUFFER_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_sender, lines) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_sender.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it appends, then let it run a varying while before the kill.
        let started = Instant::now();
        let mut ready = false;
        let mut reported = Vec::new();
        let run_for = Duration::from_millis(30 + round * 37 % 150);
        let mut killed_at = None;
        loop {
            match lines.recv_timeout(Duration::from_millis(5)) {
                Ok(line) if line.ends_with("READY") => ready = true,
                Ok(line) if line.starts_with("OK ") => reported.push(line),
                Ok(_) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if killed_at.is_none() && ready && reported.len() > 3 && started.elapsed() > run_for {
                child.kill().unwrap(); // SIGKILL
                killed_at = Some(Instant::now());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "child never got going"
            );
        }
        child.wait().unwrap();
        reader.join().unwrap();
        assert!(killed_at.is_some(), "the child stopped by itself");
        for line in &reported {
            let fields: Vec<u64> = line[3..]
                .split(' ')
                .map(|field| field.parse().unwrap())
                .collect();
            let (round, group, first, last) = (fields[0], fields[1], fields[2], fields[3]);
            for (index, offset) in (first..=last).enumerate() {
                assert!(
                    expected
                        .insert(offset, (round, group, index as u64))
                        .is_none(),
                    "offset {offset} reported twice"
                );
            }
        }

        let buffer = DiskBuffer::open(dir.path(), config()).unwrap();
        let records = buffer
            .read(None, usize::MAX, usize::MAX, Duration::ZERO)
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for (offset, bytes) in &records {
            assert!(
                offset.0 >= acked_below,
                "acknowledged offset {} came back",
                offset.0
            );
            assert!(seen.insert(offset.0), "offset {} read twice", offset.0);
            if let Some((round, group, index)) = expected.get(&offset.0) {
                assert_eq!(
                    bytes,
                    &payload(*round, *group, *index),
                    "offset {} damaged",
                    offset.0
                );
            }
        }
        for offset in expected.keys() {
            assert!(
                seen.contains(offset),
                "round {round}: reported offset {offset} is missing"
            );
        }
        let stats = buffer.stats();
        assert_eq!(stats.corrupt_records_skipped, 0, "{stats:?}");
        eprintln!(
            "round {round}: {} appends reported, {} records on disk, {} torn bytes cut",
            reported.len(),
            records.len(),
            stats.torn_bytes_truncated
        );
        // Records that made it to disk without being reported (killed between the write and
        // the print) are kept too: they are whole groups.
        // Acknowledge about half, as a forwarder would.
        if let Some((offset, _)) = records.get(records.len() / 2) {
            buffer.ack(*offset).unwrap();
            acked_below = offset.0 + 1;
            expected.retain(|key, _| *key >= acked_below);
        }
        assert_eq!(buffer.stats().first_unacked, Offset(acked_below));
    }
}
