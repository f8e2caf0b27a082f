//! The relay plugin's files: `relay.ini`, `relay_acl_allow` and
//! `relay_dest_domains.ini`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use haraka_config::{ConfigDir, ConfigErrors, Ini, IniSpec, PluginLayout};
use haraka_plugin_api::MxHost;
use ipnet::IpNet;
use serde_json::Value;

/// `relay.ini`: Haraka 3.0.0 `plugins/relay.js`'s booleans, and `[relay]
/// force_route` read as `force_routing` (a compatibility alias).
pub const RELAY_INI: IniSpec = IniSpec {
    name: "relay.ini",
    booleans: &[
        "+relay.acl",
        "+relay.force_routing",
        "-relay.all",
        "-relay.dest_domains",
    ],
    shipped: None,
    fixup: Some(force_route),
};
pub const ACL_FILE: &str = "relay_acl_allow";
/// `relay_acl_allow` directly in `ROOT` marks the flat layout.
pub const LAYOUT: PluginLayout = PluginLayout {
    flat_markers: &[ACL_FILE],
    switch: None,
};
pub const DEST_INI: &str = "relay_dest_domains.ini";

/// `relay.ini [relay]`, with Haraka's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    /// `acl` (default true): clients in `relay_acl_allow` may relay.
    pub acl: bool,
    /// `force_routing` (default true; `force_route` accepted): `get_mx` answers
    /// with the `nexthop` of `relay_dest_domains.ini`.
    pub force_routing: bool,
    /// `dest_domains` (default false): recipients are checked against
    /// `relay_dest_domains.ini`.
    pub dest_domains: bool,
    /// `all` (default false): every recipient is accepted (an open relay).
    pub all: bool,
}

impl Default for Flags {
    fn default() -> Flags {
        Flags {
            acl: true,
            force_routing: true,
            dest_domains: false,
            all: false,
        }
    }
}

/// One `[domains]` entry of `relay_dest_domains.ini`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// `accept`, `continue`, `deny` or anything else (refused).
    pub action: Option<String>,
    /// `host` or `host:port` to deliver to instead of the MX.
    pub nexthop: Option<String>,
}

/// Everything the hooks decide with.
#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    pub flags: Flags,
    pub acl: Vec<IpNet>,
    /// `None` when there is no `[domains]` section (or it is not needed).
    pub domains: Option<HashMap<String, Route>>,
}

impl RelayConfig {
    /// Whether `ip` is in `relay_acl_allow` (IPv4-mapped IPv6 counts as IPv4).
    pub fn acl_allows(&self, ip: IpAddr) -> bool {
        let ip = haraka_smtp::canonical_ip(ip);
        self.acl.iter().any(|net| net.contains(&ip))
    }
}

/// Read the three files and say which to watch. Bad entries are warnings
/// (file:line); only an unreadable ini file is an error.
pub(crate) fn load(cfg: &ConfigDir) -> Result<(RelayConfig, Vec<PathBuf>), ConfigErrors> {
    let ini = cfg.plugin_ini(&RELAY_INI)?;
    let flags = flags(&ini);
    let acl = acl(cfg);
    let domains = if flags.force_routing || flags.dest_domains {
        dest_domains(&cfg.ini(DEST_INI)?)
    } else {
        None
    };
    let files = vec![ini.file.clone(), cfg.path(ACL_FILE), cfg.path(DEST_INI)];
    Ok((
        RelayConfig {
            flags,
            acl,
            domains,
        },
        files,
    ))
}

/// `[relay]` booleans; keys elsewhere or unknown are warned about.
fn flags(ini: &Ini) -> Flags {
    ini.warn_unknown(
        &[("relay", &["acl", "force_routing", "dest_domains", "all"])],
        false,
    );
    let d = Flags::default();
    Flags {
        acl: ini.get_bool("relay", "acl", d.acl),
        force_routing: ini.get_bool("relay", "force_routing", d.force_routing),
        dest_domains: ini.get_bool("relay", "dest_domains", d.dest_domains),
        all: ini.get_bool("relay", "all", d.all),
    }
}

/// `[relay] force_route` is `force_routing` when that is not set.
fn force_route(cfg: &ConfigDir, ini: &mut Ini) {
    let Some(v) = ini.entry("relay", "force_route").cloned() else {
        return;
    };
    let relay = ini.section_mut("relay");
    relay.remove("force_route");
    if relay.get("force_routing").is_some() {
        tracing::warn!(
            "{}:{}: force_route ignored, force_routing is set",
            v.file.display(),
            v.line
        );
    } else {
        relay.set("force_routing", v.clone());
        cfg.alias(format!(
            "using {}:{} [relay] force_route as force_routing",
            v.file.display(),
            v.line
        ));
    }
}

/// `relay_acl_allow`: addresses and CIDR ranges; an invalid entry is a warning.
fn acl(cfg: &ConfigDir) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for entry in cfg.list_entries(ACL_FILE) {
        match parse_acl_entry(entry.text()) {
            Some(net) => nets.push(net),
            None => tracing::warn!(
                "{}",
                entry.diag(format!(
                    "invalid entry in {ACL_FILE}, ignored: {}",
                    entry.text()
                ))
            ),
        }
    }
    nets
}

/// One `relay_acl_allow` entry (see [`haraka_config::parse_ip_net`]).
pub fn parse_acl_entry(entry: &str) -> Option<IpNet> {
    haraka_config::parse_ip_net(entry)
}

/// `[domains]`: domain (any case) = a JSON object with `action` and/or `nexthop`.
/// A value that is not a JSON object is a warning and becomes a route with neither.
fn dest_domains(ini: &Ini) -> Option<HashMap<String, Route>> {
    let section = ini.section("domains")?;
    let mut routes = HashMap::new();
    for (key, value) in &section.entries {
        let text = value.value.as_deref().unwrap_or("");
        let route = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(obj)) => Route {
                action: obj.get("action").and_then(Value::as_str).map(str::to_owned),
                nexthop: obj
                    .get("nexthop")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            },
            _ => {
                tracing::warn!(
                    "{}:{}: {key}: not a JSON object, the entry refuses all mail and routes nothing: {text}",
                    value.file.display(),
                    value.line
                );
                Route::default()
            }
        };
        routes.insert(key.to_ascii_lowercase(), route);
    }
    Some(routes)
}

/// A `nexthop`: `host`, `host:port`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address.
pub fn parse_nexthop(text: &str) -> Option<MxHost> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else if text.matches(':').count() > 1 {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let port = match port {
        None => 25,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok().filter(|p| *p != 0)?
        }
        Some(_) => return None,
    };
    Some(MxHost {
        exchange: host.to_owned(),
        priority: 0,
        port,
        ip: host.parse().ok(),
    })
}
