//! The embedded store against the shared city sample: matching, scope, order and paging,
//! aggregations, dedup, retention, and reopening.

mod common;

use std::collections::BTreeSet;

use chrono::{NaiveDate, TimeDelta};
use citysoc_index::query::{Bound, Condition, FieldMatch, Range, Target};
use citysoc_index::request::{AggregationRequest, Order};
use citysoc_index::{
    AgencyScope, Interval, Query, RetentionPolicy, SearchRequest, TantivyConfig, TantivyStore,
    TimeRange,
};
use common::{at, city_events, event, id};

fn store_with(events: &[citysoc_collector::Event]) -> (tempfile::TempDir, TantivyStore) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    store.add(events).unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    (dir, store)
}

fn field(name: &'static str, condition: Condition) -> Query {
    Query::Match(FieldMatch {
        target: Target::Field(name),
        condition,
    })
}

fn words(tokens: &[&str]) -> Query {
    Query::Match(FieldMatch {
        target: Target::DefaultText,
        condition: Condition::Phrase(tokens.iter().map(|token| token.to_string()).collect()),
    })
}

fn ids(store: &TantivyStore, query: Query, scope: AgencyScope) -> BTreeSet<String> {
    let request = SearchRequest::new(query, TimeRange::everything(), scope, 1000);
    let page = store
        .search(&request)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(page.total as usize, page.events.len());
    page.events.into_iter().map(|event| event.id).collect()
}

/// Every stored event (at most 100), sorted by id.
fn all_by_id(store: &TantivyStore) -> Vec<citysoc_collector::Event> {
    let mut stored = store
        .search(&SearchRequest::new(
            Query::All,
            TimeRange::everything(),
            AgencyScope::All,
            100,
        ))
        .unwrap_or_else(|error| panic!("{error}"))
        .events;
    stored.sort_by(|a, b| a.id.cmp(&b.id));
    stored
}

fn expect(numbers: &[u64]) -> BTreeSet<String> {
    numbers.iter().map(|n| id(*n)).collect()
}

#[test]
fn stored_events_come_back_equal_newest_first() {
    let events = city_events();
    let (_dir, store) = store_with(&events);
    let page = store
        .search(&SearchRequest::new(
            Query::All,
            TimeRange::everything(),
            AgencyScope::All,
            100,
        ))
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(page.total, 12);
    assert!(page.next.is_none());
    let mut expected = events.clone();
    expected.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then_with(|| b.id.cmp(&a.id)));
    assert_eq!(page.events, expected);
}

#[test]
fn vietnamese_text_is_found_without_diacritics_or_case() {
    let (_dir, store) = store_with(&city_events());
    assert_eq!(
        ids(&store, words(&["thu", "duc"]), AgencyScope::All),
        expect(&[1])
    );
    assert_eq!(
        ids(&store, words(&["quan", "1"]), AgencyScope::All),
        expect(&[9, 10, 11])
    );
    assert_eq!(
        ids(&store, words(&["duc", "thu"]), AgencyScope::All),
        expect(&[])
    );
    assert_eq!(
        ids(
            &store,
            field("user.name", Condition::Exact("nguyen van an".into())),
            AgencyScope::All
        ),
        expect(&[1])
    );
    // The array element of an original field.
    let tag = Query::Match(FieldMatch {
        target: Target::Original("tags".into()),
        condition: Condition::Exact("thu duc".into()),
    });
    assert_eq!(ids(&store, tag, AgencyScope::All), expect(&[7]));
}

#[test]
fn ips_and_hashes_match_exactly() {
    let (_dir, store) = store_with(&city_events());
    assert_eq!(
        ids(
            &store,
            field("source.ip", Condition::Exact("10.0.0.5".into())),
            AgencyScope::All
        ),
        expect(&[1, 3, 8])
    );
    assert_eq!(
        ids(
            &store,
            field("source.ip", Condition::Exact("fe80::1".into())),
            AgencyScope::All
        ),
        expect(&[9])
    );
    assert_eq!(
        ids(
            &store,
            field("source.ip", Condition::Wildcard("10.0.0.5*".into())),
            AgencyScope::All
        ),
        expect(&[1, 2, 3, 8])
    );
    let hash = Query::Match(FieldMatch {
        target: Target::Original("Hashes".into()),
        condition: Condition::Exact(
            "sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        ),
    });
    assert_eq!(ids(&store, hash, AgencyScope::All), expect(&[5]));
    let number = Query::Match(FieldMatch {
        target: Target::Original("EventID".into()),
        condition: Condition::Exact("4625".into()),
    });
    assert_eq!(ids(&store, number, AgencyScope::All), expect(&[7]));
}

#[test]
fn every_condition_kind() {
    let (_dir, store) = store_with(&city_events());
    let ports = Range {
        lower: Bound::Included(1),
        upper: Bound::Excluded(1024),
    };
    assert_eq!(
        ids(
            &store,
            field("source.port", Condition::NumberRange(ports)),
            AgencyScope::All
        ),
        expect(&[2])
    );
    assert_eq!(
        ids(
            &store,
            field(
                "destination.port",
                Condition::NumberRange(Range::exactly(443))
            ),
            AgencyScope::All
        ),
        expect(&[9, 10])
    );
    let day_two = Range {
        lower: Bound::Included(at(86_400)),
        upper: Bound::Excluded(at(2 * 86_400)),
    };
    assert_eq!(
        ids(
            &store,
            field("timestamp", Condition::TimeRange(day_two)),
            AgencyScope::All
        ),
        expect(&[5, 6, 7, 8])
    );
    assert_eq!(
        ids(
            &store,
            field("host.name", Condition::Exists),
            AgencyScope::All
        ),
        expect(&[4])
    );
    let exists = Query::Match(FieldMatch {
        target: Target::Original("EventID".into()),
        condition: Condition::Exists,
    });
    assert_eq!(ids(&store, exists, AgencyScope::All), expect(&[5, 7]));
    assert_eq!(
        ids(
            &store,
            field("process.command_line", Condition::Wildcard("power*".into())),
            AgencyScope::All
        ),
        expect(&[5])
    );
    assert_eq!(
        ids(
            &store,
            field(
                "process.executable",
                Condition::Wildcard("*\\powershell.exe".into())
            ),
            AgencyScope::All
        ),
        expect(&[5])
    );
    assert_eq!(
        ids(
            &store,
            field(
                "url.original",
                Condition::Phrase(vec!["1".into(), "or".into(), "1".into()])
            ),
            AgencyScope::All
        ),
        expect(&[6])
    );
    let original_glob = Query::Match(FieldMatch {
        target: Target::Original("system".into()),
        condition: Condition::Wildcard("kho-*".into()),
    });
    assert_eq!(ids(&store, original_glob, AgencyScope::All), expect(&[12]));
    // Boolean structure, including NOT matching events that lack the field.
    let deny_or_accept = Query::Or(vec![
        field("event.action", Condition::Exact("deny".into())),
        field("event.action", Condition::Exact("accept".into())),
    ]);
    assert_eq!(
        ids(&store, deny_or_accept, AgencyScope::All),
        expect(&[9, 10, 11])
    );
    let not_root = Query::Not(Box::new(field(
        "user.name",
        Condition::Exact("root".into()),
    )));
    assert_eq!(
        ids(&store, not_root, AgencyScope::All),
        expect(&[1, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    );
    let failed_not_root = Query::And(vec![
        words(&["failed"]),
        Query::Not(Box::new(field(
            "user.name",
            Condition::Exact("root".into()),
        ))),
    ]);
    assert_eq!(
        ids(&store, failed_not_root, AgencyScope::All),
        expect(&[1, 7])
    );
}

#[test]
fn agency_scope_never_shows_another_agency() {
    let (_dir, store) = store_with(&city_events());
    let quan_3 = AgencyScope::agency("quan-3");
    assert_eq!(ids(&store, Query::All, quan_3.clone()), expect(&[4, 5, 6]));
    // Naming another agency in the query only narrows inside the scope.
    assert_eq!(
        ids(
            &store,
            field("agency", Condition::Exact("quan-1".into())),
            quan_3.clone()
        ),
        expect(&[])
    );
    assert_eq!(
        ids(
            &store,
            field("source.ip", Condition::Exact("10.0.0.5".into())),
            quan_3
        ),
        expect(&[])
    );
    assert_eq!(
        ids(&store, Query::All, AgencyScope::Only(BTreeSet::new())),
        expect(&[])
    );
    // Events without agency: only for the whole-city scope.
    assert!(!ids(&store, Query::All, AgencyScope::agency("quan-1")).contains(&id(8)));
    assert!(ids(&store, Query::All, AgencyScope::All).contains(&id(8)));
    let request = AggregationRequest {
        query: Query::All,
        time: TimeRange::everything(),
        scope: AgencyScope::agency("so-y-te"),
    };
    assert_eq!(store.count(&request).unwrap_or_default(), 1);
    let terms = store
        .count_by(&request, "agency", 10)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(terms.buckets.len(), 1);
    assert_eq!(terms.buckets[0].value, "so-y-te");
}

#[test]
fn pages_neither_skip_nor_repeat_across_equal_timestamps() {
    let events: Vec<_> = (0..25)
        .map(|n| event(100 + n, Some("quan-5"), 30, serde_json::json!({})))
        .collect();
    let (_dir, store) = store_with(&events);
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let mut request =
            SearchRequest::new(Query::All, TimeRange::everything(), AgencyScope::All, 10);
        request.order = order;
        let mut seen = Vec::new();
        loop {
            let page = store
                .search(&request)
                .unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(page.total, 25);
            seen.extend(page.events.iter().map(|event| event.id.clone()));
            match page.next {
                Some(next) => request.after = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<String> = (0..25).map(|n| id(100 + n)).collect();
        if order == Order::NewestFirst {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}");
    }
}

/// An event stored that cannot be read back (here: nested deeper than serde_json reads, as
/// versions without a depth limit could store) is left out of its page and reported, and the
/// pages around it neither fail nor skip nor repeat anything.
#[test]
fn an_unreadable_stored_event_is_reported_and_paging_goes_on() {
    // A second apart, so that the order is the index order.
    let mut events: Vec<_> = (0..25)
        .map(|n| {
            event(
                200 + n,
                Some("quan-5"),
                30 + n as i64,
                serde_json::json!({}),
            )
        })
        .collect();
    let mut deep = serde_json::json!(1);
    for _ in 0..130 {
        deep = serde_json::json!([deep]);
    }
    // Two unreadable events, each the last match of a first page of 10 in one order (rank 9
    // oldest first, rank 9 newest first), so the next page's cursor comes from a match that
    // was not read; one of them has an id that is not 32 hex digits (its sort key is a hash).
    events[9].fields.insert("deep".into(), deep.clone());
    events[9].id = "not-hex-9".to_owned();
    events[15].fields.insert("deep".into(), deep);
    let (_dir, store) = store_with(&events);
    for order in [Order::NewestFirst, Order::OldestFirst] {
        let mut request =
            SearchRequest::new(Query::All, TimeRange::everything(), AgencyScope::All, 10);
        request.order = order;
        let (mut seen, mut unreadable, mut pages) = (Vec::new(), Vec::new(), 0);
        loop {
            let page = store
                .search(&request)
                .unwrap_or_else(|error| panic!("{error}"));
            pages += 1;
            assert_eq!(page.total, 25);
            seen.extend(page.events.iter().map(|event| event.id.clone()));
            unreadable.extend(page.unreadable);
            match page.next {
                Some(next) => request.after = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<String> = (0..25)
            .filter(|n| *n != 9 && *n != 15)
            .map(|n| id(200 + n))
            .collect();
        if order == Order::NewestFirst {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}");
        assert_eq!(pages, 3, "{order:?}");
        assert_eq!(unreadable.len(), 2, "{unreadable:?}");
        assert!(
            unreadable
                .iter()
                .all(|problem| problem.contains("recursion limit")),
            "{unreadable:?}"
        );
    }
}

#[test]
fn time_range_is_half_open() {
    let (_dir, store) = store_with(&city_events());
    let time = TimeRange::new(at(120), at(180)).unwrap_or_else(|error| panic!("{error}"));
    let page = store
        .search(&SearchRequest::new(Query::All, time, AgencyScope::All, 100))
        .unwrap_or_else(|error| panic!("{error}"));
    let found: BTreeSet<String> = page.events.into_iter().map(|event| event.id).collect();
    assert_eq!(found, expect(&[2, 3]));
}

#[test]
fn histogram_and_count_by() {
    let (_dir, store) = store_with(&city_events());
    let request = AggregationRequest {
        query: Query::All,
        time: TimeRange::everything(),
        scope: AgencyScope::All,
    };
    let day = Interval::parse("1d").unwrap_or_else(|error| panic!("{error}"));
    let buckets = store
        .histogram(&request, day)
        .unwrap_or_else(|error| panic!("{error}"));
    let counts: Vec<(String, u64)> = buckets
        .iter()
        .map(|bucket| (bucket.start.to_rfc3339(), bucket.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("2026-11-20T00:00:00+00:00".to_owned(), 4),
            ("2026-11-21T00:00:00+00:00".to_owned(), 4),
            ("2026-11-22T00:00:00+00:00".to_owned(), 4)
        ]
    );
    let ips = store
        .count_by(&request, "source.ip", 2)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ips.buckets[0].value, "10.0.0.5");
    assert_eq!(ips.buckets[0].count, 3);
    assert_eq!(ips.buckets.len(), 2);
    assert_eq!(ips.other, 9 - 3 - ips.buckets[1].count);
    assert_eq!(ips.missing, 12 - 9);
    let ports = store
        .count_by(&request, "destination.port", 5)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ports.buckets[0].value, "443");
    assert_eq!(ports.buckets[0].count, 2);
    let tags = store
        .count_by(&request, "fields.tags", 5)
        .unwrap_or_else(|error| panic!("{error}"));
    let values: Vec<&str> = tags
        .buckets
        .iter()
        .map(|term| term.value.as_str())
        .collect();
    assert_eq!(values, ["thu duc", "vpn"]);
    assert_eq!(tags.missing, 11);
    assert!(store.count_by(&request, "message", 5).is_err());
}

#[test]
fn the_same_event_stored_twice_is_kept_once() {
    let events = city_events();
    let (_dir, store) = store_with(&events);
    store.add(&events).unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    let request = AggregationRequest {
        query: Query::All,
        time: TimeRange::everything(),
        scope: AgencyScope::All,
    };
    assert_eq!(store.count(&request).unwrap_or_default(), 12);
}

#[test]
fn reopening_finds_every_committed_event_and_no_uncommitted_one() {
    let events = city_events();
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    {
        let store = TantivyStore::open(dir.path(), TantivyConfig::default())
            .unwrap_or_else(|error| panic!("{error}"));
        store
            .add(&events[..8])
            .unwrap_or_else(|error| panic!("{error}"));
        store.commit().unwrap_or_else(|error| panic!("{error}"));
        // Five day indexes and four writers: one was committed early to make room.
        assert_eq!(
            store
                .stats()
                .committed
                .load(std::sync::atomic::Ordering::Relaxed),
            8
        );
        store
            .add(&events[8..])
            .unwrap_or_else(|error| panic!("{error}"));
        // Dropped without commit: what a crash before the next commit leaves.
    }
    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        ids(&store, Query::All, AgencyScope::All),
        expect(&[1, 2, 3, 4, 5, 6, 7, 8])
    );
}

#[test]
fn retention_drops_exactly_the_expired_days() {
    let (dir, store) = store_with(&city_events());
    // Added to days that are about to expire and not committed: dropped with them, counted.
    let mut late: Vec<_> = city_events()
        .into_iter()
        .filter(|event| event.agency.as_deref() == Some("quan-3"))
        .collect();
    for (n, event) in late.iter_mut().enumerate() {
        event.id = id(900 + n as u64);
    }
    assert!(!late.is_empty());
    store.add(&late).unwrap_or_else(|error| panic!("{error}"));
    let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default();
    let policy = RetentionPolicy {
        default_days: Some(2),
        agencies: [("quan-3".to_owned(), 1)].into_iter().collect(),
    };
    let report = store
        .apply_retention(&policy, today)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(report.uncommitted_dropped, late.len() as u64);
    let day = |offset: i64| today - TimeDelta::days(offset);
    assert_eq!(
        report.dropped,
        [
            (Some("quan-1".to_owned()), day(2)),
            (Some("quan-3".to_owned()), day(2)),
            (Some("quan-3".to_owned()), day(1)),
        ]
    );
    // Kept: quan-1's last two days, events without agency from yesterday, so-y-te today.
    assert_eq!(
        ids(&store, Query::All, AgencyScope::All),
        expect(&[7, 8, 9, 10, 11, 12])
    );
    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        ids(&store, Query::All, AgencyScope::All),
        expect(&[7, 8, 9, 10, 11, 12])
    );
}

#[test]
fn commits_happen_by_size_without_being_asked() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        commit_events: 5,
        ..TantivyConfig::default()
    };
    let store = TantivyStore::open(dir.path(), config).unwrap_or_else(|error| panic!("{error}"));
    let events: Vec<_> = (0..12)
        .map(|n| event(n, Some("quan-7"), n as i64, serde_json::json!({})))
        .collect();
    for chunk in events.chunks(3) {
        store.add(chunk).unwrap_or_else(|error| panic!("{error}"));
    }
    // 12 added in threes: commits after 6 and 12.
    let committed = store
        .stats()
        .committed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(committed, 12);
}

#[test]
fn writers_beyond_the_limit_are_committed_and_closed() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        max_open_writers: 2,
        ..TantivyConfig::default()
    };
    let store = TantivyStore::open(dir.path(), config).unwrap_or_else(|error| panic!("{error}"));
    let events: Vec<_> = (0..6)
        .map(|n| {
            event(
                n,
                Some(["a", "b", "c"][n as usize % 3]),
                n as i64 * 86_400,
                serde_json::json!({}),
            )
        })
        .collect();
    store.add(&events).unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(ids(&store, Query::All, AgencyScope::All).len(), 6);
}

/// A batch whose events interleave five days, with two writers open at most, is written one
/// day after another: each day's writer opens once and is closed once with all of its events
/// (three days closed whole during the add), instead of a close and reopen per event (eight).
#[test]
fn a_batch_over_many_days_opens_each_days_writer_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        max_open_writers: 2,
        ..TantivyConfig::default()
    };
    let store = TantivyStore::open(dir.path(), config).unwrap_or_else(|error| panic!("{error}"));
    let events: Vec<_> = (0..10)
        .map(|n| {
            event(
                n,
                Some("quan-1"),
                (n % 5) as i64 * 86_400,
                serde_json::json!({}),
            )
        })
        .collect();
    store.add(&events).unwrap_or_else(|error| panic!("{error}"));
    let committed_while_adding = store
        .stats()
        .committed
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(committed_while_adding, 6);
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        ids(&store, Query::All, AgencyScope::All),
        expect(&(0..10).collect::<Vec<_>>())
    );
}

/// One agency keeps adding and committing while other agencies' days force its writer to be
/// closed again and again (two writers open at most). Every event whose `add` and `commit`
/// returned must be stored: an add slipping in between the eviction's commit and its close went
/// into a writer dropped without a commit, acknowledged and lost; and an add reopening the day
/// before the old writer had let go of its lock file failed (security review, finding 1).
#[test]
fn adds_racing_a_writer_eviction_are_never_lost() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        max_open_writers: 2,
        ..TantivyConfig::default()
    };
    let store = TantivyStore::open(dir.path(), config).unwrap_or_else(|error| panic!("{error}"));
    let errors = std::sync::Mutex::new(Vec::new());
    let acknowledged = std::sync::Mutex::new(BTreeSet::new());
    // Adds and commits one event; remembers its id only when both said it is stored.
    let store_one = |event: citysoc_collector::Event| {
        let stored = store
            .add(std::slice::from_ref(&event))
            .and_then(|()| store.commit());
        match stored {
            Ok(_) => acknowledged
                .lock()
                .map(|mut ids| ids.insert(event.id))
                .is_ok(),
            Err(error) => errors
                .lock()
                .map(|mut all| all.push(error.to_string()))
                .is_ok(),
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for n in 0..150 {
                store_one(event(n, Some("steady"), 0, serde_json::json!({})));
            }
        });
        scope.spawn(|| {
            for n in 0..60 {
                // Three agencies on ten days: nearly every event needs a writer that is not
                // open, so the steady agency's writer is closed again and again.
                let agency = ["churn-a", "churn-b", "churn-c"][n as usize % 3];
                let day = (n % 10) as i64 * 86_400;
                store_one(event(100_000 + n, Some(agency), day, serde_json::json!({})));
            }
        });
    });
    let acknowledged = acknowledged.into_inner().unwrap_or_default();
    let stored: BTreeSet<String> = store
        .search(&SearchRequest::new(
            Query::All,
            TimeRange::everything(),
            AgencyScope::All,
            1000,
        ))
        .unwrap_or_else(|error| panic!("{error}"))
        .events
        .into_iter()
        .map(|event| event.id)
        .collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let errors = errors.into_inner().unwrap_or_default();
    assert!(
        errors.is_empty(),
        "{} adds or commits failed, the first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(stored.len(), 210);
}

fn count_all(store: &TantivyStore) -> u64 {
    let request = AggregationRequest {
        query: Query::All,
        time: TimeRange::everything(),
        scope: AgencyScope::All,
    };
    store
        .count(&request)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// An event whose id says which copy it is in its message, so a test can tell which one the
/// store kept.
fn copy_of(n: u64, copy: &str) -> citysoc_collector::Event {
    event(
        n,
        Some("quan-1"),
        n as i64,
        serde_json::json!({"message": format!("copy {copy}")}),
    )
}

/// Dedup skips the delete for ids it knows are new (`IdFilter`): every way an id can come
/// back — in the same batch, after a commit, after the writer was closed, after a restart,
/// after the remembered ids were forgotten at a commit — must still replace, never add.
#[test]
fn dedup_replaces_every_repeat_across_commits_evictions_and_restarts() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        // Forget the remembered ids at nearly every commit: the lookup in the segments has
        // to find them then.
        dedup_remembered_ids: 2,
        max_open_writers: 1,
        ..TantivyConfig::default()
    };
    let open =
        || TantivyStore::open(dir.path(), config.clone()).unwrap_or_else(|error| panic!("{error}"));
    let add = |store: &TantivyStore, events: &[citysoc_collector::Event]| {
        store.add(events).unwrap_or_else(|error| panic!("{error}"));
    };
    let commit = |store: &TantivyStore| {
        store.commit().unwrap_or_else(|error| panic!("{error}"));
    };
    {
        let store = open();
        // Repeats within one batch and across uncommitted batches.
        add(&store, &[copy_of(1, "a"), copy_of(2, "a"), copy_of(1, "b")]);
        add(&store, &[copy_of(2, "b"), copy_of(3, "a")]);
        assert_eq!(count_all(&store), 0);
        commit(&store);
        assert_eq!(count_all(&store), 3);
        // After a commit that forgot the remembered ids (more than 2).
        add(&store, &[copy_of(1, "c"), copy_of(4, "a")]);
        commit(&store);
        assert_eq!(count_all(&store), 4);
        // After the writer was closed to open another day's.
        add(
            &store,
            &[event(90, Some("quan-1"), 86_400 * 3, serde_json::json!({}))],
        );
        add(&store, &[copy_of(3, "b")]);
        commit(&store);
        assert_eq!(count_all(&store), 5);
        // Uncommitted at the "crash": neither copy stays.
        add(&store, &[copy_of(5, "a"), copy_of(2, "c")]);
    }
    {
        let store = open();
        assert_eq!(count_all(&store), 5);
        // After a restart: committed ids are replaced, the lost one is new.
        add(&store, &[copy_of(1, "d"), copy_of(5, "b"), copy_of(6, "a")]);
        commit(&store);
        assert_eq!(count_all(&store), 7);
        store.close().unwrap_or_else(|error| panic!("{error}"));
    }
    let store = open();
    assert_eq!(count_all(&store), 7);
    let kept = |n: u64| {
        let query = field("id", Condition::Exact(id(n)));
        let request = SearchRequest::new(query, TimeRange::everything(), AgencyScope::All, 10);
        let page = store
            .search(&request)
            .unwrap_or_else(|error| panic!("{error}"));
        page.events
            .into_iter()
            .map(|event| event.core.message.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    // The last copy added wins.
    assert_eq!(kept(1), ["copy d"]);
    assert_eq!(kept(2), ["copy b"]);
    assert_eq!(kept(3), ["copy b"]);
    assert_eq!(kept(4), ["copy a"]);
    assert_eq!(kept(5), ["copy b"]);
    assert_eq!(kept(6), ["copy a"]);
}

#[test]
fn without_dedup_repeats_are_all_kept() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = TantivyConfig {
        dedup: false,
        ..TantivyConfig::default()
    };
    let store = TantivyStore::open(dir.path(), config).unwrap_or_else(|error| panic!("{error}"));
    store
        .add(&[copy_of(1, "a"), copy_of(1, "b")])
        .unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(count_all(&store), 2);
}

/// Counting by an original field reads postings (no fast column): replaced events count once,
/// a value repeated within one event counts once (as in ClickHouse), events without the path
/// are missing.
#[test]
fn count_by_original_fields_counts_live_events_once() {
    let tagged = |n: u64, tags: serde_json::Value| {
        event(
            n,
            Some("quan-1"),
            n as i64,
            serde_json::json!({"fields": {"tags": tags, "other": "x"}}),
        )
    };
    let (_dir, store) = store_with(&[
        tagged(1, serde_json::json!(["vpn", "vpn", "dns"])),
        tagged(2, serde_json::json!(["vpn"])),
        tagged(3, serde_json::json!("dns")),
        event(4, Some("quan-1"), 4, serde_json::json!({})),
    ]);
    // Event 2 again with another tag: its old value must not count.
    store
        .add(&[tagged(2, serde_json::json!(["ssh"]))])
        .unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    let request = AggregationRequest {
        query: Query::All,
        time: TimeRange::everything(),
        scope: AgencyScope::All,
    };
    let terms = store
        .count_by(&request, "fields.tags", 10)
        .unwrap_or_else(|error| panic!("{error}"));
    let counts: Vec<(&str, u64)> = terms
        .buckets
        .iter()
        .map(|term| (term.value.as_str(), term.count))
        .collect();
    assert_eq!(counts, [("dns", 2), ("ssh", 1), ("vpn", 1)]);
    assert_eq!(terms.missing, 1);
    assert_eq!(terms.other, 0);
    // A query narrows the counted events; a path no event has is all missing.
    let narrowed = AggregationRequest {
        query: field("id", Condition::Exact(id(1))),
        ..request.clone()
    };
    let terms = store
        .count_by(&narrowed, "fields.tags", 1)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(terms.buckets.len(), 1);
    assert_eq!(terms.other, 1);
    let terms = store
        .count_by(&request, "fields.nothing", 10)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(terms.buckets.is_empty());
    assert_eq!(terms.missing, 4);
}

/// `id` has no fast column (schema version 3): `_exists_:id`, lookups and count-by still
/// answer what they answered from the column.
#[test]
fn id_without_a_fast_column_still_exists_matches_and_counts() {
    let events = city_events();
    let (_dir, store) = store_with(&events);
    let all: BTreeSet<String> = events.iter().map(|event| event.id.clone()).collect();
    assert_eq!(
        ids(&store, field("id", Condition::Exists), AgencyScope::All),
        all
    );
    assert_eq!(
        ids(
            &store,
            field("id", Condition::Exact(id(3))),
            AgencyScope::All
        ),
        expect(&[3])
    );
    let request = AggregationRequest {
        query: field(
            "timestamp",
            Condition::TimeRange(Range {
                lower: Bound::Included(at(86_400)),
                upper: Bound::Excluded(at(2 * 86_400)),
            }),
        ),
        time: TimeRange::everything(),
        scope: AgencyScope::All,
    };
    let counted = store
        .count_by(&request, "id", 10)
        .unwrap_or_else(|error| panic!("{error}"));
    let values: BTreeSet<String> = counted
        .buckets
        .iter()
        .map(|term| term.value.clone())
        .collect();
    assert_eq!(values, expect(&[5, 6, 7, 8]));
    assert!(counted.buckets.iter().all(|term| term.count == 1));
    assert_eq!((counted.other, counted.missing), (0, 0));
}

/// Whether `glob` (`*`, `?`, other characters literal) matches all of `token`.
fn glob_matches(glob: &[char], token: &[char]) -> bool {
    match glob.split_first() {
        None => token.is_empty(),
        Some(('*', rest)) => (0..=token.len()).any(|skip| glob_matches(rest, &token[skip..])),
        Some((c, rest)) => token
            .split_first()
            .is_some_and(|(t, tail)| (*c == '?' || c == t) && glob_matches(rest, tail)),
    }
}

/// `message:…` must mean the message's own tokens, whether the store indexed the message on
/// its own or as a span of `raw`'s tokens (schema version 4): a differential test against the
/// tokens of each message, with messages inside raw at every kind of place, messages that cut a
/// token of raw (so are indexed on their own), words that raw has only outside the message,
/// and phrases that cross the message's edge.
#[test]
fn message_queries_match_the_message_tokens_whether_or_not_it_is_inside_raw() {
    let cases: &[(&str, Option<&str>)] = &[
        (
            "<38>Nov 20 sshd[1]: Failed password for root from 10.0.0.5",
            Some("Failed password for root from 10.0.0.5"),
        ),
        (
            "<38>Nov 20 sshd[2]: Accepted password for root",
            Some("password for"),
        ),
        ("Failed password for admin", Some("ailed password")),
        ("<13>event 4", Some("Thủ Đức password failed")),
        ("password: hunter2 login ok", Some("login ok")),
        ("x root failed password y", Some("failed password y")),
        ("<1>Đăng nhập thất bại tại Thủ Đức", Some("Thủ Đức")),
        ("<1>no message here, root password", None),
        ("root login failed", Some("root login failed")),
        ("prefix rootlogin failed", Some("login failed")),
        ("a \u{301}x password", Some("\u{301}x password")),
        ("password password root", Some("password root")),
        ("<5>empty message", Some("")),
        ("<5> , ", Some(" , ")),
    ];
    let events: Vec<citysoc_collector::Event> = cases
        .iter()
        .enumerate()
        .map(|(n, (raw, message))| {
            let mut extra = serde_json::json!({ "raw": raw });
            if let Some(message) = message {
                extra["message"] = serde_json::json!(message);
            }
            event(n as u64 + 1, Some("quan-1"), n as i64, extra)
        })
        .collect();
    let (_dir, store) = store_with(&events);
    let queries = [
        "message:password",
        "message:PASSWORD",
        "message:root",
        "message:failed",
        "message:ailed",
        "message:login",
        "message:x",
        "message:thu",
        "message:\"thu duc\"",
        "message:\"failed password\"",
        "message:\"root failed\"",
        "message:\"password for\"",
        "message:\"for root\"",
        "message:\"password root\"",
        "message:\"password password\"",
        "message:\"10.0.0.5\"",
        "message:\"password y\"",
        "message:\"login ok\"",
        "message:pass*",
        "message:*word",
        "message:r?ot",
        "message:*o*",
        "message:hunter*",
        "message:sshd",
        "message:38",
        "message:dang",
        "message:empty",
    ];
    for text in queries {
        let query = citysoc_index::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        let Query::Match(FieldMatch { condition, .. }) = &query else {
            panic!("{text}: {query:?}");
        };
        let expected: BTreeSet<String> = events
            .iter()
            .filter(|event| {
                let Some(message) = &event.core.message else {
                    return false;
                };
                let tokens = citysoc_index::text::tokens(message);
                match condition {
                    Condition::Phrase(phrase) => {
                        !phrase.is_empty()
                            && tokens
                                .windows(phrase.len())
                                .any(|window| window == &phrase[..])
                    }
                    Condition::Wildcard(glob) => {
                        let glob: Vec<char> = glob.chars().collect();
                        tokens
                            .iter()
                            .any(|token| glob_matches(&glob, &token.chars().collect::<Vec<char>>()))
                    }
                    other => panic!("{text}: {other:?}"),
                }
            })
            .map(|event| event.id.clone())
            .collect();
        assert_eq!(
            ids(&store, query.clone(), AgencyScope::All),
            expected,
            "{text}"
        );
    }
    // Free text still finds words of the message (through `raw` when it is inside it), and
    // every message exists; the stored events are unchanged.
    assert_eq!(
        ids(&store, words(&["thu", "duc"]), AgencyScope::All),
        expect(&[4, 7])
    );
    let with_message: Vec<u64> = (1..=cases.len() as u64)
        .filter(|n| cases[*n as usize - 1].1.is_some())
        .collect();
    assert_eq!(
        ids(
            &store,
            field("message", Condition::Exists),
            AgencyScope::All
        ),
        expect(&with_message)
    );
    // Every event has a raw record (no `present` term is kept for it since schema 4).
    assert_eq!(
        ids(&store, field("raw", Condition::Exists), AgencyScope::All),
        expect(&(1..=cases.len() as u64).collect::<Vec<u64>>())
    );
    let stored = all_by_id(&store);
    assert_eq!(stored, events);
}

/// The store hands tantivy its deletes and adds in batches; repeats spread over many batches
/// of one `add` (and over the commit) still leave only the last copy of each event.
#[test]
fn dedup_holds_across_the_batches_handed_to_tantivy() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let rounds = ["a", "b", "c"];
    let events: Vec<citysoc_collector::Event> = rounds
        .iter()
        .flat_map(|round| (1..=300).map(move |n| copy_of(n, round)))
        .collect();
    store.add(&events).unwrap_or_else(|error| panic!("{error}"));
    store
        .add(&events[..150])
        .unwrap_or_else(|error| panic!("{error}"));
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(count_all(&store), 300);
    let copies = |copy: &str| {
        let query = field("message", Condition::Phrase(vec![copy.to_owned()]));
        ids(&store, query, AgencyScope::All).len()
    };
    // The first 150 came back once more as copy "a"; the rest kept copy "c".
    assert_eq!(copies("a"), 150);
    assert_eq!(copies("b"), 0);
    assert_eq!(copies("c"), 150);
    store.close().unwrap_or_else(|error| panic!("{error}"));
    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(count_all(&store), 300);
}

/// Stored events come back equal with every kind of value an event holds (escapes, control
/// characters, Vietnamese, floats, big and negative numbers, nested original fields, bytes
/// that are not UTF-8), whatever writes the stored form.
#[test]
fn stored_events_round_trip_every_kind_of_value() {
    use citysoc_collector::{parse_record, InputFormat, ParseContext};
    let records: [&[u8]; 6] = [
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event with \"quotes\", a tab\t and \\ backslash",
        "<13>Nov 22 08:00:00 cam-01 nvr: người dùng admin đăng nhập từ Thủ Đức \u{1}\u{1f}".as_bytes(),
        b"CEF:0|Fortinet|FortiGate|7.0|13|traffic|3|src=10.0.0.1 dst=8.8.8.8 spt=51234 msg=a\\=b",
        br#"{"EventID": 1, "Image": "C:\\Windows\\cmd.exe", "ratio": 0.25, "big": 18446744073709551615, "neg": -3, "nested": {"a": [1, null, true]}}"#,
        b"\xff\xfe not utf-8 \x00 at all",
    ];
    let mut context = ParseContext::new("tcp");
    context.received_at = at(0);
    let mut events: Vec<citysoc_collector::Event> = (1..)
        .zip(records)
        .map(|(sequence, record)| {
            let mut event = parse_record(record, InputFormat::Auto, &context, sequence);
            event.timestamp = at(sequence as i64);
            event
        })
        .collect();
    let (_dir, store) = store_with(&events);
    let stored = all_by_id(&store);
    events.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(stored, events);
}

/// An agency whose directory name would pass the file system's limit is refused with a
/// message that says so, before anything is created.
#[test]
fn an_agency_too_long_for_a_directory_name_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let store = TantivyStore::open(dir.path(), TantivyConfig::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let agency = "Ủy ban nhân dân Phường Bến Thành Quận 1 Thành phố Hồ Chí Minh - Phòng Văn hóa";
    let error = store
        .add(&[event(1, Some(agency), 0, serde_json::json!({}))])
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(error.contains("too long to store"), "{error}");
    assert!(citysoc_index::tantivy_store::agency_name_problem("quan-1").is_none());
}

fn count_in(store: &TantivyStore, time: TimeRange) -> u64 {
    store
        .count(&AggregationRequest {
            query: Query::All,
            time,
            scope: AgencyScope::All,
        })
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Twenty days of events stay searchable while few day indexes are open: a search opens only
/// the days whose committed time bounds overlap it (read without opening the others), idle
/// days are closed past the limit, and a day with uncommitted events is never closed.
#[test]
fn searches_open_only_overlapping_days_and_idle_days_close_past_the_limit() {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let config = || TantivyConfig {
        max_open_writers: 2,
        max_open_day_indexes: 3,
        ..TantivyConfig::default()
    };
    let day = |n: u64| (n * 86_400) as i64;
    {
        let store =
            TantivyStore::open(dir.path(), config()).unwrap_or_else(|error| panic!("{error}"));
        for n in 0..20 {
            let events = [
                event(n * 10, Some("quan-1"), day(n) + 60, serde_json::json!({})),
                event(
                    n * 10 + 1,
                    Some("quan-1"),
                    day(n) + 120,
                    serde_json::json!({}),
                ),
            ];
            store
                .add_durably(&events)
                .unwrap_or_else(|error| panic!("{error}"));
        }
        assert!(
            store.open_day_indexes() <= 3,
            "{}",
            store.open_day_indexes()
        );
        store.close().unwrap_or_else(|error| panic!("{error}"));
    }

    // A new server process: an hour of day 5 opens day 5 only.
    let store = TantivyStore::open(dir.path(), config()).unwrap_or_else(|error| panic!("{error}"));
    let hour = TimeRange {
        from: at(day(5)),
        to: at(day(5) + 3_600),
    };
    assert_eq!(count_in(&store, hour), 2);
    assert_eq!(store.open_day_indexes(), 1);

    // Uncommitted events of day 0 keep its day index open through many other days opening.
    store
        .add(&[event(
            999,
            Some("quan-1"),
            day(0) + 30,
            serde_json::json!({}),
        )])
        .unwrap_or_else(|error| panic!("{error}"));
    for n in 1..20 {
        let that_day = TimeRange {
            from: at(day(n)),
            to: at(day(n + 1)),
        };
        assert_eq!(count_in(&store, that_day), 2, "day {n}");
        assert!(
            store.open_day_indexes() <= 3,
            "{}",
            store.open_day_indexes()
        );
    }
    store.commit().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(count_all(&store), 41);
    // Everything at once opens every day for that search; the next day opened closes the
    // idle ones again.
    let new_day = event(5_000, Some("quan-2"), day(30), serde_json::json!({}));
    store
        .add_durably(&[new_day])
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        store.open_day_indexes() <= 3,
        "{}",
        store.open_day_indexes()
    );
    assert_eq!(count_all(&store), 42);
}

/// An event whose `fields` nest as deep as the collector lets them (`fields::MAX_DEPTH`) is
/// stored and read back by a search: the limit leaves room for the levels storing adds.
#[test]
fn an_event_nested_to_the_fields_limit_is_stored_and_read_back() {
    let depth = citysoc_collector::fields::MAX_DEPTH;
    let nested = (0..depth).fold(serde_json::json!("bottom"), |inner, _| {
        serde_json::json!([inner])
    });
    let deep = event(77, Some("quan-1"), 60, serde_json::json!({}));
    let mut deep = deep;
    deep.fields.insert("deep".into(), nested);
    assert_eq!(deep.fields.depth(), depth);
    let (_dir, store) = store_with(std::slice::from_ref(&deep));
    assert_eq!(all_by_id(&store), vec![deep]);
}
