//! STARTTLS for haraka-rs (Haraka's `tls` plugin): offers `STARTTLS` in the EHLO
//! reply and answers the command. Everything else about TLS (tls.ini, the
//! certificates and their reload, the rustls configs) is `haraka_tls`'s.
//!
//! Owns: the `capabilities` and `unrecognized_command` hooks, Haraka's rules for
//! offering STARTTLS, and the handshake deadline taken from the plugin's timeout.
//!
//! Must never: do socket IO or the handshake itself (the server does that), or
//! load certificates other than through `haraka_tls`.
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

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::{
    ConfigDir, ConnAction, Connection, Hooks, Msg, Outcome, Plugin, PluginError, PluginInit,
    Register, TlsUpgrade,
};
use haraka_tls::{InboundTls, TlsError};

fn plugin_error(e: TlsError) -> PluginError {
    match e {
        TlsError::Config(c) => PluginError::Config(c),
        other => PluginError::Other(other.to_string()),
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
    let plugin = TlsPlugin::new(init.config).map_err(plugin_error)?;
    Ok(haraka_plugin_api::plugin(init.name, plugin))
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

    /// The inbound TLS state the plugin offers STARTTLS with.
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

impl Register for TlsPlugin {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.capabilities(Self::advertise);
        hooks.unrecognized_command(Self::starttls);
    }
}
