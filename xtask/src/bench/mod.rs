//! `cargo xtask bench`: haraka-rs against Haraka 3.0.0, on loopback, in one
//! invocation, with the same workload:
//!
//! * `direct`: `smtp-source` straight to `smtp-sink`, the machine's limit;
//! * `haraka-rs-in` / `haraka-in`: the example haraka-in (smtp_forward to the sink);
//! * `haraka-rs-out` / `haraka-out`: the example haraka-out (relay, outbound
//!   queue, MX lookup through a private unbound, delivery to the sink).
//!
//! Each target reports messages/s end to end, server CPU-seconds per 1,000
//! messages, idle and peak RSS, p50/p99 from end of DATA to the 250, and
//! RSS with many idle connections open (see `doc::METHOD`). A target that
//! cannot run is reported as skipped, with the reason; the others still run.
//!
//! The measured part runs in a private network namespace when the kernel
//! allows it (only a loopback interface exists there), so no server's
//! lookup can leave the machine; every address used is on 127.0.0.0/8
//! either way. Every process started is stopped when the run ends.
//!
//! It is a tool, not a test: `--smoke` runs a few messages per target and
//! asserts nothing about speed.

pub(crate) mod client;
pub(crate) mod doc;
mod haraka_js;
pub(crate) mod install;
mod measure;
pub(crate) mod procs;
pub(crate) mod report;
pub(crate) mod roots;
pub(crate) mod sink;
mod targets;

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::e2e::{Cert, Record, Unbound};
use crate::util;
use procs::Proc;
use report::Row;
use targets::{Ctx, Kind};

const USAGE: &str = "\
cargo xtask bench [options]

  --smoke              a few messages per target, one run, a debug build of
                       haraka-rs, no doc written (for CI: no figure means anything)
  -m, --messages N     messages per run (3000)
  -l, --size BYTES     message body size (10240)
  -s, --concurrency C  connections at once (20)
  --per-conn M         messages per connection (1; smtp-source: M > 1 means -d)
  --runs R             runs per target; figures are medians (5)
  --warmup N           warm-up messages per target (300)
  --idle N             idle connections for the scaling run (1000)
  --targets LIST       comma-separated: direct,haraka-rs-in,haraka-in,haraka-rs-out,haraka-out
  --haraka-nodes N     Haraka's smtp.ini nodes= (0: one process; 'unset'; 'cpus')
  --haraka-nodelay     set TCP_NODELAY on Haraka's sockets (Haraka never does)
  --out PATH           where to write the report (docs/performance.md)
  --no-write           print the table only
  --no-netns           stay in the machine's network namespace
  --keep               keep the run folder (roots, logs, queues)
";

/// What each run sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub messages: u64,
    pub size: usize,
    pub concurrency: usize,
    pub per_conn: u64,
}

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub workload: Workload,
    pub runs: usize,
    pub warmup: u64,
    pub idle_conns: usize,
    pub targets: Vec<Kind>,
    pub haraka_nodes: String,
    /// Force TCP_NODELAY on Haraka's sockets (not Haraka's own behaviour).
    pub haraka_nodelay: bool,
    pub smoke: bool,
    pub out: Option<PathBuf>,
    pub netns: bool,
    pub keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workload: Workload {
                messages: 3000,
                size: 10_240,
                concurrency: 20,
                per_conn: 1,
            },
            runs: 5,
            warmup: 300,
            idle_conns: 1000,
            targets: Kind::ALL.to_vec(),
            haraka_nodes: "0".to_owned(),
            haraka_nodelay: false,
            smoke: false,
            out: Some(util::root().join("docs").join("performance.md")),
            netns: true,
            keep: false,
        }
    }
}

/// Parse the arguments after `bench`.
pub fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let mut a = util::Args::new(args, USAGE);
    while let Some(arg) = a.next_flag() {
        match arg {
            "--smoke" => {
                o.smoke = true;
                o.workload.messages = 20;
                o.workload.concurrency = 2;
                o.runs = 1;
                o.warmup = 0;
                o.idle_conns = 20;
                o.out = None;
            }
            "-m" | "--messages" => o.workload.messages = a.num(arg)?,
            "-l" | "--size" => o.workload.size = a.num(arg)?,
            "-s" | "--concurrency" => o.workload.concurrency = a.num(arg)?,
            "--per-conn" => o.workload.per_conn = a.num(arg)?,
            "--runs" => o.runs = a.num(arg)?,
            "--warmup" => o.warmup = a.num(arg)?,
            "--idle" => o.idle_conns = a.num(arg)?,
            "--targets" => {
                o.targets = a
                    .value(arg)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Kind::from_name(s).with_context(|| format!("unknown target {s:?}")))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--haraka-nodes" => {
                let v = a.value(arg)?;
                o.haraka_nodes = if v == "unset" { String::new() } else { v };
            }
            "--haraka-nodelay" => o.haraka_nodelay = true,
            "--out" => o.out = Some(PathBuf::from(a.value(arg)?)),
            "--no-write" => o.out = None,
            "--no-netns" => o.netns = false,
            "--keep" => o.keep = true,
            other => return Err(a.refuse(other)),
        }
    }
    if o.workload.messages == 0 || o.workload.concurrency == 0 || o.runs == 0 {
        bail!("--messages, --concurrency and --runs must be at least 1");
    }
    if o.workload.per_conn == 0 {
        bail!("--per-conn must be at least 1");
    }
    Ok(o)
}

/// `cargo xtask bench ...`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    let command = format!("cargo xtask bench {}", args.join(" "))
        .trim_end()
        .to_owned();
    let wanted = |f: fn(Kind) -> bool| opts.targets.iter().any(|k| f(*k));

    // Everything that may need the network or a build happens first.
    install::ensure(&[install::POSTFIX])?;
    let unbound = if wanted(|k| k.role() == Some(roots::Role::Out) || k.is_haraka_js()) {
        install::ensure(&[install::UNBOUND]).map_err(|e| format!("unbound: {e:#}"))
    } else {
        Ok(())
    };
    let haraka_rs = if wanted(Kind::is_haraka_rs) {
        build_haraka_rs(!opts.smoke)
    } else {
        Err("not selected".to_owned())
    };
    let haraka_js = if wanted(Kind::is_haraka_js) {
        install::ensure(&[install::NODE])
            .and_then(|()| haraka_js::ensure())
            .map_err(|e| format!("Haraka {}: {e:#}", haraka_js::VERSION))
    } else {
        Err("not selected".to_owned())
    };
    raise_nofile(opts.idle_conns as u64 + 4096);
    let mut setup = doc::Setup::probe(haraka_js.as_ref().ok().map(|h| h.node.as_str()));
    setup.netns = enter_netns(opts.netns);
    eprintln!("bench: network: {}", setup.netns);

    let dir = run_dir("haraka-rs-bench")?;
    let dns = match unbound {
        Ok(()) => start_dns(&dir).map_err(|e| format!("DNS server: {e:#}")),
        Err(e) => Err(e),
    };
    let ctx = Ctx {
        dir: dir.clone(),
        haraka_rs,
        haraka_js,
        dns: dns.as_ref().map(|_| ()).map_err(Clone::clone),
        haraka_nodes: opts.haraka_nodes.clone(),
        haraka_nodelay: opts.haraka_nodelay,
        cert: Cert::self_signed(&["mail.example.com", "mailrelay.example.com"])?,
    };
    let sink = sink::SmtpSink::start(targets::SINK).context("starting smtp-sink")?;
    let busy = doc::cpu_busy(Duration::from_secs(2)).unwrap_or(f64::NAN);
    setup.busy_before = format!("{busy:.0} %");
    if busy > 10.0 {
        eprintln!("bench: other work keeps the CPUs {busy:.0} % busy: the figures will be noisy");
    }
    let mut rows = Vec::new();
    for kind in &opts.targets {
        let row = run_target(*kind, &ctx, &sink, &opts);
        eprintln!("bench: {}: {}", kind.label(), summary(&row));
        rows.push((*kind, row));
    }
    drop(sink);
    drop(dns);

    let text = doc::render(&opts, &setup, &rows, &command);
    println!("{}", report::table(&rows));
    for c in report::comparisons(&rows) {
        println!("{c}");
    }
    if let Some(out) = &opts.out {
        doc::write(out, &text)?;
        println!("bench: report written to {}", out.display());
    }
    if opts.keep {
        println!("bench: run folder kept: {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("bench: removing {}: {e}", dir.display());
    }
    println!("bench: took {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_target(kind: Kind, ctx: &Ctx, sink: &sink::SmtpSink, opts: &Options) -> Row {
    eprintln!("bench: {} ...", kind.label());
    let mut server = match targets::start(kind, ctx) {
        Ok(s) => s,
        Err(why) => {
            return if why.starts_with("starting ") {
                Row::Failed(why)
            } else {
                Row::Skipped(why)
            };
        }
    };
    match measure::target(kind, server.as_mut(), sink, opts) {
        Ok(f) => Row::Measured(f),
        Err(e) => {
            let tail = server.as_ref().map(Proc::log_tail).unwrap_or_default();
            if !tail.is_empty() {
                eprintln!("bench: {} log ends:\n{tail}", kind.label());
            }
            Row::Failed(format!("{e:#}"))
        }
    }
}

fn summary(row: &Row) -> String {
    match row {
        Row::Measured(f) => format!("{:.0} msg/s", f.msgs_per_s),
        Row::Skipped(why) => format!("skipped: {why}"),
        Row::Failed(why) => format!("failed: {why}"),
    }
}

/// `cargo build --release -p haraka-rs` (without `--release` for the smoke
/// run, whose figures mean nothing and which CI has built already);
/// `HARAKA_RS_BIN` names a binary instead. `Err` is the reason to skip.
pub(crate) fn build_haraka_rs(release: bool) -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("HARAKA_RS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut args = vec!["build", "-p", "haraka-rs"];
    if release {
        args.insert(1, "--release");
    }
    util::cargo(&args).map_err(|e| format!("cargo {} failed: {e:#}", args.join(" ")))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| util::root().join("target"), PathBuf::from);
    let bin = target
        .join(if release { "release" } else { "debug" })
        .join("haraka-rs");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("built haraka-rs but {} is missing", bin.display()))
    }
}

/// Let this process and its children hold `want` open files (up to the hard limit).
pub(crate) fn raise_nofile(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < want
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard)
    {
        eprintln!("bench: cannot raise the open-file limit from {soft}: {e}");
    }
}

/// Move this process (and so everything it starts later) into a new network
/// namespace with only a loopback interface. Must run before any thread is
/// started. Returns the description for the report.
pub(crate) fn enter_netns(wanted: bool) -> String {
    const HOST: &str = "the machine's loopback interface (no private namespace)";
    if !wanted {
        return HOST.to_owned();
    }
    if !install::have("ip") {
        eprintln!(
            "bench: no `ip` command to bring up lo in a new namespace; using the machine's loopback"
        );
        return HOST.to_owned();
    }
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("bench: no private network namespace ({e}); using the machine's loopback");
        return HOST.to_owned();
    }
    match util::output(Command::new("ip").args(["link", "set", "lo", "up"])) {
        Ok(_) => "a private network namespace with only a loopback interface".to_owned(),
        Err(e) => {
            eprintln!("bench: bringing up lo in the new namespace: {e:#}");
            "a private network namespace (lo state unknown)".to_owned()
        }
    }
}

/// `$TMPDIR/<name>/run-<pid>`, fresh; folders of earlier runs whose
/// xtask is gone are removed.
pub(crate) fn run_dir(name: &str) -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(name);
    for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let path = entry.path();
        let pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && procs::start_time(pid).is_none()
            && let Err(e) = std::fs::remove_dir_all(&path)
        {
            eprintln!("bench: removing {}: {e}", path.display());
        }
    }
    let dir = base.join(format!("run-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The private unbound: the MX of the haraka-out domain is the sink.
fn start_dns(dir: &std::path::Path) -> anyhow::Result<Unbound> {
    Unbound::start(
        dir,
        targets::DNS,
        &[Record::mx(roots::OUT_DOMAIN, *targets::SINK.ip())],
    )
}

/// Wait until `addr` accepts a TCP connection; fail at once if `proc` exits.
pub fn wait_accepts(addr: SocketAddr, proc: &mut Proc, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        proc.check_alive()?;
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("nothing accepts on {addr} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_are_the_issue_workload() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            o.workload,
            Workload {
                messages: 3000,
                size: 10_240,
                concurrency: 20,
                per_conn: 1
            }
        );
        assert_eq!(o.targets, Kind::ALL.to_vec());
        assert!(o.out.is_some() && o.netns && !o.smoke);
    }

    #[test]
    fn options() {
        let o = parse(&args(
            "-m 100 --size 2048 -s 4 --per-conn 10 --runs 3 --idle 50 \
             --targets direct,haraka-in --haraka-nodes unset --haraka-nodelay --no-write --no-netns",
        ))
        .unwrap();
        assert_eq!(o.workload.messages, 100);
        assert_eq!(o.workload.size, 2048);
        assert_eq!(o.workload.concurrency, 4);
        assert_eq!(o.workload.per_conn, 10);
        assert_eq!((o.runs, o.idle_conns), (3, 50));
        assert_eq!(o.targets, vec![Kind::Direct, Kind::HarakaIn]);
        assert_eq!(o.haraka_nodes, "");
        assert!(o.haraka_nodelay);
        assert!(o.out.is_none() && !o.netns);
    }

    #[test]
    fn smoke_is_tiny_and_writes_nothing() {
        let o = parse(&args("--smoke")).unwrap();
        assert!(o.smoke && o.out.is_none());
        assert!(o.workload.messages <= 20 && o.runs == 1 && o.warmup == 0);
    }

    #[test]
    fn bad_options() {
        for bad in [
            "--runs 0",
            "-m x",
            "--targets postfix",
            "--frobnicate",
            "-m",
            "--per-conn 0",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
