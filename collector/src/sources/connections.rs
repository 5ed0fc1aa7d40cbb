//! Admission of connections to the listening sources (TCP, TLS, HTTP): at most
//! `max_connections` open at once per source, more refused at once and counted; each admitted
//! connection counted open until its slot is dropped, whichever way its task ends.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::SourceRuntime;
use crate::metrics::SourceErrorKind;

/// Idle time before TCP keepalive probes start, so a vanished peer frees its slot.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(120);

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
/// turns TCP keepalive on and counts it open. Otherwise closes it at once (the sender sees a
/// reset or end of stream before anything is read) and counts `too_many_connections`.
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
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
    source.metrics.connection_opened();
    Some(ConnectionSlot(source.clone()))
}

/// A stream that holds its connection's slot: what the HTTP listeners hand to the server,
/// which owns each connection until it closes.
pub(crate) struct Admitted<S> {
    stream: S,
    _slot: ConnectionSlot,
}

impl<S> Admitted<S> {
    pub(crate) fn new(stream: S, slot: ConnectionSlot) -> Self {
        Admitted {
            stream,
            _slot: slot,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }
}
