//! The schema: which `CREATE TABLE` a server gets, chosen from its version.
//!
//! Every version gets the same columns (`row::COLUMNS`) and the same engine: a
//! `ReplacingMergeTree` partitioned by UTC day and ordered by `(agency, timestamp_us, id)`, so
//! an event inserted twice (a collector retry, a replayed file) collapses into one row when
//! parts merge, and queries read with `FINAL` so the duplicate never shows before that. Newer
//! servers also get a TTL (19.6+) and bloom-filter skip indexes (20.1+); 18.16 (Debian's
//! package) has neither, so retention there is [`super::ClickHouseStore::drop_before`].

use std::fmt;

use super::row::COLUMNS;
use crate::IndexError;

/// A ClickHouse server version, as `SELECT version()` prints it (`18.16.1`, `23.8.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    /// Major version (the year for 18.x and later).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch level, 0 when not given.
    pub patch: u32,
}

impl ServerVersion {
    /// Reads `major.minor[.patch[.build]]`; anything after the numbers (`-testing`) is ignored.
    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let bad =
            || IndexError::InvalidRequest(format!("unrecognised ClickHouse version {text:?}"));
        let mut numbers = text.trim().split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = numbers.next().flatten().ok_or_else(bad)?;
        let minor = numbers.next().flatten().ok_or_else(bad)?;
        let patch = numbers.next().flatten().unwrap_or(0);
        Ok(ServerVersion {
            major,
            minor,
            patch,
        })
    }

    const fn new(major: u32, minor: u32) -> Self {
        ServerVersion {
            major,
            minor,
            patch: 0,
        }
    }

    /// What this version's `CREATE TABLE` may use.
    pub fn features(self) -> SchemaFeatures {
        SchemaFeatures {
            // Table TTL arrived in 19.6.
            ttl: self >= ServerVersion::new(19, 6),
            // bloom_filter skip indexes exist from 19.8 but were experimental (behind
            // allow_experimental_data_skipping_indices) until 20.1.
            skip_indexes: self >= ServerVersion::new(20, 1),
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The optional parts of the schema a server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaFeatures {
    /// `TTL event_time + INTERVAL n DAY`: the server deletes old events itself.
    pub ttl: bool,
    /// Bloom-filter skip indexes on the IP, user and host columns.
    pub skip_indexes: bool,
}

/// Columns that get a bloom-filter skip index where the server has them: the values analysts
/// look up one at a time (an IP, an account, a host) in days of other events.
const BLOOM_FILTER_COLUMNS: &[&str] = &[
    "kw_source_ip",
    "kw_destination_ip",
    "kw_user_name",
    "kw_host_name",
];

/// `CREATE DATABASE` for `database` (a name [`validate_identifier`] accepted).
pub(crate) fn create_database(database: &str) -> String {
    format!("CREATE DATABASE IF NOT EXISTS `{database}`")
}

/// `CREATE TABLE` for `table` (already quoted) on a server with `features`; `retention_days`
/// becomes a TTL where the server has them and is otherwise left to `drop_before`.
pub(crate) fn create_table(
    table: &str,
    features: SchemaFeatures,
    retention_days: Option<u32>,
) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {table}\n(\n");
    for (index, (name, sql_type)) in COLUMNS.iter().enumerate() {
        if index > 0 {
            sql.push_str(",\n");
        }
        sql.push_str(&format!("    `{name}` {sql_type}"));
    }
    if features.skip_indexes {
        for column in BLOOM_FILTER_COLUMNS {
            sql.push_str(&format!(
                ",\n    INDEX `idx_{column}` `{column}` TYPE bloom_filter(0.01) GRANULARITY 4"
            ));
        }
    }
    sql.push_str("\n)\n");
    // The version-less ReplacingMergeTree keeps the last inserted copy of a sorting key;
    // copies of one event are identical, so which one survives does not matter.
    sql.push_str("ENGINE = ReplacingMergeTree\n");
    sql.push_str("PARTITION BY toYYYYMMDD(event_time)\n");
    sql.push_str("ORDER BY (agency, timestamp_us, id)\n");
    if let (true, Some(days)) = (features.ttl, retention_days) {
        sql.push_str(&format!("TTL event_time + INTERVAL {days} DAY\n"));
    }
    sql.push_str("SETTINGS index_granularity = 8192");
    sql
}

/// Checks that a database name is a plain identifier, since names cannot be bound as values
/// and are written into the SQL.
pub(crate) fn validate_identifier(name: &str) -> Result<(), IndexError> {
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if plain {
        Ok(())
    } else {
        Err(IndexError::InvalidRequest(format!(
            "ClickHouse database name {name:?} must be letters, digits and _ (not starting with a digit)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> ServerVersion {
        ServerVersion::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(
            version("18.16.1"),
            ServerVersion {
                major: 18,
                minor: 16,
                patch: 1
            }
        );
        assert_eq!(version("23.8.2.7").to_string(), "23.8.2");
        assert_eq!(version("24.3"), ServerVersion::new(24, 3));
        assert_eq!(version(" 21.1.9-testing\n").minor, 1);
        assert!(version("19.6.1") > version("19.5.9"));
        assert!(version("20.1.0") > version("19.17.10"));
        for bad in ["", "18", "x.y", ".16"] {
            assert!(ServerVersion::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_version_gets_its_ddl() {
        let old = version("18.16.1").features();
        assert_eq!(
            old,
            SchemaFeatures {
                ttl: false,
                skip_indexes: false
            }
        );
        assert_eq!(
            version("19.6.1").features(),
            SchemaFeatures {
                ttl: true,
                skip_indexes: false
            }
        );
        assert_eq!(
            version("23.8.2.7").features(),
            SchemaFeatures {
                ttl: true,
                skip_indexes: true
            }
        );

        let legacy = create_table("`db`.`events`", old, Some(30));
        assert!(legacy.contains("ENGINE = ReplacingMergeTree"));
        assert!(legacy.contains("PARTITION BY toYYYYMMDD(event_time)"));
        assert!(legacy.contains("ORDER BY (agency, timestamp_us, id)"));
        assert!(!legacy.contains("TTL"));
        assert!(!legacy.contains("INDEX"));
        assert!(legacy.contains("`event_json` String"));

        let modern = create_table("`db`.`events`", version("24.3.1").features(), Some(30));
        assert!(modern.contains("TTL event_time + INTERVAL 30 DAY"));
        assert!(modern.contains("INDEX `idx_kw_source_ip` `kw_source_ip` TYPE bloom_filter"));
        let no_retention = create_table("`db`.`events`", version("24.3.1").features(), None);
        assert!(!no_retention.contains("TTL"));
    }

    #[test]
    fn identifiers_are_plain() {
        assert!(validate_identifier("citysoc").is_ok());
        assert!(validate_identifier("_t1").is_ok());
        for bad in ["", "1db", "a-b", "a`b", "a b", "a;DROP"] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }
}
