//! `citysoc server`: run the server collectors forward to, and manage what it trusts
//! (`server token create`, `server collectors list|revoke|forget-head-signing`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use citysoc_console::registry::{heartbeat_summary, TokenRecord, REGISTRY_FILE};
use citysoc_console::{CollectorRecord, Detection, Registry, Server, ServerConfig, TlsFiles};

use crate::detection::{self, LoadedRules, RuleArgs};

/// Arguments of `citysoc server`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

/// Running the server.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Data directory: registry (citysoc.db), events/, alerts.ndjson (created if missing).
    #[arg(long, required = true)]
    data: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:8443 or 127.0.0.1:8080.
    #[arg(long, required = true)]
    listen: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key, serves HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
    /// Store received events without running detection.
    #[arg(long)]
    no_detect: bool,
    /// Batches decoded, checked and stored at once, at most (default: the machine's cores, up
    /// to 4). Each took up to ~380 MiB resident at worst (measured); past it, batches wait for
    /// a place (10 s, citysoc_console::DEFAULT_PLACE_WAIT), then get 503 and their collector
    /// sends them again.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    max_batches_in_process: Option<u16>,
    /// Refuse every request without a head signature, from any collector (401
    /// `missing_head_signature`), once every collector runs a version that signs its heads.
    /// Without it, a collector must sign its heads only once it has sent one signed head.
    #[arg(long)]
    require_head_signatures: bool,
}

#[derive(Debug, clap::Subcommand)]
enum ServerCommand {
    /// One-time enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Enrolled collectors.
    #[command(subcommand)]
    Collectors(CollectorsCommand),
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create a one-time token for an agency's collector; it is printed once, only here.
    Create {
        /// Data directory of the server.
        #[arg(long)]
        data: PathBuf,
        /// The agency every event of the enrolled collector will belong to.
        #[arg(long)]
        agency: String,
        /// How long the token can be used: a number with s, m, h or d.
        #[arg(long, default_value = "24h", value_parser = parse_ttl)]
        ttl: chrono::Duration,
        /// Who created it (for the record); defaults to $USER.
        #[arg(long)]
        created_by: Option<String>,
    },
    /// List the tokens created (never the tokens themselves: only their ids and status).
    List {
        /// Data directory of the server.
        #[arg(long)]
        data: PathBuf,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Revoke a token that has not been used yet (given to the wrong person, or not needed).
    Revoke {
        /// Data directory of the server.
        #[arg(long)]
        data: PathBuf,
        /// The token's id from `token list` (at least 8 of its hex digits).
        id: String,
        /// Who revoked it (for the record); defaults to $USER.
        #[arg(long)]
        revoked_by: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
enum CollectorsCommand {
    /// List enrolled collectors with their last heartbeat.
    List {
        /// Data directory of the server.
        #[arg(long)]
        data: PathBuf,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Revoke a collector: every request it signs is refused from now on.
    Revoke {
        /// Data directory of the server.
        #[arg(long)]
        data: PathBuf,
        /// The collector id (see `collectors list`).
        id: String,
    },
    /// Take a collector's requests without a head signature again (after a downgrade).
    ///
    /// Once a collector has signed its requests' headers, the server refuses its unsigned
    /// ones (a sender without its key could otherwise take its places). Run this after
    /// downgrading the collector on purpose to a version older than head signatures. Its
    /// next signed request turns the check back on. Takes effect on a running server at once.
    ForgetHeadSigning {
        /// Data directory of the server.
        #[arg(long)]
        data: PathBuf,
        /// The collector id (see `collectors list`).
        id: String,
    },
}

/// Runs `citysoc server …`.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    match args.command {
        None => serve(args.run),
        Some(ServerCommand::Token(TokenCommand::Create {
            data,
            agency,
            ttl,
            created_by,
        })) => {
            let registry = Registry::open_in(&data)?;
            let created_by = created_by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".to_owned());
            let created = registry.create_token(&agency, ttl, &created_by, chrono::Utc::now())?;
            println!("{}", created.token);
            eprintln!(
                "citysoc server: one-time token {} for agency {:?}, valid until {} (UTC); give it to the collector's `enroll` command",
                created.id,
                created.agency,
                created.expires_at.format("%Y-%m-%d %H:%M")
            );
            Ok(())
        }
        Some(ServerCommand::Token(TokenCommand::List { data, format })) => {
            let registry = existing_registry(&data)?;
            let tokens = registry.tokens()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if format == "json" {
                serde_json::to_writer_pretty(&mut out, &tokens)?;
                writeln!(out)?;
            } else {
                write_token_table(&mut out, &tokens, chrono::Utc::now())?;
                if tokens.is_empty() {
                    eprintln!("citysoc server: no token created yet");
                }
            }
            out.flush()?;
            Ok(())
        }
        Some(ServerCommand::Token(TokenCommand::Revoke {
            data,
            id,
            revoked_by,
        })) => {
            let registry = existing_registry(&data)?;
            let revoked_by = revoked_by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "cli".to_owned());
            let token = registry.revoke_token(&id, &revoked_by, chrono::Utc::now())?;
            eprintln!(
                "citysoc server: token {} (agency {}) revoked; it can no longer enroll a collector",
                token.id, token.agency
            );
            Ok(())
        }
        Some(ServerCommand::Collectors(CollectorsCommand::List { data, format })) => {
            let registry = existing_registry(&data)?;
            let collectors = registry.collectors()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if format == "json" {
                serde_json::to_writer_pretty(&mut out, &collectors)?;
                writeln!(out)?;
            } else {
                write_table(&mut out, &collectors)?;
                if collectors.is_empty() {
                    eprintln!("citysoc server: no collector enrolled yet");
                }
            }
            out.flush()?;
            Ok(())
        }
        Some(ServerCommand::Collectors(CollectorsCommand::ForgetHeadSigning { data, id })) => {
            let registry = existing_registry(&data)?;
            let record = registry.forget_head_signing(&id)?;
            eprintln!(
                "citysoc server: collector {} ({}, agency {}) may send requests without a head signature again, until it next sends one",
                record.id, record.name, record.agency
            );
            Ok(())
        }
        Some(ServerCommand::Collectors(CollectorsCommand::Revoke { data, id })) => {
            let registry = existing_registry(&data)?;
            let record = registry.revoke(&id, chrono::Utc::now())?;
            eprintln!(
                "citysoc server: collector {} ({}, agency {}) revoked",
                record.id, record.name, record.agency
            );
            Ok(())
        }
    }
}

fn existing_registry(data: &Path) -> anyhow::Result<Registry> {
    if !data.join(REGISTRY_FILE).is_file() {
        anyhow::bail!(
            "{} has no {REGISTRY_FILE}: it is not a server data directory (create a token or start the server there first)",
            data.display()
        );
    }
    Ok(Registry::open_in(data)?)
}

fn serve(args: RunArgs) -> anyhow::Result<()> {
    let (Some(data), Some(listen)) = (args.data, args.listen) else {
        anyhow::bail!("give --data DIR and --listen ADDR");
    };
    init_logging();
    let detection = if args.no_detect {
        None
    } else {
        let mut rules = args.rules;
        if rules.is_empty() {
            detection::use_default_rules(&mut rules, "server");
        }
        let LoadedRules { detector, yara } = detection::load(&rules, "server")?;
        Some(Detection::new(detector, yara))
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let defaults = ServerConfig::new(&data);
    let config = ServerConfig {
        tls,
        detection,
        max_batches_in_process: args
            .max_batches_in_process
            .map_or(defaults.max_batches_in_process, usize::from),
        require_head_signatures: args.require_head_signatures,
        ..defaults
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::new(config)
            .with_context(|| format!("cannot start the server on {}", data.display()))?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        eprintln!("citysoc server: listening on {scheme}://{address}");
        server
            .serve(listener, citysoc_console::shutdown_signal())
            .await?;
        eprintln!("citysoc server: stopped");
        anyhow::Ok(())
    })
}

/// Logs to stderr; `RUST_LOG` picks the level (default info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// `90s`, `30m`, `24h`, `7d`.
fn parse_ttl(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: add a unit (s, m, h or d), e.g. 24h"))?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number then s, m, h or d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if number == 0 {
        return Err(format!("{text:?}: a token must live for some time"));
    }
    number
        .checked_mul(seconds)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| format!("{text:?}: too long"))
}

fn write_token_table(
    out: &mut impl Write,
    tokens: &[TokenRecord],
    now: chrono::DateTime<chrono::Utc>,
) -> std::io::Result<()> {
    let time = |time: chrono::DateTime<chrono::Utc>| time.format("%Y-%m-%d %H:%M").to_string();
    writeln!(
        out,
        "{:<12} {:<16} {:<8} {:<17} {:<17} {:<12} collector",
        "id", "agency", "status", "created (UTC)", "expires (UTC)", "created by"
    )?;
    for token in tokens {
        writeln!(
            out,
            "{:<12} {:<16} {:<8} {:<17} {:<17} {:<12} {}",
            token.id,
            token.agency,
            token.status(now),
            time(token.created_at),
            time(token.expires_at),
            token.created_by,
            token.used_by.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

fn write_table(out: &mut impl Write, collectors: &[CollectorRecord]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<20} {:<16} {:<17} {:<8} last heartbeat",
        "id", "name", "agency", "last seen (UTC)", "status"
    )?;
    for collector in collectors {
        let last_seen = collector
            .last_seen
            .map(|time| time.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "never".to_owned());
        let status = if collector.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        let heartbeat = collector
            .last_heartbeat
            .as_ref()
            .map(heartbeat_summary)
            .unwrap_or_else(|| "-".to_owned());
        writeln!(
            out,
            "{:<20} {:<20} {:<16} {:<17} {:<8} {}",
            collector.id, collector.name, collector.agency, last_seen, status, heartbeat
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;

    #[test]
    fn ttls_read_units() {
        assert_eq!(parse_ttl("24h"), Ok(chrono::Duration::hours(24)));
        assert_eq!(parse_ttl("90s"), Ok(chrono::Duration::seconds(90)));
        assert_eq!(parse_ttl("7d"), Ok(chrono::Duration::days(7)));
        for bad in ["24", "h", "0h", "3w", "-1h", "99999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
