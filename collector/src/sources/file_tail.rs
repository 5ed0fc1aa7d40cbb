//! Following a log file as it grows, like `tail -F`, with a checkpoint that survives restarts.
//!
//! - The checkpoint (see `file_checkpoint.rs`) holds the offset of the first byte whose events
//!   the sink has confirmed and flushed, and the next record number. It is only written at a
//!   record boundary with nothing held in the decoder, so a restart neither skips nor re-reads
//!   a line. (After a crash between a sink write and the next checkpoint, the lines since the
//!   checkpoint are read again with the same record numbers, so with the same event ids: the
//!   server drops them as duplicates.)
//! - A sink write that failed lost lines after the checkpoint: once the sink has had no new
//!   failure for a checkpoint interval, the running source reads the file again from the
//!   checkpoint, with the same record numbers (so the same event ids: the lines that did arrive
//!   are duplicates the server drops), and the checkpoint moves on once they are written. When
//!   the checkpoint is about another file (rotated since) it stays held instead, and a restart
//!   reads them again from the rotated file.
//! - Rotation by rename (logrotate's default): when the path names another file, the old one
//!   is read to its end (its last line even without a newline), then the new one from its
//!   start. If that happened while the collector was stopped, the old file is looked for by
//!   inode in the same directory and finished first.
//! - Truncation in place (`copytruncate`): when the file is shorter than what was read,
//!   reading restarts at 0.
//! - A partial last line is left for later (the writer is still writing it); at shutdown it
//!   stays unread and the checkpoint stops before it.
//!
//! The loop is blocking (plain file reads, a poll interval) and runs on its own thread.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::xxh3_64;

use super::file_checkpoint::{self, Checkpoint, FileIdentity, HEAD_BYTES};
use super::repeated_error::RepeatedError;
use super::{decode_frames, SourceRuntime, QUIET_CLOSE};
use crate::config::FileSourceConfig;
use crate::event::Event;
use crate::framing::{Framer, Framing};
use crate::metrics::{DropReason, SourceErrorKind, SourceMetrics};
use crate::parse::Decoder;

/// How much is read at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Checkpoints are written at most this often (each one waits for a sink flush).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait between two readings again from the checkpoint while the sink keeps
/// failing (the wait doubles from `CHECKPOINT_INTERVAL` after each one that failed again).
const MAX_REREAD_BACKOFF: Duration = Duration::from_secs(60);

/// Follows the configured file until `shutdown`.
pub(crate) fn run(
    settings: FileSourceConfig,
    checkpoint_path: PathBuf,
    source: Arc<SourceRuntime>,
    shutdown: CancellationToken,
) {
    let sink_failed_at_start = source.metrics.drops(DropReason::SinkFailed);
    let mut tailer = Tailer {
        address: settings.path.display().to_string(),
        settings,
        checkpoint_path,
        source,
        shutdown,
        reading: None,
        next_sequence: 1,
        last_checkpoint: None,
        last_checkpoint_at: Instant::now(),
        last_data_at: Instant::now(),
        reported_missing: false,
        open_errors: RepeatedError::new(SourceErrorKind::File, "cannot open the file"),
        path_errors: RepeatedError::new(SourceErrorKind::File, "cannot examine the file's path"),
        read_errors: RepeatedError::new(SourceErrorKind::Read, "cannot read the file"),
        sink_failed_at_start,
        sink_failed_seen: sink_failed_at_start,
        next_reread_at: Instant::now(),
        reread_backoff: CHECKPOINT_INTERVAL,
        checkpoint_held: false,
    };
    tailer.resume();
    loop {
        if tailer.shutdown.is_cancelled() {
            tailer.stop();
            return;
        }
        match tailer.step() {
            Step::Progress => {}
            Step::Idle => tailer.sleep(),
            Step::Closed => return,
        }
    }
}

enum Step {
    /// Something was read or changed: go on at once.
    Progress,
    /// At the end of the file: wait a poll interval.
    Idle,
    /// The pipeline is gone.
    Closed,
}

/// The file being read.
struct Reading {
    file: File,
    identity: FileIdentity,
    /// Offset in the file of `buffer`'s first byte: everything before it has been framed.
    consumed: u64,
    buffer: Vec<u8>,
    framer: Framer,
    decoder: Decoder,
    inside_fragment: bool,
    /// A file renamed away while the collector was stopped: read to its end, then the path.
    rotated: bool,
    /// Length and hash of the file's first bytes as last seen (up to `HEAD_BYTES`), to tell a
    /// truncated file that grew past the old end again from one that only grew.
    head: Option<(u64, u64)>,
    /// The last read found nothing new: the next one first checks the file's first bytes.
    idle: bool,
}

impl Reading {
    /// Frames and parses what the buffer holds and takes it out. `at_end`: nothing more will
    /// be read from this file (rotated away, or truncated), so a last line without a newline
    /// and a record the decoder still groups (auditd) are handed out too.
    fn take_events(&mut self, at_end: bool, metrics: &SourceMetrics) -> Vec<Event> {
        let mut events = Vec::new();
        let framed = decode_frames(
            &mut self.framer,
            &mut self.decoder,
            &self.buffer,
            at_end,
            &mut events,
            metrics,
            |_, _| {},
        );
        self.buffer.drain(..framed.consumed);
        self.consumed += framed.consumed as u64;
        self.inside_fragment = framed.inside_fragmented_record && !at_end;
        if at_end {
            self.decoder.finish(&mut events);
        }
        events
    }
}

struct Tailer {
    settings: FileSourceConfig,
    /// The configured path, as written in each event's `source.address` (it stays the same
    /// across rotations: it names the log, not the inode).
    address: String,
    checkpoint_path: PathBuf,
    source: Arc<SourceRuntime>,
    shutdown: CancellationToken,
    reading: Option<Reading>,
    /// The record number the next opened file continues from.
    next_sequence: u64,
    last_checkpoint: Option<Checkpoint>,
    last_checkpoint_at: Instant,
    last_data_at: Instant,
    /// A file not there yet is logged once, not at every poll (it is not an error: the
    /// writer may create it later).
    reported_missing: bool,
    /// Errors met at every poll while they last: each counted, the log rate-limited.
    open_errors: RepeatedError,
    path_errors: RepeatedError,
    read_errors: RepeatedError,
    /// The source's `sink_failed` drops when it started: more since then means lines after
    /// the stored checkpoint never reached the sink, so the checkpoint must stay where it is
    /// (a restart reads them again; the server drops the lines it already has by event id).
    sink_failed_at_start: u64,
    /// `sink_failed` at the previous checkpoint: a reading again from the checkpoint waits for
    /// an interval with no new failure (the sink works again).
    sink_failed_seen: u64,
    /// No reading again before this (backoff while the sink keeps failing).
    next_reread_at: Instant,
    /// The wait after the next reading again.
    reread_backoff: Duration,
    /// The checkpoint is held back for that reason (logged once).
    checkpoint_held: bool,
}

impl Tailer {
    fn name(&self) -> &str {
        &self.source.config.name
    }

    /// Picks up where the checkpoint says.
    fn resume(&mut self) {
        let checkpoint = match file_checkpoint::load(&self.checkpoint_path) {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                // Reading from the start again gives the same record numbers, so the same
                // event ids, for the lines already sent: the server drops them as duplicates.
                self.source.metrics.add_error(SourceErrorKind::File);
                tracing::error!(source = %self.name(), %error, "checkpoint unusable; reading the file from its start");
                None
            }
        };
        let Some(checkpoint) = checkpoint else {
            return;
        };
        self.next_sequence = checkpoint.next_sequence;
        self.last_checkpoint = Some(checkpoint.clone());
        if let Ok(mut file) = File::open(&self.settings.path) {
            if let Ok(metadata) = file.metadata() {
                if FileIdentity::of(&metadata) == checkpoint.identity()
                    && checkpoint.head_matches(&mut file)
                {
                    let offset = if metadata.len() < checkpoint.offset {
                        self.source.metrics.add_truncation();
                        tracing::info!(source = %self.name(), "file truncated while stopped; reading it from its start");
                        0
                    } else {
                        checkpoint.offset
                    };
                    self.reading = self.open_at(file, metadata, offset, false);
                    return;
                }
            }
        }
        match find_by_identity(&self.settings.path, &checkpoint) {
            Some((rotated_path, file, metadata)) => {
                tracing::info!(source = %self.name(), rotated = %rotated_path.display(), "file rotated while stopped; finishing the rotated file first");
                self.source.metrics.add_rotation();
                self.reading = self.open_at(file, metadata, checkpoint.offset, true);
            }
            None => {
                self.source
                    .metrics
                    .add_error(SourceErrorKind::RotatedWhileStopped);
                tracing::warn!(
                    source = %self.name(),
                    "the file read before the restart was rotated away and is not in its directory any more; lines written to it after the checkpoint cannot be read"
                );
            }
        }
    }

    fn open_at(
        &mut self,
        mut file: File,
        metadata: std::fs::Metadata,
        offset: u64,
        rotated: bool,
    ) -> Option<Reading> {
        if let Err(error) = file.seek(SeekFrom::Start(offset)) {
            self.source.metrics.add_error(SourceErrorKind::File);
            tracing::error!(source = %self.name(), %error, "cannot seek in the file");
            return None;
        }
        let mut decoder = self.source.decoder(Some(self.address.clone()));
        decoder.set_next_sequence(self.next_sequence);
        self.reported_missing = false;
        Some(Reading {
            file,
            identity: FileIdentity::of(&metadata),
            consumed: offset,
            buffer: Vec::with_capacity(READ_CHUNK * 2),
            framer: Framer::new(Framing::Newline, self.source.config.max_frame),
            decoder,
            inside_fragment: false,
            rotated,
            head: None,
            idle: false,
        })
    }

    /// Opens the configured path from its start (first start, or after a rotation).
    fn open_path(&mut self) -> Option<Reading> {
        let opened = File::open(&self.settings.path).and_then(|file| {
            let metadata = file.metadata()?;
            Ok((file, metadata))
        });
        match opened {
            Ok((file, metadata)) => self.open_at(file, metadata, 0, false),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if !self.reported_missing {
                    self.reported_missing = true;
                    tracing::info!(source = %self.name(), path = %self.settings.path.display(), "waiting for the file to appear");
                }
                None
            }
            Err(error) => {
                let error = format!("{}: {error}", self.settings.path.display());
                self.open_errors
                    .occurred(&self.source.config.name, &self.source.metrics, &error);
                None
            }
        }
    }

    fn step(&mut self) -> Step {
        let name = &self.source.config.name;
        for errors in [
            &mut self.open_errors,
            &mut self.path_errors,
            &mut self.read_errors,
        ] {
            errors.summarize_when_due(name);
        }
        if self.reading.is_none() {
            self.reading = self.open_path();
            if self.reading.is_none() {
                return Step::Idle;
            }
            if self.checkpoint(true).is_err() {
                return Step::Closed;
            }
        }
        // Coming back to a file that was idle: before reading what was added, make sure it is
        // still the same file from its start (`copytruncate` may have emptied it and the
        // writer filled it past the old end since, so the new bytes would be read from the
        // middle of a line).
        if let Some(reading) = self.reading.as_ref() {
            let read_so_far = reading.consumed + reading.buffer.len() as u64;
            if reading.idle && self.head_replaced(read_so_far) {
                return self.truncated();
            }
        }
        match self.read_chunk() {
            Ok(true) => {
                self.last_data_at = Instant::now();
                return match self.checkpoint(false) {
                    Ok(()) => Step::Progress,
                    Err(()) => Step::Closed,
                };
            }
            Ok(false) => {}
            Err(()) => return Step::Closed,
        }
        // At the end of the file: has it been rotated or truncated?
        let Some(reading) = self.reading.as_ref() else {
            return Step::Idle;
        };
        if reading.rotated {
            if self.finish_reading().is_err() {
                return Step::Closed;
            }
            return Step::Progress;
        }
        let read_so_far = reading.consumed + reading.buffer.len() as u64;
        let identity = reading.identity;
        match std::fs::metadata(&self.settings.path) {
            Ok(metadata) if FileIdentity::of(&metadata) != identity => {
                // Renamed away and replaced: whatever the writer added before the rename is
                // read first, then the old file is closed.
                loop {
                    match self.read_chunk() {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(()) => return Step::Closed,
                    }
                }
                self.source.metrics.add_rotation();
                tracing::info!(source = %self.name(), "file rotated; reading the new file");
                if self.finish_reading().is_err() {
                    return Step::Closed;
                }
                return Step::Progress;
            }
            Ok(metadata) if metadata.len() < read_so_far => return self.truncated(),
            Ok(_) => {
                // The first time at the end of this file: note its first bytes now, while they
                // are those just read; the check before each read after an idle poll compares
                // against them (and keeps them up to date).
                if self
                    .reading
                    .as_ref()
                    .is_some_and(|reading| reading.head.is_none())
                {
                    self.head_replaced(read_so_far);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // Renamed away, new file not created yet: keep the old one until it is.
            }
            Err(error) => {
                self.path_errors
                    .occurred(&self.source.config.name, &self.source.metrics, &error);
            }
        }
        if let Some(reading) = self.reading.as_mut() {
            if reading.decoder.holds_records() && self.last_data_at.elapsed() >= QUIET_CLOSE {
                let mut events = Vec::new();
                reading.decoder.close_quiet(&mut events);
                if self.send(&mut events).is_err() {
                    return Step::Closed;
                }
            }
        }
        match self.checkpoint(false) {
            Ok(()) => Step::Idle,
            Err(()) => Step::Closed,
        }
    }

    /// Reads one chunk and hands out its complete records. `Ok(false)` at the end of the file;
    /// `Err` when the pipeline is gone.
    fn read_chunk(&mut self) -> Result<bool, ()> {
        let Some(reading) = self.reading.as_mut() else {
            return Ok(false);
        };
        let filled = reading.buffer.len();
        reading.buffer.resize(filled + READ_CHUNK, 0);
        let read = reading.file.read(&mut reading.buffer[filled..]);
        let count = match read {
            Ok(count) => count,
            Err(error) => {
                reading.buffer.truncate(filled);
                self.read_errors
                    .occurred(&self.source.config.name, &self.source.metrics, &error);
                return Ok(false);
            }
        };
        reading.buffer.truncate(filled + count);
        reading.idle = count == 0;
        if count == 0 {
            return Ok(false);
        }
        self.source.metrics.add_bytes_in(count as u64);
        reading.decoder.set_received_at(chrono::Utc::now());
        let mut events = reading.take_events(false, &self.source.metrics);
        self.send(&mut events)?;
        Ok(true)
    }

    /// Hands out everything of the current file (also a last line without newline: nobody
    /// writes to a rotated file any more), records its final position, and switches to the
    /// configured path.
    fn finish_reading(&mut self) -> Result<(), ()> {
        let Some(reading) = self.reading.as_mut() else {
            return Ok(());
        };
        let mut events = reading.take_events(true, &self.source.metrics);
        self.next_sequence = reading.decoder.next_sequence();
        self.send(&mut events)?;
        let rereads = self.source.metrics.rereads();
        self.checkpoint(true)?;
        if self.source.metrics.rereads() != rereads {
            // Lost lines of this file are being read again: finish it again after them.
            return Ok(());
        }
        self.reading = self.open_path();
        // The checkpoint moves to the new file at once: a restart must not look for the
        // old one again.
        self.checkpoint(true)
    }

    /// True when the file's first bytes are no longer those seen before: truncated in place
    /// (`copytruncate`) and written past the old end again before this poll, which the length
    /// alone does not show. Costs a read of at most `HEAD_BYTES` per idle poll. A file whose
    /// new first kilobyte is byte for byte the old one is not told apart.
    fn head_replaced(&mut self, read_so_far: u64) -> bool {
        let Some(reading) = self.reading.as_mut() else {
            return false;
        };
        let length = read_so_far.min(HEAD_BYTES);
        if length == 0 {
            return false;
        }
        let Ok(head) = file_checkpoint::read_head(&mut reading.file, length) else {
            // Unreadable now: the next read says why; nothing to compare.
            return false;
        };
        let replaced = reading.head.is_some_and(|(seen, hash)| {
            head.get(..usize::try_from(seen).unwrap_or(usize::MAX))
                .is_none_or(|part| xxh3_64(part) != hash)
        });
        reading.head = Some((head.len() as u64, xxh3_64(&head)));
        replaced
    }

    /// The file was truncated in place: counted, and read again from its start.
    fn truncated(&mut self) -> Step {
        self.source.metrics.add_truncation();
        tracing::info!(source = %self.name(), "file truncated; reading it again from its start");
        match self.restart_truncated() {
            Ok(()) => Step::Progress,
            Err(()) => Step::Closed,
        }
    }

    /// After `copytruncate`: the buffered partial line belongs to content now gone from this
    /// file (the copy has it); hand it out and read the file again from 0.
    fn restart_truncated(&mut self) -> Result<(), ()> {
        let Some(reading) = self.reading.as_mut() else {
            return Ok(());
        };
        let mut events = reading.take_events(true, &self.source.metrics);
        debug_assert!(reading.buffer.is_empty());
        let sink_failed = self.source.metrics.drops(DropReason::SinkFailed);
        if sink_failed != self.sink_failed_at_start {
            // Lines the sink lost lay after the held checkpoint, in content the truncation
            // removed (the copy has it): no longer in this file to read again. Reading again
            // from that checkpoint would read the file's new lines under other record numbers,
            // a second copy the server cannot recognize. Let go of it: the checkpoint written
            // below is about the new content.
            tracing::error!(
                source = %self.source.config.name,
                "the lines the sink lost were truncated away before they could be read again; they are not in this file any more (counted in dropped_total{{reason=\"sink_failed\"}})"
            );
            self.sink_failed_at_start = sink_failed;
            self.sink_failed_seen = sink_failed;
            self.checkpoint_held = false;
        }
        reading.consumed = 0;
        reading.head = None;
        reading.idle = false;
        reading.framer = Framer::new(Framing::Newline, self.source.config.max_frame);
        if let Err(error) = reading.file.seek(SeekFrom::Start(0)) {
            self.source.metrics.add_error(SourceErrorKind::File);
            tracing::error!(source = %self.source.config.name, %error, "cannot seek to the start of the truncated file");
            self.reading = None;
        }
        self.send(&mut events)?;
        self.checkpoint(true)
    }

    fn send(&self, events: &mut Vec<crate::Event>) -> Result<(), ()> {
        if events.is_empty() {
            return Ok(());
        }
        let lines = self.source.encode(events);
        self.source
            .pipeline
            .blocking_send(self.source.index, lines)
            .map_err(|_| ())
    }

    /// Writes a checkpoint when one is due and the position is a clean record boundary: waits
    /// until the sink has flushed everything sent so far, then records the position.
    fn checkpoint(&mut self, force: bool) -> Result<(), ()> {
        let Some(reading) = self.reading.as_mut() else {
            return Ok(());
        };
        if reading.decoder.holds_records() || reading.inside_fragment {
            return Ok(());
        }
        if !force && self.last_checkpoint_at.elapsed() < CHECKPOINT_INTERVAL {
            return Ok(());
        }
        let head_len = reading.consumed.min(HEAD_BYTES);
        let head = match file_checkpoint::read_head(&mut reading.file, head_len) {
            Ok(head) => head,
            Err(error) => {
                self.source.metrics.add_error(SourceErrorKind::File);
                tracing::error!(source = %self.source.config.name, %error, "cannot read the file's first bytes for the checkpoint");
                return Ok(());
            }
        };
        let checkpoint = Checkpoint {
            path: self.settings.path.clone(),
            device: reading.identity.device,
            inode: reading.identity.inode,
            offset: reading.consumed,
            next_sequence: reading.decoder.next_sequence(),
            head_len,
            head_hash: file_checkpoint::head_hash(&head),
        };
        self.last_checkpoint_at = Instant::now();
        if self.last_checkpoint.as_ref() == Some(&checkpoint) {
            return Ok(());
        }
        match self
            .source
            .pipeline
            .blocking_barrier(self.source.index, crate::lines::Lines::default())
        {
            Ok(true) => {}
            Ok(false) => {
                // The sink could not flush: keep the old checkpoint, so a restart reads
                // those lines again.
                tracing::error!(source = %self.source.config.name, "sink failed; checkpoint not advanced");
                return Ok(());
            }
            Err(_) => return Err(()),
        }
        // The barrier only answers for its own write and the flush: a write of this source's
        // lines that failed before it (counted as `sink_failed`) lost lines that lie after the
        // stored checkpoint. Moving it would skip them for good.
        let sink_failed = self.source.metrics.drops(DropReason::SinkFailed);
        let quiet = sink_failed == self.sink_failed_seen;
        self.sink_failed_seen = sink_failed;
        if sink_failed != self.sink_failed_at_start {
            if quiet && Instant::now() >= self.next_reread_at && self.read_again_from_checkpoint() {
                return Ok(());
            }
            if !self.checkpoint_held {
                self.checkpoint_held = true;
                tracing::error!(
                    source = %self.source.config.name,
                    "the sink lost lines of this file; the checkpoint stays before them until they are read again (in this run once the sink works again, or after a restart if the file was rotated since)"
                );
            }
            return Ok(());
        }
        match file_checkpoint::store(&self.checkpoint_path, &checkpoint) {
            Ok(()) => {
                self.last_checkpoint = Some(checkpoint);
                self.reread_backoff = CHECKPOINT_INTERVAL;
            }
            Err(error) => {
                self.source.metrics.add_error(SourceErrorKind::File);
                tracing::error!(source = %self.source.config.name, %error, "cannot write the checkpoint");
            }
        }
        Ok(())
    }

    /// After the sink lost lines of this file: reads the file again from the stored
    /// checkpoint, with the record numbers it gave them, so the lost lines come back with the
    /// ids they had (and the lines after them that did arrive, which the server drops as
    /// duplicates). Called at a checkpoint, so nothing is in flight (the barrier waited for
    /// every write) and the decoder holds nothing. False when the checkpoint is not about the
    /// file being read, from its same first bytes (rotated or truncated since): the checkpoint
    /// then stays held until a restart, which looks for that file by identity.
    fn read_again_from_checkpoint(&mut self) -> bool {
        let (Some(checkpoint), Some(reading)) =
            (self.last_checkpoint.as_ref(), self.reading.as_mut())
        else {
            return false;
        };
        if checkpoint.identity() != reading.identity
            || checkpoint.offset > reading.consumed
            || !checkpoint.head_matches(&mut reading.file)
        {
            return false;
        }
        if let Err(error) = reading.file.seek(SeekFrom::Start(checkpoint.offset)) {
            self.source.metrics.add_error(SourceErrorKind::File);
            tracing::error!(source = %self.source.config.name, %error, "cannot seek back to the checkpoint");
            return false;
        }
        let bytes = reading.consumed - checkpoint.offset;
        reading.buffer.clear();
        reading.consumed = checkpoint.offset;
        reading.framer = Framer::new(Framing::Newline, self.source.config.max_frame);
        reading.decoder.set_next_sequence(checkpoint.next_sequence);
        reading.inside_fragment = false;
        reading.head = None;
        reading.idle = false;
        // The failures so far are those being repaired; a new one means another reading
        // again, after a longer wait.
        self.sink_failed_at_start = self.source.metrics.drops(DropReason::SinkFailed);
        self.next_reread_at = Instant::now() + self.reread_backoff;
        self.reread_backoff = (self.reread_backoff * 2).min(MAX_REREAD_BACKOFF);
        self.checkpoint_held = false;
        self.source.metrics.add_reread();
        tracing::warn!(
            source = %self.source.config.name,
            bytes,
            offset = checkpoint.offset,
            "the sink lost lines of this file; reading them again from the last checkpoint"
        );
        true
    }

    /// Shutdown: hands out what the decoder holds (not the partial last line, which the
    /// next start reads whole) and writes the checkpoint.
    fn stop(&mut self) {
        if let Some(reading) = self.reading.as_mut() {
            let mut events = Vec::new();
            reading.decoder.finish(&mut events);
            if self.send(&mut events).is_err() {
                return;
            }
            let _ = self.checkpoint(true);
        }
    }

    fn sleep(&self) {
        let until = Instant::now() + self.settings.poll_interval;
        while Instant::now() < until && !self.shutdown.is_cancelled() {
            std::thread::sleep(Duration::from_millis(20).min(self.settings.poll_interval));
        }
    }
}

/// The rotated-away file a checkpoint is about, looked for by device and inode (and head
/// bytes) among the files beside the configured path.
fn find_by_identity(
    path: &Path,
    checkpoint: &Checkpoint,
) -> Option<(PathBuf, File, std::fs::Metadata)> {
    let directory = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())?;
    for entry in std::fs::read_dir(directory).ok()?.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() || FileIdentity::of(&metadata) != checkpoint.identity() {
            continue;
        }
        let Ok(mut file) = File::open(entry.path()) else {
            continue;
        };
        if checkpoint.head_matches(&mut file) && metadata.len() >= checkpoint.offset {
            return Some((entry.path(), file, metadata));
        }
    }
    None
}
