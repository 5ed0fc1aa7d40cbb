//! Syslog over TCP and over TLS (RFC 5425): many connections, each read by its own task with
//! newline or octet-counting framing; at most `max_connections` at once (more are refused and
//! counted); TLS handshakes bounded in time so a silent client cannot hold a task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::stream::read_stream;
use super::{accept, SourceRuntime};
use crate::config::TcpSourceConfig;
use crate::metrics::SourceErrorKind;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalive probes start, so a vanished peer frees its task.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(120);

/// Accepts connections until `shutdown`, then waits for every connection task to finish (each
/// hands out what it has read).
pub(crate) async fn run_listener(
    listener: TcpListener,
    settings: TcpSourceConfig,
    tls: Option<TlsAcceptor>,
    source: Arc<SourceRuntime>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let Some((stream, peer)) = accept(&listener, &source, &shutdown).await else {
            break;
        };
        if source.metrics.connections_active() >= settings.max_connections as u64 {
            source
                .metrics
                .add_error(SourceErrorKind::TooManyConnections);
            tracing::warn!(source = %source.config.name, %peer, limit = settings.max_connections, "connection refused: too many connections");
            drop(stream);
            continue;
        }
        let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        source.metrics.connection_opened();
        let source = source.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let framing = settings.framing;
        connections.spawn(async move {
            // Counted closed on every way out, a panic included (a bug: parsers' panics are
            // caught per record), or the count would creep towards `max_connections` and
            // refuse senders.
            let _open = OpenConnection(&source);
            serve_connection(stream, peer, framing, tls, &source, &shutdown).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// A connection counted open until dropped.
struct OpenConnection<'a>(&'a SourceRuntime);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    framing: crate::framing::Framing,
    tls: Option<TlsAcceptor>,
    source: &SourceRuntime,
    shutdown: &CancellationToken,
) {
    let address = peer.to_string();
    match tls {
        None => read_stream(stream, framing, address, source, shutdown).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                _ = shutdown.cancelled() => return,
                handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
            };
            match handshake {
                Ok(Ok(tls_stream)) => {
                    read_stream(tls_stream, framing, address, source, shutdown).await
                }
                Ok(Err(error)) => {
                    source.metrics.add_error(SourceErrorKind::TlsHandshake);
                    tracing::warn!(source = %source.config.name, %peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    source.metrics.add_error(SourceErrorKind::TlsHandshake);
                    tracing::warn!(source = %source.config.name, %peer, "TLS handshake timed out");
                }
            }
        }
    }
}
