//! The collector and the server as processes, with faults: the collector killed with SIGKILL
//! again and again while it forwards a stream, and the server down for a while. Every event
//! must reach the server's store exactly once.
//!
//! `CITYSOC_FAULT_EVENTS` sets the stream length (default 1,000,000, as the collector issue
//! asks; a debug build moves about 5,000 events/s end to end, so this test takes minutes).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::KillOnDrop;

use citysoc_index::{AgencyScope, Query, SearchRequest, TantivyConfig, TantivyStore, TimeRange};

fn citysoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("{error}"))
}

fn start_server(data: &Path, port: u16) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args([
            "server",
            "--no-detect",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("{error}"));
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

fn start_collector(config: &Path) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .args(["collector", "run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("{error}"));
    KillOnDrop(child)
}

fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path).unwrap_or_else(|error| panic!("GET {path} on port {port}: {error}"))
}

/// `GET path` on a loopback port; an error while nothing listens there yet.
fn try_http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// One unlabelled value from a `/metrics` page, or `None` while nothing answers there.
fn metric(port: u16, name: &str) -> Option<u64> {
    try_http_get(port, "/metrics")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The collector's `/metrics` says the server refused no batch.
fn assert_no_batch_refused(metrics_port: u16) {
    assert_eq!(
        metric(
            metrics_port,
            "citysoc_collector_forward_rejected_batches_total"
        ),
        Some(0)
    );
}

/// Turns the collector's `/metrics` on, on a free port, and returns the port.
fn serve_collector_metrics(setup: &Setup) -> u16 {
    let port = free_port();
    let config = std::fs::read_to_string(&setup.config).unwrap_or_else(|error| panic!("{error}"));
    let config = config.replace(
        "metrics_listen = \"off\"",
        &format!("metrics_listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&setup.config, config).unwrap_or_else(|error| panic!("{error}"));
    port
}

/// Waits until the collector's `/metrics` shows `name` at `wanted` or more.
fn wait_for_metric(port: u16, name: &str, wanted: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let value = metric(port, name).unwrap_or(0);
        if value >= wanted {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed at {value}, below {wanted}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn kill(child: &mut KillOnDrop) {
    child.kill(); // SIGKILL
}

/// What the server has stored: the raw lines, in any order.
fn stored(data: &Path) -> Vec<String> {
    let Ok(store) = TantivyStore::open(data.join("events"), TantivyConfig::default()) else {
        return Vec::new();
    };
    let request = SearchRequest::new(
        Query::All,
        TimeRange::everything(),
        AgencyScope::All,
        10_000_000,
    );
    store
        .search(&request)
        .map(|page| {
            page.events
                .into_iter()
                .filter_map(|event| event.raw)
                .collect()
        })
        .unwrap_or_default()
}

fn stored_count(data: &Path) -> u64 {
    let Ok(store) = TantivyStore::open(data.join("events"), TantivyConfig::default()) else {
        return 0;
    };
    let request = citysoc_index::AggregationRequest {
        query: Query::All,
        time: TimeRange::everything(),
        scope: AgencyScope::All,
    };
    store.count(&request).unwrap_or(0)
}

struct Setup {
    _dir: tempfile::TempDir,
    server_data: PathBuf,
    port: u16,
    config: PathBuf,
    key_file: PathBuf,
    stream: PathBuf,
    lines: BTreeSet<String>,
}

/// Line `n` of the stream the collector follows.
fn stream_line(n: usize) -> String {
    format!(
        "<38>Nov 22 08:{:02}:{:02} gis-app-{:02} sshd[{n}]: Failed password for user{n} from 10.{}.{}.{} port 22 ssh2",
        (n / 60) % 60,
        n % 60,
        n % 7,
        n % 200,
        (n / 200) % 250,
        n % 250
    )
}

/// A server with an enrolled collector tailing a file of `events` distinct syslog lines.
fn setup(events: usize) -> (Setup, KillOnDrop) {
    let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let server_data = dir.path().join("server");
    let port = free_port();
    let server = start_server(&server_data, port);
    let token = citysoc(&[
        "server",
        "token",
        "create",
        "--data",
        &server_data.to_string_lossy(),
        "--agency",
        "quan-1",
    ]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let key_file = dir.path().join("collector/collector.key");
    let enrolled = citysoc(&[
        "collector",
        "enroll",
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--token",
        &token,
        "--key-file",
        &key_file.to_string_lossy(),
    ]);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    let stream = dir.path().join("stream.log");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&stream).unwrap_or_else(|error| panic!("{error}")),
    );
    let mut lines = BTreeSet::new();
    for n in 0..events {
        let line = stream_line(n);
        writeln!(file, "{line}").unwrap_or_else(|error| panic!("{error}"));
        lines.insert(line);
    }
    file.flush().unwrap_or_else(|error| panic!("{error}"));
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            r#"[collector]
name = "fault-test"
data_dir = "{data}"
metrics_listen = "off"

[[source]]
name = "stream"
type = "file"
path = "{stream}"
format = "rfc3164"

[buffer]
max_bytes = "2 GiB"
when_full = "block"

[server]
url = "http://127.0.0.1:{port}"
key_file = "{key}"
"#,
            data = dir.path().join("collector").display(),
            stream = stream.display(),
            key = key_file.display(),
        ),
    )
    .unwrap_or_else(|error| panic!("{error}"));
    (
        Setup {
            _dir: dir,
            server_data,
            port,
            config,
            key_file,
            stream,
            lines,
        },
        server,
    )
}

fn events_from_env() -> usize {
    std::env::var("CITYSOC_FAULT_EVENTS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000)
}

fn assert_exactly_once(setup: &Setup) {
    let stored = stored(&setup.server_data);
    let unique: BTreeSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event stored twice");
    assert_eq!(stored.len(), setup.lines.len(), "events missing");
    assert!(
        stored.iter().all(|raw| setup.lines.contains(raw)),
        "a stored event nobody sent"
    );
}

#[test]
fn killing_the_collector_again_and_again_loses_and_duplicates_nothing() {
    let events = events_from_env();
    let (setup, mut server) = setup(events);
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut kills = 0;
    let mut collector = start_collector(&setup.config);
    // Kill it every few seconds while the stream is being forwarded, then let it finish.
    while stored_count(&setup.server_data) < events as u64 {
        assert!(Instant::now() < deadline, "not delivered within the hour");
        std::thread::sleep(Duration::from_millis(2_500 + 500 * (kills % 3)));
        if kills < 8 {
            kill(&mut collector);
            kills += 1;
            collector = start_collector(&setup.config);
        }
    }
    kill(&mut collector);
    assert!(
        kills >= 3,
        "the stream finished after {kills} kills: make it longer (CITYSOC_FAULT_EVENTS)"
    );
    std::thread::sleep(Duration::from_secs(1));
    kill(&mut server);
    assert_exactly_once(&setup);
}

#[test]
fn a_server_down_for_a_while_gets_everything_once_it_is_back() {
    let events = (events_from_env() / 10).max(1_000);
    let (setup, mut server) = setup(events);
    kill(&mut server);
    let metrics_port = serve_collector_metrics(&setup);
    let mut collector = start_collector(&setup.config);
    // The collector reads everything into its buffer while the server is away, and its
    // `/metrics` says so: every event held, failed attempts retried, nothing acknowledged.
    wait_for_metric(
        metrics_port,
        "citysoc_collector_buffer_events",
        events as u64,
    );
    wait_for_metric(metrics_port, "citysoc_collector_forward_retries_total", 1);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(stored_count(&setup.server_data), 0);
    assert_eq!(
        metric(
            metrics_port,
            "citysoc_collector_forward_events_acknowledged_total"
        ),
        Some(0)
    );
    assert_eq!(
        metric(metrics_port, "citysoc_collector_buffer_dropped_total"),
        Some(0)
    );
    let mut server = start_server(&setup.server_data, setup.port);
    let deadline = Instant::now() + Duration::from_secs(1800);
    while stored_count(&setup.server_data) < events as u64 {
        assert!(Instant::now() < deadline, "the buffer did not drain");
        std::thread::sleep(Duration::from_secs(1));
    }
    // Drained: the buffer is empty and every event was acknowledged exactly once.
    wait_for_metric(
        metrics_port,
        "citysoc_collector_forward_events_acknowledged_total",
        events as u64,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(metrics_port, "citysoc_collector_buffer_events") != Some(0) {
        assert!(Instant::now() < deadline, "the buffer still holds events");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_no_batch_refused(metrics_port);
    kill(&mut collector);
    kill(&mut server);
    assert_exactly_once(&setup);
}

#[test]
fn a_collector_that_lost_its_buffer_state_renumbers_and_delivers_what_comes_next() {
    // Several batches (5,000 events at most each), so the server's last acknowledged number
    // is well past 1.
    let events = 20_000;
    let (mut setup, mut server) = setup(events);
    let mut collector = start_collector(&setup.config);
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored_count(&setup.server_data) < events as u64 {
        assert!(Instant::now() < deadline, "the first events did not arrive");
        std::thread::sleep(Duration::from_millis(500));
    }
    kill(&mut collector);

    // The buffer goes (a reinstall, a restored backup): its batch numbers start at 1 again,
    // below the ones the server acknowledged. The file checkpoints stay, so only new lines
    // are read.
    let collector_data = setup.config.with_file_name("collector");
    std::fs::remove_dir_all(collector_data.join("buffer"))
        .unwrap_or_else(|error| panic!("{error}"));
    let stream = setup.config.with_file_name("stream.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&stream)
        .unwrap_or_else(|error| panic!("{error}"));
    for n in 0..500 {
        let line = format!(
            "<38>Nov 22 09:{:02}:{:02} gis-app-01 sshd[{n}]: Accepted password for after{n} from 10.9.{}.{} port 22 ssh2",
            (n / 60) % 60,
            n % 60,
            n / 250,
            n % 250
        );
        writeln!(file, "{line}").unwrap_or_else(|error| panic!("{error}"));
        setup.lines.insert(line);
    }
    drop(file);

    let metrics_port = serve_collector_metrics(&setup);
    let mut collector = start_collector(&setup.config);
    let total = setup.lines.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while stored_count(&setup.server_data) < total {
        assert!(
            Instant::now() < deadline,
            "events after the lost buffer state were not delivered"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The collector's own `/metrics` tells its admin what happened: renumbered, not refused.
    wait_for_metric(
        metrics_port,
        "citysoc_collector_forward_renumbered_batches_total",
        1,
    );
    assert_no_batch_refused(metrics_port);
    kill(&mut collector);
    // The first batch after the wipe was refused as a replay, and renumbered.
    let metrics = http_get(setup.port, "/metrics");
    let replays = metrics
        .lines()
        .find(|line| {
            line.starts_with("citysoc_rejected_total{endpoint=\"intake\",reason=\"replay\"}")
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(replays >= 1, "no replay was refused: {metrics}");
    kill(&mut server);
    assert_exactly_once(&setup);
    let rejected = collector_data.join("buffer").join("rejected");
    let refused = std::fs::read_dir(&rejected).map_or(0, |entries| entries.count());
    assert_eq!(refused, 0, "batches were refused instead of renumbered");
}

/// An agency admin rotates the collector's key while it runs, then restarts it, as
/// docs/collector.md says: the running collector keeps delivering on the old key, the
/// restarted one on the new key, nothing is lost, duplicated or refused, and once the new key
/// has been used the old one is refused.
#[test]
fn a_rotated_key_takes_over_at_the_restart_and_the_old_key_is_refused() {
    let events = 2_000;
    let (mut setup, mut server) = setup(events);
    let metrics_port = serve_collector_metrics(&setup);
    let mut collector = start_collector(&setup.config);
    let old_key_file = setup.key_file.with_extension("old");
    std::fs::copy(&setup.key_file, &old_key_file).unwrap_or_else(|error| panic!("{error}"));

    let rotated = citysoc(&[
        "collector",
        "rotate-key",
        "--key-file",
        &setup.key_file.to_string_lossy(),
    ]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("restart the collector"));
    let key_of = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{error}"));
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|error| panic!("{error}"))
            ["key"]
            .clone()
    };
    assert_ne!(key_of(&setup.key_file), key_of(&old_key_file));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&setup.key_file)
            .unwrap_or_else(|error| panic!("{error}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The running collector still signs with the old key, which stays valid.
    let deadline = Instant::now() + Duration::from_secs(300);
    while stored_count(&setup.server_data) < events as u64 {
        assert!(Instant::now() < deadline, "not delivered on the old key");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_no_batch_refused(metrics_port);
    kill(&mut collector);

    // Restarted, it reads the new key; lines written since go out signed with it.
    let mut collector = start_collector(&setup.config);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&setup.stream)
        .unwrap_or_else(|error| panic!("{error}"));
    for n in events..events + 100 {
        let line = stream_line(n);
        writeln!(file, "{line}").unwrap_or_else(|error| panic!("{error}"));
        setup.lines.insert(line);
    }
    drop(file);
    while stored_count(&setup.server_data) < events as u64 + 100 {
        assert!(Instant::now() < deadline, "not delivered on the new key");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_no_batch_refused(metrics_port);

    // The new key has been used: the old one is refused.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let mut old = citysoc_collector::identity::Identity::load(&old_key_file)
        .unwrap_or_else(|error| panic!("{error}"));
    let refused = runtime.block_on(old.rotate(&setup.key_file.with_extension("never")));
    let message = refused
        .map(|()| "accepted".to_owned())
        .unwrap_or_else(|error| error.to_string());
    assert!(
        message.contains("401"),
        "the old key after rotation: {message}"
    );
    kill(&mut collector);
    kill(&mut server);
    assert_exactly_once(&setup);
}
