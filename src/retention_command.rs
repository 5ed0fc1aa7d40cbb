//! `citysoc retention`: drop the day indexes older than each agency's retention.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use citysoc_index::{RetentionPolicy, TantivyConfig, TantivyStore};

use crate::store_location::DataDir;

/// Arguments of `citysoc retention`.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Data directory.
    #[arg(long)]
    data: PathBuf,
    /// Days kept for every agency not named with `--agency-days` (today counts as one).
    #[arg(long)]
    days: Option<u32>,
    /// Days kept for one agency, as AGENCY=DAYS (repeatable), e.g. `--agency-days so-y-te=365`.
    #[arg(long = "agency-days", value_parser = parse_agency_days)]
    agency_days: Vec<(String, u32)>,
    /// Only list what would be dropped.
    #[arg(long)]
    dry_run: bool,
}

fn parse_agency_days(text: &str) -> Result<(String, u32), String> {
    let (agency, days) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?}: write AGENCY=DAYS"))?;
    let days = days
        .parse()
        .map_err(|_| format!("{text:?}: DAYS must be a whole number"))?;
    if agency.is_empty() || days == 0 {
        return Err(format!("{text:?}: name an agency and keep at least 1 day"));
    }
    Ok((agency.to_owned(), days))
}

/// Runs `citysoc retention`.
pub fn run(args: RetentionArgs) -> anyhow::Result<()> {
    if args.days == Some(0) {
        anyhow::bail!("--days 0 would drop today's events too: keep at least 1 day");
    }
    if args.days.is_none() && args.agency_days.is_empty() {
        anyhow::bail!("say what to keep: --days N and/or --agency-days AGENCY=N");
    }
    let policy = RetentionPolicy {
        default_days: args.days,
        agencies: args.agency_days.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    let data = DataDir::existing(&args.data)?;
    let store = TantivyStore::open(data.events(), TantivyConfig::default())
        .with_context(|| format!("cannot open the event store in {}", data.events().display()))?;
    let today = chrono::Utc::now().date_naive();
    let report = if args.dry_run {
        store.expired(&policy, today)?
    } else {
        let applied = store.apply_retention(&policy, today)?;
        if applied.uncommitted_dropped > 0 {
            eprintln!(
                "citysoc retention: {} events not yet committed to those days were dropped with them",
                applied.uncommitted_dropped
            );
        }
        applied.dropped
    };
    for (agency, day) in &report {
        println!(
            "{} {} {}",
            if args.dry_run {
                "would drop"
            } else {
                "dropped"
            },
            agency.as_deref().unwrap_or("(no agency)"),
            day
        );
    }
    eprintln!(
        "citysoc retention: {} day index(es) {}",
        report.len(),
        if args.dry_run {
            "past retention"
        } else {
            "dropped"
        }
    );
    Ok(())
}
