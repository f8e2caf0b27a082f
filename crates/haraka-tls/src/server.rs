//! The inbound side: the rustls [`ServerConfig`]s STARTTLS (and an implicit-TLS
//! listener) hand to the server, and the rules for offering STARTTLS.

use std::net::IpAddr;
use std::sync::Arc;

use haraka_config::{ConfigDir, Diag};
use haraka_smtp::{Connection, Remote};
use ipnet::IpNet;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ServerConfig, SupportedProtocolVersion};

use crate::TlsError;
use crate::pem;
use crate::settings::{MinVersion, SideSettings, TlsSettings};
use crate::store::CertStore;
use crate::verify::{self, ClientCertPolicy};

/// The ring provider every config of this crate uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
static TLS12_UP: [&SupportedProtocolVersion; 2] =
    [&rustls::version::TLS13, &rustls::version::TLS12];

pub(crate) fn versions(min: MinVersion) -> &'static [&'static SupportedProtocolVersion] {
    match min {
        MinVersion::Tls13 => &TLS13_ONLY,
        MinVersion::Tls12 => &TLS12_UP,
    }
}

/// Default pairs of a side: `(required, optional)` for [`CertStore::load`].
pub(crate) type Pairs = Vec<(std::path::PathBuf, std::path::PathBuf)>;

pub(crate) fn pairs(cfg: &ConfigDir, side: &SideSettings) -> (Pairs, Pairs) {
    let list: Pairs = side
        .keys
        .iter()
        .zip(&side.certs)
        .map(|(k, c)| (pem::resolve(cfg, k), pem::resolve(cfg, c)))
        .collect();
    if side.explicit {
        (list, Vec::new())
    } else {
        (Vec::new(), list)
    }
}

/// Inbound TLS: certificates, server configs and the STARTTLS offer rules.
#[derive(Debug)]
pub struct InboundTls {
    store: Arc<CertStore>,
    /// For ports where unverified client certificates are accepted.
    lenient: Arc<ServerConfig>,
    /// For `requireAuthorized` ports (every port with `rejectUnauthorized=true`).
    strict: Arc<ServerConfig>,
    reject_unauthorized: bool,
    require_authorized: Vec<u16>,
    no_starttls_ports: Vec<u16>,
    no_tls_hosts: Vec<IpNet>,
    warnings: Vec<Diag>,
}

impl InboundTls {
    /// Read `tls.ini` and load the certificates. A configured key or cert that
    /// cannot be used is an error naming the file; missing default files are not
    /// (STARTTLS is then not offered).
    pub fn load(cfg: &ConfigDir) -> Result<InboundTls, TlsError> {
        let settings = TlsSettings::load(cfg)?;
        InboundTls::from_settings(cfg, settings)
    }

    /// Build from already-read settings.
    pub fn from_settings(cfg: &ConfigDir, settings: TlsSettings) -> Result<InboundTls, TlsError> {
        let provider = provider();
        let side = &settings.inbound;
        let (required, optional) = pairs(cfg, side);
        let store = Arc::new(CertStore::load(
            required,
            optional,
            Some(cfg.path("tls")),
            provider.clone(),
        )?);

        if !store.is_usable() {
            let names = |v: &[String]| v.join(", ");
            tracing::warn!(
                "tls key {} / cert {} could not be loaded; STARTTLS is not offered",
                names(&side.keys),
                names(&side.certs)
            );
        }

        let ca = side.ca.as_deref().map(|c| pem::resolve(cfg, c));
        let needs_strict = side.request_cert
            && (side.reject_unauthorized || !settings.require_authorized.is_empty());
        let lenient_roots = match &ca {
            Some(path) => Some(verify::roots_from_file(path)?),
            None => None,
        };
        let strict_roots = if needs_strict {
            verify::roots(ca.as_deref())?
        } else {
            None
        };

        let build = |roots, mandatory: bool| -> Result<Arc<ServerConfig>, TlsError> {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(versions(side.min_version))?;
            let builder = if side.request_cert {
                let policy: Arc<dyn ClientCertVerifier> =
                    Arc::new(ClientCertPolicy::new(roots, mandatory, &provider)?);
                builder.with_client_cert_verifier(policy)
            } else {
                builder.with_no_client_auth()
            };
            let mut config = builder.with_cert_resolver(store.clone());
            config.ignore_client_order = side.honor_cipher_order;
            Ok(Arc::new(config))
        };
        let lenient = build(lenient_roots.clone(), false)?;
        let strict = if needs_strict {
            build(strict_roots, true)?
        } else {
            lenient.clone()
        };

        Ok(InboundTls {
            store,
            lenient,
            strict,
            reject_unauthorized: side.reject_unauthorized,
            require_authorized: settings.require_authorized,
            no_starttls_ports: settings.no_starttls_ports,
            no_tls_hosts: settings.no_tls_hosts,
            warnings: settings.warnings,
        })
    }

    /// The certificate store (for reload checks and diagnostics).
    pub fn certs(&self) -> &Arc<CertStore> {
        &self.store
    }

    /// What tls.ini had that is not applied.
    pub fn warnings(&self) -> &[Diag] {
        &self.warnings
    }

    /// Whether a default certificate is loaded.
    pub fn is_usable(&self) -> bool {
        self.store.is_usable()
    }

    /// The server config for a connection on `local_port`, or `None` when no
    /// default certificate is loaded. The same config serves renewed
    /// certificates: nothing needs rebuilding after a reload.
    pub fn server_config(&self, local_port: u16) -> Option<Arc<ServerConfig>> {
        if !self.is_usable() {
            return None;
        }
        if self.reject_unauthorized || self.require_authorized.contains(&local_port) {
            Some(self.strict.clone())
        } else {
            Some(self.lenient.clone())
        }
    }

    /// Whether `ip` is listed in `[no_tls_hosts]`.
    pub fn is_no_tls_host(&self, ip: IpAddr) -> bool {
        let ip = Remote::new(ip, 0).canonical_ip();
        self.no_tls_hosts.iter().any(|net| net.contains(&ip))
    }

    /// Haraka's `advertise_starttls` conditions for this connection.
    pub fn should_advertise(&self, conn: &Connection) -> bool {
        self.is_usable()
            && !conn.tls.enabled
            && !self.is_no_tls_host(conn.remote.ip)
            && !self.no_starttls_ports.contains(&conn.local.port)
    }
}
