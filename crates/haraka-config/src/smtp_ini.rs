//! `smtp.ini`, typed (see `docs/configuration.md`; Haraka 3.0.0 `server.js` `load_smtp_ini`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::booleans::SMTP_INI;
use crate::dir::ConfigDir;
use crate::ini::{Ini, IniValue, Scalar};
use crate::{ConfigErrors, Diag};

/// One `listen` entry (Haraka's `endpoint()` over the `sockaddr` parser).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// An IPv4 or IPv6 address with its port (`[::]` is Haraka's `[::0]`).
    Tcp(SocketAddr),
    /// A host name to resolve at bind time (lower-cased).
    Host { host: String, port: u16 },
    /// A Unix socket path with an optional octal mode (`/run/haraka.sock:660`).
    Unix { path: PathBuf, mode: Option<u32> },
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Host { host, port } => write!(f, "{host}:{port}"),
            ListenAddr::Unix {
                path,
                mode: Some(m),
            } => write!(f, "{}:{m:03o}", path.display()),
            ListenAddr::Unix { path, mode: None } => write!(f, "{}", path.display()),
        }
    }
}

/// Haraka's default listener, `[::0]:25` (retried on `0.0.0.0:25` where IPv6 is
/// unavailable).
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 25);

/// Parse one `listen` entry: `25` (port only, all addresses), `1.2.3.4[:port]`,
/// `[v6][:port]`, `host.name[:port]`, or a path containing `/` (optionally ending
/// in `:NNN`, an octal mode).
pub fn parse_listen(entry: &str, default_port: u16) -> Result<ListenAddr, String> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let port_of = |p: Option<&str>| -> Result<u16, String> {
        match p {
            None => Ok(default_port),
            Some(p) => p
                .parse()
                .map_err(|_| format!("port out of range in listen entry: {entry}")),
        }
    };
    let bad = || format!("Invalid \"listen\" format in smtp.ini: {entry}");
    if digits(entry) {
        let any = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        return Ok(ListenAddr::Tcp(SocketAddr::new(any, port_of(Some(entry))?)));
    }
    // `[v6]` or `[v6]:port`
    if let Some((h, p)) = entry.strip_prefix('[').and_then(|r| r.split_once(']')) {
        let port = match p {
            "" => Some(None),
            _ => p.strip_prefix(':').filter(|p| digits(p)).map(Some),
        };
        if let Some(port) = port
            && !h.is_empty()
            && h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        {
            let ip: Ipv6Addr = h.parse().map_err(|_| bad())?;
            return Ok(ListenAddr::Tcp(SocketAddr::new(
                IpAddr::V6(ip),
                port_of(port)?,
            )));
        }
    }
    // `a.b.c.d[:port]` or `host.name[:port]`
    let (host, port) = match entry.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (entry, None),
    };
    if port.is_none_or(digits) {
        if is_dotted_quad(host) {
            let ip: Ipv4Addr = host.parse().map_err(|_| bad())?;
            return Ok(ListenAddr::Tcp(SocketAddr::new(
                IpAddr::V4(ip),
                port_of(port)?,
            )));
        }
        if is_hostname(host) {
            let host = host.to_ascii_lowercase();
            return Ok(ListenAddr::Host {
                host,
                port: port_of(port)?,
            });
        }
    }
    if entry.contains('/') {
        if let Some((path, mode)) = entry.rsplit_once(':')
            && mode.len() == 3
            && mode.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            let mode = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
            return Ok(ListenAddr::Unix {
                path: path.into(),
                mode: Some(mode),
            });
        }
        return Ok(ListenAddr::Unix {
            path: entry.into(),
            mode: None,
        });
    }
    Err(bad())
}

/// `^\d{1,3}(\.\d{1,3}){3}$`
fn is_dotted_quad(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// RFC 1123 labels separated by dots (the `sockaddr` host pattern).
fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `nodes=`: a number of worker processes or `cpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    Count(u32),
    Cpus,
}

/// `smtp.ini [headers]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadersIni {
    pub add_received: bool,
    pub clean_auth_results: bool,
    pub show_version: bool,
    pub max_lines: usize,
    pub max_received: usize,
}

/// `smtp.ini`, with Haraka 3.0.0's defaults and legacy flat-file fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpIni {
    /// Listeners in order (`port`/`listen_host` first when set).
    pub listen: Vec<ListenAddr>,
    /// True when nothing was configured and [`DEFAULT_LISTEN`] is used.
    pub listen_is_default: bool,
    pub public_ip: Option<String>,
    pub inactivity_timeout: Duration,
    pub user: Option<String>,
    pub group: Option<String>,
    pub ignore_bad_plugins: bool,
    pub nodes: Nodes,
    pub daemonize: bool,
    pub daemon_log_file: PathBuf,
    pub daemon_pid_file: PathBuf,
    pub spool_dir: PathBuf,
    /// Bytes after which a message is spooled to disk; -1 never, 0 always.
    pub spool_after: i64,
    pub graceful_shutdown: bool,
    pub force_shutdown_timeout: Duration,
    pub smtputf8: bool,
    pub strict_rfc1869: bool,
    pub smtps_port: u16,
    /// haraka-rs: how long one command line may take from its first byte (zero:
    /// `inactivity_timeout`).
    pub command_timeout: Duration,
    /// haraka-rs: how long a whole message after `354` may take (zero: no limit).
    pub data_timeout: Duration,
    /// haraka-rs: bytes per second a message must average over each
    /// `data_rate_period` (0: no minimum).
    pub data_min_rate: u64,
    /// haraka-rs: the period over which `data_min_rate` is measured.
    pub data_rate_period: Duration,
    /// haraka-rs: open inbound connections at most; `None` = derived from the
    /// file-descriptor limit at start, `Some(0)` = unlimited.
    pub max_connections: Option<usize>,
    /// haraka-rs: open inbound connections per client address at most; 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// haraka-rs: a write that makes no progress for this long closes the
    /// connection; `None` (absent or 0) = `inactivity_timeout`.
    pub write_timeout: Option<Duration>,
    /// haraka-rs: bytes of message data all sessions together may hold in memory;
    /// `None` = derived from the machine's memory at start, `Some(0)` = unlimited.
    pub message_memory_budget: Option<u64>,
    pub headers: HeadersIni,
}

/// `max_connections_per_ip` when not set: far above what a normal MTA opens
/// (Postfix's `smtpd_client_connection_count_limit` is 50 too).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;

impl Default for SmtpIni {
    fn default() -> SmtpIni {
        SmtpIni {
            listen: vec![ListenAddr::Tcp(DEFAULT_LISTEN)],
            listen_is_default: true,
            public_ip: None,
            inactivity_timeout: Duration::from_secs(300),
            user: None,
            group: None,
            ignore_bad_plugins: false,
            nodes: Nodes::Count(1),
            daemonize: false,
            daemon_log_file: "/var/log/haraka.log".into(),
            daemon_pid_file: "/var/run/haraka.pid".into(),
            spool_dir: "/tmp".into(),
            spool_after: -1,
            graceful_shutdown: false,
            force_shutdown_timeout: Duration::from_secs(30),
            smtputf8: true,
            strict_rfc1869: false,
            smtps_port: 465,
            command_timeout: Duration::ZERO,
            data_timeout: Duration::ZERO,
            data_min_rate: 1024,
            data_rate_period: Duration::from_secs(60),
            max_connections: None,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            write_timeout: None,
            message_memory_budget: None,
            headers: HeadersIni {
                add_received: true,
                clean_auth_results: true,
                show_version: true,
                max_lines: 1000,
                max_received: 100,
            },
        }
    }
}

const MAIN_KEYS: &[&str] = &[
    "listen",
    "port",
    "listen_host",
    "public_ip",
    "inactivity_timeout",
    "user",
    "group",
    "ignore_bad_plugins",
    "nodes",
    "daemonize",
    "daemon_log_file",
    "daemon_pid_file",
    "spool_dir",
    "spool_after",
    "graceful_shutdown",
    "force_shutdown_timeout",
    "smtputf8",
    "strict_rfc1869",
    "smtps_port",
    "command_timeout",
    "data_timeout",
    "data_min_rate",
    "data_rate_period",
    "max_connections",
    "max_connections_per_ip",
    "write_timeout",
    "message_memory_budget",
];
const HEADER_KEYS: &[&str] = &[
    "add_received",
    "clean_auth_results",
    "show_version",
    "max_lines",
    "max_received",
];

/// The legacy flat files `load_smtp_ini` still honours.
#[derive(Debug, Clone, Default)]
pub struct SmtpLegacy {
    pub strict_rfc1869: Option<IniValue>,
    pub header_hide_version: Option<IniValue>,
    pub max_received_count: Option<IniValue>,
    pub max_header_lines: Option<IniValue>,
}

impl ConfigDir {
    /// `smtp.ini` typed, with the flat layout's `config [server]` fallback. Every bad value
    /// is reported with file:line; unknown keys are warned.
    pub fn smtp_ini(&self) -> Result<SmtpIni, ConfigErrors> {
        let ini = self.ini_with("smtp.ini", SMTP_INI)?;
        let legacy = SmtpLegacy {
            strict_rfc1869: self.value_entry("strict_rfc1869"),
            header_hide_version: self.value_entry("header_hide_version"),
            max_received_count: self.value_entry("max_received_count"),
            max_header_lines: self.value_entry("max_header_lines"),
        };
        SmtpIni::from_ini(&ini, &legacy)
    }
}

impl SmtpIni {
    /// Build from an `smtp.ini` read with [`SMTP_INI`] booleans.
    pub fn from_ini(ini: &Ini, legacy: &SmtpLegacy) -> Result<SmtpIni, ConfigErrors> {
        ini.warn_unknown(&[("main", MAIN_KEYS), ("headers", HEADER_KEYS)], false);
        let mut d = Vec::new();
        let mut c = SmtpIni::default();
        let m = |k: &str| present(ini.entry("main", k));
        let h = |k: &str| present(ini.entry("headers", k));

        let mut listen = Vec::new();
        if let Some(v) = m("port") {
            let host = m("listen_host").map_or("[::0]", IniValue::text);
            push_listen(&mut listen, &format!("{host}:{}", v.text()), v, &mut d);
        }
        if let Some(v) = m("listen") {
            for part in v.text().split(',').map(str::trim) {
                push_listen(&mut listen, part, v, &mut d);
            }
        }
        if !listen.is_empty() {
            c.listen = listen;
            c.listen_is_default = false;
        }
        c.public_ip = m("public_ip").map(|v| v.text().to_owned());
        c.user = m("user").map(|v| v.text().to_owned());
        c.group = m("group").map(|v| v.text().to_owned());
        if let Some(v) = m("inactivity_timeout") {
            set(&mut c.inactivity_timeout, inactivity(v), &mut d);
        }
        if let Some(v) = m("force_shutdown_timeout") {
            set(&mut c.force_shutdown_timeout, seconds(v), &mut d);
        }
        if let Some(v) = m("ignore_bad_plugins") {
            set(&mut c.ignore_bad_plugins, truthy(v), &mut d);
        }
        if let Some(v) = m("nodes") {
            let n = if v.text() == "cpus" {
                Ok(Nodes::Cpus)
            } else {
                int::<u32>(v, "a number of processes or 'cpus'").map(Nodes::Count)
            };
            set(&mut c.nodes, n, &mut d);
        }
        if let Some(v) = m("daemon_log_file") {
            c.daemon_log_file = v.text().into();
        }
        if let Some(v) = m("daemon_pid_file") {
            c.daemon_pid_file = v.text().into();
        }
        if let Some(v) = m("spool_dir") {
            c.spool_dir = v.text().into();
        }
        if let Some(v) = m("spool_after") {
            set(
                &mut c.spool_after,
                int::<i64>(v, "a byte count (-1 = never)"),
                &mut d,
            );
        }
        if let Some(v) = m("smtps_port") {
            set(&mut c.smtps_port, int::<u16>(v, "a port number"), &mut d);
        }
        if let Some(v) = m("command_timeout") {
            set(&mut c.command_timeout, seconds(v), &mut d);
        }
        if let Some(v) = m("data_timeout") {
            set(&mut c.data_timeout, seconds(v), &mut d);
        }
        if let Some(v) = m("data_min_rate") {
            let rate = int::<u64>(v, "bytes per second (0 = no minimum)");
            set(&mut c.data_min_rate, rate, &mut d);
        }
        // 0 would switch the rate check off: like Haraka's timeouts, it means the default.
        if let Some(v) = m("data_rate_period") {
            let period = seconds(v).map(|p| match p.is_zero() {
                true => Duration::from_secs(60),
                false => p,
            });
            set(&mut c.data_rate_period, period, &mut d);
        }
        if let Some(v) = m("max_connections") {
            let n = int::<usize>(v, "a number of connections (0 = unlimited)");
            set(&mut c.max_connections, n.map(Some), &mut d);
        }
        if let Some(v) = m("max_connections_per_ip") {
            let n = int::<usize>(v, "a number of connections (0 = unlimited)");
            set(&mut c.max_connections_per_ip, n, &mut d);
        }
        if let Some(v) = m("write_timeout") {
            let t = seconds(v).map(|t| Some(t).filter(|t| !t.is_zero()));
            set(&mut c.write_timeout, t, &mut d);
        }
        if let Some(v) = m("message_memory_budget") {
            let n = int::<u64>(v, "a number of bytes (0 = unlimited)");
            set(&mut c.message_memory_budget, n.map(Some), &mut d);
        }
        c.daemonize = ini.get_bool("main", "daemonize", false);
        c.graceful_shutdown = ini.get_bool("main", "graceful_shutdown", false);
        c.smtputf8 = ini.get_bool("main", "smtputf8", true);
        c.strict_rfc1869 = ini.get_bool("main", "strict_rfc1869", false);
        if !c.strict_rfc1869
            && let Some(v) = &legacy.strict_rfc1869
            && truthy(v).unwrap_or(false)
        {
            tracing::warn!("legacy config {} is overriding smtp.ini", v.file.display());
            c.strict_rfc1869 = true;
        }
        c.headers.add_received = ini.get_bool("headers", "add_received", true);
        c.headers.clean_auth_results = ini.get_bool("headers", "clean_auth_results", true);
        c.headers.show_version = ini.get_bool("headers", "show_version", true);
        if let Some(v) = &legacy.header_hide_version
            && matches!(v.scalar(), Some(Scalar::Int(0)))
        {
            c.headers.show_version = false;
        }
        c.headers.max_received = count(
            h("max_received"),
            legacy.max_received_count.as_ref(),
            100,
            &mut d,
        );
        c.headers.max_lines = count(
            h("max_lines"),
            legacy.max_header_lines.as_ref(),
            1000,
            &mut d,
        );
        if d.is_empty() {
            Ok(c)
        } else {
            Err(ConfigErrors(d))
        }
    }
}

/// A value that is set: present, with `=`, not empty.
fn present(v: Option<&IniValue>) -> Option<&IniValue> {
    v.filter(|v| v.value.as_deref().is_some_and(|s| !s.is_empty()))
}

fn set<T>(slot: &mut T, r: Result<T, Diag>, d: &mut Vec<Diag>) {
    match r {
        Ok(v) => *slot = v,
        Err(e) => d.push(e),
    }
}

fn push_listen(out: &mut Vec<ListenAddr>, entry: &str, v: &IniValue, d: &mut Vec<Diag>) {
    match parse_listen(entry, 25) {
        Ok(a) => out.push(a),
        Err(e) => d.push(v.diag(e)),
    }
}

/// A whole number of type `T`.
pub(crate) fn int<T: std::str::FromStr>(v: &IniValue, what: &str) -> Result<T, Diag> {
    let t = v.text();
    if crate::ini::is_integer(t)
        && let Ok(n) = t.parse()
    {
        return Ok(n);
    }
    Err(v.diag(format!("invalid value '{t}': expected {what}")))
}

/// Seconds (integer or decimal), not negative.
pub(crate) fn seconds(v: &IniValue) -> Result<Duration, Diag> {
    let t = v.text();
    let f: Option<f64> = match Scalar::coerce(t) {
        Scalar::Int(n) => Some(n as f64),
        Scalar::Float(f) => Some(f),
        Scalar::Str(_) => None,
    };
    f.and_then(|f| Duration::try_from_secs_f64(f).ok())
        .ok_or_else(|| v.diag(format!("invalid value '{t}': expected seconds")))
}

/// Shortest `inactivity_timeout`: below it, sessions would time out before a
/// client could answer the greeting.
pub const MIN_INACTIVITY: Duration = Duration::from_secs(1);

/// `inactivity_timeout`: 0 means the default (Haraka's `|| 300`); other values
/// below [`MIN_INACTIVITY`] are refused.
fn inactivity(v: &IniValue) -> Result<Duration, Diag> {
    match seconds(v)? {
        Duration::ZERO => Ok(SmtpIni::default().inactivity_timeout),
        t if t < MIN_INACTIVITY => Err(v.diag(format!(
            "invalid value '{}': expected at least 1 second (0 means the default, 300)",
            v.text()
        ))),
        t => Ok(t),
    }
}

/// A number (non-zero = on) or one of Haraka's true/false words.
pub(crate) fn truthy(v: &IniValue) -> Result<bool, Diag> {
    let t = v.text();
    match Scalar::coerce(t) {
        Scalar::Int(n) => Ok(n != 0),
        Scalar::Float(f) => Ok(f != 0.0),
        Scalar::Str(_) if crate::is_true(t) => Ok(true),
        Scalar::Str(_) if crate::is_false(t) => Ok(false),
        Scalar::Str(_) => Err(v.diag(format!("invalid value '{t}': expected true or false"))),
    }
}

/// `parseInt(ini) || parseInt(legacy) || default`: zero falls through.
fn count(
    ini: Option<&IniValue>,
    legacy: Option<&IniValue>,
    default: usize,
    d: &mut Vec<Diag>,
) -> usize {
    if let Some(v) = ini {
        match int::<usize>(v, "a count") {
            Ok(0) => {}
            Ok(n) => return n,
            Err(e) => {
                d.push(e);
                return default;
            }
        }
    }
    if let Some(v) = legacy {
        match int::<usize>(v, "a count") {
            Ok(0) => {}
            Ok(n) => return n,
            Err(e) => d.push(e),
        }
    }
    default
}
