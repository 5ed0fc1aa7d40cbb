//! The sources: sockets and files in, serialized events out to the pipeline. Each source
//! type is one module that only does I/O; framing and parsing are the pure modules
//! ([`crate::framing`], [`crate::parse`]), used the same way by every source:
//!
//! ```text
//! bytes ─► Framer ─► Decoder (per-source format and zone) ─► stamp agency + collector
//!       ─► serialize ─► PipelineSender ─► sink
//! ```

pub(crate) mod file_checkpoint;
pub(crate) mod file_tail;
pub(crate) mod http;
pub(crate) mod http_body;
pub(crate) mod stream;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod udp_kernel_drops;

use std::sync::Arc;

use chrono::Utc;

use crate::config::SourceConfig;
use crate::event::{Event, EventSource, Format};
use crate::framing::{FrameKind, Framer};
use crate::metrics::{DropReason, SourceMetrics};
use crate::parse::{Decoder, ParseContext};
use crate::pipeline::PipelineSender;

pub use udp_kernel_drops::udp_socket_kernel_drops;

/// Who reads the records: stamped on every event, never taken from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorIdentity {
    /// The collector's id (from enrollment) or name (from the configuration).
    pub collector: String,
    /// The agency the events belong to.
    pub agency: Option<String>,
}

/// Everything a running source needs.
#[derive(Debug)]
pub(crate) struct SourceRuntime {
    /// Position in the metrics' source list (the pipeline counts per source by it).
    pub index: usize,
    pub config: SourceConfig,
    pub metrics: Arc<SourceMetrics>,
    pub pipeline: PipelineSender,
    pub identity: CollectorIdentity,
}

impl SourceRuntime {
    /// A parse context for records read now from `address`.
    pub fn context(&self, address: Option<String>) -> ParseContext {
        ParseContext {
            timezone: self.config.timezone,
            received_at: Utc::now(),
            agency: self.identity.agency.clone(),
            collector: Some(self.identity.collector.clone()),
            source: EventSource {
                transport: self.config.kind.transport().into(),
                address,
                sequence: None,
            },
        }
    }

    /// A decoder for one stream (a connection, a file, a request).
    pub fn decoder(&self, address: Option<String>) -> Decoder {
        Decoder::new(self.config.format, self.context(address))
    }

    /// Serializes events (draining `events`), counting the unparsed ones.
    pub fn encode(&self, events: &mut Vec<Event>) -> Vec<Vec<u8>> {
        let mut lines = Vec::with_capacity(events.len());
        let mut unparsed = 0;
        let mut failed = 0;
        for event in events.drain(..) {
            if event.format == Format::Unknown {
                unparsed += 1;
            }
            match serde_json::to_vec(&event) {
                Ok(line) => lines.push(line),
                Err(error) => {
                    failed += 1;
                    tracing::error!(source = %self.config.name, %error, "cannot serialize an event");
                }
            }
        }
        if unparsed > 0 {
            self.metrics.add_unparsed(unparsed);
        }
        if failed > 0 {
            self.metrics.add_drops(DropReason::EncodeFailed, failed);
        }
        lines
    }
}

/// The first record number of a source whose records are not numbered within a connection
/// or a file (UDP datagrams, HTTP posts): the start time in microseconds since 1970. Event
/// ids hash the peer address, the record number and the bytes, so a number that restarted at
/// 1 after a restart would give a record the id of an identical one from the previous run
/// (a device that sends the same text from the same port), and the server would drop it as a
/// duplicate. Runs of a source cannot overlap: that would take more than one record per
/// microsecond for the whole of the previous run. (The number fits a JSON double exactly.)
pub(crate) fn run_sequence_base() -> u64 {
    let micros = chrono::Utc::now().timestamp_micros();
    u64::try_from(micros).unwrap_or(0).max(1)
}

/// What [`decode_frames`] did with a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framed {
    /// Bytes of the buffer used; the caller drops them from the front.
    pub consumed: usize,
    /// True when the last frame was a piece of a record whose rest has not been read yet.
    pub inside_fragmented_record: bool,
}

/// Cuts every frame out of `buffer` and decodes it, counting records and fragments.
pub(crate) fn decode_frames(
    framer: &mut Framer,
    decoder: &mut Decoder,
    buffer: &[u8],
    at_eof: bool,
    events: &mut Vec<Event>,
    metrics: &SourceMetrics,
) -> Framed {
    let mut consumed = 0;
    let mut records = 0;
    let mut fragments = 0;
    let mut inside_fragmented_record = false;
    while let Some(frame) = framer.next_frame(&buffer[consumed..], at_eof) {
        match frame.kind {
            FrameKind::Complete => {
                records += 1;
                inside_fragmented_record = false;
                decoder.decode(frame.bytes, events);
            }
            kind @ (FrameKind::Fragment | FrameKind::Final) => {
                fragments += 1;
                if kind == FrameKind::Final {
                    records += 1;
                }
                inside_fragmented_record = kind == FrameKind::Fragment;
                decoder.decode_fragment(frame.bytes, kind, events);
            }
        }
        consumed += frame.consumed;
    }
    metrics.add_records(records);
    if fragments > 0 {
        metrics.add_fragments(fragments);
    }
    Framed {
        consumed,
        inside_fragmented_record,
    }
}
