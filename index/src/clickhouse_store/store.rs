//! [`ClickHouseStore`]: inserts events and answers searches and aggregations with SQL.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use citysoc_collector::Event;
use serde::Deserialize;

use crate::fields::{self, FieldKind, ORIGINAL_FIELDS_PREFIX};
use crate::request::{
    AggregationRequest, Cursor, HistogramBucket, Interval, SearchPage, SearchRequest, TermCount,
    Terms,
};
use crate::IndexError;

use super::ddl::{self, ServerVersion};
use super::row::{self, EventRow, SearchRow};
use super::sql::{self, BindValue, Sql};

/// The table every event goes to, inside the store's database.
const TABLE: &str = "events";

/// How long one batch may take to send, and to be acknowledged once sent. A server that hangs
/// fails the insert instead of holding the sink forever.
const INSERT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
const INSERT_END_TIMEOUT: Duration = Duration::from_secs(120);

/// Events in ClickHouse: one `events` table in one database, written with batched RowBinary
/// inserts and read with SQL built from the typed [`crate::Query`]. Matching is the tantivy
/// store's (see [`super`]); the caller's agency scope is applied to every statement.
///
/// Cloning is cheap and shares the HTTP connection pool.
#[derive(Clone)]
pub struct ClickHouseStore {
    client: clickhouse::Client,
    database: String,
    /// `` `database`.`events` ``, quoted once (the name was validated).
    table: String,
    retention_days: Option<u32>,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("database", &self.database)
            .field("retention_days", &self.retention_days)
            .finish_non_exhaustive()
    }
}

/// What [`ClickHouseStore::drop_before`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retention {
    /// Whole days were dropped (every agency): these partitions (`YYYYMMDD`), gone at once.
    PartitionsDropped(Vec<u32>),
    /// One agency's events are being deleted by a mutation, which the server runs in the
    /// background; [`ClickHouseStore::pending_mutations`] tells when it is done.
    DeleteSubmitted,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct TermRow {
    term_value: String,
    term_count: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct TotalsRow {
    matched: u64,
    missing: u64,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct BucketRow {
    bucket: i64,
    bucket_count: u64,
}

impl ClickHouseStore {
    /// A store on the server at `url` (`http://host:8123`), in `database`, without contacting
    /// it (the sink starts while ClickHouse may still be down). The database name must be a
    /// plain identifier.
    pub fn new(url: &str, database: &str) -> Result<Self, IndexError> {
        ddl::validate_identifier(database)?;
        // 18.16 knows neither RowBinaryWithNamesAndTypes (validation fetches with it) nor the
        // table metadata queries validation runs before inserts: plain RowBinary it is. The
        // row types here are checked against the DDL by unit tests instead.
        let client = clickhouse::Client::default()
            .with_url(url)
            .with_validation(false);
        Ok(ClickHouseStore {
            client,
            database: database.to_owned(),
            table: format!("`{database}`.`{TABLE}`"),
            retention_days: None,
        })
    }

    /// [`ClickHouseStore::new`], then checks that the server answers.
    pub async fn connect(url: &str, database: &str) -> Result<Self, IndexError> {
        let store = ClickHouseStore::new(url, database)?;
        store.server_version().await?;
        Ok(store)
    }

    /// Logs in as `user` with `password` (the default user without password otherwise).
    pub fn with_credentials(mut self, user: &str, password: &str) -> Self {
        self.client = self.client.with_user(user).with_password(password);
        self
    }

    /// Keeps events this many days: a table TTL where the server has them (19.6+), applied
    /// when [`ClickHouseStore::ensure_schema`] creates the table. Older servers need
    /// [`ClickHouseStore::drop_before`] run daily.
    pub fn with_retention_days(mut self, days: Option<u32>) -> Self {
        self.retention_days = days;
        self
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The server's version.
    pub async fn server_version(&self) -> Result<ServerVersion, IndexError> {
        let text: String = self
            .client
            .query("SELECT version()")
            .fetch_one::<String>()
            .await?;
        ServerVersion::parse(&text)
    }

    /// Creates the database and the `events` table if missing, with the DDL the server's
    /// version supports (see [`super::ddl`]). Returns that version.
    pub async fn ensure_schema(&self) -> Result<ServerVersion, IndexError> {
        let version = self.server_version().await?;
        self.client
            .query(&ddl::create_database(&self.database))
            .execute()
            .await?;
        let create = ddl::create_table(&self.table, version.features(), self.retention_days);
        self.client.query(&create).execute().await?;
        Ok(version)
    }

    /// Drops the whole database (tests, decommissioning).
    pub async fn drop_database(&self) -> Result<(), IndexError> {
        self.client
            .query(&format!("DROP DATABASE IF EXISTS `{}`", self.database))
            .execute()
            .await?;
        Ok(())
    }

    /// Inserts `events` in one RowBinary `INSERT` (LZ4-compressed on the wire). Inserting an
    /// event again is harmless: rows with the same `(agency, timestamp, id)` collapse, and
    /// every read uses `FINAL`.
    pub async fn insert(&self, events: &[Event]) -> Result<(), IndexError> {
        if events.is_empty() {
            return Ok(());
        }
        let rows = events
            .iter()
            .map(EventRow::from_event)
            .collect::<Result<Vec<_>, _>>()?;
        let mut insert = self
            .client
            .insert_unescaped::<EventRow>(&self.table)
            .await?
            .with_timeouts(Some(INSERT_SEND_TIMEOUT), Some(INSERT_END_TIMEOUT));
        for row in &rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// One page of matching events, sorted by `(timestamp, id)`. `next` is set whenever the
    /// page is full (`limit` events), even if nothing follows: the page after is then empty.
    pub async fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        let filter = sql::filter(&request.query, &request.time, &request.scope)?;
        let total = self.count_where(filter.clone());
        if request.limit == 0 {
            return Ok(SearchPage {
                events: Vec::new(),
                total: total.await?,
                next: None,
                unreadable: Vec::new(),
            });
        }
        let mut select = Sql::new(&format!(
            "SELECT timestamp_us, id, event_json FROM {} FINAL WHERE ",
            self.table
        ));
        select.append(filter);
        if let Some(cursor) = &request.after {
            select.push(" AND ");
            select.append(sql::after_cursor(request.order, cursor));
        }
        select.push(" ").push(sql::order_by(request.order));
        select.push(" LIMIT ");
        select.bind(BindValue::U64(request.limit as u64));
        let rows = select.into_query(&self.client).fetch_all::<SearchRow>();
        let (total, rows) = tokio::try_join!(total, async { Ok(rows.await?) })?;
        let mut events = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in &rows {
            match row::decode_event(&row.event_json) {
                Ok(event) => events.push(event),
                // One damaged row does not fail the page: left out and reported.
                Err(IndexError::CorruptEvent { message, .. }) => {
                    unreadable.push(format!("{}: {message}", row.id));
                }
                Err(other) => unreadable.push(format!("{}: {other}", row.id)),
            }
        }
        // After the last row, read or not (the cursor is the columns the order is on).
        let next = (rows.len() == request.limit)
            .then(|| rows.last())
            .flatten()
            .map(|row| Cursor {
                timestamp_micros: row.timestamp_us,
                id: row.id.clone(),
            });
        Ok(SearchPage {
            events,
            total,
            next,
            unreadable,
        })
    }

    /// How many events match.
    pub async fn count(&self, request: &AggregationRequest) -> Result<u64, IndexError> {
        let filter = sql::filter(&request.query, &request.time, &request.scope)?;
        self.count_where(filter).await
    }

    async fn count_where(&self, filter: Sql) -> Result<u64, IndexError> {
        let mut sql = Sql::new(&format!("SELECT count() FROM {} FINAL WHERE ", self.table));
        sql.append(filter);
        Ok(sql.into_query(&self.client).fetch_one::<u64>().await?)
    }

    /// The `size` most frequent values of `field` among the matches (count-by). Keywords
    /// count by folded value, numbers by decimal value, `fields.<path>` by each value of the
    /// path (an event with two values counts once in each; the same value twice, once).
    pub async fn count_by(
        &self,
        request: &AggregationRequest,
        field: &str,
        size: usize,
    ) -> Result<Terms, IndexError> {
        if !fields::can_count_by(field) {
            return Err(IndexError::InvalidRequest(format!(
                "cannot count by {field:?}: only keyword and number fields and fields.<path> can be counted"
            )));
        }
        let filter = sql::filter(&request.query, &request.time, &request.scope)?;
        let (totals, buckets) = match field.strip_prefix(ORIGINAL_FIELDS_PREFIX) {
            Some(path) => self.original_terms(filter, path, size).await?,
            None => self.column_terms(filter, field, size).await?,
        };
        let in_buckets: u64 = buckets.iter().map(|bucket| bucket.count).sum();
        Ok(Terms {
            other: totals.matched.saturating_sub(in_buckets),
            missing: totals.missing,
            buckets,
        })
    }

    /// Terms of a keyword or number column. `matched` in the result counts events with a
    /// value.
    async fn column_terms(
        &self,
        filter: Sql,
        field: &str,
        size: usize,
    ) -> Result<(TotalsRow, Vec<TermCount>), IndexError> {
        let (column, kind) = row::column(field).ok_or_else(|| {
            IndexError::InvalidRequest(format!("field {field:?} is not in the catalogue"))
        })?;
        let value = match kind {
            FieldKind::Keyword => format!("assumeNotNull({column})"),
            FieldKind::Number => format!("toString(assumeNotNull({column}))"),
            FieldKind::Text | FieldKind::Time => {
                return Err(IndexError::InvalidRequest(format!(
                    "cannot count by {field:?}: only keyword and number fields can be counted"
                )))
            }
        };
        let mut totals = Sql::new(&format!(
            "SELECT toUInt64(countIf(isNotNull({column}))) AS matched, \
             toUInt64(countIf(isNull({column}))) AS missing FROM {} FINAL WHERE ",
            self.table
        ));
        totals.append(filter.clone());
        let totals = totals.into_query(&self.client).fetch_one::<TotalsRow>();
        let mut buckets = Sql::new(&format!(
            "SELECT {value} AS term_value, count() AS term_count FROM {} FINAL WHERE ",
            self.table
        ));
        buckets.append(filter);
        buckets.push(&format!(" AND isNotNull({column})"));
        let buckets = self.fetch_terms(buckets, size);
        let (totals, buckets) = tokio::try_join!(async { Ok(totals.await?) }, buckets)?;
        Ok((totals, buckets))
    }

    /// Terms of an original-field path. `matched` counts (event, distinct value) pairs.
    async fn original_terms(
        &self,
        filter: Sql,
        path: &str,
        size: usize,
    ) -> Result<(TotalsRow, Vec<TermCount>), IndexError> {
        // The distinct values one event has at `path`.
        let values = |sql: &mut Sql| {
            sql.push("arrayDistinct(arrayFilter((x, y) -> y = ");
            sql.bind_str(path);
            sql.push(", field_values, field_paths))");
        };
        let mut totals = Sql::new("SELECT toUInt64(sum(length(");
        values(&mut totals);
        totals.push("))) AS matched, toUInt64(countIf(NOT has(field_paths, ");
        totals.bind_str(path);
        totals.push(&format!("))) AS missing FROM {} FINAL WHERE ", self.table));
        totals.append(filter.clone());
        let totals = totals.into_query(&self.client).fetch_one::<TotalsRow>();

        let mut buckets = Sql::new(&format!(
            "SELECT term_value, count() AS term_count FROM {} FINAL ARRAY JOIN ",
            self.table
        ));
        values(&mut buckets);
        buckets.push(" AS term_value WHERE ");
        buckets.append(filter);
        let buckets = self.fetch_terms(buckets, size);
        let (totals, buckets) = tokio::try_join!(async { Ok(totals.await?) }, buckets)?;
        Ok((totals, buckets))
    }

    /// Groups a `SELECT … AS term_value, count() AS term_count … WHERE …` and keeps the top
    /// `size`, most frequent first, ties by value (byte order, as Rust compares strings).
    async fn fetch_terms(&self, mut sql: Sql, size: usize) -> Result<Vec<TermCount>, IndexError> {
        if size == 0 {
            return Ok(Vec::new());
        }
        sql.push(" GROUP BY term_value ORDER BY term_count DESC, term_value ASC LIMIT ");
        sql.bind(BindValue::U64(size as u64));
        let rows = sql.into_query(&self.client).fetch_all::<TermRow>().await?;
        Ok(rows
            .into_iter()
            .map(|row| TermCount {
                value: row.term_value,
                count: row.term_count,
            })
            .collect())
    }

    /// Matches per `interval`, buckets aligned to the Unix epoch; only non-empty buckets,
    /// oldest first.
    pub async fn histogram(
        &self,
        request: &AggregationRequest,
        interval: Interval,
    ) -> Result<Vec<HistogramBucket>, IndexError> {
        let filter = sql::filter(&request.query, &request.time, &request.scope)?;
        let width = BindValue::I64(interval.micros());
        // Floor division (intDiv truncates towards zero), the same as Interval::bucket_start.
        let mut sql = Sql::new("SELECT toInt64((intDiv(timestamp_us, toInt64(");
        sql.bind(width.clone());
        sql.push(")) - if(timestamp_us % toInt64(");
        sql.bind(width.clone());
        sql.push(") < 0, 1, 0)) * toInt64(");
        sql.bind(width);
        sql.push(&format!(
            ")) AS bucket, count() AS bucket_count FROM {} FINAL WHERE ",
            self.table
        ));
        sql.append(filter);
        sql.push(" GROUP BY bucket ORDER BY bucket");
        let rows = sql
            .into_query(&self.client)
            .fetch_all::<BucketRow>()
            .await?;
        rows.into_iter()
            .map(|row| {
                let start =
                    DateTime::<Utc>::from_timestamp_micros(row.bucket).ok_or_else(|| {
                        IndexError::InvalidRequest(format!(
                            "histogram bucket {} is outside the time range",
                            row.bucket
                        ))
                    })?;
                Ok(HistogramBucket {
                    start,
                    count: row.bucket_count,
                })
            })
            .collect()
    }

    /// Deletes events from before `day` (UTC).
    ///
    /// For every agency (`None`) whole days go: `ALTER TABLE … DROP PARTITION` per day, which
    /// is immediate and cheap. For one agency the rows go by an `ALTER TABLE … DELETE`
    /// mutation, which rewrites the affected parts in the background (18.16 cannot wait for
    /// it: `mutations_sync` came later); see [`ClickHouseStore::pending_mutations`].
    pub async fn drop_before(
        &self,
        agency: Option<&str>,
        day: NaiveDate,
    ) -> Result<Retention, IndexError> {
        let day_start = day
            .and_hms_opt(0, 0, 0)
            .map(|time| time.and_utc().timestamp_micros())
            .ok_or_else(|| IndexError::InvalidRequest(format!("invalid day {day}")))?;
        match agency {
            Some(agency) => {
                let mut sql = Sql::new(&format!(
                    "ALTER TABLE {} DELETE WHERE agency = ",
                    self.table
                ));
                sql.bind_str(agency);
                sql.push(" AND isNotNull(kw_agency) AND timestamp_us < ");
                sql.bind(BindValue::I64(day_start));
                sql.into_query(&self.client).execute().await?;
                Ok(Retention::DeleteSubmitted)
            }
            None => {
                let limit = yyyymmdd(day);
                let mut dropped = Vec::new();
                for partition in self.partitions().await? {
                    if partition < limit {
                        let mut sql =
                            Sql::new(&format!("ALTER TABLE {} DROP PARTITION ", self.table));
                        sql.bind(BindValue::U64(u64::from(partition)));
                        sql.into_query(&self.client).execute().await?;
                        dropped.push(partition);
                    }
                }
                Ok(Retention::PartitionsDropped(dropped))
            }
        }
    }

    /// The table's day partitions (`YYYYMMDD`), ascending.
    pub async fn partitions(&self) -> Result<Vec<u32>, IndexError> {
        let mut sql =
            Sql::new("SELECT DISTINCT partition FROM system.parts WHERE active AND database = ");
        sql.bind_str(self.database.as_str());
        sql.push(" AND table = ");
        sql.bind_str(TABLE);
        let names = sql.into_query(&self.client).fetch_all::<String>().await?;
        let mut partitions: Vec<u32> = names
            .iter()
            .filter_map(|name| name.trim_matches('\'').parse().ok())
            .collect();
        partitions.sort_unstable();
        Ok(partitions)
    }

    /// Mutations (agency deletes) on the table that the server has not finished.
    pub async fn pending_mutations(&self) -> Result<u64, IndexError> {
        let mut sql = Sql::new(
            "SELECT toUInt64(count()) FROM system.mutations WHERE NOT is_done AND database = ",
        );
        sql.bind_str(self.database.as_str());
        sql.push(" AND table = ");
        sql.bind_str(TABLE);
        Ok(sql.into_query(&self.client).fetch_one::<u64>().await?)
    }
}

fn yyyymmdd(day: NaiveDate) -> u32 {
    let year = u32::try_from(day.year().max(0)).unwrap_or(0);
    year * 10_000 + day.month() * 100 + day.day()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_partition_ids() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap_or_default();
        assert_eq!(yyyymmdd(day), 20_261_102);
    }

    #[test]
    fn database_names_are_checked_before_any_sql() {
        assert!(ClickHouseStore::new("http://127.0.0.1:1", "a`; DROP").is_err());
        assert!(ClickHouseStore::new("http://127.0.0.1:1", "citysoc").is_ok());
    }
}
