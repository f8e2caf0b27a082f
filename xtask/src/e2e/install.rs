//! Installs the real peers when they are missing (Debian packages), and
//! keeps the Debian `postfix` package's own system instance out of the way:
//! every check runs private instances only.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::util;

/// The Debian packages the e2e checks use.
pub const PACKAGES: &[&str] = &[
    "postfix",            // the backend and the MX host
    "swaks",              // the SMTP client
    "libnet-ssleay-perl", // swaks's STARTTLS
    "unbound",            // the DNS server
    "bind9-dnsutils",     // dig, to check what the DNS server answers
];

/// Install whichever of [`PACKAGES`] is missing; a no-op when all are there.
pub fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "e2e needs these Debian packages: {}; install them as root (apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("e2e: installing {}", missing.join(" "));
    preseed_postfix()?;
    let policy = NoServiceStarts::install()?;
    util::run(Command::new("apt-get").args(["update", "-q"]))?;
    let result = util::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confdef",
                "-o",
                "Dpkg::Options::=--force-confold",
            ])
            .args(&missing),
    );
    drop(policy);
    result?;
    let still: Vec<&str> = missing.into_iter().filter(|p| !installed(p)).collect();
    if !still.is_empty() {
        bail!("apt-get did not install {}", still.join(", "));
    }
    Ok(())
}

/// True if the Debian package is installed.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "install ok installed")
        .unwrap_or(false)
}

/// Tell the postfix package not to configure a system mail server.
fn preseed_postfix() -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
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

/// While alive, Debian's maintainer scripts start no services (a
/// `policy-rc.d` that answers 101), unless the machine already has its own
/// policy, which is then left alone.
struct NoServiceStarts {
    created: bool,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn install() -> anyhow::Result<Self> {
        if Path::new(POLICY_RC_D).exists() {
            return Ok(Self { created: false });
        }
        std::fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# cargo xtask e2e: no service starts during install\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        set_mode(Path::new(POLICY_RC_D), 0o755)?;
        Ok(Self { created: true })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.created
            && let Err(e) = std::fs::remove_file(POLICY_RC_D)
        {
            eprintln!("e2e: removing {POLICY_RC_D}: {e}");
        }
    }
}

/// Stop the system Postfix instance (`/etc/postfix`) if it runs: its
/// listeners could hold the ports the private instances need.
pub fn stop_system_postfix() -> anyhow::Result<()> {
    if !Path::new("/etc/postfix/main.cf").exists() {
        return Ok(());
    }
    let running = Command::new("postfix")
        .args(["-c", "/etc/postfix", "status"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if running {
        eprintln!("e2e: stopping the system Postfix instance");
        util::run(Command::new("postfix").args(["-c", "/etc/postfix", "stop"]))?;
    }
    Ok(())
}

/// chmod.
pub fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}
