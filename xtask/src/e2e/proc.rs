//! Waiting for conditions with a deadline, and child processes that are
//! always stopped: a [`Daemon`] is killed when it is dropped, whatever
//! happened to the check that started it.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(25);

/// Poll `probe` until it yields `Some`, failing after `timeout` with a
/// message naming `what`. An `Err` from the probe ends the wait at once.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// True when a TCP connection to `addr` is accepted.
pub fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

/// Wait until `addr` accepts TCP connections.
pub fn wait_port_open(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    wait_until(&format!("{addr} to accept"), timeout, || {
        Ok(port_open(addr).then_some(()))
    })
}

/// Wait until `addr` refuses TCP connections.
pub fn wait_port_closed(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    wait_until(&format!("{addr} to close"), timeout, || {
        Ok((!port_open(addr)).then_some(()))
    })
}

/// Read a file that may not exist yet (empty then) and may hold bytes that
/// are not UTF-8.
pub fn read_lossy(path: &Path) -> anyhow::Result<String> {
    match std::fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Wait until the file at `path` has a line containing `needle`, counting
/// only text after byte `from` (a length from [`file_len`] taken earlier);
/// returns that line.
pub fn wait_file_line(
    path: &Path,
    from: usize,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    wait_until(
        &format!("{needle:?} in {}", path.display()),
        timeout,
        || {
            let text = read_lossy(path)?;
            let tail = text.get(from..).unwrap_or("");
            Ok(tail.lines().find(|l| l.contains(needle)).map(str::to_owned))
        },
    )
}

/// The current length of a file (0 when missing): a mark for [`wait_file_line`].
pub fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).map_or(0, |m| usize::try_from(m.len()).unwrap_or(usize::MAX))
}

/// The last `n` lines of `text`, for error messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Send `signal` to a process id; a process that is already gone is fine.
pub fn signal(pid: u32, signal: Signal) -> anyhow::Result<()> {
    let raw = i32::try_from(pid).context("pid out of range")?;
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("kill -{signal} {pid}")),
    }
}

/// True if `pid` is alive and its command line mentions `marker` (so a
/// recycled pid is never mistaken for one of ours).
pub fn pid_is(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(marker))
        .unwrap_or(false)
}

/// A long-running child process with its output in a log file, killed on drop.
pub struct Daemon {
    name: String,
    cmd_line: Vec<String>,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    pid_file: Option<PathBuf>,
    child: Option<Child>,
}

impl Daemon {
    /// Describe a daemon; nothing runs until [`Daemon::start`]. Its stdout and
    /// stderr are appended to `log`; its pid is written to `pid_file` so a
    /// later run can clean up after a crashed one.
    pub fn new(name: &str, program: &Path, args: &[String], log: &Path) -> Self {
        let mut cmd_line = vec![program.display().to_string()];
        cmd_line.extend(args.iter().cloned());
        Self {
            name: name.to_owned(),
            cmd_line,
            program: program.to_path_buf(),
            args: args.to_vec(),
            envs: Vec::new(),
            log: log.to_path_buf(),
            pid_file: Some(log.with_extension("pid")),
            child: None,
        }
    }

    /// Set an environment variable for the process.
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The log file holding the process's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process has logged so far (across restarts).
    pub fn log(&self) -> String {
        read_lossy(&self.log).unwrap_or_default()
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Spawn the process (a no-op while it runs).
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let err = log.try_clone().context("duplicating the log handle")?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}: {}", self.name, self.cmd_line.join(" ")))?;
        if let Some(p) = &self.pid_file {
            std::fs::write(p, format!("{}\n", child.id()))
                .with_context(|| format!("writing {}", p.display()))?;
        }
        self.child = Some(child);
        Ok(())
    }

    /// Spawn and wait until `addr` accepts; a process that exits first fails
    /// with the tail of its log.
    pub fn start_and_wait(&mut self, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
        if !self.is_running() && port_open(addr) {
            bail!(
                "{addr} is already taken by another server; not starting {}",
                self.name
            );
        }
        self.start()?;
        let name = self.name.clone();
        wait_until(&format!("{name} to accept on {addr}"), timeout, || {
            if let Some(status) = self.try_wait()? {
                bail!(
                    "{name} exited with {status} before listening on {addr}; its log ends:\n{}",
                    tail(&self.log(), 20)
                );
            }
            Ok(port_open(addr).then_some(()))
        })
    }

    /// The exit status if the process has ended (and forget it then).
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            return Ok(None);
        };
        let status = child.try_wait().context("waiting for a child")?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_wait(), Ok(None)) && self.child.is_some()
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            // An already-exited child makes kill fail; wait reaps it either way.
            let _ = child.kill();
            child.wait().context("reaping a killed child")?;
        }
        Ok(())
    }

    /// SIGTERM, then wait up to `grace` for a clean exit; SIGKILL after that.
    /// Returns the exit status of a clean exit, `None` if it had to be killed
    /// or was not running.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let Some(pid) = self.pid() else {
            return Ok(None);
        };
        signal(pid, Signal::SIGTERM)?;
        let name = self.name.clone();
        let exited = wait_until(&format!("{name} to exit after SIGTERM"), grace, || {
            self.try_wait()
        });
        match exited {
            Ok(status) => Ok(Some(status)),
            Err(_) => {
                self.kill9()?;
                Ok(None)
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Err(e) = self.kill9() {
            eprintln!("e2e: stopping {}: {e:#}", self.name);
        }
    }
}
