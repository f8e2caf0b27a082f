//! Haraka's configuration dialect.
//!
//! Owns: locating the config directory of a `-c ROOT` (real Haraka layout and the
//! seed's flat layout with its aliases), reading ini / list / value files exactly as
//! haraka-config does, Haraka's shipped defaults, and collecting every problem with
//! its file and line. It must never panic on file content and never silently ignore
//! a file it was asked for: missing files are empty (as in Haraka), broken lines are
//! [`Diag`]nostics.

mod dir;
mod ini;

pub use dir::{ConfigDir, PluginEntry};
pub use ini::{Ini, IniValue, Section};

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

/// Haraka's words for true (`true`, `yes`, `ok`, `enabled`, `on`, `1`); anything else is false.
pub fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "yes" | "ok" | "enabled" | "on" | "1"
    )
}
