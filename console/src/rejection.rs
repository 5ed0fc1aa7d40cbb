//! Refused requests: a status, a machine-readable reason, and a message for people, sent as a
//! [`Rejection`] JSON body. Every one is counted where it is answered ([`crate::app`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use citysoc_collector::protocol::Rejection;

use crate::ConsoleError;

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The HTTP status (4xx: the request is wrong and retrying it will not help; 5xx: the
    /// server failed and the collector retries).
    pub status: StatusCode,
    /// The reason label (also the counter's label).
    pub reason: &'static str,
    /// What was wrong, for people.
    pub message: String,
    /// With a replay: the newest batch number acknowledged from the collector.
    pub last_acknowledged: Option<u64>,
}

impl Rejected {
    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Rejected {
            status,
            reason,
            message: message.into(),
            last_acknowledged: None,
        }
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body is larger than {limit} bytes: send smaller batches"),
        )
    }

    /// 408: the body did not arrive in time (a slow or stalled sender holds server memory).
    pub fn body_timeout(seconds: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the body did not arrive within {seconds} s"),
        )
    }

    /// 503: too many signed requests are being read or handled at once; try again later.
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the server is handling as many requests as it takes at once: retry shortly",
        )
    }

    /// 400: the body could not be read for another reason.
    pub fn unreadable_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_body", message)
    }

    /// 401: no collector with this id.
    pub fn unknown_collector(id: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unknown_collector",
            format!("no collector `{id}` is enrolled: enroll it again with a new token"),
        )
    }

    /// 403: the collector was revoked.
    pub fn revoked(id: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "revoked",
            format!("collector `{id}` was revoked"),
        )
    }

    /// 400: a protocol header is missing or unreadable.
    pub fn bad_headers(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_headers", message)
    }

    /// 401: the signing time is too far from the server's clock.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "expired", message)
    }

    /// 401: the signature does not match any of the collector's keys.
    pub fn bad_signature() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "signature does not match the collector's key",
        )
    }

    /// 401: the head signature (`x-citysoc-head-signature`) does not match any of the
    /// collector's keys: refused from the headers alone, before a place or the body.
    pub fn bad_head_signature() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad_head_signature",
            "head signature does not match the collector's key",
        )
    }

    /// 401: no head signature from a collector that has sent one before.
    pub fn missing_head_signature(id: &str, required_of_all: bool) -> Self {
        let message = match required_of_all {
            true => format!(
                "this server requires x-citysoc-head-signature on every collector's requests (--require-head-signatures), and this request for collector `{id}` has none: it is not from that collector, or the collector is older than head signatures (upgrade it)"
            ),
            false => format!(
                "collector `{id}` signs its requests' headers, and this request has no x-citysoc-head-signature: it is not from that collector, or the collector was downgraded (upgrade it again; for a downgrade on purpose, `citysoc server collectors forget-head-signing --data DIR {id}` takes its unsigned requests again)"
            ),
        };
        Self::new(StatusCode::UNAUTHORIZED, "missing_head_signature", message)
    }

    /// 409: a request the server already processed, or an older one.
    pub fn replay(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "replay", message)
    }

    /// 409: a batch older than the newest one acknowledged (`last`): a replay, or a
    /// collector that lost its numbering (it renumbers after `last`).
    pub fn replayed_batch(message: impl Into<String>, last: u64) -> Self {
        Rejected {
            last_acknowledged: Some(last),
            ..Self::new(StatusCode::CONFLICT, "replay", message)
        }
    }

    /// 409 `replay`: batch `sequence` is older than `last`, the collector's last acknowledged.
    pub fn batch_already_acknowledged(sequence: u64, last: u64) -> Self {
        Self::replayed_batch(
            format!("batch {sequence} is older than batch {last}, already acknowledged"),
            last,
        )
    }

    /// 400: the batch is not zstd NDJSON of events; nothing of it was stored.
    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_body", message)
    }

    /// 400: a JSON request body is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401/403: an enrollment token that cannot be used.
    pub fn token(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, reason, message)
    }

    /// 500: the server failed (the store, the registry); the collector retries.
    pub fn internal(error: &ConsoleError) -> Self {
        // What failed, without the server's paths and database details: those go to the
        // server's log (the caller logs `error` whole), not to whoever sent the request.
        let what = match error {
            ConsoleError::Store(_) => {
                "the event store failed before the batch was stored whole; send it again (events already stored are kept once)"
            }
            ConsoleError::Registry { .. }
            | ConsoleError::RegistryTooNew { .. }
            | ConsoleError::CorruptRecord { .. } => "the collector registry failed",
            ConsoleError::Io { .. } => "the server could not read or write a file",
            _ => "the server failed",
        };
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("server error: {what} (the SOC's server log has the details)"),
        )
    }
}

impl From<ConsoleError> for Rejected {
    fn from(error: ConsoleError) -> Self {
        tracing::error!(%error, "request failed");
        Rejected::internal(&error)
    }
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(Rejection {
                reason: self.reason.to_owned(),
                message: self.message,
                last_acknowledged: self.last_acknowledged,
            }),
        )
            .into_response()
    }
}
