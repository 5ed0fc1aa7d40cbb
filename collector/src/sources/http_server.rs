//! The HTTP intake's server loop, plain or TLS: connections admitted up to `max_connections`
//! (more refused and counted, as the TCP sources do), each served by hyper's HTTP/1 with a
//! header-read timeout, and finished gracefully at shutdown.
//!
//! Not `axum::serve`: it runs hyper without a timer, so a connection that sends no request
//! head (an idle keep-alive connection, or one that opens and says nothing) would hold its
//! slot for as long as the peer kept the socket alive, and a handful of such sockets would
//! lock every agent out once connections are bounded. With the source's `head_timeout_ms`, a
//! connection between requests is closed after that long (agents reconnect), and one
//! trickling its head is closed too.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::connections::admit;
use super::{accept, SourceRuntime};
use crate::metrics::SourceErrorKind;

/// How long shutdown waits for the requests in flight before it goes on without them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The peer address of a request, given to the handlers as `ConnectInfo`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddress(pub(crate) SocketAddr);

/// Serves `router` on `listener` (HTTPS when `tls` is set) until `shutdown`; then stops
/// accepting and waits, at most [`DRAIN_TIMEOUT`], for the connections open to finish the
/// requests in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    source: Arc<SourceRuntime>,
    max_connections: usize,
    head_timeout: Duration,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    // The connections' tasks, so that shutdown can end them: each holds the source's pipeline
    // sender, and the pipeline does not close while one is alive.
    let mut connections = JoinSet::new();
    loop {
        // Finished connections' entries go as new ones come.
        while connections.try_join_next().is_some() {}
        let Some((stream, peer)) = accept(&listener, &source, &shutdown).await else {
            break;
        };
        let Some(slot) = admit(&source, &stream, peer, max_connections) else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(Extension(ConnectInfo(PeerAddress(peer)))),
        );
        // Taken before the task starts, so shutdown waits for this connection, its TLS
        // handshake included.
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let source = source.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(head_timeout);
            let served = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        _ => {
                            source.metrics.add_error(SourceErrorKind::TlsHandshake);
                            tracing::warn!(source = %source.config.name, %peer, "TLS handshake failed or timed out");
                            return;
                        }
                    }
                }
            };
            // A connection closed mid-request, a head that never came: the peer's doing, and
            // a request that was not answered is sent again by the agent.
            if let Err(error) = served {
                tracing::debug!(source = %source.config.name, %peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        // A peer not reading its answer, a body still trickling in: the agents send again
        // what was not answered.
        tracing::warn!(source = %source.config.name, "HTTP connections still open {DRAIN_TIMEOUT:?} after shutdown began: closing them");
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}
