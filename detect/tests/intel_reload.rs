//! Lists reload without a restart: the store notices changed, added and removed files, swaps a
//! new set in, and matchers pick it up on their next event.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use citysoc_collector::{parse_record, Event, InputFormat, ParseContext};
use citysoc_detect::intel::{IntelMatcher, IntelStore, LoadOptions};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "citysoc-intel-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        path
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn event(line: &str) -> Event {
    parse_record(
        line.as_bytes(),
        InputFormat::Auto,
        &ParseContext::new("test"),
        1,
    )
}

fn fortigate_from(address: &str) -> Event {
    event(&format!(
        r#"<189>date=2026-11-22 time=08:02:40 devname="FG" logid="0000000013" type="traffic" subtype="forward" srcip={address} srcport=51234 dstip=10.1.0.5 dstport=22 action="deny""#
    ))
}

#[test]
fn a_changed_list_is_picked_up_without_a_restart() {
    let dir = TempDir::new("reload");
    dir.write("blocklist.csv", "type,value\nip,203.0.113.5\n");
    dir.write("notes.txt", "not a list");
    dir.write(".blocklist.csv.swp", "garbage");
    let store = Arc::new(
        IntelStore::open([dir.path().to_path_buf()], LoadOptions::default())
            .unwrap_or_else(|error| panic!("{error}")),
    );
    let mut matcher = IntelMatcher::new(Arc::clone(&store));
    assert_eq!(store.current().lists().len(), 1);
    assert_eq!(matcher.match_event(&fortigate_from("203.0.113.5")).len(), 1);
    assert!(matcher
        .match_event(&fortigate_from("203.0.113.6"))
        .is_empty());

    // Nothing changed: nothing to do, the set stays the same object.
    let before = store.current();
    assert_eq!(
        store
            .reload_if_changed()
            .unwrap_or_else(|error| panic!("{error}")),
        None
    );
    assert!(Arc::ptr_eq(&before, &store.current()));

    // Change the list (a different size, so the change shows even on coarse mtimes) and add one.
    let changed = dir.write(
        "blocklist.csv",
        "type,value\nip,203.0.113.6\ncidr,198.51.100.0/24\nip,bad\n",
    );
    let added = dir.write("second.csv", "type,value\ndomain,evil.example\n");
    let report = store
        .reload_if_changed()
        .unwrap_or_else(|error| panic!("{error}"))
        .unwrap_or_else(|| panic!("the change was not seen"));
    assert_eq!(report.changed, [changed]);
    assert_eq!(report.added, std::slice::from_ref(&added));
    assert!(report.removed.is_empty());
    assert_eq!(report.indicators, 3);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].location.as_deref(), Some("line 4"));
    assert_eq!(report.generation, 2);

    // The matcher takes the new set on its next event; the old snapshot is untouched.
    assert!(matcher
        .match_event(&fortigate_from("203.0.113.5"))
        .is_empty());
    assert_eq!(matcher.match_event(&fortigate_from("203.0.113.6")).len(), 1);
    assert_eq!(
        matcher.match_event(&fortigate_from("198.51.100.77")).len(),
        1
    );
    assert_eq!(before.indicators().len(), 1);

    std::fs::remove_file(&added).unwrap_or_else(|error| panic!("{error}"));
    let report = store
        .reload_if_changed()
        .unwrap_or_else(|error| panic!("{error}"))
        .unwrap_or_else(|| panic!("removal not seen"));
    assert_eq!(report.removed, [added]);
    assert_eq!(report.indicators, 2);

    let stats = store.stats();
    assert_eq!(
        (
            stats.generation,
            stats.reloads,
            stats.lists,
            stats.indicators,
            stats.problems
        ),
        (3, 2, 1, 2, 1)
    );
    assert_eq!(stats.matches, 3);
    let json = serde_json::to_string(&stats).unwrap_or_default();
    assert!(json.contains("\"by_type\":{\"ip\":1,\"cidr\":1}"), "{json}");
}

#[test]
fn a_vanished_directory_keeps_the_current_set() {
    let dir = TempDir::new("vanish");
    dir.write("list.json", r#"{"Event": {"info": "x", "Attribute": [{"type": "ip-dst", "value": "192.0.2.1", "to_ids": true}]}}"#);
    let store = IntelStore::open([dir.path().to_path_buf()], LoadOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(store.current().indicators().len(), 1);
    let path = dir.path().to_path_buf();
    drop(dir);
    let error = store
        .reload_if_changed()
        .err()
        .unwrap_or_else(|| panic!("no error for a missing directory"));
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert_eq!(store.current().indicators().len(), 1);
    assert_eq!(store.generation(), 1);
}

#[test]
fn a_single_file_source_and_forced_reload() {
    let dir = TempDir::new("file");
    let file = dir.write(
        "one.csv",
        "type,value\nsha256,3F1C2A9E0B5D4E6F7A8B9C0D1E2F3A4B5C6D7E8F9A0B1C2D3E4F5A6B7C8D9E0F\n",
    );
    let store = IntelStore::open([file.clone()], LoadOptions::default())
        .unwrap_or_else(|error| panic!("{error}"));
    let report = store.reload().unwrap_or_else(|error| panic!("{error}"));
    assert!(report.added.is_empty() && report.changed.is_empty() && report.removed.is_empty());
    assert_eq!((report.indicators, report.generation), (1, 2));
    assert!(IntelStore::open([dir.path().join("missing.csv")], LoadOptions::default()).is_err());
}

#[test]
fn reloads_while_other_threads_match() {
    let dir = TempDir::new("threads");
    dir.write("list.csv", "type,value\ncidr,203.0.113.0/24\n");
    let store = Arc::new(
        IntelStore::open([dir.path().to_path_buf()], LoadOptions::default())
            .unwrap_or_else(|error| panic!("{error}")),
    );
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut matcher = IntelMatcher::new(store);
                let event = fortigate_from("203.0.113.9");
                (0..2000)
                    .map(|_| matcher.match_event(&event).len())
                    .sum::<usize>()
            })
        })
        .collect();
    for round in 0..20 {
        dir.write(
            "list.csv",
            &format!(
                "type,value\ncidr,203.0.113.0/24\nip,192.0.2.{round}\n{}",
                "#\n".repeat(round)
            ),
        );
        store.reload().unwrap_or_else(|error| panic!("{error}"));
    }
    for worker in workers {
        let matched = worker.join().unwrap_or_else(|_| panic!("worker panicked"));
        assert_eq!(
            matched, 2000,
            "every event matched whichever set was current"
        );
    }
}
