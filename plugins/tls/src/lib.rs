//! STARTTLS for haraka-rs (Haraka's `tls` plugin), and the TLS settings of
//! `config/tls.ini` for everything else that speaks TLS.
//!
//! Owns: reading `tls.ini` (keys supported, OpenSSL-only keys warned about), loading
//! key/cert pairs (separate files or one combined PEM, relative to the config dir
//! or absolute), the SNI certificates of `config/tls/` (by CN and DNS SAN), reloading
//! all of them when the files change on disk, the rustls server configs
//! ([`InboundTls`]) and client configs ([`OutboundTls`]), and the two hooks that
//! offer and start STARTTLS.
//!
//! Must never: do socket IO or the handshake itself (the server does that), panic
//! on file content, or block a handshake for more than one look at the files per
//! second.
//!
//! # The STARTTLS contract with the server
//!
//! On `STARTTLS` the plugin answers `220 Go ahead.` and requests
//! [`ConnAction::StartTls`]`(`[`TlsUpgrade`]`(x))` where `x` is an
//! `Arc<rustls::ServerConfig>` coerced to `Arc<dyn Any + Send + Sync>`. The server
//! recovers it with `x.downcast::<rustls::ServerConfig>()` (or
//! `x.downcast_ref::<rustls::ServerConfig>()`), discards any plaintext the client
//! pipelined after the command, does the handshake (within
//! [`handshake_timeout`]) and fills `conn.tls`. The config's certificate resolver
//! picks up renewed certificate files by itself, so the server never rebuilds it.
//!
//! A client certificate a handshake accepted is only known to chain to the
//! configured CA when [`InboundTls::server_config`] returned the strict config
//! (`rejectUnauthorized=true`, or the port is in `requireAuthorized[]`); otherwise
//! any certificate is accepted, as Node does with `rejectUnauthorized=false`.

mod client;
mod names;
mod pem;
mod server;
mod settings;
mod store;
mod verify;

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::{
    BoxFuture, ConfigDir, ConfigErrors, ConnAction, Connection, Hook, HookArgs, Msg, Outcome,
    Plugin, PluginError, PluginInit, Registration, TlsUpgrade, ready,
};

pub use client::{OutboundTls, outbound_client_config};
pub use server::InboundTls;
pub use settings::{MinVersion, SideSettings, TlsSettings};
pub use store::{CertStore, RELOAD_INTERVAL};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("tls {what} {path} could not be loaded: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tls file {path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("tls key {key} does not match the certificate in {cert}")]
    Mismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "verifying TLS peers (rejectUnauthorized / requireAuthorized) needs CA certificates: \
         set ca= in tls.ini (no system CA bundle was found)"
    )]
    NoRoots,
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls: {0}")]
    Other(String),
}

impl From<TlsError> for PluginError {
    fn from(e: TlsError) -> PluginError {
        match e {
            TlsError::Config(c) => PluginError::Config(c),
            other => PluginError::Other(other.to_string()),
        }
    }
}

/// The STARTTLS handshake deadline: the tls plugin's timeout minus one second
/// (`config/tls.timeout`, else `config/plugin_timeout`, else 30 s → 29 s).
/// `None` means no deadline (a timeout of 1 s or less, as in Haraka).
pub fn handshake_timeout(cfg: &ConfigDir) -> Option<Duration> {
    let parse = |name: &str| {
        cfg.value(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let timeout = parse("tls.timeout")
        .or_else(|| parse("plugin_timeout"))
        .unwrap_or(30.0);
    let secs = timeout - 1.0;
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The `tls` plugin.
#[derive(Debug)]
pub struct TlsPlugin {
    inbound: InboundTls,
}

/// Creates the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(TlsPlugin::new(init.config)?))
}

impl TlsPlugin {
    /// Load `tls.ini` and the certificates; warnings are logged here.
    pub fn new(cfg: &ConfigDir) -> Result<TlsPlugin, TlsError> {
        let inbound = InboundTls::load(cfg)?;
        for w in inbound.warnings() {
            tracing::warn!("{w}");
        }
        Ok(TlsPlugin { inbound })
    }

    /// The inbound TLS state (also usable for an implicit-TLS listener).
    pub fn inbound(&self) -> &InboundTls {
        &self.inbound
    }

    fn advertise(&self, conn: &mut Connection) -> Outcome {
        self.inbound.certs().maybe_check();
        if self.inbound.should_advertise(conn) {
            conn.capabilities.push("STARTTLS".to_owned());
            conn.tls.advertised = true;
        }
        Outcome::cont()
    }

    fn starttls(&self, conn: &mut Connection, verb: &str, rest: &str) -> Outcome {
        if !verb.eq_ignore_ascii_case("STARTTLS") || !conn.tls.advertised || conn.tls.enabled {
            return Outcome::cont();
        }
        let Some(config) = self.inbound.server_config(conn.local.port) else {
            return Outcome::cont();
        };
        if !rest.trim().is_empty() {
            tracing::debug!(uuid = %conn.uuid, "STARTTLS argument ignored");
        }
        let config: Arc<dyn Any + Send + Sync> = config;
        conn.request(ConnAction::StartTls(TlsUpgrade(config)));
        Outcome::accept_with(Msg {
            code: Some(220),
            lines: vec!["Go ahead.".to_owned()],
        })
    }
}

impl Plugin for TlsPlugin {
    fn name(&self) -> &str {
        "tls"
    }

    fn hooks(&self) -> Vec<Registration> {
        vec![
            Registration::new(Hook::Capabilities),
            Registration::new(Hook::UnrecognizedCommand),
        ]
    }

    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        args: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        let outcome = match (hook, args) {
            (Hook::Capabilities, _) => self.advertise(conn),
            (Hook::UnrecognizedCommand, HookArgs::Unrecognized { verb, rest }) => {
                self.starttls(conn, verb, rest)
            }
            _ => Outcome::cont(),
        };
        ready(outcome)
    }
}
