//! A running collector: binds every source, starts the pipeline writer and `/metrics`, and
//! stops in order: sources first (each hands out what it has read), then the writer, which
//! drains the pipeline into the sink and flushes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{validate::bind_message, CollectorConfig, ConfigProblem, SourceKind};
use crate::metrics::{CollectorMetrics, SourceMetrics};
use crate::pipeline::start_writer_bounded;
use crate::sink::EventSink;
use crate::sources::{self, CollectorIdentity, SourceRuntime};
use crate::CollectorError;

/// How often the writer flushes the sink when events were written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// A collector whose sources are running.
#[derive(Debug)]
pub struct RunningCollector {
    shutdown: CancellationToken,
    sources: TaskTracker,
    writer: JoinHandle<()>,
    metrics: Arc<CollectorMetrics>,
    addresses: Vec<(String, SocketAddr)>,
    metrics_address: Option<SocketAddr>,
    metrics_server: Option<JoinHandle<()>>,
}

/// A socket bound for a source before anything starts, so every bind failure is reported
/// together.
enum Bound {
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpListener, Option<TlsAcceptor>),
    File,
}

impl RunningCollector {
    /// Binds every source and starts reading. Fails, listing every address that cannot be
    /// used, before any source has started.
    pub async fn start(
        config: &CollectorConfig,
        identity: CollectorIdentity,
        sink: Arc<dyn EventSink>,
    ) -> Result<Self, CollectorError> {
        let mut problems = Vec::new();
        let mut bound = Vec::new();
        for source in &config.sources {
            let label = format!("source \"{}\".listen", source.name);
            let result = match &source.kind {
                SourceKind::Udp(udp) => sources::udp::bind(udp)
                    .map(Bound::Udp)
                    .map_err(|error| bind_message(udp.listen, "udp", &error)),
                SourceKind::Tcp(tcp) => {
                    bind_tcp(tcp.listen).map(|listener| Bound::Tcp(listener, None))
                }
                SourceKind::Tls(tls) => match crate::tls::server_config(&tls.tls) {
                    Ok(server) => bind_tcp(tls.tcp.listen)
                        .map(|listener| Bound::Tcp(listener, Some(TlsAcceptor::from(server)))),
                    Err(error) => Err(error.to_string()),
                },
                SourceKind::Http(http) => {
                    let acceptor = match &http.tls {
                        None => Ok(None),
                        Some(files) => crate::tls::server_config(files)
                            .map(|server| Some(TlsAcceptor::from(server)))
                            .map_err(|error| error.to_string()),
                    };
                    acceptor.and_then(|acceptor| {
                        bind_tcp(http.listen).map(|listener| Bound::Tcp(listener, acceptor))
                    })
                }
                SourceKind::File(_) => {
                    let directory = config.collector.data_dir.join("checkpoints");
                    std::fs::create_dir_all(&directory)
                        .map(|()| Bound::File)
                        .map_err(|error| format!("cannot create {}: {error}", directory.display()))
                }
            };
            match result {
                Ok(socket) => bound.push(socket),
                Err(message) => problems.push(ConfigProblem {
                    path: label,
                    message,
                }),
            }
        }
        let metrics_listener = match config.collector.metrics_listen {
            None => None,
            Some(address) => match bind_tcp(address) {
                Ok(listener) => Some(listener),
                Err(message) => {
                    problems.push(ConfigProblem {
                        path: "collector.metrics_listen".into(),
                        message,
                    });
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(CollectorError::Config {
                file: "cannot start".into(),
                problems,
            });
        }

        let source_metrics: Vec<Arc<SourceMetrics>> = config
            .sources
            .iter()
            .map(|source| Arc::new(SourceMetrics::new(&source.name, source.kind.type_name())))
            .collect();
        let metrics = Arc::new(CollectorMetrics::new(
            source_metrics.clone(),
            &config.config_hash,
        ));
        metrics.watch_sink(sink.clone());
        let encoding = sink.encoding();
        let (pipeline, writer) = start_writer_bounded(
            sink,
            metrics.clone(),
            FLUSH_INTERVAL,
            config.collector.queue_max_bytes,
        );
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut addresses = Vec::new();

        for (index, (source, socket)) in config.sources.iter().zip(bound).enumerate() {
            let runtime = Arc::new(SourceRuntime {
                index,
                config: source.clone(),
                metrics: source_metrics[index].clone(),
                pipeline: pipeline.clone(),
                identity: identity.clone(),
                encoding,
            });
            let stop = shutdown.clone();
            match socket {
                Bound::Udp(socket) => {
                    let socket = tokio::net::UdpSocket::from_std(socket).map_err(|error| {
                        CollectorError::io("cannot register a UDP socket", error)
                    })?;
                    if let Ok(address) = socket.local_addr() {
                        addresses.push((source.name.clone(), address));
                    }
                    spawn_source(
                        &tasks,
                        source.name.clone(),
                        sources::udp::run(socket, runtime, stop),
                    );
                }
                Bound::Tcp(listener, tls) => {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).map_err(|error| {
                            CollectorError::io("cannot register a TCP listener", error)
                        })?;
                    if let Ok(address) = listener.local_addr() {
                        addresses.push((source.name.clone(), address));
                    }
                    match &source.kind {
                        SourceKind::Http(http) => {
                            spawn_source(
                                &tasks,
                                source.name.clone(),
                                sources::http::run(listener, tls, runtime, http.clone(), stop),
                            );
                        }
                        SourceKind::Tcp(tcp) => {
                            spawn_source(
                                &tasks,
                                source.name.clone(),
                                sources::tcp::run_listener(
                                    listener,
                                    tcp.clone(),
                                    None,
                                    runtime,
                                    stop,
                                ),
                            );
                        }
                        SourceKind::Tls(settings) => {
                            spawn_source(
                                &tasks,
                                source.name.clone(),
                                sources::tcp::run_listener(
                                    listener,
                                    settings.tcp.clone(),
                                    tls,
                                    runtime,
                                    stop,
                                ),
                            );
                        }
                        SourceKind::Udp(_) | SourceKind::File(_) => {}
                    }
                }
                Bound::File => {
                    if let SourceKind::File(file) = &source.kind {
                        let checkpoint = config
                            .collector
                            .data_dir
                            .join("checkpoints")
                            .join(format!("{}.json", source.name));
                        let file = file.clone();
                        let task = tokio::task::spawn_blocking(move || {
                            sources::file_tail::run(file, checkpoint, runtime, stop)
                        });
                        let name = source.name.clone();
                        tasks.spawn(async move {
                            // Parsers' panics are caught per record (`Decoder::decode`); one
                            // anywhere else ends the source, which must not go unnoticed.
                            if let Err(error) = task.await {
                                tracing::error!(source = %name, %error, "the file source stopped on an internal error (a bug); restart the collector to resume from the checkpoint");
                            }
                        });
                    }
                }
            }
        }
        drop(pipeline);
        tasks.close();

        let (metrics_address, metrics_server) = match metrics_listener {
            None => (None, None),
            Some(listener) => {
                let listener = tokio::net::TcpListener::from_std(listener).map_err(|error| {
                    CollectorError::io("cannot register the metrics listener", error)
                })?;
                let address = listener.local_addr().ok();
                let app = metrics_router(metrics.clone());
                let stop = shutdown.clone();
                let server = tokio::spawn(async move {
                    let result = axum::serve(listener, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await;
                    if let Err(error) = result {
                        tracing::error!(%error, "metrics server stopped");
                    }
                });
                (address, Some(server))
            }
        };
        tracing::info!(
            sources = config.sources.len(),
            collector = %identity.collector,
            agency = identity.agency.as_deref().unwrap_or("-"),
            "collector started"
        );
        Ok(RunningCollector {
            shutdown,
            sources: tasks,
            writer,
            metrics,
            addresses,
            metrics_address,
            metrics_server,
        })
    }

    /// The address a network source listens on (useful with port 0).
    pub fn local_address(&self, source: &str) -> Option<SocketAddr> {
        self.addresses
            .iter()
            .find(|(name, _)| name == source)
            .map(|(_, address)| *address)
    }

    /// Where `/metrics` is served.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// The counters.
    pub fn metrics(&self) -> Arc<CollectorMetrics> {
        self.metrics.clone()
    }

    /// A token that stops the collector when cancelled (for signal handlers).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the shutdown token is cancelled, then stops.
    pub async fn run_until_stopped(self) {
        self.shutdown.cancelled().await;
        self.stop().await;
    }

    /// Stops the sources, drains the pipeline into the sink and flushes it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.sources.wait().await;
        if let Err(error) = self.writer.await {
            tracing::error!(%error, "pipeline writer failed");
        }
        if let Some(server) = self.metrics_server {
            let _ = server.await;
        }
        tracing::info!("collector stopped");
    }
}

fn bind_tcp(address: SocketAddr) -> Result<std::net::TcpListener, String> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        // A restarted collector must be able to listen again while old connections linger
        // in TIME_WAIT.
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        socket.listen(1024)?;
        Ok(socket.into())
    };
    bind().map_err(|error| bind_message(address, "tcp", &error))
}

fn metrics_router(metrics: Arc<CollectorMetrics>) -> Router {
    let for_health = metrics.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render_prometheus(),
                    )
                }
            }),
        )
        .route(
            "/health",
            get(move || {
                let metrics = for_health.clone();
                async move {
                    let mut body = serde_json::json!({
                        "uptime_seconds": metrics.uptime_seconds(),
                        "sources": metrics.health(),
                    });
                    if let (Some(delivery), Some(object)) =
                        (metrics.delivery_health(), body.as_object_mut())
                    {
                        object.insert("buffer".into(), serde_json::json!(delivery.buffer));
                        object.insert("forwarder".into(), serde_json::json!(delivery.forwarder));
                    }
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body.to_string(),
                    )
                }
            }),
        )
}

/// Runs a source's task, logging its end should it panic (a bug: parsers' panics are caught
/// per record, `Decoder::decode`), which would otherwise stop the source unnoticed.
fn spawn_source(
    tasks: &TaskTracker,
    name: String,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let running = tasks.spawn(task);
    tasks.spawn(async move {
        if let Err(error) = running.await {
            if error.is_panic() {
                tracing::error!(source = %name, %error, "the source stopped on an internal error (a bug); restart the collector to resume it");
            }
        }
    });
}
