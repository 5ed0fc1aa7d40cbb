//! Where parsed events go: the [`EventSink`] trait, the local NDJSON archive
//! ([`NdjsonFileSink`]) and [`TeeSink`] (one primary sink plus copies).
//!
//! A sink receives lines that are already one serialized event each (no newline inside), in
//! the batches the sources made of them ([`Lines`]). The pipeline calls it from a blocking
//! thread, one write at a time, in arrival order.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::lines::Lines;
use crate::record::{self, RecordEncoding};
use crate::CollectorError;

/// Where parsed events go. Implementations: [`NdjsonFileSink`], the disk buffer.
pub trait EventSink: Send + Sync {
    /// Takes batches of lines (each line one serialized event, no trailing newline), in
    /// order. May block while the sink is full: that is how backpressure reaches the sources.
    /// `Ok` means the sink has the lines; an error means it does not, and the pipeline counts
    /// them as dropped (reason `sink_failed`).
    fn write(&self, batches: &[Lines]) -> Result<(), CollectorError>;
    /// Makes what was written durable (fsync).
    fn flush(&self) -> Result<(), CollectorError>;
    /// How the lines handed to [`EventSink::write`] are serialized: JSON unless the sink says
    /// otherwise (the disk buffer keeps compact records).
    fn encoding(&self) -> RecordEncoding {
        RecordEncoding::Json
    }
    /// Failed writes and flushes of the copies a sink makes besides its own (the local
    /// archive beside the disk buffer), for `/metrics`; `None` for a sink without copies.
    fn copy_errors(&self) -> Option<u64> {
        None
    }
    /// Records the copies could not convert to their encoding (each kept as a flagged
    /// `format: unknown` event holding its bytes), for `/metrics`; `None` for a sink without
    /// copies.
    fn copy_unconvertible(&self) -> Option<u64> {
        None
    }
}

/// The local archive: appends NDJSON to a file, starts a new file when it reaches a size, and
/// fsyncs on flush. A rotated file is renamed to `PATH.YYYYMMDDTHHMMSSZ` (with `-N` added when
/// that name exists) and never deleted by the collector.
#[derive(Debug)]
pub struct NdjsonFileSink {
    path: PathBuf,
    max_file_bytes: u64,
    state: Mutex<ArchiveFile>,
    rotations: AtomicU64,
    lines: AtomicU64,
}

#[derive(Debug)]
struct ArchiveFile {
    writer: BufWriter<File>,
    bytes: u64,
}

impl NdjsonFileSink {
    /// Opens (or creates, with its directory) the archive file for appending.
    pub fn open(path: &Path, max_file_bytes: u64) -> Result<Self, CollectorError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                CollectorError::io(
                    format!("cannot create directory {}", parent.display()),
                    error,
                )
            })?;
        }
        let mut file = open_append(path)?;
        let mut bytes = file
            .metadata()
            .map_err(|error| {
                CollectorError::io(format!("cannot examine {}", path.display()), error)
            })?
            .len();
        if bytes > 0 {
            bytes = match repair_tail(path, &mut file, bytes) {
                Ok(bytes) => bytes,
                Err(error) => {
                    // The archive is optional beside the buffer: a repair that cannot be done
                    // (disk full, no right to create the side file) must not keep the
                    // collector down. At worst the torn line stays, on a line of its own.
                    tracing::error!(%error, archive = %path.display(), "cannot repair the archive's unfinished last line; it is kept as it is");
                    file.write_all(b"\n").map_err(|error| {
                        CollectorError::io(format!("cannot write to {}", path.display()), error)
                    })?;
                    bytes + 1
                }
            };
        }
        Ok(NdjsonFileSink {
            path: path.to_owned(),
            max_file_bytes: max_file_bytes.max(1),
            state: Mutex::new(ArchiveFile {
                writer: BufWriter::with_capacity(256 * 1024, file),
                bytes,
            }),
            rotations: AtomicU64::new(0),
            lines: AtomicU64::new(0),
        })
    }

    /// The file events are appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Files renamed aside so far.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// Lines written so far.
    pub fn lines_written(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, ArchiveFile> {
        // A panic while holding the lock cannot leave the file in a state worse than a crash
        // would; keep writing.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn rotate(&self, state: &mut ArchiveFile) -> Result<(), CollectorError> {
        self.sync(state)?;
        let target = rotated_name(&self.path);
        std::fs::rename(&self.path, &target).map_err(|error| {
            CollectorError::io(
                format!(
                    "cannot rename {} to {}",
                    self.path.display(),
                    target.display()
                ),
                error,
            )
        })?;
        state.writer = BufWriter::with_capacity(256 * 1024, open_append(&self.path)?);
        state.bytes = 0;
        sync_directory(&self.path);
        self.rotations.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&self, state: &mut ArchiveFile) -> Result<(), CollectorError> {
        state
            .writer
            .flush()
            .and_then(|()| state.writer.get_ref().sync_data())
            .map_err(|error| {
                CollectorError::io(format!("cannot flush {}", self.path.display()), error)
            })
    }
}

impl EventSink for NdjsonFileSink {
    fn write(&self, batches: &[Lines]) -> Result<(), CollectorError> {
        let mut state = self.lock();
        let mut written = 0;
        for line in batches.iter().flat_map(Lines::iter) {
            let length = line.len() as u64 + 1;
            if state.bytes > 0 && state.bytes + length > self.max_file_bytes {
                self.rotate(&mut state)?;
            }
            state
                .writer
                .write_all(line)
                .and_then(|()| state.writer.write_all(b"\n"))
                .map_err(|error| {
                    CollectorError::io(format!("cannot write to {}", self.path.display()), error)
                })?;
            state.bytes += length;
            written += 1;
        }
        self.lines.fetch_add(written, Ordering::Relaxed);
        Ok(())
    }

    fn flush(&self) -> Result<(), CollectorError> {
        let mut state = self.lock();
        self.sync(&mut state)
    }
}

/// Makes an archive a crash left behind end at a line boundary, and returns its new length.
///
/// A kill -9 or a power cut can leave the last line unfinished: between an event and its
/// newline (they reach the file in separate writes when the buffer fills), or inside an event
/// (the kernel may stop a large write at a page boundary when the process is killed).
/// Appending after it would glue the next event onto a broken line. A whole event only missing
/// its newline gets one; a torn event is moved, byte for byte, to `PATH.torn-STAMP` beside the
/// archive (made durable, name and all, before the archive is cut), so the archive stays one
/// JSON event per line and nothing is thrown away. When the archive is the collector's only
/// sink, the events of a torn write were not acknowledged to their source yet, so a file
/// source reads them again; beside the disk buffer, the buffer has them and the side file
/// keeps the archive's torn copy.
fn repair_tail(path: &Path, file: &mut File, bytes: u64) -> Result<u64, CollectorError> {
    let read_error = |error| CollectorError::io(format!("cannot read {}", path.display()), error);
    let write_error =
        |error| CollectorError::io(format!("cannot write to {}", path.display()), error);
    let mut reader = File::open(path).map_err(read_error)?;
    let kept = line_boundary(&mut reader, bytes).map_err(read_error)?;
    let torn_bytes = bytes - kept;
    if torn_bytes == 0 {
        return Ok(bytes);
    }
    // A tail longer than any event cannot be one (a zero-filled tail after a power cut, or
    // not an archive at all): it is moved aside without being read into memory.
    if torn_bytes <= MAX_CHECKED_TAIL {
        let mut tail = Vec::new();
        reader
            .seek(SeekFrom::Start(kept))
            .and_then(|_| (&mut reader).take(torn_bytes).read_to_end(&mut tail))
            .map_err(read_error)?;
        if serde_json::from_slice::<serde::de::IgnoredAny>(&tail).is_ok() {
            file.write_all(b"\n").map_err(write_error)?;
            return Ok(bytes + 1);
        }
    }
    let aside = move_aside(path, &mut reader, kept, torn_bytes)?;
    file.set_len(kept)
        .and_then(|()| file.sync_data())
        .map_err(write_error)?;
    tracing::warn!(
        archive = %path.display(),
        torn_bytes,
        kept_in = %aside.display(),
        "the archive ended inside an event (the collector was stopped mid-write); the torn bytes were moved aside"
    );
    Ok(kept)
}

/// The longest unfinished last line [`repair_tail`] reads to see whether it is a whole event:
/// well above the largest event a source makes.
const MAX_CHECKED_TAIL: u64 = 16 << 20;

/// The length of the file's first `bytes` bytes up to and including their last newline (0
/// when there is none). Reads backwards one block at a time, keeping only the position, so a
/// long line costs reads, not memory.
fn line_boundary(file: &mut File, bytes: u64) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 * 1024;
    let mut block = vec![0u8; BLOCK as usize];
    let mut end = bytes;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let piece = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(piece)?;
        if let Some(newline) = piece.iter().rposition(|&byte| byte == b'\n') {
            return Ok(start + newline as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Copies `length` bytes of `reader` from `from` into a new `PATH.torn-STAMP` (never an
/// existing file: `-2`, `-3`… are added until the name is free) and makes it durable, its
/// directory entry included. Returns its path.
fn move_aside(
    path: &Path,
    reader: &mut File,
    from: u64,
    length: u64,
) -> Result<PathBuf, CollectorError> {
    let mut created = None;
    for candidate in stamped_names(path, "torn-").take(1000) {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(side) => {
                created = Some((candidate, side));
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(CollectorError::io(
                    format!("cannot create {}", candidate.display()),
                    error,
                ))
            }
        }
    }
    let Some((aside, mut side)) = created else {
        return Err(CollectorError::io(
            format!("cannot create a {}.torn-… file", path.display()),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    };
    reader
        .seek(SeekFrom::Start(from))
        .and_then(|_| std::io::copy(&mut reader.take(length), &mut side))
        .and_then(|_| side.sync_all())
        .map_err(|error| CollectorError::io(format!("cannot write {}", aside.display()), error))?;
    sync_directory(&aside);
    Ok(aside)
}

fn open_append(path: &Path) -> Result<File, CollectorError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| CollectorError::io(format!("cannot open {}", path.display()), error))
}

/// `PATH.20261122T101500Z`, or `PATH.20261122T101500Z-2` when rotations come faster than
/// once a second.
fn rotated_name(path: &Path) -> PathBuf {
    // The names never run out: the fallback only keeps this total.
    stamped_names(path, "")
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.with_extension("rotated"))
}

/// `PATH.{label}20261122T101500Z` (the time now, UTC), then the same with `-2`, `-3`, … : the
/// names a file set aside beside `path` may take, in the order to try them.
fn stamped_names(path: &Path, label: &str) -> impl Iterator<Item = PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = format!("{}.{label}{stamp}", path.display());
    (1u64..).map(move |counter| match counter {
        1 => PathBuf::from(&base),
        _ => PathBuf::from(format!("{base}-{counter}")),
    })
}

/// Makes a rename durable. Best effort: some file systems refuse to fsync a directory, and
/// the data itself is already synced.
pub(crate) fn sync_directory(path: &Path) {
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(directory) = File::open(parent) {
            let _ = directory.sync_all();
        }
    }
}

/// One primary sink plus copies (the local archive beside the forwarder's buffer). The
/// primary decides the result: a copy that fails is counted and logged, and does not hold the
/// events back from the primary.
pub struct TeeSink {
    primary: Arc<dyn EventSink>,
    copies: Vec<Arc<dyn EventSink>>,
    copy_errors: AtomicU64,
    /// Records that could not be converted for a copy (see [`convert_all`]).
    unconvertible: AtomicU64,
}

impl std::fmt::Debug for TeeSink {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TeeSink")
            .field("copies", &self.copies.len())
            .field("copy_errors", &self.copy_errors)
            .field("unconvertible", &self.unconvertible)
            .finish_non_exhaustive()
    }
}

impl TeeSink {
    /// Writes to `primary` and to each of `copies`.
    pub fn new(primary: Arc<dyn EventSink>, copies: Vec<Arc<dyn EventSink>>) -> Self {
        TeeSink {
            primary,
            copies,
            copy_errors: AtomicU64::new(0),
            unconvertible: AtomicU64::new(0),
        }
    }

    /// Failed writes and flushes of the copies.
    pub fn copy_errors(&self) -> u64 {
        self.copy_errors.load(Ordering::Relaxed)
    }

    /// Records the copies could not convert (each kept flagged, see [`EventSink::copy_unconvertible`]).
    pub fn unconvertible(&self) -> u64 {
        self.unconvertible.load(Ordering::Relaxed)
    }
}

impl EventSink for TeeSink {
    fn write(&self, batches: &[Lines]) -> Result<(), CollectorError> {
        let encoding = self.primary.encoding();
        for copy in &self.copies {
            let written = if copy.encoding() == encoding {
                copy.write(batches)
            } else {
                // The archive beside the buffer: compact records back to JSON, at the cost of
                // decoding each one (documented with the `[archive]` setting).
                let (converted, unconvertible) = convert_all(batches, copy.encoding());
                if unconvertible > 0 {
                    self.unconvertible
                        .fetch_add(unconvertible, Ordering::Relaxed);
                }
                copy.write(&converted)
            };
            if let Err(error) = written {
                self.copy_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "copy sink write failed");
            }
        }
        self.primary.write(batches)
    }

    fn encoding(&self) -> RecordEncoding {
        self.primary.encoding()
    }

    fn copy_errors(&self) -> Option<u64> {
        Some(TeeSink::copy_errors(self))
    }

    fn copy_unconvertible(&self) -> Option<u64> {
        Some(TeeSink::unconvertible(self))
    }

    fn flush(&self) -> Result<(), CollectorError> {
        for copy in &self.copies {
            if let Err(error) = copy.flush() {
                self.copy_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "copy sink flush failed");
            }
        }
        self.primary.flush()
    }
}

/// `batches` with every line converted to `encoding`, and how many lines could not be. Each line
/// on its own: a line that cannot be converted (a damaged record) does not take the others of its
/// batch with it; it is kept as [`unconvertible_event`] instead.
fn convert_all(batches: &[Lines], encoding: RecordEncoding) -> (Vec<Lines>, u64) {
    let mut unconvertible = 0;
    let converted = batches
        .iter()
        .map(|lines| {
            let mut converted = Lines::with_capacity(lines.len(), lines.byte_len() * 2);
            for line in lines {
                match record::convert(line, encoding) {
                    Ok(bytes) => converted.push(&bytes),
                    Err(error) => {
                        unconvertible += 1;
                        tracing::warn!(%error, "a record could not be converted for the archive; archived raw and flagged");
                        let event = unconvertible_event(line, &error);
                        if let Err(error) = converted
                            .push_with(|buffer| record::encode_as(encoding, &event, buffer))
                        {
                            // Cannot happen for an event made of a string and a flag; the
                            // record is counted above all the same.
                            tracing::error!(%error, "cannot serialize the flagged record either");
                        }
                    }
                }
            }
            converted
        })
        .collect();
    (converted, unconvertible)
}

/// A line a copy could not convert, kept as what it is: a `format: unknown` event holding its
/// exact bytes (`raw_base64` unless they are text), with the reason in `parse_error` and the
/// flag `archive_conversion_failed`, so the archive still has one line per event of the buffer
/// and a reader sees what went wrong.
fn unconvertible_event(line: &[u8], error: &CollectorError) -> crate::Event {
    let mut event = crate::parse::new_event(line, &crate::ParseContext::new("buffer"), 0);
    event.source.sequence = None;
    event.parse_error = Some(crate::ParseError {
        format: "record".into(),
        message: error.to_string(),
        offset: 0,
    });
    event
        .fields
        .insert("archive_conversion_failed".into(), true.into());
    event
}

/// The disk buffer as the pipeline's sink. With `when_full = "block"`, `write` waits for room
/// as long as it takes, so backpressure reaches the sources (an error here would count the
/// lines as dropped); with `drop_oldest` the buffer makes room itself and counts what it drops.
pub struct BufferSink {
    buffer: Arc<crate::DiskBuffer>,
}

impl BufferSink {
    /// A sink appending to `buffer`.
    pub fn new(buffer: Arc<crate::DiskBuffer>) -> Self {
        BufferSink { buffer }
    }
}

impl BufferSink {
    /// Appends `records` as one group, waiting while the buffer is full (`block`).
    fn append_group(&self, records: &[&[u8]]) -> Result<(), CollectorError> {
        loop {
            match self
                .buffer
                .append(records, std::time::Duration::from_secs(1))
            {
                Err(CollectorError::BufferFull { .. }) => continue,
                other => return other,
            }
        }
    }
}

/// Splits `records` into runs of at most `limit` buffer bytes (frames included), in order; a
/// record larger than `limit` is a run of its own.
fn runs_within<'r>(records: &'r [&'r [u8]], limit: u64) -> Vec<&'r [&'r [u8]]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (index, record) in records.iter().enumerate() {
        let frame = crate::buffer::frame::frame_bytes(record.len());
        if index > start && bytes.saturating_add(frame) > limit {
            runs.extend(records.get(start..index));
            (start, bytes) = (index, 0);
        }
        bytes = bytes.saturating_add(frame);
    }
    runs.extend(records.get(start..).filter(|run| !run.is_empty()));
    runs
}

impl EventSink for BufferSink {
    fn write(&self, batches: &[Lines]) -> Result<(), CollectorError> {
        // One group in the buffer (all or nothing after a crash), as before the batches were
        // kept apart.
        let records: Vec<&[u8]> = batches.iter().flat_map(Lines::iter).collect();
        match self.append_group(&records) {
            // More than the whole buffer holds (a small buffer, one large HTTP post, bursts of
            // many sources merged into one write): in runs of at most half the buffer, so the
            // write goes in (`drop_oldest` makes room, `block` waits for the forwarder) instead
            // of every source's events failing. Only a record too large on its own still
            // fails the write, and then nothing of it is written.
            Err(CollectorError::RecordTooLarge { .. }) if records.len() > 1 => {
                let max_bytes = self.buffer.stats().max_bytes;
                // A record that does not fit on its own fails the write as a whole, before
                // anything goes in: runs written before it would be in the buffer and counted
                // as dropped.
                if let Some(alone) = records.iter().find(|record| {
                    crate::buffer::frame::frame_bytes(record.len()) > max_bytes
                        || record.len() as u64 > crate::buffer::frame::MAX_PAYLOAD_BYTES
                }) {
                    return Err(CollectorError::RecordTooLarge {
                        bytes: alone.len() as u64,
                        reason: format!("the buffer holds at most {max_bytes} bytes"),
                    });
                }
                runs_within(&records, (max_bytes / 2).max(1))
                    .into_iter()
                    .try_for_each(|run| self.append_group(run))
            }
            other => other,
        }
    }

    fn flush(&self) -> Result<(), CollectorError> {
        self.buffer.sync()
    }

    fn encoding(&self) -> RecordEncoding {
        RecordEncoding::Compact
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<Lines> {
        vec![texts.iter().map(|text| text.as_bytes()).collect()]
    }

    #[test]
    fn archive_appends_and_rotates_by_size_without_losing_a_line() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("archive/events.ndjson");
        let sink = NdjsonFileSink::open(&path, 40).unwrap();
        for index in 0..10 {
            sink.write(&lines(&[&format!("{{\"n\":{index:02}}}")]))
                .unwrap();
        }
        sink.flush().unwrap();
        assert!(sink.rotations() >= 2);
        let mut all = Vec::new();
        for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(text.len() <= 40, "{text}");
            all.extend(text.lines().map(str::to_owned));
        }
        all.sort();
        let expected: Vec<String> = (0..10)
            .map(|index| format!("{{\"n\":{index:02}}}"))
            .collect();
        assert_eq!(all, expected);

        // Reopening appends to the current file.
        drop(sink);
        let before = std::fs::read_to_string(&path).unwrap();
        let sink = NdjsonFileSink::open(&path, 1 << 20).unwrap();
        sink.write(&lines(&["{\"n\":10}"])).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{before}{{\"n\":10}}\n")
        );
    }

    struct Failing;
    impl EventSink for Failing {
        fn write(&self, _batches: &[Lines]) -> Result<(), CollectorError> {
            Err(CollectorError::Sink("disk full".into()))
        }
        fn flush(&self) -> Result<(), CollectorError> {
            Err(CollectorError::Sink("disk full".into()))
        }
    }

    /// A temporary directory with `archive.ndjson` holding `contents`, as a crash left it.
    fn archive_holding(contents: impl AsRef<[u8]>) -> (tempfile::TempDir, std::path::PathBuf) {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("archive.ndjson");
        std::fs::write(&path, contents).unwrap();
        (directory, path)
    }

    #[test]
    fn an_archive_cut_after_an_event_gets_its_newline_before_the_next() {
        let (_directory, path) = archive_holding("{\"n\":1}\n{\"n\":2}");
        let sink = NdjsonFileSink::open(&path, 1 << 20).unwrap();
        sink.write(&lines(&["{\"n\":3}"])).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
        );
        // A whole file is left as it is.
        drop(NdjsonFileSink::open(&path, 1 << 20).unwrap());
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
    }

    #[test]
    fn an_archive_torn_inside_an_event_moves_the_torn_bytes_aside_and_stays_one_event_a_line() {
        // Larger than one backwards read, so the search for the last newline crosses blocks.
        let long = "x".repeat(100_000);
        let torn = format!("{{\"n\":3,\"raw\":\"{long}");
        let (directory, path) = archive_holding(format!("{{\"n\":1}}\n{{\"n\":2}}\n{torn}"));
        let sink = NdjsonFileSink::open(&path, 1 << 20).unwrap();
        sink.write(&lines(&["{\"n\":3}"])).unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
        );
        let aside: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|entry| entry != &path)
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        let name = aside[0].file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("archive.ndjson.torn-"), "{name}");
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), torn);
    }

    #[test]
    fn a_tail_longer_than_any_event_is_moved_aside_unread() {
        // What a power cut can leave: the file's length grew, its last blocks are zeros.
        let zeros = vec![0u8; (MAX_CHECKED_TAIL + 1) as usize];
        let mut contents = b"{\"n\":1}\n".to_vec();
        contents.extend_from_slice(&zeros);
        let (directory, path) = archive_holding(&contents);
        drop(NdjsonFileSink::open(&path, 1 << 30).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":1}\n");
        let aside: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|entry| entry != &path)
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(std::fs::read(&aside[0]).unwrap() == zeros);
    }

    #[test]
    fn an_archive_of_one_torn_line_without_any_newline_is_emptied_into_the_side_file() {
        let (directory, path) = archive_holding("{\"n\":1,\"raw\":\"cut");
        let sink = NdjsonFileSink::open(&path, 1 << 20).unwrap();
        sink.write(&lines(&["{\"n\":1}"])).unwrap();
        sink.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":1}\n");
        let kept: Vec<String> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|entry| entry != &path)
            .map(|entry| std::fs::read_to_string(entry).unwrap())
            .collect();
        assert_eq!(kept, ["{\"n\":1,\"raw\":\"cut"]);
    }

    /// A disk buffer in `directory` and a tee writing to it and to `archive.ndjson` beside it.
    fn buffer_with_archive(
        directory: &std::path::Path,
    ) -> (Arc<crate::DiskBuffer>, Arc<NdjsonFileSink>, TeeSink) {
        let buffer = Arc::new(
            crate::DiskBuffer::open(&directory.join("buffer"), Default::default()).unwrap(),
        );
        let archive =
            Arc::new(NdjsonFileSink::open(&directory.join("archive.ndjson"), 1 << 20).unwrap());
        let tee = TeeSink::new(
            Arc::new(BufferSink::new(buffer.clone())),
            vec![archive.clone()],
        );
        (buffer, archive, tee)
    }

    #[test]
    fn the_buffer_gets_compact_records_and_the_archive_beside_it_json() {
        let directory = tempfile::tempdir().unwrap();
        let (buffer, _archive, tee) = buffer_with_archive(directory.path());
        assert_eq!(tee.encoding(), RecordEncoding::Compact);
        let event = crate::parse_record(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            crate::InputFormat::Auto,
            &crate::ParseContext::new("tcp"),
            1,
        );
        let mut compact = Vec::new();
        record::encode_as(tee.encoding(), &event, &mut compact).unwrap();
        tee.write(&[[&compact].into_iter().collect()]).unwrap();
        tee.flush().unwrap();
        assert_eq!(tee.copy_errors(), 0);
        let buffered = buffer
            .read(None, 10, 1 << 20, std::time::Duration::from_secs(1))
            .unwrap();
        assert_eq!(buffered.len(), 1);
        assert_eq!(buffered[0].1, compact);
        let archived = std::fs::read_to_string(directory.path().join("archive.ndjson")).unwrap();
        let archived: crate::Event = serde_json::from_str(archived.trim_end()).unwrap();
        assert_eq!(archived, event);
    }

    #[test]
    fn a_write_larger_than_the_whole_buffer_goes_in_runs_that_fit() {
        let directory = tempfile::tempdir().unwrap();
        let record = |number: usize| format!("record {number:04}").into_bytes();
        let frame = crate::buffer::frame::frame_bytes(record(0).len());
        // Room for 20 records; one write of 30 from three batches.
        let buffer = Arc::new(
            crate::DiskBuffer::open(
                directory.path(),
                crate::BufferConfig {
                    max_bytes: frame * 20,
                    when_full: crate::WhenFull::DropOldest,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let batches: Vec<Lines> = (0..3)
            .map(|batch| (batch * 10..batch * 10 + 10).map(record).collect())
            .collect();
        BufferSink::new(buffer.clone()).write(&batches).unwrap();
        let stats = buffer.stats();
        assert_eq!((stats.appended, stats.dropped, stats.records), (30, 10, 20));
        let kept = buffer
            .read(None, 100, 1 << 20, std::time::Duration::from_secs(1))
            .unwrap();
        let kept: Vec<Vec<u8>> = kept.into_iter().map(|(_, bytes)| bytes).collect();
        assert_eq!(kept, (10..30).map(record).collect::<Vec<_>>());

        // One record larger than the whole buffer: the write fails with nothing written.
        let huge = vec![b'x'; usize::try_from(frame * 20).unwrap()];
        let lines: Lines = [record(30), huge, record(31)].into_iter().collect();
        let error = BufferSink::new(buffer.clone()).write(&[lines]);
        assert!(
            matches!(error, Err(CollectorError::RecordTooLarge { .. })),
            "{error:?}"
        );
        assert_eq!(buffer.stats().appended, 30);

        let records: Vec<Vec<u8>> = (0..5).map(record).collect();
        let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let lengths = |limit| -> Vec<usize> {
            runs_within(&records, limit)
                .iter()
                .map(|run| run.len())
                .collect()
        };
        assert_eq!(lengths(frame * 2), [2, 2, 1]);
        assert_eq!(lengths(frame * 5), [5]);
        assert_eq!(
            lengths(1),
            [1, 1, 1, 1, 1],
            "a record over the limit goes alone"
        );
    }

    #[test]
    fn every_line_of_every_batch_reaches_the_buffer_and_the_archive_in_order() {
        let directory = tempfile::tempdir().unwrap();
        let (buffer, archive, tee) = buffer_with_archive(directory.path());
        let context = crate::ParseContext::new("tcp");
        let texts = [
            "<13>Nov 22 08:00:00 a b: one",
            "two",
            "<13>Nov 22 08:00:01 c d: three",
        ];
        let events: Vec<crate::Event> = (1..)
            .zip(texts)
            .map(|(sequence, text)| {
                crate::parse_record(
                    text.as_bytes(),
                    crate::InputFormat::Auto,
                    &context,
                    sequence,
                )
            })
            .collect();
        // Three batches as the writer hands them over: one empty, one of two events, one of one.
        let mut batches = vec![Lines::default(), Lines::default(), Lines::default()];
        for (index, event) in events.iter().enumerate() {
            let batch = &mut batches[1 + index / 2];
            batch
                .push_with(|out| record::encode_as(RecordEncoding::Compact, event, out))
                .unwrap();
        }
        tee.write(&batches).unwrap();
        tee.flush().unwrap();
        let buffered = buffer
            .read(None, 10, 1 << 20, std::time::Duration::from_secs(1))
            .unwrap();
        let expected: Vec<&[u8]> = batches.iter().flat_map(Lines::iter).collect();
        assert_eq!(buffered.len(), 3);
        for ((offset, record), (index, line)) in buffered.iter().zip(expected.iter().enumerate()) {
            assert_eq!(offset.0, index as u64);
            assert_eq!(record.as_slice(), *line);
            assert_eq!(record::decode_any(record).unwrap(), events[index]);
        }
        let archived = std::fs::read_to_string(directory.path().join("archive.ndjson")).unwrap();
        let archived: Vec<crate::Event> = archived
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(archived, events);
        assert_eq!(archive.lines_written(), 3);
    }

    /// One damaged record in a batch: the archive still gets the others, and the damaged one
    /// as a flagged event holding its bytes; the buffer gets all three as they are.
    #[test]
    fn a_record_the_archive_cannot_convert_costs_only_itself() {
        let directory = tempfile::tempdir().unwrap();
        let (buffer, archive, tee) = buffer_with_archive(directory.path());
        let context = crate::ParseContext::new("tcp");
        let good = |sequence, text: &str| {
            let event = crate::parse_record(
                text.as_bytes(),
                crate::InputFormat::Auto,
                &context,
                sequence,
            );
            let mut compact = Vec::new();
            record::encode_as(RecordEncoding::Compact, &event, &mut compact).unwrap();
            (event, compact)
        };
        let (first, first_record) = good(1, "<13>Nov 22 08:00:00 a b: one");
        let (third, third_record) = good(3, "<13>Nov 22 08:00:02 a b: three");
        // A record mark followed by a tag no version writes.
        let damaged = vec![record::RECORD_MARK, 0x7f, 0x01];
        let batch: Lines = [&first_record, &damaged, &third_record]
            .into_iter()
            .collect();
        tee.write(&[batch]).unwrap();
        tee.flush().unwrap();
        assert_eq!(tee.unconvertible(), 1);
        assert_eq!(tee.copy_errors(), 0, "the archive write itself worked");
        assert_eq!(buffer.stats().records, 3, "the buffer keeps every record");
        let archived = std::fs::read_to_string(directory.path().join("archive.ndjson")).unwrap();
        let archived: Vec<crate::Event> = archived
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(archived.len(), 3, "{archived:#?}");
        assert_eq!(archive.lines_written(), 3);
        assert_eq!(archived[0], first);
        assert_eq!(archived[2], third);
        let flagged = &archived[1];
        assert_eq!(flagged.format, crate::Format::Unknown);
        assert_eq!(flagged.raw_bytes().as_ref(), damaged.as_slice());
        assert_eq!(
            flagged.fields.get("archive_conversion_failed"),
            Some(&serde_json::Value::Bool(true))
        );
        assert!(flagged.parse_error.is_some());
    }

    #[test]
    fn tee_counts_a_failing_copy_and_still_writes_the_primary() {
        let directory = tempfile::tempdir().unwrap();
        let primary =
            Arc::new(NdjsonFileSink::open(&directory.path().join("p.ndjson"), 1 << 20).unwrap());
        let tee = TeeSink::new(primary.clone(), vec![Arc::new(Failing)]);
        tee.write(&lines(&["a", "b"])).unwrap();
        tee.flush().unwrap();
        assert_eq!(tee.copy_errors(), 2);
        assert_eq!(primary.lines_written(), 2);
        let failing_primary = TeeSink::new(Arc::new(Failing), vec![primary.clone()]);
        assert!(failing_primary.write(&lines(&["c"])).is_err());
        assert_eq!(primary.lines_written(), 3);
    }
}
