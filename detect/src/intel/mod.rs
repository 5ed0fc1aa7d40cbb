//! Threat-intelligence indicators: IP addresses and networks, domains, URLs and file hashes
//! from list files (CSV, MISP's JSON export), matched against every event with set and prefix
//! lookups, raising alerts the way rules do.
//!
//! - [`load`] reads one list file into indicators and [`LoadProblem`]s (file, line or JSON
//!   path, reason); a bad row never stops the others.
//! - [`IntelSet`] is the matching structure, built once per load and immutable: per-prefix-length
//!   address maps, domain suffix lookups, normalized URL keys, hash sets. Its cost per event
//!   does not grow with the number of indicators.
//! - [`IntelStore`] holds the current set for a list directory and swaps in a new one when a
//!   file changes ([`IntelStore::reload_if_changed`]), without a restart.
//! - [`IntelMatcher`] is what a detection worker keeps: it matches events against the store's
//!   current set and picks up reloads between events.
//! - [`fields`] is the table of event fields that carry addresses, hosts, URLs and hashes.
//!
//! An alert has rule id `intel:<list>`, title `Threat-intel match: <list> (<type>)`, the
//! indicator's level (the list's default, `high` unless the list says otherwise) and tags, and
//! details `list`, `indicator`, `indicator_type`, `field`, `value`, `indicator_location` (the
//! line or JSON path in the list file), plus `description` and the MISP `context` where there
//! is one.
//!
//! ```no_run
//! use std::sync::Arc;
//! use citysoc_detect::intel::{IntelMatcher, IntelStore, LoadOptions};
//!
//! # fn events() -> Vec<citysoc_collector::Event> { Vec::new() }
//! let store = Arc::new(IntelStore::open(["rules/intel".into()], LoadOptions::default())?);
//! for problem in store.current().problems() {
//!     eprintln!("{problem}"); // `rules/intel/x.csv: line 7: `10.0.0/8` is not an IP address (type `cidr`)`
//! }
//! let mut matcher = IntelMatcher::new(Arc::clone(&store));
//! for event in events() {
//!     for alert in matcher.match_event(&event) {
//!         println!("{} {}", alert.rule_id, alert.title);
//!     }
//!     // Elsewhere, every few seconds: picks up edited lists; matchers follow on their next event.
//!     store.reload_if_changed()?;
//! }
//! # Ok::<(), citysoc_detect::DetectError>(())
//! ```

use std::sync::Arc;

use citysoc_collector::Event;

use crate::alert::Alert;

pub mod fields;
mod hasher;
mod indicator;
pub mod load;
mod set;
mod store;

pub use fields::{FieldKind, MatchOptions, INTEL_FIELDS};
pub use indicator::{Indicator, IndicatorType};
pub use load::{parse_list, LoadOptions, LoadProblem, ParsedList, SkipCounts};
pub use set::{IntelHit, IntelSet, ListSummary};
pub use store::{IntelStats, IntelStore, ReloadReport};

/// Matches events against a store's lists; one per worker thread (like a YARA scanner). It
/// keeps the set it matched the last event with and takes the store's new one after a reload.
#[derive(Debug)]
pub struct IntelMatcher {
    store: Arc<IntelStore>,
    set: Arc<IntelSet>,
    generation: u64,
    options: MatchOptions,
}

impl IntelMatcher {
    /// A matcher over the store's lists, with the default [`MatchOptions`].
    pub fn new(store: Arc<IntelStore>) -> Self {
        IntelMatcher::with_options(store, MatchOptions::default())
    }

    /// A matcher with the given options.
    pub fn with_options(store: Arc<IntelStore>, options: MatchOptions) -> Self {
        let generation = store.generation();
        let set = store.current();
        IntelMatcher {
            store,
            set,
            generation,
            options,
        }
    }

    /// The alerts for one event: one per (list, indicator) it matches, each naming the list,
    /// the indicator and the field.
    pub fn match_event(&mut self, event: &Event) -> Vec<Alert> {
        self.refresh();
        let alerts = self.set.alerts(event, &self.options);
        if !alerts.is_empty() {
            self.store.record_matches(alerts.len());
        }
        alerts
    }

    /// The set the matcher uses now.
    pub fn set(&self) -> &Arc<IntelSet> {
        &self.set
    }

    /// Takes the store's current set when a reload swapped a new one in (one atomic load per
    /// event otherwise).
    fn refresh(&mut self) {
        let generation = self.store.generation();
        if generation != self.generation {
            self.set = self.store.current();
            self.generation = generation;
        }
    }
}
