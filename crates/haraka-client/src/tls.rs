//! TLS client configurations for STARTTLS to a next hop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Bundles tried when `SSL_CERT_FILE` is not set (Debian, Fedora, openSUSE, Alpine).
const BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{}: {source}", path.display())]
    Pem {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no CA certificates found (looked at SSL_CERT_FILE and {})", BUNDLES.join(", "))]
    NoRoots,
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The system's CA certificates: `SSL_CERT_FILE`, else the first distribution bundle
/// that exists. Certificates rustls cannot use are skipped.
pub fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let path = env
        .into_iter()
        .chain(BUNDLES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or(TlsConfigError::NoRoots)?;
    let roots = roots_from_pem(&path)?;
    if roots.is_empty() {
        return Err(TlsConfigError::NoRoots);
    }
    Ok(roots)
}

/// The CA certificates in one PEM file.
pub fn roots_from_pem(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let pem_err = |source| TlsConfigError::Pem {
        path: path.to_owned(),
        source,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(pem_err)? {
        let cert = cert.map_err(pem_err)?;
        // A bundle may hold certificates webpki cannot parse; skip those.
        let _ = roots.add(cert);
    }
    Ok(roots)
}

/// A client configuration that verifies the server against `roots` (ring provider,
/// TLS 1.2 and 1.3).
pub fn client_config(roots: RootCertStore) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
