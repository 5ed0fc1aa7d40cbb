//! The listeners the HTTP intake is served from, plain and TLS: each admits at most
//! `max_connections` connections at once (more are refused and counted, as the TCP sources
//! do) and hands the server streams that hold their connection's slot until they close.
//! Agents keep their connections open between requests, so without a bound each idle one
//! would cost a socket and a task for as long as the agent lived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::connections::{admit, Admitted};
use super::{accept, SourceRuntime};
use crate::metrics::SourceErrorKind;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Plain HTTP: connections admitted as they are accepted.
pub(crate) struct PlainListener {
    listener: TcpListener,
    source: Arc<SourceRuntime>,
    max_connections: usize,
    shutdown: CancellationToken,
}

impl PlainListener {
    pub(crate) fn new(
        listener: TcpListener,
        source: Arc<SourceRuntime>,
        max_connections: usize,
        shutdown: CancellationToken,
    ) -> Self {
        PlainListener {
            listener,
            source,
            max_connections,
            shutdown,
        }
    }
}

impl axum::serve::Listener for PlainListener {
    type Io = Admitted<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some((stream, peer)) = accept(&self.listener, &self.source, &self.shutdown).await
            else {
                // Shutting down: no more connections; graceful shutdown ends the server.
                return std::future::pending().await;
            };
            if let Some(slot) = admit(&self.source, &stream, peer, self.max_connections) {
                return (Admitted::new(stream, slot), peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// HTTPS: handshakes run in their own tasks (bounded in time), so one slow client does not
/// hold up the others. A connection holds its slot from its admission, handshake included.
pub(crate) struct TlsListener {
    local_address: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(Admitted<TlsStream<TcpStream>>, SocketAddr)>,
}

impl TlsListener {
    pub(crate) fn start(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        source: Arc<SourceRuntime>,
        max_connections: usize,
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
                let Some(slot) = admit(&source, &stream, peer, max_connections) else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let ready_tx = ready_tx.clone();
                let source = source.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let _ = ready_tx.send((Admitted::new(tls_stream, slot), peer)).await;
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
    type Io = Admitted<TlsStream<TcpStream>>;
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
