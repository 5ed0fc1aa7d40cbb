//! TLS source (RFC 5425) with real clients: rustls (certificates from rcgen) and, when the
//! binary is installed, `openssl s_client`; clients without a trusted certificate are refused
//! and counted when the source asks for one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use citysoc_collector::metrics::SourceErrorKind;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Pki {
    ca: CertificateDer<'static>,
    client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, written as PEM
/// files (ca.pem, server.pem, server.key) under `dir`.
fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "citysoc test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let mut client_params = CertificateParams::new(vec!["fw-hq.quan-1".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca: ca.der().clone(),
        client_chain: vec![client_cert.der().clone()],
        client_key: PrivateKeyDer::try_from(client_key.serialize_der()).unwrap(),
    }
}

fn tls_source(dir: &Path, extra: &str) -> String {
    source_with_certificate("tls", "tls", dir, extra)
}

/// A source of `kind` named `name` with the server certificate of [`make_pki`].
fn source_with_certificate(kind: &str, name: &str, dir: &Path, extra: &str) -> String {
    format!(
        r#"
[[source]]
name = "{name}"
type = "{kind}"
listen = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
{extra}
"#,
        cert = dir.join("server.pem").display(),
        key = dir.join("server.key").display(),
    )
}

/// A TLS connection to `address` trusting the test CA, without a client certificate.
async fn connect_tls(
    pki: &Pki,
    address: std::net::SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    connector(pki, false)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn connector(pki: &Pki, with_client_certificate: bool) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if with_client_certificate {
        builder
            .with_client_auth_cert(pki.client_chain.clone(), pki.client_key.clone_key())
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    TlsConnector::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_client_round_trip_with_octet_counting() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let harness = start_in(dir.path(), &tls_source(dir.path(), "")).await;
    let tcp = TcpStream::connect(harness.address("tls")).await.unwrap();
    let mut tls = connector(&pki, false)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let messages = [
        "<165>1 2026-11-22T10:15:00.000+07:00 portal.dichvucong web 311 LOGIN [meta sequenceId=\"1\"] user nguyenvana logged in",
        "<165>1 2026-11-22T10:15:01.000+07:00 portal.dichvucong web 311 EXPORT - two\nlines",
    ];
    let mut wire = Vec::new();
    for message in messages {
        wire.extend_from_slice(format!("{} {message}", message.len()).as_bytes());
    }
    for chunk in wire.chunks(11) {
        tls.write_all(chunk).await.unwrap();
        tls.flush().await.unwrap();
    }
    tls.shutdown().await.unwrap();
    harness.wait_for_events("tls", 2).await;
    let events = harness.stop().await;
    assert_eq!(raws(&events), messages);
    assert_eq!(events[0]["source"]["transport"], "tls");
    assert_eq!(events[0]["format"], "rfc5424");
    assert_eq!(events[0]["agency"], "quan-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_round_trip() {
    let Ok(output) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        println!("NOT RUN: openssl_s_client_round_trip needs the `openssl` binary (Debian package openssl)");
        return;
    };
    assert!(output.status.success());
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let harness = start_in(dir.path(), &tls_source(dir.path(), "framing = \"newline\"")).await;
    let address = harness.address("tls");
    let mut child = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &address.to_string(),
            "-servername",
            "localhost",
            "-CAfile",
        ])
        .arg(dir.path().join("ca.pem"))
        .args(["-verify_return_error", "-quiet", "-no_ign_eof"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines = [
        "<134>Nov 22 10:15:00 fw01 sshd[42]: Accepted password for admin from 192.0.2.5 port 50022 ssh2",
        "<134>Nov 22 10:15:01 fw01 sshd[42]: Failed password for root from 192.0.2.6 port 50023 ssh2",
    ];
    for line in lines {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
    stdin.flush().await.unwrap();
    harness.wait_for_events("tls", 2).await;
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "openssl s_client failed");
    let events = harness.stop().await;
    assert_eq!(raws(&events), lines);
    assert_eq!(events[1]["source.ip"], "192.0.2.6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_the_tls_port_is_a_counted_handshake_error() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let harness = start_in(dir.path(), &tls_source(dir.path(), "")).await;
    let mut plain = TcpStream::connect(harness.address("tls")).await.unwrap();
    plain
        .write_all(b"<13>Nov 22 10:15:00 host app: not encrypted\n")
        .await
        .unwrap();
    let metrics = harness.collector.metrics();
    let tls = metrics.source("tls").unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(5), || tls
            .errors(SourceErrorKind::TlsHandshake)
            == 1)
        .await
    );
    drop(plain);
    assert!(harness.stop().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_with_a_certificate_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let extra = format!(
        "tls_client_ca = \"{}\"",
        dir.path().join("ca.pem").display()
    );
    let harness = start_in(dir.path(), &tls_source(dir.path(), &extra)).await;
    let address = harness.address("tls");
    let server_name = ServerName::try_from("localhost").unwrap();

    let tcp = TcpStream::connect(address).await.unwrap();
    if let Ok(mut anonymous) = connector(&pki, false)
        .connect(server_name.clone(), tcp)
        .await
    {
        // TLS 1.3: the client may believe it is connected before the server refuses it.
        let _ = anonymous
            .write_all(b"<13>Nov 22 10:15:00 host app: anonymous\n")
            .await;
        let _ = anonymous.shutdown().await;
    }
    let metrics = harness.collector.metrics();
    let tls = metrics.source("tls").unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(5), || tls
            .errors(SourceErrorKind::TlsHandshake)
            == 1)
        .await
    );

    let tcp = TcpStream::connect(address).await.unwrap();
    let mut known = connector(&pki, true)
        .connect(server_name, tcp)
        .await
        .unwrap();
    known
        .write_all(b"<13>Nov 22 10:15:00 host app: with a certificate\n")
        .await
        .unwrap();
    known.shutdown().await.unwrap();
    harness.wait_for_events("tls", 1).await;
    let events = harness.stop().await;
    assert_eq!(
        raws(&events),
        ["<13>Nov 22 10:15:00 host app: with a certificate"]
    );
}

/// The HTTP intake over TLS: an agent's request is served, and a connection past
/// `max_connections` is refused and counted before its handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_intake_serves_agents_and_bounds_their_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let source = source_with_certificate("http", "agents", dir.path(), "max_connections = 1");
    let harness = start_in(dir.path(), &source).await;
    let address = harness.address("agents");
    let metrics = harness.source_metrics("agents");
    let mut tls = connect_tls(&pki, address).await.unwrap();
    let body = "{\"host\":\"pc-ketoan-01\",\"message\":\"over https\"}\n";
    let response = post_kept_open(&mut tls, "localhost", body.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(metrics.connections_active(), 1);

    let refused = connect_tls(&pki, address).await;
    assert!(
        refused.is_err(),
        "a second connection got through its handshake"
    );
    assert_eq!(metrics.errors(SourceErrorKind::TooManyConnections), 1);
    assert_eq!(metrics.errors(SourceErrorKind::TlsHandshake), 0);
    drop(tls);
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 0).await);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec![body.trim_end()]);
    assert_eq!(events[0]["source"]["transport"], "http");
}

/// Over TLS too, a connection that sends no request head within `head_timeout_ms` after its
/// handshake is closed, and its slot comes free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_connections_sending_no_request_are_closed_after_head_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let source = source_with_certificate(
        "http",
        "agents",
        dir.path(),
        "max_connections = 1\nhead_timeout_ms = 1000",
    );
    let harness = start_in(dir.path(), &source).await;
    let address = harness.address("agents");
    let metrics = harness.source_metrics("agents");
    let started = std::time::Instant::now();
    let mut silent = connect_tls(&pki, address).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut answer).await;
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        started.elapsed()
    );
    assert!(wait_until(Duration::from_secs(5), || metrics.connections_active() == 0).await);
    let mut tls = connect_tls(&pki, address).await.unwrap();
    let response = post_kept_open(&mut tls, "localhost", b"{\"n\":1}\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(metrics.errors(SourceErrorKind::TooManyConnections), 0);
    drop(tls);
    let events = harness.stop().await;
    assert_eq!(raws(&events), vec!["{\"n\":1}"]);
}
