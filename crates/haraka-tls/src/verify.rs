//! Certificate verification policies that Node's `requestCert` /
//! `rejectUnauthorized` imply, and the trust anchors they use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::TlsError;
use crate::pem;

/// CA bundles of common systems, tried in order when no `ca` is configured.
pub(crate) const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Trust anchors from a `ca=` file.
pub(crate) fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(pem::load_ca(path)?);
    if added == 0 {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            reason: "no usable CA certificate in the file".to_owned(),
        });
    }
    Ok(roots)
}

/// Trust anchors from `$SSL_CERT_FILE` or the system's CA bundle, if any.
pub(crate) fn system_roots() -> Option<RootCertStore> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    env.into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find_map(|path| roots_from_file(&path).ok())
}

/// `ca=` if set, else the system bundle.
pub(crate) fn roots(ca: Option<&Path>) -> Result<Option<RootCertStore>, TlsError> {
    match ca {
        Some(path) => roots_from_file(path).map(Some),
        None => Ok(system_roots()),
    }
}

/// The server side of `requestCert=true`: ask for a client certificate; when
/// `mandatory` (`rejectUnauthorized`, `requireAuthorized` ports) it must chain to
/// the trust anchors, otherwise any certificate (or none) is accepted, as Node
/// does. Handshake signatures are always checked.
#[derive(Debug)]
pub(crate) struct ClientCertPolicy {
    inner: Option<Arc<dyn ClientCertVerifier>>,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertPolicy {
    pub(crate) fn new(
        roots: Option<RootCertStore>,
        mandatory: bool,
        provider: &Arc<CryptoProvider>,
    ) -> Result<ClientCertPolicy, TlsError> {
        let inner = match roots {
            Some(roots) => Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Other(format!("client certificate verifier: {e}")))?,
            ),
            None if mandatory => return Err(TlsError::NoRoots),
            None => None,
        };
        Ok(ClientCertPolicy {
            inner,
            mandatory,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for ClientCertPolicy {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        match &self.inner {
            Some(v) => v.root_hint_subjects(),
            None => &[],
        }
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let Some(inner) = &self.inner else {
            return Ok(ClientCertVerified::assertion());
        };
        match inner.verify_client_cert(end_entity, intermediates, now) {
            Ok(v) => Ok(v),
            Err(e) if self.mandatory => Err(e),
            Err(e) => {
                tracing::debug!("client certificate not verified ({e}); accepted");
                Ok(ClientCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Opportunistic TLS to an MX (`rejectUnauthorized=false`): any certificate is
/// accepted, whoever issued it and whatever name it carries, but the server must
/// still prove it holds the certificate's key (handshake signatures are checked).
/// This protects against passive eavesdropping only.
#[derive(Debug)]
pub(crate) struct AcceptAnyServerCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AcceptAnyServerCert {
    pub(crate) fn new(provider: &CryptoProvider) -> AcceptAnyServerCert {
        AcceptAnyServerCert {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
