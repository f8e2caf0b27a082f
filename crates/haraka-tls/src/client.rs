//! The outbound side: rustls [`ClientConfig`]s for STARTTLS to other servers
//! (outbound delivery to MX hosts, smtp_forward to a backend).

use std::sync::Arc;

use haraka_config::ConfigDir;
use rustls::ClientConfig;
use rustls::client::ResolvesClientCert;

use crate::TlsError;
use crate::pem;
use crate::server::{pairs, provider, versions};
use crate::settings::{MinVersion, SideSettings, TlsSettings};
use crate::store::CertStore;
use crate::verify::{self, AcceptAnyServerCert};

/// Outbound STARTTLS from `tls.ini` `[outbound]` (over the inheritable `[main]`
/// keys): what outbound delivery needs to decide whether and how to STARTTLS.
/// [`Default`] has no client configuration: STARTTLS is never tried, and mail to a
/// `force_tls_hosts` host cannot be delivered.
#[derive(Debug, Clone, Default)]
pub struct OutboundTls {
    /// For opportunistic STARTTLS (`None`: never STARTTLS unless required). With
    /// `rejectUnauthorized=false` (Haraka's default) any server certificate is
    /// accepted; with `true` it must verify against `ca` (or the system CA bundle)
    /// and match the server name. [`OutboundTls::load`] always sets it.
    pub config: Option<Arc<ClientConfig>>,
    /// Always verifying (for `force_tls_hosts`); `None` when no trust anchors are
    /// available (`ca` unset and no system CA bundle found).
    pub verified: Option<Arc<ClientConfig>>,
    /// `[outbound] force_tls_hosts[]`: TLS required and verified for these MX hosts
    /// or recipient domains.
    pub force_tls_hosts: Vec<String>,
    /// `[outbound] no_tls_hosts[]`: never STARTTLS to these hosts, addresses (CIDR
    /// allowed) or domains.
    pub no_tls_hosts: Vec<String>,
}

impl OutboundTls {
    /// Read `tls.ini` and build the client configs. Our key/cert (if loadable) is
    /// offered when a server asks for a client certificate, as Haraka's outbound does.
    /// What tls.ini had that is not applied is not logged here (the `tls` plugin logs
    /// it once at start-up).
    pub fn load(cfg: &ConfigDir) -> Result<OutboundTls, TlsError> {
        OutboundTls::from_settings(cfg, TlsSettings::load(cfg)?)
    }

    /// Build from already-read settings.
    pub fn from_settings(cfg: &ConfigDir, settings: TlsSettings) -> Result<OutboundTls, TlsError> {
        let (config, verified) = client_configs(cfg, &settings.outbound)?;
        Ok(OutboundTls {
            config: Some(config),
            verified,
            force_tls_hosts: settings.force_tls_hosts,
            no_tls_hosts: settings.outbound_no_tls_hosts,
        })
    }
}

/// The client config for outbound STARTTLS (see [`OutboundTls::config`]).
pub fn outbound_client_config(cfg: &ConfigDir) -> Result<Arc<ClientConfig>, TlsError> {
    Ok(client_configs(cfg, &TlsSettings::load(cfg)?.outbound)?.0)
}

/// A client config that verifies the server against the system's CA bundle
/// (`$SSL_CERT_FILE`, else the distribution's), offering no client certificate:
/// for STARTTLS to a configured next hop such as smtp_forward's backend.
pub fn system_client_config() -> Result<Arc<ClientConfig>, TlsError> {
    let roots = verify::system_roots().ok_or(TlsError::NoSystemRoots)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(MinVersion::Tls12))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The opportunistic and the verifying client config of `side`.
type ClientConfigs = (Arc<ClientConfig>, Option<Arc<ClientConfig>>);

fn client_configs(cfg: &ConfigDir, side: &SideSettings) -> Result<ClientConfigs, TlsError> {
    let provider = provider();
    let (required, optional) = pairs(cfg, side);
    let store = Arc::new(CertStore::load(required, optional, None, provider.clone())?);
    let client_cert: Option<Arc<dyn ResolvesClientCert>> =
        if store.is_usable() { Some(store) } else { None };

    let ca = side.ca.as_deref().map(|c| pem::resolve(cfg, c));
    let roots = verify::roots(ca.as_deref())?;

    let base = || {
        ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions(side.min_version))
    };
    let finish = |builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>| {
        match &client_cert {
            Some(resolver) => builder.with_client_cert_resolver(resolver.clone()),
            None => builder.with_no_client_auth(),
        }
    };

    let verified = match &roots {
        Some(roots) => Some(Arc::new(finish(
            base()?.with_root_certificates(Arc::new(roots.clone())),
        ))),
        None => None,
    };
    let config = if side.reject_unauthorized {
        verified.clone().ok_or(TlsError::NoRoots)?
    } else {
        let any = Arc::new(AcceptAnyServerCert::new(&provider));
        Arc::new(finish(
            base()?.dangerous().with_custom_certificate_verifier(any),
        ))
    };
    Ok((config, verified))
}
