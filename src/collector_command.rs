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
use citysoc_collector::config::{CheckOptions, SourceKind};
use citysoc_collector::{
    CollectorConfig, CollectorIdentity, EventSink, NdjsonFileSink, RunningCollector,
};

/// `citysoc collector …`
#[derive(Debug, clap::Subcommand)]
pub enum CollectorCommand {
    /// Check a configuration file and list every problem (exit code 1 if there is any).
    Check(CheckArgs),
    /// Run the collector until SIGTERM or Ctrl-C.
    Run(Box<RunArgs>),
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
    }
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
    let sink = build_sink(&config)?;
    let identity = CollectorIdentity {
        collector: config.collector.name.clone(),
        agency: config.collector.agency.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collector")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let collector = RunningCollector::start(&config, identity, sink).await?;
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

/// The sink for a configuration: the local archive. Forwarding to the SOC server needs the
/// disk buffer and forwarder, which are not part of this build yet.
fn build_sink(config: &CollectorConfig) -> anyhow::Result<Arc<dyn EventSink>> {
    if let Some(server) = &config.server {
        bail!(
            "forwarding to the SOC server ({}) is not available in this build yet; write events to a local file instead (--to file:PATH, or an [archive] section without [server])",
            server.url
        );
    }
    let Some(archive) = &config.archive else {
        bail!("nowhere to send events: configure [archive] (or [server])");
    };
    let sink = NdjsonFileSink::open(&archive.path, archive.max_file_bytes)?;
    Ok(Arc::new(sink))
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
