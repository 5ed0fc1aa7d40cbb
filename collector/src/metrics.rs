//! Counters of every source, of the sink, and (when the collector forwards) of the disk buffer
//! and the forwarder, read as [`SourceHealth`] for heartbeats, as JSON on `/health` and as
//! Prometheus text on `/metrics`. Every place a record can be dropped has its own counter
//! ([`DropReason`] before the sink; the buffer's `drop_oldest` and damaged-file counters and the
//! forwarder's rejected batches after it), so "how many were lost, and why" always has an
//! answer on the collector itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::buffer::{BufferStats, DiskBuffer};
use crate::forward::{ForwarderStats, ForwarderStatsSnapshot};
use crate::protocol::SourceHealth;
use crate::sink::EventSink;

/// Why records were lost before reaching the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A UDP datagram longer than `max_frame`: the first `max_frame` bytes are kept in an
    /// event flagged `datagram_truncated`, the rest is lost. Counted once that event is in the
    /// pipeline: a cut datagram then dropped whole counts under `PipelineFull` only, so each
    /// lost datagram counts once in [`SourceHealth::drops`].
    DatagramTruncated,
    /// UDP datagrams that arrived while the pipeline stayed full (the sink blocked).
    PipelineFull,
    /// The sink refused a write.
    SinkFailed,
    /// Datagrams the kernel dropped because the socket's receive buffer was full.
    KernelReceiveBuffer,
    /// An event that could not be serialized.
    EncodeFailed,
    /// An octet-counted record whose connection closed before all its announced bytes came:
    /// what arrived is kept in an event flagged `frame_truncated`, the rest never came.
    FrameTruncated,
}

impl DropReason {
    /// Every reason, in a fixed order.
    pub const ALL: [DropReason; 6] = [
        DropReason::DatagramTruncated,
        DropReason::PipelineFull,
        DropReason::SinkFailed,
        DropReason::KernelReceiveBuffer,
        DropReason::EncodeFailed,
        DropReason::FrameTruncated,
    ];

    /// The label value in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::DatagramTruncated => "datagram_truncated",
            DropReason::PipelineFull => "pipeline_full",
            DropReason::SinkFailed => "sink_failed",
            DropReason::KernelReceiveBuffer => "kernel_receive_buffer",
            DropReason::EncodeFailed => "encode_failed",
            DropReason::FrameTruncated => "frame_truncated",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Kinds of errors a source meets (none of them loses a record by itself; drops are counted
/// separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceErrorKind {
    /// `accept` failed (out of file descriptors, …).
    Accept,
    /// Reading a socket or file failed.
    Read,
    /// A TLS client failed the handshake (wrong CA, plain text sent to the TLS port, …).
    TlsHandshake,
    /// A connection refused because the source had `max_connections` already.
    TooManyConnections,
    /// A file could not be opened or examined.
    File,
    /// A tailed file was rotated away while the collector was stopped and could not be found
    /// again: lines written to it after the last checkpoint may be missing.
    RotatedWhileStopped,
    /// An HTTP request was refused (bad encoding, too large, too slow, bad method).
    HttpRequest,
    /// An HTTP request was answered 503 because the pipeline stayed full, or every one of the
    /// source's `max_requests` places stayed taken, or the bodies arriving filled their room.
    HttpBusy,
}

impl SourceErrorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [SourceErrorKind; 8] = [
        SourceErrorKind::Accept,
        SourceErrorKind::Read,
        SourceErrorKind::TlsHandshake,
        SourceErrorKind::TooManyConnections,
        SourceErrorKind::File,
        SourceErrorKind::RotatedWhileStopped,
        SourceErrorKind::HttpRequest,
        SourceErrorKind::HttpBusy,
    ];

    /// The label value in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceErrorKind::Accept => "accept",
            SourceErrorKind::Read => "read",
            SourceErrorKind::TlsHandshake => "tls_handshake",
            SourceErrorKind::TooManyConnections => "too_many_connections",
            SourceErrorKind::File => "file",
            SourceErrorKind::RotatedWhileStopped => "rotated_while_stopped",
            SourceErrorKind::HttpRequest => "http_request",
            SourceErrorKind::HttpBusy => "http_busy",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The counters of one source.
#[derive(Debug)]
pub struct SourceMetrics {
    name: String,
    source_type: &'static str,
    records_in: AtomicU64,
    bytes_in: AtomicU64,
    events_out: AtomicU64,
    unparsed_events: AtomicU64,
    fragments: AtomicU64,
    blank_records: AtomicU64,
    connections_active: AtomicU64,
    connections_total: AtomicU64,
    rotations: AtomicU64,
    truncations: AtomicU64,
    rereads: AtomicU64,
    held_bytes: AtomicU64,
    held_releases: AtomicU64,
    http_body_bytes: AtomicU64,
    drops: [AtomicU64; DropReason::ALL.len()],
    errors: [AtomicU64; SourceErrorKind::ALL.len()],
}

impl SourceMetrics {
    /// Zeroed counters for a source.
    pub fn new(name: &str, source_type: &'static str) -> Self {
        SourceMetrics {
            name: name.to_owned(),
            source_type,
            records_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            events_out: AtomicU64::new(0),
            unparsed_events: AtomicU64::new(0),
            fragments: AtomicU64::new(0),
            blank_records: AtomicU64::new(0),
            connections_active: AtomicU64::new(0),
            connections_total: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            rereads: AtomicU64::new(0),
            held_bytes: AtomicU64::new(0),
            held_releases: AtomicU64::new(0),
            http_body_bytes: AtomicU64::new(0),
            drops: Default::default(),
            errors: Default::default(),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Records (datagrams, frames, lines, posted documents) read, and their bytes.
    pub fn add_records_in(&self, records: u64, bytes: u64) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes read (for streams, counted as they arrive).
    pub fn add_bytes_in(&self, bytes: u64) {
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records read (for streams, counted when framed).
    pub fn add_records(&self, records: u64) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
    }

    /// Events the sink accepted.
    pub fn add_events_out(&self, events: u64) {
        self.events_out.fetch_add(events, Ordering::Relaxed);
    }

    /// A connection's decoder now holds `now` bytes of open documents instead of `before`
    /// (see [`SourceMetrics::held_bytes`]).
    pub fn change_held(&self, before: usize, now: usize) {
        let (before, now) = (before as u64, now as u64);
        // Saturating: the gauge is a sum of the connections' shares and must not wrap.
        let _ = self
            .held_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(before).saturating_add(now))
            });
    }

    /// Bytes the source's connections hold in open multi-line documents (JSON documents,
    /// audit events) not yet out as events.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Ordering::Relaxed)
    }

    /// An HTTP request's body has `bytes` more arrived and held (see
    /// [`SourceMetrics::http_body_bytes`]).
    pub fn add_http_body_bytes(&self, bytes: usize) {
        self.http_body_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// An HTTP request let go of `bytes` of body it held.
    pub fn remove_http_body_bytes(&self, bytes: usize) {
        // Saturating: a sum of the requests' shares, which must not wrap.
        let _ = self
            .http_body_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                Some(held.saturating_sub(bytes as u64))
            });
    }

    /// Bytes of HTTP request bodies that have arrived and are held, before they are
    /// decompressed (bounded by the room for bodies arriving at once).
    pub fn http_body_bytes(&self) -> u64 {
        self.http_body_bytes.load(Ordering::Relaxed)
    }

    /// A connection gave out what it held early because the source held too much.
    pub fn add_held_release(&self) {
        self.held_releases.fetch_add(1, Ordering::Relaxed);
    }

    /// Times connections gave out what they held early.
    pub fn held_releases(&self) -> u64 {
        self.held_releases.load(Ordering::Relaxed)
    }

    /// Events no parser understood (kept as `format: unknown`).
    pub fn add_unparsed(&self, events: u64) {
        self.unparsed_events.fetch_add(events, Ordering::Relaxed);
    }

    /// Pieces of records longer than `max_frame` (each kept as its own event).
    pub fn add_fragments(&self, pieces: u64) {
        self.fragments.fetch_add(pieces, Ordering::Relaxed);
    }

    /// Pieces of records longer than a frame, kept raw.
    pub fn fragments(&self) -> u64 {
        self.fragments.load(Ordering::Relaxed)
    }

    /// Empty datagrams and blank lines: nothing to keep, counted so they are not invisible.
    pub fn add_blank(&self, records: u64) {
        self.blank_records.fetch_add(records, Ordering::Relaxed);
    }

    /// Records lost, and why.
    pub fn add_drops(&self, reason: DropReason, records: u64) {
        self.drops[reason.index()].fetch_add(records, Ordering::Relaxed);
    }

    /// Sets the kernel's drop count for the source's socket (read from the kernel, which
    /// keeps the running total itself).
    pub fn set_kernel_drops(&self, total: u64) {
        self.drops[DropReason::KernelReceiveBuffer.index()].store(total, Ordering::Relaxed);
    }

    /// An error.
    pub fn add_error(&self, kind: SourceErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened.
    pub fn connection_opened(&self) {
        self.connections_active.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection closed.
    pub fn connection_closed(&self) {
        // Saturating: a close is never counted without its open, but a gauge must not wrap.
        let _ =
            self.connections_active
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |active| {
                    Some(active.saturating_sub(1))
                });
    }

    /// Connections open now.
    pub fn connections_active(&self) -> u64 {
        self.connections_active.load(Ordering::Relaxed)
    }

    /// A tailed file was rotated (renamed away and replaced).
    pub fn add_rotation(&self) {
        self.rotations.fetch_add(1, Ordering::Relaxed);
    }

    /// A tailed file was truncated in place (copytruncate).
    pub fn add_truncation(&self) {
        self.truncations.fetch_add(1, Ordering::Relaxed);
    }

    /// A tailed file was read again from its checkpoint because the sink lost lines of it.
    pub fn add_reread(&self) {
        self.rereads.fetch_add(1, Ordering::Relaxed);
    }

    /// Times a tailed file was read again from its checkpoint so far.
    pub fn rereads(&self) -> u64 {
        self.rereads.load(Ordering::Relaxed)
    }

    /// Bytes read so far (for HTTP, bodies as sent, once a request has a place).
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Records read so far.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Events the sink accepted so far.
    pub fn events_out(&self) -> u64 {
        self.events_out.load(Ordering::Relaxed)
    }

    /// Records dropped for `reason` so far.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// Errors of `kind` so far.
    pub fn errors(&self, kind: SourceErrorKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }

    /// Unparsed events so far.
    pub fn unparsed(&self) -> u64 {
        self.unparsed_events.load(Ordering::Relaxed)
    }

    /// Empty datagrams and blank lines seen so far.
    pub fn blank_records(&self) -> u64 {
        self.blank_records.load(Ordering::Relaxed)
    }

    /// Rotations seen so far.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// Truncations seen so far.
    pub fn truncations(&self) -> u64 {
        self.truncations.load(Ordering::Relaxed)
    }

    /// The heartbeat's view.
    pub fn health(&self) -> SourceHealth {
        SourceHealth {
            events_in: self.records_in(),
            events_out: self.events_out(),
            drops: DropReason::ALL
                .iter()
                .map(|reason| self.drops(*reason))
                .sum(),
            errors: SourceErrorKind::ALL
                .iter()
                .map(|kind| self.errors(*kind))
                .sum(),
        }
    }
}

/// Counters of the sink side of the pipeline.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Successful writes (batches).
    pub writes: AtomicU64,
    /// Events written.
    pub events: AtomicU64,
    /// Failed writes.
    pub write_errors: AtomicU64,
    /// Flushes.
    pub flushes: AtomicU64,
    /// Failed flushes.
    pub flush_errors: AtomicU64,
}

/// What a forwarding collector delivers through: its disk buffer and its forwarder.
struct Delivery {
    buffer: Arc<DiskBuffer>,
    forwarder: Arc<ForwarderStats>,
}

/// The buffer's and the forwarder's counters at one moment, as `/health` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryHealth {
    /// The disk buffer.
    pub buffer: BufferStats,
    /// The forwarder.
    pub forwarder: ForwarderStatsSnapshot,
}

/// All counters of a running collector.
pub struct CollectorMetrics {
    sources: Vec<Arc<SourceMetrics>>,
    /// The sink's counters.
    pub sink: SinkMetrics,
    started: Instant,
    config_hash: String,
    delivery: OnceLock<Delivery>,
    /// The sink, for the counters of the copies it makes (the local archive).
    sink_copies: OnceLock<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for CollectorMetrics {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CollectorMetrics")
            .field("sources", &self.sources)
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

impl CollectorMetrics {
    /// Counters for these sources.
    pub fn new(sources: Vec<Arc<SourceMetrics>>, config_hash: &str) -> Self {
        CollectorMetrics {
            sources,
            sink: SinkMetrics::default(),
            started: Instant::now(),
            config_hash: config_hash.to_owned(),
            delivery: OnceLock::new(),
            sink_copies: OnceLock::new(),
        }
    }

    /// Every source's counters, in configuration order.
    pub fn sources(&self) -> &[Arc<SourceMetrics>] {
        &self.sources
    }

    /// One source's counters.
    pub fn source(&self, name: &str) -> Option<&Arc<SourceMetrics>> {
        self.sources.iter().find(|source| source.name == name)
    }

    /// Per source name, for the heartbeat.
    pub fn health(&self) -> BTreeMap<String, SourceHealth> {
        self.sources
            .iter()
            .map(|source| (source.name.clone(), source.health()))
            .collect()
    }

    /// Seconds since start.
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Adds the disk buffer's and the forwarder's counters to `/metrics` and `/health`. A
    /// collector that only writes an archive has neither. Only the first call counts: a
    /// collector has one buffer and one forwarder for its whole life.
    pub fn watch_delivery(&self, buffer: Arc<DiskBuffer>, forwarder: Arc<ForwarderStats>) {
        let _ = self.delivery.set(Delivery { buffer, forwarder });
    }

    /// Adds the errors of the sink's copies (the local archive beside the buffer) to
    /// `/metrics`, when it makes copies. Only the first call counts.
    pub fn watch_sink(&self, sink: Arc<dyn EventSink>) {
        let _ = self.sink_copies.set(sink);
    }

    /// The buffer's and the forwarder's counters now, when the collector forwards.
    pub fn delivery_health(&self) -> Option<DeliveryHealth> {
        self.delivery.get().map(|delivery| DeliveryHealth {
            buffer: delivery.buffer.stats(),
            forwarder: delivery.forwarder.snapshot(),
        })
    }

    /// The Prometheus text exposition of every counter.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        header(
            &mut out,
            "citysoc_collector_info",
            "gauge",
            "Collector version and configuration hash.",
        );
        let _ = writeln!(
            out,
            "citysoc_collector_info{{version=\"{}\",config_hash=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            self.config_hash
        );
        header(
            &mut out,
            "citysoc_collector_uptime_seconds",
            "gauge",
            "Seconds since the collector started.",
        );
        let _ = writeln!(
            out,
            "citysoc_collector_uptime_seconds {}",
            self.uptime_seconds()
        );

        type Reader = fn(&SourceMetrics) -> u64;
        let per_source: [(&str, &str, &str, Reader); 14] = [
            (
                "citysoc_collector_records_in_total",
                "counter",
                "Records read (datagrams, frames, lines, posted documents).",
                |s| s.records_in(),
            ),
            (
                "citysoc_collector_bytes_in_total",
                "counter",
                "Bytes read.",
                |s| s.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "citysoc_collector_events_out_total",
                "counter",
                "Events accepted by the sink.",
                |s| s.events_out(),
            ),
            (
                "citysoc_collector_unparsed_events_total",
                "counter",
                "Events no parser understood (kept with format unknown).",
                |s| s.unparsed(),
            ),
            (
                "citysoc_collector_fragments_total",
                "counter",
                "Pieces of records longer than max_frame (each kept as an event).",
                |s| s.fragments.load(Ordering::Relaxed),
            ),
            (
                "citysoc_collector_blank_records_total",
                "counter",
                "Empty datagrams and blank lines (nothing to keep).",
                |s| s.blank_records.load(Ordering::Relaxed),
            ),
            (
                "citysoc_collector_connections_active",
                "gauge",
                "Connections open now.",
                |s| s.connections_active(),
            ),
            (
                "citysoc_collector_connections_total",
                "counter",
                "Connections accepted.",
                |s| s.connections_total.load(Ordering::Relaxed),
            ),
            (
                "citysoc_collector_file_rotations_total",
                "counter",
                "Rotations of tailed files followed.",
                |s| s.rotations(),
            ),
            (
                "citysoc_collector_file_truncations_total",
                "counter",
                "Truncations of tailed files followed.",
                |s| s.truncations(),
            ),
            (
                "citysoc_collector_file_rereads_total",
                "counter",
                "Times a tailed file was read again from its checkpoint because the sink lost lines of it (those records count again in records_in).",
                |s| s.rereads(),
            ),
            (
                "citysoc_collector_held_bytes",
                "gauge",
                "Bytes a TCP or TLS source's connections hold in open multi-line documents (JSON, audit events) not yet out as events (0 for other sources).",
                |s| s.held_bytes(),
            ),
            (
                "citysoc_collector_http_body_bytes",
                "gauge",
                "Bytes of an HTTP source's request bodies that have arrived and are held before decompression, bounded by 4 x max_requests x max_body (0 for other sources).",
                |s| s.http_body_bytes(),
            ),
            (
                "citysoc_collector_held_releases_total",
                "counter",
                "Times a connection gave out its open documents early (kept, flagged held_released_early) because the source held more than its bound.",
                |s| s.held_releases(),
            ),
        ];
        for (name, kind, help, read) in per_source {
            header(&mut out, name, kind, help);
            for source in &self.sources {
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{}\",type=\"{}\"}} {}",
                    source.name,
                    source.source_type,
                    read(source)
                );
            }
        }
        header(
            &mut out,
            "citysoc_collector_dropped_total",
            "counter",
            "Records lost before the sink, by reason.",
        );
        for source in &self.sources {
            for reason in DropReason::ALL {
                let _ = writeln!(
                    out,
                    "citysoc_collector_dropped_total{{source=\"{}\",type=\"{}\",reason=\"{}\"}} {}",
                    source.name,
                    source.source_type,
                    reason.as_str(),
                    source.drops(reason)
                );
            }
        }
        header(
            &mut out,
            "citysoc_collector_source_errors_total",
            "counter",
            "Source errors, by kind.",
        );
        for source in &self.sources {
            for kind in SourceErrorKind::ALL {
                let _ = writeln!(
                    out,
                    "citysoc_collector_source_errors_total{{source=\"{}\",type=\"{}\",kind=\"{}\"}} {}",
                    source.name,
                    source.source_type,
                    kind.as_str(),
                    source.errors(kind)
                );
            }
        }
        let sink: [(&str, &str, &AtomicU64); 5] = [
            (
                "citysoc_collector_sink_writes_total",
                "Batches written to the sink.",
                &self.sink.writes,
            ),
            (
                "citysoc_collector_sink_events_total",
                "Events written to the sink.",
                &self.sink.events,
            ),
            (
                "citysoc_collector_sink_write_errors_total",
                "Failed sink writes (their events are counted as dropped, reason sink_failed).",
                &self.sink.write_errors,
            ),
            (
                "citysoc_collector_sink_flushes_total",
                "Sink flushes.",
                &self.sink.flushes,
            ),
            (
                "citysoc_collector_sink_flush_errors_total",
                "Failed sink flushes.",
                &self.sink.flush_errors,
            ),
        ];
        for (name, help, value) in sink {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "citysoc_collector_parser_failures_total";
        header(
            &mut out,
            name,
            "counter",
            "Records on which a parser panicked (a bug): each was kept raw as a format unknown event saying so, and its source went on.",
        );
        let _ = writeln!(out, "{name} {}", crate::parse::parser_failures());
        if let Some(errors) = self.sink_copies.get().and_then(|sink| sink.copy_errors()) {
            let name = "citysoc_collector_archive_errors_total";
            header(
                &mut out,
                name,
                "counter",
                "Failed writes and flushes of the local archive beside the buffer (the buffer still has the events).",
            );
            let _ = writeln!(out, "{name} {errors}");
        }
        if let Some(records) = self
            .sink_copies
            .get()
            .and_then(|sink| sink.copy_unconvertible())
        {
            let name = "citysoc_collector_archive_unconvertible_records_total";
            header(
                &mut out,
                name,
                "counter",
                "Buffer records the local archive could not convert to JSON: each is archived as a format unknown event with its bytes, flagged archive_conversion_failed (the buffer still has the record).",
            );
            let _ = writeln!(out, "{name} {records}");
        }
        if let Some(delivery) = self.delivery_health() {
            render_delivery(&mut out, &delivery);
        }
        out
    }
}

/// The buffer's and the forwarder's lines of `/metrics`.
fn render_delivery(out: &mut String, delivery: &DeliveryHealth) {
    let DeliveryHealth { buffer, forwarder } = delivery;
    let lines: [(&str, &str, &str, u64); 20] = [
        (
            "citysoc_collector_buffer_bytes",
            "gauge",
            "Bytes of unacknowledged events in the disk buffer.",
            buffer.bytes,
        ),
        (
            "citysoc_collector_buffer_events",
            "gauge",
            "Unacknowledged events in the disk buffer.",
            buffer.records,
        ),
        (
            "citysoc_collector_buffer_max_bytes",
            "gauge",
            "The disk buffer's size limit.",
            buffer.max_bytes,
        ),
        (
            "citysoc_collector_buffer_segments",
            "gauge",
            "Segment files of the disk buffer.",
            buffer.segments,
        ),
        (
            "citysoc_collector_buffer_appended_total",
            "counter",
            "Events written to the disk buffer since start.",
            buffer.appended,
        ),
        (
            "citysoc_collector_buffer_acknowledged_total",
            "counter",
            "Events removed from the disk buffer after the server acknowledged them, since start.",
            buffer.acked,
        ),
        (
            "citysoc_collector_buffer_dropped_total",
            "counter",
            "Events dropped by drop_oldest because the buffer was full (kept across restarts).",
            buffer.dropped,
        ),
        (
            "citysoc_collector_buffer_corrupt_events_total",
            "counter",
            "Unacknowledged events lost to damaged buffer files, since start.",
            buffer.corrupt_records_skipped,
        ),
        (
            "citysoc_collector_buffer_torn_bytes_total",
            "counter",
            "Bytes of appends cut short by a crash and removed at start (never acknowledged to a source).",
            buffer.torn_bytes_truncated,
        ),
        (
            "citysoc_collector_forward_requests_total",
            "counter",
            "Batch requests sent to the server (every attempt).",
            forwarder.batches_sent,
        ),
        (
            "citysoc_collector_forward_batches_acknowledged_total",
            "counter",
            "Batches the server acknowledged as durable.",
            forwarder.batches_acked,
        ),
        (
            "citysoc_collector_forward_events_acknowledged_total",
            "counter",
            "Events in acknowledged batches.",
            forwarder.events_acked,
        ),
        (
            "citysoc_collector_forward_duplicate_events_total",
            "counter",
            "Events the server already had (re-sent after a lost acknowledgement).",
            forwarder.duplicates,
        ),
        (
            "citysoc_collector_forward_retries_total",
            "counter",
            "Failed attempts that were retried with backoff.",
            forwarder.retries,
        ),
        (
            "citysoc_collector_forward_rejected_batches_total",
            "counter",
            "Batches the server refused, kept in the buffer's rejected/ folder.",
            forwarder.rejected_batches,
        ),
        (
            "citysoc_collector_forward_split_total",
            "counter",
            "Refused batches cut in half and sent again, so that only unreadable records are rejected.",
            forwarder.split,
        ),
        (
            "citysoc_collector_forward_rejected_events_total",
            "counter",
            "Events of refused batches, saved in rejected/.",
            forwarder.rejected_events,
        ),
        (
            "citysoc_collector_forward_dropped_before_delivery_total",
            "counter",
            "Events taken out of a waiting batch because drop_oldest dropped them (also in buffer_dropped).",
            forwarder.dropped_before_delivery,
        ),
        (
            "citysoc_collector_forward_renumbered_batches_total",
            "counter",
            "Batches renumbered after the server had acknowledged newer numbers than the buffer knew.",
            forwarder.renumbered,
        ),
        (
            "citysoc_collector_forward_last_ack_timestamp_seconds",
            "gauge",
            "When the server last acknowledged a batch, Unix seconds (0: never).",
            u64::try_from(forwarder.last_ack_time_ms / 1000).unwrap_or(0),
        ),
    ];
    for (name, kind, help, value) in lines {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A sink whose writes and flushes all fail.
    struct BrokenDisk;

    impl EventSink for BrokenDisk {
        fn write(&self, _: &[crate::Lines]) -> Result<(), crate::CollectorError> {
            Err(crate::CollectorError::Protocol("disk gone".into()))
        }

        fn flush(&self) -> Result<(), crate::CollectorError> {
            Err(crate::CollectorError::Protocol("disk gone".into()))
        }
    }

    #[test]
    fn archive_errors_reach_metrics_and_the_primary_still_gets_the_events() {
        let directory = tempfile::tempdir().unwrap();
        let primary = Arc::new(
            crate::NdjsonFileSink::open(&directory.path().join("primary.ndjson"), 1 << 20).unwrap(),
        );
        let tee: Arc<dyn EventSink> =
            Arc::new(crate::TeeSink::new(primary, vec![Arc::new(BrokenDisk)]));
        let metrics = CollectorMetrics::new(Vec::new(), "abc");
        metrics.watch_sink(tee.clone());
        let batch: crate::Lines = [&b"{\"id\":\"1\"}"[..]].into_iter().collect();
        tee.write(&[batch]).unwrap();
        tee.flush().unwrap();
        let text = metrics.render_prometheus();
        assert!(text.contains("\ncitysoc_collector_archive_errors_total 2\n"));
        assert!(text.contains("\ncitysoc_collector_archive_unconvertible_records_total 0\n"));
        // A sink without copies adds no line.
        let plain = CollectorMetrics::new(Vec::new(), "abc");
        plain.watch_sink(Arc::new(BrokenDisk));
        assert!(!plain.render_prometheus().contains("archive_errors"));
    }

    #[test]
    fn health_sums_drops_and_errors_and_text_names_every_reason() {
        let source = Arc::new(SourceMetrics::new("fw", "udp"));
        source.add_records_in(10, 1000);
        source.add_events_out(9);
        source.add_drops(DropReason::DatagramTruncated, 1);
        source.set_kernel_drops(5);
        source.add_error(SourceErrorKind::Read);
        let metrics = CollectorMetrics::new(vec![source], "abc");
        let health = metrics.health();
        assert_eq!(
            health.get("fw"),
            Some(&SourceHealth {
                events_in: 10,
                events_out: 9,
                drops: 6,
                errors: 1
            })
        );
        let text = metrics.render_prometheus();
        assert!(text.contains(
            "citysoc_collector_dropped_total{source=\"fw\",type=\"udp\",reason=\"kernel_receive_buffer\"} 5"
        ));
        assert!(text.contains("citysoc_collector_records_in_total{source=\"fw\",type=\"udp\"} 10"));
        assert!(text.contains("config_hash=\"abc\""));
        // An archive-only collector has no buffer or forwarder lines.
        assert!(!text.contains("citysoc_collector_buffer_"));
        assert!(metrics.delivery_health().is_none());
    }

    #[test]
    fn a_forwarding_collector_shows_its_buffer_and_forwarder_on_metrics_and_health() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(
            DiskBuffer::open(
                dir.path(),
                crate::buffer::BufferConfig {
                    max_bytes: 200,
                    segment_bytes: 100,
                    when_full: crate::buffer::WhenFull::DropOldest,
                    sync: crate::buffer::SyncPolicy::EveryAppend,
                },
            )
            .unwrap(),
        );
        // Ten 40-byte records into 200 bytes: drop_oldest must drop some, and /metrics must
        // say how many.
        for _ in 0..10 {
            buffer
                .append(&[vec![b'x'; 40]], std::time::Duration::ZERO)
                .unwrap();
        }
        let stats = buffer.stats();
        assert!(stats.dropped > 0);
        let metrics = CollectorMetrics::new(Vec::new(), "abc");
        metrics.watch_delivery(buffer, Arc::new(ForwarderStats::default()));
        let text = metrics.render_prometheus();
        assert!(text.contains(&format!(
            "\ncitysoc_collector_buffer_dropped_total {}\n",
            stats.dropped
        )));
        assert!(text.contains(&format!(
            "\ncitysoc_collector_buffer_events {}\n",
            stats.records
        )));
        assert!(text.contains("\ncitysoc_collector_buffer_appended_total 10\n"));
        assert!(text.contains("\ncitysoc_collector_forward_rejected_batches_total 0\n"));
        assert!(text.contains("# TYPE citysoc_collector_forward_renumbered_batches_total counter"));
        let health = metrics.delivery_health().unwrap();
        assert_eq!(health.buffer.dropped, stats.dropped);
        assert_eq!(health.forwarder.batches_acked, 0);
    }
}
