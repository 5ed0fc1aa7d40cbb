//! The `citysoc` binary: command-line parsing and wiring only. Each subcommand lives in its
//! own module; the work is done by the library crates.

mod clickhouse_target;
mod collector_command;
mod detection;
mod hunt_command;
mod import_command;
mod input;
mod parse_command;
mod retention_command;
mod rules_command;
mod search_command;
mod server_command;
mod store_location;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: parsing allocates a few small strings per event,
/// and glibc's malloc/free showed as a fifth of the syslog hot path in profiles. Through
/// `citysoc-alloc` (`allocator/`), which also sets its options (`citysoc_alloc::configure`).
#[global_allocator]
static ALLOCATOR: citysoc_alloc::Allocator = citysoc_alloc::Allocator;

/// citysoc: log analytics and detection for the Ho Chi Minh City SOC.
#[derive(Debug, Parser)]
#[command(name = "citysoc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse log records and print one normalized JSON event per record ("does my device's
    /// log parse?").
    Parse(parse_command::ParseArgs),
    /// Check rules and run their samples.
    #[command(subcommand)]
    Rules(rules_command::RulesCommand),
    /// Run rules over log files (syslog, NDJSON, EVTX, …) and report the alerts.
    Hunt(hunt_command::HuntArgs),
    /// Parse log files, run detection and store the events for search.
    Import(import_command::ImportArgs),
    /// Search stored events, or count them by field or time.
    Search(search_command::SearchArgs),
    /// Drop stored days older than each agency's retention.
    Retention(retention_command::RetentionArgs),
    /// Run the server collectors forward to; manage enrollment tokens and collectors.
    Server(server_command::ServerArgs),
    /// Run a collector (syslog UDP/TCP/TLS, file tail, agent HTTP intake) or check its
    /// configuration.
    #[command(subcommand)]
    Collector(collector_command::CollectorCommand),
}

fn main() -> std::process::ExitCode {
    citysoc_alloc::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => parse_command::run(args),
        Command::Rules(command) => rules_command::run(command),
        Command::Hunt(args) => hunt_command::run(args),
        Command::Import(args) => import_command::run(args),
        Command::Search(args) => search_command::run(args),
        Command::Retention(args) => retention_command::run(args),
        Command::Server(args) => server_command::run(args),
        Command::Collector(command) => collector_command::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("citysoc: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
