//! A commit that fails inside tantivy (a disk that fills up or goes away while a segment is
//! written) must never let a later commit report events as stored that are not: tantivy's
//! writer loses its indexing thread when that thread's segment write fails, and documents
//! handed to it afterwards are dropped at the next commit, which still succeeds.
//!
//! The failure is made real, not mocked: the day's directory is moved away while its writer
//! holds uncommitted events, so tantivy's own segment write fails with "not found", and moved
//! back before the next step.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use citysoc_index::{
    AgencyScope, IndexError, Query, SearchRequest, TantivyConfig, TantivyStore, TimeRange,
};
use common::event;

fn open_store(dir: &Path) -> TantivyStore {
    let config = TantivyConfig {
        // One indexing thread: the one the failed segment write takes down.
        writer_threads: 1,
        ..TantivyConfig::default()
    };
    TantivyStore::open(dir, config).unwrap_or_else(|error| panic!("{error}"))
}

fn one(n: u64) -> citysoc_collector::Event {
    event(n, Some("quan-1"), 60, serde_json::json!({}))
}

/// The only day index under `root` (the directory holding `meta.json`).
fn day_directory(root: &Path) -> PathBuf {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        if directory.join("meta.json").exists() {
            found.push(directory.clone());
        }
        for entry in std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("{error}")) {
            let path = entry.unwrap_or_else(|error| panic!("{error}")).path();
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    assert_eq!(found.len(), 1, "day indexes: {found:?}");
    found.remove(0)
}

/// Runs `during` while the day's directory is away, so tantivy cannot write to it.
fn with_directory_gone<T>(day: &Path, during: impl FnOnce() -> T) -> T {
    let away = day.with_extension("away");
    std::fs::rename(day, &away).unwrap_or_else(|error| panic!("{error}"));
    let result = during();
    std::fs::rename(&away, day).unwrap_or_else(|error| panic!("{error}"));
    result
}

fn stored_ids(store: &TantivyStore) -> BTreeSet<String> {
    store
        .search(&SearchRequest::new(
            Query::All,
            TimeRange::everything(),
            AgencyScope::All,
            100,
        ))
        .unwrap_or_else(|error| panic!("{error}"))
        .events
        .into_iter()
        .map(|event| event.id)
        .collect()
}

/// After a failed commit the store keeps working, and what a later `add` + `commit` reports
/// as stored is stored.
#[test]
fn events_committed_after_a_failed_commit_are_stored() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = open_store(dir.path());
    let first = one(1);
    store
        .add(std::slice::from_ref(&first))
        .unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    let day = day_directory(dir.path());

    store
        .add(&[one(2)])
        .unwrap_or_else(|error| panic!("{error}"));
    let failed = with_directory_gone(&day, || store.commit());
    assert!(
        failed.is_err(),
        "a commit into a missing directory succeeded"
    );

    let mut acknowledged = BTreeSet::from([first.id.clone()]);
    for n in 3..6 {
        let later = one(n);
        let stored = store
            .add(std::slice::from_ref(&later))
            .and_then(|()| store.commit());
        if stored.is_ok() {
            acknowledged.insert(later.id);
        }
    }
    let stored = stored_ids(&store);
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    // The store recovers: the events after the failure are stored, not refused for ever.
    assert_eq!(acknowledged.len(), 4, "stored: {stored:?}");
}

/// A batch whose events sat in the writer another batch's failed commit dropped: its own
/// commit finds nothing left to commit, so only its mark can tell it the events are gone.
#[test]
fn a_batch_whose_events_went_down_with_another_commit_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = open_store(dir.path());
    store
        .add_durably(&[one(1)])
        .unwrap_or_else(|error| panic!("{error}"));
    let day = day_directory(dir.path());

    // Batch B adds its event; batch A's commit fails before B commits.
    let mark = store.write_mark();
    store
        .add(&[one(2)])
        .unwrap_or_else(|error| panic!("{error}"));
    let failed = with_directory_gone(&day, || store.commit());
    assert!(
        failed.is_err(),
        "a commit into a missing directory succeeded"
    );

    // A plain commit has nothing left to do and says so; B's own commit fails.
    assert_eq!(store.commit().ok(), Some(0));
    let answer = store.commit_since(mark);
    assert!(
        matches!(answer, Err(IndexError::WriterFailed { writers: 1 })),
        "{answer:?}"
    );
    assert_eq!(
        stored_ids(&store),
        BTreeSet::from([common::id(1)]),
        "the dropped event is not there"
    );
    let stats = store.stats();
    assert_eq!(stats.failed_writers.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats
            .events_dropped_with_failed_writers
            .load(Ordering::Relaxed),
        1
    );

    // Sent again, the batch is stored, and a batch begun after the failure is not failed by it.
    store
        .add_durably(&[one(2)])
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        stored_ids(&store),
        BTreeSet::from([common::id(1), common::id(2)])
    );
}
