//! The HTTP intake for host agents: NDJSON bodies and JSON arrays, as the `http` outputs of
//! NXLog (`om_http`), Fluent Bit (`format json_lines` or `json`) and Vector (`codec = "json"`,
//! newline-delimited or array) send them, compressed or not (gzip, deflate, zstd), on any
//! path; plus the Elasticsearch `_bulk` API, which is what Winlogbeat and the other Beats can
//! send (their `output.elasticsearch`).
//!
//! A request is answered 200 only once the sink has its events. When the pipeline stays full
//! for [`PIPELINE_WAIT`], it is answered 503 with `Retry-After`, and the agent keeps the
//! events and retries.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::http_body::{
    decompress, split_records, BodyError, TooManyRecords, MAX_RECORDS_PER_REQUEST,
};
use super::{accept, SourceRuntime};
use crate::lines::Lines;
use crate::metrics::SourceErrorKind;
use crate::pipeline::SendFailure;

/// How long a request waits for room in the pipeline before it is answered 503.
const PIPELINE_WAIT: Duration = Duration::from_secs(5);
/// Decompressed bodies may be this many times larger than `max_body`.
const DECOMPRESSION_RATIO: usize = 10;
/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct IntakeState {
    source: Arc<SourceRuntime>,
    /// Record numbers are reserved per request from one counter that starts at the start
    /// time (see `run_sequence_base`), so two requests, in this run or another, never give the
    /// same event id to different records.
    next_sequence: Arc<AtomicU64>,
    max_body: usize,
}

/// The peer address of a request, for plain and TLS listeners alike.
#[derive(Debug, Clone, Copy)]
struct PeerAddress(SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddress {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddress(*stream.remote_addr())
    }
}

fn router(state: IntakeState) -> Router {
    Router::new()
        .route("/", get(elasticsearch_info).post(intake))
        .route("/_bulk", post(bulk))
        .route("/{index}/_bulk", post(bulk))
        .fallback(fallback)
        .with_state(state)
}

/// Serves the intake on `listener` (HTTPS when `tls` is set) until `shutdown`; requests in
/// flight are finished.
pub(crate) async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    source: Arc<SourceRuntime>,
    max_body: usize,
    shutdown: CancellationToken,
) {
    let state = IntakeState {
        source: source.clone(),
        next_sequence: Arc::new(AtomicU64::new(super::run_sequence_base())),
        max_body,
    };
    let app = router(state).into_make_service_with_connect_info::<PeerAddress>();
    let stop = shutdown.clone().cancelled_owned();
    let result = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(acceptor) => {
            let listener = TlsListener::start(listener, acceptor, source.clone(), shutdown.clone());
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
    };
    if let Err(error) = result {
        source.metrics.add_error(SourceErrorKind::Accept);
        tracing::error!(source = %source.config.name, %error, "HTTP intake stopped");
    }
}

async fn fallback(
    state: State<IntakeState>,
    peer: ConnectInfo<PeerAddress>,
    request: Request,
) -> Response {
    if matches!(*request.method(), Method::POST | Method::PUT) {
        return intake(state, peer, request).await;
    }
    (
        StatusCode::NOT_FOUND,
        "POST NDJSON or a JSON array to any path\n",
    )
        .into_response()
}

/// Beats ask `GET /` which Elasticsearch they talk to before sending anything.
async fn elasticsearch_info() -> Response {
    let body = serde_json::json!({
        "name": "citysoc-collector",
        "cluster_name": "citysoc",
        "version": {
            "number": "8.17.0",
            "build_flavor": "default",
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    });
    elasticsearch_reply(&body)
}

/// A 200 with JSON as Elasticsearch sends it: Beats check the `X-Elastic-Product` header and
/// refuse to talk to a server without it.
fn elasticsearch_reply(body: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-elastic-product"),
                "Elasticsearch",
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn intake(
    State(state): State<IntakeState>,
    ConnectInfo(peer): ConnectInfo<PeerAddress>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(&state, &parts.headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let (records, blank) = match split_records(&body) {
        Ok(split) => split,
        Err(too_many) => return too_many_records(&state, too_many),
    };
    match deliver(&state, peer.0, &records, blank).await {
        Ok(events) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"accepted\":{},\"events\":{events}}}", records.len()),
        )
            .into_response(),
        Err(response) => response,
    }
}

/// The Elasticsearch bulk API: action lines (`index`, `create`, `update`, `delete`) each
/// followed by a document (not after `delete`); the documents are the records. The answer
/// has one item per action, as Beats expect, so they do not resend.
async fn bulk(
    State(state): State<IntakeState>,
    ConnectInfo(peer): ConnectInfo<PeerAddress>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(&state, &parts.headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut records = Vec::new();
    let mut actions: Vec<String> = Vec::new();
    let mut lines = body
        .split(|byte| *byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
    while let Some(line) = lines.next() {
        if actions.len() == MAX_RECORDS_PER_REQUEST {
            return too_many_records(&state, TooManyRecords);
        }
        let action = bulk_action(line);
        match action.as_deref() {
            Some("delete") => actions.push("delete".into()),
            Some(action @ ("index" | "create" | "update")) => {
                actions.push(action.to_owned());
                if let Some(document) = lines.next() {
                    records.push(document);
                }
            }
            // Not an action line: keep it as a record rather than lose it.
            _ => {
                actions.push("create".into());
                records.push(line);
            }
        }
    }
    if let Err(response) = deliver(&state, peer.0, &records, 0).await {
        return response;
    }
    let items: Vec<serde_json::Value> = actions
        .iter()
        .map(|action| {
            serde_json::json!({ action: { "_index": "citysoc", "_id": "", "status": 201, "result": "created" } })
        })
        .collect();
    elasticsearch_reply(&serde_json::json!({ "took": 0, "errors": false, "items": items }))
}

/// The action of a bulk action line: an object with exactly one member, named `index`,
/// `create`, `update` or `delete`, whose value is an object (`{"index":{"_index":"x"}}`).
/// Anything else is a document: a log record whose first key happens to be `index` must not
/// be taken for an action (and lose itself, or the line after it).
fn bulk_action(line: &[u8]) -> Option<String> {
    let object = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(line).ok()?;
    let mut members = object.iter();
    let (name, value) = members.next()?;
    let is_action = members.next().is_none()
        && value.is_object()
        && matches!(name.as_str(), "index" | "create" | "update" | "delete");
    is_action.then(|| name.clone())
}

/// The 413 for a body over [`MAX_RECORDS_PER_REQUEST`], counted as a refused request.
fn too_many_records(state: &IntakeState, too_many: TooManyRecords) -> Response {
    state.source.metrics.add_error(SourceErrorKind::HttpRequest);
    tracing::warn!(source = %state.source.config.name, "HTTP request refused: {too_many}");
    (StatusCode::PAYLOAD_TOO_LARGE, format!("{too_many}\n")).into_response()
}

async fn read_body(
    state: &IntakeState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>, Response> {
    let metrics = &state.source.metrics;
    let refuse = |status: StatusCode, message: String| {
        metrics.add_error(SourceErrorKind::HttpRequest);
        tracing::warn!(source = %state.source.config.name, %status, %message, "HTTP request refused");
        (status, format!("{message}\n")).into_response()
    };
    let raw = match axum::body::to_bytes(body, state.max_body).await {
        Ok(raw) => raw,
        Err(error) => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body could not be read within the limit of {} bytes (max_body): {error}",
                    state.max_body
                ),
            ))
        }
    };
    metrics.add_bytes_in(raw.len() as u64);
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok());
    match decompress(
        encoding,
        &raw,
        state.max_body.saturating_mul(DECOMPRESSION_RATIO),
    ) {
        Ok(body) => Ok(body.into_owned()),
        Err(error) => {
            let status = match error {
                BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                BodyError::Corrupt(_) => StatusCode::BAD_REQUEST,
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            };
            Err(refuse(status, error.to_string()))
        }
    }
}

/// Records decoded at a time: the events of one chunk are encoded before the next is decoded,
/// so a request holds its records' compact encoding, not several hundred bytes of `Event`
/// for each of up to a million records.
const DECODE_CHUNK: usize = 1024;

/// Decodes the records and waits until the sink has them. `Ok(events)` or the error answer.
///
/// A request is one batch for the pipeline, taken or refused whole, so an agent that retries a
/// refused request repeats nothing that was stored. Only a request whose encoding outgrows the
/// pipeline's bound (`queue_max_bytes`, which no single batch may hold more than) goes in
/// parts as it is encoded, each waiting for the sink, so that its memory stays near that
/// bound (plus one chunk's events and their encoding): if a later part is refused, the
/// agent's retry stores the parts already stored again, as new events (new record numbers,
/// another connection: the server cannot tell them apart), duplicates rather than losses.
async fn deliver(
    state: &IntakeState,
    peer: SocketAddr,
    records: &[&[u8]],
    blank: u64,
) -> Result<usize, Response> {
    let source = &state.source;
    if blank > 0 {
        source.metrics.add_blank(blank);
    }
    if records.is_empty() {
        return Ok(0);
    }
    let first = state
        .next_sequence
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    let mut decoder = source.decoder(Some(peer.to_string()));
    decoder.set_next_sequence(first);
    let mut events = Vec::with_capacity(DECODE_CHUNK);
    let new_part = || source.pipeline.batch_buffer(DECODE_CHUNK, 0);
    let mut pending = new_part();
    let mut pending_records = 0;
    let mut sent_events = 0;
    for chunk in records.chunks(DECODE_CHUNK) {
        for record in chunk {
            decoder.decode(record, &mut events);
        }
        source.encode_into(&mut events, &mut pending);
        pending_records += chunk.len();
        if pending.heap_bytes() >= source.pipeline.max_bytes() {
            let part = std::mem::replace(&mut pending, new_part());
            sent_events += send_part(source, part, pending_records).await?;
            pending_records = 0;
        }
    }
    decoder.finish(&mut events);
    source.encode_into(&mut events, &mut pending);
    if pending.is_empty() && pending_records == 0 {
        return Ok(sent_events);
    }
    pending.release_spare_room();
    Ok(sent_events + send_part(source, pending, pending_records).await?)
}

/// Sends one batch of a request's events (from `records` records) and waits for the sink.
/// `Ok(events)` or the error answer.
async fn send_part(
    source: &SourceRuntime,
    lines: Lines,
    records: usize,
) -> Result<usize, Response> {
    let count = lines.len();
    let sent = source
        .pipeline
        .send_confirmed(source.index, lines, false, PIPELINE_WAIT)
        .await;
    // Records are counted in once the pipeline took them (it counts them out, or dropped when
    // the sink failed): a request refused before that is answered 503 and counted as
    // `http_busy`, and the agent's retry is counted in then.
    if sent.is_ok() {
        source.metrics.add_records(records as u64);
    }
    match sent {
        Ok(true) => Ok(count),
        Ok(false) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::RETRY_AFTER, "5")],
            "the collector could not store the events; retry later\n",
        )
            .into_response()),
        Err(SendFailure::Full(_)) => {
            source.metrics.add_error(SourceErrorKind::HttpBusy);
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "the collector is busy (its buffer is full); retry later\n",
            )
                .into_response())
        }
        Err(SendFailure::Closed) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "the collector is shutting down; retry later\n",
        )
            .into_response()),
    }
}

/// A listener handing axum TLS streams: handshakes run in their own tasks (bounded in time),
/// so one slow client does not hold up the others.
pub(crate) struct TlsListener {
    local_address: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    fn start(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        source: Arc<SourceRuntime>,
        shutdown: CancellationToken,
    ) -> Self {
        let local_address = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (ready_tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Some((stream, peer)) = accept(&listener, &source, &shutdown).await else {
                    break;
                };
                let acceptor = acceptor.clone();
                let ready_tx = ready_tx.clone();
                let source = source.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let _ = ready_tx.send((tls_stream, peer)).await;
                        }
                        _ => {
                            source.metrics.add_error(SourceErrorKind::TlsHandshake);
                            tracing::warn!(source = %source.config.name, %peer, "TLS handshake failed or timed out");
                        }
                    }
                });
            }
        });
        TlsListener {
            local_address,
            ready,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task has stopped (shutdown): no more connections; graceful shutdown
            // ends the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_address)
    }
}
