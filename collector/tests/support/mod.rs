//! Shared by the source tests: a collector started from a TOML snippet with a real NDJSON
//! archive in a temporary directory, and helpers to wait for and read what it wrote.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use citysoc_collector::config::CheckOptions;
use citysoc_collector::{
    CollectorConfig, CollectorError, CollectorIdentity, EventSink, Lines, NdjsonFileSink,
    RunningCollector,
};
use serde_json::Value;

pub struct Harness {
    pub collector: RunningCollector,
    pub dir: PathBuf,
    pub archive: PathBuf,
}

/// The configuration text for `sources` (one or more `[[source]]` tables) with data and
/// archive under `dir`.
pub fn config_text(dir: &Path, sources: &str) -> String {
    format!(
        r#"
[collector]
name = "test-collector"
agency = "quan-1"
data_dir = "{data}"
metrics_listen = "127.0.0.1:0"

[archive]
path = "{archive}"

{sources}
"#,
        data = dir.join("data").display(),
        archive = dir.join("archive.ndjson").display(),
    )
}

pub fn config(dir: &Path, sources: &str) -> CollectorConfig {
    CollectorConfig::from_toml(&config_text(dir, sources), "test", &CheckOptions::default())
        .unwrap_or_else(|error| panic!("{error}"))
}

pub fn identity(config: &CollectorConfig) -> CollectorIdentity {
    CollectorIdentity {
        collector: config.collector.name.clone(),
        agency: config.collector.agency.clone(),
    }
}

/// Starts a collector writing to the archive under `dir`.
pub async fn start_in(dir: &Path, sources: &str) -> Harness {
    let config = config(dir, sources);
    let archive = config.archive.as_ref().unwrap().path.clone();
    let sink = Arc::new(NdjsonFileSink::open(&archive, 1 << 30).unwrap());
    let collector = RunningCollector::start(&config, identity(&config), sink)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    Harness {
        collector,
        dir: dir.to_owned(),
        archive,
    }
}

/// Starts a collector writing to `sink`.
pub async fn start_with_sink(
    dir: &Path,
    sources: &str,
    sink: Arc<dyn EventSink>,
) -> RunningCollector {
    let config = config(dir, sources);
    RunningCollector::start(&config, identity(&config), sink)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

impl Harness {
    pub fn address(&self, source: &str) -> std::net::SocketAddr {
        self.collector.local_address(source).unwrap()
    }

    /// The counters of `source`.
    pub fn source_metrics(&self, source: &str) -> Arc<citysoc_collector::metrics::SourceMetrics> {
        self.collector.metrics().source(source).unwrap().clone()
    }

    /// Waits until the sink has accepted `count` events of `source`.
    pub async fn wait_for_events(&self, source: &str, count: u64) {
        let metrics = self.collector.metrics();
        let source_metrics = metrics.source(source).unwrap().clone();
        let reached = wait_until(Duration::from_secs(20), || {
            source_metrics.events_out() >= count
        })
        .await;
        assert!(
            reached,
            "waited for {count} events from {source}, got {}",
            source_metrics.events_out()
        );
    }

    /// Stops the collector (flushing the archive) and returns every event written.
    pub async fn stop(self) -> Vec<Value> {
        self.collector.stop().await;
        read_events(&self.archive)
    }
}

/// Posts `body` on a connection kept open (no `Connection: close`, as agents send) and reads
/// the answer: up to the end of its JSON body.
#[allow(dead_code)]
pub async fn post_kept_open<S>(stream: &mut S, host: &str, body: &[u8]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while !response.ends_with(b"}") {
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(
            read > 0,
            "closed after {:?}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

pub fn read_events(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn raws(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["raw"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A sink that holds every write until opened: a full disk buffer with `when_full = block`.
/// Lines are kept in memory in order.
#[derive(Default)]
pub struct GateSink {
    open: Mutex<bool>,
    changed: Condvar,
    pub lines: Mutex<Vec<Vec<u8>>>,
    /// Calls of `write` so far, held or not.
    writes_started: AtomicUsize,
}

impl GateSink {
    pub fn closed() -> Arc<Self> {
        Arc::new(GateSink::default())
    }

    pub fn open(&self) {
        *self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.changed.notify_all();
    }

    /// Opens the sink when dropped, also when a test fails while it is closed: a writer held in
    /// it would otherwise keep the runtime from shutting down, and the failing test would hang
    /// instead of failing.
    pub fn opened_on_drop(self: &Arc<Self>) -> OpenOnDrop {
        OpenOnDrop(self.clone())
    }

    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Waits (up to 10 s, then panics) until `write` has been called `count` times: the
    /// pipeline's writer has taken its batches out of the queue and is held in the sink.
    pub async fn wait_for_writes(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.writes_started.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "the writer never reached the sink"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl EventSink for GateSink {
    fn write(&self, batches: &[Lines]) -> Result<(), CollectorError> {
        self.writes_started.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
        drop(open);
        self.lines
            .lock()
            .unwrap()
            .extend(batches.iter().flat_map(Lines::iter).map(<[u8]>::to_vec));
        Ok(())
    }

    fn flush(&self) -> Result<(), CollectorError> {
        Ok(())
    }
}

/// See [`GateSink::opened_on_drop`].
pub struct OpenOnDrop(Arc<GateSink>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// A sink whose first `failures` writes fail (a disk error), then writes to `inner`.
pub struct FailingSink {
    failures: AtomicUsize,
    inner: Arc<dyn EventSink>,
}

impl FailingSink {
    pub fn new(failures: usize, inner: Arc<dyn EventSink>) -> Arc<Self> {
        Arc::new(FailingSink {
            failures: AtomicUsize::new(failures),
            inner,
        })
    }
}

impl EventSink for FailingSink {
    fn write(&self, batches: &[Lines]) -> Result<(), CollectorError> {
        let failing = self
            .failures
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if failing {
            return Err(CollectorError::Protocol(
                "the test's sink fails this write".into(),
            ));
        }
        self.inner.write(batches)
    }

    fn flush(&self) -> Result<(), CollectorError> {
        self.inner.flush()
    }
}
