//! The pipeline between the sources and the sink: sources hand over batches of serialized
//! events on a bounded channel; one writer task hands them to the [`EventSink`] in arrival
//! order, from a blocking thread, and flushes it at an interval.
//!
//! Backpressure is the channel's bound: when the sink blocks, the channel fills, and a source
//! that awaits [`PipelineSender::send`] stops reading (TCP and TLS senders are slowed down by
//! their TCP window, HTTP agents get a 503 after a timeout); UDP cannot wait and counts what
//! it drops. Batches can carry a confirmation, sent once the sink has them (and, on request,
//! has flushed them): the file source checkpoints only what is confirmed, the HTTP source
//! answers 200 only then.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::{CollectorMetrics, DropReason};
use crate::sink::EventSink;

/// Batches waiting for the sink, at most. A batch is what one read of 64 KiB gives (about 500
/// syslog lines, 350 KB of JSON), so this bounds the pipeline to about 11 MB, and holds tens
/// of milliseconds of a busy collector: enough to ride out an fsync.
pub const CHANNEL_BATCHES: usize = 32;
/// The writer joins queued batches into one sink write up to this many lines.
const COALESCE_LINES: usize = 8192;

/// One source's events on their way to the sink.
#[derive(Debug)]
struct Batch {
    /// Index of the source in [`CollectorMetrics::sources`].
    source: usize,
    lines: Vec<Vec<u8>>,
    flush: bool,
    done: Option<oneshot::Sender<bool>>,
}

/// The pipeline has stopped (the writer is gone): nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline has stopped")]
pub struct PipelineClosed;

/// Why a bounded-wait send did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum SendFailure {
    /// The pipeline stayed full for the whole wait; the lines were not sent.
    Full(Vec<Vec<u8>>),
    /// The pipeline has stopped.
    Closed,
}

/// A source's end of the pipeline. Cheap to clone; the writer stops once every clone is gone.
#[derive(Debug, Clone)]
pub struct PipelineSender {
    tx: mpsc::Sender<Batch>,
}

impl PipelineSender {
    /// Sends lines, waiting while the pipeline is full.
    pub async fn send(&self, source: usize, lines: Vec<Vec<u8>>) -> Result<(), PipelineClosed> {
        if lines.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Batch {
                source,
                lines,
                flush: false,
                done: None,
            })
            .await
            .map_err(|_| PipelineClosed)
    }

    /// Sends lines, waiting at most `wait` for room.
    pub async fn send_within(
        &self,
        source: usize,
        lines: Vec<Vec<u8>>,
        wait: Duration,
    ) -> Result<(), SendFailure> {
        if lines.is_empty() {
            return Ok(());
        }
        let permit = match self.tx.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Closed(())) => return Err(SendFailure::Closed),
            Err(mpsc::error::TrySendError::Full(())) => {
                match tokio::time::timeout(wait, self.tx.reserve()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(SendFailure::Closed),
                    Err(_) => return Err(SendFailure::Full(lines)),
                }
            }
        };
        permit.send(Batch {
            source,
            lines,
            flush: false,
            done: None,
        });
        Ok(())
    }

    /// Sends lines and waits until the sink has them (and has flushed, with `flush`).
    /// `Ok(false)`: the sink refused them (they are counted as dropped). `wait_for_room`
    /// bounds the wait for room in the pipeline; past it the lines come back unsent.
    pub async fn send_confirmed(
        &self,
        source: usize,
        lines: Vec<Vec<u8>>,
        flush: bool,
        wait_for_room: Duration,
    ) -> Result<bool, SendFailure> {
        let (done, confirmed) = oneshot::channel();
        let permit = match tokio::time::timeout(wait_for_room, self.tx.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(SendFailure::Closed),
            Err(_) => return Err(SendFailure::Full(lines)),
        };
        permit.send(Batch {
            source,
            lines,
            flush,
            done: Some(done),
        });
        confirmed.await.map_err(|_| SendFailure::Closed)
    }

    /// [`PipelineSender::send`] from a blocking thread (the file source).
    pub fn blocking_send(&self, source: usize, lines: Vec<Vec<u8>>) -> Result<(), PipelineClosed> {
        if lines.is_empty() {
            return Ok(());
        }
        self.tx
            .blocking_send(Batch {
                source,
                lines,
                flush: false,
                done: None,
            })
            .map_err(|_| PipelineClosed)
    }

    /// From a blocking thread: sends lines (possibly none) with a flush request and waits
    /// until everything sent before is written and flushed. `Ok(false)`: the sink failed.
    pub fn blocking_barrier(
        &self,
        source: usize,
        lines: Vec<Vec<u8>>,
    ) -> Result<bool, PipelineClosed> {
        let (done, confirmed) = oneshot::channel();
        self.tx
            .blocking_send(Batch {
                source,
                lines,
                flush: true,
                done: Some(done),
            })
            .map_err(|_| PipelineClosed)?;
        confirmed.blocking_recv().map_err(|_| PipelineClosed)
    }
}

/// Starts the writer task. It ends, after a last flush, once every [`PipelineSender`] clone
/// is dropped.
pub fn start_writer(
    sink: Arc<dyn EventSink>,
    metrics: Arc<CollectorMetrics>,
    flush_interval: Duration,
) -> (PipelineSender, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    let writer = Writer {
        sink,
        metrics,
        dirty: false,
    };
    let handle = tokio::spawn(writer.run(rx, flush_interval));
    (PipelineSender { tx }, handle)
}

struct Writer {
    sink: Arc<dyn EventSink>,
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
        let mut lines = Vec::with_capacity(line_count);
        let mut per_source: Vec<(usize, u64)> = Vec::new();
        for batch in &mut batches {
            let count = batch.lines.len() as u64;
            match per_source
                .iter_mut()
                .find(|(source, _)| *source == batch.source)
            {
                Some((_, total)) => *total += count,
                None => per_source.push((batch.source, count)),
            }
            lines.append(&mut batch.lines);
        }
        let written = if lines.is_empty() {
            true
        } else {
            let sink = self.sink.clone();
            match tokio::task::spawn_blocking(move || sink.write(lines)).await {
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
