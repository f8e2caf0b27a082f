//! `limit.ini` as haraka-plugin-limit reads it: its shipped defaults under the
//! user's file, `enabled` booleans per section, `[main] tarpit_delay`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Ini, IniSpec, Scalar};

/// Sections whose `enabled` key is one of the plugin's declared booleans.
const BOOLEANS: &[&str] = &[
    "-outbound.enabled",
    "-recipients.enabled",
    "-unrecognized_commands.enabled",
    "-errors.enabled",
    "-rate_conn.enabled",
    "-rate_rcpt.enabled",
    "-rate_rcpt_host.enabled",
    "-rate_rcpt_sender.enabled",
    "-rate_rcpt_null.enabled",
    "-concurrency_history.enabled",
    "-recipients_history.enabled",
    "-rate_conn_history.enabled",
];

/// The defaults haraka-plugin-limit ships (every limit disabled until its
/// section says `enabled=true`; the loopback network is exempt from the rates).
const SHIPPED: &str = "tarpit_delay=3
[concurrency]
max=3
[concurrency_history]
plugin=karma
good=10
bad=1
none=2
[recipients]
[recipients_history]
plugin=karma
bad=1
none=5
good=50
[unrecognized_commands]
max=10
[errors]
max=10
[rate_conn]
127=0
default=5
[rate_conn_history]
plugin=karma
bad=1/15m
none=1/5m
good=15/1m
[rate_rcpt_host]
127=0
default=50/5m
[rate_rcpt_sender]
127=0
default=50/5m
[rate_rcpt]
127=0
default=50/5m
[rate_rcpt_null]
default=1
[outbound]
";

/// `limit.ini`.
pub const LIMIT_INI: IniSpec = IniSpec {
    name: "limit.ini",
    booleans: BOOLEANS,
    shipped: Some(SHIPPED),
    fixup: None,
};

/// One rate section: lookup (IP or its prefix, rDNS name or its suffix, address
/// or domain, `default`) → rate value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateTable {
    entries: HashMap<String, String>,
}

impl RateTable {
    /// The value of a lookup, if it is listed with a value that counts (the plugin
    /// skips empty values).
    pub fn entry(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// `default`, unless it is 0 or empty (both mean unlimited).
    pub fn default(&self) -> Option<&str> {
        self.entry("default").filter(|v| truthy(v))
    }
}

/// Everything the hooks decide with; `None` is a disabled section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitConfig {
    /// `[main] tarpit_delay`: seconds to wait before a penalty is answered.
    pub tarpit_delay: Option<Duration>,
    /// `[concurrency] max`: connections at once from one address.
    pub concurrency: Option<Option<f64>>,
    /// `[recipients] max` and `max_relaying`.
    pub recipients: Option<Recipients>,
    /// `[unrecognized_commands] max`.
    pub unrecognized_commands: Option<Option<f64>>,
    /// `[errors] max`.
    pub errors: Option<Option<f64>>,
    pub rate_conn: Option<RateTable>,
    pub rate_rcpt_host: Option<RateTable>,
    pub rate_rcpt_sender: Option<RateTable>,
    pub rate_rcpt: Option<RateTable>,
}

/// `[recipients]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipients {
    pub max: Option<f64>,
    pub max_relaying: Option<f64>,
}

/// JavaScript truthiness of a value as haraka-config leaves it (numbers coerced,
/// every other non-empty string true, `"false"` included).
pub fn truthy(text: &str) -> bool {
    match Scalar::coerce(text) {
        Scalar::Int(n) => n != 0,
        Scalar::Float(f) => f != 0.0,
        Scalar::Str(s) => !s.is_empty(),
    }
}

/// JavaScript's `parseFloat`: the longest leading decimal number; `None` when
/// there is none or it is 0 (both disable a `max`).
pub fn parse_max(text: &str) -> Option<f64> {
    let t = text.trim_start();
    let mut end = 0;
    let mut seen_dot = false;
    for (i, c) in t.char_indices() {
        match c {
            '0'..='9' => end = i + 1,
            '.' if !seen_dot => seen_dot = true,
            '-' | '+' if i == 0 => {}
            _ => break,
        }
    }
    t.get(..end)
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| *n != 0.0 && n.is_finite())
}

/// Read `limit.ini` and say which file to watch.
pub(crate) fn load(cfg: &ConfigDir) -> Result<(LimitConfig, Vec<PathBuf>), ConfigErrors> {
    let ini = cfg.plugin_ini(&LIMIT_INI)?;
    let files = vec![ini.file.clone()];
    Ok((from_ini(&ini), files))
}

/// The settings of a merged `limit.ini`.
pub fn from_ini(ini: &Ini) -> LimitConfig {
    let on = |s: &str| ini.get_bool(s, "enabled", false);
    let max = |s: &str| ini.get(s, "max").and_then(parse_max);
    let tarpit = ini
        .get("main", "tarpit_delay")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| Duration::from_secs_f64(s.min(3600.0)));
    // `[concurrency] enabled` is not a declared boolean: any truthy text enables it.
    let concurrency = ini.get("concurrency", "enabled").is_some_and(truthy);
    for s in ["rate_rcpt_null", "outbound"] {
        if on(s) {
            tracing::warn!("limit.ini: [{s}] is not supported by haraka-rs and is ignored");
        }
    }
    for s in [
        "concurrency_history",
        "recipients_history",
        "rate_conn_history",
    ] {
        if on(s) {
            tracing::warn!(
                "limit.ini: [{s}] needs a history plugin (karma), which haraka-rs has not; ignored"
            );
        }
    }
    let rates = |s: &str| on(s).then(|| rate_table(ini, s));
    LimitConfig {
        tarpit_delay: tarpit,
        concurrency: concurrency.then(|| max("concurrency")),
        recipients: on("recipients").then(|| Recipients {
            max: max("recipients").or_else(|| ini.get("recipients", "default").and_then(parse_max)),
            max_relaying: ini.get("recipients", "max_relaying").and_then(parse_max),
        }),
        unrecognized_commands: on("unrecognized_commands").then(|| max("unrecognized_commands")),
        errors: on("errors").then(|| max("errors")),
        rate_conn: rates("rate_conn"),
        rate_rcpt_host: rates("rate_rcpt_host"),
        rate_rcpt_sender: rates("rate_rcpt_sender"),
        rate_rcpt: rates("rate_rcpt"),
    }
}

/// A rate section's entries: listed when the value is truthy or the number 0.
fn rate_table(ini: &Ini, section: &str) -> RateTable {
    let mut entries = HashMap::new();
    if let Some(sec) = ini.section(section) {
        for (key, value) in &sec.entries {
            let text = value.text().trim();
            if key == "enabled" || !(truthy(text) || Scalar::coerce(text) == Scalar::Int(0)) {
                continue;
            }
            entries.insert(key.clone(), text.to_owned());
        }
    }
    RateTable { entries }
}
