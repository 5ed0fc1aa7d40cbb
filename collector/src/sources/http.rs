//! The HTTP intake for host agents: NDJSON bodies and JSON arrays, as the `http` outputs of
//! NXLog (`om_http`), Fluent Bit (`format json_lines` or `json`) and Vector (`codec = "json"`,
//! newline-delimited or array) send them, compressed or not (gzip, deflate, zstd), on any
//! path; plus the Elasticsearch `_bulk` API, which is what Winlogbeat and the other Beats can
//! send (their `output.elasticsearch`).
//!
//! A request is answered 200 only once the sink has its events. When the pipeline stays full
//! for [`PIPELINE_WAIT`], it is answered 503 with `Retry-After`, and the agent keeps the
//! events and retries.
//!
//! Memory: a request holds its body (at most `max_body`) while it arrives, and once it is in,
//! a place among `max_requests` while it is decompressed (up to [`DECOMPRESSION_RATIO`] times
//! `max_body` more), split and encoded; the places bound that work, which is where a small
//! body becomes large. The places are taken after the body has arrived, so a slow sender holds
//! only its own bytes, never a place other agents wait for; a body that does not arrive within
//! `body_timeout_ms` is answered 408. Bodies arriving or waiting for a place are bounded
//! together in bytes ([`ARRIVING_BODIES_PER_PLACE`] × `max_requests` × `max_body`), charged as
//! they arrive: a request whose next bytes find that room full is answered 503 at once. A
//! request that waits [`PIPELINE_WAIT`] for a place is answered 503 like a full pipeline. Once
//! its records are encoded and the pipeline has room for the last of them, a request gives its
//! body and place back, and waits for the sink holding only its encoded part, which the
//! pipeline's bound counts. (The earlier parts of a request larger than the pipeline wait for
//! the sink with the place held.)
//!
//! A body refused before it has arrived whole (`413`, `503`, `408`) is read on and thrown away
//! for a few seconds while the answer goes out (`refused_body.rs`), so that an agent still
//! writing it reads the answer instead of a connection reset.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::bulk_action::bulk_action;
use super::bulk_reply::{BulkActions, BulkReply};
use super::http_body::{
    decompress, is_identity, lines as body_lines, split_records, BodyError, TooManyRecords,
    MAX_RECORDS_PER_REQUEST,
};
use super::http_server::{serve, PeerAddress};
use super::refused_body::discard_rest;
use super::{record_size_guess, SourceRuntime, SERIALIZER_HEADROOM};
use crate::config::HttpSourceConfig;
use crate::framing::FrameKind;
use crate::lines::Lines;
use crate::metrics::SourceErrorKind;
use crate::pipeline::SendFailure;

/// How long a request waits for room in the pipeline, or for a place among `max_requests`,
/// before it is answered 503.
const PIPELINE_WAIT: Duration = Duration::from_secs(5);
/// Bodies of `max_body` that may be arriving or waiting for a place, for each place. Each
/// piece of a body is charged to this room as it arrives (so a sender holds room only for
/// bytes it really sent, and a declared `Content-Length` costs nothing), and a request whose
/// next piece finds the room full is answered 503 at once. Without it, senders opening many
/// connections could each hold up to `max_body` while their bodies trickle in (Elasticsearch
/// bounds its "indexing pressure" in bytes for the same reason).
const ARRIVING_BODIES_PER_PLACE: usize = 4;
/// Decompressed bodies may be this many times larger than `max_body`.
const DECOMPRESSION_RATIO: usize = 10;

#[derive(Clone)]
struct IntakeState {
    source: Arc<SourceRuntime>,
    /// Record numbers are reserved per request from one counter that starts at the start
    /// time (see `run_sequence_base`), so two requests, in this run or another, never give the
    /// same event id to different records.
    next_sequence: Arc<AtomicU64>,
    max_body: usize,
    /// The places of requests being decompressed and decoded (`max_requests` of them).
    places: Arc<Semaphore>,
    /// Bytes of bodies that may be arriving or waiting for a place at once
    /// ([`ARRIVING_BODIES_PER_PLACE`]).
    arriving: Arc<Semaphore>,
    max_requests: usize,
    body_timeout: Duration,
}

/// A request's body, decompressed, with the place it holds until it is answered.
struct RequestBody {
    bytes: Vec<u8>,
    _place: OwnedSemaphorePermit,
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
    config: HttpSourceConfig,
    shutdown: CancellationToken,
) {
    let state = IntakeState {
        source: source.clone(),
        next_sequence: Arc::new(AtomicU64::new(super::run_sequence_base())),
        max_body: config.max_body,
        places: Arc::new(Semaphore::new(config.max_requests)),
        arriving: Arc::new(Semaphore::new(
            config
                .max_body
                .saturating_mul(config.max_requests)
                .saturating_mul(ARRIVING_BODIES_PER_PLACE)
                .min(Semaphore::MAX_PERMITS),
        )),
        max_requests: config.max_requests,
        body_timeout: config.body_timeout,
    };
    serve(
        listener,
        tls,
        router(state),
        source,
        config.max_connections,
        config.head_timeout,
        shutdown,
    )
    .await;
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
    let (records, blank) = match split_records(&body.bytes) {
        Ok((records, blank)) => (record_ranges(&body.bytes, &records), blank),
        Err(too_many) => return too_many_records(&state, too_many),
    };
    let accepted = records.len();
    match deliver(&state, peer.0, body, records, blank).await {
        Ok(events) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"accepted\":{accepted},\"events\":{events}}}"),
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
    let mut actions = BulkActions::default();
    let mut lines = body_lines(&body.bytes)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace));
    while let Some(line) = lines.next() {
        if actions.len() == MAX_RECORDS_PER_REQUEST {
            return too_many_records(&state, TooManyRecords);
        }
        match bulk_action(line) {
            Some("delete") => actions.push("delete"),
            Some(action) => {
                actions.push(action);
                if let Some(document) = lines.next() {
                    records.push(document);
                }
            }
            // Not an action line: keep it as a record rather than lose it.
            None => {
                actions.push("create");
                records.push(line);
            }
        }
    }
    // The lines borrow the body, which goes to `deliver` below.
    drop(lines);
    let records = record_ranges(&body.bytes, &records);
    if let Err(response) = deliver(&state, peer.0, body, records, 0).await {
        return response;
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-elastic-product"),
                "Elasticsearch",
            ),
        ],
        Body::new(BulkReply::new(actions)),
    )
        .into_response()
}

/// Where each record lies in `body` (each is a slice of it), so that the request can let go of
/// its body, and of its place, once its records are encoded, before it waits for the sink.
fn record_ranges(body: &[u8], records: &[&[u8]]) -> Vec<Range<usize>> {
    let base = body.as_ptr() as usize;
    records
        .iter()
        .map(|record| {
            let start = (record.as_ptr() as usize).wrapping_sub(base);
            start..start.saturating_add(record.len())
        })
        .collect()
}

/// The 413 for a body over [`MAX_RECORDS_PER_REQUEST`], counted as a refused request.
fn too_many_records(state: &IntakeState, too_many: TooManyRecords) -> Response {
    state.source.metrics.add_error(SourceErrorKind::HttpRequest);
    tracing::warn!(source = %state.source.config.name, "HTTP request refused: {too_many}");
    (StatusCode::PAYLOAD_TOO_LARGE, format!("{too_many}\n")).into_response()
}

/// Reads a request's body within `body_timeout` and `max_body`, takes a place among
/// `max_requests`, and decompresses it. `Err` is the answer of a refused request, counted.
///
/// A body refused before it has been read whole is read on and thrown away while the answer
/// goes out ([`discard_rest`]), so that an agent still writing it sees the answer rather than
/// a reset.
async fn read_body(
    state: &IntakeState,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<RequestBody, Response> {
    let metrics = &state.source.metrics;
    let refuse = |status: StatusCode, message: String| {
        metrics.add_error(SourceErrorKind::HttpRequest);
        tracing::warn!(source = %state.source.config.name, %status, %message, "HTTP request refused");
        (status, format!("{message}\n")).into_response()
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > state.max_body as u64) {
        discard_rest(body, headers, false);
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is {length} bytes, more than the limit of {} bytes (max_body)",
                state.max_body
            ),
        ));
    }
    let read = tokio::time::timeout(
        state.body_timeout,
        read_charged(
            &mut body,
            declared,
            state.max_body,
            &state.arriving,
            metrics,
        ),
    )
    .await;
    // Read whole, or the connection failed: nothing left to read.
    if !matches!(read, Ok(Ok(_)) | Ok(Err(BodyRead::Failed(_)))) {
        discard_rest(body, headers, true);
    }
    let (raw, arriving) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(BodyRead::TooLarge)) => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is larger than the limit of {} bytes (max_body)",
                    state.max_body
                ),
            ))
        }
        Ok(Err(BodyRead::Failed(error))) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {error}"),
            ))
        }
        Ok(Err(BodyRead::NoRoom)) => {
            return Err(busy(
                state,
                "the collector holds as many request bodies as it takes at once",
            ))
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} ms (body_timeout_ms)",
                    state.body_timeout.as_millis()
                ),
            ))
        }
    };
    let place =
        match tokio::time::timeout(PIPELINE_WAIT, state.places.clone().acquire_owned()).await {
            Ok(Ok(place)) => place,
            // The semaphore is never closed; a closed one would mean the intake is going away.
            Ok(Err(_)) | Err(_) => {
                return Err(busy(
                    state,
                    &format!(
                        "the collector is busy with {} other requests (max_requests)",
                        state.max_requests
                    ),
                ))
            }
        };
    // Counted once it has a place: a request answered 503 and sent again is counted once.
    metrics.add_bytes_in(raw.len() as u64);
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let limit = state.max_body.saturating_mul(DECOMPRESSION_RATIO);
    // Decompressing up to `limit` bytes takes a good part of a second: on a blocking thread,
    // not on one of the runtime's few workers, which every other source shares. The place and
    // the body's charge go with it and come back (or are dropped there): hyper drops this
    // request if its client goes away, and the decompression, which cannot be stopped, must
    // not go on outside the bounds. A body sent as it is moves over without a copy.
    let (decompressed, place) = match is_identity(encoding.as_deref()) {
        true => (Ok(raw), place),
        false => {
            let decompressing = tokio::task::spawn_blocking(move || {
                let decompressed =
                    decompress(encoding.as_deref(), &raw, limit).map(std::borrow::Cow::into_owned);
                drop(raw);
                drop(arriving);
                (decompressed, place)
            });
            match decompressing.await {
                Ok(done) => done,
                // A panic in a decompressor (a bug), or the runtime going away: not the
                // agent's fault, so an answer it retries.
                Err(error) => {
                    metrics.add_error(SourceErrorKind::HttpRequest);
                    tracing::error!(source = %state.source.config.name, %error, "decompressing an HTTP body failed");
                    return Err((
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(header::RETRY_AFTER, "5")],
                        "the collector failed to decompress the body; retry later\n",
                    )
                        .into_response());
                }
            }
        }
    };
    match decompressed {
        Ok(bytes) => Ok(RequestBody {
            bytes,
            _place: place,
        }),
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

/// Why a body was not read whole.
enum BodyRead {
    /// Past `max_body`.
    TooLarge,
    /// The source's room for bodies arriving at once is full.
    NoRoom,
    /// The connection failed or the sender stopped mid-body.
    Failed(axum::Error),
}

/// Reads a body piece by piece, charging each piece to `room` as it arrives (bytes, held by
/// the returned [`Charged`] until it is dropped) and counting them in the source's
/// `http_body_bytes`. Fails at once when the room is full rather than waiting for it: requests
/// that each hold part of the room while waiting for more would wait for one another.
async fn read_charged(
    body: &mut Body,
    declared: Option<u64>,
    max_body: usize,
    room: &Arc<Semaphore>,
    metrics: &Arc<crate::metrics::SourceMetrics>,
) -> Result<(Vec<u8>, Charged), BodyRead> {
    use http_body_util::BodyExt;
    // Room for the declared length at once, up to a mebibyte: no copies of growing by
    // doubling for the bodies agents send (a few hundred kilobytes). Not more: reserved
    // memory is committed on hosts that do not overcommit, and a declared length is only a
    // claim until the bytes come (they are charged as they do). Longer bodies grow as they
    // come.
    let mut bytes = Vec::with_capacity(declared.map_or(0, |length| length.min(1 << 20) as usize));
    let mut charged = Charged {
        permit: None,
        bytes: 0,
        metrics: metrics.clone(),
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyRead::Failed)?;
        // Trailers carry no body bytes.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len().saturating_add(data.len()) > max_body {
            return Err(BodyRead::TooLarge);
        }
        let size = u32::try_from(data.len()).map_err(|_| BodyRead::TooLarge)?;
        let permit = room
            .clone()
            .try_acquire_many_owned(size)
            .map_err(|_| BodyRead::NoRoom)?;
        charged.add(permit, data.len());
        bytes.extend_from_slice(&data);
    }
    Ok((bytes, charged))
}

/// Room a body holds among the bodies arriving at once, given back (and taken off the
/// source's `http_body_bytes`) when dropped.
struct Charged {
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
    metrics: Arc<crate::metrics::SourceMetrics>,
}

impl Charged {
    fn add(&mut self, permit: OwnedSemaphorePermit, bytes: usize) {
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.bytes += bytes;
        self.metrics.add_http_body_bytes(bytes);
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        // The room first: whoever sees the gauge go down finds the room back.
        drop(self.permit.take());
        self.metrics.remove_http_body_bytes(self.bytes);
    }
}

/// The 503 for a request that found the room for arriving bodies full, or waited
/// [`PIPELINE_WAIT`] for a place, counted as busy.
/// Logged only at debug, as the pipeline-full 503 is not logged: a stall would make one line
/// per request.
fn busy(state: &IntakeState, why: &str) -> Response {
    state.source.metrics.add_error(SourceErrorKind::HttpBusy);
    tracing::debug!(source = %state.source.config.name, "HTTP request refused: {why}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        format!("{why}; retry later\n"),
    )
        .into_response()
}

/// Records decoded at a time: the events of one chunk are encoded before the next is decoded,
/// so a request holds its records' compact encoding, not the `Event`s of up to a million
/// records. A Windows event holds a few kilobytes as an `Event` (its fields, their values and
/// text); 256 of them are under a mebibyte. (1,024 held ~3 MiB a chunk, which the allocator
/// kept between agents' back-to-back requests: BENCHMARKS.md, "Agents keep their connections".)
const DECODE_CHUNK: usize = 256;

/// Most lines a request's first batch is made with room for ([`part_size_guess`]).
const MAX_PART_LINES_GUESS: usize = 16 * 1024;

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
    body: RequestBody,
    records: Vec<Range<usize>>,
    blank: u64,
) -> Result<usize, Response> {
    let source = &state.source;
    if blank > 0 {
        source.metrics.add_blank(blank);
    }
    if records.is_empty() {
        return Ok(0);
    }
    // One record number for each record, and one for each piece of a record kept in pieces.
    let max_frame = source.config.max_frame;
    let numbers: usize = records
        .iter()
        .map(|range| match range.len() > max_frame {
            true => pieces_of(body.bytes.get(range.clone()).unwrap_or_default(), max_frame).len(),
            false => 1,
        })
        .sum();
    let first = state
        .next_sequence
        .fetch_add(numbers as u64, Ordering::Relaxed);
    let mut decoder = source.decoder(Some(peer.to_string()));
    decoder.set_next_sequence(first);
    let mut events = Vec::with_capacity(DECODE_CHUNK);
    let (part_lines, part_bytes) = part_size_guess(&records, source.pipeline.max_bytes());
    let new_part = || source.pipeline.batch_buffer(part_lines, part_bytes);
    let mut pending = new_part();
    let mut pending_records = 0;
    let mut sent_events = 0;
    for chunk in records.chunks(DECODE_CHUNK) {
        for range in chunk {
            debug_assert!(range.end <= body.bytes.len(), "a record outside its body");
            let record = body.bytes.get(range.clone()).unwrap_or_default();
            if record.len() > max_frame {
                let pieces = pieces_of(record, max_frame);
                source.metrics.add_fragments(pieces.len() as u64);
                let last = pieces.len().saturating_sub(1);
                for (index, piece) in pieces.into_iter().enumerate() {
                    let kind = match index == last {
                        true => FrameKind::Final,
                        false => FrameKind::Fragment,
                    };
                    let piece = record.get(piece).unwrap_or_default();
                    decoder.decode_fragment(piece, kind, &mut events);
                }
            } else {
                decoder.decode(record, &mut events);
            }
        }
        source.encode_into(&mut events, &mut pending);
        decoder.recycle(&mut events);
        pending_records += chunk.len();
        // A million records decode for a second or more: the runtime's workers are shared
        // with every other source (UDP datagrams not read in time are lost in the kernel).
        tokio::task::yield_now().await;
        if pending.heap_bytes() >= source.pipeline.max_bytes() {
            let part = std::mem::replace(&mut pending, new_part());
            sent_events += send_part(source, part, pending_records, None).await?;
            pending_records = 0;
        }
    }
    decoder.finish(&mut events);
    source.encode_into(&mut events, &mut pending);
    events.clear();
    if pending.is_empty() && pending_records == 0 {
        return Ok(sent_events);
    }
    pending.release_spare_room();
    // Everything is encoded: once the pipeline has room for the last part, the body and the
    // place go back, so a sink that is slow to confirm (a full buffer) holds the encoded part,
    // which the pipeline bounds, and not every place.
    Ok(sent_events + send_part(source, pending, pending_records, Some(body)).await?)
}

/// The room a request's batch is made with: lines for its records, and bytes for their
/// records as [`record_size_guess`] sizes them plus a quarter (agents' JSON events encode to
/// ~2.6 times their text, a little over that guess). A batch that grows by doubling copies
/// itself each time, and a request's batch is megabytes: each copy landed in pages the system
/// had to fault in, about a third of the HTTP path's page faults. Below the pipeline's bound
/// (`max_bytes`), which [`deliver`] sends a part at once its buffers reach: a request whose
/// records take more grows its batch to the bound as before.
fn part_size_guess(records: &[Range<usize>], max_bytes: usize) -> (usize, usize) {
    let lines = records.len().clamp(1, MAX_PART_LINES_GUESS);
    let guess = records
        .iter()
        .map(|range| record_size_guess(range.len()))
        .fold(0usize, usize::saturating_add);
    let bytes = guess
        .saturating_add(guess / 4)
        .saturating_add(SERIALIZER_HEADROOM);
    let below_bound = max_bytes
        .saturating_sub(lines.saturating_mul(std::mem::size_of::<usize>()))
        .saturating_sub(1);
    (lines, bytes.min(below_bound))
}

/// Where a record longer than the source's `max_frame` is cut: it is kept raw in pieces of at
/// most `max_frame` bytes (cut before a UTF-8 character), unparsed, as the stream sources keep
/// one. Parsing it whole first would build its values in memory before it could be cut: a
/// 100 MiB line of JSON numbers (100 KiB gzipped) is gigabytes of `Value`s.
fn pieces_of(record: &[u8], max_frame: usize) -> Vec<Range<usize>> {
    let max = max_frame.max(4);
    let mut pieces = Vec::with_capacity(record.len() / max + 1);
    let mut start = 0;
    while start < record.len() {
        let end = crate::parse::piece_end(record, start, max);
        pieces.push(start..end);
        start = end;
    }
    pieces
}

/// Sends one batch of a request's events (from `records` records) and waits for the sink.
/// `Ok(events)` or the error answer.
///
/// `release` (the request's body and place, with its last part) is let go of once the pipeline
/// has room for the part, before the wait for the sink.
async fn send_part(
    source: &SourceRuntime,
    lines: Lines,
    records: usize,
    release: Option<RequestBody>,
) -> Result<usize, Response> {
    let count = lines.len();
    // Records are counted in as the pipeline takes them (it counts them out, or dropped when
    // the sink failed), even if the client goes away while the sink confirms: a request
    // refused before that is answered 503 and counted as `http_busy`, and the agent's retry
    // is counted in then.
    let taken = || {
        drop(release);
        source.metrics.add_records(records as u64);
    };
    let sent = source
        .pipeline
        .send_confirmed_releasing(source.index, lines, false, PIPELINE_WAIT, taken)
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn records(lengths: &[usize]) -> Vec<Range<usize>> {
        let mut start = 0;
        lengths
            .iter()
            .map(|length| {
                let range = start..start + length;
                start = range.end + 1;
                range
            })
            .collect()
    }

    #[test]
    fn a_request_batch_has_room_for_its_records_guess_and_a_quarter() {
        let (lines, bytes) = part_size_guess(&records(&[442; 2000]), 4 << 20);
        assert_eq!(lines, 2000);
        let guess = 2000 * record_size_guess(442);
        assert_eq!(bytes, guess + guess / 4 + SERIALIZER_HEADROOM);
    }

    #[test]
    fn a_request_batch_starts_below_the_pipeline_bound_however_large_the_request() {
        let max_bytes = 4 << 20;
        for lengths in [vec![1 << 20; 64], vec![10; 1_000_000]] {
            let (lines, bytes) = part_size_guess(&records(&lengths), max_bytes);
            assert!(lines <= MAX_PART_LINES_GUESS);
            let batch = Lines::with_capacity(lines, bytes);
            assert!(
                batch.heap_bytes() < max_bytes,
                "{} bytes held, the bound is {max_bytes}",
                batch.heap_bytes()
            );
        }
    }

    #[test]
    fn an_empty_request_still_gets_a_batch_with_room_for_a_line() {
        assert_eq!(part_size_guess(&[], 4 << 20), (1, SERIALIZER_HEADROOM));
    }
}
