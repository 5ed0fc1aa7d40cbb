//! `validate_and_build`: from TOML text to a [`CollectorConfig`], collecting every problem.
//!
//! Each key is deserialized on its own (the raw structs have only optional fields), so one
//! wrong key does not hide the others; unknown keys are found by comparing with the field
//! names serde itself reports. Then the values are checked together (names unique, addresses
//! free, TLS files usable) and the validated structs built.

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::de::DeserializeOwned;

use super::field_names::field_names;
use super::raw::{RawArchive, RawBuffer, RawCollector, RawSections, RawServer, RawSource};
use super::{
    config_hash, ArchiveSection, BufferSection, CollectorConfig, CollectorSection, ConfigProblem,
    FileSourceConfig, HttpSourceConfig, ServerSection, SourceConfig, SourceKind, TcpSourceConfig,
    TlsFiles, TlsSourceConfig, UdpSourceConfig, WhenFullPolicy, DEFAULT_DATA_DIR,
    DEFAULT_METRICS_LISTEN, MAX_SYNC_INTERVAL_MS,
};
use crate::framing::{Framing, DEFAULT_MAX_FRAME, MAX_MAX_FRAME};
use crate::parse::{InputFormat, ParseContext, DEFAULT_TIMEZONE};

/// Default largest HTTP body (compressed, as sent).
const DEFAULT_MAX_BODY: usize = 10 << 20;
/// Four requests at once: with the default `max_body`, up to ~440 MiB of bodies and their
/// decompressed text (plus their records' index), and agents' requests take milliseconds
/// each, so four keep up with hundreds of agents.
const DEFAULT_MAX_REQUESTS: usize = 4;
/// More places than this would only let bodies' memory grow: a machine busy enough to want
/// them wants a second collector.
const MAX_MAX_REQUESTS: usize = 256;
/// A minute for a body to arrive: an agent on a slow ward link sends a few MB in seconds.
const DEFAULT_BODY_TIMEOUT_MS: u64 = 60_000;
/// Half a minute for a request's head, counted from the connection's start or the previous
/// response: agents with events send every few seconds, idle ones reconnect.
const DEFAULT_HEAD_TIMEOUT_MS: u64 = 30_000;
/// The largest record an HTTP source parses by default; a longer one is kept raw in pieces.
/// Larger than the syslog sources' 64 KiB: agents send whole Windows events, and a PowerShell
/// script block (event 4104, the ones worth reading) runs to tens of kilobytes. Parsing a
/// record builds its values in memory, up to ~20 times its size for a JSON array of numbers.
/// A JSON document spread over several lines of one request is held to this size too
/// (`SourceRuntime::decoder`).
const DEFAULT_HTTP_MAX_FRAME: usize = 1024 * 1024;
/// Default connection limit per TCP, TLS or HTTP source.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default archive file size before rotation.
const DEFAULT_ARCHIVE_FILE_BYTES: u64 = 256 << 20;
/// Default poll interval of file sources.
const DEFAULT_POLL_INTERVAL_MS: u64 = 250;

/// What checking does beyond reading the text.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Try to bind every listen address (reports ports in use and missing privileges).
    pub check_ports: bool,
    /// Open the files the configuration names (TLS certificates and keys, the server key,
    /// the archive's directory).
    pub check_files: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            check_ports: true,
            check_files: true,
        }
    }
}

#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn validate_and_build(
    text: &str,
    options: &CheckOptions,
) -> Result<CollectorConfig, Vec<ConfigProblem>> {
    let document: toml::Table = toml::from_str(text).map_err(|error| {
        vec![ConfigProblem {
            path: String::new(),
            message: format!("not valid TOML: {}", error.to_string().trim_end()),
        }]
    })?;
    let mut problems = Problems::default();
    let sections = field_names::<RawSections>();
    for (key, value) in &document {
        if sections.contains(&key.as_str()) {
            continue;
        }
        let hint = if field_names::<RawCollector>().contains(&key.as_str()) {
            " (did you mean to write it under [collector]?)".to_owned()
        } else if value.is_table() {
            format!(" (sections are: {})", sections.join(", "))
        } else {
            String::new()
        };
        problems.add(key.clone(), format!("unknown key `{key}`{hint}"));
    }

    let raw_collector: RawCollector =
        read_section(document.get("collector"), "collector", &mut problems);
    let collector = build_collector(raw_collector, &mut problems);

    let mut sources = Vec::new();
    match document.get("source") {
        None => problems.add(
            "source",
            "no [[source]]: add at least one (udp, tcp, tls, file or http)",
        ),
        Some(toml::Value::Array(entries)) => {
            for (index, entry) in entries.iter().enumerate() {
                let label = source_label(entry, index);
                let Some(table) = entry.as_table() else {
                    problems.add(label, "each source must be a [[source]] table");
                    continue;
                };
                let raw: RawSource = read_table(table, &label, &mut problems);
                if let Some(source) = build_source(raw, &label, &collector, options, &mut problems)
                {
                    sources.push(source);
                }
            }
        }
        Some(_) => problems.add(
            "source",
            "sources are written as [[source]] tables (double brackets), one per source",
        ),
    }
    check_sources_together(&sources, options, &mut problems);

    let raw_buffer: RawBuffer = read_section(document.get("buffer"), "buffer", &mut problems);
    let buffer = build_buffer(raw_buffer, &mut problems);
    let server = document.get("server").map(|value| {
        let raw: RawServer = read_section(Some(value), "server", &mut problems);
        build_server(raw, &collector.data_dir, options, &mut problems)
    });
    let archive = document.get("archive").map(|value| {
        let raw: RawArchive = read_section(Some(value), "archive", &mut problems);
        build_archive(raw, options, &mut problems)
    });
    let server = server.flatten();
    let archive = archive.flatten();
    if !document.contains_key("server") && !document.contains_key("archive") {
        problems.add(
            "",
            "nowhere to send events: add a [server] section (after `citysoc collector enroll`) or an [archive] section",
        );
    }

    if !problems.0.is_empty() {
        return Err(problems.0);
    }
    Ok(CollectorConfig {
        collector,
        sources,
        buffer,
        server,
        archive,
        config_hash: config_hash(text.as_bytes()),
    })
}

/// `source "fw-hq"` when the source has a usable name, else `source[2]`.
fn source_label(entry: &toml::Value, index: usize) -> String {
    match entry.get("name").and_then(toml::Value::as_str) {
        Some(name) if !name.is_empty() => format!("source \"{name}\""),
        _ => format!("source[{index}]"),
    }
}

fn read_section<T: DeserializeOwned + Default>(
    value: Option<&toml::Value>,
    path: &str,
    problems: &mut Problems,
) -> T {
    match value {
        None => T::default(),
        Some(toml::Value::Table(table)) => read_table(table, path, problems),
        Some(_) => {
            problems.add(
                path,
                format!("must be a section: write [{path}] on its own line"),
            );
            T::default()
        }
    }
}

/// Reads one table key by key: unknown keys and wrongly typed values become problems, the
/// good keys the value.
fn read_table<T: DeserializeOwned + Default>(
    table: &toml::Table,
    path: &str,
    problems: &mut Problems,
) -> T {
    let known = field_names::<T>();
    let mut good = toml::Table::new();
    for (key, value) in table {
        let key_path = format!("{path}.{key}");
        if !known.contains(&key.as_str()) {
            problems.add(
                key_path,
                format!(
                    "unknown key `{key}` (expected one of: {})",
                    known.join(", ")
                ),
            );
            continue;
        }
        let mut single = toml::Table::new();
        single.insert(key.clone(), value.clone());
        match toml::Value::Table(single).try_into::<T>() {
            Ok(_) => {
                good.insert(key.clone(), value.clone());
            }
            Err(error) => {
                let message = clean_serde_message(&error.to_string());
                // The path already names the key.
                let message = message
                    .strip_suffix(&format!(" in `{key}`"))
                    .map_or(message.clone(), str::to_owned);
                problems.add(key_path, message);
            }
        }
    }
    match toml::Value::Table(good).try_into::<T>() {
        Ok(value) => value,
        Err(error) => {
            problems.add(path, clean_serde_message(&error.to_string()));
            T::default()
        }
    }
}

/// serde's messages through toml carry a trailing newline and sometimes the key again.
fn clean_serde_message(message: &str) -> String {
    message.trim().replace('\n', " ")
}

fn build_collector(raw: RawCollector, problems: &mut Problems) -> CollectorSection {
    let name = match raw.name {
        Some(name) => {
            check_identifier(&name, "collector.name", problems);
            name
        }
        None => host_name(),
    };
    let agency = raw.agency.and_then(|agency| {
        let agency = agency.trim().to_owned();
        if agency.is_empty() {
            problems.add(
                "collector.agency",
                "is empty: write the agency's name or leave the key out",
            );
            None
        } else if agency.chars().any(char::is_control) {
            problems.add("collector.agency", "contains control characters");
            None
        } else {
            Some(agency)
        }
    });
    let timezone = parse_timezone(
        raw.timezone.as_deref(),
        DEFAULT_TIMEZONE,
        "collector.timezone",
        problems,
    );
    let metrics_listen = match raw.metrics_listen.as_deref() {
        Some("off") => None,
        Some(text) => parse_address(text, "collector.metrics_listen", problems).and_then(|address| {
            if address.ip().is_loopback() {
                Some(address)
            } else {
                problems.add(
                    "collector.metrics_listen",
                    format!("{address} is not a loopback address: /metrics has no authentication, so it is only served on 127.0.0.1 or [::1] (use \"off\" to disable it)"),
                );
                None
            }
        }),
        None => DEFAULT_METRICS_LISTEN.parse().ok(),
    };
    let queue_max_bytes = match raw.queue_max_bytes {
        None => crate::pipeline::CHANNEL_BYTES,
        Some(size)
            if size.0 < crate::pipeline::MIN_QUEUE_BYTES as u64
                || size.0 > crate::pipeline::MAX_QUEUE_BYTES as u64 =>
        {
            problems.add(
                "collector.queue_max_bytes",
                format!(
                    "must be between {} KiB and {} MiB",
                    crate::pipeline::MIN_QUEUE_BYTES >> 10,
                    crate::pipeline::MAX_QUEUE_BYTES >> 20
                ),
            );
            crate::pipeline::CHANNEL_BYTES
        }
        Some(size) => usize::try_from(size.0).unwrap_or(crate::pipeline::CHANNEL_BYTES),
    };
    CollectorSection {
        name,
        agency,
        data_dir: raw
            .data_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        timezone,
        metrics_listen,
        queue_max_bytes,
    }
}

/// The machine's host name, the default collector name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "collector".to_owned())
}

fn check_identifier(name: &str, path: &str, problems: &mut Problems) {
    if name.is_empty() {
        problems.add(path, "is empty");
    } else if !name
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.'))
    {
        problems.add(
            path,
            format!("`{name}` may only use letters, digits, `-`, `_` and `.` (it names files and metrics)"),
        );
    }
}

fn parse_timezone(text: Option<&str>, default: Tz, path: &str, problems: &mut Problems) -> Tz {
    match text {
        None => default,
        Some(name) => ParseContext::parse_timezone(name).unwrap_or_else(|error| {
            problems.add(path, error.to_string());
            default
        }),
    }
}

fn parse_address(text: &str, path: &str, problems: &mut Problems) -> Option<SocketAddr> {
    match SocketAddr::from_str(text.trim()) {
        Ok(address) => Some(address),
        Err(_) => {
            problems.add(
                path,
                format!("`{text}` is not an address and port such as 0.0.0.0:514 or [::]:6514"),
            );
            None
        }
    }
}

/// Keys that only some source types take.
const TYPE_KEYS: &[(&str, &[&str])] = &[
    ("listen", &["udp", "tcp", "tls", "http"]),
    ("path", &["file"]),
    ("framing", &["tcp", "tls"]),
    ("max_connections", &["tcp", "tls", "http"]),
    ("receive_buffer", &["udp"]),
    ("max_body", &["http"]),
    ("max_requests", &["http"]),
    ("body_timeout_ms", &["http"]),
    ("head_timeout_ms", &["http"]),
    ("tls_cert", &["tls", "http"]),
    ("tls_key", &["tls", "http"]),
    ("tls_client_ca", &["tls", "http"]),
    ("poll_interval_ms", &["file"]),
];

fn build_source(
    raw: RawSource,
    label: &str,
    collector: &CollectorSection,
    options: &CheckOptions,
    problems: &mut Problems,
) -> Option<SourceConfig> {
    let name = match &raw.name {
        Some(name) => {
            check_identifier(name, &format!("{label}.name"), problems);
            Some(name.clone())
        }
        None => {
            problems.add(
                format!("{label}.name"),
                "missing: every source needs a unique name",
            );
            None
        }
    };
    let kind = match raw.kind.as_deref() {
        None => {
            problems.add(
                format!("{label}.type"),
                "missing: one of udp, tcp, tls, file, http",
            );
            None
        }
        Some(kind @ ("udp" | "tcp" | "tls" | "file" | "http")) => Some(kind),
        Some(other) => {
            problems.add(
                format!("{label}.type"),
                format!(
                    "unknown source type `{other}` (expected one of: udp, tcp, tls, file, http)"
                ),
            );
            None
        }
    };
    let present: BTreeMap<&str, bool> = [
        ("listen", raw.listen.is_some()),
        ("path", raw.path.is_some()),
        ("framing", raw.framing.is_some()),
        ("max_connections", raw.max_connections.is_some()),
        ("receive_buffer", raw.receive_buffer.is_some()),
        ("max_body", raw.max_body.is_some()),
        ("max_requests", raw.max_requests.is_some()),
        ("body_timeout_ms", raw.body_timeout_ms.is_some()),
        ("head_timeout_ms", raw.head_timeout_ms.is_some()),
        ("tls_cert", raw.tls_cert.is_some()),
        ("tls_key", raw.tls_key.is_some()),
        ("tls_client_ca", raw.tls_client_ca.is_some()),
        ("poll_interval_ms", raw.poll_interval_ms.is_some()),
    ]
    .into_iter()
    .collect();
    if let Some(kind) = kind {
        for (key, types) in TYPE_KEYS {
            if present.get(key).copied().unwrap_or(false) && !types.contains(&kind) {
                problems.add(
                    format!("{label}.{key}"),
                    format!(
                        "does not apply to {kind} sources (only to: {})",
                        types.join(", ")
                    ),
                );
            }
        }
    }

    let format = match raw.format.as_deref() {
        None => InputFormat::Auto,
        Some(text) => match text.parse::<InputFormat>() {
            Ok(InputFormat::Evtx) => {
                problems.add(
                    format!("{label}.format"),
                    "evtx is a file format for `citysoc import`, not a stream format; agents send Windows events as JSON (format = \"winevent\" or \"auto\")",
                );
                InputFormat::Auto
            }
            Ok(format) => format,
            Err(error) => {
                problems.add(format!("{label}.format"), error.to_string());
                InputFormat::Auto
            }
        },
    };
    let timezone = parse_timezone(
        raw.timezone.as_deref(),
        collector.timezone,
        &format!("{label}.timezone"),
        problems,
    );
    let default_max_frame = match kind {
        Some("http") => DEFAULT_HTTP_MAX_FRAME,
        _ => DEFAULT_MAX_FRAME,
    };
    let max_frame = match raw.max_frame {
        None => default_max_frame,
        Some(size) if size.0 == 0 || size.0 > MAX_MAX_FRAME as u64 => {
            problems.add(
                format!("{label}.max_frame"),
                format!("{} bytes is out of range (1 byte to 4 MiB)", size.0),
            );
            default_max_frame
        }
        Some(size) => usize::try_from(size.0).unwrap_or(default_max_frame),
    };

    let listen = |problems: &mut Problems| -> Option<SocketAddr> {
        match raw.listen.as_deref() {
            Some(text) => parse_address(text, &format!("{label}.listen"), problems),
            None => {
                problems.add(
                    format!("{label}.listen"),
                    "missing: the address and port to listen on, such as 0.0.0.0:514",
                );
                None
            }
        }
    };
    let framing = |problems: &mut Problems| -> Framing {
        match raw.framing.as_deref() {
            None | Some("octet_counting") => Framing::OctetCounting,
            Some("newline") => Framing::Newline,
            Some(other) => {
                problems.add(
                    format!("{label}.framing"),
                    format!("unknown framing `{other}` (expected newline or octet_counting)"),
                );
                Framing::OctetCounting
            }
        }
    };
    let max_connections = raw
        .max_connections
        .map(|count| count as usize)
        .unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        problems.add(format!("{label}.max_connections"), "must be at least 1");
    }
    let tls_files = |required: bool, problems: &mut Problems| -> Option<TlsFiles> {
        let (cert, key) = match (&raw.tls_cert, &raw.tls_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (None, None) if !required => return None,
            (cert, key) => {
                for (missing, name) in [(cert.is_none(), "tls_cert"), (key.is_none(), "tls_key")] {
                    if missing {
                        problems.add(
                            format!("{label}.{name}"),
                            "missing: TLS needs both tls_cert (PEM certificate chain) and tls_key (PEM private key)",
                        );
                    }
                }
                return None;
            }
        };
        let files = TlsFiles {
            cert,
            key,
            client_ca: raw.tls_client_ca.clone(),
        };
        if options.check_files {
            if let Err(error) = crate::tls::server_config(&files) {
                problems.add(format!("{label}.tls_cert"), error.to_string());
            }
        }
        Some(files)
    };

    let kind = match kind? {
        "udp" => SourceKind::Udp(UdpSourceConfig {
            listen: listen(problems)?,
            receive_buffer: raw
                .receive_buffer
                .map(|size| usize::try_from(size.0).unwrap_or(usize::MAX)),
        }),
        "tcp" => SourceKind::Tcp(TcpSourceConfig {
            listen: listen(problems)?,
            framing: framing(problems),
            max_connections,
        }),
        "tls" => {
            let tcp = TcpSourceConfig {
                listen: listen(problems)?,
                framing: framing(problems),
                max_connections,
            };
            SourceKind::Tls(TlsSourceConfig {
                tcp,
                tls: tls_files(true, problems)?,
            })
        }
        "http" => {
            let max_body = match raw.max_body {
                None => DEFAULT_MAX_BODY,
                Some(size) if size.0 < 1024 => {
                    problems.add(format!("{label}.max_body"), "must be at least 1 KiB");
                    DEFAULT_MAX_BODY
                }
                Some(size) => usize::try_from(size.0).unwrap_or(usize::MAX),
            };
            let max_requests = raw
                .max_requests
                .map_or(DEFAULT_MAX_REQUESTS, |count| count as usize);
            if !(1..=MAX_MAX_REQUESTS).contains(&max_requests) {
                problems.add(
                    format!("{label}.max_requests"),
                    format!("must be 1 to {MAX_MAX_REQUESTS}"),
                );
            }
            let body_timeout_ms = raw.body_timeout_ms.unwrap_or(DEFAULT_BODY_TIMEOUT_MS);
            if body_timeout_ms < 100 {
                problems.add(
                    format!("{label}.body_timeout_ms"),
                    "must be at least 100 (milliseconds)",
                );
            }
            let head_timeout_ms = raw.head_timeout_ms.unwrap_or(DEFAULT_HEAD_TIMEOUT_MS);
            if head_timeout_ms < 100 {
                problems.add(
                    format!("{label}.head_timeout_ms"),
                    "must be at least 100 (milliseconds)",
                );
            }
            SourceKind::Http(HttpSourceConfig {
                listen: listen(problems)?,
                max_body,
                max_requests: max_requests.clamp(1, MAX_MAX_REQUESTS),
                body_timeout: Duration::from_millis(body_timeout_ms.max(100)),
                head_timeout: Duration::from_millis(head_timeout_ms.max(100)),
                max_connections,
                tls: tls_files(false, problems),
            })
        }
        _ => {
            let Some(path) = raw.path.clone() else {
                problems.add(format!("{label}.path"), "missing: the file to follow");
                return None;
            };
            if !path.is_absolute() {
                problems.add(
                    format!("{label}.path"),
                    format!("`{}` is relative: write the full path (the service does not start in your directory)", path.display()),
                );
            }
            let poll_interval_ms = raw.poll_interval_ms.unwrap_or(DEFAULT_POLL_INTERVAL_MS);
            if !(10..=60_000).contains(&poll_interval_ms) {
                problems.add(
                    format!("{label}.poll_interval_ms"),
                    "must be between 10 and 60000",
                );
            }
            SourceKind::File(FileSourceConfig {
                path,
                poll_interval: Duration::from_millis(poll_interval_ms.clamp(10, 60_000)),
            })
        }
    };
    Some(SourceConfig {
        name: name?,
        kind,
        format,
        timezone,
        max_frame,
    })
}

/// Checks that span sources: unique names, unique addresses, free ports, one reader per file.
fn check_sources_together(
    sources: &[SourceConfig],
    options: &CheckOptions,
    problems: &mut Problems,
) {
    let mut names = HashSet::new();
    let mut addresses: BTreeMap<(bool, SocketAddr), &str> = BTreeMap::new();
    let mut paths: BTreeMap<&Path, &str> = BTreeMap::new();
    for source in sources {
        let label = format!("source \"{}\"", source.name);
        if !names.insert(source.name.as_str()) {
            problems.add(
                format!("{label}.name"),
                "the same name is used by another source",
            );
        }
        if let SourceKind::File(file) = &source.kind {
            if let Some(other) = paths.insert(&file.path, &source.name) {
                problems.add(
                    format!("{label}.path"),
                    format!("source \"{other}\" already reads {}", file.path.display()),
                );
            }
        }
        let Some(address) = source.kind.listen() else {
            continue;
        };
        let udp = matches!(source.kind, SourceKind::Udp(_));
        let protocol = if udp { "udp" } else { "tcp" };
        if address.port() != 0 {
            if let Some(other) = addresses.insert((udp, address), &source.name) {
                problems.add(
                    format!("{label}.listen"),
                    format!("{address}/{protocol} is also the address of source \"{other}\""),
                );
                continue;
            }
        }
        if options.check_ports && address.port() != 0 {
            let bound = if udp {
                UdpSocket::bind(address).map(drop)
            } else {
                TcpListener::bind(address).map(drop)
            };
            if let Err(error) = bound {
                problems.add(
                    format!("{label}.listen"),
                    bind_message(address, protocol, &error),
                );
            }
        }
    }
}

/// Why a listen address cannot be used, with what to do about it.
pub(crate) fn bind_message(address: SocketAddr, protocol: &str, error: &std::io::Error) -> String {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another program, or a running collector, already listens there: `ss -lntup` shows which)"
        }
        std::io::ErrorKind::PermissionDenied if address.port() < 1024 => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; the systemd unit grants it)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (no network interface of this machine has that address)",
        _ => "",
    };
    format!("cannot listen on {address}/{protocol}: {error}{hint}")
}

fn build_buffer(raw: RawBuffer, problems: &mut Problems) -> BufferSection {
    let defaults = BufferSection::default();
    let max_bytes = match raw.max_bytes {
        None => defaults.max_bytes,
        Some(size) if size.0 < (1 << 20) => {
            problems.add("buffer.max_bytes", "must be at least 1 MiB");
            defaults.max_bytes
        }
        Some(size) => size.0,
    };
    let when_full = match raw.when_full.as_deref() {
        None | Some("block") => WhenFullPolicy::Block,
        Some("drop_oldest") => WhenFullPolicy::DropOldest,
        Some(other) => {
            problems.add(
                "buffer.when_full",
                format!("unknown policy `{other}` (expected block or drop_oldest)"),
            );
            defaults.when_full
        }
    };
    let sync_interval = match raw.sync_interval_ms {
        None | Some(0) => None,
        Some(ms) if ms > MAX_SYNC_INTERVAL_MS => {
            problems.add(
                "buffer.sync_interval_ms",
                format!(
                    "{ms} is more than {MAX_SYNC_INTERVAL_MS}: a power cut could cost that long of events"
                ),
            );
            defaults.sync_interval
        }
        Some(ms) => Some(Duration::from_millis(ms)),
    };
    BufferSection {
        max_bytes,
        when_full,
        sync_interval,
    }
}

fn build_server(
    raw: RawServer,
    data_dir: &Path,
    options: &CheckOptions,
    problems: &mut Problems,
) -> Option<ServerSection> {
    let url = match raw.url {
        None => {
            problems.add(
                "server.url",
                "missing: the SOC server's address, such as https://soc.example:8443",
            );
            None
        }
        Some(url) => match check_server_url(&url) {
            Ok(()) => Some(url.trim_end_matches('/').to_owned()),
            Err(message) => {
                problems.add("server.url", message);
                None
            }
        },
    };
    let key_file = raw
        .key_file
        .unwrap_or_else(|| data_dir.join("collector.key"));
    if options.check_files {
        match std::fs::File::open(&key_file) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => problems.add(
                "server.key_file",
                format!("{} does not exist: enroll first with `citysoc collector enroll --server URL --token TOKEN`", key_file.display()),
            ),
            Err(error) => problems.add(
                "server.key_file",
                format!("cannot read {}: {error}", key_file.display()),
            ),
        }
        if let Some(ca_file) = &raw.ca_file {
            if let Err(error) = crate::tls::load_certificates(ca_file) {
                problems.add("server.ca_file", error.to_string());
            }
        }
    }
    Some(ServerSection {
        url: url?,
        key_file,
        ca_file: raw.ca_file,
    })
}

/// `https://host[:port][/path]`; plain `http://` only to a loopback host.
pub(crate) fn check_server_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not a URL (expected https://soc.example:8443)"))?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host_port
            .rsplit_once(':')
            .map_or(host_port, |(host, _)| host)
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) => Ok(()),
        "http" => Err(format!(
            "`{url}` is plain HTTP: events leave the agency's network, so the server must be https:// (plain http is only allowed to a loopback address, for tests)"
        )),
        other => Err(format!("unsupported scheme `{other}` in `{url}` (expected https)")),
    }
}

fn build_archive(
    raw: RawArchive,
    options: &CheckOptions,
    problems: &mut Problems,
) -> Option<ArchiveSection> {
    let max_file_bytes = match raw.max_file_bytes {
        None => DEFAULT_ARCHIVE_FILE_BYTES,
        Some(size) if size.0 < 4096 => {
            problems.add("archive.max_file_bytes", "must be at least 4 KiB");
            DEFAULT_ARCHIVE_FILE_BYTES
        }
        Some(size) => size.0,
    };
    let Some(path) = raw.path else {
        problems.add(
            "archive.path",
            "missing: the NDJSON file to append events to",
        );
        return None;
    };
    if options.check_files {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            if !parent.is_dir() {
                problems.add(
                    "archive.path",
                    format!("directory {} does not exist", parent.display()),
                );
            }
        }
    }
    Some(ArchiveSection {
        path,
        max_file_bytes,
    })
}
