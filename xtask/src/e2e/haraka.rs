//! haraka-rs under test: copying a `config-examples/<name>` root with its
//! addresses, ports and paths rewritten, and running the binary on it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::proc::{Daemon, file_len, read_lossy, tail, wait_file_line};
use crate::util;

/// How long haraka-rs may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Copy `config-examples/<example>` to `dest`, replacing in every file each
/// `from` with its `to`, rule by rule in order. A rule that matches nothing
/// is an error (the example changed, or the rule is wrong), so the copy
/// never silently keeps a production address.
pub fn copy_root(
    example: &str,
    dest: &Path,
    rules: &[(String, String)],
) -> anyhow::Result<PathBuf> {
    let src = util::root().join("config-examples").join(example);
    if !src.is_dir() {
        bail!("no example root {}", src.display());
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("removing {}", dest.display()))?;
    }
    let mut used = vec![false; rules.len()];
    copy_dir(&src, dest, rules, &mut used)?;
    let unused: Vec<&str> = rules
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|((from, _), _)| from.as_str())
        .collect();
    if !unused.is_empty() {
        bail!("rewriting {example}: no file contains {unused:?}");
    }
    Ok(dest.to_path_buf())
}

fn copy_dir(
    src: &Path,
    dest: &Path,
    rules: &[(String, String)],
    used: &mut [bool],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", src.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let from = entry.path();
        let to = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&from, &to, rules, used)?;
            continue;
        }
        let bytes = std::fs::read(&from).with_context(|| format!("reading {}", from.display()))?;
        let out = match String::from_utf8(bytes) {
            Ok(mut text) => {
                for ((pat, rep), u) in rules.iter().zip(used.iter_mut()) {
                    if text.contains(pat.as_str()) {
                        *u = true;
                        text = text.replace(pat.as_str(), rep);
                    }
                }
                text.into_bytes()
            }
            Err(e) => e.into_bytes(),
        };
        std::fs::write(&to, out).with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(())
}

/// The haraka-rs binary, built (debug) if needed. `HARAKA_RS_BIN` overrides.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("HARAKA_RS_BIN") {
        return Ok(PathBuf::from(p));
    }
    util::cargo(&["build", "-p", "haraka-rs"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| util::root().join("target"), PathBuf::from);
    let bin = target.join("debug").join("haraka-rs");
    if !bin.is_file() {
        bail!("built haraka-rs but {} is missing", bin.display());
    }
    Ok(bin)
}

/// One haraka-rs server (`haraka-rs -c ROOT`), its stdout and stderr in
/// `<root>.log`; killed when dropped.
pub struct HarakaRs {
    bin: PathBuf,
    root: PathBuf,
    listen: SocketAddr,
    daemon: Daemon,
}

impl HarakaRs {
    /// Start `bin -c root` and wait until `listen` accepts. `envs` are extra
    /// environment variables (e.g. `RUST_LOG`).
    pub fn start(
        bin: &Path,
        root: &Path,
        listen: SocketAddr,
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let name = root.file_name().map_or_else(
            || "haraka-rs".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let log = root.with_file_name(format!("{name}.log"));
        let args = vec!["-c".to_owned(), root.display().to_string()];
        let mut daemon = Daemon::new(&format!("haraka-rs ({name})"), bin, &args, &log);
        for (k, v) in envs {
            daemon.env(k, v);
        }
        let mut this = Self {
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            listen,
            daemon,
        };
        this.daemon.start_and_wait(listen, START_TIMEOUT)?;
        Ok(this)
    }

    /// The root it runs from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its SMTP listener.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Its pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.pid()
    }

    /// `kill -9` (messages in flight are the queue's business).
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.daemon.kill9()
    }

    /// SIGTERM and wait for a clean exit; fails if it had to be killed or
    /// exited non-zero.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        match self.daemon.stop(Duration::from_secs(15))? {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!(
                "haraka-rs exited {s} on SIGTERM; log ends:\n{}",
                self.log_tail()
            ),
            None => bail!(
                "haraka-rs ignored SIGTERM for 15s; log ends:\n{}",
                self.log_tail()
            ),
        }
    }

    /// Start again (after [`HarakaRs::kill9`] or [`HarakaRs::stop`]).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.daemon.kill9()?;
        self.daemon.start_and_wait(self.listen, START_TIMEOUT)
    }

    /// Run the binary once more on the same root with `args` (e.g.
    /// `["--qstat"]`, `["--check"]`); returns its stdout, fails on a non-zero exit.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        util::output(
            std::process::Command::new(&self.bin)
                .arg("-c")
                .arg(&self.root)
                .args(args),
        )
    }

    /// Send a signal (e.g. SIGHUP to reload).
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self.pid().context("haraka-rs is not running")?;
        super::proc::signal(pid, sig)
    }

    /// The whole log so far (across restarts).
    pub fn log(&self) -> String {
        read_lossy(self.daemon.log_path()).unwrap_or_default()
    }

    /// A mark for [`HarakaRs::wait_log`].
    pub fn log_mark(&self) -> usize {
        file_len(self.daemon.log_path())
    }

    /// Wait for a log line after `mark` containing `needle`.
    pub fn wait_log(&self, mark: usize, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        wait_file_line(self.daemon.log_path(), mark, needle, timeout)
            .with_context(|| format!("haraka-rs log ends:\n{}", self.log_tail()))
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log(), 20)
    }
}
