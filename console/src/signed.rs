//! Checking a signed request (batch, heartbeat, rotation) in the order the protocol fixes:
//! the collector is known, not revoked; the headers are readable; the signing time is near
//! the server's clock; the head signature (over those headers and the body's length) matches
//! the current key or the previous one; the HMAC over the body matches the same way. The
//! head signature is checked before the request takes a place or its body is read, and the
//! body's before the collector's lock is taken, so a sender without the key can neither hold
//! the places where bodies are read, nor make the server hold bodies for it, nor queue ahead of
//! the real collector. Requests without a head signature (collectors older than it) are taken
//! from a collector until it first sends one, and refused from then on. A head-signed batch
//! older than the collector's last acknowledged one is refused from its headers too (409
//! `replay`, no place taken, no body read); the same check runs again under the lock.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use citysoc_collector::protocol::{
    self, Signed, HEADER_HEAD_SIGNATURE, HEADER_SEQUENCE, HEADER_SIGNATURE, HEADER_TIME,
    MAX_CLOCK_SKEW_MS,
};
use http_body_util::LengthLimitError;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit};

use crate::app::{blocking, named_collector, App, AppState, CollectorPlace};
use crate::registry::{CollectorState, KeyUsed};
use crate::rejection::Rejected;

/// How many signed batch requests the server reads and handles at once; more get 503 and are
/// retried by their collector. Bounds the memory bodies can hold (at most this many intake
/// bodies of `MAX_BODY_BYTES`), whoever sends them.
pub(crate) const MAX_SIGNED_REQUESTS: usize = 32;

/// How many of those places one collector id can hold. A collector sends one batch at a time,
/// but a batch it gave up on (its request timed out on a slow link) may still be being read or
/// handled (waiting for a batch place, decoding) when it sends the batch again; a few places
/// let that pass. A sender that knows a
/// collector's id (not a secret) but not its key cannot pass the head signature of a collector
/// that sends one; for one that does not yet (an older collector), it can pass the header
/// checks and trickle bodies, and would otherwise take every place from every collector for as
/// long as [`BODY_TIMEOUT`] lets it.
pub(crate) const MAX_SIGNED_REQUESTS_PER_COLLECTOR: usize = 4;

/// How many heartbeats and key rotations the server reads and handles at once, in places of
/// their own. Sharing the batches' places, they met a full set whenever many collectors sent
/// at once (a district's links coming back, every collector draining its buffer): the SOC then
/// lost the health reports exactly when it wanted them. A batch waiting for a place
/// (`batch_places.rs`) holds its collector's lock, so that collector's control requests wait
/// for the lock in these places: at most [`MAX_SIGNED_REQUESTS`] collectors' locks can be held
/// so, each with at most [`MAX_CONTROL_REQUESTS_PER_COLLECTOR`] waiting, and the places past
/// those stay free for the other collectors. Control bodies are small
/// (`control::CONTROL_BODY_BYTES`, 256 KiB: these places hold at most 80 of them). A sender that knows
/// collector ids but no key can trickle bodies into these places only under the ids of older
/// collectors that have never signed their headers, two per id: it needs 40 such ids to fill
/// them.
pub(crate) const MAX_CONTROL_REQUESTS: usize =
    MAX_SIGNED_REQUESTS * MAX_CONTROL_REQUESTS_PER_COLLECTOR + 16;

/// How many of the control places one collector id can hold: a collector sends one heartbeat
/// or rotation at a time; two let a retry overlap a request the server has not yet let go.
pub(crate) const MAX_CONTROL_REQUESTS_PER_COLLECTOR: usize = 2;

/// Which places a signed request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RequestKind {
    /// A batch of events ([`MAX_SIGNED_REQUESTS`]).
    Batch,
    /// A heartbeat or key rotation ([`MAX_CONTROL_REQUESTS`]).
    Control,
}

impl RequestKind {
    /// How many places of this kind one collector id may hold.
    pub(crate) fn per_collector(self) -> usize {
        match self {
            RequestKind::Batch => MAX_SIGNED_REQUESTS_PER_COLLECTOR,
            RequestKind::Control => MAX_CONTROL_REQUESTS_PER_COLLECTOR,
        }
    }
}

/// How long a body may take to arrive once its headers were accepted: a sender trickling a
/// body would otherwise hold its memory and its place for ever.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// A request whose signature checked out.
pub(crate) struct Verified {
    /// The collector's registry state, read under its lock.
    pub state: CollectorState,
    /// The signed fields.
    pub signed: Signed,
    /// The key that matched.
    pub key_used: KeyUsed,
}

/// A signed request read and authenticated, with the collector's lock held: one request per
/// collector at a time, so sequence and replay checks see every earlier request of that
/// collector finished. Holds its place among the requests the server reads at once until
/// dropped.
pub(crate) struct Authenticated {
    /// The collector id.
    pub id: String,
    /// The body, checked against the signature.
    pub body: Bytes,
    claimed: Claimed,
    signed_with: Vec<u8>,
    _lock: OwnedMutexGuard<()>,
    _permit: OwnedSemaphorePermit,
    _place: CollectorPlace,
}

impl Authenticated {
    /// Under the lock (on the blocking pool): the registry state read again, since a rotation
    /// or revocation may have happened while the body was read; the key that signed must still
    /// be the collector's current or previous one. Using the current key retires the previous.
    pub(crate) fn verify(&self, app: &AppState) -> Result<Verified, Rejected> {
        let mut state = known_collector(app, &self.id)?;
        let key_used = if state.key == self.signed_with {
            KeyUsed::Current
        } else if state.previous_key.as_deref() == Some(self.signed_with.as_slice()) {
            KeyUsed::Previous
        } else {
            return Err(Rejected::bad_signature());
        };
        if key_used == KeyUsed::Current && state.previous_key.is_some() {
            app.registry.forget_previous_key(&self.id)?;
            state.previous_key = None;
        }
        Ok(Verified {
            state,
            signed: self.claimed.signed.clone(),
            key_used,
        })
    }
}

/// What a request's headers claim, checked before its body is read: the collector is known
/// and not revoked, the headers are readable, the signing time is near the server's clock. An
/// unauthenticated sender learns nothing more and holds no memory for a body it cannot sign.
struct Claimed {
    signed: Signed,
    signature: String,
    /// The collector's keys when the request arrived; the signature is checked against them
    /// outside the collector's lock, so forged requests never queue on it.
    keys: Vec<Vec<u8>>,
    /// The body length the head signature covers, when the headers carried one that matched
    /// one of `keys`.
    head_signed_length: Option<u64>,
    /// The collector's last acknowledged batch when the request arrived.
    last_acknowledged: u64,
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

/// Authenticates a signed request, in the order the protocol fixes and each step only once
/// the one before passed: the headers ([`claim`]); a place among the signed requests of its
/// `kind` the server handles at once (503 `busy` past [`MAX_SIGNED_REQUESTS`] batches or
/// [`MAX_CONTROL_REQUESTS`] control requests, or past the kind's places per collector id);
/// the body, at most
/// `limit` bytes (413) and within [`BODY_TIMEOUT`] (408); the signature (401), checked on the
/// blocking pool; then the collector's lock.
pub(crate) async fn authenticate(
    app: &App,
    headers: HeaderMap,
    body: Body,
    path: &'static str,
    kind: RequestKind,
    limit: usize,
) -> Result<Authenticated, Rejected> {
    let id = collector_id(&headers)?;
    let claimed = {
        let (id, headers) = (id.clone(), headers.clone());
        blocking(app, move |app| claim(app, &id, &headers, path, Utc::now())).await?
    };
    // A head-signed batch older than the last acknowledged one (a captured request replayed
    // within the clock's window, a collector that lost its numbering) is refused from its
    // headers, which the head signature covers: it takes no place and its body is not read.
    // Checked again under the collector's lock once a body is read (`intake::process`): the
    // number only grows, so a stale read here only lets a request through to that check.
    // (Batch 0 is out of range, which `intake::process` answers with a 400 of its own.)
    if kind == RequestKind::Batch
        && claimed.head_signed_length.is_some()
        && (1..claimed.last_acknowledged).contains(&claimed.signed.sequence)
    {
        return Err(Rejected::batch_already_acknowledged(
            claimed.signed.sequence,
            claimed.last_acknowledged,
        ));
    }
    let place = app.collector_place(kind, &id).ok_or_else(Rejected::busy)?;
    let permit = app
        .places(kind)
        .clone()
        .try_acquire_owned()
        .map_err(|_| Rejected::busy())?;
    // A head-signed body is read no further than the length signed (and must have it: the
    // server speaks HTTP/1.1, where `Content-Length` fixes it, so this is defence in depth).
    let limit = claimed.head_signed_length.map_or(limit, |length| {
        limit.min(usize::try_from(length).unwrap_or(usize::MAX))
    });
    let body = read_body(&headers, body, limit).await?;
    if claimed
        .head_signed_length
        .is_some_and(|length| length != body.len() as u64)
    {
        return Err(Rejected::bad_head_signature());
    }
    let (claimed, body, signed_with) = tokio::task::spawn_blocking(move || {
        let signed_with = claimed
            .keys
            .iter()
            .find(|key| {
                protocol::verify(key, path, &claimed.signed, &body, &claimed.signature).is_ok()
            })
            .cloned();
        (claimed, body, signed_with)
    })
    .await
    .map_err(|error| {
        Rejected::from(crate::ConsoleError::Task(format!(
            "checking a signature: {error}"
        )))
    })?;
    let signed_with = signed_with.ok_or_else(Rejected::bad_signature)?;
    let lock = app.collector_lock(&id);
    Ok(Authenticated {
        id,
        body,
        claimed,
        signed_with,
        _lock: lock.lock_owned().await,
        _permit: permit,
        _place: place,
    })
}

/// The header checks ([`Claimed`]).
fn claim(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    path: &str,
    now: DateTime<Utc>,
) -> Result<Claimed, Rejected> {
    let state = known_collector(app, id)?;
    let sequence: u64 = number_header(headers, HEADER_SEQUENCE)?;
    let time_ms: i64 = number_header(headers, HEADER_TIME)?;
    let signature = header(headers, HEADER_SIGNATURE)?.to_owned();
    let skew = now.timestamp_millis().saturating_sub(time_ms);
    if skew.saturating_abs() > MAX_CLOCK_SKEW_MS {
        return Err(Rejected::expired(format!(
            "signed {} s {} the server's clock, more than the {} s allowed: check the collector's clock",
            skew.saturating_abs() / 1000,
            if skew > 0 { "behind" } else { "ahead of" },
            MAX_CLOCK_SKEW_MS / 1000
        )));
    }
    let mut keys = vec![state.key];
    keys.extend(state.previous_key);
    let signed = Signed {
        collector: id.to_owned(),
        sequence,
        time_ms,
    };
    let head_signed = match headers.get(HEADER_HEAD_SIGNATURE) {
        Some(head_signature) => {
            let head_signature = head_signature.to_str().map_err(|_| {
                Rejected::bad_headers(format!("header {HEADER_HEAD_SIGNATURE} is not text"))
            })?;
            // The length the signature covers is the one the body must have (checked again
            // once it is read). An HTTP/1.1 request with neither `Content-Length` nor
            // `Transfer-Encoding` has no body.
            let length: u64 = if headers.contains_key(CONTENT_LENGTH) {
                number_header(headers, CONTENT_LENGTH.as_str())?
            } else if headers.contains_key(TRANSFER_ENCODING) {
                return Err(Rejected::bad_headers(format!(
                    "a request with {HEADER_HEAD_SIGNATURE} needs Content-Length (its body's length is signed)"
                )));
            } else {
                0
            };
            let matches = keys.iter().any(|key| {
                protocol::verify_head(key, path, &signed, length, head_signature).is_ok()
            });
            if !matches {
                return Err(Rejected::bad_head_signature());
            }
            // Only its holder can have made this tag: from now on the collector's requests
            // must carry one. Recorded here, before any place is taken, so that a collector
            // whose places a sender is already holding still gets them back.
            if !state.head_signing {
                app.registry.start_head_signing(id, now)?;
            }
            Some(length)
        }
        None if state.head_signing => return Err(Rejected::missing_head_signature(id, false)),
        None if app.require_head_signatures => {
            return Err(Rejected::missing_head_signature(id, true))
        }
        None => None,
    };
    Ok(Claimed {
        signed,
        signature,
        keys,
        head_signed_length: head_signed,
        last_acknowledged: state.last_sequence_acked,
    })
}

/// The body, at most `limit` bytes (413: a `Content-Length` over it is refused before
/// reading) and within [`BODY_TIMEOUT`] (408); unreadable otherwise (400).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Rejected> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Rejected::too_large(limit));
    }
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(Rejected::body_timeout(BODY_TIMEOUT.as_secs())),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let error = error.into_inner();
            if error.downcast_ref::<LengthLimitError>().is_some() {
                Err(Rejected::too_large(limit))
            } else {
                Err(Rejected::unreadable_body(format!(
                    "cannot read the body: {error}"
                )))
            }
        }
    }
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
