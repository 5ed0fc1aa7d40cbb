//! tantivy collectors reading fast fields: the top events by time (with cursor), date
//! histograms and value counts. Scores are never computed: results are ordered by time.
//! Original fields and `id` have no fast column (it cost a fifth of the indexing time, and
//! the `id` column a million unique strings a day): their counts come from the postings of
//! their terms.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{
    BitSet, DocAddress, DocId, DocSet, InvertedIndexReader, Score, SegmentOrdinal, SegmentReader,
    TantivyError, TERMINATED,
};

use crate::request::{Interval, Order};

/// The sort key of an event: `timestamp` (microseconds), then the id's 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    /// Microseconds since the epoch.
    pub timestamp: i64,
    /// High half of the id key.
    pub id_high: u64,
    /// Low half of the id key.
    pub id_low: u64,
}

/// A sort key turned so that smaller is better for the requested order: the top K are the K
/// smallest ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank(i64, u64, u64);

impl Rank {
    /// The rank of `key` in `order`. Bitwise not reverses the order of both i64 and u64
    /// without overflow.
    pub fn of(key: SortKey, order: Order) -> Self {
        match order {
            Order::OldestFirst => Rank(key.timestamp, key.id_high, key.id_low),
            Order::NewestFirst => Rank(!key.timestamp, !key.id_high, !key.id_low),
        }
    }
}

/// Field names the collectors read.
const TIMESTAMP: &str = "timestamp";
const ID_HIGH: &str = "id_high";
const ID_LOW: &str = "id_low";

/// Collects the best `limit` events after an optional cursor, in `order`.
pub struct TopByTime {
    /// How many.
    pub limit: usize,
    /// Which end first.
    pub order: Order,
    /// Only events ranked strictly after this one.
    pub after: Option<SortKey>,
    /// Tags each result so results of several indexes can be merged.
    pub index_ordinal: usize,
}

/// One collected event: its rank, key, which index and where in it.
pub type Ranked = (Rank, SortKey, usize, DocAddress);

impl Collector for TopByTime {
    type Fruit = Vec<Ranked>;
    type Child = TopByTimeSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<TopByTimeSegment> {
        let fast = reader.fast_fields();
        Ok(TopByTimeSegment {
            timestamp: fast.i64(TIMESTAMP)?,
            id_high: fast.u64(ID_HIGH)?,
            id_low: fast.u64(ID_LOW)?,
            segment,
            limit: self.limit,
            order: self.order,
            after: self.after.map(|key| Rank::of(key, self.order)),
            index_ordinal: self.index_ordinal,
            heap: BinaryHeap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Ranked>>) -> tantivy::Result<Vec<Ranked>> {
        Ok(best(fruits.into_iter().flatten().collect(), self.limit))
    }
}

/// Keeps the `limit` best (smallest rank) of `ranked`, best first.
pub fn best(mut ranked: Vec<Ranked>, limit: usize) -> Vec<Ranked> {
    ranked.sort_by_key(|(rank, _, _, _)| *rank);
    ranked.truncate(limit);
    ranked
}

/// [`TopByTime`] for one segment: a max-heap of the best ranks seen.
pub struct TopByTimeSegment {
    timestamp: Column<i64>,
    id_high: Column<u64>,
    id_low: Column<u64>,
    segment: SegmentOrdinal,
    limit: usize,
    order: Order,
    after: Option<Rank>,
    index_ordinal: usize,
    heap: BinaryHeap<(Rank, SortKey, DocId)>,
}

impl SegmentCollector for TopByTimeSegment {
    type Fruit = Vec<Ranked>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if self.limit == 0 {
            return;
        }
        let key = SortKey {
            timestamp: self.timestamp.first(doc).unwrap_or_default(),
            id_high: self.id_high.first(doc).unwrap_or_default(),
            id_low: self.id_low.first(doc).unwrap_or_default(),
        };
        let rank = Rank::of(key, self.order);
        if self.after.is_some_and(|after| rank <= after) {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push((rank, key, doc));
        } else if self.heap.peek().is_some_and(|(worst, _, _)| rank < *worst) {
            self.heap.pop();
            self.heap.push((rank, key, doc));
        }
    }

    fn harvest(self) -> Vec<Ranked> {
        let segment = self.segment;
        let index_ordinal = self.index_ordinal;
        self.heap
            .into_iter()
            .map(|(rank, key, doc)| (rank, key, index_ordinal, DocAddress::new(segment, doc)))
            .collect()
    }
}

/// Counts matches per histogram bucket (bucket start in microseconds).
pub struct HistogramCollector {
    /// Bucket width.
    pub interval: Interval,
}

impl Collector for HistogramCollector {
    type Fruit = HashMap<i64, u64>;
    type Child = HistogramSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<HistogramSegment> {
        Ok(HistogramSegment {
            timestamp: reader.fast_fields().i64(TIMESTAMP)?,
            interval: self.interval,
            counts: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<HashMap<i64, u64>>) -> tantivy::Result<HashMap<i64, u64>> {
        Ok(merge_counts(fruits))
    }
}

/// Adds up count maps.
pub fn merge_counts<K: std::hash::Hash + Eq>(maps: Vec<HashMap<K, u64>>) -> HashMap<K, u64> {
    let mut total = HashMap::new();
    for map in maps {
        for (key, count) in map {
            *total.entry(key).or_insert(0) += count;
        }
    }
    total
}

/// [`HistogramCollector`] for one segment.
pub struct HistogramSegment {
    timestamp: Column<i64>,
    interval: Interval,
    counts: HashMap<i64, u64>,
}

impl SegmentCollector for HistogramSegment {
    type Fruit = HashMap<i64, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(timestamp) = self.timestamp.first(doc) {
            *self
                .counts
                .entry(self.interval.bucket_start(timestamp))
                .or_insert(0) += 1;
        }
    }

    fn harvest(self) -> HashMap<i64, u64> {
        self.counts
    }
}

/// Value counts of one field: counts per value, and events without a value.
#[derive(Debug, Default)]
pub struct ValueCounts {
    /// Count per value.
    pub values: HashMap<String, u64>,
    /// Matching events without the field.
    pub missing: u64,
    /// Why a segment's counts could not be read (`harvest` cannot fail; `merge_fruits`
    /// returns it).
    pub error: Option<String>,
}

/// What a [`TermsCollector`] counts.
#[derive(Debug, Clone)]
pub enum TermsSource {
    /// A keyword field's fast column (folded values).
    Keyword(String),
    /// A number field's fast column.
    Number(String),
    /// Values read from postings: the terms of `field` starting with `prefix` (for an
    /// original path, the `original` terms of the path and the separator; for `id`, which
    /// has no fast column, every term).
    Postings {
        /// The indexed field.
        field: Field,
        /// What the counted terms start with (cut off the values); may be empty.
        prefix: String,
    },
}

/// Counts matches per value of a field.
pub struct TermsCollector {
    /// Which values.
    pub source: TermsSource,
}

impl Collector for TermsCollector {
    type Fruit = ValueCounts;
    type Child = TermsSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<TermsSegment> {
        let fast = reader.fast_fields();
        let column = match &self.source {
            TermsSource::Keyword(name) => SegmentColumn::Str(fast.str(name)?),
            TermsSource::Postings { field, prefix } => SegmentColumn::Postings {
                index: reader.inverted_index(*field)?,
                prefix: prefix.clone(),
                matched: BitSet::with_max_value(reader.max_doc()),
            },
            TermsSource::Number(name) => SegmentColumn::Number(fast.u64(name)?),
        };
        Ok(TermsSegment::new(column))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<ValueCounts>) -> tantivy::Result<ValueCounts> {
        if let Some(error) = fruits.iter().find_map(|fruit| fruit.error.clone()) {
            return Err(TantivyError::InternalError(error));
        }
        let missing = fruits.iter().map(|fruit| fruit.missing).sum();
        let values = merge_counts(fruits.into_iter().map(|fruit| fruit.values).collect());
        Ok(ValueCounts {
            values,
            missing,
            error: None,
        })
    }
}

enum SegmentColumn {
    /// A string fast column.
    Str(Option<StrColumn>),
    Number(Column<u64>),
    /// The postings of the terms starting with `prefix`; the matching documents are gathered
    /// first and the postings walked once at harvest.
    Postings {
        index: Arc<InvertedIndexReader>,
        prefix: String,
        matched: BitSet,
    },
}

/// [`TermsCollector`] for one segment: counts by ordinal, resolved to text at harvest.
pub struct TermsSegment {
    column: SegmentColumn,
    /// Count per ordinal, dense (ordinals are 0..num_terms).
    ords: Vec<u64>,
    numbers: HashMap<u64, u64>,
    missing: u64,
}

impl TermsSegment {
    fn new(column: SegmentColumn) -> Self {
        let terms = match &column {
            SegmentColumn::Str(Some(column)) => column.num_terms(),
            _ => 0,
        };
        TermsSegment {
            column,
            ords: vec![0; terms],
            numbers: HashMap::new(),
            missing: 0,
        }
    }
}

/// Counts, per value after `prefix`, the `matched` documents whose postings hold the term
/// `prefix + value` (each document once per value), and the matched documents with none.
fn count_postings(
    index: &InvertedIndexReader,
    prefix: &str,
    matched: &BitSet,
) -> std::io::Result<(HashMap<String, u64>, u64)> {
    let mut values = HashMap::new();
    let matched_count = matched.len() as u64;
    if matched_count == 0 {
        return Ok((values, 0));
    }
    let mut with_value = BitSet::with_max_value(matched.max_value());
    let terms = index.terms().range().ge(prefix.as_bytes());
    // Every term with the prefix sorts before the prefix with its last byte incremented (a
    // non-empty prefix ends in the ASCII separator, so the increment cannot overflow); an
    // empty prefix takes every term.
    let mut upper = prefix.as_bytes().to_vec();
    let mut terms = match upper.last_mut() {
        Some(last) => {
            *last = last.saturating_add(1);
            terms.lt(&upper).into_stream()?
        }
        None => terms.into_stream()?,
    };
    while terms.advance() {
        let mut postings =
            index.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
        let mut count = 0;
        let mut doc = postings.doc();
        while doc != TERMINATED {
            if matched.contains(doc) {
                count += 1;
                with_value.insert(doc);
            }
            doc = postings.advance();
        }
        if count > 0 {
            let value = terms.key().get(prefix.len()..).unwrap_or_default();
            *values
                .entry(String::from_utf8_lossy(value).into_owned())
                .or_insert(0) += count;
        }
    }
    Ok((values, matched_count - with_value.len() as u64))
}

impl SegmentCollector for TermsSegment {
    type Fruit = ValueCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let mut any = false;
        match &mut self.column {
            SegmentColumn::Str(None) => {}
            SegmentColumn::Str(Some(column)) => {
                for ord in column.term_ords(doc) {
                    any = true;
                    if let Some(count) = self.ords.get_mut(ord as usize) {
                        *count += 1;
                    }
                }
            }
            SegmentColumn::Number(column) => {
                for value in column.values_for_doc(doc) {
                    any = true;
                    *self.numbers.entry(value).or_insert(0) += 1;
                }
            }
            SegmentColumn::Postings { matched, .. } => {
                // Counted at harvest.
                matched.insert(doc);
                any = true;
            }
        }
        if !any {
            self.missing += 1;
        }
    }

    fn harvest(self) -> ValueCounts {
        let mut values = HashMap::new();
        let mut missing = self.missing;
        let mut error = None;
        match &self.column {
            SegmentColumn::Str(Some(column)) => {
                let (ords, counts): (Vec<u64>, Vec<u64>) = self
                    .ords
                    .iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .map(|(ord, count)| (ord as u64, *count))
                    .unzip();
                // One pass over the dictionary's blocks instead of a lookup per value.
                let mut counts = counts.into_iter();
                let _ = column.dictionary().sorted_ords_to_term_cb(&ords, |bytes| {
                    let count = counts.next().unwrap_or(0);
                    let value = String::from_utf8_lossy(bytes).into_owned();
                    *values.entry(value).or_insert(0) += count;
                });
            }
            SegmentColumn::Str(None) => {}
            SegmentColumn::Number(_) => {
                for (number, count) in &self.numbers {
                    values.insert(number.to_string(), *count);
                }
            }
            SegmentColumn::Postings {
                index,
                prefix,
                matched,
            } => match count_postings(index, prefix, matched) {
                Ok((counted, without)) => {
                    values = counted;
                    missing += without;
                }
                Err(cause) => error = Some(format!("reading the postings of {prefix:?}: {cause}")),
            },
        }
        ValueCounts {
            values,
            missing,
            error,
        }
    }
}
