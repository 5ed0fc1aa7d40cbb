//! The disk buffer: a write-ahead log of records between the sources and the forwarder, so a
//! collector loses nothing when the link to the SOC is down, when it is killed, or when the
//! power goes.
//!
//! Records are opaque byte strings (one serialized event each). An append writes them as
//! checksummed frames at the end of the newest segment file and, with
//! [`SyncPolicy::EveryAppend`], returns only once they are on disk. Each record gets an
//! [`Offset`], increasing across restarts. The forwarder [`DiskBuffer::read`]s from an
//! in-memory cursor and [`DiskBuffer::ack`]s what the server confirmed; acknowledgements are
//! durable (a state file replaced atomically), and a segment file is deleted once all its
//! records are acknowledged. The size of unacknowledged records is bounded by
//! [`BufferConfig::max_bytes`]; when full, appends either wait ([`WhenFull::Block`]) or push
//! out the oldest records ([`WhenFull::DropOldest`]), counted exactly.
//!
//! Disk layout of a buffer directory:
//!
//! - `NNNNNNNNNNNNNNNNNNNN.seg`: segments named after their first offset (see `frame.rs` for
//!   the frame format);
//! - `state.json`: first unacknowledged offset, the forwarder's next batch number, records
//!   dropped so far;
//! - `buffer.lock`: held while a process has the buffer open.
//!
//! Disk use is at most `max_bytes` of unacknowledged records plus, in the oldest segment,
//! records already acknowledged or dropped that share the file with live ones (at most one
//! `segment_bytes`).

pub(crate) mod frame;
mod segment;
mod segment_log;
mod state;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::CollectorError;
use segment_log::SegmentLog;

/// What an append does when the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for the forwarder to free space (sources slow down; UDP counts its own drops).
    Block,
    /// Drop the oldest unacknowledged records to make room, counting them.
    DropOldest,
}

impl FromStr for WhenFull {
    type Err = CollectorError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "block" => Ok(Self::Block),
            "drop_oldest" => Ok(Self::DropOldest),
            other => Err(CollectorError::InvalidBufferConfig(format!(
                "when_full `{other}` is not one of: block, drop_oldest"
            ))),
        }
    }
}

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Before every append returns: an `Ok` append survives power loss.
    EveryAppend,
    /// At most this long after an append (a background thread syncs): faster, and a power
    /// loss can cost the last interval's records (a kill -9 costs nothing: the kernel has them).
    Interval(Duration),
}

/// Settings of a [`DiskBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// Largest total size of unacknowledged records, frame headers included.
    pub max_bytes: u64,
    /// Size at which a new segment file is started (a larger append gets a segment of its own).
    pub segment_bytes: u64,
    /// What an append does when `max_bytes` is reached.
    pub when_full: WhenFull,
    /// When records are forced to disk.
    pub sync: SyncPolicy,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            segment_bytes: 32 << 20,
            when_full: WhenFull::Block,
            sync: SyncPolicy::EveryAppend,
        }
    }
}

impl BufferConfig {
    /// Every problem with the settings, or nothing.
    pub fn validate(&self) -> Result<(), CollectorError> {
        let mut problems = Vec::new();
        let smallest = frame::frame_bytes(1);
        if self.max_bytes < smallest {
            problems.push(format!("max_bytes must be at least {smallest}"));
        }
        if self.segment_bytes < smallest {
            problems.push(format!("segment_bytes must be at least {smallest}"));
        }
        if self.sync == SyncPolicy::Interval(Duration::ZERO) {
            problems.push("a sync interval must be longer than zero".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CollectorError::InvalidBufferConfig(problems.join("; ")))
        }
    }
}

/// A record's position in the buffer: increases by one per record, across restarts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Offset(pub u64);

/// Records read from the buffer with their offsets, oldest first.
pub type Records = Vec<(Offset, Vec<u8>)>;

/// Counters and sizes of a [`DiskBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BufferStats {
    /// Bytes of unacknowledged records (what `max_bytes` limits).
    pub bytes: u64,
    /// Unacknowledged records.
    pub records: u64,
    /// The limit.
    pub max_bytes: u64,
    /// Records appended since open.
    pub appended: u64,
    /// Records acknowledged since open.
    pub acked: u64,
    /// Records dropped by `drop_oldest` since the buffer was created (kept across restarts).
    pub dropped: u64,
    /// Records dropped since open.
    pub dropped_since_open: u64,
    /// Segment files.
    pub segments: u64,
    /// Unacknowledged records lost to damaged files (bad sectors, flipped bits, files removed
    /// by hand), since open.
    pub corrupt_records_skipped: u64,
    /// Bytes of appends cut short by a crash, removed at open (such appends never returned).
    pub torn_bytes_truncated: u64,
    /// Every record below this is acknowledged or dropped.
    pub first_unacked: Offset,
    /// The offset the next record will get.
    pub next_offset: Offset,
}

struct Shared {
    log: Mutex<SegmentLog>,
    /// Signalled when records are appended.
    appended: Condvar,
    /// Signalled when space is freed.
    freed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SegmentLog> {
        // A panic elsewhere while holding the lock leaves the log consistent: every change to
        // it is made after the I/O it depends on succeeded.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The disk buffer. `Send + Sync`: share it in an `Arc` between the sources (appends) and the
/// forwarder (reads and acknowledgements).
pub struct DiskBuffer {
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl std::fmt::Debug for DiskBuffer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DiskBuffer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DiskBuffer {
    /// Opens the buffer in `dir` (created if missing), recovering from a crash: a torn append
    /// at the end of the newest segment is cut off, damaged records elsewhere are skipped and
    /// counted, segments already acknowledged are deleted.
    pub fn open(dir: &Path, config: BufferConfig) -> Result<Self, CollectorError> {
        config.validate()?;
        let log = SegmentLog::open(dir, config)?;
        let shared = Arc::new(Shared {
            log: Mutex::new(log),
            appended: Condvar::new(),
            freed: Condvar::new(),
        });
        if let SyncPolicy::Interval(interval) = config.sync {
            let weak = Arc::downgrade(&shared);
            std::thread::Builder::new()
                .name("citysoc-buffer-sync".into())
                .spawn(move || sync_periodically(&weak, interval))
                .map_err(|error| state::io_error("start the sync thread for", dir, error))?;
        }
        Ok(Self {
            shared,
            dir: dir.to_path_buf(),
        })
    }

    /// The buffer directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `records` as one group: after a crash either all of them are there or none.
    /// With [`WhenFull::Block`] waits up to `wait` for space and then fails with
    /// [`CollectorError::BufferFull`], having written nothing; with [`WhenFull::DropOldest`]
    /// drops the oldest unacknowledged records to make room.
    pub fn append<R: AsRef<[u8]>>(
        &self,
        records: &[R],
        wait: Duration,
    ) -> Result<(), CollectorError> {
        self.append_with_offsets(records, wait).map(|_| ())
    }

    /// [`DiskBuffer::append`], returning the offsets the records got (`None` for no records).
    pub fn append_with_offsets<R: AsRef<[u8]>>(
        &self,
        records: &[R],
        wait: Duration,
    ) -> Result<Option<(Offset, Offset)>, CollectorError> {
        if records.is_empty() {
            return Ok(None);
        }
        let mut need = 0u64;
        for record in records {
            let record = record.as_ref();
            if record.len() as u64 > frame::MAX_PAYLOAD_BYTES {
                return Err(CollectorError::RecordTooLarge {
                    bytes: record.len() as u64,
                    reason: format!("a record holds at most {} bytes", frame::MAX_PAYLOAD_BYTES),
                });
            }
            need = need.saturating_add(frame::frame_bytes(record.len()));
        }
        let deadline = Instant::now() + wait;
        let mut log = self.shared.lock();
        let config = *log.config();
        if need > config.max_bytes {
            return Err(CollectorError::RecordTooLarge {
                bytes: need,
                reason: format!("the buffer holds at most {} bytes", config.max_bytes),
            });
        }
        while log.live_bytes().saturating_add(need) > config.max_bytes {
            match config.when_full {
                WhenFull::DropOldest => {
                    log.drop_oldest(need)?;
                    break;
                }
                WhenFull::Block => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CollectorError::BufferFull {
                            bytes: log.live_bytes(),
                            needed: need,
                            max_bytes: config.max_bytes,
                        });
                    }
                    log = self
                        .shared
                        .freed
                        .wait_timeout(log, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        let first = log.write_group(records)?;
        drop(log);
        self.shared.appended.notify_all();
        Ok(Some((
            Offset(first),
            Offset(first + records.len() as u64 - 1),
        )))
    }

    /// Up to `max_records` records after `after` (from the oldest unacknowledged one when
    /// `None` or when `after` is older), with about `max_bytes` of payload at most (always at
    /// least one record, however large). Waits up to `wait` while there is none; an empty
    /// vector means the wait ended.
    pub fn read(
        &self,
        after: Option<Offset>,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<(Offset, Vec<u8>)>, CollectorError> {
        self.read_records(after, max_records, max_bytes, wait, true)
            .map(|(records, _)| records)
    }

    /// [`DiskBuffer::read`] to top up a batch that has records already: never past
    /// `max_bytes` (a record that would pass it is left for the next batch), and `true` beside
    /// the records when one was left so, so that the caller stops waiting for more.
    pub fn read_to_fill(
        &self,
        after: Option<Offset>,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<(Records, bool), CollectorError> {
        self.read_records(after, max_records, max_bytes, wait, false)
    }

    fn read_records(
        &self,
        after: Option<Offset>,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
        first_may_exceed: bool,
    ) -> Result<(Records, bool), CollectorError> {
        let deadline = Instant::now() + wait;
        let mut log = self.shared.lock();
        loop {
            let start = after
                .map_or(0, |offset| offset.0.saturating_add(1))
                .max(log.first_unacked());
            if start < log.next_offset() {
                let (records, full) =
                    log.read_from(start, max_records, max_bytes, first_may_exceed)?;
                if !records.is_empty() || max_records == 0 || full {
                    return Ok((records, full));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok((Vec::new(), false));
            }
            log = self
                .shared
                .appended
                .wait_timeout(log, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Records up to and including `upto` are delivered: durably marked so (they are never
    /// read again, even after a crash), and segment files holding only such records deleted.
    pub fn ack(&self, upto: Offset) -> Result<(), CollectorError> {
        self.ack_inner(upto, None)
    }

    /// [`DiskBuffer::ack`] and [`DiskBuffer::set_sequence`] in one durable write: the
    /// forwarder's batch number moves on exactly when its records leave the buffer.
    pub fn ack_with_sequence(
        &self,
        upto: Offset,
        next_sequence: u64,
    ) -> Result<(), CollectorError> {
        self.ack_inner(upto, Some(next_sequence))
    }

    /// The forwarder's acknowledgement of a batch the server took, records `first..=last`: like
    /// [`DiskBuffer::ack_with_sequence`], and records of the batch that `drop_oldest` dropped
    /// while the batch was on the wire are taken back out of the drop count (they arrived), so
    /// `dropped` stays exactly the records the server never got.
    pub fn ack_batch(
        &self,
        first: Offset,
        last: Offset,
        next_sequence: u64,
    ) -> Result<(), CollectorError> {
        let result = self
            .shared
            .lock()
            .ack(last.0, Some(next_sequence), Some(first.0));
        self.shared.freed.notify_all();
        result
    }

    fn ack_inner(&self, upto: Offset, next_sequence: Option<u64>) -> Result<(), CollectorError> {
        let result = self.shared.lock().ack(upto.0, next_sequence, None);
        self.shared.freed.notify_all();
        result
    }

    /// The oldest record not yet acknowledged or dropped (the forwarder leaves records below
    /// it out of a batch it retries: `drop_oldest` took them).
    pub fn first_unacked(&self) -> Offset {
        Offset(self.shared.lock().first_unacked())
    }

    /// The forwarder's next batch number (1 for a new buffer).
    pub fn next_sequence(&self) -> u64 {
        self.shared.lock().next_sequence()
    }

    /// Stores the forwarder's next batch number durably.
    pub fn set_sequence(&self, next_sequence: u64) -> Result<(), CollectorError> {
        self.shared.lock().set_sequence(next_sequence)
    }

    /// Notes that batch `sequence` (which becomes [`DiskBuffer::next_sequence`]) is being sent
    /// with the records up to `last`, so that after a restart the same batch number is used again for
    /// exactly those records (a server that already stored the batch re-acknowledges it). The
    /// mark goes when the batch number moves on.
    pub fn set_in_flight(&self, sequence: u64, last: Offset) -> Result<(), CollectorError> {
        self.shared.lock().set_in_flight(sequence, last.0)
    }

    /// The batch sent but not yet acknowledged before the last stop: its number and newest
    /// offset.
    pub fn in_flight(&self) -> Option<(u64, Offset)> {
        self.shared
            .lock()
            .in_flight()
            .map(|(sequence, last)| (sequence, Offset(last)))
    }

    /// Forces appended records to disk (a no-op with [`SyncPolicy::EveryAppend`]).
    pub fn sync(&self) -> Result<(), CollectorError> {
        self.shared.lock().sync()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> BufferStats {
        self.shared.lock().stats()
    }
}

fn sync_periodically(shared: &Weak<Shared>, interval: Duration) {
    loop {
        std::thread::sleep(interval);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let result = shared.lock().sync();
        if let Err(error) = result {
            tracing::error!(%error, "could not sync the disk buffer");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
