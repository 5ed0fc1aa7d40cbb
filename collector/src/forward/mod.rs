//! The forwarder: takes batches of events out of the [`DiskBuffer`], sends them to the SOC
//! server signed and numbered (see [`crate::protocol`]), and acknowledges them in the buffer
//! only once the server has said they are durable.
//!
//! ```text
//! DiskBuffer ──read──► batch (≤ batch_max_events, ≤ batch_max_bytes, waits ≤ linger to fill)
//!     ▲                  │ zstd NDJSON, HMAC signed again at every attempt
//!     │                  ▼
//!     │ ack + next   POST {server}/api/v1/intake ──► 200 IntakeAck ──┐
//!     │ batch number     │ network error, 5xx, 408, 429: same batch, │
//!     │ (one write)      │   same number, after a backoff            │
//!     └──────────────────┴─ 4xx: batch saved in rejected/, counted ◄─┘
//! ```
//!
//! A batch keeps its number until the server acknowledges it, and the number is written in
//! the buffer before the first attempt together with the batch's last record, so after a crash
//! the same number goes out again with the same records (the server re-acknowledges a batch it
//! already stored).
//!
//! A batch the server refuses for its content (`bad_body`, `too_large`) is cut in half and the
//! first half sent again under the same number (the server stored nothing of it), and so on
//! down to one record: one record the server cannot read is then all that goes to
//! `rejected/`, not the thousands sent with it. Refusals of the whole stream (a server older
//! than the records, a bad key) are not split, nor are more after [`MAX_LONE_REFUSALS`]
//! single records refused in a row: then every record is refused and halving would only
//! multiply requests. Records `drop_oldest` removed while their batch was waiting are left out
//! of the next attempt: the buffer counted them as dropped, so the server must not get them.

mod backoff;
pub(crate) mod client;
mod rejected;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::buffer::{DiskBuffer, Offset};
use crate::protocol::{self, Rejection};
use crate::CollectorError;
use backoff::Backoff;
use client::{Attempt, IntakeClient};
pub use rejected::REJECTED_DIR;

/// Single records refused in a row after which refused batches are set aside whole again,
/// until the server acknowledges one.
pub const MAX_LONE_REFUSALS: u32 = 3;

/// How long one blocking buffer read waits, so a stop is noticed quickly.
const READ_SLICE: Duration = Duration::from_millis(200);

/// Settings of a [`Forwarder`].
#[derive(Clone)]
pub struct ForwarderConfig {
    /// `https://host[:port][/prefix]`; plain `http://` only to a loopback address.
    pub server_url: String,
    /// The id the server issued at enrollment.
    pub collector_id: String,
    /// The HMAC key the server issued at enrollment.
    pub key: Vec<u8>,
    /// PEM file of the CA (or self-signed certificate) to trust instead of the system's store.
    pub ca_file: Option<PathBuf>,
    /// Most events in one batch.
    pub batch_max_events: usize,
    /// About the most bytes of events in one batch, before compression (a single larger event
    /// still goes, alone).
    pub batch_max_bytes: usize,
    /// How long a batch waits to fill up once it has its first event.
    pub linger: Duration,
    /// First delay before a retry.
    pub retry_initial: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
    /// Limit on one request, connection included.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for ForwarderConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ForwarderConfig")
            .field("server_url", &self.server_url)
            .field("collector_id", &self.collector_id)
            .field("key", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("linger", &self.linger)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl ForwarderConfig {
    /// Settings for `server_url` with the usual batch sizes and timings.
    pub fn new(
        server_url: impl Into<String>,
        collector_id: impl Into<String>,
        key: Vec<u8>,
    ) -> Self {
        Self {
            server_url: server_url.into(),
            collector_id: collector_id.into(),
            key,
            ca_file: None,
            batch_max_events: 5_000,
            batch_max_bytes: 4 << 20,
            linger: Duration::from_millis(500),
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// Every problem with the settings, or nothing.
    pub fn validate(&self) -> Result<(), CollectorError> {
        let mut problems = Vec::new();
        if let Err(CollectorError::InvalidForwarderConfig(problem)) =
            client::intake_url(&self.server_url)
        {
            problems.push(problem);
        }
        if self.collector_id.is_empty() || self.collector_id.contains(['\n', '\r']) {
            problems.push("collector id must be non-empty and on one line".into());
        }
        if self.key.is_empty() {
            problems.push("the key is empty (enroll the collector first)".into());
        }
        if self.batch_max_events == 0 || self.batch_max_events > protocol::MAX_BATCH_EVENTS {
            problems.push(format!(
                "batch_max_events must be between 1 and {} (the most the server takes in one batch)",
                protocol::MAX_BATCH_EVENTS
            ));
        }
        if self.batch_max_bytes == 0 || self.batch_max_bytes > protocol::MAX_BODY_BYTES / 2 {
            problems.push(format!(
                "batch_max_bytes must be between 1 and {} (the server reads bodies up to {} bytes)",
                protocol::MAX_BODY_BYTES / 2,
                protocol::MAX_BODY_BYTES
            ));
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            problems.push("retry_initial must be above zero and at most retry_max".into());
        }
        if self.request_timeout.is_zero() {
            problems.push("request_timeout must be above zero".into());
        }
        if let Some(path) = &self.ca_file {
            if !path.is_file() {
                problems.push(format!(
                    "CA file `{}` is not a readable file",
                    path.display()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CollectorError::InvalidForwarderConfig(problems.join("; ")))
        }
    }
}

/// Counters of a [`Forwarder`], updated as it works.
#[derive(Debug, Default)]
pub struct ForwarderStats {
    batches_sent: AtomicU64,
    batches_acked: AtomicU64,
    events_acked: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
    rejected_batches: AtomicU64,
    rejected_events: AtomicU64,
    dropped_before_delivery: AtomicU64,
    renumbered: AtomicU64,
    split: AtomicU64,
    last_ack_time_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`ForwarderStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ForwarderStatsSnapshot {
    /// Requests sent (every attempt of every batch).
    pub batches_sent: u64,
    /// Batches the server acknowledged.
    pub batches_acked: u64,
    /// Events in those batches.
    pub events_acked: u64,
    /// Events the server said it already had (re-sent after a lost acknowledgement).
    pub duplicates: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Batches the server refused (saved in `rejected/`).
    pub rejected_batches: u64,
    /// Events of those batches saved in `rejected/` (any that `drop_oldest` took before they
    /// could be saved are in `dropped_before_delivery`).
    pub rejected_events: u64,
    /// Events taken out of a waiting batch because `drop_oldest` dropped them from the buffer
    /// (already counted in the buffer's `dropped`).
    pub dropped_before_delivery: u64,
    /// Batches renumbered because the server had acknowledged newer numbers than this
    /// buffer knew (its state was lost or restored from a backup).
    pub renumbered: u64,
    /// Refused batches cut in half to send again, so that only the records the server cannot
    /// take end in `rejected/` (see [`Forwarder`]'s module docs).
    pub split: u64,
    /// When the last acknowledgement came, Unix milliseconds (0: never).
    pub last_ack_time_ms: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl ForwarderStats {
    /// The counters now.
    pub fn snapshot(&self) -> ForwarderStatsSnapshot {
        ForwarderStatsSnapshot {
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            batches_acked: self.batches_acked.load(Ordering::Relaxed),
            events_acked: self.events_acked.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            rejected_batches: self.rejected_batches.load(Ordering::Relaxed),
            rejected_events: self.rejected_events.load(Ordering::Relaxed),
            dropped_before_delivery: self.dropped_before_delivery.load(Ordering::Relaxed),
            renumbered: self.renumbered.load(Ordering::Relaxed),
            split: self.split.load(Ordering::Relaxed),
            last_ack_time_ms: self.last_ack_time_ms.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    fn error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }
}

/// Tells the task to stop.
#[derive(Debug, Default)]
struct StopSignal {
    stopping: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    fn is_set(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.stopping.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Sleeps `duration`; false when the stop signal came first.
    async fn sleep(&self, duration: Duration) -> bool {
        let notified = self.notify.notified();
        if self.is_set() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => !self.is_set(),
            () = notified => false,
        }
    }
}

/// The running forwarder task.
#[derive(Debug)]
pub struct Forwarder {
    stop: Arc<StopSignal>,
    task: JoinHandle<()>,
    stats: Arc<ForwarderStats>,
    request_timeout: Duration,
}

impl Forwarder {
    /// Checks the settings, builds the HTTPS client and starts the task on the current tokio
    /// runtime.
    pub fn start(buffer: Arc<DiskBuffer>, config: ForwarderConfig) -> Result<Self, CollectorError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            CollectorError::InvalidForwarderConfig(
                "the forwarder must be started inside a tokio runtime".into(),
            )
        })?;
        let client = IntakeClient::new(&config)?;
        let stop = Arc::new(StopSignal::default());
        let stats = Arc::new(ForwarderStats::default());
        let request_timeout = config.request_timeout;
        let worker = Worker {
            buffer,
            client,
            config,
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
        };
        let task = runtime.spawn(worker.run());
        Ok(Self {
            stop,
            task,
            stats,
            request_timeout,
        })
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<ForwarderStats> {
        Arc::clone(&self.stats)
    }

    /// Stops: a request in flight is finished (at most the request timeout, plus a moment
    /// for its acknowledgement to be written); a batch not acknowledged stays in the buffer.
    pub async fn shutdown(self) {
        self.stop.set();
        let mut task = self.task;
        let bound = self.request_timeout + Duration::from_secs(5);
        if tokio::time::timeout(bound, &mut task).await.is_err() {
            tracing::warn!("forwarder did not stop in time; abandoning its request");
            task.abort();
        }
    }
}

/// The number a batch refused as a replay goes again under: after the newest one the server
/// acknowledged, when that is at or past the batch's own (a collector whose buffer state was
/// lost counts from 1 again). The server de-duplicates by event id, so events it already has
/// are only counted as duplicates. `None`: a real refusal, saved under `rejected/`.
fn renumber_after(status: u16, rejection: &Rejection, sequence: u64) -> Option<u64> {
    if status != 409 || rejection.reason != "replay" {
        return None;
    }
    let last = rejection.last_acknowledged?;
    (last >= sequence).then(|| last.checked_add(1)).flatten()
}

/// What the task owns.
struct Worker {
    buffer: Arc<DiskBuffer>,
    client: IntakeClient,
    config: ForwarderConfig,
    stop: Arc<StopSignal>,
    stats: Arc<ForwarderStats>,
}

/// A batch on its way. Only the compressed body and the batch's place in the buffer are kept
/// across retries (a link down for hours retries the same batch all that time): the records
/// stay in the buffer until the server acknowledges them, and are read again from there in
/// the rare cases that need them (`drop_oldest` took some of them, the server refused the
/// batch for good).
struct Batch {
    sequence: u64,
    /// The batch's first and last record.
    first: Offset,
    last: Offset,
    /// Records in the batch (the buffer may skip damaged records, so not `last - first + 1`).
    events: usize,
    body: Vec<u8>,
    /// The number was used on the wire: it stays taken even if the records all go.
    sent: bool,
}

impl Worker {
    async fn run(self) {
        let mut cursor: Option<Offset> = None;
        let mut sequence = self.buffer.next_sequence();
        // A batch sent before the last stop and not acknowledged goes again as it was.
        let mut resend_upto = self
            .buffer
            .in_flight()
            .filter(|(in_flight, _)| *in_flight == sequence)
            .map(|(_, last)| last);
        let mut backoff = Backoff::new(self.config.retry_initial, self.config.retry_max);
        let mut lone_refusals = 0;
        while !self.stop.is_set() {
            let resending = resend_upto.is_some();
            let records = match self.gather(cursor, resend_upto.take()).await {
                Ok(records) => records,
                Err(error) => {
                    self.failed(format!("cannot read the buffer: {error}"));
                    if !self.stop.sleep(backoff.next_delay()).await {
                        break;
                    }
                    continue;
                }
            };
            if self.stop.is_set() {
                // Not started: the records stay in the buffer for the next run.
                break;
            }
            let (Some((first, _)), Some((last, _))) = (records.first(), records.last()) else {
                if resending {
                    // The batch in flight at the last stop is gone (acknowledged or dropped):
                    // its number was used on the wire, so it is not used again.
                    sequence += 1;
                    if let Err(error) = self
                        .blocking(move |buffer| buffer.set_sequence(sequence))
                        .await
                    {
                        self.failed(format!("cannot store the batch number: {error}"));
                    }
                }
                continue;
            };
            let (first, last) = (*first, *last);
            let body = match encode(&records) {
                Ok(body) => body,
                Err(error) => {
                    // Cannot happen with in-memory compression; keep the records for later.
                    self.failed(format!("cannot compress a batch: {error}"));
                    cursor = records
                        .first()
                        .and_then(|(offset, _)| offset.0.checked_sub(1))
                        .map(Offset);
                    if !self.stop.sleep(backoff.next_delay()).await {
                        break;
                    }
                    continue;
                }
            };
            let mut batch = Batch {
                sequence,
                first,
                last,
                events: records.len(),
                body,
                sent: resending,
            };
            // The body is what goes on the wire; the records are in the buffer.
            drop(records);
            let delivered = self
                .deliver(&mut batch, &mut backoff, &mut lone_refusals)
                .await;
            // A batch cut in half ends earlier than what was read: the rest comes next.
            cursor = Some(batch.last);
            match delivered {
                Delivered::Done => sequence = batch.sequence + 1,
                Delivered::Emptied => sequence = batch.sequence,
                Delivered::Stopped => break,
            }
            backoff.reset();
        }
    }

    /// The next batch after `cursor`: waits for a first record, then up to `linger` for more.
    /// With `resend_upto`, exactly the records of the batch that was in flight at the last stop.
    async fn gather(
        &self,
        cursor: Option<Offset>,
        resend_upto: Option<Offset>,
    ) -> Result<Vec<(Offset, Vec<u8>)>, CollectorError> {
        let max_events = self.config.batch_max_events;
        let max_bytes = self.config.batch_max_bytes;
        if let Some(upto) = resend_upto {
            let first = self.buffer.first_unacked();
            let count = usize::try_from(upto.0.saturating_sub(first.0).saturating_add(1))
                .unwrap_or(usize::MAX);
            let records = self.read(cursor, count, usize::MAX, Duration::ZERO).await?;
            return Ok(records
                .into_iter()
                .filter(|(offset, _)| *offset <= upto)
                .collect());
        }
        let mut records = Vec::new();
        while records.is_empty() {
            if self.stop.is_set() {
                return Ok(records);
            }
            records = self.read(cursor, max_events, max_bytes, READ_SLICE).await?;
        }
        let deadline = Instant::now() + self.config.linger;
        let mut bytes: usize = records.iter().map(|(_, record)| record.len()).sum();
        while records.len() < max_events && bytes < max_bytes && !self.stop.is_set() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let after = records.last().map(|(offset, _)| *offset);
            // Topping up never passes `max_bytes`: the server's allowance of decoded values
            // and field paths per batch is sized on it (record/budget.rs).
            let (more, full) = self
                .read_to_fill(
                    after,
                    max_events - records.len(),
                    max_bytes - bytes,
                    (deadline - now).min(READ_SLICE),
                )
                .await?;
            bytes += more.iter().map(|(_, record)| record.len()).sum::<usize>();
            records.extend(more);
            if full {
                break;
            }
        }
        Ok(records)
    }

    async fn read_to_fill(
        &self,
        after: Option<Offset>,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<(crate::buffer::Records, bool), CollectorError> {
        let buffer = Arc::clone(&self.buffer);
        tokio::task::spawn_blocking(move || {
            buffer.read_to_fill(after, max_records, max_bytes, wait)
        })
        .await
        .map_err(|error| CollectorError::Protocol(format!("buffer read task failed: {error}")))?
    }

    async fn read(
        &self,
        after: Option<Offset>,
        max_records: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Vec<(Offset, Vec<u8>)>, CollectorError> {
        let buffer = Arc::clone(&self.buffer);
        tokio::task::spawn_blocking(move || buffer.read(after, max_records, max_bytes, wait))
            .await
            .map_err(|error| {
                CollectorError::Protocol(format!("buffer read task failed: {error}"))
            })?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&DiskBuffer) -> Result<T, CollectorError> + Send + 'static,
    ) -> Result<T, CollectorError> {
        let buffer = Arc::clone(&self.buffer);
        tokio::task::spawn_blocking(move || work(&buffer))
            .await
            .map_err(|error| CollectorError::Protocol(format!("buffer task failed: {error}")))?
    }

    /// Sends `batch` until the server acknowledges it, refuses it (saved and counted), the
    /// buffer dropped all of it, or the forwarder stops.
    async fn deliver(
        &self,
        batch: &mut Batch,
        backoff: &mut Backoff,
        lone_refusals: &mut u32,
    ) -> Delivered {
        loop {
            match self.leave_out_dropped(batch).await {
                Ok(true) => {}
                Ok(false) => return Delivered::Emptied,
                Err(problem) => {
                    self.failed(format!("batch {}: {problem}", batch.sequence));
                    if !self.stop.sleep(backoff.next_delay()).await {
                        return Delivered::Stopped;
                    }
                    continue;
                }
            }
            let last = batch.last;
            if !batch.sent {
                let sequence = batch.sequence;
                if let Err(error) = self
                    .blocking(move |buffer| buffer.set_in_flight(sequence, last))
                    .await
                {
                    self.failed(format!("cannot record the batch in flight: {error}"));
                    if !self.stop.sleep(backoff.next_delay()).await {
                        return Delivered::Stopped;
                    }
                    continue;
                }
                batch.sent = true;
            }
            self.stats.batches_sent.fetch_add(1, Ordering::Relaxed);
            let outcome = self.client.send(batch.sequence, &batch.body).await;
            let problem = match outcome {
                Attempt::Acked(ack) => {
                    self.stats
                        .duplicates
                        .fetch_add(ack.duplicates, Ordering::Relaxed);
                    match self.finish(batch, last, Outcome::Stored).await {
                        Ok(()) => {
                            *lone_refusals = 0;
                            self.stats.batches_acked.fetch_add(1, Ordering::Relaxed);
                            self.stats
                                .events_acked
                                .fetch_add(batch.events as u64, Ordering::Relaxed);
                            self.stats
                                .last_ack_time_ms
                                .store(now_ms(), Ordering::Relaxed);
                            return Delivered::Done;
                        }
                        // The server has the batch; sending it again is only a duplicate.
                        Err(error) => format!(
                            "cannot record the acknowledgement of batch {}: {error}",
                            batch.sequence
                        ),
                    }
                }
                Attempt::Rejected { status, rejection } => {
                    match renumber_after(status, &rejection, batch.sequence) {
                        Some(next) => match self.renumber(batch, next, last).await {
                            Ok(()) => continue,
                            Err(problem) => problem,
                        },
                        None if worth_splitting(batch.events, &rejection, *lone_refusals) => {
                            match self.halve(batch, &rejection).await {
                                Ok(()) => continue,
                                Err(problem) => problem,
                            }
                        }
                        None => match self.set_aside(batch, last, status, rejection).await {
                            Ok(()) => {
                                if batch.events == 1 {
                                    *lone_refusals += 1;
                                }
                                return Delivered::Done;
                            }
                            Err(problem) => problem,
                        },
                    }
                }
                Attempt::Failed(problem) => problem,
            };
            self.failed(format!("batch {}: {problem}", batch.sequence));
            if self.stop.is_set() {
                return Delivered::Stopped;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            if !self.stop.sleep(backoff.next_delay()).await {
                return Delivered::Stopped;
            }
        }
    }

    /// Sends a batch the server refused as a replay again under `next`, after the newest
    /// number the server acknowledged (this buffer's numbering was lost or restored).
    async fn renumber(&self, batch: &mut Batch, next: u64, last: Offset) -> Result<(), String> {
        tracing::warn!(
            sequence = batch.sequence,
            next,
            "the server acknowledged newer batch numbers than this buffer knew (its state was lost or restored): renumbering"
        );
        self.blocking(move |buffer| buffer.set_in_flight(next, last))
            .await
            .map_err(|error| format!("cannot record the renumbered batch {next}: {error}"))?;
        self.stats.renumbered.fetch_add(1, Ordering::Relaxed);
        batch.sequence = next;
        Ok(())
    }

    /// Narrows a refused batch to its first half (read again from the buffer), to be sent
    /// again under the same number: the server stored nothing of it.
    async fn halve(&self, batch: &mut Batch, rejection: &Rejection) -> Result<(), String> {
        let (first, last, sequence) = (batch.first, batch.last, batch.sequence);
        let records = self
            .blocking(move |buffer| read_span(buffer, first, last))
            .await
            .map_err(|error| format!("cannot read refused batch {sequence} again: {error}"))?;
        // `drop_oldest` may have taken some since: what is left goes as it is (the next
        // attempt leaves the dropped ones out), and one record alone is set aside if refused.
        let half = &records[..(records.len() / 2).max(1).min(records.len())];
        let (Some((half_first, _)), Some((half_last, _))) = (half.first(), half.last()) else {
            batch.events = 0;
            return Ok(());
        };
        let (half_first, half_last) = (*half_first, *half_last);
        let body = encode(half).map_err(|error| format!("cannot compress a batch: {error}"))?;
        self.blocking(move |buffer| buffer.set_in_flight(sequence, half_last))
            .await
            .map_err(|error| format!("cannot record the batch in flight: {error}"))?;
        tracing::warn!(
            sequence,
            reason = %rejection.reason,
            message = %rejection.message,
            events = records.len(),
            first_half = half.len(),
            "server refused a batch for its content: sending it again in halves"
        );
        self.stats.split.fetch_add(1, Ordering::Relaxed);
        batch.first = half_first;
        batch.last = half_last;
        batch.events = half.len();
        batch.body = body;
        Ok(())
    }

    /// A batch the server refused for good: saved under `rejected/` for a person to look at,
    /// counted, and taken out of the buffer so the ones behind it can go.
    async fn set_aside(
        &self,
        batch: &Batch,
        last: Offset,
        status: u16,
        rejection: Rejection,
    ) -> Result<(), String> {
        tracing::error!(sequence = batch.sequence, status, reason = %rejection.reason, message = %rejection.message, "server rejected a batch");
        if crate::record::is_newer_version_refusal(&rejection.message) {
            tracing::error!(
                "the server is older than this collector and cannot read its event records: upgrade the server first (docs/collector.md, \"Upgrading\"); refused batches are kept in rejected/ for re-import"
            );
        }
        let sequence = batch.sequence;
        let (first, last_offset, events) = (batch.first, batch.last, batch.events);
        let saved = self
            .blocking(move |buffer| {
                // Not yet acknowledged, so still in the buffer, less what `drop_oldest` took
                // since the batch was read (counted as dropped, so not saved either).
                let records = read_span(buffer, first, last_offset)?;
                let refused = rejected::RefusedBatch {
                    sequence,
                    first,
                    last: last_offset,
                    events,
                    status,
                    rejection: &rejection,
                };
                rejected::save(buffer.dir(), &refused, &records, now_ms())
            })
            .await
            .map_err(|error| format!("cannot save rejected batch {sequence}: {error}"))?;
        self.finish(batch, last, Outcome::Refused)
            .await
            .map_err(|error| format!("cannot record rejected batch {sequence}: {error}"))?;
        match &saved.events_path {
            Some(path) => {
                tracing::warn!(path = %path.display(), events = saved.events, "rejected batch saved");
            }
            None => tracing::warn!(
                path = %saved.reason_path.display(),
                "rejected batch: drop_oldest took every event before it could be saved; only the reason is kept"
            ),
        }
        self.stats.rejected_batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .rejected_events
            .fetch_add(saved.events as u64, Ordering::Relaxed);
        self.count_left_out(batch.events.saturating_sub(saved.events));
        Ok(())
    }

    /// The batch is done with: its records leave the buffer and the next number is stored.
    /// Records `drop_oldest` took while a stored batch was on the wire arrived after all and
    /// leave the drop count; those of a refused batch were neither stored nor saved, so they
    /// stay dropped.
    async fn finish(
        &self,
        batch: &Batch,
        last: Offset,
        outcome: Outcome,
    ) -> Result<(), CollectorError> {
        let next = batch.sequence + 1;
        let first = batch.first;
        self.blocking(move |buffer| match outcome {
            Outcome::Stored => buffer.ack_batch(first, last, next),
            Outcome::Refused => buffer.ack_with_sequence(last, next),
        })
        .await
    }

    /// Takes records `drop_oldest` removed out of the batch (its body is built again from the
    /// records left, read from the buffer); false when none is left.
    async fn leave_out_dropped(&self, batch: &mut Batch) -> Result<bool, String> {
        let first_unacked = self.buffer.first_unacked();
        if batch.first >= first_unacked {
            return Ok(true);
        }
        let (from, last) = (first_unacked, batch.last);
        let records = if from > last {
            Vec::new()
        } else {
            self.blocking(move |buffer| read_span(buffer, from, last))
                .await
                .map_err(|error| format!("cannot read the batch again: {error}"))?
        };
        let Some((first, _)) = records.first() else {
            self.count_left_out(batch.events);
            if batch.sent {
                // The number was seen by the server (maybe stored): never reuse it.
                let next = batch.sequence + 1;
                if let Err(error) = self.buffer.set_sequence(next) {
                    self.failed(format!("cannot store the batch number: {error}"));
                }
                batch.sequence = next;
            }
            return Ok(false);
        };
        // Nothing changes if compressing fails (it cannot, in memory): the next attempt
        // starts over from the buffer.
        let body = encode(&records).map_err(|error| format!("cannot compress a batch: {error}"))?;
        self.count_left_out(batch.events.saturating_sub(records.len()));
        batch.first = *first;
        batch.events = records.len();
        batch.body = body;
        Ok(true)
    }

    fn count_left_out(&self, records: usize) {
        self.stats
            .dropped_before_delivery
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    fn failed(&self, message: String) {
        tracing::warn!(error = %message, "forwarder");
        self.stats.error(message);
    }
}

/// What the server did with a batch that is done with.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Stored,
    Refused,
}

/// How a batch ended.
enum Delivered {
    /// Acknowledged (or rejected and saved): its number is used up.
    Done,
    /// Every record was dropped by the buffer before the server took it.
    Emptied,
    /// The forwarder is stopping; the batch stays in the buffer.
    Stopped,
}

/// Whether a batch of `events` refused with `rejection` is cut in half and sent again: only
/// refusals of its content, not of the whole stream (see the module docs).
fn worth_splitting(events: usize, rejection: &Rejection, lone_refusals: u32) -> bool {
    events > 1
        && lone_refusals < MAX_LONE_REFUSALS
        && matches!(rejection.reason.as_str(), "bad_body" | "too_large")
        && !crate::record::is_newer_version_refusal(&rejection.message)
}

/// The records `first..=last` still in the buffer (acknowledged or dropped ones are gone).
fn read_span(
    buffer: &DiskBuffer,
    first: Offset,
    last: Offset,
) -> Result<Vec<(Offset, Vec<u8>)>, CollectorError> {
    let count =
        usize::try_from(last.0.saturating_sub(first.0).saturating_add(1)).unwrap_or(usize::MAX);
    let after = first.0.checked_sub(1).map(Offset);
    let mut records = buffer.read(after, count, usize::MAX, Duration::ZERO)?;
    records.retain(|(offset, _)| *offset <= last);
    Ok(records)
}

fn encode(records: &[(Offset, Vec<u8>)]) -> Result<Vec<u8>, CollectorError> {
    protocol::encode_records(records.iter().map(|(_, record)| record.as_slice()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
