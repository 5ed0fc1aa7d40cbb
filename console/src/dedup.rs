//! Which events of a batch the store already has, so the acknowledgement can say how many
//! were duplicates and only new events are detected on and stored.
//!
//! The store is asked directly: one `id` terms query per chunk of ids, within the batch's
//! agency and time span, so only the day indexes the batch touches are opened. This sees
//! committed events only; the intake commits every batch before acknowledging it and handles a
//! collector's batches one at a time, so what a collector sent before is always visible. The
//! store itself still replaces an event whose id it already holds (`TantivyConfig::dedup`), so
//! even an event this check missed is never stored twice.

use std::collections::HashSet;

use chrono::TimeDelta;
use citysoc_collector::Event;
use citysoc_index::query::{Condition, FieldMatch, Target};
use citysoc_index::{AgencyScope, AggregationRequest, Query, TantivyStore, TimeRange};

use crate::ConsoleError;

/// Ids per query: keeps each boolean query small.
const IDS_PER_QUERY: usize = 1024;

/// A batch split into events to store and the number of duplicates.
pub(crate) struct Split {
    /// Events the store does not have, each id once.
    pub new: Vec<Event>,
    /// Events already stored, or repeated within the batch.
    pub duplicates: u64,
}

/// Splits `events` (already stamped with `agency`) into new ones and duplicates.
pub(crate) fn split_new(
    store: &TantivyStore,
    agency: &str,
    events: Vec<Event>,
) -> Result<Split, ConsoleError> {
    let stored = stored_ids(store, agency, &events)?;
    let mut seen = HashSet::with_capacity(events.len());
    let mut new = Vec::with_capacity(events.len());
    let mut duplicates = 0;
    for event in events {
        let key = citysoc_index::text::keyword(&event.id);
        if stored.contains(&key) || !seen.insert(key) {
            duplicates += 1;
        } else {
            new.push(event);
        }
    }
    Ok(Split { new, duplicates })
}

/// The ids (as indexed: folded) of `events` that the store already holds.
fn stored_ids(
    store: &TantivyStore,
    agency: &str,
    events: &[Event],
) -> Result<HashSet<String>, ConsoleError> {
    let (Some(first), Some(last)) = (
        events.iter().map(|event| event.timestamp).min(),
        events.iter().map(|event| event.timestamp).max(),
    ) else {
        return Ok(HashSet::new());
    };
    let to = last
        .checked_add_signed(TimeDelta::microseconds(1))
        .unwrap_or(last);
    let time = TimeRange::new(first, to)?;
    let scope = AgencyScope::agency(agency);
    let ids: Vec<String> = events
        .iter()
        .map(|event| citysoc_index::text::keyword(&event.id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut found = HashSet::new();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let query = Query::Or(
            chunk
                .iter()
                .map(|id| {
                    Query::Match(FieldMatch {
                        target: Target::Field("id"),
                        condition: Condition::Exact(id.clone()),
                    })
                })
                .collect(),
        );
        let request = AggregationRequest {
            query,
            time,
            scope: scope.clone(),
        };
        let terms = store.count_by(&request, "id", chunk.len())?;
        found.extend(terms.buckets.into_iter().map(|bucket| bucket.value));
    }
    Ok(found)
}
