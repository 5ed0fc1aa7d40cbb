//! Admission of connections to the listening sources (TCP, TLS, HTTP): at most
//! `max_connections` open at once per source, more refused at once and counted; each admitted
//! connection counted open until its slot is dropped, whichever way its task ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::SourceRuntime;
use crate::metrics::SourceErrorKind;

/// Idle time before TCP keepalive probes start, the time between probes, and how many go
/// unanswered before the kernel closes the socket: a peer that vanished (a ward's link cut, a
/// NAT that forgot the connection) frees its slot after 4 minutes, not the kernel's default
/// of ~13 (75 s between 9 probes).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(120);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_PROBES: u32 = 4;

/// One admitted connection, counted in `connections_active` until dropped. Dropped on every
/// way out of a connection's task, a panic included (a bug: parsers' panics are caught per
/// record), or the count would creep towards `max_connections` and refuse senders.
pub(crate) struct ConnectionSlot(Arc<SourceRuntime>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

/// Admits `stream` when fewer than `max_connections` of the source's connections are open:
/// turns TCP keepalive on and counts it open. Otherwise counts `too_many_connections` and
/// returns `None`: the caller drops the stream at once (the sender sees a reset or end of
/// stream before anything is read).
pub(crate) fn admit(
    source: &Arc<SourceRuntime>,
    stream: &TcpStream,
    peer: SocketAddr,
    max_connections: usize,
) -> Option<ConnectionSlot> {
    // Only the accept loop opens connections, so the check and the count cannot race with
    // another admission; closes only lower the count meanwhile.
    if source.metrics.connections_active() >= max_connections as u64 {
        source
            .metrics
            .add_error(SourceErrorKind::TooManyConnections);
        tracing::warn!(source = %source.config.name, %peer, limit = max_connections, "connection refused: too many connections");
        return None;
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
    source.metrics.connection_opened();
    Some(ConnectionSlot(source.clone()))
}
