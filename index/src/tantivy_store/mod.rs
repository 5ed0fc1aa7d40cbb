//! The embedded store: one tantivy index per agency and UTC day under a data directory.
//!
//! Writes go to the day index of each event ([`partition::partition_day`]); commits happen
//! on time or on size ([`TantivyConfig`]) and atomically (tantivy's `meta.json`), so after a
//! crash every committed event is there and nothing half-written is. Searches open only the
//! day indexes of the caller's agencies whose committed time bounds overlap the asked range,
//! run one tantivy query each, and merge by time.

mod collect;
mod dedup;
mod partition;
mod retention;
mod schema;
mod span;
mod tokenizer;
mod translate;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use citysoc_collector::Event;
use tantivy::collector::Count;
use tantivy::indexer::UserOperation;
use tantivy::query::{BooleanQuery, Occur, Query as TantivyQuery};
use tantivy::schema::Value;
use tantivy::{IndexWriter, Searcher, TantivyDocument, Term};

use crate::fields::{self, FieldKind, ORIGINAL_FIELDS_PREFIX};
use crate::query::{Bound, Range};
use crate::request::{
    AgencyScope, AggregationRequest, Cursor, HistogramBucket, Interval, SearchPage, SearchRequest,
    TermCount, Terms, TimeRange,
};
use crate::IndexError;
use collect::{HistogramCollector, SortKey, TermsCollector, TermsSource, TopByTime};
use dedup::IdFilter;
pub use partition::agency_name_problem;
use partition::{partition_day, DayIndex, DaySummary, Writing};
pub use retention::{RetentionPolicy, RetentionReport};
use schema::{id_key, tantivy_name, EventSchema, ID_FIELD};

/// When and how the store writes.
#[derive(Debug, Clone)]
pub struct TantivyConfig {
    /// Commit at least this often while events arrive.
    pub commit_interval: Duration,
    /// Commit after this many uncommitted events.
    pub commit_events: u64,
    /// Indexing memory per open writer, bytes (tantivy needs at least 15 MB per indexing
    /// thread; it is split between them).
    pub writer_memory: usize,
    /// Indexing threads per open writer (each builds its own segments).
    pub writer_threads: usize,
    /// At most this many day indexes are open for writing; the least recently used one is
    /// committed and closed to open another.
    pub max_open_writers: usize,
    /// Day indexes kept open for reading (each maps its segment files); past this many, the
    /// least recently used idle ones are closed. Searches decide which days to open from each
    /// day's committed time bounds, kept for every day without opening it, so a search over
    /// an hour does not open a year of days.
    pub max_open_day_indexes: usize,
    /// Replace an event already stored with the same id (collectors re-send after a lost
    /// acknowledgement; imports get re-run), instead of storing it twice.
    pub dedup: bool,
    /// Dedup remembers the ids added since a writer opened (~16 bytes each) to skip deleting
    /// ids that cannot be stored yet; past this many, the next commit forgets them and looks
    /// ids up in the committed segments instead.
    pub dedup_remembered_ids: usize,
}

impl Default for TantivyConfig {
    fn default() -> Self {
        TantivyConfig {
            commit_interval: Duration::from_secs(5),
            commit_events: 200_000,
            // Two indexing threads (tantivy's indexing thread was the bottleneck: twice the
            // CPU time of the thread building documents), 64 MB each as one had before.
            writer_memory: 128 << 20,
            writer_threads: 2,
            max_open_writers: 4,
            // A few thousand mapped files: far below the kernel's default limit of 65,530
            // maps per process, which a year of days for 100 agencies would pass.
            max_open_day_indexes: 256,
            dedup: true,
            dedup_remembered_ids: 4 << 20,
        }
    }
}

/// Counters of the store since it was opened.
#[derive(Debug, Default)]
pub struct TantivyStats {
    /// Events handed to tantivy.
    pub added: AtomicU64,
    /// Events made durable by a commit.
    pub committed: AtomicU64,
    /// Commits done.
    pub commits: AtomicU64,
    /// Writers taken out of service because tantivy failed while they held uncommitted
    /// events (a commit, or handing documents over, failed: a full or vanished disk). Their
    /// events are not stored. Also the mark [`TantivyStore::commit_since`] compares: a batch
    /// whose events may have been in such a writer learns it from this count moving.
    pub failed_writers: AtomicU64,
    /// Uncommitted events dropped with those writers (the callers that added them were told,
    /// or are told at their commit; senders send them again).
    pub events_dropped_with_failed_writers: AtomicU64,
}

/// Where [`TantivyStore::failed_writers`](TantivyStats::failed_writers) stood before a
/// batch was added; see [`TantivyStore::commit_since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMark(u64);

type PartitionKey = (Option<String>, NaiveDate);

/// The embedded event store.
pub struct TantivyStore {
    root: PathBuf,
    schema: EventSchema,
    config: TantivyConfig,
    partitions: Mutex<HashMap<PartitionKey, Arc<DayIndex>>>,
    /// Committed time bounds of day indexes that are not open (read from their `meta.json`
    /// once, or kept when a day index is closed), so searches can skip days unopened; `None`
    /// when `meta.json` did not say (such a day is opened to find out).
    closed_summaries: Mutex<HashMap<PartitionKey, Option<DaySummary>>>,
    /// Clock of [`DayIndex::last_access`]: which open day index was used least recently.
    access_clock: AtomicU64,
    last_commit: Mutex<Instant>,
    stats: TantivyStats,
}

impl TantivyStore {
    /// Opens (or creates) the store in `root`, removing what a crash may have left half-made
    /// (staging and trash directories; tantivy itself ignores uncommitted segment files).
    pub fn open(root: impl Into<PathBuf>, config: TantivyConfig) -> Result<Self, IndexError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| IndexError::Io {
            path: root.clone(),
            source,
        })?;
        retention::remove_leftovers(&root)?;
        Ok(TantivyStore {
            root,
            schema: EventSchema::new(),
            config,
            partitions: Mutex::new(HashMap::new()),
            closed_summaries: Mutex::new(HashMap::new()),
            access_clock: AtomicU64::new(0),
            last_commit: Mutex::new(Instant::now()),
            stats: TantivyStats::default(),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The counters.
    pub fn stats(&self) -> &TantivyStats {
        &self.stats
    }

    /// Adds events; they become searchable and durable at the next commit, which this call
    /// makes itself when the configured interval or size is reached.
    pub fn add(&self, events: &[Event]) -> Result<(), IndexError> {
        // One day index after another: a batch spread over more days than writers may stay
        // open would otherwise close and reopen writers event by event, a commit each time
        // (an old file imported, or a collector sending days interleaved). The sort is stable,
        // so repeats of one id keep their order.
        fn key(event: &Event) -> (Option<&str>, NaiveDate) {
            (
                event.agency.as_deref(),
                partition_day(event.timestamp, event.received_at),
            )
        }
        let first = events.first().map(key);
        if events.iter().all(|event| Some(key(event)) == first) {
            for event in events {
                self.add_one(event)?;
            }
        } else {
            let mut ordered: Vec<&Event> = events.iter().collect();
            ordered.sort_by(|a, b| key(a).cmp(&key(b)));
            for event in ordered {
                self.add_one(event)?;
            }
        }
        if self.commit_due() {
            self.commit()?;
        }
        Ok(())
    }

    fn add_one(&self, event: &Event) -> Result<(), IndexError> {
        let day = partition_day(event.timestamp, event.received_at);
        let partition = self.partition(event.agency.as_deref(), day, true)?;
        let Some(partition) = partition else {
            return Ok(());
        };
        let document = self
            .schema
            .document(event)
            .map_err(|error| IndexError::CorruptEvent {
                id: event.id.clone(),
                message: error.to_string(),
            })?;
        let tantivy_error = |source| IndexError::Tantivy {
            path: partition.path.clone(),
            source,
        };
        let needs_writer = partition.writing().writer.is_none();
        if needs_writer {
            self.make_room_for_writer()?;
        }
        let mut writing = partition.writing();
        if writing.writer.is_none() {
            // The last writer of this day may still be finishing its merges.
            writing = partition.wait_until_closed(writing);
        }
        if writing.writer.is_none() {
            let threads = self.config.writer_threads.max(1);
            let writer: IndexWriter = partition
                .index
                .writer_with_num_threads(
                    threads,
                    self.config.writer_memory.max(threads * (15 << 20)),
                )
                .map_err(tantivy_error)?;
            writing.ids = if self.config.dedup {
                Some(IdFilter::new(&partition.reader, self.id_field()).map_err(tantivy_error)?)
            } else {
                None
            };
            writing.writer = Some(writer);
        }
        writing.last_used = Instant::now();
        if writing.writer.is_some() {
            let id = crate::text::keyword(&event.id);
            let may_hold = match writing.ids.as_mut() {
                Some(ids) => ids.may_hold(&id).map_err(tantivy_error)?,
                None => false,
            };
            let mut queued = Ok(());
            if may_hold {
                queued = writing.queue(UserOperation::Delete(Term::from_field_text(
                    self.id_field(),
                    &id,
                )));
            }
            if queued.is_ok() {
                queued = writing.queue(UserOperation::Add(document));
            }
            if let Err(source) = queued {
                // Handing documents over fails only when the writer's indexing threads are
                // gone: nothing more it holds can be committed.
                return Err(drop_failed_writer(
                    partition.as_ref(),
                    writing,
                    &self.stats,
                    tantivy_error(source),
                ));
            }
        }
        writing.summary.include(event.timestamp.timestamp_micros());
        writing.pending += 1;
        self.stats.added.fetch_add(1, AtomicOrdering::Relaxed);
        Ok(())
    }

    fn id_field(&self) -> tantivy::schema::Field {
        // `id` is in the catalogue as a keyword, so the schema always has it.
        self.schema.field(ID_FIELD).unwrap_or(self.schema.present)
    }

    /// Commits when the interval or size is reached. `add` does this itself; a long-running
    /// server also calls it from a timer, so events that arrive just before a quiet spell do
    /// not wait for the next one to become searchable and durable.
    pub fn commit_if_due(&self) -> Result<u64, IndexError> {
        if self.commit_due() {
            self.commit()
        } else {
            Ok(0)
        }
    }

    fn commit_due(&self) -> bool {
        // Not under the map's lock: a day's lock can be held while its writer closes.
        let partitions: Vec<Arc<DayIndex>> = self.lock_partitions().values().cloned().collect();
        let pending: u64 = partitions
            .iter()
            .map(|partition| partition.writing().pending)
            .sum();
        let elapsed = self
            .last_commit
            .lock()
            .map(|last| last.elapsed())
            .unwrap_or_default();
        pending >= self.config.commit_events
            || (pending > 0 && elapsed >= self.config.commit_interval)
    }

    /// Adds a batch and commits it: `Ok` only when every event of `events` is durable (see
    /// [`TantivyStore::commit_since`]); returns how many events the commit made durable.
    pub fn add_durably(&self, events: &[Event]) -> Result<u64, IndexError> {
        let mark = self.write_mark();
        self.add(events)?;
        self.commit_since(mark)
    }

    /// Marks the start of a batch, before its first [`TantivyStore::add`].
    pub fn write_mark(&self) -> WriteMark {
        WriteMark(self.stats.failed_writers.load(AtomicOrdering::SeqCst))
    }

    /// Commits, and fails unless everything added since `mark` is durable. A plain
    /// [`TantivyStore::commit`] cannot say that for a caller's own events: when another
    /// caller's commit failed, the writer holding both callers' uncommitted events was
    /// dropped, and this commit then finds nothing left to commit. Any writer dropped since
    /// the mark fails the batch (perhaps one that held none of its events: sending a batch
    /// again is safe, the store replaces events by id, and such failures are rare).
    pub fn commit_since(&self, mark: WriteMark) -> Result<u64, IndexError> {
        let committed = self.commit()?;
        let failed = self.stats.failed_writers.load(AtomicOrdering::SeqCst) - mark.0;
        if failed > 0 {
            return Err(IndexError::WriterFailed { writers: failed });
        }
        Ok(committed)
    }

    /// Commits every day index with uncommitted events; returns how many events became
    /// durable.
    pub fn commit(&self) -> Result<u64, IndexError> {
        let partitions: Vec<Arc<DayIndex>> = self.lock_partitions().values().cloned().collect();
        let mut committed = 0;
        for partition in partitions {
            committed +=
                commit_partition(&partition, &self.stats, self.config.dedup_remembered_ids)?;
        }
        if let Ok(mut last) = self.last_commit.lock() {
            *last = Instant::now();
        }
        self.stats
            .committed
            .fetch_add(committed, AtomicOrdering::Relaxed);
        if committed > 0 {
            self.stats.commits.fetch_add(1, AtomicOrdering::Relaxed);
        }
        Ok(committed)
    }

    /// Commits and closes every writer, waiting for background merges to finish.
    pub fn close(&self) -> Result<u64, IndexError> {
        let mut committed = self.commit()?;
        let partitions: Vec<Arc<DayIndex>> = self.lock_partitions().values().cloned().collect();
        for partition in partitions {
            // Events added since the commit above are committed by the close itself.
            let late = close_partition(&partition, &self.stats, self.config.dedup_remembered_ids)?;
            self.stats
                .committed
                .fetch_add(late, AtomicOrdering::Relaxed);
            committed += late;
        }
        Ok(committed)
    }

    fn make_room_for_writer(&self) -> Result<(), IndexError> {
        let partitions: Vec<Arc<DayIndex>> = self.lock_partitions().values().cloned().collect();
        let mut open: Vec<(Instant, Arc<DayIndex>)> = partitions
            .into_iter()
            .filter_map(|partition| {
                let writing = partition.writing();
                let last_used = writing.last_used;
                let is_open = writing.writer.is_some();
                drop(writing);
                is_open.then_some((last_used, partition))
            })
            .collect();
        open.sort_by_key(|(last_used, _)| *last_used);
        while open.len() >= self.config.max_open_writers.max(1) {
            let (_, oldest) = open.remove(0);
            let committed =
                close_partition(&oldest, &self.stats, self.config.dedup_remembered_ids)?;
            self.stats
                .committed
                .fetch_add(committed, AtomicOrdering::Relaxed);
        }
        Ok(())
    }

    fn lock_partitions(&self) -> MutexGuard<'_, HashMap<PartitionKey, Arc<DayIndex>>> {
        // The map only ever gains or loses whole entries; a panic elsewhere cannot leave it
        // half-updated.
        self.partitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn partition(
        &self,
        agency: Option<&str>,
        day: NaiveDate,
        create: bool,
    ) -> Result<Option<Arc<DayIndex>>, IndexError> {
        let key = (agency.map(str::to_owned), day);
        let mut partitions = self.lock_partitions();
        let tick = self.access_clock.fetch_add(1, AtomicOrdering::Relaxed);
        if let Some(partition) = partitions.get(&key) {
            partition.touch(tick);
            return Ok(Some(partition.clone()));
        }
        if let Some(problem) = agency.and_then(partition::agency_name_problem) {
            return Err(IndexError::InvalidRequest(problem));
        }
        let Some(opened) = DayIndex::open(&self.root, agency, day, &self.schema, create)? else {
            return Ok(None);
        };
        opened.touch(tick);
        let opened = Arc::new(opened);
        // Open, its own summary is the one that counts (it grows with every add).
        self.lock_closed_summaries().remove(&key);
        partitions.insert(key, opened.clone());
        if partitions.len() > self.config.max_open_day_indexes.max(1) {
            self.close_idle_day_indexes(&mut partitions);
        }
        Ok(Some(opened))
    }

    /// Closes the least recently used day indexes nobody is using, down to the limit. Idle
    /// means no writer, nothing uncommitted, no writer still closing, and no other holder of
    /// it: checked under the map's lock, through which alone a day index is handed out, so
    /// none can be in use by an add, a commit or a search, or become so, once it is out.
    fn close_idle_day_indexes(&self, partitions: &mut HashMap<PartitionKey, Arc<DayIndex>>) {
        let limit = self.config.max_open_day_indexes.max(1);
        let mut idle: Vec<(u64, PartitionKey)> = partitions
            .iter()
            .filter(|(_, partition)| Arc::strong_count(partition) == 1 && partition.is_idle())
            .map(|(key, partition)| (partition.last_access(), key.clone()))
            .collect();
        idle.sort_unstable_by_key(|(last_access, _)| *last_access);
        let excess = partitions.len().saturating_sub(limit);
        let mut closed = self.lock_closed_summaries();
        for (_, key) in idle.into_iter().take(excess) {
            if let Some(partition) = partitions.remove(&key) {
                closed.insert(key, Some(partition.summary()));
            }
        }
    }

    /// Day indexes open now (for tests and metrics).
    pub fn open_day_indexes(&self) -> usize {
        self.lock_partitions().len()
    }

    /// The committed time bounds of a day index, without opening it when it is not open;
    /// `None` when only opening it can tell.
    fn summary_of(&self, key: &PartitionKey) -> Option<DaySummary> {
        // Not under the map's lock: a day's lock can be held through a commit, and every add
        // of every agency needs the map.
        let open = self.lock_partitions().get(key).cloned();
        if let Some(partition) = open {
            return Some(partition.summary());
        }
        if let Some(summary) = self.lock_closed_summaries().get(key) {
            return *summary;
        }
        // Read outside every lock (opening a day takes this one under the map's), and cached
        // only when no day index closing meanwhile left its own, newer summary here.
        let read = partition::read_summary_file(&self.root, key.0.as_deref(), key.1);
        *self
            .lock_closed_summaries()
            .entry(key.clone())
            .or_insert(read)
    }

    fn lock_closed_summaries(&self) -> MutexGuard<'_, HashMap<PartitionKey, Option<DaySummary>>> {
        // Only whole entries are ever inserted or removed.
        self.closed_summaries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The day indexes a request may touch: the scope's agencies, committed time bounds
    /// overlapping `time`. Days outside the bounds are not opened.
    fn partitions_for(
        &self,
        scope: &AgencyScope,
        time: &TimeRange,
    ) -> Result<Vec<Arc<DayIndex>>, IndexError> {
        let (from, to) = micros_range(time);
        let mut found = Vec::new();
        for (agency, day) in partition::list(&self.root)? {
            if !scope.allows(agency.as_deref()) {
                continue;
            }
            let key = (agency, day);
            if self
                .summary_of(&key)
                .is_some_and(|summary| !summary.overlaps(from, to))
            {
                continue;
            }
            if let Some(partition) = self.partition(key.0.as_deref(), day, false)? {
                if partition.summary().overlaps(from, to) {
                    found.push(partition);
                }
            }
        }
        Ok(found)
    }

    fn prepared_query(
        &self,
        query: &crate::Query,
        time: &TimeRange,
    ) -> Result<Box<dyn TantivyQuery>, IndexError> {
        let (from, to) = micros_range(time);
        let range = Range {
            lower: Bound::Included(from),
            upper: Bound::Excluded(to),
        };
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Must, translate::translate(&self.schema, query)?),
            (
                Occur::Must,
                translate::i64_range(self.schema.timestamp, &range),
            ),
        ])))
    }

    /// One page of events matching the request, in the requested order.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        let query = self.prepared_query(&request.query, &request.time)?;
        let after = request.after.as_ref().map(sort_key_of_cursor);
        let mut total = 0;
        let mut ranked = Vec::new();
        let mut searchers: Vec<(Searcher, Arc<DayIndex>)> = Vec::new();
        for (ordinal, partition) in self
            .partitions_for(&request.scope, &request.time)?
            .into_iter()
            .enumerate()
        {
            let searcher = partition.reader.searcher();
            let top = TopByTime {
                limit: request.limit,
                order: request.order,
                after,
                index_ordinal: ordinal,
            };
            let (count, mut found) =
                searcher
                    .search(&query, &(Count, top))
                    .map_err(|source| IndexError::Tantivy {
                        path: partition.path.clone(),
                        source,
                    })?;
            total += count as u64;
            ranked.append(&mut found);
            searchers.push((searcher, partition));
        }
        let best = collect::best(ranked, request.limit);
        let full = request.limit > 0 && best.len() == request.limit;
        let mut events = Vec::with_capacity(best.len());
        let mut unreadable = Vec::new();
        // After the last match of the page, read or not.
        let mut last = None;
        for (_, key, ordinal, address) in best {
            last = Some(Cursor::after_key(
                key.timestamp,
                u128::from(key.id_high) << 64 | u128::from(key.id_low),
            ));
            let Some((searcher, partition)) = searchers.get(ordinal) else {
                continue;
            };
            let event = match self.load_event(searcher, partition, address) {
                Ok(event) => event,
                Err(IndexError::CorruptEvent { id, message }) => {
                    unreadable.push(format!("{id}: {message}"));
                    continue;
                }
                Err(other) => return Err(other),
            };
            if !request.scope.allows(event.agency.as_deref()) {
                // Never shown outside its agency, whatever else is wrong with it.
                unreadable.push(format!(
                    "{}: stored under {} but its agency is {:?}",
                    event.id,
                    partition.path.display(),
                    event.agency
                ));
                continue;
            }
            last = Some(Cursor::after(&event));
            events.push(event);
        }
        Ok(SearchPage {
            events,
            total,
            next: last.filter(|_| full),
            unreadable,
        })
    }

    fn load_event(
        &self,
        searcher: &Searcher,
        partition: &DayIndex,
        address: tantivy::DocAddress,
    ) -> Result<Event, IndexError> {
        let corrupt = |message: String| IndexError::CorruptEvent {
            id: format!("{}#{:?}", partition.path.display(), address),
            message,
        };
        // A document tantivy cannot give back because its store is damaged is one unreadable
        // event, as a stored event that does not parse is: the search reports it and goes on.
        // Any other failure (too many open files, a disk error) may pass: the search fails,
        // so that a retry finds the event rather than a page that silently skipped it.
        let document: TantivyDocument = searcher.doc(address).map_err(|source| {
            let damaged = match &source {
                tantivy::TantivyError::DataCorruption(_) => true,
                tantivy::TantivyError::IoError(error) => matches!(
                    error.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ),
                _ => false,
            };
            if damaged {
                corrupt(format!("cannot read the stored document: {source}"))
            } else {
                IndexError::Tantivy {
                    path: partition.path.clone(),
                    source,
                }
            }
        })?;
        let bytes = document
            .get_first(self.schema.event)
            .and_then(|value| value.as_bytes())
            .ok_or_else(|| corrupt("no stored event".into()))?;
        serde_json::from_slice(bytes).map_err(|error| corrupt(error.to_string()))
    }

    /// How many events match.
    pub fn count(&self, request: &AggregationRequest) -> Result<u64, IndexError> {
        let query = self.prepared_query(&request.query, &request.time)?;
        let mut total = 0;
        for partition in self.partitions_for(&request.scope, &request.time)? {
            total += partition
                .reader
                .searcher()
                .search(&query, &Count)
                .map_err(|source| IndexError::Tantivy {
                    path: partition.path.clone(),
                    source,
                })? as u64;
        }
        Ok(total)
    }

    /// Matches per time bucket, ascending, empty buckets left out.
    pub fn histogram(
        &self,
        request: &AggregationRequest,
        interval: Interval,
    ) -> Result<Vec<HistogramBucket>, IndexError> {
        let query = self.prepared_query(&request.query, &request.time)?;
        let mut maps = Vec::new();
        for partition in self.partitions_for(&request.scope, &request.time)? {
            maps.push(
                partition
                    .reader
                    .searcher()
                    .search(&query, &HistogramCollector { interval })
                    .map_err(|source| IndexError::Tantivy {
                        path: partition.path.clone(),
                        source,
                    })?,
            );
        }
        let mut buckets: Vec<HistogramBucket> = collect::merge_counts(maps)
            .into_iter()
            .map(|(start, count)| HistogramBucket {
                start: micros_to_time(start),
                count,
            })
            .collect();
        buckets.sort_by_key(|bucket| bucket.start);
        Ok(buckets)
    }

    /// The `size` most frequent values of `field` among the matches.
    pub fn count_by(
        &self,
        request: &AggregationRequest,
        field: &str,
        size: usize,
    ) -> Result<Terms, IndexError> {
        let source = terms_source(&self.schema, field)?;
        let query = self.prepared_query(&request.query, &request.time)?;
        let mut values = Vec::new();
        let mut missing = 0;
        for partition in self.partitions_for(&request.scope, &request.time)? {
            let counts = partition
                .reader
                .searcher()
                .search(
                    &query,
                    &TermsCollector {
                        source: source.clone(),
                    },
                )
                .map_err(|source| IndexError::Tantivy {
                    path: partition.path.clone(),
                    source,
                })?;
            missing += counts.missing;
            values.push(counts.values);
        }
        Ok(top_terms(collect::merge_counts(values), missing, size))
    }

    /// The (agency, day) indexes past retention on `today`, without touching them.
    pub fn expired(
        &self,
        policy: &RetentionPolicy,
        today: NaiveDate,
    ) -> Result<Vec<(Option<String>, NaiveDate)>, IndexError> {
        Ok(partition::list(&self.root)?
            .into_iter()
            .filter(|(agency, day)| policy.expired(agency.as_deref(), *day, today))
            .collect())
    }

    /// Drops whole day indexes older than the policy keeps, per agency.
    pub fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        today: NaiveDate,
    ) -> Result<RetentionReport, IndexError> {
        let mut report = RetentionReport::default();
        for (agency, day) in partition::list(&self.root)? {
            if !policy.expired(agency.as_deref(), day, today) {
                continue;
            }
            let key = (agency.clone(), day);
            self.lock_closed_summaries().remove(&key);
            let cached = self.lock_partitions().remove(&key);
            if let Some(partition) = cached {
                // Events still waiting in its writer go with the day: counted.
                report.uncommitted_dropped += partition.writing().discard_writer();
            }
            retention::remove_day(&self.root, agency.as_deref(), day)?;
            report.dropped.push((agency, day));
        }
        Ok(report)
    }
}

/// Commits one day index; `remember` is [`TantivyConfig::dedup_remembered_ids`].
fn commit_partition(
    partition: &DayIndex,
    stats: &TantivyStats,
    remember: usize,
) -> Result<u64, IndexError> {
    let mut writing = partition.writing();
    let committed = match commit_locked(partition, &mut writing, remember) {
        Ok(committed) => committed,
        Err(error) => return Err(drop_failed_writer(partition, writing, stats, error)),
    };
    drop(writing);
    if committed > 0 {
        partition
            .reader
            .reload()
            .map_err(|source| IndexError::Tantivy {
                path: partition.path.clone(),
                source,
            })?;
    }
    Ok(committed)
}

/// Commits one day index and takes its writer out within one hold of its lock. An event
/// added between a commit and a separate close would go into a writer dropped without a commit
/// (tantivy commits only when asked): acknowledged, then lost. The writer's merges are waited
/// for after the lock is released (counting, committing and searching do not wait for them),
/// with the day marked as closing, so that the next writer of this day opens only once the old
/// one has let go of the index's lock file (tantivy refuses a second writer until then).
fn close_partition(
    partition: &DayIndex,
    stats: &TantivyStats,
    remember: usize,
) -> Result<u64, IndexError> {
    let tantivy_error = |source| IndexError::Tantivy {
        path: partition.path.clone(),
        source,
    };
    let mut writing = partition.wait_until_closed(partition.writing());
    let committed = match commit_locked(partition, &mut writing, remember) {
        Ok(committed) => committed,
        Err(error) => return Err(drop_failed_writer(partition, writing, stats, error)),
    };
    let writer = writing.take_writer().map_err(tantivy_error)?;
    writing.closing = writer.is_some();
    drop(writing);
    if let Some(writer) = writer {
        let merged = writer.wait_merging_threads();
        partition.finish_closing();
        merged.map_err(tantivy_error)?;
    }
    if committed > 0 {
        partition.reader.reload().map_err(tantivy_error)?;
    }
    Ok(committed)
}

/// Takes a writer that tantivy failed in out of service, with its uncommitted events, and
/// returns `error`. It must not be used again: when an indexing thread's segment write fails,
/// tantivy's writer carries on without that thread, and documents handed to it afterwards
/// vanish at the next commit, which succeeds (a test reproduces it with a directory that goes
/// away). The next add opens a new writer. The dropped events' callers are told: the one
/// whose commit failed by `error`, the others by [`TantivyStats::failed_writers`] moving
/// under their [`WriteMark`], counted here while the day's lock is still held, so no commit
/// can see the events gone and the count not yet moved.
fn drop_failed_writer(
    partition: &DayIndex,
    mut writing: MutexGuard<'_, Writing>,
    stats: &TantivyStats,
    error: IndexError,
) -> IndexError {
    let dropped = writing.pending;
    // The day's time bounds keep the dropped events' times: bounds a little too wide only
    // cost a search a look into this day, while bounds read again from disk now could come
    // back empty (the disk is failing) and hide the day's stored events.
    let writer = writing.abandon();
    if dropped > 0 {
        stats.failed_writers.fetch_add(1, AtomicOrdering::SeqCst);
        stats
            .events_dropped_with_failed_writers
            .fetch_add(dropped, AtomicOrdering::Relaxed);
    }
    writing.closing = writer.is_some();
    drop(writing);
    if let Some(writer) = writer {
        // Its threads are joined outside the lock, as when a writer closes normally; errors
        // from a writer already failed say nothing new.
        let _ = writer.wait_merging_threads();
        partition.finish_closing();
    }
    error
}

/// The commit itself, under the day's lock (held by the caller); returns how many events
/// became durable.
fn commit_locked(
    partition: &DayIndex,
    writing: &mut Writing,
    remember: usize,
) -> Result<u64, IndexError> {
    let pending = writing.pending;
    if pending == 0 {
        return Ok(0);
    }
    let payload = serde_json::to_string(&writing.summary).unwrap_or_default();
    let tantivy_error = |source| IndexError::Tantivy {
        path: partition.path.clone(),
        source,
    };
    writing.flush().map_err(tantivy_error)?;
    let Some(writer) = writing.writer.as_mut() else {
        // Events are only counted while a writer is open, and a writer is only closed after a
        // commit under the same lock, so this cannot happen; if it ever does, say so rather
        // than report the events as stored.
        writing.pending = 0;
        return Err(IndexError::Uncommitted {
            path: partition.path.clone(),
            events: pending,
        });
    };
    let mut prepared = writer.prepare_commit().map_err(tantivy_error)?;
    prepared.set_payload(&payload);
    prepared.commit().map_err(tantivy_error)?;
    writing.pending = 0;
    let full = writing
        .ids
        .as_ref()
        .filter(|ids| ids.remembered() > remember)
        .map(IdFilter::field);
    if let Some(field) = full {
        // Everything it remembers is committed now: start again from the segments (still
        // under the lock, so no add slips in between the commit and the new filter).
        writing.ids = Some(IdFilter::new(&partition.reader, field).map_err(tantivy_error)?);
    }
    Ok(pending)
}

fn terms_source(schema: &EventSchema, field: &str) -> Result<TermsSource, IndexError> {
    if !fields::can_count_by(field) {
        return Err(IndexError::InvalidRequest(format!(
            "cannot count by {field:?}: count by a keyword or number field, or fields.<name>"
        )));
    }
    if let Some(path) = field.strip_prefix(ORIGINAL_FIELDS_PREFIX) {
        return Ok(TermsSource::Postings {
            field: schema.original,
            prefix: format!("{path}{}", crate::document::PATH_VALUE_SEPARATOR),
        });
    }
    if field == ID_FIELD {
        // No fast column (see `ID_FIELD`): its terms give the same counts, one per event.
        return Ok(TermsSource::Postings {
            field: schema.field(ID_FIELD).unwrap_or(schema.present),
            prefix: String::new(),
        });
    }
    match fields::lookup(field).map(|spec| spec.kind) {
        Some(FieldKind::Number) => Ok(TermsSource::Number(tantivy_name(field))),
        _ => Ok(TermsSource::Keyword(tantivy_name(field))),
    }
}

/// Sorts value counts (count descending, then value) into [`Terms`].
pub(crate) fn top_terms(values: HashMap<String, u64>, missing: u64, size: usize) -> Terms {
    let mut all: Vec<TermCount> = values
        .into_iter()
        .map(|(value, count)| TermCount { value, count })
        .collect();
    all.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    let other = all.iter().skip(size).map(|term| term.count).sum();
    all.truncate(size);
    Terms {
        buckets: all,
        other,
        missing,
    }
}

fn micros_range(time: &TimeRange) -> (i64, i64) {
    (time.from.timestamp_micros(), time.to.timestamp_micros())
}

fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn sort_key_of_cursor(cursor: &Cursor) -> SortKey {
    let (id_high, id_low) = id_key(&cursor.id);
    SortKey {
        timestamp: cursor.timestamp_micros,
        id_high,
        id_low,
    }
}
