//! [`ClickHouseSink`]: a bounded in-memory queue of event batches in front of a
//! [`ClickHouseStore`], drained by one tokio task that inserts in order and retries with
//! exponential backoff. While ClickHouse is down the queue holds; when it comes back the task
//! catches up. When the queue is full, [`WhenFull`] decides: make senders wait (backpressure,
//! the default) or drop the oldest waiting batch. Every event is counted in [`SinkStats`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use citysoc_collector::Event;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::IndexError;

use super::ClickHouseStore;

/// What [`ClickHouseSink::send`] does when the queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait until a batch has been inserted (backpressure reaches the collectors, which hold
    /// the data in their own buffers). Nothing is lost.
    #[default]
    Wait,
    /// Drop the oldest waiting batch to make room, counting its events in
    /// [`SinkStats::dropped`]: fresh events matter more than old ones during a long outage.
    DropOldest,
}

/// How the sink queues and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// Batches that may wait, besides the one being inserted. At least 1.
    pub max_waiting_batches: usize,
    /// What happens when that many are waiting.
    pub when_full: WhenFull,
    /// Pause after the first failed insert; doubled after each further failure.
    pub retry_initial: Duration,
    /// Longest pause between attempts.
    pub retry_max: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            max_waiting_batches: 64,
            when_full: WhenFull::Wait,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
        }
    }
}

/// The sink's counters. Counts are events, not batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Events accepted by [`ClickHouseSink::send`].
    pub queued: u64,
    /// Events inserted into ClickHouse.
    pub inserted: u64,
    /// Failed insert attempts (each one retried).
    pub retries: u64,
    /// Events dropped because the queue was full ([`WhenFull::DropOldest`]).
    pub dropped: u64,
    /// Events waiting or being inserted now: `queued - inserted - dropped`.
    pub pending: u64,
    /// The last insert error, cleared by the next successful insert.
    pub last_error: Option<String>,
}

/// A batch insert queue in front of ClickHouse. Dropping it stops the worker task; queued
/// events are then lost, so call [`ClickHouseSink::close`] first.
pub struct ClickHouseSink {
    shared: Arc<Shared>,
    worker: JoinHandle<()>,
}

impl std::fmt::Debug for ClickHouseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseSink")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every change of `state`, so waiters (senders, flushers, the worker)
    /// re-check it.
    changed: watch::Sender<u64>,
    config: SinkConfig,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Batch>,
    /// Sequence number of the batch being inserted.
    in_flight: Option<u64>,
    next_sequence: u64,
    /// Failed attempts so far; flushers watch it to report errors.
    failures: u64,
    closed: bool,
    stats: SinkStats,
}

struct Batch {
    sequence: u64,
    events: Vec<Event>,
}

impl State {
    /// Whether every batch numbered below `sequence` has been inserted or dropped.
    fn done_before(&self, sequence: u64) -> bool {
        self.in_flight.is_none_or(|in_flight| in_flight >= sequence)
            && self
                .waiting
                .front()
                .is_none_or(|batch| batch.sequence >= sequence)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters, not invariants, half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }
}

impl ClickHouseSink {
    /// Starts the worker task on the current tokio runtime.
    pub fn start(store: ClickHouseStore, config: SinkConfig) -> Self {
        let config = SinkConfig {
            max_waiting_batches: config.max_waiting_batches.max(1),
            ..config
        };
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed,
            config,
        });
        let worker = tokio::spawn(run(store, Arc::clone(&shared)));
        ClickHouseSink { shared, worker }
    }

    /// Queues a batch. With [`WhenFull::Wait`] this waits while the queue is full; with
    /// [`WhenFull::DropOldest`] it never waits. An error only after [`ClickHouseSink::close`].
    pub async fn send(&self, events: Vec<Event>) -> Result<(), IndexError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut changes = self.shared.changed.subscribe();
        let mut events = Some(events);
        loop {
            {
                let mut state = self.shared.lock();
                if state.closed {
                    return Err(IndexError::Sink("the sink is closed".into()));
                }
                let full = state.waiting.len() >= self.shared.config.max_waiting_batches;
                if full && self.shared.config.when_full == WhenFull::DropOldest {
                    if let Some(oldest) = state.waiting.pop_front() {
                        let count = oldest.events.len() as u64;
                        state.stats.dropped += count;
                        state.stats.pending -= count;
                    }
                }
                if state.waiting.len() < self.shared.config.max_waiting_batches {
                    let events = events.take().unwrap_or_default();
                    let count = events.len() as u64;
                    let sequence = state.next_sequence;
                    state.next_sequence += 1;
                    state.stats.queued += count;
                    state.stats.pending += count;
                    state.waiting.push_back(Batch { sequence, events });
                    drop(state);
                    self.shared.notify();
                    return Ok(());
                }
            }
            if changes.changed().await.is_err() {
                return Err(IndexError::Sink("the sink has stopped".into()));
            }
        }
    }

    /// Waits until every batch sent before this call is inserted (or dropped). Returns the
    /// error of an insert that fails meanwhile; the batch stays queued and is retried, so
    /// calling `flush` again later waits for the retry.
    pub async fn flush(&self) -> Result<(), IndexError> {
        let (target, failures) = {
            let state = self.shared.lock();
            (state.next_sequence, state.failures)
        };
        self.wait_for(target, Some(failures)).await
    }

    /// Stops accepting batches, waits up to `grace` for the queue to drain (retrying as
    /// usual), then stops the worker. An error names how many events were left.
    pub async fn close(self, grace: Duration) -> Result<SinkStats, IndexError> {
        let target = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.next_sequence
        };
        self.shared.notify();
        let drained = tokio::time::timeout(grace, self.wait_for(target, None)).await;
        self.worker.abort();
        let stats = self.stats();
        match drained {
            Ok(Ok(())) => Ok(stats),
            _ => Err(IndexError::Sink(format!(
                "closed with {} events not inserted (last error: {})",
                stats.pending,
                stats.last_error.as_deref().unwrap_or("none")
            ))),
        }
    }

    /// The counters now.
    pub fn stats(&self) -> SinkStats {
        self.shared.lock().stats.clone()
    }

    /// Waits until batches below `target` are done; with `failures`, returns an error as soon
    /// as an attempt fails after that count.
    async fn wait_for(&self, target: u64, failures: Option<u64>) -> Result<(), IndexError> {
        let mut changes = self.shared.changed.subscribe();
        loop {
            {
                let state = self.shared.lock();
                if state.done_before(target) {
                    return Ok(());
                }
                if failures.is_some_and(|before| state.failures > before) {
                    return Err(IndexError::Sink(format!(
                        "insert failed, {} events still queued: {}",
                        state.stats.pending,
                        state.stats.last_error.as_deref().unwrap_or("unknown error")
                    )));
                }
            }
            if changes.changed().await.is_err() {
                return Err(IndexError::Sink("the sink has stopped".into()));
            }
        }
    }
}

impl Drop for ClickHouseSink {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

/// The worker: takes the oldest batch, inserts it until it succeeds, repeats; ends when the
/// sink is closed and the queue is empty.
async fn run(store: ClickHouseStore, shared: Arc<Shared>) {
    let mut changes = shared.changed.subscribe();
    loop {
        let batch = loop {
            {
                let mut state = shared.lock();
                if let Some(batch) = state.waiting.pop_front() {
                    state.in_flight = Some(batch.sequence);
                    break batch;
                }
                if state.closed {
                    return;
                }
            }
            if changes.changed().await.is_err() {
                return;
            }
        };
        let count = batch.events.len() as u64;
        let mut pause = shared.config.retry_initial;
        loop {
            match store.insert(&batch.events).await {
                Ok(()) => {
                    {
                        let mut state = shared.lock();
                        state.in_flight = None;
                        state.stats.inserted += count;
                        state.stats.pending -= count;
                        state.stats.last_error = None;
                    }
                    shared.notify();
                    break;
                }
                Err(error) => {
                    {
                        let mut state = shared.lock();
                        state.failures += 1;
                        state.stats.retries += 1;
                        state.stats.last_error = Some(error.to_string());
                    }
                    shared.notify();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(shared.config.retry_max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(size: usize) -> Vec<Event> {
        (0..size)
            .map(|index| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("e{index}"), "timestamp": "2026-11-22T00:00:00Z",
                    "received_at": "2026-11-22T00:00:00Z", "source": {"transport": "udp"},
                    "format": "json"
                }))
                .unwrap_or_else(|error| panic!("{error}"))
            })
            .collect()
    }

    async fn wait_for_retry(sink: &ClickHouseSink) {
        for _ in 0..500 {
            if sink.stats().retries > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no insert attempt failed: {:?}", sink.stats());
    }

    /// No server at all (port 1 on the loopback is closed): the queue holds, drop-oldest
    /// counts exactly, close reports what is left.
    #[tokio::test]
    async fn unreachable_server_keeps_the_queue_and_counts_drops() {
        let store = ClickHouseStore::new("http://127.0.0.1:1", "citysoc")
            .unwrap_or_else(|error| panic!("{error}"));
        let sink = ClickHouseSink::start(
            store,
            SinkConfig {
                max_waiting_batches: 2,
                when_full: WhenFull::DropOldest,
                retry_initial: Duration::from_millis(5),
                retry_max: Duration::from_millis(20),
            },
        );
        assert!(sink.send(batch(2)).await.is_ok());
        wait_for_retry(&sink).await;
        for size in [3, 4, 5, 6] {
            assert!(sink.send(batch(size)).await.is_ok());
        }
        assert!(sink.send(Vec::new()).await.is_ok());
        let stats = sink.stats();
        // In flight: 2; waiting: 5 and 6; dropped: 3 and 4.
        assert_eq!(
            (stats.queued, stats.inserted, stats.dropped, stats.pending),
            (20, 0, 7, 13)
        );
        assert!(stats.last_error.is_some());
        assert!(sink.flush().await.is_err());
        let error = sink.close(Duration::from_millis(50)).await;
        assert!(
            matches!(&error, Err(IndexError::Sink(message)) if message.contains("13 events not inserted")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn waiting_sender_blocks_while_full_and_closed_sink_refuses() {
        let store = ClickHouseStore::new("http://127.0.0.1:1", "citysoc")
            .unwrap_or_else(|error| panic!("{error}"));
        let sink = ClickHouseSink::start(
            store,
            SinkConfig {
                max_waiting_batches: 1,
                retry_initial: Duration::from_millis(5),
                retry_max: Duration::from_millis(20),
                ..SinkConfig::default()
            },
        );
        assert!(sink.send(batch(1)).await.is_ok());
        wait_for_retry(&sink).await;
        assert!(sink.send(batch(1)).await.is_ok());
        let blocked = tokio::time::timeout(Duration::from_millis(100), sink.send(batch(1))).await;
        assert!(blocked.is_err(), "send must wait while the queue is full");
        assert_eq!(sink.stats().queued, 2);
        let _ = sink.close(Duration::from_millis(10)).await;
    }
}
