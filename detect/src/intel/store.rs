//! The loaded lists and their reload: files in, an [`IntelSet`] out, swapped whole.
//!
//! A source is a directory (every `*.csv` and `*.json` directly in it, in name order; hidden
//! files and other extensions are ignored, so a README can sit next to the lists) or a single
//! list file. [`IntelStore::reload_if_changed`] compares each file's size and modification time
//! with the last load (a directory listing and one `stat` per file: cheap enough to call every
//! few seconds) and rebuilds everything when anything differs. Matching never waits for a
//! reload: a new set is built aside and swapped in; matchers pick it up on their next event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use serde::Serialize;

use crate::error::DetectError;
use crate::intel::indicator::IndicatorType;
use crate::intel::load::{list_name, parse_list, LoadOptions, LoadProblem, ParsedList, SkipCounts};
use crate::intel::set::IntelSet;

/// What a file looked like when it was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// List files that appeared.
    pub added: Vec<PathBuf>,
    /// List files that went away.
    pub removed: Vec<PathBuf>,
    /// List files whose size or modification time changed.
    pub changed: Vec<PathBuf>,
    /// Indicators loaded now.
    pub indicators: usize,
    /// Rows and files that could not be loaded now.
    pub problems: Vec<LoadProblem>,
    /// The generation of the new set (1 for the first load).
    pub generation: u64,
}

/// Counters of the store, for the health page and `citysoc intel` commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntelStats {
    /// How many loads have been swapped in (1 after the first).
    pub generation: u64,
    /// Lists loaded.
    pub lists: usize,
    /// Indicators loaded.
    pub indicators: usize,
    /// Indicators loaded per type.
    pub by_type: BTreeMap<IndicatorType, usize>,
    /// Rows and files that could not be loaded.
    pub problems: usize,
    /// What the load left out on purpose (expired, not `to_ids`, unsupported, duplicates).
    pub skipped: SkipCounts,
    /// Reloads after the first load.
    pub reloads: u64,
    /// Alerts raised (one per list and indicator per event).
    pub matches: u64,
}

/// Indicator lists from files, reloadable while matching goes on.
#[derive(Debug)]
pub struct IntelStore {
    sources: Vec<PathBuf>,
    options: LoadOptions,
    current: RwLock<Arc<IntelSet>>,
    generation: AtomicU64,
    /// The files of the last load; the lock also makes reloads one at a time.
    stamps: Mutex<Vec<FileStamp>>,
    reloads: AtomicU64,
    matches: AtomicU64,
}

impl IntelStore {
    /// Loads every list of `sources` (directories or files). Fails only when a source cannot be
    /// read at all; bad rows and unreadable list files are [`IntelSet::problems`].
    pub fn open(
        sources: impl IntoIterator<Item = PathBuf>,
        options: LoadOptions,
    ) -> Result<Self, DetectError> {
        let sources: Vec<PathBuf> = sources.into_iter().collect();
        let stamps = list_files(&sources)?;
        let set = load_set(&stamps, &options);
        Ok(IntelStore {
            sources,
            options,
            current: RwLock::new(Arc::new(set)),
            generation: AtomicU64::new(1),
            stamps: Mutex::new(stamps),
            reloads: AtomicU64::new(0),
            matches: AtomicU64::new(0),
        })
    }

    /// The set to match against now. Keep it for a batch of events; a reload does not change it.
    pub fn current(&self) -> Arc<IntelSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Grows by one with every reload swapped in; a matcher compares it to know when to pick
    /// up [`IntelStore::current`] again.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Reloads when a list file appeared, went away, or changed size or modification time.
    /// `Ok(None)` when nothing changed. On an error (a source directory is gone) the current
    /// set stays.
    pub fn reload_if_changed(&self) -> Result<Option<ReloadReport>, DetectError> {
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        let now = list_files(&self.sources)?;
        if now == *stamps {
            return Ok(None);
        }
        Ok(Some(self.swap(&mut stamps, now)))
    }

    /// Reloads every list now, changed or not.
    pub fn reload(&self) -> Result<ReloadReport, DetectError> {
        let mut stamps = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        let now = list_files(&self.sources)?;
        Ok(self.swap(&mut stamps, now))
    }

    fn swap(&self, stamps: &mut Vec<FileStamp>, now: Vec<FileStamp>) -> ReloadReport {
        let set = load_set(&now, &self.options);
        let mut report = compare(stamps, &now);
        report.indicators = set.indicators().len();
        report.problems = set.problems().to_vec();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        report.generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.reloads.fetch_add(1, Ordering::Relaxed);
        *stamps = now;
        report
    }

    /// Counts alerts raised (matchers call this).
    pub(crate) fn record_matches(&self, count: usize) {
        self.matches.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// The counters.
    pub fn stats(&self) -> IntelStats {
        let set = self.current();
        IntelStats {
            generation: self.generation(),
            lists: set.lists().len(),
            indicators: set.indicators().len(),
            by_type: IndicatorType::ALL
                .iter()
                .map(|indicator_type| (*indicator_type, set.count(*indicator_type)))
                .filter(|(_, count)| *count > 0)
                .collect(),
            problems: set.problems().len(),
            skipped: set.skipped(),
            reloads: self.reloads.load(Ordering::Relaxed),
            matches: self.matches.load(Ordering::Relaxed),
        }
    }

    /// The sources given at open.
    pub fn sources(&self) -> &[PathBuf] {
        &self.sources
    }
}

/// Loads the given files into a new set. A file that cannot be read is a problem of the load.
fn load_set(stamps: &[FileStamp], options: &LoadOptions) -> IntelSet {
    let mut names: BTreeMap<String, PathBuf> = BTreeMap::new();
    let lists = stamps.iter().map(|stamp| {
        let mut list = match std::fs::read(&stamp.path) {
            Ok(bytes) => parse_list(&stamp.path, &String::from_utf8_lossy(&bytes), options),
            Err(error) => ParsedList {
                problems: vec![LoadProblem { path: stamp.path.clone(), location: None, reason: format!("could not read: {error}") }],
                ..ParsedList::default()
            },
        };
        let name = list_name(&stamp.path);
        if let Some(first) = names.get(&name) {
            list.problems.push(LoadProblem {
                path: stamp.path.clone(),
                location: None,
                reason: format!("`{}` already gives the list name `{name}`; this file's indicators join that list", first.display()),
            });
        } else {
            names.insert(name, stamp.path.clone());
        }
        (stamp.path.clone(), list)
    });
    IntelSet::build(lists.collect::<Vec<_>>())
}

/// The list files of the sources, with their stamps, sorted by path.
fn list_files(sources: &[PathBuf]) -> Result<Vec<FileStamp>, DetectError> {
    let mut stamps = Vec::new();
    for source in sources {
        let read_error = |source_error| DetectError::Read {
            path: source.clone(),
            source: source_error,
        };
        let metadata = std::fs::metadata(source).map_err(read_error)?;
        if !metadata.is_dir() {
            stamps.push(stamp(source.clone(), &metadata));
            continue;
        }
        let entries = std::fs::read_dir(source).map_err(read_error)?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_error)?;
            let path = entry.path();
            if !is_list_file(&path) {
                continue;
            }
            // A file removed between the listing and the stat is simply not there.
            if let Ok(metadata) = std::fs::metadata(&path) {
                if metadata.is_file() {
                    files.push(stamp(path, &metadata));
                }
            }
        }
        files.sort_by(|left, right| left.path.cmp(&right.path));
        stamps.extend(files);
    }
    Ok(stamps)
}

fn stamp(path: PathBuf, metadata: &std::fs::Metadata) -> FileStamp {
    FileStamp {
        path,
        len: metadata.len(),
        modified: metadata.modified().ok(),
    }
}

/// `*.csv` and `*.json`, not hidden (editors' swap and backup files start with a dot or end
/// with `~`, and never end in `.csv`).
fn is_list_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_none_or(|name| name.starts_with('.'));
    let extension_ok = path
        .extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| {
            extension.eq_ignore_ascii_case("csv") || extension.eq_ignore_ascii_case("json")
        });
    !hidden && extension_ok
}

fn compare(before: &[FileStamp], after: &[FileStamp]) -> ReloadReport {
    let old: BTreeMap<&Path, &FileStamp> = before
        .iter()
        .map(|stamp| (stamp.path.as_path(), stamp))
        .collect();
    let new: BTreeMap<&Path, &FileStamp> = after
        .iter()
        .map(|stamp| (stamp.path.as_path(), stamp))
        .collect();
    let mut report = ReloadReport::default();
    for (path, stamp) in &new {
        match old.get(path) {
            None => report.added.push(path.to_path_buf()),
            Some(previous) if previous != stamp => report.changed.push(path.to_path_buf()),
            Some(_) => {}
        }
    }
    report.removed = old
        .keys()
        .filter(|path| !new.contains_key(*path))
        .map(|path| path.to_path_buf())
        .collect();
    report
}
