//! The processes a benchmark starts, and what `/proc` says about them.
//!
//! A [`Proc`] and every process below it (Haraka's cluster workers) are
//! stopped when it is dropped, whatever failed. Children stay in the
//! xtask's process group, so a Ctrl-C at the terminal reaches them too.
//! [`usage`] sums CPU time and memory over a process and its descendants.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`);
/// 100 on every Linux architecture this runs on.
const CLK_TCK: u64 = 100;

/// A child process; it and its descendants are stopped on drop.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl Proc {
    /// Spawn `cmd` with stdin closed and, unless the caller set them,
    /// stdout and stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: Option<&Path>) -> anyhow::Result<Self> {
        if let Some(log) = log {
            let out = File::options()
                .create(true)
                .append(true)
                .open(log)
                .with_context(|| format!("opening {}", log.display()))?;
            let err = out.try_clone().context("duplicating a log handle")?;
            cmd.stdout(out).stderr(err);
        }
        cmd.stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.map(Path::to_path_buf),
        })
    }

    /// The process id (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, e.g. to take its stdout.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Fail with the end of the log if the process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name);
        };
        if let Some(status) = child.try_wait().context("waiting for a child")? {
            self.child = None;
            bail!(
                "{} exited ({status}); log ends:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// SIGTERM to the process and its descendants, up to five seconds'
    /// grace, then SIGKILL to whichever of them is still the same process.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let family: Vec<(u32, u64)> = tree(child.id())
            .into_iter()
            .filter_map(|p| Some((p, start_time(p)?)))
            .collect();
        let signal_all = |sig: Signal| {
            for (p, started) in &family {
                if start_time(*p) == Some(*started)
                    && let Ok(raw) = i32::try_from(*p)
                {
                    let _ = kill(Pid::from_raw(raw), sig);
                }
            }
        };
        signal_all(Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        if let Err(e) = child.wait() {
            eprintln!("bench: reaping {}: {e}", self.name);
        }
        // Workers may outlive their leader.
        signal_all(Signal::SIGKILL);
        // A killed process dies asynchronously: wait until none still runs
        // (so its ports are free for the next target).
        let deadline = Instant::now() + Duration::from_secs(2);
        while family.iter().any(|(p, t)| runs(*p, *t)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// CPU time and memory of a process tree at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// user + system CPU time, all threads, all processes.
    pub cpu: Duration,
    /// Resident memory now (`VmRSS`), KiB, summed.
    pub rss_kib: u64,
    /// Peak resident memory (`VmHWM`), KiB, summed over the processes.
    pub hwm_kib: u64,
}

/// [`Usage`] of `pid` and all its descendants.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let mut total = Usage::default();
    let pids = tree(pid);
    if pids.is_empty() {
        bail!("process {pid} is gone");
    }
    for p in pids {
        // A worker may exit between listing and reading: skip it.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        let (_, ticks) = parse_stat(&stat).with_context(|| format!("/proc/{p}/stat"))?;
        total.cpu += Duration::from_millis(ticks * 1000 / CLK_TCK);
        total.rss_kib += status_kib(&status, "VmRSS").unwrap_or(0);
        total.hwm_kib += status_kib(&status, "VmHWM").unwrap_or(0);
    }
    Ok(total)
}

/// Reset the peak RSS (`VmHWM`) of `pid` and its descendants to their
/// current RSS (`echo 5 > /proc/PID/clear_refs`).
pub fn reset_peak(pid: u32) -> anyhow::Result<()> {
    for p in tree(pid) {
        let path = format!("/proc/{p}/clear_refs");
        std::fs::write(&path, "5").with_context(|| format!("resetting the peak RSS: {path}"))?;
    }
    Ok(())
}

/// `pid` and every process below it.
pub fn tree(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            Some((p, parse_stat(&stat)?.0))
        })
        .collect();
    if !parents.iter().any(|(p, _)| *p == pid) {
        return Vec::new();
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// (parent pid, utime + stime in clock ticks) from a `/proc/<pid>/stat` line.
pub fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// The start time of `pid` (field 22 of its stat line): with the pid, it
/// names one process for good, even if the pid is reused later.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True while the process `pid` started at `started` exists and is not a zombie.
fn runs(pid: u32, started: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("X");
    let same = fields.nth(18).and_then(|t| t.parse::<u64>().ok()) == Some(started);
    same && state != "Z" && state != "X"
}

/// A `Name:   123 kB` value of `/proc/<pid>/status`, in KiB.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k != name {
            return None;
        }
        v.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let cases = [
            (
                "12 (cat) R 7 12 1 0 -1 0 0 0 0 0 30 5 0 0 20",
                Some((7, 35)),
            ),
            ("12 (a b) c)) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0", Some((1, 3))),
            ("12 (short) R 7", None),
            ("no parenthesis", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_stat(line), want, "{line}");
        }
    }

    #[test]
    fn status_values() {
        let status = "Name:\tx\nVmHWM:\t    2172 kB\nVmRSS:\t    1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM"), Some(2172));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_usage_and_tree() {
        let me = std::process::id();
        let u = usage(me).unwrap();
        // Other tests of this process allocate concurrently: only stable facts.
        assert!(u.rss_kib > 0 && u.hwm_kib > 0, "{u:?}");
        assert_eq!(tree(me).first(), Some(&me));
        assert!(tree(u32::MAX).is_empty());
        assert!(start_time(me).is_some());
        reset_peak(me).unwrap();
        let after = usage(me).unwrap();
        assert!(after.rss_kib > 0 && after.hwm_kib > 0, "{after:?}");
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn stopping_ends_the_children_too() {
        // A shell that ignores SIGTERM, with a child that would outlive it.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped());
        let mut p = Proc::spawn("sh", &mut cmd, None).unwrap();
        let mut line = String::new();
        let out = p.child_mut().unwrap().stdout.take().unwrap();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
        let child: u32 = line.trim().parse().unwrap();
        let pid = p.pid();
        p.check_alive().unwrap();
        assert_eq!(tree(pid), vec![pid, child]);
        p.stop();
        assert!(tree(pid).is_empty());
        // The orphaned sleep is gone too (or a zombie waiting for init).
        let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z") || state.contains(") X"),
            "{state}"
        );
        assert!(p.check_alive().is_err());
    }
}
