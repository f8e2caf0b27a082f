//! Haraka's configuration dialect.
//!
//! Owns: locating the config directory of a `-c ROOT` (real Haraka layout and the
//! flat layout with its compatibility aliases), reading ini / list / value / data
//! files exactly as haraka-config does (implicit `[main]`, `key[]` arrays, declared
//! booleans, no quote processing, last duplicate wins), the mechanism by which a
//! plugin declares its files (shipped defaults, booleans, aliases), the typed core
//! settings (`smtp.ini`, the flat files), collecting every problem with its file and
//! line, and reloading values when files change.
//!
//! It must never panic on file content (any bytes, non-UTF-8 included), never name
//! a plugin or a plugin's file, and never silently ignore a file it was asked for: missing files are empty (as in Haraka),
//! broken lines and bad values are [`Diag`]nostics. It does no network IO and
//! starts no threads or tasks.

pub mod booleans;
mod compat;
mod core;
mod dir;
mod flat;
mod ini;
mod net;
mod plugin;
mod smtp_ini;
mod text;
mod watch;

pub use booleans::Booleans;
pub use compat::normalize_plugin_name;
pub use core::{CoreConfig, DEFAULT_DATABYTES, hostname};
pub use dir::{ConfigDir, Layout, PluginEntry};
pub use flat::{FlatLine, parse_data, parse_list};
pub use ini::{Ini, IniValue, Scalar, Section, is_float, is_integer};
pub use net::parse_ip_net;
pub use plugin::{IniFixup, IniSpec, ListAlias, ListSpec, PluginLayout, PluginSwitch};
pub use smtp_ini::{
    DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS_PER_IP, HeadersIni, ListenAddr, Nodes, SmtpIni,
    SmtpLegacy, parse_listen,
};
pub use watch::{FileStamp, Watched};

use std::fmt;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: PathBuf,
    /// 1-based line, 0 when the problem concerns the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file.display(), self.message)
        }
    }
}

/// Every error found, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diag>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Append another set of errors.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }
}

/// Haraka's words for true (`true`, `yes`, `ok`, `enabled`, `on`, `1`); anything else is false.
pub fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "ok" | "enabled" | "on" | "1"
    )
}

/// Words that clearly mean false (`false`, `no`, `off`, `disabled`, `0`).
pub fn is_false(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "false" | "no" | "off" | "disabled" | "0"
    )
}

/// Run every reader of this crate over arbitrary bytes (the fuzz target's entry).
/// Never panics.
#[cfg(feature = "testing")]
pub fn fuzz_parse(data: &[u8]) {
    let (text, _) = text::decode(data);
    let file = std::path::Path::new("fuzz.ini");
    let mut diags = Vec::new();
    let ini = Ini::parse_with(file, &text, &Booleans::new(booleans::SMTP_INI), &mut diags);
    let _ = SmtpIni::from_ini(&ini, &SmtpLegacy::default());
    for s in &ini.sections {
        for k in s.keys() {
            let _ = ini.get_bool(&s.name, k, false);
            let _ = ini.get_f64(&s.name, k, 0.0);
            let _ = ini.get_parsed::<u16>(&s.name, k);
        }
    }
    for line in parse_list(&text) {
        let _ = parse_listen(&line.text, 25);
        let _ = Scalar::coerce(&line.text);
    }
    let _ = parse_data(&text);
}
