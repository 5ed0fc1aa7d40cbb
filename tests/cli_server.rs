//! `citysoc server` as an operator runs it: create a token, start the server, a collector
//! enrolls and reports, `collectors list` shows it, `collectors revoke` shuts it out, SIGTERM
//! stops the server cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use citysoc_collector::protocol::{
    self, EnrollRequest, EnrollResponse, Heartbeat, Signed, ENROLL_PATH, HEADER_COLLECTOR,
    HEADER_HEAD_SIGNATURE, HEADER_SEQUENCE, HEADER_SIGNATURE, HEADER_TIME, HEARTBEAT_PATH,
};

fn citysoc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{error}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `citysoc server collectors list --format json` of the server data directory `data`.
fn collectors_json(data: &str) -> serde_json::Value {
    let listed = citysoc(&[
        "server",
        "collectors",
        "list",
        "--data",
        data,
        "--format",
        "json",
    ]);
    serde_json::from_slice(&listed.stdout).unwrap_or_else(|error| panic!("{error}"))
}

/// Starts the server on a free loopback port; returns it and its base URL.
fn start_server(data: &Path) -> (Child, String) {
    start_server_with(data, &[])
}

/// [`start_server`] with more arguments.
fn start_server_with(data: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_citysoc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["server", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--no-detect"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{error}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("server exited before listening"))
            .unwrap_or_else(|error| panic!("{error}"));
        if let Some(address) = line.strip_prefix("citysoc server: listening on ") {
            break address.trim().to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

fn sign_headers(
    request: reqwest::RequestBuilder,
    id: &str,
    key: &[u8],
    path: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let time_ms = chrono::Utc::now().timestamp_millis();
    let signed = Signed {
        collector: id.to_owned(),
        sequence: 0,
        time_ms,
    };
    request
        .header(HEADER_COLLECTOR, id)
        .header(HEADER_SEQUENCE, "0")
        .header(HEADER_TIME, time_ms.to_string())
        .header(HEADER_SIGNATURE, protocol::sign(key, path, &signed, body))
        .header(
            HEADER_HEAD_SIGNATURE,
            protocol::sign_head(key, path, &signed, body.len() as u64),
        )
}

#[tokio::test]
async fn tokens_enrollment_heartbeats_listing_revocation_and_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let data = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let data_arg = data.path().to_string_lossy().into_owned();

    let created = citysoc(&[
        "server",
        "token",
        "create",
        "--data",
        &data_arg,
        "--agency",
        "quan-1",
        "--ttl",
        "1h",
        "--created-by",
        "admin-quan1",
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_owned();
    assert_eq!(token.len(), 32, "{token}");
    assert!(text(&created.stderr).contains("quan-1"));

    let bad_ttl = citysoc(&[
        "server", "token", "create", "--data", &data_arg, "--agency", "quan-1", "--ttl", "3w",
    ]);
    assert!(!bad_ttl.status.success());

    let (mut server, base) = start_server(data.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let health = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(health.status(), 200);

    let enrolled: EnrollResponse = client
        .post(format!("{base}{ENROLL_PATH}"))
        .json(&EnrollRequest {
            token: token.clone(),
            name: "log01".into(),
            hostname: "ubnd-quan1-log01".into(),
            version: "0.1.0".into(),
        })
        .send()
        .await
        .unwrap_or_else(|error| panic!("{error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(&enrolled.key)
        .unwrap_or_else(|error| panic!("{error}"));
    let id = enrolled.collector_id;

    let heartbeat = Heartbeat {
        version: "0.1.0".into(),
        uptime_seconds: 5400,
        buffer_bytes: 50,
        buffer_max_bytes: 100,
        buffer_events: 7,
        ..Heartbeat::default()
    };
    let body = serde_json::to_vec(&heartbeat).unwrap_or_default();
    let response = sign_headers(
        client.post(format!("{base}{HEARTBEAT_PATH}")),
        &id,
        &key,
        HEARTBEAT_PATH,
        &body,
    )
    .body(body.clone())
    .send()
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(response.status(), 200);

    // The listing, while the server runs.
    let listed = citysoc(&["server", "collectors", "list", "--data", &data_arg]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    let row = table
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{table}"));
    for expected in [
        "log01",
        "quan-1",
        "active",
        "v0.1.0 up 90m",
        "buffer 50% (7 events)",
    ] {
        assert!(row.contains(expected), "{expected} missing from {row}");
    }
    let json = collectors_json(&data_arg);
    assert_eq!(json[0]["id"], id.as_str());
    assert_eq!(json[0]["agency"], "quan-1");
    assert_eq!(json[0]["last_heartbeat"]["uptime_seconds"], 5400);
    assert!(json[0].get("key").is_none(), "keys are never listed");

    // A collector downgraded on purpose below head signatures: the admin lets its unsigned
    // requests in again (its signed heartbeat above made the server expect them signed).
    assert!(json[0]["head_signed_since"].is_string(), "{json}");
    let forgot = citysoc(&[
        "server",
        "collectors",
        "forget-head-signing",
        "--data",
        &data_arg,
        &id,
    ]);
    assert!(forgot.status.success(), "{}", text(&forgot.stderr));
    assert!(
        text(&forgot.stderr).contains(&id),
        "{}",
        text(&forgot.stderr)
    );
    let json = collectors_json(&data_arg);
    assert!(json[0]["head_signed_since"].is_null(), "{json}");

    // Revocation takes effect on the running server at once.
    let revoked = citysoc(&["server", "collectors", "revoke", "--data", &data_arg, &id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let response = sign_headers(
        client.post(format!("{base}{HEARTBEAT_PATH}")),
        &id,
        &key,
        HEARTBEAT_PATH,
        &body,
    )
    .body(body)
    .send()
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(response.status(), 403);
    let listed = citysoc(&["server", "collectors", "list", "--data", &data_arg]);
    assert!(text(&listed.stdout).contains("revoked"));
    let unknown = citysoc(&[
        "server",
        "collectors",
        "revoke",
        "--data",
        &data_arg,
        "c-nobody",
    ]);
    assert!(!unknown.status.success());
    assert!(text(&unknown.stderr).contains("c-nobody"));

    // SIGTERM: a clean stop.
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(killed.success());
    let status = server.wait().unwrap_or_else(|error| panic!("{error}"));
    assert!(status.success(), "{status:?}");
}

#[test]
fn listing_a_directory_that_is_not_a_server_is_an_error() {
    let data = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let data_arg = data.path().to_string_lossy().into_owned();
    let listed = citysoc(&["server", "collectors", "list", "--data", &data_arg]);
    assert!(!listed.status.success());
    assert!(
        text(&listed.stderr).contains("citysoc.db"),
        "{}",
        text(&listed.stderr)
    );
    let missing = citysoc(&["server", "--data", &data_arg]);
    assert!(!missing.status.success());
}

/// An admin lists tokens and revokes one before it is used; the list shows which is which,
/// never a token itself.
#[test]
fn tokens_are_listed_by_id_and_an_unused_one_revoked() {
    let data = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let data_arg = data.path().to_string_lossy().into_owned();
    let create = |agency: &str| {
        let created = citysoc(&[
            "server", "token", "create", "--data", &data_arg, "--agency", agency,
        ]);
        assert!(created.status.success(), "{}", text(&created.stderr));
        let token = text(&created.stdout).trim().to_owned();
        // The id is on stderr: "one-time token <id> for agency …".
        let id = text(&created.stderr)
            .split_whitespace()
            .skip_while(|word| *word != "token")
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        assert_eq!(id.len(), 12, "{}", text(&created.stderr));
        (token, id)
    };
    let (kept_token, kept) = create("quan-1");
    let (revoked_token, revoked) = create("quan-7");

    let revoke = citysoc(&[
        "server",
        "token",
        "revoke",
        "--data",
        &data_arg,
        &revoked[..8],
        "--revoked-by",
        "soc-lead",
    ]);
    assert!(revoke.status.success(), "{}", text(&revoke.stderr));
    assert!(text(&revoke.stderr).contains(&revoked));
    let not_a_token = citysoc(&["server", "token", "revoke", "--data", &data_arg, "ffffffff"]);
    assert!(!not_a_token.status.success());
    assert!(text(&not_a_token.stderr).contains("no token with id"));

    let listed = citysoc(&["server", "token", "list", "--data", &data_arg]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    let status_of = |id: &str| {
        table
            .lines()
            .find(|line| line.starts_with(id))
            .and_then(|line| line.split_whitespace().nth(2))
            .map(str::to_owned)
    };
    assert_eq!(status_of(&kept).as_deref(), Some("open"), "{table}");
    assert_eq!(status_of(&revoked).as_deref(), Some("revoked"), "{table}");
    assert!(!table.contains(&kept_token) && !table.contains(&revoked_token));

    let json = citysoc(&[
        "server", "token", "list", "--data", &data_arg, "--format", "json",
    ]);
    let tokens: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|error| panic!("{error}"));
    let revoked_entry = tokens
        .as_array()
        .and_then(|all| all.iter().find(|token| token["id"] == revoked.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(revoked_entry["revoked_by"], "soc-lead");
    assert_eq!(revoked_entry["agency"], "quan-7");
}

/// `--max-batches-in-process` sets the server's bound on batches handled at once (shown in
/// its /metrics); zero places would refuse every batch and is not accepted.
#[tokio::test]
async fn the_batch_places_follow_the_flag_and_zero_is_refused() {
    let data = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
    let data_arg = data.path().to_string_lossy().into_owned();
    let zero = citysoc(&[
        "server",
        "--data",
        &data_arg,
        "--listen",
        "127.0.0.1:0",
        "--max-batches-in-process",
        "0",
    ]);
    assert!(!zero.status.success());
    assert!(
        text(&zero.stderr).contains("--max-batches-in-process"),
        "{}",
        text(&zero.stderr)
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mut server, base) = start_server_with(data.path(), &["--max-batches-in-process", "3"]);
    let fetched = async { reqwest::get(format!("{base}/metrics")).await?.text().await }.await;
    // Stopped before anything can fail, so no server outlives the test.
    let _ = server.kill();
    let _ = server.wait();
    let metrics = fetched.unwrap_or_else(|error| panic!("{error}"));
    assert!(
        metrics.contains("Batches being decoded, checked and stored (at most 3;"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\ncitysoc_intake_batches_in_process 0\n"),
        "{metrics}"
    );
}
