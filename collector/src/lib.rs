//! The citysoc collector library: everything that happens to a log record before it leaves an
//! agency's network.
//!
//! Records enter as bytes (a syslog datagram, a TCP stream, a file, an EVTX file, an agent's
//! NDJSON post). [`framing`] cuts streams into records, [`parse`] turns each record into one
//! normalized [`Event`] with the pure nom parsers in [`format`], and the event leaves as JSON
//! towards detection and the index. Those modules do no I/O. On top of them, the running
//! collector: [`config`] (`collector.toml`, every problem listed), the sources (UDP, TCP, TLS,
//! file tail, HTTP intake) that read sockets and files and feed the [`pipeline`], which hands
//! serialized events to an [`EventSink`] (the local archive [`NdjsonFileSink`], the disk
//! [`buffer`], a write-ahead log that survives kill -9 and power loss), [`forward`] sending
//! the buffer to the SOC server as signed batches ([`protocol`]) and removing them only once
//! acknowledged, [`identity`] (enrollment, key file), [`metrics`] for `/metrics` and
//! heartbeats, and [`RunningCollector`] tying them together.
//!
//! Two promises hold everywhere in this crate: no input makes it panic, and no record is
//! dropped (a record nothing understands becomes an event with `format: unknown` and a
//! [`ParseError`] saying what was wrong and at which byte).

// Only the allocator crate may hold `unsafe` (allocator/: a global allocator is an unsafe
// trait over C); no other crate needs any.
#![forbid(unsafe_code)]

pub mod buffer;
pub mod config;
mod error;
pub mod event;
pub mod fields;
pub mod format;
pub mod forward;
pub mod framing;
pub mod identity;
pub mod lines;
pub mod logsource;
pub mod metrics;
pub mod parse;
pub mod pipeline;
pub mod protocol;
pub mod record;
mod service;
pub mod sink;
pub mod sources;
mod structured_data;
pub mod timestamp;
pub mod tls;

pub use buffer::{BufferConfig, BufferStats, DiskBuffer, Offset, SyncPolicy, WhenFull};
pub use config::CollectorConfig;
pub use error::CollectorError;
pub use event::{
    CoreFields, CoreValue, Event, EventSource, Fields, Format, LogSource, ParseError, ShortText,
};
pub use forward::{Forwarder, ForwarderConfig, ForwarderStats, ForwarderStatsSnapshot};
pub use lines::Lines;
pub use parse::{
    parse_record, parse_record_into, parser_failures, Decoder, DecoderStats, InputFormat,
    ParseContext,
};
pub use service::RunningCollector;
pub use sink::{BufferSink, EventSink, NdjsonFileSink, TeeSink};
pub use sources::CollectorIdentity;
