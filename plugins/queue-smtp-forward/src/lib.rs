//! Haraka's `queue/smtp_forward` for haraka-rs.
//!
//! Owns: `smtp_forward.ini` (every key of Haraka 3.0.0 plus `connect_timeout`,
//! `timeout`, `max_connections`), the `queue` / `queue_outbound` hooks that forward a
//! received message to the backend, the `mail` (`check_sender`) and `rcpt`
//! (`check_recipient`, split-route deferral) hooks, and `get_mx` for Haraka's
//! outbound queue. The SMTP dialogue itself is `haraka-client`.
//!
//! It must never answer 250 before the backend accepted the message, never keep a
//! client waiting past its own timeouts, and never let a backend failure become
//! anything but a 4xx (or the backend's own 5xx).

mod compat;
mod config;
mod forward;
mod host_pool;
mod routing;
mod warm;

use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::{
    Address, Connection, Hooks, Outcome, Plugin, PluginError, PluginInit, Register,
};

pub use compat::xclient_forward;
pub use config::{Auth, Config, Route, SMTP_FORWARD_INI, Selector};
pub use forward::{Forwarder, outcome_for, xclient_attrs};
pub use routing::{note_path, parse_next_hop, route_for};

/// Haraka's name of the plugin.
pub const NAME: &str = "queue/smtp_forward";

/// The plugin.
#[derive(Debug)]
pub struct SmtpForward {
    cfg: Config,
    forwarder: Forwarder,
    /// The whole forward must end before the hook runner's plugin timeout.
    deadline: Option<Duration>,
}

/// Create the plugin from `smtp_forward.ini` (Haraka's shipped defaults underneath,
/// the flat layout's `xclient.ini` `forward` / `destination` compatibility aliases
/// applied).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    let ini = init.config.plugin_ini(&SMTP_FORWARD_INI)?;
    let cfg = Config::from_ini(&ini, xclient_forward(init.config))?;
    let tls = match haraka_tls::system_client_config() {
        Ok(c) => Some(c),
        Err(e) => {
            if cfg.main.enable_tls || cfg.domains.values().any(|r| r.enable_tls) {
                tracing::warn!("smtp_forward: {e}; STARTTLS to the backend will fail");
            }
            None
        }
    };
    let mut plugin = SmtpForward::new(cfg, tls);
    plugin.deadline = plugin_deadline(init);
    Ok(haraka_plugin_api::plugin(init.name, plugin))
}

/// The runner's timeout for this plugin ([`haraka_config::ConfigDir::plugin_timeout`]),
/// less a second; `None` when there is none.
fn plugin_deadline(init: &PluginInit<'_>) -> Option<Duration> {
    let secs = init.config.plugin_timeout(init.name)?.as_secs_f64();
    Some(Duration::from_secs_f64((secs - 1.0).max(secs / 2.0)))
}

impl SmtpForward {
    /// A plugin from a ready configuration; `tls` verifies backend certificates.
    pub fn new(cfg: Config, tls: Option<Arc<rustls::ClientConfig>>) -> SmtpForward {
        let forwarder = Forwarder::new(&cfg, tls);
        SmtpForward {
            cfg,
            forwarder,
            deadline: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// From the `rcpt_ok` hook: start connecting to the backend for this
    /// transaction if it is going to be forwarded (see `warm.rs`).
    pub fn prepare(&self, conn: &Connection) {
        let Some(txn) = conn.transaction.as_ref() else {
            return;
        };
        let route = route_for(&self.cfg, txn);
        if routing::forward_enabled(&self.cfg, conn, route) {
            self.forwarder.prepare(&self.cfg, route, conn);
        }
    }

    /// Backend connections prepared for transactions and not yet used or closed.
    pub fn prepared_connections(&self) -> usize {
        self.forwarder.prepared()
    }

    /// `queue_forward`.
    pub async fn queue_forward(&self, conn: &Connection) -> Outcome {
        let Some(txn) = conn.transaction.as_ref() else {
            return Outcome::cont();
        };
        let route = route_for(&self.cfg, txn);
        if !routing::forward_enabled(&self.cfg, conn, route) {
            return Outcome::cont();
        }
        let work = self.forwarder.forward(&self.cfg, route, conn);
        match self.deadline {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                tracing::warn!(uuid = %txn.uuid, "smtp_forward: no answer from the backend in {limit:?}");
                Outcome::deny_soft("4.4.2 Upstream server timed out, try again later")
            }),
        }
    }
}

impl Register for SmtpForward {
    fn register(&self, hooks: &mut Hooks<Self>) {
        if self.cfg.check_sender {
            hooks.mail(routing::check_sender);
        }
        if self.cfg.check_recipient {
            hooks.rcpt(routing::check_recipient);
        }
        hooks.rcpt_ok(Self::rcpt_ok);
        hooks.queue(Self::queue);
        if self.cfg.enable_outbound {
            hooks.queue_outbound(Self::queue);
        }
        hooks.get_mx(routing::get_mx);
        hooks.disconnect(Self::disconnect);
    }
}

impl SmtpForward {
    fn rcpt_ok(&self, conn: &mut Connection, _: &Address) -> Outcome {
        self.prepare(conn);
        Outcome::cont()
    }

    async fn queue(&self, conn: &mut Connection) -> Outcome {
        self.queue_forward(conn).await
    }

    fn disconnect(&self, conn: &mut Connection) -> Outcome {
        self.forwarder.forget(conn);
        Outcome::cont()
    }
}
