//! Tests of the disk buffer: behaviour, crash recovery by damaging files, and a model check.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const NO_WAIT: Duration = Duration::ZERO;

fn config(max_bytes: u64, segment_bytes: u64, when_full: WhenFull) -> BufferConfig {
    BufferConfig {
        max_bytes,
        segment_bytes,
        when_full,
        sync: SyncPolicy::EveryAppend,
    }
}

fn record(offset_hint: u64, len: usize) -> Vec<u8> {
    let mut bytes = format!("r{offset_hint}:").into_bytes();
    while bytes.len() < len {
        bytes.push(b'a' + (bytes.len() % 26) as u8);
    }
    bytes.truncate(len.max(1));
    bytes
}

fn read_all(buffer: &DiskBuffer) -> Vec<(u64, Vec<u8>)> {
    buffer
        .read(None, usize::MAX, usize::MAX, NO_WAIT)
        .unwrap()
        .into_iter()
        .map(|(offset, payload)| (offset.0, payload))
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_group_larger_than_a_write_chunk_is_written_whole_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Small records around one larger than a write chunk, several chunks in all.
    let mut records: Vec<Vec<u8>> = (0..3_000)
        .map(|n| record(n, 200 + (n as usize % 700)))
        .collect();
    records.insert(
        1_500,
        record(1_500_000, super::segment_log::WRITE_CHUNK + 4_096),
    );
    let expected: Vec<(u64, Vec<u8>)> = records
        .iter()
        .enumerate()
        .map(|(index, payload)| (index as u64, payload.clone()))
        .collect();
    {
        let buffer =
            DiskBuffer::open(dir.path(), config(1 << 30, 1 << 30, WhenFull::Block)).unwrap();
        buffer.append(&records, NO_WAIT).unwrap();
        buffer.append(&records[..10], NO_WAIT).unwrap();
        assert_eq!(&read_all(&buffer)[..records.len()], &expected[..]);
    }
    let buffer = DiskBuffer::open(dir.path(), config(1 << 30, 1 << 30, WhenFull::Block)).unwrap();
    let again = read_all(&buffer);
    assert_eq!(again.len(), records.len() + 10);
    assert_eq!(&again[..records.len()], &expected[..]);
    assert_eq!(buffer.stats().corrupt_records_skipped, 0);
}

#[test]
fn appends_read_in_order_and_offsets_continue_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), config(1 << 20, 256, WhenFull::Block)).unwrap();
    let group: Vec<Vec<u8>> = (0..10).map(|i| record(i, 40)).collect();
    assert_eq!(
        buffer.append_with_offsets(&group, NO_WAIT).unwrap(),
        Some((Offset(0), Offset(9)))
    );
    let first = buffer.read(None, 4, usize::MAX, NO_WAIT).unwrap();
    assert_eq!(first.len(), 4);
    assert_eq!(first[0], (Offset(0), group[0].clone()));
    let next = buffer
        .read(Some(Offset(3)), 100, usize::MAX, NO_WAIT)
        .unwrap();
    assert_eq!(next.len(), 6);
    assert_eq!(next[5], (Offset(9), group[9].clone()));
    // The byte limit stops a batch early, but never before its first record.
    assert_eq!(buffer.read(None, 100, 1, NO_WAIT).unwrap().len(), 1);
    assert_eq!(buffer.read(None, 100, 80, NO_WAIT).unwrap().len(), 2);
    // Topping up a batch never passes the limit, and says when a record was left for that.
    assert_eq!(
        buffer.read_to_fill(None, 100, 39, NO_WAIT).unwrap(),
        (Vec::new(), true)
    );
    let (fill, full) = buffer
        .read_to_fill(Some(Offset(1)), 100, 119, NO_WAIT)
        .unwrap();
    assert_eq!((fill.len(), full), (2, true));
    assert_eq!(fill[0], (Offset(2), group[2].clone()));
    // Reading on after a record that was left starts with it.
    let (fill, full) = buffer
        .read_to_fill(Some(Offset(3)), 100, 40, NO_WAIT)
        .unwrap();
    assert_eq!((fill.len(), full), (1, true));
    assert_eq!(fill[0], (Offset(4), group[4].clone()));
    let (fill, full) = buffer
        .read_to_fill(Some(Offset(3)), 100, 1 << 20, NO_WAIT)
        .unwrap();
    assert_eq!((fill.len(), full), (6, false));
    assert_eq!(
        buffer
            .read_to_fill(Some(Offset(9)), 100, 1 << 20, NO_WAIT)
            .unwrap(),
        (Vec::new(), false),
        "nothing after the last record: the wait ended"
    );
    buffer.ack(Offset(4)).unwrap();
    assert_eq!(read_all(&buffer).first().map(|r| r.0), Some(5));
    drop(buffer);

    let buffer = DiskBuffer::open(dir.path(), config(1 << 20, 256, WhenFull::Block)).unwrap();
    let records = read_all(&buffer);
    assert_eq!(
        records.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![5, 6, 7, 8, 9]
    );
    assert_eq!(
        buffer
            .append_with_offsets(&[record(10, 5)], NO_WAIT)
            .unwrap(),
        Some((Offset(10), Offset(10)))
    );
    let stats = buffer.stats();
    assert_eq!((stats.records, stats.appended, stats.acked), (6, 1, 0));
    assert_eq!(stats.first_unacked, Offset(5));
    assert_eq!(stats.next_offset, Offset(11));
}

#[test]
fn reads_wait_for_appends() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = Arc::new(DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap());
    let started = Instant::now();
    assert!(buffer
        .read(None, 10, 1000, Duration::from_millis(50))
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(50));
    let writer = Arc::clone(&buffer);
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        writer.append(&[b"late".to_vec()], NO_WAIT).unwrap();
    });
    let records = buffer
        .read(None, 10, 1000, Duration::from_secs(10))
        .unwrap();
    assert_eq!(records, vec![(Offset(0), b"late".to_vec())]);
    thread.join().unwrap();
}

#[test]
fn acknowledged_segments_are_deleted_and_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), config(1 << 20, 200, WhenFull::Block)).unwrap();
    for i in 0..20 {
        buffer.append(&[record(i, 60)], NO_WAIT).unwrap();
    }
    // 80-byte frames, two per 200-byte segment.
    assert_eq!(segment_files(dir.path()).len(), 10);
    assert_eq!(buffer.stats().segments, 10);
    buffer.ack(Offset(6)).unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        7,
        "offsets 0..=5 were in 3 segments"
    );
    assert_eq!(buffer.stats().records, 13);
    assert_eq!(buffer.stats().bytes, 13 * 80);
    buffer.ack(Offset(19)).unwrap();
    assert!(segment_files(dir.path()).is_empty());
    assert_eq!(buffer.stats().bytes, 0);
    drop(buffer);
    let buffer = DiskBuffer::open(dir.path(), config(1 << 20, 200, WhenFull::Block)).unwrap();
    assert!(read_all(&buffer).is_empty());
    buffer.append(&[record(20, 10)], NO_WAIT).unwrap();
    assert_eq!(
        read_all(&buffer)[0].0,
        20,
        "offsets go on after a full drain"
    );
}

#[test]
fn acknowledging_records_never_appended_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert!(matches!(
        buffer.ack(Offset(0)),
        Err(CollectorError::InvalidAck {
            upto: 0,
            newest: None
        })
    ));
    buffer.append(&[b"x".to_vec()], NO_WAIT).unwrap();
    assert!(buffer.ack(Offset(1)).is_err());
    buffer.ack(Offset(0)).unwrap();
    buffer.ack(Offset(0)).unwrap();
}

#[test]
fn the_batch_number_is_stored_with_the_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert_eq!(buffer.next_sequence(), 1);
    buffer
        .append(&[b"x".to_vec(), b"y".to_vec()], NO_WAIT)
        .unwrap();
    buffer.ack_with_sequence(Offset(0), 2).unwrap();
    buffer.set_sequence(3).unwrap();
    drop(buffer);
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert_eq!(buffer.next_sequence(), 3);
    assert_eq!(read_all(&buffer), vec![(1, b"y".to_vec())]);
}

#[test]
fn a_second_process_cannot_open_the_same_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let _buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert!(matches!(
        DiskBuffer::open(dir.path(), BufferConfig::default()),
        Err(CollectorError::BufferLocked { .. })
    ));
}

#[test]
fn invalid_settings_are_listed() {
    let error = BufferConfig {
        max_bytes: 0,
        segment_bytes: 0,
        when_full: WhenFull::Block,
        sync: SyncPolicy::Interval(Duration::ZERO),
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("max_bytes")
            && error.contains("segment_bytes")
            && error.contains("interval"),
        "{error}"
    );
    assert_eq!(
        "drop_oldest".parse::<WhenFull>().unwrap(),
        WhenFull::DropOldest
    );
    assert!("drop".parse::<WhenFull>().is_err());
}

#[test]
fn block_waits_then_fails_with_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    // Room for three 70-byte frames.
    let buffer = DiskBuffer::open(dir.path(), config(210, 1 << 20, WhenFull::Block)).unwrap();
    let group: Vec<Vec<u8>> = (0..3).map(|i| record(i, 50)).collect();
    buffer.append(&group, NO_WAIT).unwrap();
    let started = Instant::now();
    let error = buffer
        .append(&[record(3, 50)], Duration::from_millis(100))
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(
        matches!(
            error,
            CollectorError::BufferFull {
                bytes: 210,
                needed: 70,
                max_bytes: 210
            }
        ),
        "{error}"
    );
    let stats = buffer.stats();
    assert_eq!(
        (stats.records, stats.appended, stats.next_offset),
        (3, 3, Offset(3))
    );
    assert_eq!(read_all(&buffer).len(), 3);
    assert!(matches!(
        buffer.append(&[record(9, 500)], NO_WAIT),
        Err(CollectorError::RecordTooLarge { .. })
    ));
}

#[test]
fn block_resumes_when_the_forwarder_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let buffer =
        Arc::new(DiskBuffer::open(dir.path(), config(210, 1 << 20, WhenFull::Block)).unwrap());
    buffer
        .append(&(0..3).map(|i| record(i, 50)).collect::<Vec<_>>(), NO_WAIT)
        .unwrap();
    let forwarder = Arc::clone(&buffer);
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        forwarder.ack(Offset(0)).unwrap();
    });
    buffer
        .append(&[record(3, 50)], Duration::from_secs(10))
        .unwrap();
    thread.join().unwrap();
    let offsets: Vec<u64> = read_all(&buffer).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![1, 2, 3]);
}

#[test]
fn drop_oldest_counts_exactly_what_it_dropped_and_keeps_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let max_bytes = 1000;
    let buffer =
        DiskBuffer::open(dir.path(), config(max_bytes, 300, WhenFull::DropOldest)).unwrap();
    let mut appended = 0u64;
    for i in 0..200u64 {
        let size = 1 + (i * 37 % 90) as usize;
        let group: Vec<Vec<u8>> = (0..1 + i % 3).map(|j| record(i * 10 + j, size)).collect();
        appended += group.len() as u64;
        buffer.append(&group, NO_WAIT).unwrap();
        let stats = buffer.stats();
        assert!(stats.bytes <= max_bytes, "{stats:?}");
        assert_eq!(stats.records + stats.dropped, appended, "{stats:?}");
        if i == 100 {
            // Some delivered on the way: acknowledged records are not drops.
            let batch = buffer.read(None, 5, usize::MAX, NO_WAIT).unwrap();
            buffer.ack(batch.last().unwrap().0).unwrap();
            appended -= 5;
        }
    }
    let stats = buffer.stats();
    let present = read_all(&buffer);
    assert_eq!(present.len() as u64, stats.records);
    assert!(stats.dropped > 0);
    // What is left is the newest records, contiguous up to the last one.
    let offsets: Vec<u64> = present.iter().map(|r| r.0).collect();
    assert_eq!(offsets.last().copied(), Some(stats.next_offset.0 - 1));
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(
        segment_files(dir.path()).len() <= 5,
        "dropped segments are deleted"
    );
    drop(buffer);
    let buffer =
        DiskBuffer::open(dir.path(), config(max_bytes, 300, WhenFull::DropOldest)).unwrap();
    assert_eq!(
        buffer.stats().dropped,
        stats.dropped,
        "the drop count survives restarts"
    );
    assert_eq!(read_all(&buffer).len() as u64, stats.records);
}

/// Writes a buffer with several segments and groups, closes it, and returns what was written
/// with each group's byte range in the last segment.
fn written_buffer(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let buffer = DiskBuffer::open(dir, config(1 << 20, 300, WhenFull::Block)).unwrap();
    let mut written = Vec::new();
    let mut offset = 0u64;
    for group_size in [1usize, 2, 3, 1, 2, 1, 3, 2] {
        let group: Vec<Vec<u8>> = (0..group_size)
            .map(|j| record(offset + j as u64, 20 + (offset as usize * 13) % 40))
            .collect();
        buffer.append(&group, NO_WAIT).unwrap();
        for payload in group {
            written.push((offset, payload));
            offset += 1;
        }
    }
    written
}

#[test]
fn a_torn_last_segment_loses_only_the_unfinished_append() {
    let original = tempfile::tempdir().unwrap();
    let written = written_buffer(original.path());
    let segments = segment_files(original.path());
    assert!(segments.len() >= 3);
    let last = segments.last().unwrap();
    let last_name = last.file_name().unwrap().to_owned();
    let last_len = fs::metadata(last).unwrap().len();
    let first_in_last: u64 = last_name.to_str().unwrap()[..20].parse().unwrap();

    // Group boundaries in the last segment, from the frame lengths.
    let bytes = fs::read(last).unwrap();
    let mut group_ends = vec![0u64];
    let mut position = 0usize;
    let mut offset = first_in_last;
    let mut complete_at = Vec::new(); // (end position of group, offsets up to)
    while position < bytes.len() {
        let header = frame::parse_header(&bytes[position..]).unwrap();
        position += header.frame_bytes() as usize;
        offset += 1;
        if !header.continues {
            group_ends.push(position as u64);
            complete_at.push((position as u64, offset));
        }
    }

    for cut in 0..=last_len {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(original.path(), copy.path());
        let file = fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join(&last_name))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);

        let buffer = DiskBuffer::open(copy.path(), config(1 << 20, 300, WhenFull::Block)).unwrap();
        let survivors = complete_at
            .iter()
            .filter(|(end, _)| *end <= cut)
            .map(|(_, upto)| *upto)
            .max()
            .unwrap_or(first_in_last);
        let records = read_all(&buffer);
        assert_eq!(
            records,
            written[..survivors as usize].to_vec(),
            "cut at {cut}"
        );
        let stats = buffer.stats();
        let kept = group_ends
            .iter()
            .filter(|end| **end <= cut)
            .max()
            .copied()
            .unwrap_or(0);
        assert_eq!(stats.torn_bytes_truncated, cut - kept, "cut at {cut}");
        assert_eq!(stats.corrupt_records_skipped, 0, "cut at {cut}");
        // Appends go on right after the survivors.
        assert_eq!(
            buffer
                .append_with_offsets(&[b"next".to_vec()], NO_WAIT)
                .unwrap(),
            Some((Offset(survivors), Offset(survivors)))
        );
        drop(buffer);
        let buffer = DiskBuffer::open(copy.path(), config(1 << 20, 300, WhenFull::Block)).unwrap();
        assert_eq!(
            read_all(&buffer).len() as u64,
            survivors + 1,
            "cut at {cut}"
        );
        assert_eq!(buffer.stats().torn_bytes_truncated, 0);
    }
}

#[test]
fn a_flipped_byte_costs_exactly_the_record_it_hit() {
    let original = tempfile::tempdir().unwrap();
    let written = written_buffer(original.path());
    let segments = segment_files(original.path());
    let last = segments.last().unwrap().clone();
    for path in &segments {
        let name = path.file_name().unwrap().to_owned();
        let bytes = fs::read(path).unwrap();
        let first: u64 = name.to_str().unwrap()[..20].parse().unwrap();
        // The frame every byte belongs to.
        let mut owner = Vec::new();
        let mut position = 0usize;
        let mut offset = first;
        let mut last_frame_start = 0;
        while position < bytes.len() {
            let len = frame::parse_header(&bytes[position..])
                .unwrap()
                .frame_bytes() as usize;
            last_frame_start = position;
            owner.extend(std::iter::repeat_n(offset, len));
            position += len;
            offset += 1;
        }
        for index in 0..bytes.len() {
            if *path == last && index >= last_frame_start {
                // Damage to the newest frame looks exactly like a torn write.
                continue;
            }
            let copy = tempfile::tempdir().unwrap();
            copy_dir(original.path(), copy.path());
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x5a;
            fs::write(copy.path().join(&name), &damaged).unwrap();

            let buffer =
                DiskBuffer::open(copy.path(), config(1 << 20, 300, WhenFull::Block)).unwrap();
            let expected: Vec<(u64, Vec<u8>)> = written
                .iter()
                .filter(|(offset, _)| *offset != owner[index])
                .cloned()
                .collect();
            assert_eq!(read_all(&buffer), expected, "{name:?} byte {index}");
            let stats = buffer.stats();
            assert_eq!(stats.corrupt_records_skipped, 1, "{name:?} byte {index}");
            assert_eq!(stats.records, written.len() as u64 - 1);
            // Acknowledging across the damage works and frees the segments.
            buffer.ack(Offset(written.len() as u64 - 1)).unwrap();
            assert!(segment_files(copy.path()).is_empty());
        }
    }
}

#[test]
fn damage_found_after_open_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), config(1 << 20, 1 << 20, WhenFull::Block)).unwrap();
    let group: Vec<Vec<u8>> = (0..5).map(|i| record(i, 30)).collect();
    buffer.append(&group, NO_WAIT).unwrap();
    let path = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&path).unwrap();
    bytes[50 + 20 + 5] ^= 1; // inside the second record's payload
    fs::write(&path, &bytes).unwrap();
    let offsets: Vec<u64> = read_all(&buffer).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 2, 3, 4]);
    assert_eq!(buffer.stats().corrupt_records_skipped, 1);
    assert_eq!(read_all(&buffer).len(), 4, "counted once");
    assert_eq!(buffer.stats().corrupt_records_skipped, 1);
}

#[test]
fn a_crash_while_writing_the_state_keeps_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    buffer
        .append(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], NO_WAIT)
        .unwrap();
    buffer.ack_with_sequence(Offset(0), 2).unwrap();
    drop(buffer);
    // What a crash between writing the temporary state and renaming it leaves.
    fs::write(dir.path().join(state::STATE_TEMP_FILE), b"{\"first_unack").unwrap();
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert_eq!(
        read_all(&buffer),
        vec![(1, b"b".to_vec()), (2, b"c".to_vec())]
    );
    assert_eq!(buffer.next_sequence(), 2);
    assert!(!dir.path().join(state::STATE_TEMP_FILE).exists());
    drop(buffer);

    // Without any state, everything still on disk is sent again (duplicates, not losses).
    fs::remove_file(dir.path().join(state::STATE_FILE)).unwrap();
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert_eq!(read_all(&buffer).len(), 3);
    drop(buffer);

    // A damaged state is an error that names the file, not a guess.
    fs::write(dir.path().join(state::STATE_FILE), b"garbage").unwrap();
    let error = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap_err();
    assert!(
        matches!(error, CollectorError::BufferCorrupt { .. }),
        "{error}"
    );
}

#[test]
fn a_segment_removed_by_hand_is_counted_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let written = written_buffer(dir.path());
    let segments = segment_files(dir.path());
    let second = &segments[1];
    let next: u64 = segments[2].file_name().unwrap().to_str().unwrap()[..20]
        .parse()
        .unwrap();
    let first: u64 = second.file_name().unwrap().to_str().unwrap()[..20]
        .parse()
        .unwrap();
    fs::remove_file(second).unwrap();
    let buffer = DiskBuffer::open(dir.path(), config(1 << 20, 300, WhenFull::Block)).unwrap();
    assert_eq!(buffer.stats().corrupt_records_skipped, next - first);
    assert_eq!(
        read_all(&buffer).len() as u64,
        written.len() as u64 - (next - first)
    );
}

#[test]
fn interval_sync_appends_are_readable_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let settings = BufferConfig {
        sync: SyncPolicy::Interval(Duration::from_millis(20)),
        ..config(1 << 20, 500, WhenFull::Block)
    };
    let buffer = DiskBuffer::open(dir.path(), settings).unwrap();
    for i in 0..50 {
        buffer.append(&[record(i, 30)], NO_WAIT).unwrap();
    }
    buffer.sync().unwrap();
    assert_eq!(read_all(&buffer).len(), 50);
    drop(buffer);
    std::thread::sleep(Duration::from_millis(50)); // the sync thread lets go
    let buffer = DiskBuffer::open(dir.path(), settings).unwrap();
    assert_eq!(read_all(&buffer).len(), 50);
}

// ---- model check ----

#[derive(Debug, Clone)]
enum Operation {
    Append(Vec<usize>),
    Read(usize),
    AckRead,
    AckOldest(usize),
    Reopen,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => proptest::collection::vec(0usize..70, 1..4).prop_map(Operation::Append),
        2 => (1usize..6).prop_map(Operation::Read),
        1 => Just(Operation::AckRead),
        1 => (0usize..4).prop_map(Operation::AckOldest),
        1 => Just(Operation::Reopen),
    ]
}

struct Model {
    unacked: VecDeque<(u64, Vec<u8>)>,
    next: u64,
    dropped: u64,
    cursor: Option<u64>,
    max_bytes: u64,
}

impl Model {
    fn bytes(&self) -> u64 {
        self.unacked
            .iter()
            .map(|(_, p)| frame::frame_bytes(p.len()))
            .sum()
    }

    fn ack(&mut self, upto: u64) {
        while self
            .unacked
            .front()
            .is_some_and(|(offset, _)| *offset <= upto)
        {
            self.unacked.pop_front();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_buffer_behaves_like_a_queue(
        operations in proptest::collection::vec(operation(), 1..60),
        max_bytes in 150u64..700,
        segment_bytes in 40u64..300,
        drop_oldest in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let when_full = if drop_oldest { WhenFull::DropOldest } else { WhenFull::Block };
        let settings = config(max_bytes, segment_bytes, when_full);
        let mut buffer = Some(DiskBuffer::open(dir.path(), settings).unwrap());
        let mut model = Model { unacked: VecDeque::new(), next: 0, dropped: 0, cursor: None, max_bytes };
        let mut delivered = std::collections::HashSet::new();

        for operation in operations {
            let real = buffer.as_ref().unwrap();
            match operation {
                Operation::Append(sizes) => {
                    let group: Vec<Vec<u8>> = sizes
                        .iter()
                        .enumerate()
                        .map(|(i, size)| record(model.next + i as u64, *size))
                        .collect();
                    let need: u64 = group.iter().map(|p| frame::frame_bytes(p.len())).sum();
                    let result = real.append(&group, NO_WAIT);
                    if need > model.max_bytes {
                        let too_large = matches!(result, Err(CollectorError::RecordTooLarge { .. }));
                        prop_assert!(too_large, "{:?}", result);
                        continue;
                    }
                    if model.bytes() + need > model.max_bytes {
                        if drop_oldest {
                            while model.bytes() + need > model.max_bytes {
                                model.unacked.pop_front();
                                model.dropped += 1;
                            }
                        } else {
                            let full = matches!(result, Err(CollectorError::BufferFull { .. }));
                            prop_assert!(full, "{:?}", result);
                            continue;
                        }
                    }
                    prop_assert!(result.is_ok(), "{result:?}");
                    for payload in group {
                        model.unacked.push_back((model.next, payload));
                        model.next += 1;
                    }
                }
                Operation::Read(count) => {
                    let got = real.read(model.cursor.map(Offset), count, usize::MAX, NO_WAIT).unwrap();
                    let expected: Vec<(Offset, Vec<u8>)> = model
                        .unacked
                        .iter()
                        .filter(|(offset, _)| model.cursor.is_none_or(|cursor| *offset > cursor))
                        .take(count)
                        .map(|(offset, payload)| (Offset(*offset), payload.clone()))
                        .collect();
                    prop_assert_eq!(&got, &expected);
                    for (offset, _) in &got {
                        prop_assert!(!delivered.contains(&offset.0), "offset {} read after its ack", offset.0);
                    }
                    if let Some((last, _)) = got.last() {
                        model.cursor = Some(last.0);
                    }
                }
                Operation::AckRead => {
                    if let Some(cursor) = model.cursor {
                        real.ack(Offset(cursor)).unwrap();
                        for (offset, _) in model.unacked.iter().filter(|(o, _)| *o <= cursor) {
                            delivered.insert(*offset);
                        }
                        model.ack(cursor);
                    }
                }
                Operation::AckOldest(count) => {
                    if let Some((offset, _)) = model.unacked.get(count) {
                        let upto = *offset;
                        real.ack(Offset(upto)).unwrap();
                        for (offset, _) in model.unacked.iter().filter(|(o, _)| *o <= upto) {
                            delivered.insert(*offset);
                        }
                        model.ack(upto);
                    }
                }
                Operation::Reopen => {
                    drop(buffer.take());
                    buffer = Some(DiskBuffer::open(dir.path(), settings).unwrap());
                    model.cursor = None;
                }
            }
            let stats = buffer.as_ref().unwrap().stats();
            prop_assert_eq!(stats.records, model.unacked.len() as u64);
            prop_assert_eq!(stats.bytes, model.bytes());
            prop_assert!(stats.bytes <= max_bytes);
            prop_assert_eq!(stats.dropped, model.dropped);
            prop_assert_eq!(stats.next_offset, Offset(model.next));
            prop_assert_eq!(stats.corrupt_records_skipped, 0);
            prop_assert_eq!(stats.torn_bytes_truncated, 0);
        }
        let everything = read_all(buffer.as_ref().unwrap());
        let expected: Vec<(u64, Vec<u8>)> = model.unacked.iter().cloned().collect();
        prop_assert_eq!(everything, expected);
    }
}

#[test]
fn the_in_flight_batch_is_remembered_until_its_number_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    buffer
        .append(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()], NO_WAIT)
        .unwrap();
    assert_eq!(buffer.in_flight(), None);
    buffer.set_in_flight(1, Offset(1)).unwrap();
    drop(buffer);
    let buffer = DiskBuffer::open(dir.path(), BufferConfig::default()).unwrap();
    assert_eq!(buffer.in_flight(), Some((1, Offset(1))));
    buffer.ack(Offset(0)).unwrap();
    assert_eq!(
        buffer.in_flight(),
        Some((1, Offset(1))),
        "same batch number"
    );
    buffer.ack_with_sequence(Offset(1), 2).unwrap();
    assert_eq!(buffer.in_flight(), None);
    assert_eq!(buffer.next_sequence(), 2);
}

#[test]
fn records_dropped_while_their_batch_was_on_the_wire_are_not_counted_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // Room for four 40-byte frames.
    let buffer = DiskBuffer::open(dir.path(), config(160, 1 << 20, WhenFull::DropOldest)).unwrap();
    buffer
        .append(&(0..4).map(|i| record(i, 20)).collect::<Vec<_>>(), NO_WAIT)
        .unwrap();
    buffer.set_in_flight(1, Offset(1)).unwrap();
    let batch = buffer.read(None, 2, usize::MAX, NO_WAIT).unwrap();
    // Three more push out offsets 0..=2 while batch 0..=1 is being sent.
    buffer
        .append(&(4..7).map(|i| record(i, 20)).collect::<Vec<_>>(), NO_WAIT)
        .unwrap();
    assert_eq!(buffer.stats().dropped, 3);
    // The server took the batch: two of the three arrived after all.
    buffer.ack_batch(batch[0].0, batch[1].0, 2).unwrap();
    let stats = buffer.stats();
    assert_eq!((stats.dropped, stats.records), (1, 4));
    assert_eq!(buffer.next_sequence(), 2);
    assert_eq!(buffer.in_flight(), None);
    drop(buffer);
    let buffer = DiskBuffer::open(dir.path(), config(160, 1 << 20, WhenFull::DropOldest)).unwrap();
    assert_eq!(buffer.stats().dropped, 1, "durably");
    let offsets: Vec<u64> = read_all(&buffer).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![3, 4, 5, 6]);
}
