//! Reading inputs for the subcommands that take log files: files or stdin, EVTX recognised by
//! its signature, everything else framed by lines and decoded by the collector's parsers.
//! Events are handed to a sink in batches as they are decoded, so memory stays flat whatever
//! the file size.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use anyhow::bail;
use chrono_tz::Tz;
use citysoc_collector::format::evtx::{decode_evtx, EVTX_MAGIC};
use citysoc_collector::framing::{Framer, Framing};
use citysoc_collector::{Decoder, DecoderStats, Event, EventSource, InputFormat, ParseContext};

/// How inputs are read.
#[derive(Debug, Clone)]
pub struct InputOptions {
    /// Format of the records.
    pub format: InputFormat,
    /// Zone for device times without one.
    pub timezone: Tz,
    /// Agency the records belong to.
    pub agency: Option<String>,
    /// Largest record; longer ones are kept in flagged pieces.
    pub max_record: usize,
    /// How records are delimited: lines, or RFC 6587 octet counting (a capture of a TCP
    /// syslog stream).
    pub framing: Framing,
}

/// The `--framing` values.
pub const FRAMING_NAMES: &str = "newline, octet-counting";

/// Reads a `--framing` value.
pub fn parse_framing(name: &str) -> anyhow::Result<Framing> {
    match name {
        "newline" | "lines" => Ok(Framing::Newline),
        "octet-counting" | "octet" => Ok(Framing::OctetCounting),
        _ => bail!("unknown framing `{name}`: expected one of {FRAMING_NAMES}"),
    }
}

/// The summary's note on records cut short (an octet count announcing more bytes than the
/// input held): empty when there were none.
pub fn truncated_records(count: u64) -> String {
    match count {
        0 => String::new(),
        1 => ", 1 record cut short (flagged frame_truncated)".to_owned(),
        _ => format!(", {count} records cut short (flagged frame_truncated)"),
    }
}

/// What reading one input found.
#[derive(Debug, Clone, Copy, Default)]
pub struct InputSummary {
    /// Bytes read.
    pub bytes: u64,
    /// The decoder's counters (line-based inputs).
    pub decoder: DecoderStats,
}

/// The summary's note on skipped blank lines (they yield no event, so the count says why
/// lines read and events differ): empty when there were none.
pub fn blank_lines(count: u64) -> String {
    match count {
        0 => String::new(),
        1 => ", 1 blank line skipped".to_owned(),
        _ => format!(", {count} blank lines skipped"),
    }
}

/// Reads `path` (`-` for stdin) and hands the events to `sink` batch by batch.
pub fn read_input(
    path: &Path,
    options: &InputOptions,
    sink: &mut dyn FnMut(&mut Vec<Event>) -> anyhow::Result<()>,
) -> anyhow::Result<InputSummary> {
    let stdin = path.as_os_str() == "-";
    let mut context = ParseContext::new(if stdin { "stdin" } else { "file" });
    context.timezone = options.timezone;
    context.agency = options.agency.as_deref().map(Into::into);
    if !stdin {
        context.source = EventSource {
            transport: "file".into(),
            address: Some(path.display().to_string().into()),
            sequence: None,
        };
    }
    if stdin {
        read_stream(io::stdin().lock(), options, context, sink)
    } else {
        let file = File::open(path)?;
        read_stream(BufReader::new(file), options, context, sink)
    }
}

fn read_stream<R: BufRead>(
    mut reader: R,
    options: &InputOptions,
    context: ParseContext,
    sink: &mut dyn FnMut(&mut Vec<Event>) -> anyhow::Result<()>,
) -> anyhow::Result<InputSummary> {
    let mut summary = InputSummary::default();
    let mut events = Vec::new();
    let starts_like_evtx = reader.fill_buf()?.starts_with(EVTX_MAGIC);
    if options.format == InputFormat::Evtx || starts_like_evtx {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        summary.bytes = bytes.len() as u64;
        if !bytes.starts_with(EVTX_MAGIC) {
            bail!("not an EVTX file (it does not start with the `ElfFile` signature)");
        }
        decode_evtx(bytes, &context, &mut events)?;
        sink(&mut events)?;
        return Ok(summary);
    }

    let mut decoder = Decoder::new(options.format, context);
    let mut framer = Framer::new(options.framing, options.max_record);
    let mut buffer: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut at_eof = false;
    while !at_eof {
        let read = reader.read(&mut chunk)?;
        summary.bytes += read as u64;
        at_eof = read == 0;
        buffer.extend_from_slice(&chunk[..read]);
        let mut consumed = 0;
        while let Some(frame) = framer.next_frame(&buffer[consumed..], at_eof) {
            // As the collector's stream sources do: a record the input cut short is flagged.
            decoder.decode_frame(&frame, &mut events);
            consumed += frame.consumed;
        }
        buffer.drain(..consumed);
        if !events.is_empty() {
            sink(&mut events)?;
            events.clear();
        }
    }
    decoder.finish(&mut events);
    sink(&mut events)?;
    summary.decoder = decoder.stats();
    Ok(summary)
}
