//! Syslog over UDP. One datagram is one record, up to `max_frame` bytes (64 KiB by default,
//! above any IPv4 datagram): a longer one is kept cut at `max_frame`, flagged
//! `datagram_truncated` and counted, never dropped silently. UDP cannot push back, so when
//! the pipeline stays full for [`PIPELINE_WAIT`] the datagrams are counted as dropped; the
//! kernel's own drops (receive buffer full) are read from the kernel every second.
//!
//! Datagrams are numbered across the source (`source.sequence`) from the source's start time
//! in microseconds, so event ids never repeat across restarts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{udp_socket_kernel_drops, SourceRuntime};
use crate::config::UdpSourceConfig;
use crate::metrics::{DropReason, SourceErrorKind};
use crate::parse::parse_record_guarded;
use crate::pipeline::SendFailure;

/// How long a batch of datagrams may wait for room in the pipeline; meanwhile new datagrams
/// wait in the kernel's receive buffer.
const PIPELINE_WAIT: Duration = Duration::from_millis(200);
/// Datagrams already queued in the kernel taken into one batch at most.
const BATCH_DATAGRAMS: usize = 512;

/// A bound UDP socket with the configured receive buffer.
pub(crate) fn bind(settings: &UdpSourceConfig) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(settings.listen),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if let Some(size) = settings.receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&settings.listen.into())?;
    Ok(socket.into())
}

/// Reads datagrams until `shutdown`.
pub(crate) async fn run(
    socket: UdpSocket,
    source: Arc<SourceRuntime>,
    shutdown: CancellationToken,
) {
    let max_frame = source.config.max_frame;
    // One byte more than the limit: a datagram that fills it was longer than the limit.
    let mut datagram = vec![0u8; max_frame + 1];
    let mut context = source.context(None);
    // Numbered from the start time, not from 1: see `run_sequence_base`.
    let mut sequence: u64 = super::run_sequence_base() - 1;
    let mut events = Vec::new();
    let mut next_kernel_check = Instant::now();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            received = socket.recv_from(&mut datagram) => received,
        };
        context.received_at = chrono::Utc::now();
        let mut received = Some(first);
        let mut taken = 0;
        // Cut datagrams of this batch: counted as `datagram_truncated` once their events are
        // in the pipeline. A batch dropped whole counts them under `pipeline_full` only, so
        // every lost datagram counts once in the source's drops.
        let mut truncated = 0;
        while let Some(result) = received.take() {
            match result {
                Ok((length, peer)) => {
                    taken += 1;
                    sequence += 1;
                    truncated += u64::from(take_datagram(
                        &datagram[..length],
                        peer,
                        sequence,
                        &mut context,
                        &source,
                        &mut events,
                    ));
                }
                Err(error) => {
                    source.metrics.add_error(SourceErrorKind::Read);
                    tracing::debug!(source = %source.config.name, %error, "UDP receive failed");
                }
            }
            if taken < BATCH_DATAGRAMS {
                match socket.try_recv_from(&mut datagram) {
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    result => received = Some(result),
                }
            }
        }
        let count = events.len() as u64;
        let lines = source.encode(&mut events);
        match source
            .pipeline
            .send_within(source.index, lines, PIPELINE_WAIT)
            .await
        {
            Ok(()) => {
                if truncated > 0 {
                    source
                        .metrics
                        .add_drops(DropReason::DatagramTruncated, truncated);
                }
            }
            Err(SendFailure::Full(lines)) => {
                source
                    .metrics
                    .add_drops(DropReason::PipelineFull, lines.len() as u64);
                tracing::warn!(source = %source.config.name, events = count, "pipeline full: UDP datagrams dropped");
            }
            Err(SendFailure::Closed) => break,
        }
        if Instant::now() >= next_kernel_check {
            next_kernel_check = Instant::now() + Duration::from_secs(1);
            if let Some(drops) = udp_socket_kernel_drops(&socket) {
                source.metrics.set_kernel_drops(drops);
            }
        }
    }
    if let Some(drops) = udp_socket_kernel_drops(&socket) {
        source.metrics.set_kernel_drops(drops);
    }
}

/// Turns one datagram into an event in `events`; true when it was longer than `max_frame` and
/// kept cut (the caller counts it once the event is delivered).
fn take_datagram(
    bytes: &[u8],
    peer: SocketAddr,
    sequence: u64,
    context: &mut crate::parse::ParseContext,
    source: &SourceRuntime,
    events: &mut Vec<crate::Event>,
) -> bool {
    let max_frame = source.config.max_frame;
    let truncated = bytes.len() > max_frame;
    source.metrics.add_records_in(1, bytes.len() as u64);
    let mut record = &bytes[..bytes.len().min(max_frame)];
    if !truncated {
        // Many senders end a datagram with a newline (or a NUL); it is not part of the
        // message, as with stream framing.
        while let Some((last, rest)) = record.split_last() {
            if matches!(last, b'\n' | b'\r' | b'\0') {
                record = rest;
            } else {
                break;
            }
        }
    }
    if record.is_empty() {
        source.metrics.add_blank(1);
        return false;
    }
    // The address is shared by the events of a sender (an `Arc`): replaced only when the
    // datagram comes from another peer than the last one.
    let peer = peer.to_string();
    if context.source.address.as_deref() != Some(peer.as_str()) {
        context.source.address = Some(peer.into());
    }
    let mut event = parse_record_guarded(record, source.config.format, context, sequence);
    if truncated {
        event
            .fields
            .insert("datagram_truncated".into(), true.into());
        event
            .fields
            .insert("datagram_kept_bytes".into(), (record.len() as u64).into());
    }
    events.push(event);
    truncated
}
