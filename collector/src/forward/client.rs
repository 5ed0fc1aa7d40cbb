//! The HTTPS client of the forwarder: TLS (rustls with ring), the request of one signed batch
//! and what its answer means.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use rustls_platform_verifier::BuilderVerifierExt;

use super::ForwarderConfig;
use crate::protocol::{self, IntakeAck, Rejection, Signed};
use crate::CollectorError;

/// What became of one attempt to send a batch.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The server stored the batch.
    Acked(IntakeAck),
    /// The server refused the batch for good (a 4xx answer).
    Rejected {
        /// HTTP status.
        status: u16,
        /// The server's reason (or one made from the status and body).
        rejection: Rejection,
    },
    /// Worth trying again: network error, timeout, 5xx, 408, 429, or an answer that is not an
    /// acknowledgement of this batch.
    Failed(String),
}

/// Posts batches to one server.
pub(crate) struct IntakeClient {
    http: reqwest::Client,
    url: reqwest::Url,
    collector_id: String,
    key: Vec<u8>,
}

impl IntakeClient {
    pub(crate) fn new(config: &ForwarderConfig) -> Result<Self, CollectorError> {
        let url = intake_url(&config.server_url)?;
        let http = http_client(config.ca_file.as_deref(), config.request_timeout)?;
        Ok(Self {
            http,
            url,
            collector_id: config.collector_id.clone(),
            key: config.key.clone(),
        })
    }

    /// Sends `body` as batch `sequence`, signed now.
    pub(crate) async fn send(&self, sequence: u64, body: &[u8]) -> Attempt {
        let signed = Signed {
            collector: self.collector_id.clone(),
            sequence,
            time_ms: now_ms(),
        };
        let signature = protocol::sign(&self.key, protocol::INTAKE_PATH, &signed, body);
        let head_signature =
            protocol::sign_head(&self.key, protocol::INTAKE_PATH, &signed, body.len() as u64);
        let response = self
            .http
            .post(self.url.clone())
            .header(protocol::HEADER_COLLECTOR, &signed.collector)
            .header(protocol::HEADER_SEQUENCE, signed.sequence.to_string())
            .header(protocol::HEADER_TIME, signed.time_ms.to_string())
            .header(protocol::HEADER_SIGNATURE, signature)
            .header(protocol::HEADER_HEAD_SIGNATURE, head_signature)
            .header(reqwest::header::CONTENT_TYPE, "application/zstd")
            .body(body.to_vec())
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return Attempt::Failed(describe(&error)),
        };
        let status = response.status();
        let text = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return Attempt::Failed(describe(&error)),
        };
        classify(status, &text, sequence)
    }
}

fn classify(status: StatusCode, body: &[u8], sequence: u64) -> Attempt {
    if status == StatusCode::OK {
        return match serde_json::from_slice::<IntakeAck>(body) {
            Ok(ack) if ack.sequence == sequence => Attempt::Acked(ack),
            Ok(ack) => Attempt::Failed(format!(
                "server acknowledged batch {} while batch {sequence} was sent",
                ack.sequence
            )),
            Err(error) => Attempt::Failed(format!(
                "server answered 200 without an acknowledgement: {error}"
            )),
        };
    }
    // 401 and 403 say nothing about the batch (a wrong clock, a key being rotated, a revoked
    // collector): retrying keeps the events in the buffer, where the admin can still recover
    // them, instead of filing the whole buffer under rejected/ in a few seconds.
    let retryable = status.is_server_error()
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || !status.is_client_error();
    if retryable {
        return Attempt::Failed(format!("server answered {status}: {}", snippet(body)));
    }
    let rejection = serde_json::from_slice::<Rejection>(body).unwrap_or_else(|_| Rejection {
        reason: format!("http_{}", status.as_u16()),
        message: snippet(body),
        last_acknowledged: None,
    });
    Attempt::Rejected {
        status: status.as_u16(),
        rejection,
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// An error with its causes (reqwest's own message hides whether it was TLS, DNS, refused…).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The HTTP client every request to the server uses: TLS with ring (the CA file as the only
/// trust anchor when given), the timeout, and no proxy.
pub(crate) fn http_client(
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, CollectorError> {
    let tls = tls_config(ca_file)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        // Collectors talk to one known server; a proxy from the environment would be a
        // surprise (and would see every batch).
        .no_proxy()
        // Nor does a redirect move them elsewhere: it would resend the batch and its signed
        // headers wherever it points, plain HTTP included. A 3xx is an answer to retry and
        // report, like a 5xx.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| {
            CollectorError::InvalidForwarderConfig(format!("cannot build the HTTP client: {error}"))
        })
}

/// The intake URL on `server`.
pub(crate) fn intake_url(server: &str) -> Result<reqwest::Url, CollectorError> {
    endpoint_url(server, protocol::INTAKE_PATH)
}

/// The URL of `path` on `server`: HTTPS, or plain HTTP to a loopback address (tests, a local
/// relay); a path prefix on the server URL is kept.
pub(crate) fn endpoint_url(server: &str, path: &str) -> Result<reqwest::Url, CollectorError> {
    let invalid = |reason: String| CollectorError::InvalidForwarderConfig(reason);
    let base = reqwest::Url::parse(server)
        .map_err(|error| invalid(format!("server URL `{server}`: {error}")))?;
    match base.scheme() {
        "https" => {}
        "http" if is_loopback(&base) => {}
        "http" => {
            return Err(invalid(format!(
                "server URL `{server}`: plain http is only allowed to a loopback address; use https"
            )))
        }
        other => {
            return Err(invalid(format!(
                "server URL `{server}`: unsupported scheme `{other}`"
            )))
        }
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid(format!(
            "server URL `{server}` must not have a query or fragment"
        )));
    }
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    reqwest::Url::parse(&joined).map_err(|error| invalid(format!("server URL `{server}`: {error}")))
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(address) => address.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// TLS with ring: the given CA file as the only trust anchor (a SOC with its own CA or a
/// self-signed server), else the system's trust store.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, CollectorError> {
    let invalid = |reason: String| CollectorError::InvalidForwarderConfig(reason);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| invalid(format!("TLS: {error}")))?;
    let Some(path) = ca_file else {
        return builder
            .with_platform_verifier()
            .map(|builder| builder.with_no_client_auth())
            .map_err(|error| invalid(format!("TLS: cannot load the system trust store: {error}")));
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| invalid(format!("CA file `{}`: {error}", path.display())))?;
    if certificates.is_empty() {
        return Err(invalid(format!(
            "CA file `{}` holds no PEM certificate",
            path.display()
        )));
    }
    let mut roots = RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| invalid(format!("CA file `{}`: {error}", path.display())))?;
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_accepted() {
        for good in [
            "https://soc.example.vn",
            "https://soc.example.vn:8443/",
            "http://127.0.0.1:9000",
            "http://[::1]:9000",
            "http://localhost:9000",
        ] {
            let url = intake_url(good).unwrap();
            assert!(url.path().ends_with(protocol::INTAKE_PATH), "{url}");
        }
        assert_eq!(
            intake_url("https://soc.example.vn/prefix/").unwrap().path(),
            "/prefix/api/v1/intake"
        );
        for bad in [
            "http://soc.example.vn",
            "http://10.0.0.1",
            "ftp://x",
            "soc",
            "https://x/?a=1",
        ] {
            assert!(intake_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_classified() {
        let ack = br#"{"sequence":4,"stored":2,"duplicates":0}"#;
        assert!(matches!(
            classify(StatusCode::OK, ack, 4),
            Attempt::Acked(_)
        ));
        assert!(matches!(
            classify(StatusCode::OK, ack, 5),
            Attempt::Failed(_)
        ));
        assert!(matches!(
            classify(StatusCode::OK, b"{}", 4),
            Attempt::Failed(_)
        ));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b"", 4),
            Attempt::Failed(_)
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, b"", 4),
            Attempt::Failed(_)
        ));
        // Authentication problems keep the batch for later, they are not its fault.
        let body = br#"{"reason":"bad_signature","message":"no"}"#;
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, body, 4),
            Attempt::Failed(_)
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, b"", 4),
            Attempt::Failed(_)
        ));
        let body = br#"{"reason":"bad_batch","message":"line 2: not an event"}"#;
        match classify(StatusCode::BAD_REQUEST, body, 4) {
            Attempt::Rejected { status, rejection } => {
                assert_eq!(status, 400);
                assert_eq!(rejection.reason, "bad_batch");
            }
            other => panic!("{other:?}"),
        }
        match classify(StatusCode::NOT_FOUND, b"no such page", 4) {
            Attempt::Rejected { rejection, .. } => {
                assert_eq!(rejection.reason, "http_404");
                assert_eq!(rejection.message, "no such page");
            }
            other => panic!("{other:?}"),
        }
    }

    /// A server (or a proxy before it) answering 307 with another address: the batch is not
    /// sent there, and the answer is a failure to retry.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let elsewhere_address = elsewhere.local_addr().unwrap();
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_address = server.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = server.accept().await {
                let mut request = vec![0u8; 64 << 10];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://{elsewhere_address}/api/v1/intake\r\ncontent-length: 0\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        let config = ForwarderConfig::new(format!("http://{server_address}"), "c-1", vec![1; 32]);
        let client = IntakeClient::new(&config).unwrap();
        let attempt = client.send(1, b"body").await;
        assert!(
            matches!(&attempt, Attempt::Failed(message) if message.contains("307")),
            "{attempt:?}"
        );
        let followed = tokio::time::timeout(Duration::from_millis(300), elsewhere.accept()).await;
        assert!(followed.is_err(), "the redirect was followed");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = tls_config(Some(&missing)).unwrap_err().to_string();
        assert!(error.contains("missing.pem"), "{error}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let error = tls_config(Some(&empty)).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
