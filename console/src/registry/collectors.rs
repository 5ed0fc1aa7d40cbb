//! Collectors: identity, keys, sequence bookkeeping, counters and last heartbeat.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use citysoc_collector::protocol::{Heartbeat, SourceHealth};
use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use serde::Serialize;

use super::{from_millis, millis, Registry};
use crate::ConsoleError;

/// What the registry knows about a collector, without its keys (safe to print and to
/// serialize).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectorRecord {
    /// The id issued at enrollment.
    pub id: String,
    /// Its name (defaults to the host name).
    pub name: String,
    /// Host name of its machine, as it said at enrollment.
    pub hostname: String,
    /// Collector version at enrollment.
    pub version: String,
    /// The agency of the token it enrolled with: every event it sends belongs to it.
    pub agency: String,
    /// When it enrolled.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The highest batch number acknowledged.
    pub last_sequence_acked: u64,
    /// Last accepted request of any kind.
    pub last_seen: Option<DateTime<Utc>>,
    /// Its last health report.
    pub last_heartbeat: Option<Heartbeat>,
    /// When that report arrived.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Batches acknowledged (re-sent ones included).
    pub batches: u64,
    /// Events stored.
    pub events: u64,
    /// Events received again that the store already had.
    pub duplicates: u64,
    /// Times a batch number skipped ahead.
    pub gaps: u64,
    /// Batch numbers skipped over in all.
    pub missing_batches: u64,
    /// Refused requests naming this collector, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Since when it signs its requests' headers: from then on, requests naming it without
    /// that signature are refused before they are read.
    pub head_signed_since: Option<DateTime<Utc>>,
}

/// A range of batch numbers that never arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// First missing batch number.
    pub first_missing: u64,
    /// Last missing batch number.
    pub last_missing: u64,
    /// When the batch after it arrived.
    pub detected_at: DateTime<Utc>,
}

/// Which key a request was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    /// The current key.
    Current,
    /// The key before the last rotation, still accepted because the collector has not used
    /// the new one yet (the rotation's answer may have been lost).
    Previous,
}

/// What the intake hands the registry once a batch is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    /// The batch number.
    pub sequence: u64,
    /// Events stored.
    pub stored: u64,
    /// Events the store already had.
    pub duplicates: u64,
    /// Batch numbers skipped before this one, if any.
    pub gap: Option<(u64, u64)>,
}

/// The fields request checking needs, keys included (never leaves the crate).
#[derive(Clone)]
pub(crate) struct CollectorState {
    pub agency: String,
    pub revoked: bool,
    pub key: Vec<u8>,
    pub previous_key: Option<Vec<u8>>,
    pub last_sequence_acked: u64,
    pub last_heartbeat_time: i64,
    pub last_rotate_time: i64,
    /// The collector has signed its requests' headers: one without is not from it.
    pub head_signing: bool,
}

/// How often refusals counted in memory are written to the registry at most.
const REJECTIONS_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Refusals counted and not written yet, by (collector, reason).
pub(crate) struct PendingRejections {
    counts: BTreeMap<(String, String), u64>,
    written_at: std::time::Instant,
    /// Transactions written so far.
    writes: u64,
}

impl Default for PendingRejections {
    fn default() -> Self {
        PendingRejections {
            counts: BTreeMap::new(),
            written_at: std::time::Instant::now(),
            writes: 0,
        }
    }
}

const RECORD_COLUMNS: &str = "id, name, hostname, version, agency, created_at, revoked_at,
    last_sequence_acked, last_seen, last_heartbeat, last_heartbeat_at, batches, events,
    duplicates, gaps, missing_batches, head_signed_since";

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Registry {
    /// One collector, by id.
    pub fn collector(&self, id: &str) -> Result<Option<CollectorRecord>, ConsoleError> {
        let connection = self.lock();
        let record = connection
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM collectors WHERE id = ?1"),
                params![id],
                read_record,
            )
            .optional()
            .map_err(|source| self.error(source))?;
        drop(connection);
        match record {
            Some(record) => Ok(Some(self.complete(record)?)),
            None => Ok(None),
        }
    }

    /// Every collector, oldest enrollment first.
    pub fn collectors(&self) -> Result<Vec<CollectorRecord>, ConsoleError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {RECORD_COLUMNS} FROM collectors ORDER BY created_at, id"
            ))
            .map_err(|source| self.error(source))?;
        let records = statement
            .query_map([], read_record)
            .map_err(|source| self.error(source))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| self.error(source))?;
        drop(statement);
        drop(connection);
        records
            .into_iter()
            .map(|record| self.complete(record))
            .collect()
    }

    /// Parses the stored heartbeat and adds the rejection counters.
    fn complete(&self, raw: RawRecord) -> Result<CollectorRecord, ConsoleError> {
        let mut record = raw.record;
        record.last_heartbeat =
            match raw.heartbeat {
                Some(text) => Some(serde_json::from_str(&text).map_err(|error| {
                    ConsoleError::CorruptRecord {
                        path: self.path.clone(),
                        collector: record.id.clone(),
                        message: format!("last heartbeat is not readable: {error}"),
                    }
                })?),
                None => None,
            };
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT reason, count FROM collector_rejections WHERE collector_id = ?1")
            .map_err(|source| self.error(source))?;
        record.rejected = statement
            .query_map(params![record.id], |row| {
                Ok((row.get::<_, String>(0)?, to_u64(row.get(1)?)))
            })
            .map_err(|source| self.error(source))?
            .collect::<Result<_, _>>()
            .map_err(|source| self.error(source))?;
        drop(statement);
        drop(connection);
        for ((id, reason), count) in &self.pending().counts {
            if *id == record.id {
                *record.rejected.entry(reason.clone()).or_insert(0) += count;
            }
        }
        Ok(record)
    }

    /// The missing batch ranges recorded for a collector, oldest first.
    pub fn gaps(&self, id: &str) -> Result<Vec<Gap>, ConsoleError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(
                "SELECT first_missing, last_missing, detected_at FROM collector_gaps
                 WHERE collector_id = ?1 ORDER BY rowid",
            )
            .map_err(|source| self.error(source))?;
        let gaps = statement
            .query_map(params![id], |row| {
                Ok(Gap {
                    first_missing: to_u64(row.get(0)?),
                    last_missing: to_u64(row.get(1)?),
                    detected_at: from_millis(row.get(2)?),
                })
            })
            .map_err(|source| self.error(source))?
            .collect::<Result<_, _>>()
            .map_err(|source| self.error(source))?;
        Ok(gaps)
    }

    /// Revokes a collector: every request it signs from now on is refused with 403. Revoking
    /// twice keeps the first time.
    pub fn revoke(&self, id: &str, now: DateTime<Utc>) -> Result<CollectorRecord, ConsoleError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE collectors SET revoked_at = COALESCE(revoked_at, ?1) WHERE id = ?2",
                params![millis(now), id],
            )
            .map_err(|source| self.error(source))?;
        if changed == 0 {
            return Err(ConsoleError::UnknownCollector(id.to_owned()));
        }
        self.collector(id)?
            .ok_or_else(|| ConsoleError::UnknownCollector(id.to_owned()))
    }

    /// Takes a collector's requests without a head signature again: for a collector an admin
    /// downgraded on purpose to a version older than head signatures, which the server would
    /// otherwise refuse from the moment its first signed request was seen. Its next signed
    /// request turns the check back on.
    pub fn forget_head_signing(&self, id: &str) -> Result<CollectorRecord, ConsoleError> {
        let changed = self
            .lock()
            .execute(
                "UPDATE collectors SET head_signed_since = NULL WHERE id = ?1",
                params![id],
            )
            .map_err(|source| self.error(source))?;
        if changed == 0 {
            return Err(ConsoleError::UnknownCollector(id.to_owned()));
        }
        self.collector(id)?
            .ok_or_else(|| ConsoleError::UnknownCollector(id.to_owned()))
    }

    pub(crate) fn state(&self, id: &str) -> Result<Option<CollectorState>, ConsoleError> {
        self.lock()
            .query_row(
                "SELECT agency, revoked_at, key, previous_key, last_sequence_acked,
                        last_heartbeat_time, last_rotate_time, head_signed_since
                 FROM collectors WHERE id = ?1",
                params![id],
                |row| {
                    Ok(CollectorState {
                        agency: row.get(0)?,
                        revoked: row.get::<_, Option<i64>>(1)?.is_some(),
                        key: row.get(2)?,
                        previous_key: row.get(3)?,
                        last_sequence_acked: to_u64(row.get(4)?),
                        last_heartbeat_time: row.get(5)?,
                        last_rotate_time: row.get(6)?,
                        head_signing: row.get::<_, Option<i64>>(7)?.is_some(),
                    })
                },
            )
            .optional()
            .map_err(|source| self.error(source))
    }

    /// Counts a refused request against the collector it named (no-op for unknown ids).
    pub(crate) fn count_rejection(&self, id: &str, reason: &str) -> Result<(), ConsoleError> {
        let due = {
            let mut pending = self.pending();
            *pending
                .counts
                .entry((id.to_owned(), reason.to_owned()))
                .or_insert(0) += 1;
            pending.written_at.elapsed() >= REJECTIONS_WRITE_INTERVAL
        };
        if due {
            self.write_rejections()?;
        }
        Ok(())
    }

    /// Writes the refusals counted since the last write, in one transaction. Refusals are
    /// counted in memory and written at most once a [`REJECTIONS_WRITE_INTERVAL`] (and by the
    /// server's timer and at shutdown): a sender without the key could otherwise make the
    /// server sync the registry once per request it sends, under the lock every batch needs.
    pub(crate) fn write_rejections(&self) -> Result<(), ConsoleError> {
        let counts = {
            let mut pending = self.pending();
            pending.written_at = std::time::Instant::now();
            if !pending.counts.is_empty() {
                pending.writes += 1;
            }
            std::mem::take(&mut pending.counts)
        };
        if counts.is_empty() {
            return Ok(());
        }
        let mut connection = self.lock();
        let written = (|| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for ((id, reason), count) in &counts {
                transaction.execute(
                    "INSERT INTO collector_rejections (collector_id, reason, count)
                     SELECT id, ?2, ?3 FROM collectors WHERE id = ?1
                     ON CONFLICT (collector_id, reason) DO UPDATE SET count = count + ?3",
                    params![id, reason, to_i64(*count)],
                )?;
            }
            transaction.commit()
        })();
        drop(connection);
        if let Err(source) = written {
            // Keep them for the next write rather than lose them.
            let mut pending = self.pending();
            for (key, count) in counts {
                *pending.counts.entry(key).or_insert(0) += count;
            }
            return Err(self.error(source));
        }
        Ok(())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingRejections> {
        // Counters only: a panic elsewhere cannot leave them inconsistent.
        self.pending_rejections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records that the collector signs its requests' headers, from `now` on (once: the first
    /// time stays).
    pub(crate) fn start_head_signing(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ConsoleError> {
        self.lock()
            .execute(
                "UPDATE collectors SET head_signed_since = ?2
                 WHERE id = ?1 AND head_signed_since IS NULL",
                params![id, now.timestamp_millis()],
            )
            .map_err(|source| self.error(source))?;
        Ok(())
    }

    /// The collector used its current key: the previous one, kept after a rotation in case
    /// the answer was lost, is not needed any more.
    pub(crate) fn forget_previous_key(&self, id: &str) -> Result<(), ConsoleError> {
        self.lock()
            .execute(
                "UPDATE collectors SET previous_key = NULL WHERE id = ?1",
                params![id],
            )
            .map_err(|source| self.error(source))?;
        Ok(())
    }

    /// Installs a new key. Signed with the current key: that one becomes the previous key.
    /// Signed with the previous key (the collector never got the last answer): the previous
    /// key stays, and the key it never received is dropped.
    pub(crate) fn rotate_key(
        &self,
        id: &str,
        new_key: &[u8],
        used: KeyUsed,
        signed_at_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<(), ConsoleError> {
        let sql = match used {
            KeyUsed::Current => {
                "UPDATE collectors SET previous_key = key, key = ?1, last_rotate_time = ?2,
                 last_seen = ?3 WHERE id = ?4"
            }
            KeyUsed::Previous => {
                "UPDATE collectors SET key = ?1, last_rotate_time = ?2, last_seen = ?3
                 WHERE id = ?4"
            }
        };
        self.lock()
            .execute(sql, params![new_key, signed_at_ms, millis(now), id])
            .map_err(|source| self.error(source))?;
        Ok(())
    }

    /// Stores a heartbeat.
    pub(crate) fn record_heartbeat(
        &self,
        id: &str,
        heartbeat: &Heartbeat,
        signed_at_ms: i64,
        now: DateTime<Utc>,
    ) -> Result<(), ConsoleError> {
        let json = serde_json::to_string(heartbeat).unwrap_or_default();
        self.lock()
            .execute(
                "UPDATE collectors SET last_heartbeat = ?1, last_heartbeat_at = ?2,
                 last_heartbeat_time = ?3, last_seen = ?2 WHERE id = ?4",
                params![json, millis(now), signed_at_ms, id],
            )
            .map_err(|source| self.error(source))?;
        Ok(())
    }

    /// Records a durable batch: counters, the acknowledged sequence (never moving back) and the
    /// gap before it, in one transaction.
    pub(crate) fn record_batch(
        &self,
        id: &str,
        batch: &BatchRecord,
        now: DateTime<Utc>,
    ) -> Result<(), ConsoleError> {
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.error(source))?;
        let (gaps, missing) = match batch.gap {
            Some((first, last)) => (1, last.saturating_sub(first).saturating_add(1)),
            None => (0, 0),
        };
        transaction
            .execute(
                "UPDATE collectors SET
                    last_sequence_acked = MAX(last_sequence_acked, ?1),
                    batches = batches + 1,
                    events = events + ?2,
                    duplicates = duplicates + ?3,
                    gaps = gaps + ?4,
                    missing_batches = missing_batches + ?5,
                    last_seen = ?6
                 WHERE id = ?7",
                params![
                    to_i64(batch.sequence),
                    to_i64(batch.stored),
                    to_i64(batch.duplicates),
                    gaps,
                    to_i64(missing),
                    millis(now),
                    id
                ],
            )
            .map_err(|source| self.error(source))?;
        if let Some((first, last)) = batch.gap {
            transaction
                .execute(
                    "INSERT INTO collector_gaps (collector_id, first_missing, last_missing,
                     detected_at) VALUES (?1, ?2, ?3, ?4)",
                    params![id, to_i64(first), to_i64(last), millis(now)],
                )
                .map_err(|source| self.error(source))?;
        }
        transaction.commit().map_err(|source| self.error(source))
    }
}

/// A row before its heartbeat is parsed and its rejection counters are added.
struct RawRecord {
    record: CollectorRecord,
    heartbeat: Option<String>,
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        record: CollectorRecord {
            id: row.get(0)?,
            name: row.get(1)?,
            hostname: row.get(2)?,
            version: row.get(3)?,
            agency: row.get(4)?,
            created_at: from_millis(row.get(5)?),
            revoked_at: row.get::<_, Option<i64>>(6)?.map(from_millis),
            last_sequence_acked: to_u64(row.get(7)?),
            last_seen: row.get::<_, Option<i64>>(8)?.map(from_millis),
            last_heartbeat: None,
            last_heartbeat_at: row.get::<_, Option<i64>>(10)?.map(from_millis),
            batches: to_u64(row.get(11)?),
            events: to_u64(row.get(12)?),
            duplicates: to_u64(row.get(13)?),
            gaps: to_u64(row.get(14)?),
            missing_batches: to_u64(row.get(15)?),
            rejected: BTreeMap::new(),
            head_signed_since: row.get::<_, Option<i64>>(16)?.map(from_millis),
        },
        heartbeat: row.get(9)?,
    })
}

/// One line about a heartbeat, for listings: version, uptime, buffer, drops, errors.
pub fn heartbeat_summary(heartbeat: &Heartbeat) -> String {
    // The numbers come from the collector: saturate instead of overflowing.
    let total = |count: fn(&SourceHealth) -> u64| {
        heartbeat
            .sources
            .values()
            .map(count)
            .fold(0u64, u64::saturating_add)
    };
    let events_in = total(|source| source.events_in);
    let drops = total(|source| source.drops)
        .saturating_add(heartbeat.buffer_dropped)
        .saturating_add(heartbeat.buffer_corrupt_events);
    let errors = total(|source| source.errors).saturating_add(heartbeat.send_errors);
    let buffer_percent = heartbeat
        .buffer_bytes
        .saturating_mul(100)
        .checked_div(heartbeat.buffer_max_bytes)
        .unwrap_or(0);
    let mut summary = format!(
        "v{} up {} in {} buffer {}% ({} events) drops {} errors {}",
        heartbeat.version,
        uptime(heartbeat.uptime_seconds),
        events_in,
        buffer_percent,
        heartbeat.buffer_events,
        drops,
        errors
    );
    if heartbeat.rejected_batches > 0 {
        summary.push_str(&format!(
            " rejected {} batches (kept on the collector)",
            heartbeat.rejected_batches
        ));
    }
    if let Some(error) = &heartbeat.last_error {
        summary.push_str(&format!(" last error: {error}"));
    }
    printable(&summary)
}

/// `text` with control characters shown escaped: heartbeat strings come from the collector
/// and end up in an admin's terminal, where escape sequences could rewrite what is shown.
fn printable(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

fn uptime(seconds: u64) -> String {
    match seconds {
        0..=119 => format!("{seconds}s"),
        120..=7199 => format!("{}m", seconds / 60),
        7200..=172_799 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_summaries_add_up_sources() {
        let mut heartbeat = Heartbeat {
            version: "0.1.0".into(),
            uptime_seconds: 7300,
            buffer_bytes: 25,
            buffer_max_bytes: 100,
            buffer_events: 3,
            buffer_dropped: 1,
            send_errors: 2,
            ..Heartbeat::default()
        };
        for name in ["udp", "tcp"] {
            heartbeat.sources.insert(
                name.into(),
                SourceHealth {
                    events_in: 10,
                    events_out: 10,
                    drops: 1,
                    errors: 1,
                },
            );
        }
        assert_eq!(
            heartbeat_summary(&heartbeat),
            "v0.1.0 up 2h in 20 buffer 25% (3 events) drops 3 errors 4"
        );
        // Events lost to a damaged buffer are drops; refused batches are named.
        heartbeat.buffer_corrupt_events = 2;
        heartbeat.rejected_batches = 1;
        assert_eq!(
            heartbeat_summary(&heartbeat),
            "v0.1.0 up 2h in 20 buffer 25% (3 events) drops 5 errors 4 rejected 1 batches (kept on the collector)"
        );
    }

    /// A burst of refusals costs one registry write, not one each.
    #[test]
    fn refusals_in_a_burst_are_written_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let registry = Registry::open(&dir.path().join("citysoc.db"))
            .unwrap_or_else(|error| panic!("{error}"));
        for _ in 0..50 {
            registry
                .count_rejection("c-1", "bad_signature")
                .unwrap_or_else(|error| panic!("{error}"));
        }
        assert!(
            registry.pending().writes <= 1,
            "{}",
            registry.pending().writes
        );
        registry
            .write_rejections()
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(registry.pending().counts.is_empty());
    }

    /// What a collector reports reaches an admin's terminal: escape sequences are shown, not
    /// run, and counts at the edge of u64 saturate instead of overflowing.
    #[test]
    fn heartbeat_summaries_escape_control_characters_and_saturate() {
        let mut heartbeat = Heartbeat {
            version: "1\u{1b}]0;owned\u{7}".into(),
            last_error: Some("disk\u{1b}[2Jfull\nnext line".into()),
            ..Heartbeat::default()
        };
        for name in ["a", "b"] {
            heartbeat.sources.insert(
                name.into(),
                SourceHealth {
                    events_in: u64::MAX,
                    events_out: 0,
                    drops: u64::MAX,
                    errors: 0,
                },
            );
        }
        let summary = heartbeat_summary(&heartbeat);
        assert!(!summary.chars().any(char::is_control), "{summary}");
        assert!(summary.contains(r"v1\u{1b}]0;owned\u{7}"), "{summary}");
        assert!(
            summary.contains(r"disk\u{1b}[2Jfull\nnext line"),
            "{summary}"
        );
        assert!(summary.contains(&format!("in {} ", u64::MAX)), "{summary}");
    }
}
