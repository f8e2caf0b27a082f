//! `cargo xtask e2e`: end-to-end checks against real peers. Postfix is the
//! backend and the remote MX, swaks the client, unbound the DNS server,
//! all private instances on 127.0.0.x addresses under one run directory,
//! all stopped when the run ends, whatever failed. Nothing here ever sends
//! a packet off the loopback network.
//!
//! A check is a plain `fn(&Env) -> anyhow::Result<()>` in a list (see
//! [`checks`]); the run prints `ok   <name>` or `FAIL <name>: why` per
//! check and ends with `e2e: N passed, M failed`. A new group of checks
//! lives in its own file with a `pub const CHECKS: &[Check]`, appended in
//! [`checks`]. A typical haraka-rs check:
//!
//! ```text
//! fn forwards_with_xclient(env: &Env) -> anyhow::Result<()> {
//!     let root = env.root("haraka-in", "haraka-in", &[])?;   // rewritten copy
//!     let _haraka = env.haraka(&root, net::HARAKA_IN.into())?; // killed on drop
//!     let id = env.unique("a");
//!     Swaks::new(net::HARAKA_IN.into(), "bob@example.com")
//!         .source_ip(net::CLIENTS[0].into())
//!         .ehlo("client.test")
//!         .id(&id)
//!         .run()?
//!         .expect(".", "250")?;
//!     let msg = env.backend.wait_for_id(&id, Duration::from_secs(20))?;
//!     ensure!(msg.header("Received").is_some_and(|r| r.contains("[127.0.0.11]")));
//!     Ok(())
//! }
//! ```
//!
//! Usage: `cargo xtask e2e [--keep] [--list] [FILTER...]`: FILTERs select
//! checks whose name contains one of them; `--keep` keeps the run directory
//! (logs, queues, mailboxes) even when everything passed.

#![allow(
    dead_code,
    unused_imports,
    reason = "a toolkit: the haraka-rs checks use what the self-checks do not"
)]

mod dns;
mod haraka;
mod inbound;
mod install;
mod outbound;
mod plugins;
mod postfix;
mod proc;
mod raw;
mod roots;
mod selftest;
mod sink;
mod swaks;
mod tls;

use std::cell::OnceCell;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use dns::{Answer, Record, Unbound};
pub use haraka::{HarakaRs, copy_root};
pub use postfix::{Message, Postfix, PostfixConfig};
pub use proc::{Daemon, wait_file_line, wait_port_closed, wait_port_open, wait_until};
pub use raw::{RawSmtp, Reply};
pub use sink::{Session, Sink, Verdict};
pub use swaks::{Swaks, Transcript};
pub use tls::Cert;

/// The loopback addresses and ports every check agrees on.
pub mod net {
    use std::net::{Ipv4Addr, SocketAddrV4};

    const fn lo(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, last)
    }

    /// haraka-rs as haraka-in (the example's port 25 moved to 2525).
    pub const HARAKA_IN: SocketAddrV4 = SocketAddrV4::new(lo(2), 2525);
    /// haraka-rs as haraka-out.
    pub const HARAKA_OUT: SocketAddrV4 = SocketAddrV4::new(lo(3), 2526);
    /// The Postfix backend (the example's Mailcow at 10.0.0.2:25). Its address
    /// is also the one haraka-out's relay ACL allows.
    pub const BACKEND: SocketAddrV4 = SocketAddrV4::new(lo(20), 2525);
    /// The Postfix MX host for the outbound checks: STARTTLS, port 25.
    pub const MX: SocketAddrV4 = SocketAddrV4::new(lo(31), 25);
    /// The scripted SMTP sink (4xx/5xx on demand), port 25.
    pub const SINK: SocketAddrV4 = SocketAddrV4::new(lo(32), 25);
    /// An MX address where nothing listens.
    pub const DOWN: Ipv4Addr = lo(39);
    /// The DNS server.
    pub const DNS: SocketAddrV4 = SocketAddrV4::new(lo(153), 5353);
    /// Source addresses for test clients.
    pub const CLIENTS: [Ipv4Addr; 3] = [lo(11), lo(12), lo(13)];
    /// A client address no server trusts for XCLIENT or relaying.
    pub const STRANGER: Ipv4Addr = lo(14);
    /// Addresses the backend accepts XCLIENT from: haraka-rs connects from
    /// 127.0.0.1 unless it binds its listen address.
    pub const XCLIENT_HOSTS: [Ipv4Addr; 2] = [lo(1), lo(2)];
    /// The domain the backend (and haraka-in's host_list) receives mail for.
    pub const LOCAL_DOMAIN: &str = "example.com";
}

/// The DNS data of every run: domains under `.test` for the outbound checks.
pub fn records() -> Vec<Record> {
    let mx = *net::MX.ip();
    vec![
        Record::mx("mx-ok.test", mx),
        Record::mx("sender.test", mx),
        Record::A {
            name: "a-only.test".into(),
            ip: mx,
        },
        Record::mx("scripted.test", *net::SINK.ip()),
        Record::mx("mx-down.test", net::DOWN),
        Record::NullMx {
            domain: "null-mx.test".into(),
        },
        // Two MX hosts: the preferred one refuses connections, the backup
        // is the scripted sink.
        Record::Mx {
            domain: "backup-mx.test".into(),
            pref: 10,
            host: "mx1.backup-mx.test".into(),
            ip: net::DOWN,
        },
        Record::Mx {
            domain: "backup-mx.test".into(),
            pref: 20,
            host: "mx2.backup-mx.test".into(),
            ip: *net::SINK.ip(),
        },
    ]
}

/// The peers every check can use; all stopped when dropped.
pub struct Env {
    /// This run's directory (logs, queues, mailboxes, roots).
    pub dir: PathBuf,
    /// The backend Postfix (haraka-in forwards to it).
    pub backend: Postfix,
    /// The remote MX Postfix with STARTTLS (mx-ok.test, sender.test, a-only.test).
    pub mx: Postfix,
    /// The MX's certificate.
    pub mx_cert: Cert,
    /// The scripted sink (scripted.test).
    pub sink: Sink,
    /// The DNS server.
    pub dns: Unbound,
    haraka_bin: OnceCell<PathBuf>,
    counter: AtomicU64,
}

#[allow(
    dead_code,
    reason = "the haraka-rs checks call what the self-checks do not"
)]
impl Env {
    /// Start every peer under `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let mx_cert = Cert::self_signed(&["mx.mx-ok.test", "mx.sender.test"])?;
        let (cert, key) = mx_cert.write_pair(&dir.join("certs"), "mx")?;
        let backend = Postfix::create(
            dir,
            PostfixConfig {
                name: "backend".into(),
                hostname: "backend.example.com".into(),
                listen: net::BACKEND,
                domains: vec![net::LOCAL_DOMAIN.into()],
                xclient_hosts: net::XCLIENT_HOSTS.iter().map(ToString::to_string).collect(),
                tls: None,
                extra: Vec::new(),
            },
        )?;
        let mx = Postfix::create(
            dir,
            PostfixConfig {
                name: "mx".into(),
                hostname: "mx.mx-ok.test".into(),
                listen: net::MX,
                domains: ["mx-ok.test", "sender.test", "a-only.test"]
                    .map(Into::into)
                    .to_vec(),
                xclient_hosts: Vec::new(),
                tls: Some((cert, key)),
                extra: Vec::new(),
            },
        )?;
        let dns = Unbound::start(dir, net::DNS, &records())?;
        // Postfix takes a second or two to start: start both at once.
        std::thread::scope(|s| {
            let b = s.spawn(|| backend.start());
            let m = mx.start();
            b.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("starting the backend panicked")))
                .and(m)
        })?;
        let sink = Sink::start(net::SINK.into())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            backend,
            mx,
            mx_cert,
            sink,
            dns,
            haraka_bin: OnceCell::new(),
            counter: AtomicU64::new(0),
        })
    }

    /// Undo what a check may have left behind, so one failure does not
    /// cascade: both Postfix instances running, the sink accepting.
    pub fn reset(&self) -> anyhow::Result<()> {
        for pf in [&self.backend, &self.mx] {
            if !pf.is_running() {
                pf.start()?;
            }
        }
        self.sink.reset();
        self.sink.clear();
        Ok(())
    }

    /// A fresh token for `X-E2E-Id` headers and addresses.
    pub fn unique(&self, what: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{what}-{}-{n}", std::process::id())
    }

    /// The haraka-rs binary (built on first use).
    pub fn haraka_bin(&self) -> anyhow::Result<&Path> {
        if self.haraka_bin.get().is_none() {
            let bin = haraka::binary()?;
            let _ = self.haraka_bin.set(bin);
        }
        self.haraka_bin
            .get()
            .map(PathBuf::as_path)
            .context("haraka-rs binary path not set")
    }

    /// Copy `config-examples/<example>` into this run as `<dir>/roots/<name>`
    /// with the standard rewrite rules plus `extra` ones.
    pub fn root(
        &self,
        example: &str,
        name: &str,
        extra: &[(String, String)],
    ) -> anyhow::Result<PathBuf> {
        let dest = self.dir.join("roots").join(name);
        let mut rules = roots::rules_for(example, &dest)
            .with_context(|| format!("no rewrite rules for {example}"))?;
        rules.extend_from_slice(extra);
        copy_root(example, &dest, &rules)
    }

    /// Start haraka-rs on `root`, waiting until `listen` accepts.
    pub fn haraka(&self, root: &Path, listen: SocketAddr) -> anyhow::Result<HarakaRs> {
        HarakaRs::start(self.haraka_bin()?, root, listen, &[])
    }
}

/// A named check.
pub type Check = (&'static str, fn(&Env) -> anyhow::Result<()>);

/// Every check, in the order they run.
pub fn checks() -> Vec<Check> {
    let mut all = selftest::CHECKS.to_vec();
    all.extend_from_slice(inbound::CHECKS);
    all.extend_from_slice(outbound::CHECKS);
    all.extend_from_slice(plugins::CHECKS);
    all
}

/// Longest time a single check should take before it is reported as slow.
const SLOW: Duration = Duration::from_secs(60);

/// `cargo xtask e2e [--keep] [--list] [FILTER...]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let keep = args.iter().any(|a| a == "--keep");
    let filters: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected: Vec<Check> = checks()
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}");
        }
        return Ok(());
    }
    if selected.is_empty() {
        bail!("no check matches {filters:?} (see cargo xtask e2e --list)");
    }
    let started = Instant::now();
    install::ensure_packages()?;
    install::stop_system_postfix()?;
    let dir = run_dir()?;
    let t = Instant::now();
    let env = Env::start(&dir).context("starting the peers")?;
    println!(
        "e2e: peers up in {:.1}s ({})",
        t.elapsed().as_secs_f64(),
        dir.display()
    );
    let (mut passed, mut failed) = (0usize, 0usize);
    for (name, check) in &selected {
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| check(&env))).unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(anyhow::anyhow!("the check panicked: {why}"))
        });
        let took = t.elapsed();
        let result = match (result, env.reset()) {
            (Ok(()), Err(e)) => Err(e.context("restoring the peers after the check")),
            (Err(e), Err(r)) => Err(e.context(format!("(then restoring the peers failed: {r:#})"))),
            (r, Ok(())) => r,
        };
        match result {
            Ok(()) => {
                passed += 1;
                println!("ok   {name} ({:.1}s)", took.as_secs_f64());
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e:#}");
            }
        }
        if took > SLOW {
            println!("note {name} took {:.0}s", took.as_secs_f64());
        }
    }
    let t = Instant::now();
    drop(env);
    println!("e2e: peers stopped in {:.1}s", t.elapsed().as_secs_f64());
    if failed == 0 && !keep {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("e2e: removing {}: {e}", dir.display());
        }
    } else {
        println!("e2e: logs, queues and mailboxes kept in {}", dir.display());
    }
    println!("e2e: took {:.1}s", started.elapsed().as_secs_f64());
    println!("e2e: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} e2e check(s) failed");
    }
    Ok(())
}

/// The folder all runs live under.
fn base_dir() -> PathBuf {
    std::env::temp_dir().join("haraka-rs-e2e")
}

/// A fresh `run-<pid>` folder; earlier runs whose xtask is gone are cleaned
/// up first (their Postfix instances and daemons stopped, their files
/// removed); a run still in progress makes this one fail.
fn run_dir() -> anyhow::Result<PathBuf> {
    let base = base_dir();
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    for entry in std::fs::read_dir(&base).with_context(|| format!("listing {}", base.display()))? {
        let path = entry?.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && proc::pid_is(pid, "xtask") {
            bail!("another e2e run (pid {pid}) is using {}", path.display());
        }
        clean_stale(&path);
    }
    let dir = base.join(format!("run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Postfix insists that nobody but root can write above its queue.
    install::set_mode(&dir, 0o755)?;
    Ok(dir)
}

/// Stop whatever an interrupted run left running in `dir`, then remove it.
fn clean_stale(dir: &Path) {
    let marker = dir.display().to_string();
    for pf in ["backend", "mx"] {
        let conf = dir.join(pf).join("conf");
        if conf.join("main.cf").exists() {
            postfix::stop_stale(&conf);
        }
    }
    for pid_file in walk_pid_files(dir) {
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        if let Some(pid) = pid
            && proc::pid_is(pid, &marker)
        {
            eprintln!("e2e: killing leftover pid {pid} ({})", pid_file.display());
            let _ = proc::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("e2e: removing {}: {e}", dir.display());
    }
}

fn walk_pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            // Postfix's own pid files are handled by `postfix stop`.
            if p.is_dir() && !p.ends_with("queue") {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pid") {
                out.push(p);
            }
        }
    }
    out
}
