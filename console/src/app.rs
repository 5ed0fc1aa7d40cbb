//! The state every handler shares, and the two things every handler does the same way:
//! running registry and store work off the async threads, and answering a refusal (counted in
//! the metrics and against the collector the request named).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use citysoc_collector::protocol::HEADER_COLLECTOR;
use citysoc_index::TantivyStore;
use serde::Serialize;

use crate::batch_places::BatchPlaces;
use crate::detection::Detection;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::rejection::Rejected;
use crate::signed::RequestKind;

/// What the handlers share.
pub(crate) struct AppState {
    pub registry: Arc<Registry>,
    pub store: Arc<TantivyStore>,
    pub metrics: Arc<Metrics>,
    pub detection: Option<Mutex<Detection>>,
    pub alerts_path: PathBuf,
    /// One lock per collector, so the sequence bookkeeping and key changes of one collector
    /// happen one request at a time. Entries are made only for enrolled collectors.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Places for signed batch requests being read or handled
    /// ([`crate::signed::MAX_SIGNED_REQUESTS`]).
    pub signed_requests: Arc<tokio::sync::Semaphore>,
    /// Places for heartbeats and key rotations being read or handled
    /// ([`crate::signed::MAX_CONTROL_REQUESTS`]).
    pub control_requests: Arc<tokio::sync::Semaphore>,
    /// Signed requests being read or handled, per kind and claimed collector id
    /// ([`RequestKind`]'s places per collector).
    in_flight: Arc<Mutex<HashMap<(RequestKind, String), usize>>>,
    /// Places for batches being decoded, checked and stored (`batch_places.rs`).
    pub batch_places: BatchPlaces,
    /// Head signatures required of every collector (`ServerConfig::require_head_signatures`).
    pub require_head_signatures: bool,
}

/// One of a collector's places among the signed requests in flight; given back when dropped.
pub(crate) struct CollectorPlace {
    key: (RequestKind, String),
    in_flight: Arc<Mutex<HashMap<(RequestKind, String), usize>>>,
}

impl Drop for CollectorPlace {
    fn drop(&mut self) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

/// Shared handle to the state.
pub(crate) type App = Arc<AppState>;

impl AppState {
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<TantivyStore>,
        metrics: Arc<Metrics>,
        detection: Option<Detection>,
        alerts_path: PathBuf,
        batch_places: BatchPlaces,
        require_head_signatures: bool,
    ) -> Self {
        AppState {
            registry,
            store,
            metrics,
            detection: detection.map(Mutex::new),
            alerts_path,
            locks: Mutex::new(HashMap::new()),
            signed_requests: Arc::new(tokio::sync::Semaphore::new(
                crate::signed::MAX_SIGNED_REQUESTS,
            )),
            control_requests: Arc::new(tokio::sync::Semaphore::new(
                crate::signed::MAX_CONTROL_REQUESTS,
            )),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
            batch_places,
            require_head_signatures,
        }
    }

    /// A place for one more signed request of `kind` from collector `id`, unless it already
    /// has as many of that kind in flight as one collector may.
    pub fn collector_place(&self, kind: RequestKind, id: &str) -> Option<CollectorPlace> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (kind, id.to_owned());
        let count = in_flight.entry(key.clone()).or_insert(0);
        if *count >= kind.per_collector() {
            return None;
        }
        *count += 1;
        Some(CollectorPlace {
            key,
            in_flight: self.in_flight.clone(),
        })
    }

    /// The places signed requests of `kind` take.
    pub fn places(&self, kind: RequestKind) -> &Arc<tokio::sync::Semaphore> {
        match kind {
            RequestKind::Batch => &self.signed_requests,
            RequestKind::Control => &self.control_requests,
        }
    }

    /// The lock of an enrolled collector.
    pub fn collector_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(id.to_owned()).or_default().clone()
    }
}

/// Runs registry or store work on the blocking pool.
pub(crate) async fn blocking<T, F>(app: &App, work: F) -> Result<T, Rejected>
where
    F: FnOnce(&AppState) -> Result<T, Rejected> + Send + 'static,
    T: Send + 'static,
{
    let app = app.clone();
    match tokio::task::spawn_blocking(move || work(&app)).await {
        Ok(result) => result,
        Err(error) => Err(Rejected::from(crate::ConsoleError::Task(format!(
            "request worker: {error}"
        )))),
    }
}

/// The collector id a request names, if it names one in a readable header.
pub(crate) fn named_collector(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER_COLLECTOR)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The answer to a request: the JSON body, or the refusal, counted.
pub(crate) async fn respond<T: Serialize>(
    app: &App,
    endpoint: &'static str,
    collector: Option<String>,
    result: Result<T, Rejected>,
) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(rejected) => {
            app.metrics.reject(endpoint, rejected.reason);
            tracing::info!(
                endpoint,
                collector = collector.as_deref().unwrap_or("-"),
                reason = rejected.reason,
                status = rejected.status.as_u16(),
                message = %rejected.message,
                "request refused"
            );
            // An id no collector has has no row to count against (and counting those would
            // let anyone grow the server's memory with made-up ids).
            let counted = rejected.reason != "unknown_collector";
            if let Some(collector) = collector.filter(|_| counted) {
                let reason = rejected.reason;
                let counted = blocking(app, move |app| {
                    app.registry
                        .count_rejection(&collector, reason)
                        .map_err(Rejected::from)
                })
                .await;
                if let Err(error) = counted {
                    tracing::error!(message = %error.message, "cannot count a refusal in the registry");
                }
            }
            rejected.into_response()
        }
    }
}
