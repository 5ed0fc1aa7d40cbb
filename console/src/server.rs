//! The server: the router of every endpoint, and the accept loop (plain HTTP or TLS) with a
//! commit timer and a graceful shutdown (stop accepting, finish the requests in flight,
//! commit, close).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use citysoc_collector::protocol::{
    ENROLL_PATH, HEARTBEAT_PATH, INTAKE_PATH, MAX_BODY_BYTES, ROTATE_PATH,
};
use citysoc_index::{TantivyConfig, TantivyStore};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::app::{App, AppState};
use crate::batch_places::BatchPlaces;
use crate::control::{heartbeat, rotate, CONTROL_BODY_BYTES};
use crate::detection::Detection;
use crate::enroll::enroll;
use crate::intake::intake;
use crate::metrics::{self, Metrics};
use crate::registry::Registry;
use crate::tls::{server_config, TlsFiles};
use crate::ConsoleError;

/// Path of the Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";
/// Path of the liveness check.
pub const HEALTH_PATH: &str = "/healthz";

/// How long a client has for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server needs.
pub struct ServerConfig {
    /// Data directory: `citysoc.db` (registry), `events/` (store), `alerts.ndjson`.
    pub data_dir: PathBuf,
    /// Certificate and key; plain HTTP without them.
    pub tls: Option<TlsFiles>,
    /// Detection on received events; none stores without detecting.
    pub detection: Option<Detection>,
    /// How the store commits; the intake commits every batch itself, the timer catches the
    /// rest.
    pub store: TantivyConfig,
    /// How often the timer checks whether a commit is due.
    pub commit_check: Duration,
    /// Batches decoded, checked and stored at once, at most (`batch_places.rs`).
    pub max_batches_in_process: usize,
    /// How long a batch waits for one of those places before it is refused as `busy`.
    pub batch_place_wait: Duration,
    /// Every collector's requests must carry a head signature, whether or not it has sent one
    /// before (once every collector runs a version that signs its heads): a forged request
    /// for any collector id is then refused before it takes a place or its body is read.
    pub require_head_signatures: bool,
}

impl ServerConfig {
    /// Defaults for a data directory: plain HTTP, no detection, the store's defaults.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            data_dir: data_dir.into(),
            tls: None,
            detection: None,
            store: TantivyConfig::default(),
            commit_check: Duration::from_secs(1),
            max_batches_in_process: crate::batch_places::default_max_places(),
            batch_place_wait: crate::batch_places::DEFAULT_PLACE_WAIT,
            require_head_signatures: false,
        }
    }
}

/// The server, ready to serve.
pub struct Server {
    app: App,
    tls: Option<Arc<rustls::ServerConfig>>,
    commit_check: Duration,
}

impl Server {
    /// Opens the registry and the store of the data directory and loads the TLS files.
    pub fn new(config: ServerConfig) -> Result<Server, ConsoleError> {
        let registry = Arc::new(Registry::open_in(&config.data_dir)?);
        let store = Arc::new(TantivyStore::open(
            config.data_dir.join("events"),
            config.store,
        )?);
        let tls = config.tls.as_ref().map(server_config).transpose()?;
        let app = Arc::new(AppState::new(
            registry,
            store,
            Arc::new(Metrics::default()),
            config.detection,
            config.data_dir.join("alerts.ndjson"),
            BatchPlaces::new(config.max_batches_in_process, config.batch_place_wait),
            config.require_head_signatures,
        ));
        Ok(Server {
            app,
            tls,
            commit_check: config.commit_check,
        })
    }

    /// Every endpoint.
    pub fn router(&self) -> Router {
        router(self.app.clone())
    }

    /// The registry (for tests and for the CLI running beside the server).
    pub fn registry(&self) -> Arc<Registry> {
        self.app.registry.clone()
    }

    /// The event store.
    pub fn store(&self) -> Arc<TantivyStore> {
        self.app.store.clone()
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.app.metrics.clone()
    }

    /// Serves on `listener` until `shutdown` completes; then stops accepting, lets the
    /// requests in flight finish (up to 30 s), and commits and closes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ConsoleError> {
        let address = listener.local_addr().map_err(ConsoleError::Listen)?;
        match &self.tls {
            Some(_) => tracing::info!(%address, "listening (TLS)"),
            None if address.ip().is_loopback() => {
                tracing::info!(%address, "listening (plain HTTP)")
            }
            None => tracing::warn!(
                %address,
                "listening with plain HTTP on a non-loopback address: collector keys and events cross the network unencrypted; give --tls-cert and --tls-key"
            ),
        }
        let router = self.router();
        let acceptor = self.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let graceful = GracefulShutdown::new();
        let (stop_timer, timer) = commit_timer(self.app.clone(), self.commit_check);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let service = TowerToHyperService::new(router.clone());
            let watcher = graceful.watcher();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let result = match acceptor {
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                        {
                            Ok(Ok(stream)) => {
                                watcher
                                    .watch(http.serve_connection(TokioIo::new(stream), service))
                                    .await
                            }
                            Ok(Err(error)) => {
                                tracing::info!(%peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(%peer, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                    None => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(stream), service))
                            .await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down: finishing requests in flight");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}: closing anyway");
        }
        let _ = stop_timer.send(());
        let _ = timer.await;
        let store = self.app.store.clone();
        let closed = tokio::task::spawn_blocking(move || store.close())
            .await
            .map_err(|error| ConsoleError::Task(format!("closing the store: {error}")))?;
        // Whatever happened to the store, the refusal counts are written.
        let rejections = self.app.registry.write_rejections();
        let committed = closed?;
        tracing::info!(committed, "store closed");
        rejections?;
        Ok(())
    }
}

/// The router over a state.
fn router(app: App) -> Router {
    Router::new()
        .route(
            INTAKE_PATH,
            post(intake).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(ENROLL_PATH, post(enroll))
        .route(ROTATE_PATH, post(rotate))
        .route(HEARTBEAT_PATH, post(heartbeat))
        .route(METRICS_PATH, get(render_metrics))
        .route(HEALTH_PATH, get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(CONTROL_BODY_BYTES))
        .with_state(app)
}

async fn render_metrics(State(app): State<App>) -> impl IntoResponse {
    let mut text = app.metrics.render();
    let in_progress =
        crate::signed::MAX_SIGNED_REQUESTS.saturating_sub(app.signed_requests.available_permits());
    let control_in_progress = crate::signed::MAX_CONTROL_REQUESTS
        .saturating_sub(app.control_requests.available_permits());
    text.push_str(&format!(
        "# HELP citysoc_signed_requests_in_progress Signed batch requests being read or handled (at most {max}; past it they get 503).\n\
         # TYPE citysoc_signed_requests_in_progress gauge\n\
         citysoc_signed_requests_in_progress {in_progress}\n\
         # HELP citysoc_control_requests_in_progress Heartbeats and key rotations being read or handled, in places of their own (at most {control_max}; past it they get 503).\n\
         # TYPE citysoc_control_requests_in_progress gauge\n\
         citysoc_control_requests_in_progress {control_in_progress}\n",
        max = crate::signed::MAX_SIGNED_REQUESTS,
        control_max = crate::signed::MAX_CONTROL_REQUESTS
    ));
    text.push_str(&format!(
        "# HELP citysoc_intake_batches_in_process Batches being decoded, checked and stored (at most {max}; a batch waits for a place, and gets 503 when none comes free within the wait).\n\
         # TYPE citysoc_intake_batches_in_process gauge\n\
         citysoc_intake_batches_in_process {in_use}\n\
         # HELP citysoc_intake_batches_waited_total Batches that found every place taken and waited for one.\n\
         # TYPE citysoc_intake_batches_waited_total counter\n\
         citysoc_intake_batches_waited_total {waited}\n",
        max = app.batch_places.total(),
        in_use = app.batch_places.in_use(),
        waited = app.batch_places.waited(),
    ));
    let store = app.store.stats();
    text.push_str(&format!(
        "# HELP citysoc_store_failed_writers_total Day index writers dropped because tantivy failed in them (a full or failing disk); their batches were refused and are sent again.\n\
         # TYPE citysoc_store_failed_writers_total counter\n\
         citysoc_store_failed_writers_total {failed}\n\
         # HELP citysoc_store_events_dropped_with_failed_writers_total Uncommitted events dropped with those writers (never acknowledged; collectors send them again).\n\
         # TYPE citysoc_store_events_dropped_with_failed_writers_total counter\n\
         citysoc_store_events_dropped_with_failed_writers_total {dropped}\n",
        failed = store.failed_writers.load(std::sync::atomic::Ordering::Relaxed),
        dropped = store
            .events_dropped_with_failed_writers
            .load(std::sync::atomic::Ordering::Relaxed),
    ));
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Commits the store when due, so events are durable and searchable even when no batch
/// follows them (the intake commits its own batches; imports and retries may leave some).
fn commit_timer(
    app: App,
    every: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(async move {
        let mut interval = tokio::time::interval(every.max(Duration::from_millis(10)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = &mut stopped => return,
            }
            let registry = app.registry.clone();
            match tokio::task::spawn_blocking(move || registry.write_rejections()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "cannot write refusal counts"),
                Err(error) => tracing::error!(%error, "refusal count task failed"),
            }
            let store = app.store.clone();
            match tokio::task::spawn_blocking(move || store.commit_if_due()).await {
                Ok(Ok(0)) => {}
                Ok(Ok(_)) => metrics::Metrics::add(&app.metrics.timer_commits, 1),
                Ok(Err(error)) => tracing::error!(%error, "timed commit failed"),
                Err(error) => tracing::error!(%error, "timed commit task failed"),
            }
        }
    });
    (stop, handle)
}

/// Completes on ctrl-c or SIGTERM (what `systemctl stop` sends).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
