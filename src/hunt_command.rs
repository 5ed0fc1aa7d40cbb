//! `citysoc hunt`: run rules over log files, as incident responders do with Hayabusa and
//! Chainsaw. Reads everything `citysoc parse` reads; prints alerts as JSON lines or a summary
//! table by rule and level.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use citysoc_collector::framing::DEFAULT_MAX_FRAME;
use citysoc_collector::{Event, Format, InputFormat, ParseContext};
use citysoc_detect::suppression::fold_batch;
use citysoc_detect::Alert;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::detection::{self, LoadedRules, RuleArgs};
use crate::input::{blank_lines, read_input, InputOptions};

/// Events kept for attaching to alerts; beyond it alerts list ids only.
const MAX_KEPT_EVENTS: usize = 200_000;
/// Events printed with one alert in JSON output.
const MAX_EVENTS_PER_ALERT: usize = 100;

/// Output forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HuntOutput {
    /// A summary table by rule and level.
    Table,
    /// One alert per line with its triggering events.
    Json,
}

/// Arguments of `citysoc hunt`.
#[derive(Debug, clap::Args)]
pub struct HuntArgs {
    #[command(flatten)]
    rules: RuleArgs,
    /// Output form.
    #[arg(long, value_enum, default_value = "table")]
    format: HuntOutput,
    /// Format of the input records (as `citysoc parse --format`).
    #[arg(long, default_value = "auto")]
    input_format: String,
    /// Zone for device times written without one.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    timezone: String,
    /// Agency the records belong to.
    #[arg(long)]
    agency: Option<String>,
    /// Fold repeats of a rule on the same entities within this many seconds into one alert
    /// with a count (0: every hit is its own alert).
    #[arg(long, default_value_t = 300)]
    suppress_seconds: i64,
    /// Files to hunt in; `-` reads standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Serialize)]
struct AlertWithEvents<'a> {
    #[serde(flatten)]
    alert: &'a Alert,
    events: Vec<&'a Event>,
}

/// Runs `citysoc hunt`.
pub fn run(args: HuntArgs) -> anyhow::Result<()> {
    let input_format: InputFormat = args.input_format.parse()?;
    let timezone = ParseContext::parse_timezone(&args.timezone)?;
    if args.rules.rules.is_empty() {
        anyhow::bail!("name the Sigma rules to hunt with: --rules DIR (e.g. --rules rules/sigma)");
    }
    let LoadedRules { mut detector, yara } = detection::load(&args.rules, "hunt")?;
    let mut yara_scanner = detection::yara_scanner(yara.as_ref());

    let total_bytes: u64 = args
        .inputs
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let progress = if std::io::stderr().is_terminal() && total_bytes > 0 {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let options = InputOptions {
        format: input_format,
        timezone,
        agency: args.agency.clone(),
        max_record: DEFAULT_MAX_FRAME,
        framing: citysoc_collector::framing::Framing::Newline,
    };
    let started = Instant::now();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut kept: HashMap<String, Event> = HashMap::new();
    let (mut events, mut unknown, mut bytes, mut blank) = (0u64, 0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for input in &args.inputs {
        let result = read_input(input, &options, &mut |batch| {
            for event in batch.drain(..) {
                events += 1;
                if event.format == Format::Unknown {
                    unknown += 1;
                }
                let raised = detection::detect(&mut detector, yara_scanner.as_mut(), &event);
                if (detector.last_event_matched() || !raised.is_empty())
                    && kept.len() < MAX_KEPT_EVENTS
                {
                    kept.insert(event.id.clone(), event);
                }
                alerts.extend(raised);
            }
            progress.set_message(format!("{events} events, {} alerts", alerts.len()));
            Ok(())
        });
        match result {
            Ok(summary) => {
                bytes += summary.bytes;
                blank += summary.decoder.blank_records;
                progress.inc(summary.bytes);
            }
            Err(error) => failures.push(format!("cannot read {}: {error:#}", input.display())),
        }
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);

    let alerts = if args.suppress_seconds > 0 {
        fold_batch(alerts, chrono::Duration::seconds(args.suppress_seconds))
    } else {
        alerts
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        HuntOutput::Json => {
            for alert in &alerts {
                let events = alert
                    .event_ids
                    .iter()
                    .filter_map(|id| kept.get(id))
                    .take(MAX_EVENTS_PER_ALERT)
                    .collect();
                serde_json::to_writer(&mut out, &AlertWithEvents { alert, events })?;
                out.write_all(b"\n")?;
            }
        }
        HuntOutput::Table => write_table(&mut out, &alerts)?,
    }
    out.flush()?;
    let stats = detector.stats();
    eprintln!(
        "citysoc hunt: {events} events ({unknown} unknown{}) from {} input(s), {} alerts ({} hits, {} silenced by exceptions), {:.1} MB/s",
        blank_lines(blank),
        args.inputs.len(),
        alerts.len(),
        stats.alerts,
        stats.silenced,
        bytes as f64 / 1e6 / elapsed
    );
    if !failures.is_empty() {
        anyhow::bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// The alert summary: one row per rule and level with alert and hit counts.
pub fn write_table(out: &mut impl Write, alerts: &[Alert]) -> std::io::Result<()> {
    // (level, title, rule id) → (alerts, hits)
    let mut rows: BTreeMap<(std::cmp::Reverse<citysoc_detect::Level>, String, String), (u64, u64)> =
        BTreeMap::new();
    for alert in alerts {
        let row = rows
            .entry((
                std::cmp::Reverse(alert.level),
                alert.title.clone(),
                alert.rule_id.clone(),
            ))
            .or_default();
        row.0 += 1;
        row.1 += alert.count;
    }
    writeln!(
        out,
        "{:<13} {:>7} {:>7}  {:<60} id",
        "level", "alerts", "hits", "rule"
    )?;
    for ((level, title, rule_id), (count, hits)) in &rows {
        let title: String = title.chars().take(60).collect();
        writeln!(
            out,
            "{:<13} {:>7} {:>7}  {:<60} {}",
            level.0.as_str(),
            count,
            hits,
            title,
            rule_id
        )?;
    }
    if rows.is_empty() {
        writeln!(out, "(no alerts)")?;
    }
    Ok(())
}
