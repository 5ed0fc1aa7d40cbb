//! `collector.toml`: what a collector listens on, where its data lives and where events go.
//!
//! The file is read in two steps, the way Quickwit does it: serde reads raw sections with
//! `deny_unknown_fields` (`raw.rs`), then [`CollectorConfig::from_toml`] checks everything and
//! builds the validated value below, listing every problem at once (unknown keys with their
//! path, wrong types, unreadable TLS files, ports in use, bad formats and time zones,
//! duplicate names) instead of stopping at the first. `citysoc collector check` is exactly
//! that step.

mod field_names;
mod raw;
pub(crate) mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;

use crate::framing::Framing;
use crate::parse::InputFormat;
use crate::CollectorError;

pub use validate::CheckOptions;

/// Where the package puts the collector's state (checkpoints, disk buffer, key).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/citysoc-collector";
/// The default `/metrics` address: loopback only, the metrics carry no secret but no
/// authentication either.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9780";

/// One thing wrong with a configuration: the key it is about and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: `collector.timezone`, `source "fw-hq".listen`, `source[2].type`, …
    pub path: String,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            formatter.write_str(&self.message)
        } else {
            write!(formatter, "{}: {}", self.path, self.message)
        }
    }
}

/// A checked collector configuration.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// `[collector]`: identity and defaults.
    pub collector: CollectorSection,
    /// `[[source]]`: what to listen on or read.
    pub sources: Vec<SourceConfig>,
    /// `[buffer]`: the disk buffer in front of the forwarder.
    pub buffer: BufferSection,
    /// `[server]`: the SOC server events are forwarded to.
    pub server: Option<ServerSection>,
    /// `[archive]`: a local NDJSON copy of every event.
    pub archive: Option<ArchiveSection>,
    /// SHA-256 of the configuration text, hex (reported in heartbeats and `/metrics`).
    pub config_hash: String,
}

/// `[collector]`.
#[derive(Debug, Clone)]
pub struct CollectorSection {
    /// The collector's name, stamped on every event until enrollment gives it an id.
    pub name: String,
    /// The agency events belong to, until enrollment says otherwise. Never taken from
    /// payloads.
    pub agency: Option<String>,
    /// Where checkpoints, the disk buffer and the key live.
    pub data_dir: PathBuf,
    /// Zone for device times without one, for sources that do not set their own.
    pub timezone: Tz,
    /// Where `/metrics` is served (loopback only); `None` when set to `"off"`.
    pub metrics_listen: Option<SocketAddr>,
    /// Bytes of parsed events waiting in memory for the sink, at most (the pipeline's bound,
    /// [`crate::pipeline::CHANNEL_BYTES`] unless set; memory and backpressure, never loss).
    pub queue_max_bytes: usize,
}

/// One `[[source]]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Unique name, used in metrics and heartbeats.
    pub name: String,
    /// Type and type-specific settings.
    pub kind: SourceKind,
    /// Format of the records (`auto` guesses per record).
    pub format: InputFormat,
    /// Zone for device times without one.
    pub timezone: Tz,
    /// Largest record (or datagram) in bytes; longer ones are kept in flagged pieces, unparsed
    /// (streams, files, HTTP lines) or kept cut and counted (UDP).
    pub max_frame: usize,
}

/// What a source reads.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// Syslog over UDP.
    Udp(UdpSourceConfig),
    /// Syslog over TCP.
    Tcp(TcpSourceConfig),
    /// Syslog over TLS (RFC 5425).
    Tls(TlsSourceConfig),
    /// A file followed as it grows, across rotation and truncation.
    File(FileSourceConfig),
    /// NDJSON or JSON arrays posted by host agents.
    Http(HttpSourceConfig),
}

impl SourceKind {
    /// The type name as written in the file.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::Udp(_) => "udp",
            SourceKind::Tcp(_) => "tcp",
            SourceKind::Tls(_) => "tls",
            SourceKind::File(_) => "file",
            SourceKind::Http(_) => "http",
        }
    }

    /// The transport written into each event's `source.transport`.
    pub fn transport(&self) -> &'static str {
        self.type_name()
    }

    /// The socket address a network source listens on.
    pub fn listen(&self) -> Option<SocketAddr> {
        match self {
            SourceKind::Udp(udp) => Some(udp.listen),
            SourceKind::Tcp(tcp) => Some(tcp.listen),
            SourceKind::Tls(tls) => Some(tls.tcp.listen),
            SourceKind::Http(http) => Some(http.listen),
            SourceKind::File(_) => None,
        }
    }
}

/// `type = "udp"`.
#[derive(Debug, Clone)]
pub struct UdpSourceConfig {
    /// Address and port.
    pub listen: SocketAddr,
    /// SO_RCVBUF to ask the kernel for (bursts wait there while the pipeline catches up).
    pub receive_buffer: Option<usize>,
}

/// `type = "tcp"`.
#[derive(Debug, Clone)]
pub struct TcpSourceConfig {
    /// Address and port.
    pub listen: SocketAddr,
    /// Newline, or RFC 6587 octet counting (which also reads newline-framed senders).
    pub framing: Framing,
    /// Connections served at once; further ones are refused and counted.
    pub max_connections: usize,
}

/// `type = "tls"`.
#[derive(Debug, Clone)]
pub struct TlsSourceConfig {
    /// Listening and framing, as for TCP.
    pub tcp: TcpSourceConfig,
    /// Certificate and key.
    pub tls: TlsFiles,
}

/// Certificate, key and (optional) client CA files of a TLS listener.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// `type = "file"`.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// The file to follow.
    pub path: PathBuf,
    /// How often to look for new data, rotation and truncation once at the end.
    pub poll_interval: Duration,
}

/// `type = "http"`.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    /// Address and port.
    pub listen: SocketAddr,
    /// Largest request body accepted (compressed, as sent); larger ones get 413.
    pub max_body: usize,
    /// Requests decompressed and decoded at once. A request takes up to eleven times
    /// `max_body` meanwhile (its body, and the body decompressed), so this bounds the memory
    /// decompression can take, whatever agents send; a request that waits longer than a few
    /// seconds for its turn is answered 503 and retried by the agent. Bodies arriving at once
    /// may hold four times `max_body` for each.
    pub max_requests: usize,
    /// How long a request's body may take to arrive; a slower one is answered 408.
    pub body_timeout: Duration,
    /// How long a connection may take to send a request's head, from its start or from the
    /// previous response; then it is closed (idle keep-alive connections free their slot).
    pub head_timeout: Duration,
    /// Connections open at once (agents keep theirs open between requests); more are
    /// refused and counted as for TCP.
    pub max_connections: usize,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
}

/// What the disk buffer does when full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFullPolicy {
    /// Sources wait (TCP senders are slowed down, UDP datagrams are counted as dropped).
    Block,
    /// The oldest unsent events are dropped, and counted.
    DropOldest,
}

/// `[buffer]`.
#[derive(Debug, Clone)]
pub struct BufferSection {
    /// Largest size on disk of unacknowledged events.
    pub max_bytes: u64,
    /// What happens when it is reached.
    pub when_full: WhenFullPolicy,
    /// `None` (the default): every write reaches the disk (fsync) before it counts as taken,
    /// so a power cut loses nothing the collector took. `Some(interval)`: writes are forced
    /// to disk at most this long after, which is faster, and a power cut can cost up to that
    /// long of events (a crash or kill -9 costs nothing: the kernel has them).
    pub sync_interval: Option<Duration>,
}

/// The longest `sync_interval_ms` allowed: what a power cut may cost stays bounded.
pub const MAX_SYNC_INTERVAL_MS: u64 = 60_000;

impl Default for BufferSection {
    fn default() -> Self {
        BufferSection {
            max_bytes: 1 << 30,
            when_full: WhenFullPolicy::Block,
            sync_interval: None,
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSection {
    /// `https://soc.example:8443` (plain `http://` only to a loopback address, for tests).
    pub url: String,
    /// The key from enrollment (written by `citysoc collector enroll`, mode 0600).
    pub key_file: PathBuf,
    /// CA certificate(s) to trust for the server, when it is not signed by a public CA.
    pub ca_file: Option<PathBuf>,
}

/// `[archive]`.
#[derive(Debug, Clone)]
pub struct ArchiveSection {
    /// The NDJSON file events are appended to.
    pub path: PathBuf,
    /// Size at which the file is renamed aside and a new one started.
    pub max_file_bytes: u64,
}

impl CollectorConfig {
    /// Reads and checks a configuration file; every problem found is in the error.
    pub fn load(path: &Path, options: &CheckOptions) -> Result<Self, CollectorError> {
        let text = std::fs::read(path).map_err(|error| {
            CollectorError::io(format!("cannot read {}", path.display()), error)
        })?;
        let origin = path.display().to_string();
        let text = String::from_utf8(text).map_err(|_| CollectorError::Config {
            file: origin.clone(),
            problems: vec![ConfigProblem {
                path: String::new(),
                message: "the file is not UTF-8 text".into(),
            }],
        })?;
        Self::from_toml(&text, &origin, options)
    }

    /// Checks configuration text; `origin` names it in messages (a path, or `command line`).
    pub fn from_toml(
        text: &str,
        origin: &str,
        options: &CheckOptions,
    ) -> Result<Self, CollectorError> {
        validate::validate_and_build(text, options).map_err(|problems| CollectorError::Config {
            file: origin.to_owned(),
            problems,
        })
    }

    /// The source called `name`.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|source| source.name == name)
    }
}

/// SHA-256 of the configuration bytes, lower-case hex: the same file gives the same hash on
/// every machine, so the SOC sees at a glance which collectors run an edited configuration.
pub fn config_hash(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_is_sha256_hex() {
        assert_eq!(
            config_hash(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
