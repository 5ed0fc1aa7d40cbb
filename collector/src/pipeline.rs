//! The pipeline between the sources and the sink: sources hand over batches of serialized
//! events on a bounded channel; one writer task hands them to the [`EventSink`] in arrival
//! order, from a blocking thread, and flushes it at an interval.
//!
//! Backpressure is the channel's bound (in batches and in bytes): when the sink blocks, the
//! channel fills, and a source
//! that awaits [`PipelineSender::send`] stops reading (TCP and TLS senders are slowed down by
//! their TCP window, HTTP agents get a 503 after a timeout); UDP cannot wait and counts what
//! it drops. Batches can carry a confirmation, sent once the sink has them (and, on request,
//! has flushed them): the file source checkpoints only what is confirmed, the HTTP source
//! answers 200 only then.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::lines::{Lines, LinesPool};
use crate::metrics::{CollectorMetrics, DropReason};
use crate::sink::EventSink;

/// Batches waiting for the sink, at most. A batch is what one read of 64 KiB gives (about 330
/// syslog lines: 180 KB of compact records, 310 KB of JSON).
pub const CHANNEL_BATCHES: usize = 32;
/// Bytes of serialized events waiting for the sink or being written by it (the memory their
/// batches hold, not only the events' own bytes), at most, unless
/// `[collector] queue_max_bytes` says otherwise: the bound on what the pipeline holds whatever
/// the batches look like (one HTTP post can carry megabytes). The writer returns a batch's
/// room once the sink has written it (with the default sync policy, after its fsync), so
/// while a write runs the queue absorbs what that write leaves of the bound: about 30 ms of a
/// busy collector (compact records) in all, ~15 ms behind a write as large as the queue was.
/// Past that, TCP senders are slowed and UDP waits up to its limit before counting drops.
/// (8 MiB until the collector's memory target; then 4 MiB queued plus as much again under
/// write, until the batch under write was counted too.)
pub const CHANNEL_BYTES: usize = 4 << 20;
/// The smallest `queue_max_bytes` allowed: one socket read's worth of events.
pub const MIN_QUEUE_BYTES: usize = 256 << 10;
/// The largest `queue_max_bytes` allowed (the byte count is a semaphore's u32 claim).
pub const MAX_QUEUE_BYTES: usize = 1 << 30;
/// The writer joins queued batches into one sink write up to this many lines.
const COALESCE_LINES: usize = 8192;

/// One source's events on their way to the sink.
#[derive(Debug)]
struct Batch {
    /// Index of the source in [`CollectorMetrics::sources`].
    source: usize,
    lines: Lines,
    flush: bool,
    done: Option<oneshot::Sender<bool>>,
    /// The batch's share of the pipeline's bytes, given back once the sink has written it.
    room: Option<OwnedSemaphorePermit>,
}

/// The pipeline has stopped (the writer is gone): nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct PipelineClosed;

/// Why a bounded-wait send did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// The pipeline stayed full for the whole wait; the lines were not sent.
    Full(Lines),
    /// The pipeline has stopped.
    Closed,
}

/// A source's end of the pipeline. Cheap to clone; the writer stops once every clone is gone.
#[derive(Debug, Clone)]
pub struct PipelineSender {
    tx: mpsc::Sender<Batch>,
    room: Arc<Semaphore>,
    /// The pipeline's bound in bytes (all of `room`).
    max_bytes: usize,
    /// Buffers of batches the sink has written, for the sources' next batches.
    pool: Arc<LinesPool>,
}

impl PipelineSender {
    /// The bound on the bytes the pipeline holds (`queue_max_bytes`): a batch larger than this
    /// waits for an empty pipeline.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// An empty batch with room for `lines` lines of `bytes` bytes, in a buffer of a batch
    /// already written when one fits (see [`LinesPool`]).
    pub fn batch_buffer(&self, lines: usize, bytes: usize) -> Lines {
        self.pool.take(lines, bytes)
    }

    /// A batch's claim on the pipeline's bytes: the memory it holds (its buffers' capacity:
    /// about 1.4 times its lines for a source's full read, at most about twice for a small one,
    /// which `Lines::release_spare_room` trims; counting only the lines let the queue hold that much
    /// more than its bound), or all of them for a batch larger than that (it then waits for an
    /// empty pipeline, the write in progress finished, instead of forever).
    fn bytes_claimed(&self, lines: &Lines) -> u32 {
        // The bound fits a u32 (MAX_QUEUE_BYTES).
        u32::try_from(lines.heap_bytes().min(self.max_bytes)).unwrap_or(u32::MAX)
    }

    /// Waits for room for `bytes` in the pipeline. `None`: the pipeline has stopped.
    async fn room_for(&self, bytes: u32) -> Option<OwnedSemaphorePermit> {
        self.room.clone().acquire_many_owned(bytes).await.ok()
    }

    /// [`PipelineSender::room_for`] from a blocking thread (outside async code).
    fn blocking_room_for(&self, bytes: u32) -> Option<OwnedSemaphorePermit> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime.block_on(self.room_for(bytes)),
            // A thread outside any runtime (as `blocking_send` allows): poll; the writer frees
            // room as the sink writes its batches, and a gone writer drops them, which frees
            // it too.
            Err(_) => loop {
                match self.room.clone().try_acquire_many_owned(bytes) {
                    Ok(permit) => return Some(permit),
                    Err(tokio::sync::TryAcquireError::Closed) => return None,
                    Err(tokio::sync::TryAcquireError::NoPermits) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            },
        }
    }

    /// Sends lines, waiting while the pipeline is full.
    pub async fn send(&self, source: usize, lines: Lines) -> Result<(), PipelineClosed> {
        if lines.is_empty() {
            return Ok(());
        }
        let room = self
            .room_for(self.bytes_claimed(&lines))
            .await
            .ok_or(PipelineClosed)?;
        self.tx
            .send(Batch {
                source,
                lines,
                flush: false,
                done: None,
                room: Some(room),
            })
            .await
            .map_err(|_| PipelineClosed)
    }

    /// Sends lines, waiting at most `wait` for room.
    pub async fn send_within(
        &self,
        source: usize,
        lines: Lines,
        wait: Duration,
    ) -> Result<(), SendFailure> {
        if lines.is_empty() {
            return Ok(());
        }
        let (room, permit) = match self.reserve_within(self.bytes_claimed(&lines), wait).await {
            Ok(reserved) => reserved,
            Err(Reserve::Closed) => return Err(SendFailure::Closed),
            Err(Reserve::TimedOut) => return Err(SendFailure::Full(lines)),
        };
        permit.send(Batch {
            source,
            lines,
            flush: false,
            done: None,
            room: Some(room),
        });
        Ok(())
    }

    /// Sends lines and waits until the sink has them (and has flushed, with `flush`).
    /// `Ok(false)`: the sink refused them (they are counted as dropped). `wait_for_room`
    /// bounds the wait for room in the pipeline; past it the lines come back unsent.
    pub async fn send_confirmed(
        &self,
        source: usize,
        lines: Lines,
        flush: bool,
        wait_for_room: Duration,
    ) -> Result<bool, SendFailure> {
        self.send_confirmed_releasing(source, lines, flush, wait_for_room, || ())
            .await
    }

    /// [`PipelineSender::send_confirmed`] that calls `on_room` once the pipeline has room for
    /// the lines, as it takes them and before the wait for the sink: the caller lets go there
    /// of what it held only to make them (an HTTP request's body and its place among those
    /// read at once), so that it is not held while the sink is slow to confirm (the lines
    /// themselves are then counted by the pipeline's bound), and counts its records in, which
    /// must not wait for a confirmation its caller may not live to see (hyper drops a request
    /// whose client went away). Not called when the lines are not taken.
    pub async fn send_confirmed_releasing(
        &self,
        source: usize,
        lines: Lines,
        flush: bool,
        wait_for_room: Duration,
        on_room: impl FnOnce(),
    ) -> Result<bool, SendFailure> {
        let (done, confirmed) = oneshot::channel();
        let (room, permit) = match self
            .reserve_within(self.bytes_claimed(&lines), wait_for_room)
            .await
        {
            Ok(reserved) => reserved,
            Err(Reserve::Closed) => return Err(SendFailure::Closed),
            Err(Reserve::TimedOut) => return Err(SendFailure::Full(lines)),
        };
        on_room();
        permit.send(Batch {
            source,
            lines,
            flush,
            done: Some(done),
            room: Some(room),
        });
        confirmed.await.map_err(|_| SendFailure::Closed)
    }

    /// [`PipelineSender::send`] from a blocking thread (the file source).
    pub fn blocking_send(&self, source: usize, lines: Lines) -> Result<(), PipelineClosed> {
        if lines.is_empty() {
            return Ok(());
        }
        let room = self
            .blocking_room_for(self.bytes_claimed(&lines))
            .ok_or(PipelineClosed)?;
        self.tx
            .blocking_send(Batch {
                source,
                lines,
                flush: false,
                done: None,
                room: Some(room),
            })
            .map_err(|_| PipelineClosed)
    }

    /// From a blocking thread: sends lines (possibly none) with a flush request and waits
    /// until everything sent before is written and flushed. `Ok(false)`: the sink failed.
    pub fn blocking_barrier(&self, source: usize, lines: Lines) -> Result<bool, PipelineClosed> {
        let (done, confirmed) = oneshot::channel();
        let room = self
            .blocking_room_for(self.bytes_claimed(&lines))
            .ok_or(PipelineClosed)?;
        self.tx
            .blocking_send(Batch {
                source,
                lines,
                flush: true,
                done: Some(done),
                room: Some(room),
            })
            .map_err(|_| PipelineClosed)?;
        confirmed.blocking_recv().map_err(|_| PipelineClosed)
    }

    /// Room for `bytes`, then a slot in the channel, both within `wait`.
    async fn reserve_within(
        &self,
        bytes: u32,
        wait: Duration,
    ) -> Result<(OwnedSemaphorePermit, mpsc::Permit<'_, Batch>), Reserve> {
        let reserve = async {
            let room = self.room_for(bytes).await.ok_or(Reserve::Closed)?;
            let slot = self.tx.reserve().await.map_err(|_| Reserve::Closed)?;
            Ok((room, slot))
        };
        tokio::time::timeout(wait, reserve)
            .await
            .unwrap_or(Err(Reserve::TimedOut))
    }
}

/// Why [`PipelineSender::reserve_within`] gave up.
enum Reserve {
    Closed,
    TimedOut,
}

/// Starts the writer task. It ends, after a last flush, once every [`PipelineSender`] clone
/// is dropped.
pub fn start_writer(
    sink: Arc<dyn EventSink>,
    metrics: Arc<CollectorMetrics>,
    flush_interval: Duration,
) -> (PipelineSender, JoinHandle<()>) {
    start_writer_bounded(sink, metrics, flush_interval, CHANNEL_BYTES)
}

/// [`start_writer`] with at most `max_bytes` of events queued (clamped to
/// [`MIN_QUEUE_BYTES`]..=[`MAX_QUEUE_BYTES`]) instead of [`CHANNEL_BYTES`].
pub fn start_writer_bounded(
    sink: Arc<dyn EventSink>,
    metrics: Arc<CollectorMetrics>,
    flush_interval: Duration,
    max_bytes: usize,
) -> (PipelineSender, JoinHandle<()>) {
    let max_bytes = max_bytes.clamp(MIN_QUEUE_BYTES, MAX_QUEUE_BYTES);
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let room = Arc::new(Semaphore::new(max_bytes));
    let pool = Arc::new(LinesPool::default());
    let writer = Writer {
        sink,
        pool: pool.clone(),
        metrics,
        dirty: false,
    };
    let handle = tokio::spawn(writer.run(rx, flush_interval));
    (
        PipelineSender {
            tx,
            room,
            max_bytes,
            pool,
        },
        handle,
    )
}

struct Writer {
    sink: Arc<dyn EventSink>,
    /// Where written batches' buffers go back to, for the sources.
    pool: Arc<LinesPool>,
    metrics: Arc<CollectorMetrics>,
    /// Written since the last flush.
    dirty: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Batch>, flush_interval: Duration) {
        let mut ticker = tokio::time::interval(flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => batch,
                    None => break,
                },
                _ = ticker.tick() => {
                    if self.dirty {
                        self.flush().await;
                    }
                    continue;
                }
            };
            let mut line_count = first.lines.len();
            let mut batches = vec![first];
            while line_count < COALESCE_LINES {
                match rx.try_recv() {
                    Ok(batch) => {
                        line_count += batch.lines.len();
                        batches.push(batch);
                    }
                    Err(_) => break,
                }
            }
            self.write(batches, line_count).await;
        }
        if self.dirty {
            self.flush().await;
        }
    }

    async fn write(&mut self, mut batches: Vec<Batch>, line_count: usize) {
        let mut groups = Vec::with_capacity(batches.len());
        let mut per_source: Vec<(usize, u64)> = Vec::new();
        // The batches' room goes back to the sources once the sink has written them, not when
        // they leave the channel: the bytes being written count against the bound too, so the
        // pipeline holds at most `max_bytes` in all (with the room returned on taking, a full
        // queue behind a batch under write held twice that, and the collector's peak memory
        // moved with how the sender's bursts fell; BENCHMARKS.md, Collector throughput).
        let mut rooms = Vec::with_capacity(batches.len());
        for batch in &mut batches {
            rooms.extend(batch.room.take());
            let count = batch.lines.len() as u64;
            match per_source
                .iter_mut()
                .find(|(source, _)| *source == batch.source)
            {
                Some((_, total)) => *total += count,
                None => per_source.push((batch.source, count)),
            }
            // The batches' buffers go to the sink as they are: joining them would copy every
            // byte once more.
            if !batch.lines.is_empty() {
                groups.push(std::mem::take(&mut batch.lines));
            }
        }
        let written = if groups.is_empty() {
            true
        } else {
            let sink = self.sink.clone();
            let pool = self.pool.clone();
            let write = move || {
                let written = sink.write(&groups);
                for lines in groups {
                    pool.give_back(lines);
                }
                written
            };
            match tokio::task::spawn_blocking(write).await {
                Ok(Ok(())) => true,
                Ok(Err(error)) => {
                    tracing::error!(%error, events = line_count, "sink write failed; events dropped");
                    false
                }
                Err(error) => {
                    tracing::error!(%error, events = line_count, "sink write panicked; events dropped");
                    false
                }
            }
        };
        // Written (or dropped) and freed: the sources may fill the room again.
        drop(rooms);
        let sources = self.metrics.sources();
        use std::sync::atomic::Ordering::Relaxed;
        if line_count > 0 {
            if written {
                self.dirty = true;
                self.metrics.sink.writes.fetch_add(1, Relaxed);
                self.metrics
                    .sink
                    .events
                    .fetch_add(line_count as u64, Relaxed);
            } else {
                self.metrics.sink.write_errors.fetch_add(1, Relaxed);
            }
        }
        for (source, count) in per_source {
            if let Some(source) = sources.get(source) {
                if written {
                    source.add_events_out(count);
                } else {
                    source.add_drops(DropReason::SinkFailed, count);
                }
            }
        }
        let flushed = if batches.iter().any(|batch| batch.flush) {
            self.flush().await
        } else {
            true
        };
        for batch in batches {
            if let Some(done) = batch.done {
                let _ = done.send(written && (flushed || !batch.flush));
            }
        }
    }

    async fn flush(&mut self) -> bool {
        let sink = self.sink.clone();
        let flushed = matches!(
            tokio::task::spawn_blocking(move || sink.flush()).await,
            Ok(Ok(()))
        );
        use std::sync::atomic::Ordering::Relaxed;
        if flushed {
            self.dirty = false;
            self.metrics.sink.flushes.fetch_add(1, Relaxed);
        } else {
            tracing::error!("sink flush failed");
            self.metrics.sink.flush_errors.fetch_add(1, Relaxed);
        }
        flushed
    }
}
