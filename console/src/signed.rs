//! Checking a signed request (batch, heartbeat, rotation) in the order the protocol fixes:
//! the collector is known, not revoked; the headers are readable; the signing time is near
//! the server's clock; the HMAC matches the current key, or the previous one while the
//! collector has not yet used the current one.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use citysoc_collector::protocol::{
    self, Signed, HEADER_SEQUENCE, HEADER_SIGNATURE, HEADER_TIME, MAX_CLOCK_SKEW_MS,
};

use tokio::sync::OwnedMutexGuard;

use crate::app::{blocking, named_collector, App, AppState};
use crate::registry::{CollectorState, KeyUsed};
use crate::rejection::Rejected;

/// A request whose signature checked out.
pub(crate) struct Verified {
    /// The collector's registry state, read under its lock.
    pub state: CollectorState,
    /// The signed fields.
    pub signed: Signed,
    /// The key that matched.
    pub key_used: KeyUsed,
}

/// The collector id header (400 when missing).
pub(crate) fn collector_id(headers: &HeaderMap) -> Result<String, Rejected> {
    named_collector(headers).ok_or_else(|| {
        Rejected::bad_headers(format!("missing header {}", protocol::HEADER_COLLECTOR))
    })
}

/// Known and not revoked (401, 403), before anything else is looked at.
pub(crate) fn known_collector(app: &AppState, id: &str) -> Result<CollectorState, Rejected> {
    let state = app
        .registry
        .state(id)?
        .ok_or_else(|| Rejected::unknown_collector(id))?;
    if state.revoked {
        return Err(Rejected::revoked(id));
    }
    Ok(state)
}

/// The body as read, or why it could not be: over `limit` (413) or unreadable (400).
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, Rejected> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Rejected::too_large(limit)
        } else {
            Rejected::unreadable_body(format!("cannot read the body: {rejection}"))
        }
    })
}

/// The collector a signed request names, checked as known and not revoked, with its lock
/// held: one request per collector at a time, so sequence and replay checks see every
/// earlier request of that collector finished.
pub(crate) async fn lock_collector(
    app: &App,
    headers: &HeaderMap,
) -> Result<(String, OwnedMutexGuard<()>), Rejected> {
    let id = collector_id(headers)?;
    let lock = {
        let id = id.clone();
        blocking(app, move |app| {
            known_collector(app, &id)?;
            Ok(app.collector_lock(&id))
        })
        .await?
    };
    Ok((id, lock.lock_owned().await))
}

/// The full check; the caller holds the collector's lock. Using the current key retires the
/// previous one.
pub(crate) fn verify(
    app: &AppState,
    id: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, Rejected> {
    // Read again under the lock: a rotation or revocation may have happened meanwhile.
    let state = known_collector(app, id)?;
    let sequence: u64 = number_header(headers, HEADER_SEQUENCE)?;
    let time_ms: i64 = number_header(headers, HEADER_TIME)?;
    let signature = header(headers, HEADER_SIGNATURE)?;
    let skew = now.timestamp_millis().saturating_sub(time_ms);
    if skew.saturating_abs() > MAX_CLOCK_SKEW_MS {
        return Err(Rejected::expired(format!(
            "signed {} s {} the server's clock, more than the {} s allowed: check the collector's clock",
            skew.saturating_abs() / 1000,
            if skew > 0 { "behind" } else { "ahead of" },
            MAX_CLOCK_SKEW_MS / 1000
        )));
    }
    let signed = Signed {
        collector: id.to_owned(),
        sequence,
        time_ms,
    };
    let key_used =
        if protocol::verify(&state.key, path, &signed, body, signature).is_ok() {
            KeyUsed::Current
        } else if state.previous_key.as_deref().is_some_and(|previous| {
            protocol::verify(previous, path, &signed, body, signature).is_ok()
        }) {
            KeyUsed::Previous
        } else {
            return Err(Rejected::bad_signature());
        };
    let mut state = state;
    if key_used == KeyUsed::Current && state.previous_key.is_some() {
        app.registry.forget_previous_key(id)?;
        state.previous_key = None;
    }
    Ok(Verified {
        state,
        signed,
        key_used,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Rejected> {
    headers
        .get(name)
        .ok_or_else(|| Rejected::bad_headers(format!("missing header {name}")))?
        .to_str()
        .map_err(|_| Rejected::bad_headers(format!("header {name} is not text")))
}

fn number_header<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<T, Rejected> {
    let text = header(headers, name)?;
    text.trim()
        .parse()
        .map_err(|_| Rejected::bad_headers(format!("header {name} is not a number: {text:?}")))
}
