//! The sources: sockets and files in, serialized events out to the pipeline. Each source
//! type is one module that only does I/O; framing and parsing are the pure modules
//! ([`crate::framing`], [`crate::parse`]), used the same way by every source:
//!
//! ```text
//! bytes ─► Framer ─► Decoder (per-source format and zone) ─► stamp agency + collector
//!       ─► serialize ─► PipelineSender ─► sink
//! ```

pub(crate) mod bulk_action;
pub(crate) mod bulk_reply;
pub(crate) mod connections;
pub(crate) mod file_checkpoint;
pub(crate) mod file_tail;
pub(crate) mod http;
pub(crate) mod http_body;
pub(crate) mod http_server;
pub(crate) mod refused_body;
pub(crate) mod repeated_error;
pub(crate) mod stream;
pub(crate) mod tcp;
pub(crate) mod udp;
pub(crate) mod udp_kernel_drops;

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::{SourceConfig, SourceKind};
use crate::event::{Event, EventSource, Format};
use crate::framing::{FrameKind, Framer, MAX_MAX_FRAME};
use crate::lines::Lines;
use crate::metrics::{DropReason, SourceErrorKind, SourceMetrics};
use crate::parse::{Decoder, ParseContext};
use crate::pipeline::PipelineSender;
use crate::record::{self, RecordEncoding};

pub use udp_kernel_drops::udp_socket_kernel_drops;

/// Spare room in a batch's buffer past the guessed size: sonic-rs reserves six bytes per byte
/// of a string before writing it (JSON for the archive, and a compact record's `fields` when
/// nested too deep for the binary form), and a reservation past the end would double the
/// buffer, copying the batch.
pub(crate) const SERIALIZER_HEADROOM: usize = 16 << 10;

/// A connection or followed file whose decoder holds an open audit event or JSON document
/// and from which nothing more has come for this long gives it out as it is
/// (`Decoder::close_quiet`). auditd writes an event's records together, so a second of silence
/// means the event is complete; an agent that writes a JSON document over several lines
/// writes it at once too.
pub(crate) const QUIET_CLOSE: std::time::Duration = std::time::Duration::from_secs(1);

/// [`QUIET_CLOSE`] for a connection whose last record has begun but not ended (bytes without
/// their newline): the rest is on its way (a retransmission, a relay writing a line in two
/// pieces) and most likely belongs to what is held, so it is given longer.
pub(crate) const QUIET_CLOSE_MID_RECORD: std::time::Duration = std::time::Duration::from_secs(10);

/// About the bytes `event` takes as a compact record: its raw text, about as much again for
/// the parsed values, and the fixed parts (id, times, agency, collector, address): a
/// 200-byte syslog line gives 420–610 (BENCHMARKS.md "Record encoding"). JSON (the archive)
/// takes more and grows the buffer.
fn encoded_size_guess(event: &Event) -> usize {
    let raw = event.raw.as_ref().map_or(0, String::len)
        + event.raw_base64.as_ref().map_or(0, String::len);
    record_size_guess(raw)
}

/// [`encoded_size_guess`] of a record of `raw_len` bytes not yet parsed (an HTTP request's
/// lines, before they are decoded).
pub(crate) fn record_size_guess(raw_len: usize) -> usize {
    raw_len.saturating_mul(2).saturating_add(RECORD_FIXED_GUESS)
}

/// The fixed parts of [`record_size_guess`]: id, times, agency, collector, address.
pub(crate) const RECORD_FIXED_GUESS: usize = 192;

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
    /// What the sink wants the events serialized to.
    pub encoding: RecordEncoding,
}

impl SourceRuntime {
    /// A parse context for records read now from `address`.
    pub fn context(&self, address: Option<String>) -> ParseContext {
        ParseContext {
            timezone: self.config.timezone,
            received_at: Utc::now(),
            agency: self.identity.agency.as_deref().map(Arc::from),
            collector: Some(Arc::from(self.identity.collector.as_str())),
            source: EventSource {
                transport: self.config.kind.transport().into(),
                address: address.map(Arc::from),
                sequence: None,
            },
        }
    }

    /// A decoder for one stream (a connection, a file, a request). An HTTP request's JSON
    /// documents spread over several lines are held to the source's `max_frame`, as its
    /// single lines are: agents' requests take request places, each of which may parse one
    /// document at a time, and `max_frame` is what the admin set a record's parse to cost.
    /// Stream and file sources keep `json::MAX_DOCUMENT_BYTES`: their `max_frame` (64 KiB)
    /// is below what some devices write as one pretty-printed document; what TCP and TLS
    /// connections hold open is bounded per source (`held_bytes`), a file holds one document
    /// at a time.
    pub fn decoder(&self, address: Option<String>) -> Decoder {
        let decoder = Decoder::new(self.config.format, self.context(address));
        match self.config.kind {
            SourceKind::Http(_) => decoder.with_max_document(self.config.max_frame),
            _ => decoder,
        }
    }

    /// Serializes events (emptying `events`) as the sink wants them, counting the unparsed
    /// ones.
    pub fn encode(&self, events: &mut Vec<Event>) -> Lines {
        // Every event of a read goes into one buffer (one allocation and no copy per event;
        // see `lines.rs`), sized so that it seldom grows: growing copies all of it.
        let guess = events
            .iter()
            .map(encoded_size_guess)
            .sum::<usize>()
            .saturating_add(SERIALIZER_HEADROOM);
        let mut lines = self.pipeline.batch_buffer(events.len(), guess);
        self.encode_into(events, &mut lines);
        events.clear();
        lines.release_spare_room();
        lines
    }

    /// [`SourceRuntime::encode`] appending to `lines` (a stream's events a few at a time, a
    /// request decoded in chunks), reading the events in place: `events` still holds them
    /// after (an event longer than a frame replaced by its pieces), for the caller to hand
    /// back to its decoder ([`Decoder::recycle`]) or drop.
    pub fn encode_into(&self, events: &mut Vec<Event>, lines: &mut Lines) {
        if events.iter().any(|event| event.raw_len() > MAX_MAX_FRAME) {
            // No event may be longer than a frame (`framing::MAX_MAX_FRAME`), or its record
            // could outgrow any batch: one that is (an HTTP line, an audit group) goes in
            // pieces.
            let mut pieces = 0;
            for event in std::mem::take(events) {
                if event.raw_len() > MAX_MAX_FRAME {
                    let cut = crate::parse::into_pieces(&event, MAX_MAX_FRAME);
                    pieces += cut.len() as u64;
                    events.extend(cut);
                } else {
                    events.push(event);
                }
            }
            self.metrics.add_fragments(pieces);
        }
        let mut unparsed = 0;
        let mut failed = 0;
        for event in events.iter_mut() {
            let pushed = lines.push_with(|buffer| match self.encoding {
                // Records go to the server in batches: an event no batch could carry is kept
                // raw instead of getting its batch refused (record/ceiling.rs).
                RecordEncoding::Compact => record::encode_within_ceiling(event, buffer),
                RecordEncoding::Json => record::encode_as(RecordEncoding::Json, event, buffer),
            });
            if event.format == Format::Unknown {
                unparsed += 1;
            }
            if let Err(error) = pushed {
                failed += 1;
                tracing::error!(source = %self.config.name, %error, "cannot serialize an event");
            }
        }
        // Read in place above, not moved out one by one: an `Event` is several hundred bytes,
        // and the moves were 1.5% of the collector's time in a profile under load.
        if unparsed > 0 {
            self.metrics.add_unparsed(unparsed);
        }
        if failed > 0 {
            self.metrics.add_drops(DropReason::EncodeFailed, failed);
        }
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

/// The next connection, or `None` once `shutdown` is cancelled. A failed accept is counted
/// and retried after a pause: it is typically the process being out of file descriptors, and
/// the pause gives open connections time to close.
pub(crate) async fn accept(
    listener: &tokio::net::TcpListener,
    source: &SourceRuntime,
    shutdown: &CancellationToken,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(error) => {
                source.metrics.add_error(SourceErrorKind::Accept);
                tracing::warn!(source = %source.config.name, %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// A stream source encodes its events this many at a time while it decodes a read
/// ([`decode_frames`]'s `on_events`), and hands them back to its decoder to parse the next
/// records into: a read's ~300 events parsed first and encoded after were out of the cache by
/// the time they were encoded, and each was allocated and freed.
pub(crate) const ENCODE_EVERY: usize = 16;

/// Cuts every frame out of `buffer` and decodes it, counting records and fragments. Whenever
/// `events` holds [`ENCODE_EVERY`] or more, `on_events` gets them with the decoder: it may
/// take them (encode them and [`Decoder::recycle`] them) or leave them for the caller.
pub(crate) fn decode_frames(
    framer: &mut Framer,
    decoder: &mut Decoder,
    buffer: &[u8],
    at_eof: bool,
    events: &mut Vec<Event>,
    metrics: &SourceMetrics,
    mut on_events: impl FnMut(&mut Decoder, &mut Vec<Event>),
) -> Framed {
    let mut consumed = 0;
    let mut records = 0;
    let mut fragments = 0;
    let mut inside_fragmented_record = false;
    // The decoder skips blank lines (they carry nothing); the source counts them, so that
    // `records_in` less `events_out` is explained.
    let blank_before = decoder.stats().blank_records;
    while let Some(frame) = framer.next_frame(&buffer[consumed..], at_eof) {
        if frame.kind == FrameKind::Complete {
            records += 1;
            inside_fragmented_record = false;
        } else {
            fragments += 1;
            if frame.kind == FrameKind::Final {
                records += 1;
            }
            inside_fragmented_record = frame.kind == FrameKind::Fragment;
        }
        decoder.decode_frame(&frame, events);
        if events.len() >= ENCODE_EVERY {
            on_events(decoder, events);
        }
        if frame.missing > 0 {
            metrics.add_drops(DropReason::FrameTruncated, 1);
        }
        consumed += frame.consumed;
    }
    metrics.add_records(records);
    if fragments > 0 {
        metrics.add_fragments(fragments);
    }
    let blank = decoder.stats().blank_records.saturating_sub(blank_before);
    if blank > 0 {
        metrics.add_blank(blank);
    }
    Framed {
        consumed,
        inside_fragmented_record,
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;
    use crate::framing::Framing;
    use crate::parse::InputFormat;

    /// The events of a read written a few at a time as they are decoded, and handed back to
    /// the decoder to parse later records into (what a stream source does), are the events
    /// decoding the whole read at once gives, in the same order.
    #[test]
    fn events_written_as_they_are_decoded_are_the_events_of_the_whole_read() {
        let wire: String = (0..50)
            .map(|index| match index % 4 {
                0 => format!("<86>May 14 09:46:40 web-{index} sshd[4196]: Failed password for root from 10.1.2.{index} port 22 ssh2\n"),
                1 => format!("<133>May 14 09:46:40 fw filterlog[5]: action=pass src=45.1.1.{index} dst=10.0.0.1 spt={index}\n"),
                2 => format!("<85>1 2024-05-14T09:46:40Z h{index} sudo 4 SUDO [meta sequenceId=\"{index}\"] carol : TTY=pts/1\n"),
                _ => format!("{{\"message\":\"agent {index}\"}}\n"),
            })
            .collect();
        // One context for both readings: its receive time is in every event.
        let context = ParseContext::new("tcp");
        let json = |event: &Event| serde_json::to_string(event).unwrap_or_default();
        let written = |encode_as_decoded: bool| {
            let mut framer = Framer::new(Framing::Newline, 1024);
            let mut decoder = Decoder::new(InputFormat::Auto, context.clone());
            let metrics = SourceMetrics::new("tcp-test", "tcp");
            let mut events = Vec::new();
            let mut written = Vec::new();
            decode_frames(
                &mut framer,
                &mut decoder,
                wire.as_bytes(),
                true,
                &mut events,
                &metrics,
                |decoder, events| {
                    if encode_as_decoded {
                        written.extend(events.iter().map(json));
                        decoder.recycle(events);
                    }
                },
            );
            decoder.finish(&mut events);
            written.extend(events.iter().map(json));
            written
        };
        let as_decoded = written(true);
        let at_once = written(false);
        assert_eq!(as_decoded.len(), 50);
        let first_difference = as_decoded.iter().zip(&at_once).position(|(a, b)| a != b);
        assert_eq!(
            first_difference,
            None,
            "{:?}",
            first_difference.map(|at| (&as_decoded[at], &at_once[at]))
        );
    }

    /// Decodes `wire` as one octet-counted TCP stream that the peer closed, and finishes it.
    fn decode_closed(format: InputFormat, wire: &str) -> (Vec<Event>, SourceMetrics, Decoder) {
        let mut framer = Framer::new(Framing::OctetCounting, 1024);
        let mut decoder = Decoder::new(format, ParseContext::new("tcp"));
        let metrics = SourceMetrics::new("tcp-test", "tcp");
        let mut events = Vec::new();
        decode_frames(
            &mut framer,
            &mut decoder,
            wire.as_bytes(),
            true,
            &mut events,
            &metrics,
            |_, _| {},
        );
        decoder.finish(&mut events);
        (events, metrics, decoder)
    }

    /// A counted record cut by the close flags its own event, not the auditd event its frame
    /// closed, and is counted once (here once in the source's drops, once in the decoder's
    /// stats).
    #[test]
    fn only_the_cut_records_event_is_flagged() {
        let audit = "type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 success=yes exit=0 comm=\"ls\" exe=\"/usr/bin/ls\"";
        let cut = "<34>Oct 11 22:14:15 host su: cut";
        let wire = format!("{} {audit}{} {cut}", audit.len(), cut.len() + 7);
        let (events, metrics, decoder) = decode_closed(InputFormat::Auto, &wire);
        let flagged: Vec<(String, bool)> = events
            .iter()
            .map(|event| {
                (
                    event.raw.clone().unwrap_or_default(),
                    event.fields.get("frame_truncated").is_some(),
                )
            })
            .collect();
        assert_eq!(flagged, [(audit.to_owned(), false), (cut.to_owned(), true)]);
        assert_eq!(
            events[1].fields.get("frame_missing_bytes"),
            Some(&serde_json::Value::from(7))
        );
        assert_eq!(metrics.drops(DropReason::FrameTruncated), 1);
        assert_eq!(decoder.stats().truncated_records, 1);
    }

    /// An auditd record cut by the close joins its group, which the grouper holds: the group's
    /// event is flagged when it comes out (at the end of the stream), the earlier group is not.
    #[test]
    fn a_cut_auditd_record_held_by_the_grouper_flags_its_groups_event() {
        let first = "type=SYSCALL msg=audit(1700000000.123:42): arch=c000003e syscall=59 success=yes exit=0 comm=\"ls\" exe=\"/usr/bin/ls\"";
        let second = "type=SYSCALL msg=audit(1700000001.000:43): arch=c000003e syscall=59 success=yes exit=0 comm=\"id\"";
        let cut_path = "type=PATH msg=audit(1700000001.000:43): item=0 name=\"/usr/bin/id\"";
        let wire = format!(
            "{} {first}{} {second}{} {cut_path}",
            first.len(),
            second.len(),
            cut_path.len() + 9
        );
        let (events, metrics, _) = decode_closed(InputFormat::Auditd, &wire);
        assert_eq!(events.len(), 2, "{events:#?}");
        assert_eq!(events[0].fields.get("frame_truncated"), None);
        assert_eq!(
            events[1].fields.get("frame_truncated"),
            Some(&serde_json::Value::Bool(true)),
            "{:#?}",
            events[1]
        );
        assert_eq!(
            events[1].fields.get("frame_missing_bytes"),
            Some(&serde_json::Value::from(9))
        );
        assert!(events[1]
            .raw
            .as_deref()
            .unwrap_or_default()
            .ends_with(cut_path));
        assert_eq!(metrics.drops(DropReason::FrameTruncated), 1);
    }

    /// A line of a JSON document cut by the close: the document's event (which starts in an
    /// earlier record) is flagged.
    #[test]
    fn a_cut_line_of_an_open_json_document_flags_the_documents_event() {
        let lines = ["{", "\"EventID\": 4625,", "\"User\": \"adm"];
        let wire = format!(
            "{} {}{} {}{} {}",
            lines[0].len(),
            lines[0],
            lines[1].len(),
            lines[1],
            lines[2].len() + 4,
            lines[2]
        );
        let (events, _, _) = decode_closed(InputFormat::Auto, &wire);
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(
            events[0].fields.get("frame_missing_bytes"),
            Some(&serde_json::Value::from(4)),
            "{:#?}",
            events[0]
        );
    }
}

#[cfg(test)]
mod encode_tests {
    use crate::parse::{parse_record, InputFormat, ParseContext};

    /// The buffer's and the wire's JSON comes from sonic-rs; everything that reads it uses
    /// serde_json. Both must agree on every kind of value an event holds.
    #[test]
    fn sonic_rs_writes_what_serde_json_writes() {
        let records: [&[u8]; 6] = [
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event with \"quotes\", a tab\t and \\ backslash",
            "<13>Nov 22 08:00:00 cam-01 nvr: người dùng admin đăng nhập từ Thủ Đức \u{1}\u{1f}".as_bytes(),
            b"CEF:0|Fortinet|FortiGate|7.0|13|traffic|3|src=10.0.0.1 dst=8.8.8.8 spt=51234 msg=a\\=b",
            br#"{"EventID": 1, "Image": "C:\\Windows\\cmd.exe", "ratio": 0.25, "big": 18446744073709551615, "neg": -3, "nested": {"a": [1, null, true]}}"#,
            b"\xff\xfe not utf-8 \x00 at all",
        ];
        let context = ParseContext::new("tcp");
        for (sequence, record) in (1..).zip(records) {
            let event = parse_record(record, InputFormat::Auto, &context, sequence);
            let ours = sonic_rs::to_vec(&event).unwrap_or_default();
            let reference = serde_json::to_vec(&event).unwrap_or_default();
            let ours: serde_json::Value = serde_json::from_slice(&ours).unwrap_or_default();
            let reference: serde_json::Value =
                serde_json::from_slice(&reference).unwrap_or_default();
            assert!(!reference.is_null());
            assert_eq!(ours, reference, "{}", String::from_utf8_lossy(record));
        }
    }
}
