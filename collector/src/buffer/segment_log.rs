//! The buffer's data under its lock: the segments, the write position, the acknowledged head,
//! and the operations on them. [`super::DiskBuffer`] adds waiting and sharing on top.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::frame::{self, FrameHeader, MAX_PAYLOAD_BYTES};
use super::segment::{self, ChunkReader, CorruptRange, Segment};
use super::state::{self, io_error, State};
use super::{BufferConfig, BufferStats, Offset, SyncPolicy};
use crate::CollectorError;

const LOCK_FILE: &str = "buffer.lock";

/// Where a reader stopped: the frame at `position` of segment `segment_first` is the first one
/// with an offset of at least `offset`.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    offset: u64,
    segment_first: u64,
    position: u64,
}

/// What a frame walk should do with the frame it is shown.
enum Step {
    /// Consume the frame and go on.
    Next,
    /// Stop before this frame.
    Stop,
}

/// The segments of one buffer directory and everything known about them.
pub(crate) struct SegmentLog {
    dir: PathBuf,
    config: BufferConfig,
    segments: VecDeque<Segment>,
    /// Open handle on the newest segment while appends go to it.
    writer: Option<File>,
    next_offset: u64,
    state: State,
    /// Position in the oldest segment of its first live record.
    head_position: u64,
    read_cursor: Option<Cursor>,
    appended: u64,
    acked: u64,
    dropped_since_open: u64,
    corrupt_records_skipped: u64,
    torn_bytes_truncated: u64,
    unsynced: bool,
    last_sync: Instant,
    /// Frames on their way to the file, reused by every append (see [`WRITE_CHUNK`]).
    scratch: Vec<u8>,
    _lock: File,
}

/// Frames are written in pieces of about this size. Framing a whole group (megabytes) into
/// one fresh allocation cost a page fault per 4 KiB on every append, and as much memory again
/// as the group.
pub(crate) const WRITE_CHUNK: usize = 256 << 10;

impl SegmentLog {
    /// Opens (creating if needed) the buffer in `dir` and recovers from whatever a crash left.
    pub(crate) fn open(dir: &Path, config: BufferConfig) -> Result<Self, CollectorError> {
        fs::create_dir_all(dir).map_err(|error| io_error("create directory", dir, error))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| io_error("open", &lock_path, error))?;
        lock.try_lock().map_err(|_| CollectorError::BufferLocked {
            path: dir.to_path_buf(),
        })?;

        // A temporary state file is a write that did not finish: the real one is still whole.
        let temp = dir.join(state::STATE_TEMP_FILE);
        match fs::remove_file(&temp) {
            Ok(()) => tracing::warn!(path = %temp.display(), "removed an unfinished state write"),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("remove", &temp, error)),
        }
        let stored_state = state::load(dir)?;
        let state = stored_state.unwrap_or_default();

        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|error| io_error("list", dir, error))? {
            let entry = entry.map_err(|error| io_error("list", dir, error))?;
            if let Some(first) = entry
                .file_name()
                .to_str()
                .and_then(segment::parse_segment_name)
            {
                names.push((first, entry.path()));
            }
        }
        names.sort();

        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            segments: VecDeque::new(),
            writer: None,
            next_offset: state.first_unacked,
            state,
            head_position: 0,
            read_cursor: None,
            appended: 0,
            acked: 0,
            dropped_since_open: 0,
            corrupt_records_skipped: 0,
            torn_bytes_truncated: 0,
            unsynced: false,
            last_sync: Instant::now(),
            scratch: Vec::new(),
            _lock: lock,
        };
        if stored_state.is_none() && !names.is_empty() {
            // Segments without a state: the state was deleted. Nothing is known to be
            // acknowledged, so everything on disk is sent again (the server drops duplicates).
            log.state.first_unacked = names.first().map_or(0, |(first, _)| *first);
            tracing::warn!(dir = %dir.display(), "buffer state missing: resending every buffered record");
        }
        log.recover(names)?;
        Ok(log)
    }

    fn recover(&mut self, names: Vec<(u64, PathBuf)>) -> Result<(), CollectorError> {
        let first_unacked = self.state.first_unacked;
        let count = names.len();
        let mut previous_end: Option<u64> = None;
        let mut head_position = None;
        let mut obsolete = Vec::new();
        for (index, (first, path)) in names.into_iter().enumerate() {
            let is_last = index + 1 == count;
            // Records between the last segment's end and this one's name are gone (a damaged
            // tail, or a file removed by hand).
            let missing =
                segment::lost(previous_end.unwrap_or(first_unacked), first, first_unacked);
            if missing > 0 {
                tracing::error!(path = %path.display(), records = missing, "buffered records missing before this segment");
                self.corrupt_records_skipped += missing;
            }
            let expected = previous_end.map_or(first, |end| end.max(first));
            let outcome = segment::scan(&path, first, expected, first_unacked, is_last)
                .map_err(|error| io_error("recover", &path, error))?;
            if outcome.corrupt_records > 0 {
                tracing::error!(path = %path.display(), records = outcome.corrupt_records, "skipped damaged records in the disk buffer");
            }
            if outcome.truncated_bytes > 0 {
                tracing::warn!(path = %path.display(), bytes = outcome.truncated_bytes, "cut a torn append (crash mid-write) off the buffer");
            }
            self.corrupt_records_skipped += outcome.corrupt_records;
            self.torn_bytes_truncated += outcome.truncated_bytes;
            previous_end = Some(expected.max(outcome.segment.end));
            if outcome.segment.end <= first_unacked || outcome.segment.end == outcome.segment.first
            {
                obsolete.push(outcome.segment.path);
                continue;
            }
            if self.segments.is_empty() {
                head_position = Some(outcome.head_position);
            }
            self.segments.push_back(outcome.segment);
        }
        for path in obsolete {
            fs::remove_file(&path).map_err(|error| io_error("remove", &path, error))?;
        }
        self.head_position = head_position.unwrap_or(0);
        self.next_offset = previous_end.unwrap_or(0).max(first_unacked);
        if let Some(last) = self.segments.back() {
            let writer = File::options()
                .read(true)
                .write(true)
                .open(&last.path)
                .map_err(|error| io_error("open", &last.path, error))?;
            self.writer = Some(writer);
        }
        Ok(())
    }

    pub(crate) fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// Frame bytes of the unacknowledged records.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.live_bytes).sum()
    }

    fn live_records(&self) -> u64 {
        self.segments
            .iter()
            .map(|segment| segment.live_records)
            .sum()
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset
    }

    pub(crate) fn first_unacked(&self) -> u64 {
        self.state.first_unacked
    }

    pub(crate) fn next_sequence(&self) -> u64 {
        self.state.next_sequence
    }

    pub(crate) fn stats(&self) -> BufferStats {
        BufferStats {
            bytes: self.live_bytes(),
            records: self.live_records(),
            max_bytes: self.config.max_bytes,
            appended: self.appended,
            acked: self.acked,
            dropped: self.state.dropped_total,
            dropped_since_open: self.dropped_since_open,
            segments: self.segments.len() as u64,
            corrupt_records_skipped: self.corrupt_records_skipped,
            torn_bytes_truncated: self.torn_bytes_truncated,
            first_unacked: Offset(self.state.first_unacked),
            next_offset: Offset(self.next_offset),
        }
    }

    /// Writes one append group; the caller has made room. Returns the first offset.
    pub(crate) fn write_group<R: AsRef<[u8]>>(
        &mut self,
        records: &[R],
    ) -> Result<u64, CollectorError> {
        let need: u64 = records
            .iter()
            .map(|record| frame::frame_bytes(record.as_ref().len()))
            .sum();
        let rolls = self.segments.back().is_some_and(|back| {
            back.len > 0 && back.len.saturating_add(need) > self.config.segment_bytes
        });
        if rolls {
            self.sync()?;
            self.writer = None;
        }
        if self.writer.is_none() {
            self.start_segment()?;
        }
        let (Some(writer), Some(segment)) = (self.writer.as_ref(), self.segments.back_mut()) else {
            return Err(CollectorError::BufferCorrupt {
                path: self.dir.clone(),
                reason: "no segment to append to".into(),
            });
        };

        let first = self.next_offset;
        let scratch = &mut self.scratch;
        let mut position = segment.len;
        let mut write_frames = || -> std::io::Result<()> {
            for (index, record) in records.iter().enumerate() {
                frame::encode(
                    scratch,
                    first + index as u64,
                    record.as_ref(),
                    index + 1 < records.len(),
                );
                if scratch.len() >= WRITE_CHUNK {
                    writer.write_all_at(scratch, position)?;
                    position += scratch.len() as u64;
                    scratch.clear();
                }
            }
            writer.write_all_at(scratch, position)?;
            if matches!(self.config.sync, SyncPolicy::EveryAppend) {
                writer.sync_data()?;
            }
            Ok(())
        };
        let written = write_frames();
        self.scratch.clear();
        if let Err(error) = written {
            // Leave no half group behind for a reader to see.
            let _ = writer.set_len(segment.len);
            return Err(io_error("append to", &segment.path, error));
        }
        let count = records.len() as u64;
        segment.len += need;
        segment.end = first + count;
        segment.live_records += count;
        segment.live_bytes += need;
        self.next_offset += count;
        self.appended += count;
        match self.config.sync {
            SyncPolicy::EveryAppend => self.last_sync = Instant::now(),
            SyncPolicy::Interval(interval) => {
                self.unsynced = true;
                if self.last_sync.elapsed() >= interval {
                    self.sync()?;
                }
            }
        }
        Ok(first)
    }

    fn start_segment(&mut self) -> Result<(), CollectorError> {
        let path = self.dir.join(segment::segment_name(self.next_offset));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|error| io_error("create", &path, error))?;
        // The new name must survive power loss before any record in it is reported written.
        state::sync_dir(&self.dir)?;
        if self.segments.is_empty() {
            self.head_position = 0;
        }
        self.segments.push_back(Segment {
            first: self.next_offset,
            end: self.next_offset,
            path,
            len: 0,
            live_records: 0,
            live_bytes: 0,
            corrupt: Vec::new(),
        });
        self.writer = Some(file);
        Ok(())
    }

    /// Makes every appended record durable.
    pub(crate) fn sync(&mut self) -> Result<(), CollectorError> {
        if !self.unsynced {
            return Ok(());
        }
        if let (Some(writer), Some(segment)) = (self.writer.as_ref(), self.segments.back()) {
            writer
                .sync_data()
                .map_err(|error| io_error("sync", &segment.path, error))?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Up to `max_records` records and `max_bytes` payload bytes from offset `start` on; with
    /// `first_may_exceed`, at least one record however large. Also says whether it stopped at
    /// a record that would have passed `max_bytes`.
    pub(crate) fn read_from(
        &mut self,
        start: u64,
        max_records: usize,
        max_bytes: usize,
        first_may_exceed: bool,
    ) -> Result<(super::Records, bool), CollectorError> {
        let mut out: Vec<(Offset, Vec<u8>)> = Vec::new();
        let mut did_not_fit = false;
        if max_records == 0 || start >= self.next_offset {
            return Ok((out, did_not_fit));
        }
        let mut index = self
            .segments
            .partition_point(|segment| segment.first <= start)
            .saturating_sub(1);
        let mut position = if index == 0 { self.head_position } else { 0 };
        if let Some(cursor) = self.read_cursor {
            if self
                .segments
                .get(index)
                .is_some_and(|s| s.first == cursor.segment_first)
                && cursor.offset <= start
                && cursor.position >= position
            {
                position = cursor.position;
            }
        }
        let mut payload_bytes = 0usize;
        let first_unacked = self.state.first_unacked;
        while let Some(segment) = self.segments.get_mut(index) {
            let mut stopped = false;
            let end = walk_segment(
                segment,
                position,
                first_unacked,
                &mut self.corrupt_records_skipped,
                |header, reader, frame_position| {
                    if header.offset < start {
                        return Ok(Step::Next);
                    }
                    let len = header.payload_len as usize;
                    if out.len() >= max_records {
                        stopped = true;
                        return Ok(Step::Stop);
                    }
                    if (!out.is_empty() || !first_may_exceed)
                        && payload_bytes.saturating_add(len) > max_bytes
                    {
                        stopped = true;
                        did_not_fit = true;
                        return Ok(Step::Stop);
                    }
                    payload_bytes += len;
                    out.push((
                        Offset(header.offset),
                        reader.payload(frame_position, header)?,
                    ));
                    Ok(Step::Next)
                },
            )?;
            if let Some((last, _)) = out.last() {
                self.read_cursor = Some(Cursor {
                    offset: last.0 + 1,
                    segment_first: segment.first,
                    position: end,
                });
            }
            if stopped {
                break;
            }
            index += 1;
            position = 0;
        }
        Ok((out, did_not_fit))
    }

    /// Marks every record up to `upto` delivered (and the next batch number, when given).
    pub(crate) fn ack(
        &mut self,
        upto: u64,
        next_sequence: Option<u64>,
        delivered_from: Option<u64>,
    ) -> Result<(), CollectorError> {
        if upto >= self.next_offset {
            return Err(CollectorError::InvalidAck {
                upto,
                newest: self.next_offset.checked_sub(1),
            });
        }
        // Records of the delivered batch that `drop_oldest` took while it was on the wire
        // reached the server after all: they are not drops.
        let delivered_anyway = delivered_from.map_or(0, |first| {
            self.state
                .first_unacked
                .min(upto + 1)
                .saturating_sub(first)
                .min(self.state.dropped_total)
        });
        let new_first = (upto + 1).max(self.state.first_unacked);
        let released = self.release_until(new_first)?;
        self.acked += released.records;
        let next_sequence = next_sequence.unwrap_or(self.state.next_sequence);
        let state = State {
            first_unacked: new_first,
            next_sequence,
            in_flight_last: self.in_flight_after(Some(next_sequence)),
            dropped_total: self.state.dropped_total - delivered_anyway,
        };
        if state != self.state {
            self.persist(state)?;
        }
        self.dropped_since_open = self.dropped_since_open.saturating_sub(delivered_anyway);
        self.remove_files(released.files)
    }

    /// Drops the oldest unacknowledged records until `need` more bytes fit; returns how many.
    pub(crate) fn drop_oldest(&mut self, need: u64) -> Result<u64, CollectorError> {
        let max_bytes = self.config.max_bytes;
        let mut new_first = self.state.first_unacked;
        let mut dropped = 0;
        let mut files = Vec::new();
        while self.live_bytes().saturating_add(need) > max_bytes {
            let Some(front) = self.segments.front() else {
                break;
            };
            let excess = self.live_bytes() + need - max_bytes;
            if front.live_bytes <= excess {
                // The whole segment goes.
                dropped += front.live_records;
                new_first = new_first.max(front.end);
                if let Some(segment) = self.segments.pop_front() {
                    if self.segments.is_empty() {
                        self.writer = None;
                    }
                    files.push(segment.path);
                }
                self.head_position = 0;
                continue;
            }
            let mut freed = 0;
            let mut records = 0;
            let mut next_live = None;
            let first_unacked = self.state.first_unacked;
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            let stop = walk_segment(
                front,
                self.head_position,
                first_unacked,
                &mut self.corrupt_records_skipped,
                |header, _, _| {
                    if freed >= excess {
                        next_live = Some(header.offset);
                        return Ok(Step::Stop);
                    }
                    freed += header.frame_bytes();
                    records += 1;
                    Ok(Step::Next)
                },
            )?;
            if records == 0 {
                // Nothing left to walk although the counts say otherwise (damage found on the
                // way): the segment holds nothing more to drop.
                front.live_bytes = 0;
                front.live_records = 0;
                continue;
            }
            front.live_bytes = front.live_bytes.saturating_sub(freed);
            front.live_records = front.live_records.saturating_sub(records);
            dropped += records;
            new_first = new_first.max(next_live.unwrap_or(front.end));
            self.head_position = stop;
        }
        if dropped == 0 && new_first == self.state.first_unacked {
            return Ok(0);
        }
        self.dropped_since_open += dropped;
        let state = State {
            first_unacked: new_first,
            dropped_total: self.state.dropped_total + dropped,
            ..self.state
        };
        self.persist(state)?;
        tracing::debug!(
            records = dropped,
            "disk buffer full: dropped the oldest records"
        );
        self.remove_files(files)?;
        Ok(dropped)
    }

    /// Stores the next batch number.
    pub(crate) fn set_sequence(&mut self, next_sequence: u64) -> Result<(), CollectorError> {
        self.persist(State {
            next_sequence,
            in_flight_last: self.in_flight_after(Some(next_sequence)),
            ..self.state
        })
    }

    /// The in-flight mark survives only while the batch number it belongs to stays.
    fn in_flight_after(&self, next_sequence: Option<u64>) -> Option<u64> {
        match next_sequence {
            Some(sequence) if sequence != self.state.next_sequence => None,
            _ => self.state.in_flight_last,
        }
    }

    /// The batch `next_sequence` covers records up to `last`.
    pub(crate) fn set_in_flight(&mut self, sequence: u64, last: u64) -> Result<(), CollectorError> {
        if self.state.next_sequence == sequence && self.state.in_flight_last == Some(last) {
            return Ok(());
        }
        self.persist(State {
            next_sequence: sequence,
            in_flight_last: Some(last),
            ..self.state
        })
    }

    pub(crate) fn in_flight(&self) -> Option<(u64, u64)> {
        self.state
            .in_flight_last
            .map(|last| (self.state.next_sequence, last))
    }

    fn persist(&mut self, state: State) -> Result<(), CollectorError> {
        state::store(&self.dir, &state)?;
        self.state = state;
        Ok(())
    }

    fn remove_files(&mut self, files: Vec<PathBuf>) -> Result<(), CollectorError> {
        for path in files {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error("remove", &path, error)),
            }
        }
        Ok(())
    }

    /// Takes every record below `new_first` out of the live counts; returns how many there
    /// were and which segment files are now empty of live records.
    fn release_until(&mut self, new_first: u64) -> Result<Released, CollectorError> {
        let mut released = Released::default();
        while self
            .segments
            .front()
            .is_some_and(|front| front.end <= new_first)
        {
            if let Some(segment) = self.segments.pop_front() {
                released.records += segment.live_records;
                released.files.push(segment.path);
                self.head_position = 0;
                if self.segments.is_empty() {
                    self.writer = None;
                }
            }
        }
        let first_unacked = self.state.first_unacked;
        if let Some(front) = self.segments.front_mut() {
            let mut records = 0;
            let mut bytes = 0;
            let stop = walk_segment(
                front,
                self.head_position,
                first_unacked,
                &mut self.corrupt_records_skipped,
                |header, _, _| {
                    if header.offset >= new_first {
                        return Ok(Step::Stop);
                    }
                    if header.offset >= first_unacked {
                        records += 1;
                        bytes += header.frame_bytes();
                    }
                    Ok(Step::Next)
                },
            )?;
            front.live_records = front.live_records.saturating_sub(records);
            front.live_bytes = front.live_bytes.saturating_sub(bytes);
            released.records += records;
            self.head_position = stop;
        }
        Ok(released)
    }
}

#[derive(Default)]
struct Released {
    records: u64,
    files: Vec<PathBuf>,
}

impl Drop for SegmentLog {
    fn drop(&mut self) {
        if let Err(error) = self.sync() {
            tracing::error!(%error, "could not sync the disk buffer at close");
        }
    }
}

/// Shows `visit` every valid frame of `segment` from `position` on, jumping over damaged
/// ranges (and finding new ones, counted in `corrupt_counter`), until `visit` says stop or the
/// segment ends. Returns the position where it stopped.
fn walk_segment(
    segment: &mut Segment,
    position: u64,
    first_unacked: u64,
    corrupt_counter: &mut u64,
    mut visit: impl FnMut(&FrameHeader, &mut ChunkReader<'_>, u64) -> io::Result<Step>,
) -> Result<u64, CollectorError> {
    let path = segment.path.clone();
    let file = File::open(&path).map_err(|error| io_error("open", &path, error))?;
    let mut reader = ChunkReader::new(&file, segment.len);
    let mut position = position;
    let mut expected = segment.first;
    let result: io::Result<u64> = (|| {
        while position < segment.len {
            if let Some(range) = segment
                .corrupt
                .iter()
                .find(|range| range.start <= position && position < range.end)
            {
                position = range.end;
                continue;
            }
            let frame = reader
                .frame_at(position)?
                .filter(|header| u64::from(header.payload_len) <= MAX_PAYLOAD_BYTES);
            let Some(header) = frame else {
                // Damage that appeared after the buffer was opened.
                let (end, lost) = match reader.resync(position, expected)? {
                    Some((next, header)) => {
                        (next, segment::lost(expected, header.offset, first_unacked))
                    }
                    None => (
                        segment.len,
                        segment::lost(expected, segment.end, first_unacked),
                    ),
                };
                tracing::error!(path = %segment.path.display(), position, records = lost, "skipped damaged records in the disk buffer");
                *corrupt_counter += lost;
                segment.live_records = segment.live_records.saturating_sub(lost);
                segment.live_bytes = segment.live_bytes.saturating_sub(end - position);
                segment.corrupt.push(CorruptRange {
                    start: position,
                    end,
                });
                position = end;
                continue;
            };
            match visit(&header, &mut reader, position)? {
                Step::Stop => return Ok(position),
                Step::Next => {
                    expected = header.offset + 1;
                    position += header.frame_bytes();
                }
            }
        }
        Ok(position)
    })();
    result.map_err(|error| io_error("read", &path, error))
}
