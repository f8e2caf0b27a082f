//! `smtp_forward.ini`: the typed configuration, with every default in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use haraka_client::AuthMechanism;
use haraka_config::IniSpec;
use haraka_plugin_api::{ConfigErrors, Diag, Ini};

/// `smtp_forward.ini`: Haraka's shipped copy underneath, the booleans of Haraka's
/// `plugins/queue/smtp_forward.js`, and the flat layout's `xclient.ini`
/// `destination` as `host`/`port`.
pub const SMTP_FORWARD_INI: IniSpec = IniSpec {
    name: "smtp_forward.ini",
    booleans: &[
        "-main.enable_tls",
        "-main.enable_outbound",
        "main.one_message_per_rcpt",
        "-main.check_sender",
        "-main.check_recipient",
        "*.enable_tls",
        "*.enable_outbound",
    ],
    shipped: Some("host=localhost\nport=2555\n"),
    fixup: Some(crate::compat::xclient_destination),
};

/// Keys of a per-domain section.
const ROUTE_KEYS: &[&str] = &[
    "host",
    "port",
    "enable_tls",
    "enable_outbound",
    "auth_type",
    "auth_user",
    "auth_pass",
    "queue",
    "bind",
    "bind_helo",
    "using_lmtp",
];

/// Keys only `[main]` has.
const MAIN_ONLY_KEYS: &[&str] = &[
    "one_message_per_rcpt",
    "check_sender",
    "check_recipient",
    "domain_selector",
    "forwarding_host_pool",
    "dead_forwarding_host_retry_secs",
    "connect_timeout",
    "timeout",
    "max_connections",
    "xclient_refused",
];

/// Connect timeout when `connect_timeout` is unset (below the 30 s plugin timeout,
/// so a dead backend is reported before the runner gives up on the plugin).
pub const DEFAULT_CONNECT_TIMEOUT: f64 = 10.0;
/// Per-reply timeout and pool idle time when `timeout` is unset.
pub const DEFAULT_TIMEOUT: f64 = 25.0;
/// `max_connections` default (Haraka's documented value).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1000;

/// AUTH to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub mechanism: AuthMechanism,
    pub user: String,
    pub pass: String,
}

/// `[main]` or a `[domain]` section, as written (nothing inherited).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// `main` or the lower-case domain.
    pub name: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub enable_tls: bool,
    /// Only when written in this section.
    pub enable_outbound: Option<bool>,
    pub auth: Option<Auth>,
    pub queue: Option<String>,
    pub bind: Option<String>,
    pub bind_helo: Option<String>,
    pub using_lmtp: bool,
}

/// Which address picks the per-domain section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    RcptTo,
    MailFrom,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub main: Route,
    pub domains: BTreeMap<String, Route>,
    pub selector: Selector,
    pub one_message_per_rcpt: bool,
    pub check_sender: bool,
    pub check_recipient: bool,
    /// `[main] enable_outbound`: also forward relayed mail (`queue_outbound`).
    pub enable_outbound: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_connections: usize,
    /// `forwarding_host_pool`: used instead of `[main]` host/port when set.
    pub host_pool: Vec<(String, u16)>,
    pub dead_host_retry: Duration,
    /// Send XCLIENT when the backend offers it (the flat layout's `xclient.ini forward`).
    pub forward_xclient: bool,
    /// `xclient_refused=continue`: a backend that offers XCLIENT and refuses it
    /// still gets the message (under the proxy's own address). Default: defer.
    pub xclient_refused_continue: bool,
}

impl Config {
    /// Read the merged `smtp_forward.ini`; every invalid value is reported together.
    pub fn from_ini(ini: &Ini, forward_xclient: bool) -> Result<Config, ConfigErrors> {
        let mut diags = Vec::new();
        let main = route(ini, "main", &mut diags);
        let mut domains = BTreeMap::new();
        for s in ini.sections.iter().filter(|s| s.name != "main") {
            domains.insert(s.name.clone(), route(ini, &s.name, &mut diags));
        }
        let selector = match ini.get("main", "domain_selector").map(str::trim) {
            None | Some("rcpt_to") => Selector::RcptTo,
            Some("mail_from") => Selector::MailFrom,
            Some(_) => {
                push_invalid(
                    &mut diags,
                    ini,
                    "main",
                    "domain_selector",
                    "rcpt_to or mail_from",
                );
                Selector::RcptTo
            }
        };
        let secs = |key: &str, default: f64, diags: &mut Vec<Diag>| {
            let v = ini
                .get("main", key)
                .map_or(Some(default), |v| v.trim().parse().ok());
            match v.filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 86_400.0) {
                Some(s) => Duration::from_secs_f64(s),
                None => {
                    push_invalid(diags, ini, "main", key, "a positive number of seconds");
                    Duration::from_secs_f64(default)
                }
            }
        };
        let connect_timeout = secs("connect_timeout", DEFAULT_CONNECT_TIMEOUT, &mut diags);
        let timeout = secs("timeout", DEFAULT_TIMEOUT, &mut diags);
        let dead_host_retry = secs("dead_forwarding_host_retry_secs", 10.0, &mut diags);
        let max_connections = match ini.get("main", "max_connections") {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    push_invalid(
                        &mut diags,
                        ini,
                        "main",
                        "max_connections",
                        "a positive integer",
                    );
                    DEFAULT_MAX_CONNECTIONS
                }
            },
        };
        let host_pool = host_pool(ini, &mut diags);
        let xclient_refused_continue = match ini.get("main", "xclient_refused").map(str::trim) {
            None | Some("defer") => false,
            Some("continue") => true,
            Some(_) => {
                push_invalid(
                    &mut diags,
                    ini,
                    "main",
                    "xclient_refused",
                    "defer or continue",
                );
                false
            }
        };
        for d in ini.unknown_keys(&known_keys(ini), false) {
            tracing::warn!("{d}");
        }
        if !diags.is_empty() {
            return Err(ConfigErrors(diags));
        }
        Ok(Config {
            main,
            domains,
            selector,
            one_message_per_rcpt: ini.get_bool("main", "one_message_per_rcpt", false),
            check_sender: ini.get_bool("main", "check_sender", false),
            check_recipient: ini.get_bool("main", "check_recipient", false),
            enable_outbound: ini.get_bool("main", "enable_outbound", false),
            connect_timeout,
            timeout,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
            host_pool,
            dead_host_retry,
            forward_xclient,
            xclient_refused_continue,
        })
    }

    /// The section for `domain` (already lower-case), if there is one.
    pub fn domain(&self, domain: &str) -> Option<&Route> {
        self.domains.get(domain)
    }

    /// `is_outbound_enabled`: the route's own flag, else `[main]`'s.
    pub fn outbound_enabled(&self, route: &Route) -> bool {
        route.enable_outbound.unwrap_or(self.enable_outbound)
    }

    /// The route whose connection settings (host, port, TLS, AUTH) are used: a
    /// section with its own `host` is a complete destination; a section without one
    /// only carries flags and forwards like `[main]`.
    pub fn connection_route<'a>(&'a self, route: &'a Route) -> &'a Route {
        if route.host.is_some() {
            route
        } else {
            &self.main
        }
    }

    /// The port for a route's host: its own, else `[main]`'s, else 25.
    pub fn port_of(&self, route: &Route) -> u16 {
        route.port.or(self.main.port).unwrap_or(25)
    }
}

fn known_keys(ini: &Ini) -> Vec<(&str, &'static [&'static str])> {
    static MAIN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let main: &'static [&'static str] =
        MAIN.get_or_init(|| ROUTE_KEYS.iter().chain(MAIN_ONLY_KEYS).copied().collect());
    ini.sections
        .iter()
        .map(|s| {
            let keys = if s.name == "main" { main } else { ROUTE_KEYS };
            (s.name.as_str(), keys)
        })
        .collect()
}

fn route(ini: &Ini, section: &str, diags: &mut Vec<Diag>) -> Route {
    let text = |key: &str| {
        ini.get(section, key)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let port = match ini.get(section, "port").map(str::trim) {
        None | Some("") => None,
        Some(v) => match v.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                push_invalid(diags, ini, section, "port", "a port number");
                None
            }
        },
    };
    let auth = match (text("auth_type"), text("auth_user")) {
        (_, None) => None,
        (None, Some(user)) => Some((AuthMechanism::Plain, user)),
        (Some(t), Some(user)) => match AuthMechanism::from_name(&t) {
            Some(m) => Some((m, user)),
            None => {
                push_invalid(diags, ini, section, "auth_type", "plain or login");
                None
            }
        },
    }
    .map(|(mechanism, user)| Auth {
        mechanism,
        user,
        pass: ini.get(section, "auth_pass").unwrap_or_default().to_owned(),
    });
    Route {
        name: section.to_owned(),
        host: text("host"),
        port,
        enable_tls: ini.get_bool(section, "enable_tls", false),
        enable_outbound: ini
            .entry(section, "enable_outbound")
            .filter(|v| v.line > 0 || section == "main")
            .map(|v| v.is_true()),
        auth,
        queue: text("queue"),
        bind: text("bind"),
        bind_helo: text("bind_helo"),
        using_lmtp: ini.get_bool(section, "using_lmtp", false),
    }
}

/// `h1:p1, h2:p2 ...` (comma and/or space separated, port 25 by default).
fn host_pool(ini: &Ini, diags: &mut Vec<Diag>) -> Vec<(String, u16)> {
    let Some(list) = ini.get("main", "forwarding_host_pool") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in list.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
        let (host, port) = match item.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse::<u16>().ok()),
            _ => (item, Some(25)),
        };
        match port.filter(|p| *p > 0) {
            Some(port) if !host.is_empty() => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                out.push((host.to_owned(), port));
            }
            _ => push_invalid(
                diags,
                ini,
                "main",
                "forwarding_host_pool",
                "host[:port] items",
            ),
        }
    }
    out
}

fn push_invalid(diags: &mut Vec<Diag>, ini: &Ini, section: &str, key: &str, want: &str) {
    let message = format!(
        "[{section}] {key}: invalid value '{}' (expected {want})",
        ini.get(section, key).unwrap_or_default()
    );
    diags.push(match ini.entry(section, key) {
        Some(v) => v.diag(message),
        None => Diag {
            file: ini.file.clone(),
            line: 0,
            message,
        },
    });
}
