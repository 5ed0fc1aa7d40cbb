//! Schema migrations: `MIGRATIONS[n]` takes the database from `user_version` n to n + 1. Only
//! ever append; a released step never changes.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::ConsoleError;

const MIGRATIONS: &[&str] = &[
    // 1: tokens and collectors.
    "CREATE TABLE enrollment_tokens (
        hash        TEXT PRIMARY KEY,      -- SHA-256 of the token, hex: the token itself is never stored
        agency      TEXT NOT NULL,
        created_at  INTEGER NOT NULL,      -- Unix milliseconds, like every time here
        expires_at  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        used_at     INTEGER,
        used_by     TEXT                   -- the collector it enrolled
    );
    CREATE TABLE collectors (
        id                    TEXT PRIMARY KEY,
        name                  TEXT NOT NULL,
        hostname              TEXT NOT NULL,
        version               TEXT NOT NULL,
        agency                TEXT NOT NULL,
        key                   BLOB NOT NULL,  -- as issued: the server needs it to check HMACs
        previous_key          BLOB,           -- valid until the first request signed with `key`
        revoked_at            INTEGER,
        created_at            INTEGER NOT NULL,
        last_sequence_acked   INTEGER NOT NULL DEFAULT 0,
        last_seen             INTEGER,
        last_heartbeat        TEXT,
        last_heartbeat_at     INTEGER,
        last_heartbeat_time   INTEGER NOT NULL DEFAULT 0, -- signing time of the last heartbeat
        last_rotate_time      INTEGER NOT NULL DEFAULT 0, -- signing time of the last rotation
        batches               INTEGER NOT NULL DEFAULT 0,
        events                INTEGER NOT NULL DEFAULT 0,
        duplicates            INTEGER NOT NULL DEFAULT 0,
        gaps                  INTEGER NOT NULL DEFAULT 0,
        missing_batches       INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE collector_rejections (
        collector_id  TEXT NOT NULL REFERENCES collectors(id),
        reason        TEXT NOT NULL,
        count         INTEGER NOT NULL,
        PRIMARY KEY (collector_id, reason)
    );
    CREATE TABLE collector_gaps (
        collector_id   TEXT NOT NULL REFERENCES collectors(id),
        first_missing  INTEGER NOT NULL,
        last_missing   INTEGER NOT NULL,
        detected_at    INTEGER NOT NULL
    );
    CREATE INDEX collector_gaps_by_collector ON collector_gaps (collector_id);",
    // 2: tokens can be revoked before they are used.
    "ALTER TABLE enrollment_tokens ADD COLUMN revoked_at INTEGER;
    ALTER TABLE enrollment_tokens ADD COLUMN revoked_by TEXT;",
    // 3: when a collector first signed its requests' headers (`x-citysoc-head-signature`);
    // from then on a request for it without that header is refused before it takes a place.
    "ALTER TABLE collectors ADD COLUMN head_signed_since INTEGER;",
];

/// Brings the schema up to date.
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), ConsoleError> {
    let error = |source| ConsoleError::Registry {
        path: path.to_path_buf(),
        source,
    };
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(error)?;
    let version: i64 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(error)?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(ConsoleError::RegistryTooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    for step in MIGRATIONS.iter().skip(version.max(0) as usize) {
        transaction.execute_batch(step).map_err(error)?;
    }
    transaction
        .pragma_update(None, "user_version", known)
        .map_err(error)?;
    transaction.commit().map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    /// A registry written by the first release (schema 1, a token created) opens under this
    /// one: migrated forward, its token listed and revocable; one from a newer release is
    /// refused rather than misread.
    #[test]
    fn a_first_release_registry_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = dir.path().join("citysoc.db");
        {
            let connection = Connection::open(&path).unwrap_or_else(|error| panic!("{error}"));
            connection
                .execute_batch(MIGRATIONS[0])
                .unwrap_or_else(|error| panic!("{error}"));
            connection
                .execute_batch(
                    "INSERT INTO enrollment_tokens (hash, agency, created_at, expires_at, created_by)
                     VALUES ('0123456789abcdef', 'quan-1', 0, 4102444800000, 'old-admin');
                     PRAGMA user_version = 1;",
                )
                .unwrap_or_else(|error| panic!("{error}"));
        }
        let registry = Registry::open(&path).unwrap_or_else(|error| panic!("{error}"));
        let tokens = registry.tokens().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].id, "0123456789ab");
        assert_eq!(tokens[0].revoked_at, None);
        let revoked = registry
            .revoke_token("01234567", "soc", chrono::Utc::now())
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(revoked.revoked_at.is_some());
        drop(registry);

        let connection = Connection::open(&path).unwrap_or_else(|error| panic!("{error}"));
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(version, MIGRATIONS.len() as i64);
        connection
            .pragma_update(None, "user_version", version + 1)
            .unwrap_or_else(|error| panic!("{error}"));
        drop(connection);
        assert!(matches!(
            Registry::open(&path),
            Err(ConsoleError::RegistryTooNew { .. })
        ));
    }
}
