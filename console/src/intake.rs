//! `POST INTAKE_PATH`: a collector's signed batch.
//!
//! The checks, in order, each refusal a 4xx counted by reason: unknown collector (401),
//! revoked (403), headers (400), signing time (401 `expired`) — all before the body is read —
//! then too many requests at once, in all or of this collector id (503 `busy`), body over the limit (413) or too slow to arrive
//! (408), signature (401 `bad_signature`), no place among the batches handled at once within
//! the wait (503 `busy`, `batch_places.rs`), batch number (409 `replay` when older than the last
//! acknowledged; the same number again is a re-send and answered again), body (400 `bad_body`:
//! not zstd, cut short, a line that is not an event; nothing of the batch is stored). Then
//! every event's `agency` and `collector` are set from the registry, never taken from the
//! payload; new events go through detection and into the store, which commits before the
//! answer, so a 200 means durable.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use citysoc_collector::protocol::{self, IntakeAck, INTAKE_PATH, MAX_BODY_BYTES};
use citysoc_collector::Event;
use serde_json::Value;

use crate::app::{blocking, named_collector, respond, App, AppState};
use crate::dedup::split_new;
use crate::detection::append_alerts;
use crate::metrics::Metrics;
use crate::registry::BatchRecord;
use crate::rejection::Rejected;
use crate::signed::{authenticate, Authenticated, RequestKind};

/// The handler.
pub(crate) async fn intake(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let named = named_collector(&headers);
    let result = receive(&app, headers, body).await;
    respond(&app, "intake", named, result).await
}

async fn receive(app: &App, headers: HeaderMap, body: Body) -> Result<IntakeAck, Rejected> {
    let request = authenticate(
        app,
        headers,
        body,
        INTAKE_PATH,
        RequestKind::Batch,
        MAX_BODY_BYTES,
    )
    .await?;
    // Authenticated first: only a collector's own batches can wait for (and take) a place.
    let place = app.batch_places.take().await.ok_or_else(Rejected::busy)?;
    blocking(app, move |app| {
        let answer = process(app, &request);
        drop(request);
        drop(place);
        answer
    })
    .await
}

/// Everything after the request is authenticated, under the collector's lock.
fn process(app: &AppState, request: &Authenticated) -> Result<IntakeAck, Rejected> {
    let now = Utc::now();
    let id = request.id.as_str();
    let verified = request.verify(app)?;
    let sequence = verified.signed.sequence;
    let last = verified.state.last_sequence_acked;
    if sequence == 0 || i64::try_from(sequence).is_err() {
        return Err(Rejected::bad_headers(format!(
            "batch number {sequence} is out of range (batches count from 1)"
        )));
    }
    if sequence < last {
        return Err(Rejected::batch_already_acknowledged(sequence, last));
    }
    let resent = sequence == last;
    let gap = (sequence > last.saturating_add(1)).then(|| (last.saturating_add(1), sequence - 1));

    let mut events = protocol::decode_batch(&request.body)
        .map_err(|error| Rejected::bad_body(error.to_string()))?;
    let agency = verified.state.agency.clone();
    let mut corrected = 0;
    // One shared copy of each for the whole batch (the event fields are `Arc<str>`).
    let (shared_agency, shared_id): (std::sync::Arc<str>, std::sync::Arc<str>) =
        (agency.as_str().into(), id.into());
    for event in &mut events {
        event.agency = Some(shared_agency.clone());
        event.collector = Some(shared_id.clone());
        corrected += u64::from(correct_received_at(event, now));
    }
    Metrics::add(&app.metrics.received_at_corrected, corrected);
    let split = split_new(&app.store, &agency, events)?;
    if let Some(detection) = &app.detection {
        let alerts = detection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .run(&split.new);
        append_alerts(&app.alerts_path, &alerts)?;
        Metrics::add(&app.metrics.alerts, alerts.len() as u64);
    }
    // Durable before acknowledged, including when another batch's commit failed and took
    // events of this one down with its writer (`add_durably` says so).
    app.store
        .add_durably(&split.new)
        .map_err(crate::ConsoleError::from)?;

    let stored = split.new.len() as u64;
    let record = BatchRecord {
        sequence,
        stored,
        duplicates: split.duplicates,
        gap,
    };
    app.registry.record_batch(id, &record, now)?;
    let metrics = &app.metrics;
    Metrics::add(&metrics.batches, 1);
    Metrics::add(&metrics.events, stored);
    Metrics::add(&metrics.duplicates, split.duplicates);
    if resent {
        Metrics::add(&metrics.batches_resent, 1);
    }
    if let Some((first, last_missing)) = gap {
        Metrics::add(&metrics.gaps, 1);
        Metrics::add(&metrics.missing_batches, last_missing - first + 1);
        tracing::warn!(
            collector = id,
            first_missing = first,
            last_missing,
            "batches never arrived"
        );
    }
    Ok(IntakeAck {
        sequence,
        stored,
        duplicates: split.duplicates,
    })
}

/// Longest a collector can plausibly have held an event before sending it (its disk buffer
/// through a long outage).
const MAX_HELD_DAYS: i64 = 366;

/// `received_at` comes from the collector, and it decides which day index an event goes to
/// when the device's own clock is implausible. A value in the future (past the clock skew a
/// signature may have) or over a year old is not when the event arrived anywhere: the server's
/// time replaces it, so no collector can spread events over arbitrary day indexes or put them
/// where retention never looks. The reported value is kept in `fields` (nothing is lost).
/// Returns whether it was corrected.
fn correct_received_at(event: &mut Event, now: DateTime<Utc>) -> bool {
    let latest = now + TimeDelta::milliseconds(protocol::MAX_CLOCK_SKEW_MS);
    let earliest = now - TimeDelta::days(MAX_HELD_DAYS);
    if (earliest..=latest).contains(&event.received_at) {
        return false;
    }
    event.fields.insert(
        "received_at_reported".into(),
        Value::String(event.received_at.to_rfc3339()),
    );
    event.received_at = now;
    true
}
