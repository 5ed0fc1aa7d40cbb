//! `citysoc collector`: check a collector configuration, or run a collector, from a
//! configuration file or as a quick start from flags
//! (`--listen tcp://0.0.0.0:5514 --listen udp://0.0.0.0:5514 --to file:events.ndjson`).
//!
//! The quick start builds the same TOML a configuration file would hold and checks it the
//! same way, so both paths report problems alike.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use citysoc_collector::config::WhenFullPolicy;
use citysoc_collector::config::{CheckOptions, SourceKind};
use citysoc_collector::identity::{self, Identity};
use citysoc_collector::protocol::Heartbeat;
use citysoc_collector::{
    BufferConfig, BufferSink, CollectorConfig, CollectorIdentity, DiskBuffer, EventSink, Forwarder,
    ForwarderConfig, ForwarderStats, NdjsonFileSink, RunningCollector, SyncPolicy, TeeSink,
    WhenFull,
};

/// `citysoc collector …`
#[derive(Debug, clap::Subcommand)]
pub enum CollectorCommand {
    /// Check a configuration file and list every problem (exit code 1 if there is any).
    Check(CheckArgs),
    /// Run the collector until SIGTERM or Ctrl-C.
    Run(Box<RunArgs>),
    /// Exchange a one-time token from the SOC for this collector's key.
    Enroll(EnrollArgs),
    /// Get a new key from the SOC for this enrolled collector (then restart the collector).
    RotateKey(RotateKeyArgs),
}

/// Arguments of `citysoc collector rotate-key`.
#[derive(Debug, clap::Args)]
pub struct RotateKeyArgs {
    /// The collector's key file: the configuration's `[server] key_file`.
    #[arg(long, default_value = "/var/lib/citysoc-collector/collector.key")]
    key_file: PathBuf,
}

/// Arguments of `citysoc collector enroll`.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// The SOC server, e.g. https://soc.hcm.example:8443.
    #[arg(long)]
    server: String,
    /// The one-time token an agency admin created on the server.
    // Tokens are URL-safe base64: one in 64 starts with `-`, which clap would otherwise take
    // for an option ("unexpected argument '-S' found").
    #[arg(long, allow_hyphen_values = true)]
    token: String,
    /// Where to keep the key (mode 0600); the configuration's `[server] key_file`.
    #[arg(long, default_value = "/var/lib/citysoc-collector/collector.key")]
    key_file: PathBuf,
    /// A name for this collector (default: the host name).
    #[arg(long, default_value = "")]
    name: String,
    /// CA certificate of the server, when it is not signed by a public CA.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// Arguments of `citysoc collector check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Do not try to bind the listen addresses (to check the file of a collector that is
    /// running and holds them).
    #[arg(long)]
    skip_ports: bool,
}

/// Arguments of `citysoc collector run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file. Without it, the flags below describe a quick start.
    #[arg(long, conflicts_with_all = ["listen", "to"])]
    config: Option<PathBuf>,
    /// Quick start: where to listen, repeatable: udp://ADDR:PORT, tcp://ADDR:PORT,
    /// tls://ADDR:PORT, http://ADDR:PORT or https://ADDR:PORT (tls and https need --tls-cert
    /// and --tls-key).
    #[arg(long, value_name = "URL", requires = "to")]
    listen: Vec<String>,
    /// Quick start: where events go: file:PATH (an NDJSON file) or https://SERVER (the SOC
    /// server, after enrolling).
    #[arg(long, value_name = "DESTINATION", requires = "listen")]
    to: Option<String>,
    /// Quick start: the agency the events belong to.
    #[arg(long)]
    agency: Option<String>,
    /// Quick start: the collector's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Quick start: format of the records (auto guesses per record).
    #[arg(long, default_value = "auto")]
    format: String,
    /// Quick start: zone for device times written without one.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    timezone: String,
    /// Quick start: directory for the collector's state.
    #[arg(long, default_value = "citysoc-collector-data")]
    data_dir: PathBuf,
    /// Quick start: where to serve /metrics (a loopback address), or `off`.
    #[arg(long, default_value = "127.0.0.1:9780")]
    metrics: String,
    /// Quick start: PEM certificate for tls:// and https:// listeners.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Quick start: PEM private key for tls:// and https:// listeners.
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

/// Runs `citysoc collector …`.
pub fn run(command: CollectorCommand) -> anyhow::Result<()> {
    match command {
        CollectorCommand::Check(args) => check(args),
        CollectorCommand::Run(args) => run_collector(*args),
        CollectorCommand::Enroll(args) => enroll(args),
        CollectorCommand::RotateKey(args) => rotate_key(args),
    }
}

/// Asks the server for a new key, signed with the current one, and replaces the key file.
/// A collector already running keeps its old key in memory; the server accepts the old key
/// until the new one is first used, so it goes on delivering until it is restarted, and
/// after the restart the old key is refused.
fn rotate_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let mut identity = Identity::load(&args.key_file)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(identity.rotate(&args.key_file))
        .context("key rotation failed; the key file is unchanged")?;
    println!(
        "collector {} (agency {}): new key written to {} (mode 0600); restart the collector to use it \
         (sudo systemctl restart citysoc-collector). The old key stays valid until the new one is first used.",
        identity.collector_id,
        identity.agency,
        args.key_file.display()
    );
    Ok(())
}

fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let enrolled = runtime
        .block_on(identity::enroll(
            &args.server,
            &args.token,
            &args.name,
            args.ca_file.as_deref(),
        ))
        .context("enrollment failed")?;
    enrolled.save(&args.key_file)?;
    println!(
        "enrolled as collector {} of agency {}; key written to {} (mode 0600)",
        enrolled.collector_id,
        enrolled.agency,
        args.key_file.display()
    );
    Ok(())
}

fn check(args: CheckArgs) -> anyhow::Result<()> {
    let options = CheckOptions {
        check_ports: !args.skip_ports,
        check_files: true,
    };
    let config = CollectorConfig::load(&args.config, &options)?;
    println!("{}: OK", args.config.display());
    print_summary(&config);
    println!("  config hash {}", config.config_hash);
    Ok(())
}

fn print_summary(config: &CollectorConfig) {
    println!(
        "  collector {} (agency {}), data in {}",
        config.collector.name,
        config
            .collector
            .agency
            .as_deref()
            .unwrap_or("from enrollment"),
        config.collector.data_dir.display()
    );
    for source in &config.sources {
        let place = match &source.kind {
            SourceKind::File(file) => file.path.display().to_string(),
            kind => kind
                .listen()
                .map(|address| address.to_string())
                .unwrap_or_default(),
        };
        println!(
            "  source {}: {} {place}",
            source.name,
            source.kind.type_name()
        );
    }
    if let Some(server) = &config.server {
        println!("  server {}", server.url);
    }
    if let Some(archive) = &config.archive {
        println!("  archive {}", archive.path.display());
    }
    if let Some(metrics) = config.collector.metrics_listen {
        println!("  metrics http://{metrics}/metrics");
    }
}

fn run_collector(args: RunArgs) -> anyhow::Result<()> {
    init_logging();
    let config = match &args.config {
        Some(path) => CollectorConfig::load(
            path,
            &CheckOptions {
                // The collector binds every address itself at start and lists every failure.
                check_ports: false,
                check_files: true,
            },
        )?,
        None => quick_start_config(&args)?,
    };
    let destination = build_sink(&config)?;
    let sink = destination.sink.clone();
    let identity = match &destination.enrolled {
        // Enrolled: the server's id and the token's agency, never the configuration's.
        Some(enrolled) => CollectorIdentity {
            collector: enrolled.collector_id.clone(),
            agency: Some(enrolled.agency.clone()),
        },
        None => CollectorIdentity {
            collector: config.collector.name.clone(),
            agency: config.collector.agency.clone(),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collector")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let collector = RunningCollector::start(&config, identity, sink).await?;
        let forwarding = destination.start_forwarding(&config, collector.metrics())?;
        eprintln!("citysoc collector {} running", config.collector.name);
        for source in &config.sources {
            match collector.local_address(&source.name) {
                Some(address) => eprintln!(
                    "  {} {}: listening on {address}",
                    source.kind.type_name(),
                    source.name
                ),
                None => eprintln!("  {} {}", source.kind.type_name(), source.name),
            }
        }
        if let Some(address) = collector.metrics_address() {
            eprintln!("  metrics: http://{address}/metrics");
        }
        if let Some(archive) = &config.archive {
            eprintln!("  writing to {}", archive.path.display());
        }
        let stop = collector.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: draining sources into the sink");
            stop.cancel();
        });
        let metrics = collector.metrics();
        collector.run_until_stopped().await;
        if let Some(forwarding) = forwarding {
            forwarding.stop().await;
        }
        for source in metrics.sources() {
            let health = source.health();
            eprintln!(
                "  {}: {} records in, {} events out, {} dropped, {} errors",
                source.name(),
                health.events_in,
                health.events_out,
                health.drops,
                health.errors
            );
        }
        anyhow::Ok(())
    })
}

/// Where a running collector's events go: the disk buffer (forwarded to the SOC server) when
/// a server is configured, the local archive, or both.
struct Destination {
    sink: Arc<dyn EventSink>,
    buffer: Option<Arc<DiskBuffer>>,
    enrolled: Option<Identity>,
}

fn build_sink(config: &CollectorConfig) -> anyhow::Result<Destination> {
    let archive = match &config.archive {
        Some(archive) => Some(
            Arc::new(NdjsonFileSink::open(&archive.path, archive.max_file_bytes)?)
                as Arc<dyn EventSink>,
        ),
        None => None,
    };
    let Some(server) = &config.server else {
        let Some(archive) = archive else {
            bail!("nowhere to send events: configure [archive] (or [server])");
        };
        return Ok(Destination {
            sink: archive,
            buffer: None,
            enrolled: None,
        });
    };
    let enrolled = Identity::load(&server.key_file).with_context(|| {
        format!(
            "not enrolled: run `citysoc collector enroll --server {} --token TOKEN --key-file {}` first",
            server.url,
            server.key_file.display()
        )
    })?;
    let buffer_config = BufferConfig {
        max_bytes: config.buffer.max_bytes,
        when_full: match config.buffer.when_full {
            WhenFullPolicy::Block => WhenFull::Block,
            WhenFullPolicy::DropOldest => WhenFull::DropOldest,
        },
        sync: match config.buffer.sync_interval {
            None => SyncPolicy::EveryAppend,
            Some(interval) => SyncPolicy::Interval(interval),
        },
        ..BufferConfig::default()
    };
    let buffer_dir = config.collector.data_dir.join("buffer");
    let buffer = Arc::new(
        DiskBuffer::open(&buffer_dir, buffer_config)
            .with_context(|| format!("cannot open the disk buffer in {}", buffer_dir.display()))?,
    );
    let primary: Arc<dyn EventSink> = Arc::new(BufferSink::new(buffer.clone()));
    let sink: Arc<dyn EventSink> = match archive {
        Some(archive) => Arc::new(TeeSink::new(primary, vec![archive])),
        None => primary,
    };
    Ok(Destination {
        sink,
        buffer: Some(buffer),
        enrolled: Some(enrolled),
    })
}

/// The forwarder and the heartbeat task of a collector that sends to a server.
struct Forwarding {
    forwarder: Forwarder,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Destination {
    /// Starts forwarding the buffer to the server (inside the runtime), with heartbeats.
    fn start_forwarding(
        &self,
        config: &CollectorConfig,
        metrics: Arc<citysoc_collector::metrics::CollectorMetrics>,
    ) -> anyhow::Result<Option<Forwarding>> {
        let (Some(buffer), Some(enrolled), Some(server)) =
            (&self.buffer, &self.enrolled, &config.server)
        else {
            return Ok(None);
        };
        let mut forwarder_config = ForwarderConfig::new(
            server.url.clone(),
            enrolled.collector_id.clone(),
            enrolled.key_bytes()?,
        );
        forwarder_config.ca_file = server.ca_file.clone().or_else(|| enrolled.ca_file.clone());
        let forwarder = Forwarder::start(buffer.clone(), forwarder_config)?;
        metrics.watch_delivery(buffer.clone(), forwarder.stats());
        let heartbeat = tokio::spawn(send_heartbeats(
            enrolled.clone(),
            buffer.clone(),
            forwarder.stats(),
            metrics,
            config.config_hash.clone(),
        ));
        eprintln!(
            "  forwarding to {} as collector {}",
            server.url, enrolled.collector_id
        );
        Ok(Some(Forwarding {
            forwarder,
            heartbeat,
        }))
    }
}

impl Forwarding {
    async fn stop(self) {
        self.heartbeat.abort();
        self.forwarder.shutdown().await;
    }
}

/// How often a collector reports its health.
const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

async fn send_heartbeats(
    enrolled: Identity,
    buffer: Arc<DiskBuffer>,
    forwarder: Arc<ForwarderStats>,
    metrics: Arc<citysoc_collector::metrics::CollectorMetrics>,
    config_hash: String,
) {
    let started = std::time::Instant::now();
    loop {
        let buffered = buffer.stats();
        let sent = forwarder.snapshot();
        let heartbeat = Heartbeat {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: started.elapsed().as_secs(),
            sources: metrics.health(),
            buffer_bytes: buffered.bytes,
            buffer_events: buffered.records,
            buffer_max_bytes: buffered.max_bytes,
            buffer_dropped: buffered.dropped,
            batches_acked: sent.batches_acked,
            send_errors: sent.retries,
            rejected_batches: sent.rejected_batches,
            buffer_corrupt_events: buffered.corrupt_records_skipped,
            last_error: sent.last_error.clone(),
            config_hash: config_hash.clone(),
        };
        if let Err(error) = enrolled.send_heartbeat(&heartbeat).await {
            tracing::warn!("heartbeat not delivered: {error}");
        }
        tokio::time::sleep(HEARTBEAT_INTERVAL).await;
    }
}

/// The configuration a quick start describes, as TOML, checked like a file.
fn quick_start_config(args: &RunArgs) -> anyhow::Result<CollectorConfig> {
    let mut document = toml::Table::new();
    let mut collector = toml::Table::new();
    if let Some(name) = &args.name {
        collector.insert("name".into(), name.clone().into());
    }
    if let Some(agency) = &args.agency {
        collector.insert("agency".into(), agency.clone().into());
    }
    let data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;
    collector.insert("data_dir".into(), data_dir.display().to_string().into());
    collector.insert("timezone".into(), args.timezone.clone().into());
    collector.insert("metrics_listen".into(), args.metrics.clone().into());
    document.insert("collector".into(), collector.into());

    let mut sources = Vec::new();
    for (index, url) in args.listen.iter().enumerate() {
        let (scheme, address) = url.split_once("://").with_context(|| {
            format!("--listen {url}: expected SCHEME://ADDRESS:PORT, such as udp://0.0.0.0:514")
        })?;
        let (kind, tls) = match scheme {
            "udp" | "tcp" => (scheme, false),
            "tls" => ("tls", true),
            "http" => ("http", false),
            "https" => ("http", true),
            other => {
                bail!("--listen {url}: unknown scheme `{other}` (udp, tcp, tls, http or https)")
            }
        };
        let mut source = toml::Table::new();
        source.insert("name".into(), format!("{scheme}-{}", index + 1).into());
        source.insert("type".into(), kind.into());
        source.insert("listen".into(), address.into());
        source.insert("format".into(), args.format.clone().into());
        if tls {
            let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
                bail!("--listen {url}: {scheme} needs --tls-cert and --tls-key");
            };
            source.insert("tls_cert".into(), cert.display().to_string().into());
            source.insert("tls_key".into(), key.display().to_string().into());
        }
        sources.push(toml::Value::Table(source));
    }
    document.insert("source".into(), sources.into());

    let destination = args.to.as_deref().unwrap_or_default();
    if let Some(path) = destination.strip_prefix("file:") {
        let mut archive = toml::Table::new();
        let path = std::path::absolute(path).with_context(|| format!("cannot resolve {path}"))?;
        archive.insert("path".into(), path.display().to_string().into());
        document.insert("archive".into(), archive.into());
    } else if destination.starts_with("https://") || destination.starts_with("http://") {
        let mut server = toml::Table::new();
        server.insert("url".into(), destination.into());
        document.insert("server".into(), server.into());
    } else {
        bail!("--to {destination}: expected file:PATH or https://SERVER");
    }
    let text = toml::to_string(&document).context("cannot build the quick-start configuration")?;
    Ok(CollectorConfig::from_toml(
        &text,
        "command line",
        &CheckOptions {
            check_ports: false,
            check_files: true,
        },
    )?)
}

/// Logs to standard error (journald keeps it under systemd); `CITYSOC_LOG` sets the filter
/// (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CITYSOC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
