//! The citysoc collector library: everything that happens to a log record before it leaves an
//! agency's network.
//!
//! Records enter as bytes (a syslog datagram, a TCP stream, a file, an EVTX file, an agent's
//! NDJSON post). [`framing`] cuts streams into records, [`parse`] turns each record into one
//! normalized [`Event`] with the pure nom parsers in [`format`], and the event leaves as JSON
//! towards detection and the index. Those modules do no I/O. On top of them, [`buffer`] keeps
//! serialized events on disk (a write-ahead log that survives kill -9 and power loss) and
//! [`forward`] sends them to the SOC server as signed batches ([`protocol`]), removing them from
//! the buffer only once the server has acknowledged them.
//!
//! Two promises hold everywhere in this crate: no input makes it panic, and no record is
//! dropped (a record nothing understands becomes an event with `format: unknown` and a
//! [`ParseError`] saying what was wrong and at which byte).

pub mod buffer;
mod error;
pub mod event;
pub mod format;
pub mod forward;
pub mod framing;
pub mod identity;
pub mod logsource;
pub mod parse;
pub mod protocol;
pub mod timestamp;

pub use buffer::{BufferConfig, BufferStats, DiskBuffer, Offset, SyncPolicy, WhenFull};
pub use error::CollectorError;
pub use event::{CoreFields, CoreValue, Event, EventSource, Fields, Format, LogSource, ParseError};
pub use forward::{Forwarder, ForwarderConfig, ForwarderStats, ForwarderStatsSnapshot};
pub use parse::{parse_record, Decoder, DecoderStats, InputFormat, ParseContext};
