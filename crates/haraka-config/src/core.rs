//! The core flat files of Haraka 3.0.0 (see `docs/configuration.md`, "Core flat files"), typed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::dir::ConfigDir;
use crate::ini::{IniValue, Scalar};
use crate::smtp_ini::{int, seconds};
use crate::{ConfigErrors, Diag};

/// haraka-rs's size limit when `databytes` is absent: Haraka's shipped value.
/// (Haraka 3.0.0 itself reads no default and advertises `SIZE 0`.)
pub const DEFAULT_DATABYTES: u64 = 26_214_400;

/// The core flat files, with Haraka's fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// `me`, else the OS hostname.
    pub me: String,
    /// `smtpgreeting` lines (empty: the default greeting).
    pub smtpgreeting: Vec<String>,
    pub ehlo_hello_message: String,
    pub connection_close_message: String,
    /// Maximum message size in bytes; 0 means no limit (an explicit `databytes` of 0).
    pub databytes: u64,
    pub max_line_length: usize,
    pub max_data_line_length: usize,
    pub max_mime_parts: usize,
    pub banner_includes_uuid: bool,
    /// 0: off; 1: the whole UUID; n > 1: its first n characters.
    pub deny_includes_uuid: usize,
    pub haproxy_hosts: Vec<String>,
    pub internalcmd_key: Option<String>,
    /// Default hook timeout; `None` for `plugin_timeout` 0 (no timeout).
    pub plugin_timeout: Option<Duration>,
    pub queue_dir: PathBuf,
}

impl CoreConfig {
    /// Haraka's values when no file is present (for `root`'s `queue/`).
    pub fn defaults(root: &Path) -> CoreConfig {
        CoreConfig {
            me: hostname(),
            smtpgreeting: Vec::new(),
            ehlo_hello_message: "Haraka is at your service.".into(),
            connection_close_message: "closing connection. Have a jolly good day.".into(),
            databytes: DEFAULT_DATABYTES,
            max_line_length: 512,
            max_data_line_length: 992,
            max_mime_parts: 1000,
            banner_includes_uuid: false,
            deny_includes_uuid: 0,
            haproxy_hosts: Vec::new(),
            internalcmd_key: None,
            plugin_timeout: Some(Duration::from_secs(30)),
            queue_dir: root.join("queue"),
        }
    }
}

impl ConfigDir {
    /// The core flat files typed; every bad value is reported with file:line.
    pub fn core(&self) -> Result<CoreConfig, ConfigErrors> {
        let mut c = CoreConfig::defaults(self.root());
        let mut d: Vec<Diag> = Vec::new();
        if let Some(me) = self.value("me") {
            c.me = me;
        }
        c.smtpgreeting = self.list("smtpgreeting");
        if let Some(v) = self.value("ehlo_hello_message") {
            c.ehlo_hello_message = v;
        }
        if let Some(v) = self.value("connection_close_message") {
            c.connection_close_message = v;
        }
        if let Some(v) = self.value_entry("databytes") {
            push(
                &mut d,
                int::<u64>(&v, "a size in bytes").map(|n| c.databytes = n),
            );
        }
        let limits: [(&str, &mut usize); 3] = [
            ("max_line_length", &mut c.max_line_length),
            ("max_data_line_length", &mut c.max_data_line_length),
            ("max_mime_parts", &mut c.max_mime_parts),
        ];
        for (name, slot) in limits {
            if let Some(v) = self.value_entry(name) {
                // Haraka: `parseInt(value) || default`, so 0 keeps the default.
                match int::<usize>(&v, "a positive number") {
                    Ok(0) => {}
                    Ok(n) => *slot = n,
                    Err(e) => d.push(e),
                }
            }
        }
        if let Some(v) = self.value_entry("banner_includes_uuid") {
            push(
                &mut d,
                crate::smtp_ini::truthy(&v).map(|b| c.banner_includes_uuid = b),
            );
        }
        if let Some(v) = self.value_entry("deny_includes_uuid") {
            push(&mut d, uuid_chars(&v).map(|n| c.deny_includes_uuid = n));
        }
        c.haproxy_hosts = self.list("haproxy_hosts");
        c.internalcmd_key = self.value("internalcmd_key");
        if let Some(v) = self.value_entry("plugin_timeout") {
            push(&mut d, seconds(&v).map(|t| c.plugin_timeout = non_zero(t)));
        }
        if let Some(v) = self.value("queue_dir") {
            c.queue_dir = v.into();
        }
        if d.is_empty() {
            Ok(c)
        } else {
            Err(ConfigErrors(d))
        }
    }

    /// The hook timeout of plugin `name` (Haraka `plugins.js` `get_timeout`):
    /// `<name>.timeout` (for `queue/smtp_forward` the file
    /// `queue/smtp_forward.timeout`), else `plugin_timeout`, else 30 s. `None`
    /// means no timeout (a value of 0). Unreadable values are warned and skipped.
    pub fn plugin_timeout(&self, name: &str) -> Option<Duration> {
        for file in [format!("{name}.timeout"), "plugin_timeout".to_owned()] {
            if let Some(v) = self.value_entry(&file) {
                match seconds(&v) {
                    Ok(t) => return non_zero(t),
                    Err(e) => tracing::warn!("{e}"),
                }
            }
        }
        Some(Duration::from_secs(30))
    }
}

fn push(d: &mut Vec<Diag>, r: Result<(), Diag>) {
    if let Err(e) = r {
        d.push(e);
    }
}

fn non_zero(t: Duration) -> Option<Duration> {
    (!t.is_zero()).then_some(t)
}

fn uuid_chars(v: &IniValue) -> Result<usize, Diag> {
    let t = v.text();
    match Scalar::coerce(t) {
        Scalar::Int(n) => usize::try_from(n).map_err(|_| {
            v.diag(format!(
                "invalid value '{t}': expected a number of characters"
            ))
        }),
        _ if crate::is_true(t) => Ok(1),
        _ if crate::is_false(t) => Ok(0),
        _ => Err(v.diag(format!(
            "invalid value '{t}': expected a number of characters"
        ))),
    }
}

/// The OS host name (Node's `os.hostname()`), `localhost` if it cannot be read.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
