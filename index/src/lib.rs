//! Storage and search for citysoc.
//!
//! Every event is stored in the embedded [`tantivy`](crate::tantivy_store) indexes (one per
//! agency and day) and, where configured, in [`ClickHouse`](crate::clickhouse_store). Both answer
//! the same [`SearchRequest`]s and aggregations: a [`query`] string resolved against one
//! [`fields`] catalogue, a time range, and the caller's [`AgencyScope`], which the store applies
//! itself. Matching is defined once, in [`text`] (folding, tokens) and [`document`] (which
//! values of an event are indexed), so the two stores give the same answers.

// Only the allocator crate may hold `unsafe` (allocator/: a global allocator is an unsafe
// trait over C); no other crate needs any.
#![forbid(unsafe_code)]

mod error;

pub mod clickhouse_store;
pub mod document;
pub mod fields;
pub mod query;
pub mod request;
pub mod tantivy_store;
pub mod text;

pub use clickhouse_store::{ClickHouseSink, ClickHouseStore};
pub use error::IndexError;
pub use query::{parse, Query};
pub use request::{
    AgencyScope, AggregationRequest, Cursor, HistogramBucket, Interval, Order, SearchPage,
    SearchRequest, TermCount, Terms, TimeRange,
};
pub use tantivy_store::{RetentionPolicy, RetentionReport, TantivyConfig, TantivyStore};
