//! The query-string parser (nom): query text → [`Query`], with byte positions in every error.

use super::Query;
use crate::IndexError;

/// Parses and resolves a query string. The empty string and `*` mean every event.
pub fn parse(text: &str) -> Result<Query, IndexError> {
    if text.trim().is_empty() || text.trim() == "*" {
        return Ok(Query::All);
    }
    Err(IndexError::query(0, "query parser not written yet"))
}
