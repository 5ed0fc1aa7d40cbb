//! TLS server settings from PEM files, for the syslog TLS source (RFC 5425) and HTTPS intake.
//! rustls with the ring provider: the same crypto library the protocol's HMAC uses, and no C
//! toolchain needed at build time.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::TlsFiles;
use crate::CollectorError;

/// The ring crypto provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; an error when there is none or the file cannot be read.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CollectorError> {
    let bytes = std::fs::read(path).map_err(|error| {
        CollectorError::Tls(format!(
            "cannot read certificate file {}: {error}",
            path.display()
        ))
    })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            CollectorError::Tls(format!(
                "{} is not a PEM certificate file: {error}",
                path.display()
            ))
        })?;
    if certificates.is_empty() {
        return Err(CollectorError::Tls(format!(
            "{} holds no certificate (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, CollectorError> {
    let bytes = std::fs::read(path).map_err(|error| {
        CollectorError::Tls(format!("cannot read key file {}: {error}", path.display()))
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| {
        CollectorError::Tls(format!(
            "{} holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {error}",
            path.display()
        ))
    })
}

/// A rustls server configuration from certificate, key and optional client CA files. Also
/// checks that the key belongs to the certificate, so `collector check` catches a mismatched
/// pair before a sender does.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, CollectorError> {
    let certificates = load_certificates(&files.cert)?;
    let key = load_private_key(&files.key)?;
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| CollectorError::Tls(format!("protocol versions: {error}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = RootCertStore::empty();
            for certificate in load_certificates(ca_path)? {
                roots.add(certificate).map_err(|error| {
                    CollectorError::Tls(format!(
                        "{}: not a usable CA certificate: {error}",
                        ca_path.display()
                    ))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| CollectorError::Tls(format!("{}: {error}", ca_path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certificates, key)
        .map_err(|error| {
            CollectorError::Tls(format!(
                "certificate {} and key {} do not work together: {error}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    Ok(Arc::new(config))
}
