//! Events in ClickHouse, with the same matching as the tantivy store.
//!
//! One `events` table ([`ddl`]) holds a row per event (`row.rs`): the event as JSON (what
//! searches return), keyword fields folded with [`crate::text::keyword`], text fields as
//! token lines ([`crate::text::token_line`], `" tok tok "`), numbers, microsecond
//! timestamps, and the original fields as parallel `(path, folded value)` arrays. A
//! [`crate::Query`] becomes a SQL condition with bound values (`sql.rs`): keyword equality or
//! an anchored regex, a phrase as the substring `" t1 t2 "` of a token line, a text wildcard
//! as a regex over one token. [`ClickHouseStore`] inserts and queries; [`ClickHouseSink`]
//! queues batches in memory and inserts them with retries.
//!
//! Works with ClickHouse 18.16 (Debian's package) and newer; see `docs/clickhouse.md`.

pub mod ddl;
mod row;
mod sink;
mod sql;
mod store;

pub use ddl::{SchemaFeatures, ServerVersion};
pub use sink::{ClickHouseSink, SinkConfig, SinkStats, WhenFull};
pub use store::{ClickHouseStore, Retention};
