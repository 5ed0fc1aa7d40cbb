//! The signed requests besides batches: `POST HEARTBEAT_PATH` (a health report) and
//! `POST ROTATE_PATH` (a new key). Both carry batch number 0, and each must be signed later
//! than the last one of its kind, so a captured request cannot be played again.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine as _;
use chrono::Utc;
use citysoc_collector::protocol::{
    generate_key, Heartbeat, RotateResponse, HEARTBEAT_PATH, ROTATE_PATH,
};
use serde::Serialize;

use crate::app::{blocking, named_collector, respond, App, AppState};
use crate::metrics::Metrics;
use crate::rejection::Rejected;
use crate::signed::{authenticate, RequestKind, Verified};

/// Largest heartbeat or rotation body.
pub(crate) const CONTROL_BODY_BYTES: usize = 256 << 10;

/// What the heartbeat endpoint answers.
#[derive(Debug, Serialize)]
struct HeartbeatAck {
    /// Always true: the report is stored.
    stored: bool,
}

/// The heartbeat handler.
pub(crate) async fn heartbeat(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let named = named_collector(&headers);
    let result = signed_request(&app, headers, body, HEARTBEAT_PATH, store_heartbeat).await;
    respond(&app, "heartbeat", named, result).await
}

/// The key rotation handler.
pub(crate) async fn rotate(State(app): State<App>, headers: HeaderMap, body: Body) -> Response {
    let named = named_collector(&headers);
    let result = signed_request(&app, headers, body, ROTATE_PATH, rotate_key).await;
    respond(&app, "rotate", named, result).await
}

type Work<T> = fn(&AppState, &str, Verified, &[u8]) -> Result<T, Rejected>;

/// Authenticates the request (see [`authenticate`]), then does `work` under the collector's
/// lock.
async fn signed_request<T: Send + 'static>(
    app: &App,
    headers: HeaderMap,
    body: Body,
    path: &'static str,
    work: Work<T>,
) -> Result<T, Rejected> {
    let request = authenticate(
        app,
        headers,
        body,
        path,
        RequestKind::Control,
        CONTROL_BODY_BYTES,
    )
    .await?;
    blocking(app, move |app| {
        let verified = request.verify(app)?;
        if verified.signed.sequence != 0 {
            return Err(Rejected::bad_headers(format!(
                "{path} requests carry sequence 0, not {}",
                verified.signed.sequence
            )));
        }
        let answer = work(app, &request.id, verified, &request.body);
        drop(request);
        answer
    })
    .await
}

fn store_heartbeat(
    app: &AppState,
    id: &str,
    verified: Verified,
    body: &[u8],
) -> Result<HeartbeatAck, Rejected> {
    let time_ms = verified.signed.time_ms;
    if time_ms <= verified.state.last_heartbeat_time {
        return Err(Rejected::replay(format!(
            "a heartbeat signed at {time_ms} ms is not newer than the last one"
        )));
    }
    let heartbeat: Heartbeat = serde_json::from_slice(body)
        .map_err(|error| Rejected::bad_body(format!("not a heartbeat: {error}")))?;
    app.registry
        .record_heartbeat(id, &heartbeat, time_ms, Utc::now())?;
    Metrics::add(&app.metrics.heartbeats, 1);
    Ok(HeartbeatAck { stored: true })
}

fn rotate_key(
    app: &AppState,
    id: &str,
    verified: Verified,
    _body: &[u8],
) -> Result<RotateResponse, Rejected> {
    let time_ms = verified.signed.time_ms;
    if time_ms <= verified.state.last_rotate_time {
        return Err(Rejected::replay(format!(
            "a rotation signed at {time_ms} ms is not newer than the last one"
        )));
    }
    let key = generate_key().map_err(crate::ConsoleError::from)?;
    app.registry
        .rotate_key(id, &key, verified.key_used, time_ms, Utc::now())?;
    Metrics::add(&app.metrics.rotations, 1);
    tracing::info!(collector = id, signed_with = ?verified.key_used, "key rotated");
    Ok(RotateResponse {
        key: base64::engine::general_purpose::STANDARD.encode(key),
    })
}
