//! `citysoc parse`: reads files or stdin and writes one JSON event per record to stdout.
//!
//! Exit code 0 when every input was read, whatever the records held (unknown lines are events
//! too); non-zero only when an input could not be read, with a message naming it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use citysoc_collector::format::evtx::{decode_evtx, EVTX_MAGIC};
use citysoc_collector::framing::{FrameKind, Framer, Framing, DEFAULT_MAX_FRAME};
use citysoc_collector::{Decoder, Event, EventSource, InputFormat, ParseContext};

/// Arguments of `citysoc parse`.
#[derive(Debug, clap::Args)]
pub struct ParseArgs {
    /// Format of the records: auto, rfc3164, rfc5424, cef, leef, kv, json, winevent, evtx,
    /// auditd, access.
    #[arg(long, default_value = "auto")]
    format: String,
    /// Zone for device times written without one.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    timezone: String,
    /// Agency the records belong to.
    #[arg(long)]
    agency: Option<String>,
    /// Indented JSON for people instead of one event per line.
    #[arg(long)]
    pretty: bool,
    /// Largest record in bytes; longer records are split into flagged fragments, never cut.
    #[arg(long, default_value_t = DEFAULT_MAX_FRAME)]
    max_record: usize,
    /// Do not print the summary line on standard error.
    #[arg(long, short)]
    quiet: bool,
    /// Files to read; `-` or nothing reads standard input.
    inputs: Vec<PathBuf>,
}

/// Runs `citysoc parse`.
pub fn run(args: ParseArgs) -> anyhow::Result<()> {
    let input_format: InputFormat = args.format.parse()?;
    let timezone = ParseContext::parse_timezone(&args.timezone)?;
    let inputs = if args.inputs.is_empty() { vec![PathBuf::from("-")] } else { args.inputs.clone() };
    let stdout = io::stdout();
    let mut output = EventWriter { out: BufWriter::new(stdout.lock()), pretty: args.pretty, per_format: BTreeMap::new() };

    // An unreadable input does not stop the others: every readable file is parsed, and each
    // failure is reported by name at the end with a non-zero exit code.
    let mut failures = Vec::new();
    for input in &inputs {
        let mut context = ParseContext::new(if input.as_os_str() == "-" { "stdin" } else { "file" });
        context.timezone = timezone;
        context.agency = args.agency.clone();
        if input.as_os_str() != "-" {
            context.source = EventSource { transport: "file".into(), address: Some(input.display().to_string()), sequence: None };
        }
        let result = if input.as_os_str() == "-" {
            read_stream(io::stdin().lock(), input_format, context, args.max_record, &mut output)
        } else {
            File::open(input)
                .map_err(anyhow::Error::from)
                .and_then(|file| read_stream(BufReader::new(file), input_format, context, args.max_record, &mut output))
        };
        if let Err(error) = result {
            failures.push(format!("cannot read {}: {error:#}", input.display()));
        }
    }
    output.out.flush().context("cannot write to standard output")?;
    if !args.quiet {
        let total: u64 = output.per_format.values().sum();
        let breakdown: Vec<String> = output.per_format.iter().map(|(format, count)| format!("{format} {count}")).collect();
        eprintln!("citysoc parse: {total} events from {} input(s): {}", inputs.len(), breakdown.join(", "));
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

struct EventWriter<W: Write> {
    out: W,
    pretty: bool,
    /// Events written per format, for the summary on stderr.
    per_format: BTreeMap<&'static str, u64>,
}

impl<W: Write> EventWriter<W> {
    fn write_all(&mut self, events: &mut Vec<Event>) -> io::Result<()> {
        for event in events.drain(..) {
            *self.per_format.entry(event.format.as_str()).or_default() += 1;
            if self.pretty {
                serde_json::to_writer_pretty(&mut self.out, &event)?;
            } else {
                serde_json::to_writer(&mut self.out, &event)?;
            }
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

fn read_stream<R: BufRead, W: Write>(
    mut reader: R,
    input_format: InputFormat,
    context: ParseContext,
    max_record: usize,
    output: &mut EventWriter<W>,
) -> anyhow::Result<()> {
    let mut events = Vec::new();
    let starts_like_evtx = reader.fill_buf()?.starts_with(EVTX_MAGIC);
    if input_format == InputFormat::Evtx || starts_like_evtx {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        if !bytes.starts_with(EVTX_MAGIC) {
            bail!("not an EVTX file (it does not start with the `ElfFile` signature)");
        }
        decode_evtx(bytes, &context, &mut events)?;
        output.write_all(&mut events)?;
        return Ok(());
    }

    let mut decoder = Decoder::new(input_format, context);
    let mut framer = Framer::new(Framing::Newline, max_record);
    let mut buffer: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut at_eof = false;
    while !at_eof {
        let mut chunk = [0u8; 64 * 1024];
        let read = reader.read(&mut chunk)?;
        at_eof = read == 0;
        buffer.extend_from_slice(&chunk[..read]);
        let mut consumed_total = 0;
        while let Some(frame) = framer.next_frame(&buffer[consumed_total..], at_eof) {
            match frame.kind {
                FrameKind::Complete => decoder.decode(frame.bytes, &mut events),
                FrameKind::Fragment | FrameKind::Final => decoder.decode_fragment(frame.bytes, frame.kind, &mut events),
            }
            consumed_total += frame.consumed;
        }
        buffer.drain(..consumed_total);
        output.write_all(&mut events)?;
    }
    decoder.finish(&mut events);
    output.write_all(&mut events)?;
    Ok(())
}
