//! `citysoc parse`: reads files or stdin and writes one JSON event per record to stdout.
//!
//! Exit code 0 when every input was read, whatever the records held (unknown lines are events
//! too); non-zero only when an input could not be read, with a message naming it.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use citysoc_collector::framing::DEFAULT_MAX_FRAME;
use citysoc_collector::{Event, InputFormat, ParseContext};

use crate::input::{parse_framing, read_input, truncated_records, InputOptions};

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
    /// How records are delimited: newline, or octet-counting (RFC 6587, as a TCP syslog
    /// stream carries them).
    #[arg(long, default_value = "newline")]
    framing: String,
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
    let framing = parse_framing(&args.framing)?;
    let inputs = if args.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.inputs.clone()
    };
    let stdout = io::stdout();
    let mut output = EventWriter {
        out: BufWriter::new(stdout.lock()),
        pretty: args.pretty,
        per_format: BTreeMap::new(),
    };

    let options = InputOptions {
        format: input_format,
        timezone,
        agency: args.agency.clone(),
        max_record: args.max_record,
        framing,
    };
    // An unreadable input does not stop the others: every readable file is parsed, and each
    // failure is reported by name at the end with a non-zero exit code.
    let mut failures = Vec::new();
    let mut truncated = 0;
    for input in &inputs {
        let result = read_input(input, &options, &mut |events| {
            output.write_all(events).map_err(anyhow::Error::from)
        });
        match result {
            Ok(summary) => truncated += summary.decoder.truncated_records,
            Err(error) => failures.push(format!("cannot read {}: {error:#}", input.display())),
        }
    }
    output
        .out
        .flush()
        .context("cannot write to standard output")?;
    if !args.quiet {
        let total: u64 = output.per_format.values().sum();
        let breakdown: Vec<String> = output
            .per_format
            .iter()
            .map(|(format, count)| format!("{format} {count}"))
            .collect();
        eprintln!(
            "citysoc parse: {total} events from {} input(s): {}{}",
            inputs.len(),
            breakdown.join(", "),
            truncated_records(truncated)
        );
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
