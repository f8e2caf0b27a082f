//! Reading PEM files: whole files, keys and certificates picked by block type, so a
//! combined key + certificate file (acme.sh `cat key cer > combined.pem`) works for
//! both `key=` and `cert=`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// The private keys and certificates found in one PEM text, in file order.
#[derive(Default)]
pub(crate) struct PemParts {
    pub keys: Vec<PrivateKeyDer<'static>>,
    pub certs: Vec<CertificateDer<'static>>,
}

/// Split `bytes` into key and certificate blocks; other blocks are skipped.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<PemParts, TlsError> {
    let mut parts = PemParts::default();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes) {
        let (kind, der) = item.map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            reason: format!("not a valid PEM file: {e}"),
        })?;
        match kind {
            SectionKind::Certificate => parts.certs.push(CertificateDer::from(der)),
            SectionKind::PrivateKey => parts.keys.push(PrivateKeyDer::Pkcs8(
                rustls_pki_types::PrivatePkcs8KeyDer::from(der),
            )),
            SectionKind::RsaPrivateKey => parts.keys.push(PrivateKeyDer::Pkcs1(
                rustls_pki_types::PrivatePkcs1KeyDer::from(der),
            )),
            SectionKind::EcPrivateKey => parts.keys.push(PrivateKeyDer::Sec1(
                rustls_pki_types::PrivateSec1KeyDer::from(der),
            )),
            _ => {}
        }
    }
    Ok(parts)
}

/// Read a whole file, naming it in the error.
pub(crate) fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn encrypted(bytes: &[u8]) -> bool {
    let needle = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// The first private key of `bytes` (read from `path`).
fn first_key(bytes: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let parts = parse(bytes, path)?;
    match parts.keys.into_iter().next() {
        Some(key) => Ok(key),
        None => Err(TlsError::Pem {
            path: path.to_owned(),
            reason: if encrypted(bytes) {
                "encrypted private keys are not supported (passphrase); store the key unencrypted"
                    .to_owned()
            } else {
                "no PRIVATE key in the file".to_owned()
            },
        }),
    }
}

/// All certificates of `bytes`: the first is the leaf, the rest its chain.
fn chain(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let parts = parse(bytes, path)?;
    if parts.certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no CERT in the file".to_owned(),
        });
    }
    Ok(parts.certs)
}

/// Build a [`CertifiedKey`] from a key and a chain, checking that they belong together.
pub(crate) fn certified(
    key: PrivateKeyDer<'static>,
    certs: Vec<CertificateDer<'static>>,
    key_path: &Path,
    cert_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    CertifiedKey::from_der(certs, key, provider)
        .map(Arc::new)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
                key: key_path.to_owned(),
                cert: cert_path.to_owned(),
            },
            other => TlsError::Pem {
                path: key_path.to_owned(),
                reason: format!("unusable private key: {other}"),
            },
        })
}

/// Load a key/cert pair from two files (which may be the same combined file).
pub(crate) fn load_pair(
    key_path: &Path,
    cert_path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let key_bytes = read(key_path, "key")?;
    let key = first_key(&key_bytes, key_path)?;
    let certs = if cert_path == key_path {
        chain(&key_bytes, cert_path)?
    } else {
        chain(&read(cert_path, "cert")?, cert_path)?
    };
    certified(key, certs, key_path, cert_path, provider)
}

/// Load one `config/tls/` file, which must hold both a key and its certificate(s).
pub(crate) fn load_combined(
    path: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let bytes = read(path, "file")?;
    let key = first_key(&bytes, path)?;
    let certs = chain(&bytes, path)?;
    certified(key, certs, path, path, provider)
}

/// Every certificate in a CA bundle file.
pub(crate) fn load_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, "ca")?;
    chain(&bytes, path)
}

/// Resolve a file name from tls.ini: relative to the config dir, absolute as is.
pub(crate) fn resolve(cfg: &haraka_config::ConfigDir, name: &str) -> PathBuf {
    cfg.path(name.trim())
}
