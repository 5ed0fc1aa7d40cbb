//! A real server on a loopback port, a real HTTP client, and a collector that signs like the
//! real one (through the shared protocol module).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use citysoc_collector::protocol::{
    self, EnrollRequest, EnrollResponse, Rejection, Signed, ENROLL_PATH, HEADER_COLLECTOR,
    HEADER_HEAD_SIGNATURE, HEADER_SEQUENCE, HEADER_SIGNATURE, HEADER_TIME,
};
use citysoc_collector::Event;
use citysoc_console::{Metrics, Registry, Server, ServerConfig};
use citysoc_index::{
    AgencyScope, AggregationRequest, Query, SearchRequest, TantivyStore, TimeRange,
};

/// A running server.
pub struct TestServer {
    pub address: SocketAddr,
    pub base: String,
    pub registry: Arc<Registry>,
    pub store: Arc<TantivyStore>,
    pub metrics: Arc<Metrics>,
    pub client: reqwest::Client,
    pub data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), citysoc_console::ConsoleError>>>,
}

pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn plain_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

impl TestServer {
    /// A plain HTTP server on 127.0.0.1 with a fresh data directory.
    pub async fn start() -> TestServer {
        let data = tempfile::tempdir().unwrap();
        let config = ServerConfig::new(data.path());
        TestServer::start_with(data, config, "http", plain_client()).await
    }

    pub async fn start_with(
        data: tempfile::TempDir,
        config: ServerConfig,
        scheme: &str,
        client: reqwest::Client,
    ) -> TestServer {
        let server = Server::new(config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let registry = server.registry();
        let store = server.store();
        let metrics = server.metrics();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        TestServer {
            address,
            base: format!("{scheme}://{host}:{}", address.port()),
            registry,
            store,
            metrics,
            client,
            data,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and waits for its graceful shutdown.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// A token for `agency`, valid an hour.
    pub fn token(&self, agency: &str) -> String {
        self.registry
            .create_token(
                agency,
                chrono::Duration::hours(1),
                "test",
                chrono::Utc::now(),
            )
            .unwrap()
            .token
    }

    pub async fn enroll_raw(&self, token: &str) -> reqwest::Response {
        self.client
            .post(self.url(ENROLL_PATH))
            .json(&EnrollRequest {
                token: token.to_owned(),
                name: "collector-1".into(),
                hostname: "ubnd-quan1-log01".into(),
                version: "0.1.0".into(),
            })
            .send()
            .await
            .unwrap()
    }

    /// Enrolls a collector for `agency`.
    pub async fn enroll(&self, agency: &str) -> TestCollector {
        let response = self.enroll_raw(&self.token(agency)).await;
        assert_eq!(response.status(), 200);
        let enrolled: EnrollResponse = response.json().await.unwrap();
        assert_eq!(enrolled.agency, agency);
        TestCollector {
            id: enrolled.collector_id,
            key: base64::engine::general_purpose::STANDARD
                .decode(enrolled.key)
                .unwrap(),
        }
    }

    /// Every stored event, oldest first.
    pub fn stored(&self) -> Vec<Event> {
        let request = SearchRequest {
            order: citysoc_index::Order::OldestFirst,
            ..SearchRequest::new(
                Query::All,
                TimeRange::everything(),
                AgencyScope::All,
                10_000,
            )
        };
        self.store.search(&request).unwrap().events
    }

    pub fn stored_count(&self) -> u64 {
        self.store
            .count(&AggregationRequest {
                query: Query::All,
                time: TimeRange::everything(),
                scope: AgencyScope::All,
            })
            .unwrap()
    }

    pub async fn metrics_text(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A collector's identity, signing like the real one.
#[derive(Clone)]
pub struct TestCollector {
    pub id: String,
    pub key: Vec<u8>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl TestCollector {
    /// The signed fields of its request `sequence` signed at `time_ms`.
    pub fn signed(&self, sequence: u64, time_ms: i64) -> Signed {
        Signed {
            collector: self.id.clone(),
            sequence,
            time_ms,
        }
    }

    /// A signed request to `path`.
    pub fn request(
        &self,
        server: &TestServer,
        path: &str,
        sequence: u64,
        time_ms: i64,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let signed = self.signed(sequence, time_ms);
        let head_signature = protocol::sign_head(&self.key, path, &signed, body.len() as u64);
        self.request_without_head_signature(server, path, sequence, time_ms, body)
            .header(HEADER_HEAD_SIGNATURE, head_signature)
    }

    /// A signed request to `path` as a collector older than the head signature sends it.
    pub fn request_without_head_signature(
        &self,
        server: &TestServer,
        path: &str,
        sequence: u64,
        time_ms: i64,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let signature = protocol::sign(&self.key, path, &self.signed(sequence, time_ms), &body);
        server
            .client
            .post(server.url(path))
            .header(HEADER_COLLECTOR, &self.id)
            .header(HEADER_SEQUENCE, sequence.to_string())
            .header(HEADER_TIME, time_ms.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body)
    }

    pub async fn send(
        &self,
        server: &TestServer,
        path: &str,
        sequence: u64,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.request(server, path, sequence, now_ms(), body)
            .send()
            .await
            .unwrap()
    }
}

/// An event as a collector sends it, claiming `agency` in the payload.
pub fn event(id: &str, agency: Option<&str>, message: &str) -> Event {
    let mut json = serde_json::json!({
        "id": id,
        "timestamp": "2026-11-22T01:02:03Z",
        // Now: the server replaces a received_at over a year old (or in the future).
        "received_at": chrono::Utc::now().to_rfc3339(),
        "source": {"transport": "udp", "address": "10.1.2.3:514", "sequence": 1},
        "format": "unknown",
        "logsource": {"product": "test"},
        "message": message,
        "raw": message,
    });
    if let Some(agency) = agency {
        json["agency"] = serde_json::Value::from(agency);
        json["collector"] = serde_json::Value::from("forged-collector");
    }
    serde_json::from_value(json).unwrap()
}

pub fn events(prefix: &str, count: usize) -> Vec<Event> {
    (0..count)
        .map(|index| {
            event(
                &format!("{prefix}{index:04}"),
                None,
                &format!("line {index}"),
            )
        })
        .collect()
}

pub fn batch(events: &[Event]) -> Vec<u8> {
    protocol::encode_events(events).unwrap()
}

/// Reads a refusal and checks its status and reason.
pub async fn expect_rejection(response: reqwest::Response, status: u16, reason: &str) -> Rejection {
    assert_eq!(
        response.status().as_u16(),
        status,
        "expected {status} {reason}"
    );
    let rejection: Rejection = response.json().await.unwrap();
    assert_eq!(rejection.reason, reason, "{}", rejection.message);
    rejection
}

/// The value of one metrics line.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|value| value.trim().parse().unwrap())
        })
        .unwrap_or(0)
}

pub fn rejected_metric(endpoint: &str, reason: &str) -> String {
    format!("citysoc_rejected_total{{endpoint=\"{endpoint}\",reason=\"{reason}\"}}")
}
