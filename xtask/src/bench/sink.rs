//! Postfix's `smtp-sink` as the final destination: it accepts every message
//! and throws it away. Its `-c` counters (`sess=N quit=N mesg=N`, written on
//! every event) are read from a pipe, so the benchmark knows the moment the
//! last message of a run has arrived.

use std::net::SocketAddrV4;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::procs::Proc;

/// What the reader thread has seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    msgs: u64,
    at: Instant,
    closed: bool,
}

type Shared = Arc<(Mutex<Seen>, Condvar)>;

/// A running `smtp-sink`; stopped when dropped.
pub struct SmtpSink {
    seen: Shared,
    /// Held so the process is stopped when the sink is dropped.
    _proc: Proc,
}

impl SmtpSink {
    /// Start `smtp-sink -c` on `addr` and wait until it accepts.
    pub fn start(addr: SocketAddrV4) -> anyhow::Result<Self> {
        let mut cmd = Command::new("smtp-sink");
        // -u: required as root (it drops to that user after binding);
        // -m: simultaneous connections handled; the last argument is the backlog.
        cmd.args(["-c", "-u", "postfix", "-m", "2048", "-t", "100"])
            .arg(format!("{}:{}", addr.ip(), addr.port()))
            .arg("2048")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn("smtp-sink", &mut cmd, None)?;
        let stdout = proc
            .child_mut()
            .and_then(|c| c.stdout.take())
            .context("smtp-sink has no stdout pipe")?;
        let seen: Shared = Arc::new((
            Mutex::new(Seen {
                msgs: 0,
                at: Instant::now(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&seen);
        thread::Builder::new()
            .name("smtp-sink counter".into())
            .spawn(move || read_counters(stdout, &shared))
            .context("starting the counter thread")?;
        super::wait_accepts(addr.into(), &mut proc, Duration::from_secs(10))?;
        Ok(Self { seen, _proc: proc })
    }

    /// Messages received so far.
    pub fn count(&self) -> u64 {
        self.seen
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .msgs
    }

    /// Wait until at least `target` messages have arrived; returns the moment
    /// the counter reached it. Fails after `timeout`, naming how many came.
    pub fn wait_for(&self, target: u64, timeout: Duration) -> anyhow::Result<Instant> {
        let (lock, cvar) = &*self.seen;
        let deadline = Instant::now() + timeout;
        let mut seen = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if seen.msgs >= target {
                return Ok(seen.at);
            }
            if seen.closed {
                bail!("smtp-sink exited after {} of {target} messages", seen.msgs);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "only {} of {target} messages reached smtp-sink within {timeout:?}",
                    seen.msgs
                );
            }
            seen = cvar
                .wait_timeout(seen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn read_counters(mut out: impl std::io::Read, shared: &Shared) {
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        // Each update ends with '\r' (a terminal counter); keep the last complete one.
        let Some(end) = pending.iter().rposition(|b| *b == b'\r' || *b == b'\n') else {
            continue;
        };
        let latest = String::from_utf8_lossy(&pending[..end])
            .rsplit(['\r', '\n'])
            .find_map(parse_msgs);
        pending.drain(..=end);
        if let Some(msgs) = latest {
            let (lock, cvar) = &**shared;
            let mut seen = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if msgs != seen.msgs {
                seen.msgs = msgs;
                seen.at = now;
                cvar.notify_all();
            }
        }
    }
    let (lock, cvar) = &**shared;
    lock.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
    cvar.notify_all();
}

/// `mesg=N` of one counter line (`sess=3 quit=3 mesg=3`).
pub fn parse_msgs(line: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("mesg="))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn counter_lines() {
        let cases = [
            ("sess=3 quit=3 mesg=7", Some(7)),
            ("mesg=0", Some(0)),
            ("sess=1 quit=0", None),
            ("msg=3", None),
            ("mesg=x", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(parse_msgs(line), want, "{line}");
        }
    }

    #[test]
    fn counters_from_a_stream() {
        let shared: Shared = Arc::new((
            Mutex::new(Seen {
                msgs: 0,
                at: Instant::now(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let input: &[u8] =
            b"sess=1 quit=0 mesg=0\rsess=1 quit=1 mesg=1\rsess=2 quit=2 mesg=2\rsess=3";
        read_counters(input, &shared);
        let seen = *shared.0.lock().unwrap();
        assert_eq!(seen.msgs, 2);
        assert!(seen.closed);
    }
}
