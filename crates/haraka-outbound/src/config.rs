//! `config/outbound.ini` `[main]` and Haraka's legacy `outbound.*` files.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Diag, is_true};

use crate::RetrySchedule;

/// Outbound settings, with Haraka 3.0.0's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundConfig {
    /// `me`: outbound EHLO name, Message-Id domain, bounce sender domain.
    pub me: String,
    /// Keep queueing but do not deliver.
    pub disabled: bool,
    /// Parallel deliveries (10000).
    pub concurrency_max: usize,
    /// Opportunistic STARTTLS (true).
    pub enable_tls: bool,
    /// Try AAAA addresses of each MX before A (false: A only).
    pub ipv6_enabled: bool,
    /// One delivery per recipient instead of per domain.
    pub always_split: bool,
    /// Text of the added `Received:` (`None` = `disabled`).
    pub received_header: Option<String>,
    /// TCP connect timeout, also the limit for every step of the SMTP session (30 s).
    pub connect_timeout: Duration,
    /// Accept MX hosts that resolve to this machine.
    pub local_mx_ok: bool,
    /// `temp_fail_intervals` / `maxTempFailures`.
    pub temp_fail_intervals: RetrySchedule,
    /// haraka-rs: port used for MX hosts that come without one (25).
    pub smtp_port: u16,
    /// haraka-rs: name servers to ask instead of the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// haraka-rs, read from no file: bytes of freshly queued messages kept in memory
    /// for their first attempt instead of being read back from disk (32 MiB; 0:
    /// always read the file).
    pub fresh_message_budget: usize,
    /// haraka-rs, read from no file: how long a connection stays open after a
    /// successful transaction, for the next message to the same MX address (2 s, as
    /// Postfix's `smtp_connection_cache_time_limit`; zero: a connection per message,
    /// as Haraka does).
    pub connection_reuse: Duration,
}

impl OutboundConfig {
    /// Haraka's defaults with `me` as the host name.
    pub fn new(me: &str) -> OutboundConfig {
        OutboundConfig {
            me: me.to_owned(),
            disabled: false,
            concurrency_max: 10_000,
            enable_tls: true,
            ipv6_enabled: false,
            always_split: false,
            received_header: Some("Haraka outbound".to_owned()),
            connect_timeout: Duration::from_secs(30),
            local_mx_ok: false,
            temp_fail_intervals: RetrySchedule::doubling(13),
            smtp_port: 25,
            nameservers: Vec::new(),
            fresh_message_budget: crate::handoff::DEFAULT_BUDGET,
            connection_reuse: crate::conn_cache::DEFAULT_IDLE,
        }
    }

    /// Read `outbound.ini` and the legacy files. Problems that Haraka only logs come
    /// back as warnings; a file that cannot be parsed is an error.
    pub fn load(cfg: &ConfigDir, me: &str) -> Result<(OutboundConfig, Vec<Diag>), ConfigErrors> {
        let ini = cfg.ini("outbound.ini")?;
        let mut warnings = Vec::new();
        if let Some(main) = ini.section("main") {
            for (key, v) in &main.entries {
                if !KNOWN_KEYS.contains(&key.as_str()) {
                    warnings.push(Diag {
                        file: v.file.clone(),
                        line: v.line,
                        message: format!("unknown outbound.ini key {key:?} (ignored)"),
                    });
                }
            }
        }
        let mut warn = |msg: String| {
            warnings.push(Diag {
                file: cfg.path("outbound.ini"),
                line: 0,
                message: msg,
            })
        };
        let mut c = OutboundConfig::new(me);
        let legacy = |name: &str| cfg.value(name).filter(|v| !v.trim().is_empty());

        c.disabled = ini.get_bool("main", "disabled", false)
            || legacy("outbound.disabled").is_some_and(|v| is_true(&v));
        c.enable_tls = ini.get_bool("main", "enable_tls", true)
            || legacy("outbound.enable_tls").is_some_and(|v| is_true(&v));
        c.ipv6_enabled = ini.get_bool("main", "ipv6_enabled", false)
            || legacy("outbound.ipv6_enabled").is_some_and(|v| is_true(&v));
        c.always_split = ini.get_bool("main", "always_split", false);
        c.local_mx_ok = ini.get_bool("main", "local_mx_ok", false);

        let num = |key: &str, file: Option<&str>| {
            let raw = ini
                .get("main", key)
                .map(str::to_owned)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| file.and_then(&legacy));
            raw.and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|n| *n > 0.0)
        };
        if let Some(n) = num("concurrency_max", Some("outbound.concurrency_max")) {
            c.concurrency_max = n as usize;
        }
        if let Some(t) =
            num("connect_timeout", None).and_then(|n| Duration::try_from_secs_f64(n).ok())
        {
            c.connect_timeout = t;
        }
        let max_temp = num("maxTempFailures", Some("outbound.maxTempFailures"))
            .map(|n| n as u32)
            .unwrap_or(13);

        let received = ini
            .get("main", "received_header")
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
            .or_else(|| legacy("outbound.received_header"))
            .unwrap_or_else(|| "Haraka outbound".to_owned());
        c.received_header = (received != "disabled").then_some(received);

        let intervals = ini
            .get("main", "temp_fail_intervals")
            .map(str::to_owned)
            .filter(|v| !v.is_empty())
            .or_else(|| legacy("outbound.temp_fail_intervals"));
        c.temp_fail_intervals =
            RetrySchedule::from_settings(intervals.as_deref(), max_temp, &mut warn);

        if let Some(p) = ini.get("main", "smtp_port").map(str::trim) {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => c.smtp_port = port,
                _ => warn(format!("smtp_port: not a port number: {p:?}")),
            }
        }
        if let Some(list) = ini.get("main", "nameservers") {
            for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match parse_nameserver(item) {
                    Some(addr) => c.nameservers.push(addr),
                    None => warn(format!("nameservers: not an address: {item:?}")),
                }
            }
        }
        Ok((c, warnings))
    }
}

/// `[main]` keys of `outbound.ini` (Haraka 3.0.0's, the shipped file's unused
/// leftovers, and haraka-rs's `smtp_port` and `nameservers`).
const KNOWN_KEYS: [&str; 14] = [
    "disabled",
    "concurrency_max",
    "enable_tls",
    "ipv6_enabled",
    "always_split",
    "received_header",
    "connect_timeout",
    "local_mx_ok",
    "temp_fail_intervals",
    "maxTempFailures",
    "load_pid_queue",
    "flush_queue",
    "smtp_port",
    "nameservers",
];

/// `ip`, `ip:port` or `[ipv6]:port`; the port defaults to 53.
fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn nameserver_forms() {
        assert_eq!(
            parse_nameserver("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_nameserver("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_nameserver("dns.example"), None);
    }

    #[test]
    fn loads_outbound_ini_and_legacy_files() {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("config");
        std::fs::create_dir(&conf).unwrap();
        std::fs::write(
            conf.join("outbound.ini"),
            "always_split=true\nenable_tls=false\nconcurrency_max=7\nreceived_header=disabled\n\
             temp_fail_intervals=5s*2\nsmtp_port=2525\nnameservers=127.0.0.1:5300, bogus\nfoo=1\n",
        )
        .unwrap();
        std::fs::write(conf.join("outbound.ipv6_enabled"), "1\n").unwrap();
        let dir = ConfigDir::open(tmp.path()).unwrap();
        let (c, warnings) = OutboundConfig::load(&dir, "mx.test").unwrap();
        assert!(c.always_split && !c.enable_tls && c.ipv6_enabled);
        assert_eq!(c.concurrency_max, 7);
        assert_eq!(c.received_header, None);
        assert_eq!(c.temp_fail_intervals, RetrySchedule::new(secs(&[5, 5])));
        assert_eq!(c.smtp_port, 2525);
        assert_eq!(c.nameservers, vec!["127.0.0.1:5300".parse().unwrap()]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].message.contains("\"foo\"") && warnings[0].line == 8);

        std::fs::write(
            conf.join("outbound.ini"),
            "temp_fail_intervals=2s\nmaxTempFailures=3\n",
        )
        .unwrap();
        let (c, warnings) = OutboundConfig::load(&dir, "mx.test").unwrap();
        assert_eq!(c.temp_fail_intervals, RetrySchedule::new(secs(&[64, 128])));
        assert_eq!(warnings.len(), 1);
        assert!(c.enable_tls);
        assert_eq!(c.received_header.as_deref(), Some("Haraka outbound"));
    }
}
