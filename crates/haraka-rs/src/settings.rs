//! The core settings of a root, in the shapes the server needs.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Diag, ListenAddr, hostname};
use haraka_server::memory;
use haraka_smtp::{MemoryBudget, SessionConfig};

/// Everything the binary needs from `smtp.ini` and the core flat files.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: Vec<SocketAddr>,
    pub session: SessionConfig,
    pub force_shutdown_timeout: Duration,
    pub rdns_timeout: Duration,
    pub user: Option<String>,
    pub group: Option<String>,
    pub daemonize: bool,
    /// `log.ini [main] level`, as a tracing filter.
    pub log_level: Option<&'static str>,
    /// `smtp.ini smtps_port`: listeners on this port speak TLS from the start.
    pub smtps_port: u16,
    /// `smtp.ini max_connections`; `None`: derived from the open-file limit at start.
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: usize,
    /// `smtp.ini write_timeout`, else `inactivity_timeout`.
    pub write_timeout: Duration,
}

/// Read `smtp.ini` and the core flat files; every problem is collected.
pub fn load(config: &ConfigDir) -> Result<Settings, ConfigErrors> {
    let (smtp, core) = match (config.smtp_ini(), config.core()) {
        (Ok(s), Ok(c)) => (s, c),
        (a, b) => {
            let mut all = Vec::new();
            if let Err(e) = a {
                all.extend(e.0);
            }
            if let Err(e) = b {
                all.extend(e.0);
            }
            return Err(ConfigErrors(all));
        }
    };
    let mut errors = Vec::new();
    let log_level = log_level(config);
    let mut listen = Vec::new();
    for addr in &smtp.listen {
        match addr {
            ListenAddr::Tcp(a) => listen.push(*a),
            ListenAddr::Host { host, port } => match (host.as_str(), *port).to_socket_addrs() {
                Ok(found) => listen.extend(found),
                Err(e) => errors.push(diag(config, format!("listen: cannot resolve {host}: {e}"))),
            },
            ListenAddr::Unix { path, .. } => errors.push(diag(
                config,
                format!(
                    "listen: Unix sockets ({}) are not supported by haraka-rs",
                    path.display()
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let short_hostname = hostname()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_owned();
    // A client that stops reading is cut as Haraka's socket inactivity timeout
    // would cut it, unless `write_timeout` says otherwise.
    let write_timeout = smtp
        .write_timeout
        .unwrap_or(smtp.inactivity_timeout)
        .max(Duration::from_millis(1));
    let session =
        SessionConfig {
            me: core.me,
            greeting: core.smtpgreeting,
            show_version: smtp.headers.show_version,
            version: "Haraka/3.0.0".to_owned(),
            ehlo_hello_message: core.ehlo_hello_message,
            connection_close_message: core.connection_close_message,
            databytes: core.databytes,
            max_line_length: core.max_line_length,
            max_data_line_length: core.max_data_line_length,
            smtputf8: smtp.smtputf8,
            strict_rfc1869: smtp.strict_rfc1869,
            deny_includes_uuid: core.deny_includes_uuid,
            banner_includes_uuid: core.banner_includes_uuid,
            add_received: smtp.headers.add_received,
            max_received: smtp.headers.max_received,
            clean_auth_results: smtp.headers.clean_auth_results,
            short_hostname,
            inactivity_timeout: smtp.inactivity_timeout,
            command_timeout: smtp.command_timeout,
            data_timeout: smtp.data_timeout,
            data_min_rate: smtp.data_min_rate,
            data_rate_period: smtp.data_rate_period,
            message_budget: MemoryBudget::new(smtp.message_memory_budget.unwrap_or_else(|| {
                memory::default_message_memory_budget(memory::available_memory())
            })),
        };
    Ok(Settings {
        listen,
        session,
        force_shutdown_timeout: smtp.force_shutdown_timeout,
        rdns_timeout: Duration::from_secs(5),
        user: smtp.user,
        group: smtp.group,
        daemonize: smtp.daemonize,
        smtps_port: smtp.smtps_port,
        max_connections: smtp.max_connections,
        max_connections_per_ip: smtp.max_connections_per_ip,
        write_timeout,
        log_level,
    })
}

fn diag(config: &ConfigDir, message: String) -> Diag {
    Diag {
        file: config.path("smtp.ini"),
        line: 0,
        message,
    }
}

/// `log.ini [main] level` mapped onto tracing's levels (Haraka's `data` and
/// `protocol` are trace, `notice` is info, `crit`/`alert`/`emerg` are error).
pub fn log_level(config: &ConfigDir) -> Option<&'static str> {
    let ini = config
        .ini_with("log.ini", haraka_config::booleans::LOG_INI)
        .ok()?;
    let level = ini.get("main", "level")?.trim().to_ascii_lowercase();
    Some(match level.as_str() {
        "data" | "protocol" => "trace",
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        _ => "error",
    })
}
