//! `citysoc import`: parse log files, run detection, and store every event in the data
//! directory (tantivy; and ClickHouse when a server is named), so they can be searched.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use citysoc_collector::framing::DEFAULT_MAX_FRAME;
use citysoc_collector::{Format, InputFormat, ParseContext};
use citysoc_detect::suppression::fold_batch;
use citysoc_detect::Alert;
use citysoc_index::{TantivyConfig, TantivyStore};
use indicatif::{ProgressBar, ProgressStyle};

use crate::clickhouse_target::{ClickHouseArgs, ClickHouseWriter};
use crate::detection::{self, LoadedRules, RuleArgs};
use crate::input::{blank_lines, parse_framing, read_input, truncated_records, InputOptions};
use crate::store_location::DataDir;

/// Arguments of `citysoc import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Data directory (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// Agency the records belong to.
    #[arg(long)]
    agency: Option<String>,
    /// Format of the input records (as `citysoc parse --format`).
    #[arg(long, default_value = "auto")]
    input_format: String,
    /// Zone for device times written without one.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    timezone: String,
    /// How records are delimited: newline, or octet-counting (RFC 6587, as a TCP syslog
    /// stream carries them).
    #[arg(long, default_value = "newline")]
    framing: String,
    #[command(flatten)]
    rules: RuleArgs,
    /// Store without running detection.
    #[arg(long)]
    no_detect: bool,
    /// Commit (make durable and searchable) after this many events.
    #[arg(long, default_value_t = 200_000)]
    commit_events: u64,
    /// Commit at least this often, in seconds.
    #[arg(long, default_value_t = 5)]
    commit_seconds: u64,
    /// Print a line on stderr after each commit with the number of events durable so far.
    #[arg(long)]
    verbose: bool,
    /// Fold repeats of a rule on the same entities within this many seconds into one alert.
    #[arg(long, default_value_t = 300)]
    suppress_seconds: i64,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Files to import; `-` reads standard input.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// Runs `citysoc import`.
pub fn run(mut args: ImportArgs) -> anyhow::Result<()> {
    let input_format: InputFormat = args.input_format.parse()?;
    let timezone = ParseContext::parse_timezone(&args.timezone)?;
    let framing = parse_framing(&args.framing)?;
    let data = DataDir::create(&args.data)?;
    let rules = if args.no_detect {
        None
    } else {
        if args.rules.is_empty() {
            detection::use_default_rules(&mut args.rules, "import");
        }
        Some(detection::load(&args.rules, "import")?)
    };
    let (mut detector, yara) = match rules {
        Some(LoadedRules { detector, yara }) => (Some(detector), yara),
        None => (None, None),
    };
    let mut yara_scanner = detection::yara_scanner(yara.as_ref());

    let config = TantivyConfig {
        commit_events: args.commit_events.max(1),
        commit_interval: Duration::from_secs(args.commit_seconds),
        ..TantivyConfig::default()
    };
    if let Some(problem) = args
        .agency
        .as_deref()
        .and_then(citysoc_index::tantivy_store::agency_name_problem)
    {
        anyhow::bail!("--agency: {problem}");
    }
    let store = TantivyStore::open(data.events(), config)
        .with_context(|| format!("cannot open the event store in {}", data.events().display()))?;

    let mut clickhouse = ClickHouseWriter::open(&args.clickhouse)?;

    let total_bytes: u64 = args
        .inputs
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let progress = progress_bar(total_bytes);
    let options = InputOptions {
        format: input_format,
        timezone,
        agency: args.agency.clone(),
        max_record: DEFAULT_MAX_FRAME,
        framing,
    };
    let started = Instant::now();
    let mut alerts: Vec<Alert> = Vec::new();
    let (mut events, mut unknown, mut bytes, mut blank, mut truncated) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut reported_commits = 0;
    let mut failures = Vec::new();
    for input in &args.inputs {
        let result = read_input(input, &options, &mut |batch| {
            for event in batch.iter() {
                events += 1;
                if event.format == Format::Unknown {
                    unknown += 1;
                }
                if let Some(detector) = detector.as_mut() {
                    alerts.extend(detection::detect(detector, yara_scanner.as_mut(), event));
                }
            }
            store.add(batch)?;
            if let Some(clickhouse) = clickhouse.as_mut() {
                clickhouse.send(batch)?;
            }
            let stats = store.stats();
            let commits = stats.commits.load(Ordering::Relaxed);
            if args.verbose && commits != reported_commits {
                reported_commits = commits;
                progress.suspend(|| {
                    eprintln!(
                        "citysoc import: {} events committed",
                        stats.committed.load(Ordering::Relaxed)
                    )
                });
            }
            progress.set_message(format!("{events} events, {} alerts", alerts.len()));
            Ok(())
        });
        match result {
            Ok(summary) => {
                bytes += summary.bytes;
                blank += summary.decoder.blank_records;
                truncated += summary.decoder.truncated_records;
                progress.inc(summary.bytes);
            }
            Err(error) => failures.push(format!("cannot read {}: {error:#}", input.display())),
        }
    }
    store.close().context("cannot commit the last events")?;
    let clickhouse_report = clickhouse.map(ClickHouseWriter::finish).transpose()?;
    progress.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);

    let alerts = if args.suppress_seconds > 0 {
        fold_batch(alerts, chrono::Duration::seconds(args.suppress_seconds))
    } else {
        alerts
    };
    append_alerts(&data.alerts(), &alerts)?;
    if detector.is_some() {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        crate::hunt_command::write_table(&mut out, &alerts)?;
        out.flush()?;
    }
    let committed = store.stats().committed.load(Ordering::Relaxed);
    if args.verbose {
        eprintln!("citysoc import: {committed} events committed");
    }
    eprintln!(
        "citysoc import: {events} events ({unknown} unknown{}{}) from {} input(s) stored in {}, {} alerts{}, {:.1} MB/s",
        blank_lines(blank),
        truncated_records(truncated),
        args.inputs.len(),
        data.root().display(),
        alerts.len(),
        if detector.is_none() { " (detection off)" } else { "" },
        bytes as f64 / 1e6 / elapsed
    );
    if let Some(report) = clickhouse_report {
        eprintln!("citysoc import: {report}");
    }
    if !failures.is_empty() {
        anyhow::bail!("{}", failures.join("\n"));
    }
    Ok(())
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() && total_bytes > 0 {
        let bar = ProgressBar::new(total_bytes);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// Appends alerts to the data directory's alert log, one JSON object per line (the triage
/// store will take them from there).
fn append_alerts(path: &Path, alerts: &[Alert]) -> anyhow::Result<()> {
    if alerts.is_empty() {
        return Ok(());
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for alert in alerts {
        serde_json::to_writer(&mut out, alert)?;
        out.write_all(b"\n")?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.get_ref()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
