//! The benchmark's tools, installed from Debian's packages when missing:
//! `smtp-source` and `smtp-sink` (postfix), `unbound` (the DNS server of the
//! haraka-out targets) and node with npm (for Haraka). The postfix package
//! is preseeded as "No configuration", so no system mail server starts.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::util;

/// A tool and the Debian packages that bring it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub command: &'static str,
    pub packages: &'static [&'static str],
}

/// Load generator and sink: nothing runs without them.
pub const POSTFIX: Tool = Tool {
    command: "smtp-source",
    packages: &["postfix"],
};
/// The DNS server for MX lookups.
pub const UNBOUND: Tool = Tool {
    command: "unbound",
    packages: &["unbound"],
};
/// Haraka's runtime.
pub const NODE: Tool = Tool {
    command: "npm",
    packages: &["nodejs", "npm"],
};

/// True if `command` is on the PATH (or in /usr/sbin, where postfix puts its tools).
pub fn have(command: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| is_executable(&d.join(command)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Install the packages of every missing tool in one apt-get run.
pub fn ensure(tools: &[Tool]) -> anyhow::Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|t| !have(t.command))
        .flat_map(|t| t.packages.iter().copied())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "missing tools; install as root: apt-get install {}",
            missing.join(" ")
        );
    }
    eprintln!("bench: installing {}", missing.join(" "));
    if missing.contains(&"postfix") {
        preseed_postfix()?;
    }
    util::run(Command::new("apt-get").args(["update", "-q"]))?;
    util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )?;
    let still: Vec<&str> = tools
        .iter()
        .filter(|t| !have(t.command))
        .map(|t| t.command)
        .collect();
    if !still.is_empty() {
        bail!("apt-get did not bring {}", still.join(", "));
    }
    Ok(())
}

fn preseed_postfix() -> anyhow::Result<()> {
    let mut child = Command::new("debconf-set-selections")
        .stdin(Stdio::piped())
        .spawn()
        .context("running debconf-set-selections")?;
    if let Some(stdin) = child.stdin.as_mut() {
        stdin
            .write_all(b"postfix postfix/main_mailer_type select No configuration\n")
            .context("writing to debconf-set-selections")?;
    }
    let status = child.wait().context("waiting for debconf-set-selections")?;
    if !status.success() {
        bail!("debconf-set-selections failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_on_the_path() {
        assert!(have("sh"));
        assert!(!have("no-such-command-haraka-bench"));
    }
}
