//! Small helpers for running commands.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root.
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Run cargo with `args` in the workspace root; fail on a non-zero exit.
pub fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    run(Command::new(cargo).args(args).current_dir(root()))
}

/// Run a command, inheriting stdio; fail on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Run a command and return its stdout; fail on a non-zero exit.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The options of an xtask verb, read one at a time: a flag, then its value
/// where it takes one. Errors name the flag and end with the verb's usage.
pub struct Args<'a> {
    it: std::slice::Iter<'a, String>,
    usage: &'static str,
}

impl<'a> Args<'a> {
    pub fn new(args: &'a [String], usage: &'static str) -> Args<'a> {
        Args {
            it: args.iter(),
            usage,
        }
    }

    /// The next flag, or `None` at the end.
    pub fn next_flag(&mut self) -> Option<&'a str> {
        self.it.next().map(String::as_str)
    }

    /// The value after `flag`.
    pub fn value(&mut self, flag: &str) -> anyhow::Result<String> {
        let usage = self.usage;
        self.it
            .next()
            .cloned()
            .with_context(|| format!("{flag} needs a value\n\n{usage}"))
    }

    /// The value after `flag`, as a number.
    pub fn num<T: std::str::FromStr>(&mut self, flag: &str) -> anyhow::Result<T> {
        let v = self.value(flag)?;
        v.parse()
            .ok()
            .with_context(|| format!("{flag}: not a number: {v:?}"))
    }

    /// The error for `-h`/`--help` and for a flag the verb does not know.
    pub fn refuse(&self, flag: &str) -> anyhow::Error {
        match flag {
            "-h" | "--help" => anyhow::anyhow!("{}", self.usage),
            other => anyhow::anyhow!("unknown option {other:?}\n\n{}", self.usage),
        }
    }
}
