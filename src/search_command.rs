//! `citysoc search`: events matching a query, or their counts by field or by time, from the
//! data directory `citysoc import` filled.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use citysoc_collector::Event;
use citysoc_index::request::{AggregationRequest, Order};
use citysoc_index::{
    AgencyScope, ClickHouseStore, Cursor, HistogramBucket, IndexError, Interval, SearchPage,
    SearchRequest, TantivyConfig, TantivyStore, Terms, TimeRange,
};
use serde::Serialize;

use crate::clickhouse_target::{self, ClickHouseArgs};
use crate::store_location::DataDir;

/// Output forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchOutput {
    /// Columns for people.
    Table,
    /// NDJSON: one event (or bucket) per line.
    Json,
}

/// The stores `search` can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The data directory's tantivy indexes.
    Tantivy,
    /// A ClickHouse server.
    Clickhouse,
}

/// An opened store (the ClickHouse client with the runtime that drives it).
// One per process: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Store {
    Tantivy(TantivyStore),
    ClickHouse((tokio::runtime::Runtime, ClickHouseStore)),
}

impl Store {
    fn open(args: &SearchArgs) -> anyhow::Result<Self> {
        match args.backend {
            Backend::Tantivy => {
                let Some(data) = &args.data else {
                    anyhow::bail!("name the data directory: --data DIR");
                };
                let data = DataDir::existing(data)?;
                let store = TantivyStore::open(data.events(), TantivyConfig::default())
                    .with_context(|| {
                        format!("cannot open the event store in {}", data.events().display())
                    })?;
                Ok(Store::Tantivy(store))
            }
            Backend::Clickhouse => {
                let Some(url) = &args.clickhouse.clickhouse_url else {
                    anyhow::bail!("--backend clickhouse needs --clickhouse-url URL");
                };
                let runtime = clickhouse_target::runtime()?;
                let store = clickhouse_target::connect(
                    &runtime,
                    url,
                    &args.clickhouse.clickhouse_database,
                )?;
                Ok(Store::ClickHouse((runtime, store)))
            }
        }
    }

    fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        match self {
            Store::Tantivy(store) => store.search(request),
            Store::ClickHouse(client) => client.0.block_on(client.1.search(request)),
        }
    }

    fn count_by(
        &self,
        request: &AggregationRequest,
        field: &str,
        size: usize,
    ) -> Result<Terms, IndexError> {
        match self {
            Store::Tantivy(store) => store.count_by(request, field, size),
            Store::ClickHouse(client) => client.0.block_on(client.1.count_by(request, field, size)),
        }
    }

    fn histogram(
        &self,
        request: &AggregationRequest,
        interval: Interval,
    ) -> Result<Vec<HistogramBucket>, IndexError> {
        match self {
            Store::Tantivy(store) => store.histogram(request, interval),
            Store::ClickHouse(client) => client.0.block_on(client.1.histogram(request, interval)),
        }
    }
}

/// Arguments of `citysoc search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Data directory written by `citysoc import` or `citysoc server` (the tantivy backend).
    #[arg(long, required_if_eq("backend", "tantivy"))]
    data: Option<PathBuf>,
    /// Which store answers: the embedded tantivy indexes in `--data`, or ClickHouse at
    /// `--clickhouse-url`.
    #[arg(long, value_enum, default_value = "tantivy")]
    backend: Backend,
    #[command(flatten)]
    clickhouse: ClickHouseArgs,
    /// Start of the time range (included): RFC 3339 time, a date (its start, UTC), `now` or
    /// `now-24h` / `now-7d` / `now-30m`. Default: the beginning.
    #[arg(long)]
    from: Option<String>,
    /// End of the time range (excluded): as `--from`; a date means the end of that day.
    /// Default: the end of time.
    #[arg(long)]
    to: Option<String>,
    /// Only these agencies' events (repeatable). Default: every agency.
    #[arg(long)]
    agency: Vec<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Continue after this cursor (printed under the previous page).
    #[arg(long)]
    after: Option<String>,
    /// Oldest events first instead of newest first.
    #[arg(long)]
    oldest_first: bool,
    /// Output form.
    #[arg(long, value_enum, default_value = "table")]
    format: SearchOutput,
    /// Instead of events, count them by the values of this field (top `--limit` values).
    #[arg(long, conflicts_with = "histogram")]
    count_by: Option<String>,
    /// Instead of events, count them per time bucket of this width (`1h`, `5m`, `1d`).
    #[arg(long)]
    histogram: Option<String>,
    /// The query, e.g. `source.ip:10.0.0.5 AND NOT event.outcome:success` (empty: everything).
    #[arg(default_value = "")]
    query: String,
}

/// Runs `citysoc search`.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let query = citysoc_index::parse(&args.query)
        .map_err(|error| explain_query_error(&args.query, error))?;
    let now = Utc::now();
    let from = args
        .from
        .as_deref()
        .map(|text| parse_time(text, now, false))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|text| parse_time(text, now, true))
        .transpose()?;
    let everything = TimeRange::everything();
    let time = TimeRange::new(from.unwrap_or(everything.from), to.unwrap_or(everything.to))?;
    let scope = if args.agency.is_empty() {
        AgencyScope::All
    } else {
        AgencyScope::Only(args.agency.iter().cloned().collect())
    };
    let store = Store::open(&args)?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(field) = &args.count_by {
        let request = AggregationRequest { query, time, scope };
        let terms = store.count_by(&request, field, args.limit)?;
        write_terms(&mut out, args.format, field, &terms)?;
    } else if let Some(interval) = &args.histogram {
        let interval = Interval::parse(interval)?;
        let request = AggregationRequest { query, time, scope };
        let buckets = store.histogram(&request, interval)?;
        write_histogram(&mut out, args.format, &buckets)?;
    } else {
        let mut request = SearchRequest::new(query, time, scope, args.limit);
        request.after = args.after.as_deref().map(Cursor::parse).transpose()?;
        request.order = if args.oldest_first {
            Order::OldestFirst
        } else {
            Order::NewestFirst
        };
        let page = store.search(&request)?;
        write_page(&mut out, args.format, &page)?;
    }
    out.flush()?;
    Ok(())
}

/// A query error with the query printed and a caret under the position.
fn explain_query_error(query: &str, error: IndexError) -> anyhow::Error {
    let IndexError::Query { position, message } = &error else {
        return error.into();
    };
    let column = query
        .get(..*position)
        .map_or(0, |before| before.chars().count());
    anyhow::anyhow!(
        "invalid query at position {position}: {message}\n  {query}\n  {}^",
        " ".repeat(column)
    )
}

/// Reads a `--from`/`--to` value.
fn parse_time(text: &str, now: DateTime<Utc>, end: bool) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if text == "now" {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let interval = Interval::parse(ago).map_err(|_| bad_time(text))?;
        return now
            .checked_sub_signed(TimeDelta::microseconds(interval.micros()))
            .ok_or_else(|| bad_time(text));
    }
    Err(bad_time(text))
}

fn bad_time(text: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "invalid time {text:?}: write an RFC 3339 time (2026-11-22T08:00:00+07:00), a date (2026-11-22), `now` or `now-24h`"
    )
}

fn write_page(out: &mut impl Write, format: SearchOutput, page: &SearchPage) -> anyhow::Result<()> {
    match format {
        SearchOutput::Json => {
            for event in &page.events {
                serde_json::to_writer(&mut *out, event)?;
                out.write_all(b"\n")?;
            }
        }
        SearchOutput::Table => {
            writeln!(
                out,
                "{:<20} {:<12} {:<16} {:<11} event",
                "time (UTC)", "agency", "host", "format"
            )?;
            for event in &page.events {
                writeln!(
                    out,
                    "{:<20} {:<12} {:<16} {:<11} {}",
                    event.timestamp.format("%Y-%m-%d %H:%M:%S"),
                    cut(event.agency.as_deref().unwrap_or("-"), 12),
                    cut(event.core.host_name.as_deref().unwrap_or("-"), 16),
                    event.format.as_str(),
                    cut(&summary(event), 100)
                )?;
            }
        }
    }
    if !page.unreadable.is_empty() {
        eprintln!(
            "citysoc search: {} stored events of this page could not be read and are left out:",
            page.unreadable.len()
        );
        for problem in &page.unreadable {
            eprintln!("  {problem}");
        }
    }
    let shown = page.events.len();
    match &page.next {
        Some(next) => eprintln!(
            "citysoc search: {shown} of {} events; next page: --after {next}",
            page.total
        ),
        None => eprintln!("citysoc search: {shown} of {} events", page.total),
    }
    Ok(())
}

/// One line saying what the event is: its message, else its raw record.
fn summary(event: &Event) -> String {
    let text = event
        .core
        .message
        .clone()
        .unwrap_or_else(|| citysoc_index::document::raw_text(event).into_owned());
    text.replace(['\n', '\r', '\t'], " ")
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[derive(Serialize)]
struct TermLine<'a> {
    value: &'a str,
    count: u64,
}

fn write_terms(
    out: &mut impl Write,
    format: SearchOutput,
    field: &str,
    terms: &Terms,
) -> anyhow::Result<()> {
    match format {
        SearchOutput::Json => {
            for term in &terms.buckets {
                serde_json::to_writer(
                    &mut *out,
                    &TermLine {
                        value: &term.value,
                        count: term.count,
                    },
                )?;
                out.write_all(b"\n")?;
            }
        }
        SearchOutput::Table => {
            writeln!(out, "{:>10}  {field}", "events")?;
            for term in &terms.buckets {
                writeln!(out, "{:>10}  {}", term.count, term.value)?;
            }
        }
    }
    eprintln!(
        "citysoc search: {} values shown; {} more in other values; {} events without {field}",
        terms.buckets.len(),
        terms.other,
        terms.missing
    );
    Ok(())
}

#[derive(Serialize)]
struct BucketLine {
    start: DateTime<Utc>,
    count: u64,
}

fn write_histogram(
    out: &mut impl Write,
    format: SearchOutput,
    buckets: &[HistogramBucket],
) -> anyhow::Result<()> {
    let widest = buckets
        .iter()
        .map(|bucket| bucket.count)
        .max()
        .unwrap_or(1)
        .max(1);
    for bucket in buckets {
        match format {
            SearchOutput::Json => {
                serde_json::to_writer(
                    &mut *out,
                    &BucketLine {
                        start: bucket.start,
                        count: bucket.count,
                    },
                )?;
                out.write_all(b"\n")?;
            }
            SearchOutput::Table => {
                let bar = "█".repeat(((bucket.count * 50).div_ceil(widest)) as usize);
                writeln!(
                    out,
                    "{}  {:>10}  {bar}",
                    bucket.start.format("%Y-%m-%d %H:%M:%S"),
                    bucket.count
                )?;
            }
        }
    }
    let total: u64 = buckets.iter().map(|bucket| bucket.count).sum();
    eprintln!(
        "citysoc search: {total} events in {} buckets",
        buckets.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_every_documented_form() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let show = |text: &str, end: bool| {
            parse_time(text, now, end)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|e| e.to_string())
        };
        assert_eq!(show("2026-11-20", false), "2026-11-20T00:00:00+00:00");
        assert_eq!(show("2026-11-20", true), "2026-11-21T00:00:00+00:00");
        assert_eq!(
            show("2026-11-20T08:00:00+07:00", false),
            "2026-11-20T01:00:00+00:00"
        );
        assert_eq!(show("now-24h", false), "2026-11-21T10:00:00+00:00");
        assert_eq!(show("now", true), "2026-11-22T10:00:00+00:00");
        assert!(show("yesterday", false).starts_with("invalid time"));
        assert!(show("now-3w", false).starts_with("invalid time"));
        // Past what time arithmetic holds: an error, not a panic.
        assert!(show("now-100000000d", false).starts_with("invalid time"));
        assert_eq!(show("now-36500d", false), "1926-12-17T10:00:00+00:00");
    }

    #[test]
    fn query_errors_point_at_the_position() {
        let error = citysoc_index::parse("source.ip:1 AND (x")
            .err()
            .map(|error| explain_query_error("source.ip:1 AND (x", error).to_string());
        let text = error.unwrap_or_default();
        assert!(
            text.contains("\n  source.ip:1 AND (x\n                  ^"),
            "{text}"
        );
    }
}
