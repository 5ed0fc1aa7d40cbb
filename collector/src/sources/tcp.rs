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

use super::connections::admit;
use super::stream::read_stream;
use super::{accept, SourceRuntime};
use crate::config::TcpSourceConfig;
use crate::metrics::SourceErrorKind;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
        let Some(slot) = admit(&source, &stream, peer, settings.max_connections) else {
            drop(stream);
            continue;
        };
        let source = source.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        let framing = settings.framing;
        connections.spawn(async move {
            let _slot = slot;
            serve_connection(stream, peer, framing, tls, &source, &shutdown).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
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
