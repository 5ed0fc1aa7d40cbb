//! One-time enrollment tokens: created by an agency admin, exchanged once for a collector
//! identity and key. Only a SHA-256 of each token is stored, so a copy of the database does
//! not hold usable tokens.

use chrono::{DateTime, Utc};
use citysoc_collector::protocol::{generate_key, random_token, KEY_BYTES};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{from_millis, millis, Registry};
use crate::ConsoleError;

/// Random bytes in a token (32 characters of URL-safe base64).
const TOKEN_BYTES: usize = 24;
/// Random bytes in a collector id.
const COLLECTOR_ID_BYTES: usize = 12;
/// Longest agency name accepted.
const MAX_AGENCY_BYTES: usize = 128;

/// Hex digits of a token's SHA-256 shown as its id (`token list`, `token revoke`): enough to
/// tell the tokens of a server apart, useless for enrolling.
pub const TOKEN_ID_DIGITS: usize = 12;
/// Fewest hex digits `token revoke` accepts, so a slip of the keyboard cannot match a token.
pub const MIN_TOKEN_ID_DIGITS: usize = 8;

/// A token just created: the only time its text exists outside the admin's hands.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// The token to give to the collector's `enroll` command.
    pub token: String,
    /// Its id, for `token list` and `token revoke`.
    pub id: String,
    /// The agency every event of the enrolled collector will belong to.
    pub agency: String,
    /// After this the token is refused.
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// No such token was ever created.
    Unknown,
    /// The token already enrolled a collector.
    Used,
    /// The token's time to live is over.
    Expired,
    /// An admin revoked the token before it was used.
    Revoked,
}

/// A token as `token list` shows it: never the token itself, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// The first [`TOKEN_ID_DIGITS`] hex digits of the token's SHA-256.
    pub id: String,
    /// The agency it enrolls into.
    pub agency: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// After this it is refused.
    pub expires_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    /// When it enrolled a collector.
    pub used_at: Option<DateTime<Utc>>,
    /// The collector it enrolled.
    pub used_by: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
}

impl TokenRecord {
    /// `used`, `revoked`, `expired` or `open` (can still enroll a collector) at `now`.
    pub fn status(&self, now: DateTime<Utc>) -> &'static str {
        if self.used_at.is_some() {
            "used"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "open"
        }
    }
}

const TOKEN_COLUMNS: &str =
    "hash, agency, created_at, expires_at, created_by, used_at, used_by, revoked_at, revoked_by";

fn token_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: String = row.get(0)?;
    Ok(TokenRecord {
        id: hash.chars().take(TOKEN_ID_DIGITS).collect(),
        agency: row.get(1)?,
        created_at: from_millis(row.get(2)?),
        expires_at: from_millis(row.get(3)?),
        created_by: row.get(4)?,
        used_at: row.get::<_, Option<i64>>(5)?.map(from_millis),
        used_by: row.get(6)?,
        revoked_at: row.get::<_, Option<i64>>(7)?.map(from_millis),
        revoked_by: row.get(8)?,
    })
}

/// A new collector's identity.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The id for the `x-citysoc-collector` header.
    pub collector_id: String,
    /// The agency of the token.
    pub agency: String,
    /// The HMAC key.
    pub key: [u8; KEY_BYTES],
}

/// SHA-256 of a token, hex.
fn token_hash(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.trim().as_bytes());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Checks an agency name: it names directories and scopes every search, so it must be plain.
pub fn validate_agency(agency: &str) -> Result<(), ConsoleError> {
    if agency.is_empty() || agency.trim() != agency {
        return Err(ConsoleError::Invalid(format!(
            "agency {agency:?}: must be non-empty, without leading or trailing spaces"
        )));
    }
    if agency.len() > MAX_AGENCY_BYTES || agency.chars().any(char::is_control) {
        return Err(ConsoleError::Invalid(format!(
            "agency {agency:?}: at most {MAX_AGENCY_BYTES} bytes, no control characters"
        )));
    }
    // Refused here, not at its first batch: the store could never create its directory.
    if let Some(problem) = citysoc_index::tantivy_store::agency_name_problem(agency) {
        return Err(ConsoleError::Invalid(problem));
    }
    Ok(())
}

impl Registry {
    /// Creates a one-time token for `agency`, valid for `ttl` from `now`.
    pub fn create_token(
        &self,
        agency: &str,
        ttl: chrono::Duration,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<CreatedToken, ConsoleError> {
        validate_agency(agency)?;
        if ttl <= chrono::Duration::zero() {
            return Err(ConsoleError::Invalid(
                "a token must live for some time: give a positive --ttl".into(),
            ));
        }
        let expires_at = now
            .checked_add_signed(ttl)
            .ok_or_else(|| ConsoleError::Invalid("--ttl is too long".into()))?;
        let token = random_token(TOKEN_BYTES)?;
        self.lock()
            .execute(
                "INSERT INTO enrollment_tokens (hash, agency, created_at, expires_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    token_hash(&token),
                    agency,
                    millis(now),
                    millis(expires_at),
                    created_by
                ],
            )
            .map_err(|source| self.error(source))?;
        Ok(CreatedToken {
            id: token_hash(&token).chars().take(TOKEN_ID_DIGITS).collect(),
            token,
            agency: agency.to_owned(),
            expires_at,
        })
    }

    /// Every token ever created, newest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, ConsoleError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY created_at DESC, hash"
            ))
            .map_err(|source| self.error(source))?;
        let rows = statement
            .query_map([], token_record)
            .map_err(|source| self.error(source))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|source| self.error(source))
    }

    /// Revokes the one unused token whose id starts with `id` (at least
    /// [`MIN_TOKEN_ID_DIGITS`] hex digits), so it can no longer enroll a collector. A token
    /// already used is not revoked here: the collector it enrolled is (`collectors revoke`).
    pub fn revoke_token(
        &self,
        id: &str,
        revoked_by: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenRecord, ConsoleError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < MIN_TOKEN_ID_DIGITS || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(ConsoleError::Invalid(format!(
                "{id:?} is not a token id: give at least {MIN_TOKEN_ID_DIGITS} hex digits of the id `token list` shows"
            )));
        }
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.error(source))?;
        let found = {
            let mut statement = transaction
                .prepare(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE substr(hash, 1, ?1) = ?2"
                ))
                .map_err(|source| self.error(source))?;
            let rows = statement
                .query_map(params![id.len() as i64, id], token_record)
                .map_err(|source| self.error(source))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|source| self.error(source))?
        };
        let token = match found.as_slice() {
            [] => return Err(ConsoleError::Invalid(format!("no token with id {id}"))),
            [token] => token.clone(),
            _ => {
                return Err(ConsoleError::Invalid(format!(
                    "{} tokens have ids starting with {id}: give more digits",
                    found.len()
                )))
            }
        };
        if let Some(collector) = &token.used_by {
            return Err(ConsoleError::Invalid(format!(
                "token {} already enrolled collector {collector}: revoke the collector instead (`citysoc server collectors revoke`)",
                token.id
            )));
        }
        if token.revoked_at.is_some() {
            return Ok(token);
        }
        transaction
            .execute(
                "UPDATE enrollment_tokens SET revoked_at = ?1, revoked_by = ?2
                 WHERE substr(hash, 1, ?3) = ?4 AND used_at IS NULL AND revoked_at IS NULL",
                params![millis(now), revoked_by, id.len() as i64, id],
            )
            .map_err(|source| self.error(source))?;
        transaction.commit().map_err(|source| self.error(source))?;
        Ok(TokenRecord {
            revoked_at: Some(from_millis(millis(now))),
            revoked_by: Some(revoked_by.to_owned()),
            ..token
        })
    }

    /// Exchanges a token for a new collector: checks it is known, unused and unexpired, marks
    /// it used and creates the collector, all in one transaction, so one token can never
    /// enroll two collectors (a second caller waits for the first and then finds it used).
    pub fn enroll(
        &self,
        token: &str,
        name: &str,
        hostname: &str,
        version: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Enrolled, TokenProblem>, ConsoleError> {
        let hash = token_hash(token);
        let mut connection = self.lock();
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.error(source))?;
        let found: Option<(String, i64, Option<i64>, Option<i64>)> = transaction
            .query_row(
                "SELECT agency, expires_at, used_at, revoked_at FROM enrollment_tokens WHERE hash = ?1",
                params![hash],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(|source| self.error(source))?;
        let Some((agency, expires_at, used_at, revoked_at)) = found else {
            return Ok(Err(TokenProblem::Unknown));
        };
        if used_at.is_some() {
            return Ok(Err(TokenProblem::Used));
        }
        if revoked_at.is_some() {
            return Ok(Err(TokenProblem::Revoked));
        }
        if from_millis(expires_at) <= now {
            return Ok(Err(TokenProblem::Expired));
        }
        let collector_id = format!("c-{}", random_token(COLLECTOR_ID_BYTES)?);
        let key = generate_key()?;
        let marked = transaction
            .execute(
                "UPDATE enrollment_tokens SET used_at = ?1, used_by = ?2
                 WHERE hash = ?3 AND used_at IS NULL AND revoked_at IS NULL",
                params![millis(now), collector_id, hash],
            )
            .map_err(|source| self.error(source))?;
        if marked != 1 {
            // Unreachable while the transaction holds the write lock; kept as the guard the
            // promise rests on.
            return Ok(Err(TokenProblem::Used));
        }
        transaction
            .execute(
                "INSERT INTO collectors (id, name, hostname, version, agency, key, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    collector_id,
                    name,
                    hostname,
                    version,
                    agency,
                    key.as_slice(),
                    millis(now)
                ],
            )
            .map_err(|source| self.error(source))?;
        transaction.commit().map_err(|source| self.error(source))?;
        Ok(Ok(Enrolled {
            collector_id,
            agency,
            key,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn agency_names_are_checked() {
        assert!(validate_agency("quan-1").is_ok());
        assert!(validate_agency("Sở Y tế").is_ok());
        // 98 bytes, but 204 once encoded as a directory name: refused at enrollment, not by
        // every batch of the agency.
        let long = "Ủy ban nhân dân Phường Bến Thành Quận 1 Thành phố Hồ Chí Minh - Phòng Văn hóa";
        assert!(validate_agency("Ủy ban nhân dân Phường Bến Thành Quận 1").is_ok());
        for bad in ["", " quan-1", "a\nb", &"x".repeat(129), long] {
            assert!(validate_agency(bad).is_err(), "{bad:?}");
        }
    }
}
