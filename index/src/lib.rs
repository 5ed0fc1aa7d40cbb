//! Storage and search for citysoc.
//!
//! What will live here (issue "Storage and search"): day-partitioned tantivy indexes (the
//! embedded default), the ClickHouse sink and queries for long retention and scale-out, and one
//! search/aggregation API over both. Events enter from the pipeline after detection; queries
//! enter from the CLI and the console, always with the caller's agency scope.
