//! XCLIENT for haraka-rs (Haraka's `xclient` plugin, receive side).
//!
//! Owns: advertising `XCLIENT NAME ADDR PROTO HELO LOGIN` to trusted clients, and
//! handling the `XCLIENT` command they send (Postfix's XCLIENT protocol): replacing
//! the client's address, name, HELO, protocol and login, then asking the session to
//! restart (new UUID, lookup_rdns unless `NAME` was given, connect, a new greeting).
//!
//! Trusted clients are `127.0.0.1`, `::1` and the entries of `config/xclient.hosts`
//! (single addresses or CIDR ranges). It must never accept XCLIENT from anyone else,
//! inside a transaction, or without a valid `ADDR`; and it never sends XCLIENT
//! upstream (queue/smtp_forward does that).

mod config;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Watched};
use haraka_plugin_api::{
    ConnAction, Connection, Hello, HelloVerb, Hooks, Msg, Outcome, Plugin, PluginError, PluginInit,
    Register,
};
use haraka_smtp::XclientAttrs;
use ipnet::IpNet;

/// The EHLO keyword line advertised to trusted clients.
pub const CAPABILITY: &str = "XCLIENT NAME ADDR PROTO HELO LOGIN";

pub use config::{HOSTS, HOSTS_FILE, LAYOUT, XCLIENT_INI};

/// Create the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(
        init.name,
        Xclient::new(init.config)?,
    ))
}

/// The xclient plugin.
pub struct Xclient {
    hosts: Watched<Vec<IpNet>>,
}

impl Xclient {
    /// Load `xclient.hosts` from `cfg`; the file is re-read when it changes.
    pub fn new(cfg: &ConfigDir) -> Result<Xclient, ConfigErrors> {
        let cfg = cfg.clone();
        Ok(Xclient {
            hosts: Watched::with_paths(move || load_hosts(&cfg))?,
        })
    }

    /// Look for changes of `xclient.hosts` at most once per `interval` (default 1 s).
    pub fn with_reload_interval(self, interval: Duration) -> Xclient {
        Xclient {
            hosts: self.hosts.with_interval(interval),
        }
    }

    /// Whether `ip` may use XCLIENT (IPv4-mapped IPv6 counts as IPv4).
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let ip = haraka_smtp::canonical_ip(ip);
        ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
            || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
            || self.hosts.get().iter().any(|net| net.contains(&ip))
    }

    fn capabilities(&self, conn: &mut Connection) -> Outcome {
        if self.allowed(conn.remote.ip) {
            conn.capabilities.push(CAPABILITY.to_owned());
        }
        Outcome::cont()
    }

    fn command(&self, conn: &mut Connection, verb: &str, rest: &str) -> Outcome {
        // Haraka compares the verb case-sensitively: `xclient` is an unknown command.
        if verb != "XCLIENT" {
            return Outcome::cont();
        }
        if conn.transaction.is_some() {
            return Outcome::deny(Msg::dsn(503, "5.5.0", "Mail transaction in progress"));
        }
        if !self.allowed(conn.remote.ip) {
            tracing::warn!(uuid = %conn.uuid, ip = %conn.remote.ip, "XCLIENT refused: client not in xclient.hosts");
            return Outcome::deny(Msg::dsn(550, "5.5.0", "Not authorized"));
        }
        let (args, ignored) = XclientAttrs::parse(rest);
        for why in &ignored {
            tracing::warn!(uuid = %conn.uuid, "XCLIENT argument ignored: {why}");
        }
        let Some(addr) = args.addr else {
            return Outcome::deny(Msg::dsn(501, "5.5.4", "No valid IP address found"));
        };
        tracing::info!(uuid = %conn.uuid, from = %conn.remote.ip, to = %addr, "XCLIENT accepted");
        apply(conn, addr, args);
        Outcome::accept()
    }
}

/// Replace the client's attributes and ask the session to start over.
fn apply(conn: &mut Connection, addr: IpAddr, args: XclientAttrs) {
    conn.transaction = None;
    conn.set_connection_relaying(false);
    conn.remote.ip = addr;
    if let Some(port) = args.port {
        conn.remote.port = port;
    }
    conn.remote.host = args.name;
    let esmtp = args.proto.as_deref() == Some("esmtp");
    let verb = match (&args.proto, &conn.hello) {
        (Some(_), _) if esmtp => HelloVerb::Ehlo,
        (Some(_), _) => HelloVerb::Helo,
        (None, Some(previous)) => previous.verb,
        (None, None) => HelloVerb::Helo,
    };
    conn.hello = args.helo.map(|host| Hello { verb, host });
    conn.esmtp = esmtp;
    conn.xclient_proto = args.proto;
    conn.xclient_login = args.login;
    if let Some(ip) = args.destaddr {
        conn.local.ip = ip;
    }
    if let Some(port) = args.destport {
        conn.local.port = port;
    }
    conn.notes.insert("xclient".to_owned(), true.into());
    conn.request(ConnAction::Restart);
}

/// `xclient.hosts` (over Haraka's shipped `127.0.0.1`): one address or CIDR range
/// per line; bad lines are warnings naming file:line.
fn load_hosts(cfg: &ConfigDir) -> Result<(Vec<IpNet>, Vec<PathBuf>), ConfigErrors> {
    let mut nets = Vec::new();
    for entry in cfg.plugin_list_entries(&HOSTS) {
        match haraka_config::parse_ip_net(entry.text()) {
            Some(net) => nets.push(net),
            None => tracing::warn!(
                "{}",
                entry.diag(format!(
                    "not an IP address or CIDR range, ignored: {}",
                    entry.text()
                ))
            ),
        }
    }
    Ok((nets, vec![cfg.path(HOSTS_FILE)]))
}

impl Register for Xclient {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.capabilities(Self::capabilities);
        hooks.unrecognized_command(Self::command);
    }
}
