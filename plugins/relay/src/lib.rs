//! Haraka's `relay` plugin for haraka-rs.
//!
//! Owns who may relay and where relayed mail goes: the client ACL of
//! `relay_acl_allow` (checked at `connect_init`, IPv4 and IPv6 CIDR ranges), the
//! per-domain rules of `relay_dest_domains.ini` (`dest_domains` at `rcpt`,
//! `force_routing` answering the outbound `get_mx` hook with a `nexthop`), and the
//! open-relay switch `all`. Which hooks are registered follows `relay.ini [relay]`
//! at start-up, as in Haraka; the files are re-read when they change.
//!
//! It must never let a client relay because of how an address is written: decisions
//! use only the client's address (IPv4-mapped IPv6 as IPv4) and the lower-cased
//! recipient domain after the last `@`, compared whole.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Watched};
use haraka_plugin_api::{
    Address, Connection, Hooks, OutboundMail, Outcome, Plugin, PluginError, PluginInit, Register,
};

use crate::config::{Flags, RelayConfig};

/// The reply when a recipient's domain may not be relayed to.
pub const NOT_ALLOWED: &str = "You are not allowed to relay";
/// The reply for a `relay_dest_domains.ini` entry with an unknown action.
pub const NOT_ACCEPTED: &str = "Mail for that recipient is not accepted here.";

/// Create the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(
        init.name,
        Relay::new(init.name, init.config)?,
    ))
}

/// The relay plugin.
pub struct Relay {
    name: String,
    /// The flags at start-up: they decide the registered hooks.
    registered: Flags,
    cfg: Watched<RelayConfig>,
}

impl Relay {
    /// Read `relay.ini`, `relay_acl_allow` and `relay_dest_domains.ini` from `cfg`;
    /// they are re-read when they change.
    pub fn new(name: &str, cfg: &ConfigDir) -> Result<Relay, ConfigErrors> {
        let dir = cfg.clone();
        let cfg = Watched::with_paths(move || config::load(&dir))?;
        Ok(Relay {
            name: name.to_owned(),
            registered: cfg.get().flags,
            cfg,
        })
    }

    /// Look for changed files at most once per `interval` (default 1 s).
    pub fn with_reload_interval(self, interval: Duration) -> Relay {
        Relay {
            cfg: self.cfg.with_interval(interval),
            ..self
        }
    }

    /// The configuration as it is now.
    pub fn config(&self) -> Arc<RelayConfig> {
        self.cfg.get()
    }

    /// `connect_init`: clients in the ACL relay for the whole connection.
    fn acl(&self, conn: &mut Connection) -> Outcome {
        let cfg = self.cfg.get();
        if !cfg.flags.acl {
            return Outcome::cont();
        }
        if !cfg.acl_allows(conn.remote.ip) {
            conn.results.add(&self.name, "skip", "acl(unlisted)");
            return Outcome::cont();
        }
        conn.results.add(&self.name, "pass", "acl");
        conn.set_relaying(true);
        Outcome::accept()
    }

    /// `connect`: relaying clients skip the remaining `connect` plugins.
    fn pass_relaying(&self, conn: &mut Connection) -> Outcome {
        if conn.relaying() {
            Outcome::accept()
        } else {
            Outcome::cont()
        }
    }

    /// `rcpt`: `dest_domains`, then `all`.
    fn rcpt(&self, conn: &mut Connection, to: &Address) -> Outcome {
        let cfg = self.cfg.get();
        if self.registered.dest_domains {
            let out = self.dest_domains(&cfg, conn, to);
            if out != Outcome::cont() {
                return out;
            }
        }
        if self.registered.all && cfg.flags.all {
            conn.set_relaying(true);
            return Outcome::accept();
        }
        Outcome::cont()
    }

    fn dest_domains(&self, cfg: &RelayConfig, conn: &mut Connection, to: &Address) -> Outcome {
        if !cfg.flags.dest_domains {
            return Outcome::cont();
        }
        let relaying = conn.relaying();
        let name = &self.name;
        let Some(txn) = conn.transaction.as_mut() else {
            return Outcome::cont();
        };
        if relaying {
            txn.results.add(name, "skip", "relay_dest_domain(relay)");
            return Outcome::cont();
        }
        let Some(domains) = cfg.domains.as_ref() else {
            txn.results.add(name, "skip", "relay_dest_domain(config)");
            return Outcome::cont();
        };
        let route = to
            .host
            .as_deref()
            .and_then(|d| domains.get(&d.to_ascii_lowercase()));
        let Some(route) = route else {
            txn.results.add(name, "fail", "relay_dest_domain");
            return Outcome::deny(NOT_ALLOWED);
        };
        match route.action.as_deref() {
            Some(action @ ("accept" | "continue")) => {
                txn.results.add(name, "pass", "relay_dest_domain");
                conn.set_relaying(true);
                if action == "accept" {
                    Outcome::accept()
                } else {
                    Outcome::cont()
                }
            }
            Some("deny") => {
                txn.results.add(name, "fail", "relay_dest_domain");
                Outcome::deny(NOT_ALLOWED)
            }
            _ => {
                txn.results.add(name, "fail", "relay_dest_domain");
                Outcome::deny(NOT_ACCEPTED)
            }
        }
    }

    /// `get_mx`: the domain's `nexthop`, or the `any` entry's, instead of DNS.
    fn force_routing(&self, mail: &mut OutboundMail, domain: &str) -> Outcome {
        let cfg = self.cfg.get();
        if !cfg.flags.force_routing {
            return Outcome::cont();
        }
        let Some(domains) = cfg.domains.as_ref() else {
            return Outcome::cont();
        };
        let domain = domain.to_ascii_lowercase();
        let Some(route) = domains.get(&domain).or_else(|| domains.get("any")) else {
            return Outcome::cont();
        };
        let Some(nexthop) = route.nexthop.as_deref() else {
            return Outcome::cont();
        };
        let Some(mx) = config::parse_nexthop(nexthop) else {
            tracing::warn!(
                "relay_dest_domains.ini: invalid nexthop {nexthop:?} for {domain}, using MX"
            );
            return Outcome::cont();
        };
        tracing::debug!("using {nexthop} for {domain}");
        mail.mx = Some(vec![mx]);
        Outcome::accept_with(nexthop.trim())
    }
}

impl Register for Relay {
    fn register(&self, hooks: &mut Hooks<Self>) {
        let f = self.registered;
        if f.acl {
            hooks.connect_init(Self::acl);
            hooks.connect(Self::pass_relaying);
        }
        if f.force_routing {
            hooks.get_mx(Self::force_routing);
        }
        if f.dest_domains || f.all {
            hooks.rcpt(Self::rcpt);
        }
    }
}
