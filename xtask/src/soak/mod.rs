//! `cargo xtask soak`: haraka-rs as haraka-in under hostile clients, on
//! loopback, bounded in count and time.
//!
//! 1. A steady stream of normal transactions against the idle server: the
//!    reference p99.
//! 2. The same stream while drip-feeders (command line and DATA), idle
//!    clients and clients that pipeline without reading keep reconnecting,
//!    from many 127.0.0.x addresses; the server's RSS and descriptors are
//!    sampled from `/proc` every second.
//! 3. The server restarted with `ulimit -n` at `--fd-limit`: more slow
//!    clients than it has slots, then a new client's first reply.
//!
//! The verdicts compare the run with the targets of the hardening work
//! (normal clients unharmed, every hostile kind closed within twice its
//! configured limit, RSS bounded, new clients answered when capped). It is a
//! tool, not a test: it reports, and fails only when it cannot run.

mod load;
mod report;

pub(crate) use report::section as doc_section;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::client::{self, Envelope};
use crate::bench::procs::{self, Proc};
use crate::bench::roots::{self, Role, RootSpec};
use crate::bench::sink::SmtpSink;
use crate::bench::{self as bench, doc::Setup, install};
use crate::e2e::Cert;
use crate::util;
use load::{Hostile, OpenCount, Spec};
use report::{Capped, Findings, Sample, Survival};

const USAGE: &str = "\
cargo xtask soak [options]

  --smoke                  a few clients of each kind, 2-second limits, a debug
                           build, no doc written (checks the harness, not the server)
  --drip-cmd N             drip-feeders in command mode (500)
  --drip-data N            drip-feeders inside DATA (500)
  --idle N                 clients idle after the greeting (200)
  --non-readers N          clients that pipeline and never read (100)
  --drip-every MS          a drip-feeder's pause between bytes (2000)
  --flood-kib K            a non-reader's pipelining rate, KiB/s (16)
  --sources N              127.0.0.x addresses the hostile clients come from (32)
  --rate R                 normal transactions per second (10)
  --baseline-secs S        normal stream on the idle server first (20)
  --secs S                 length of the attack (60)
  --inactivity-timeout S   smtp.ini keys of the server under test: (10)
  --command-timeout S        (10)
  --data-timeout S           (0: unset)
  --data-min-rate B          (100)
  --data-rate-period S       (10)
  --write-timeout S          (10)
  --max-connections N        (unset: derived from the fd limit)
  --max-connections-per-ip N (50)
  --fd-limit N             the capped run's `ulimit -n` (128; 0 skips that run)
  --fd-clients N           slow clients of the capped run (150)
  --rss-limit-mib M        the RSS target (64)
  --out PATH               where to write the section (docs/performance.md)
  --no-write               print the tables only
  --no-netns               stay in the machine's network namespace
  --keep                   keep the run folder (root, logs)
";

/// The server's `smtp.ini` limits under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub inactivity_timeout: u64,
    pub command_timeout: u64,
    pub data_timeout: u64,
    pub data_min_rate: u64,
    pub data_rate_period: u64,
    pub write_timeout: u64,
    pub max_connections: Option<u64>,
    pub max_connections_per_ip: u64,
}

impl Limits {
    /// `smtp.ini` lines.
    pub fn smtp_ini(&self) -> Vec<String> {
        let mut v = vec![
            format!("inactivity_timeout={}", self.inactivity_timeout),
            format!("command_timeout={}", self.command_timeout),
            format!("data_timeout={}", self.data_timeout),
            format!("data_min_rate={}", self.data_min_rate),
            format!("data_rate_period={}", self.data_rate_period),
            format!("write_timeout={}", self.write_timeout),
            format!("max_connections_per_ip={}", self.max_connections_per_ip),
        ];
        if let Some(n) = self.max_connections {
            v.push(format!("max_connections={n}"));
        }
        v
    }

    /// Twice the configured limit that should close `kind` (the default
    /// bound of the targets); `None` when nothing configured would.
    pub fn bound(&self, kind: Hostile) -> Option<Duration> {
        let or_idle = |s: u64| if s > 0 { s } else { self.inactivity_timeout };
        let limit = match kind {
            Hostile::Idle => Some(self.inactivity_timeout),
            Hostile::DripCommand => Some(or_idle(self.command_timeout)),
            Hostile::NonReader => Some(or_idle(self.write_timeout)),
            Hostile::DripData => {
                let rate = (self.data_min_rate > 0).then_some(self.data_rate_period);
                let whole = (self.data_timeout > 0).then_some(self.data_timeout);
                rate.into_iter().chain(whole).min()
            }
        };
        limit.filter(|s| *s > 0).map(|s| Duration::from_secs(2 * s))
    }
}

/// The command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Clients of each hostile kind, in [`Hostile::ALL`] order.
    pub counts: [usize; 4],
    pub drip_every: Duration,
    /// How fast a non-reader pipelines, KiB/s.
    pub flood_kib_per_s: u32,
    pub sources: u8,
    pub rate: f64,
    pub baseline: Duration,
    pub attack: Duration,
    pub limits: Limits,
    pub fd_limit: u64,
    pub fd_clients: usize,
    pub rss_limit_mib: u64,
    pub smoke: bool,
    pub out: Option<PathBuf>,
    pub netns: bool,
    pub keep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            counts: [500, 500, 200, 100],
            drip_every: Duration::from_millis(2000),
            flood_kib_per_s: 16,
            sources: 32,
            rate: 10.0,
            baseline: Duration::from_secs(20),
            attack: Duration::from_secs(60),
            limits: Limits {
                inactivity_timeout: 10,
                command_timeout: 10,
                data_timeout: 0,
                data_min_rate: 100,
                data_rate_period: 10,
                write_timeout: 10,
                max_connections: None,
                max_connections_per_ip: 50,
            },
            fd_limit: 128,
            fd_clients: 150,
            rss_limit_mib: 64,
            smoke: false,
            out: Some(util::root().join("docs").join("performance.md")),
            netns: true,
            keep: false,
        }
    }
}

/// Parse the arguments after `soak`.
pub fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let mut a = util::Args::new(args, USAGE);
    while let Some(arg) = a.next_flag() {
        let l = &mut o.limits;
        match arg {
            "--smoke" => {
                o.smoke = true;
                o.counts = [10, 10, 5, 2];
                o.drip_every = Duration::from_millis(500);
                o.sources = 4;
                o.rate = 5.0;
                o.baseline = Duration::from_secs(3);
                // Long enough for a non-reader to fill the buffers and be cut.
                o.attack = Duration::from_secs(15);
                *l = Limits {
                    inactivity_timeout: 2,
                    command_timeout: 2,
                    data_timeout: 0,
                    data_min_rate: 100,
                    data_rate_period: 2,
                    write_timeout: 2,
                    max_connections: None,
                    max_connections_per_ip: 50,
                };
                o.fd_clients = 60;
                o.out = None;
            }
            "--drip-cmd" => o.counts[0] = a.num(arg)?,
            "--drip-data" => o.counts[1] = a.num(arg)?,
            "--idle" => o.counts[2] = a.num(arg)?,
            "--non-readers" => o.counts[3] = a.num(arg)?,
            "--drip-every" => o.drip_every = Duration::from_millis(a.num(arg)?),
            "--flood-kib" => o.flood_kib_per_s = a.num(arg)?,
            "--sources" => o.sources = a.num(arg)?,
            "--rate" => o.rate = a.num(arg)?,
            "--baseline-secs" => o.baseline = Duration::from_secs(a.num(arg)?),
            "--secs" => o.attack = Duration::from_secs(a.num(arg)?),
            "--inactivity-timeout" => l.inactivity_timeout = a.num(arg)?,
            "--command-timeout" => l.command_timeout = a.num(arg)?,
            "--data-timeout" => l.data_timeout = a.num(arg)?,
            "--data-min-rate" => l.data_min_rate = a.num(arg)?,
            "--data-rate-period" => l.data_rate_period = a.num(arg)?,
            "--write-timeout" => l.write_timeout = a.num(arg)?,
            "--max-connections" => l.max_connections = Some(a.num(arg)?),
            "--max-connections-per-ip" => l.max_connections_per_ip = a.num(arg)?,
            "--fd-limit" => o.fd_limit = a.num(arg)?,
            "--fd-clients" => o.fd_clients = a.num(arg)?,
            "--rss-limit-mib" => o.rss_limit_mib = a.num(arg)?,
            "--out" => o.out = Some(PathBuf::from(a.value(arg)?)),
            "--no-write" => o.out = None,
            "--no-netns" => o.netns = false,
            "--keep" => o.keep = true,
            other => return Err(a.refuse(other)),
        }
    }
    if o.sources == 0 || o.sources > MAX_SOURCES {
        bail!("--sources must be 1 to {MAX_SOURCES}");
    }
    if !(o.rate > 0.0 && o.rate <= 1000.0) {
        bail!("--rate must be above 0 and at most 1000");
    }
    if o.attack.is_zero() || o.attack > Duration::from_secs(600) {
        bail!("--secs must be 1 to 600 (the whole run stays bounded)");
    }
    if o.baseline.is_zero() || o.baseline > Duration::from_secs(300) {
        bail!("--baseline-secs must be 1 to 300");
    }
    if o.flood_kib_per_s == 0 || o.flood_kib_per_s > 1024 {
        bail!("--flood-kib must be 1 to 1024");
    }
    if o.drip_every.is_zero() {
        bail!("--drip-every must be at least 1 ms");
    }
    if o.counts.iter().sum::<usize>() > 20_000 || o.fd_clients > 10_000 {
        bail!("at most 20,000 hostile clients and 10,000 capped-run clients");
    }
    if o.limits.inactivity_timeout == 0 {
        bail!("--inactivity-timeout must be at least 1");
    }
    Ok(o)
}

/// Hostile clients come from 127.0.0.100 up.
const MAX_SOURCES: u8 = 150;
const fn lo(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}
/// The server under test and, for the capped run, its second start.
const SERVER: SocketAddrV4 = SocketAddrV4::new(lo(80), 2525);
const CAPPED: SocketAddrV4 = SocketAddrV4::new(lo(80), 2526);
/// `smtp-sink`, where haraka-in forwards.
const SINK: SocketAddrV4 = SocketAddrV4::new(lo(81), 2599);
/// The new client of the capped run.
/// The normal clients' addresses (127.0.0.90 to .99, in turn).
fn normal_sources() -> Vec<IpAddr> {
    (90..100).map(|i| IpAddr::V4(lo(i))).collect()
}
const FRESH_SRC: Ipv4Addr = lo(91);

fn sources(n: u8) -> Vec<IpAddr> {
    (0..n).map(|i| IpAddr::V4(lo(100 + i))).collect()
}

/// The clients of each kind, spread over the sources in turn.
fn specs(o: &Options) -> Vec<Spec> {
    let srcs = sources(o.sources);
    let mut out = Vec::new();
    for (kind, n) in Hostile::ALL.into_iter().zip(o.counts) {
        for _ in 0..n {
            let src = srcs[out.len() % srcs.len()];
            out.push(Spec {
                kind,
                src,
                drip_every: o.drip_every,
                flood_kib_per_s: o.flood_kib_per_s,
            });
        }
    }
    out
}

/// `cargo xtask soak ...`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = parse(args)?;
    let started = Instant::now();
    let command = format!("cargo xtask soak {}", args.join(" "))
        .trim_end()
        .to_owned();
    install::ensure(&[install::POSTFIX])?;
    let bin = bench::build_haraka_rs(!opts.smoke).map_err(anyhow::Error::msg)?;
    let clients: usize = opts.counts.iter().sum::<usize>() + opts.fd_clients;
    bench::raise_nofile(2 * clients as u64 + 4096);
    let mut setup = Setup::probe(None);
    setup.netns = bench::enter_netns(opts.netns);
    eprintln!("soak: network: {}", setup.netns);
    let dir = bench::run_dir("haraka-rs-soak")?;
    let cert = Cert::self_signed(&["mail.example.com"])?;
    let sink = SmtpSink::start(SINK).context("starting smtp-sink")?;
    let busy = bench::doc::cpu_busy(Duration::from_secs(2)).unwrap_or(f64::NAN);
    setup.busy_before = format!("{busy:.0} %");

    let findings = measure(&opts, &bin, &dir, &cert, &sink);
    let delivered = sink.count();
    drop(sink);
    let findings = findings?;
    let accepted = findings.baseline.latencies.len() + findings.loaded.latencies.len();
    let tables = report::tables(&findings);
    println!("{tables}");
    println!("soak: {accepted} normal messages accepted, {delivered} reached the sink");
    if let Some(out) = &opts.out {
        let text = render(&opts, &setup, &command, &tables, accepted, delivered);
        let existing = std::fs::read_to_string(out).unwrap_or_default();
        std::fs::write(out, report::splice(&existing, &text))
            .with_context(|| format!("writing {}", out.display()))?;
        println!("soak: section written to {}", out.display());
    }
    if opts.keep {
        println!("soak: run folder kept: {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("soak: removing {}: {e}", dir.display());
    }
    println!("soak: took {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Start the server, run the phases, stop it.
fn measure(
    opts: &Options,
    bin: &Path,
    dir: &Path,
    cert: &Cert,
    sink: &SmtpSink,
) -> anyhow::Result<Findings> {
    let _ = sink;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the clients' runtime")?;
    let env = Envelope {
        from: roots::SENDER.to_owned(),
        to: Role::In.recipient(),
    };
    let body = Arc::new(client::message_body(10_240, &env));
    let mut server = start(
        bin,
        dir,
        "haraka-in",
        SERVER,
        opts.limits.smtp_ini(),
        None,
        cert,
    )?;
    let pid = server.pid();
    let addr = SocketAddr::V4(SERVER);
    let mut f = Findings {
        rss_limit_kib: opts.rss_limit_mib * 1024,
        ..Findings::default()
    };
    eprintln!(
        "soak: {:?} of normal transactions on the idle server",
        opts.baseline
    );
    f.baseline = rt.block_on(load::normal(
        addr,
        &normal_sources(),
        opts.rate,
        opts.baseline,
        Arc::clone(&body),
        env.clone(),
    ));
    eprintln!("soak: {:?} of attack", opts.attack);
    let open = Arc::new(OpenCount::default());
    let (loaded, ends, samples) = rt.block_on(async {
        let end = Instant::now() + opts.attack;
        let hostile = tokio::spawn(load::hostile(
            specs(opts),
            addr,
            end,
            Arc::clone(&open),
            env.clone(),
        ));
        let sampler = tokio::spawn(sample(pid, Arc::clone(&open), end));
        let loaded = load::normal(addr, &normal_sources(), opts.rate, opts.attack, body, env).await;
        let ends = hostile.await.unwrap_or_default();
        let samples = sampler.await.unwrap_or_default();
        (loaded, ends, samples)
    });
    server
        .check_alive()
        .context("the server died during the attack")?;
    f.loaded = loaded;
    f.samples = samples;
    f.survival = Hostile::ALL
        .into_iter()
        .zip(opts.counts)
        .filter(|(_, n)| *n > 0)
        .map(|(k, _)| (k, Survival::of(k, &ends), opts.limits.bound(k)))
        .collect();
    server.stop();
    if opts.fd_limit > 0 {
        f.capped = Some(capped(opts, bin, dir, cert, &rt)?);
    }
    Ok(f)
}

/// The server's RSS and descriptors every second until `end`.
async fn sample(pid: u32, open: Arc<OpenCount>, end: Instant) -> Vec<Sample> {
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut out = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let rss_kib = procs::usage(pid).map_or(0, |u| u.rss_kib);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count);
        out.push(Sample {
            at: t0.elapsed(),
            rss_kib,
            fds,
            hostile_open: open.get(),
        });
    }
    out
}

/// The server under `ulimit -n`, more slow clients than it has slots, a new client.
fn capped(
    opts: &Options,
    bin: &Path,
    dir: &Path,
    cert: &Cert,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<Capped> {
    eprintln!("soak: capped run, ulimit -n {}", opts.fd_limit);
    let mut limits = opts.limits.clone();
    // The cap under test is the one derived from the descriptor limit.
    limits.max_connections = None;
    let mut server = start(
        bin,
        dir,
        "haraka-in-capped",
        CAPPED,
        limits.smtp_ini(),
        Some(opts.fd_limit),
        cert,
    )?;
    let addr = SocketAddr::V4(CAPPED);
    let srcs = sources(opts.sources);
    let mut c = Capped {
        fd_limit: opts.fd_limit,
        clients: opts.fd_clients,
        ..Capped::default()
    };
    let (held, refused) = rt.block_on(load::hold(&srcs, addr, opts.fd_clients));
    c.admitted = held.len();
    c.refused = refused;
    c.capped_reply = rt.block_on(load::first_reply(
        FRESH_SRC.into(),
        addr,
        Duration::from_secs(5),
    ));
    let before = procs::usage(server.pid())?;
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = procs::usage(server.pid())?;
    c.capped_cpu_pct =
        (after.cpu.saturating_sub(before.cpu)).as_secs_f64() * 100.0 / t0.elapsed().as_secs_f64();
    drop(held);
    let freed = Instant::now();
    let deadline = freed + Duration::from_secs(5);
    while Instant::now() < deadline {
        let (_, line) = rt.block_on(load::first_reply(
            FRESH_SRC.into(),
            addr,
            Duration::from_secs(1),
        ));
        if line.is_some_and(|l| l.starts_with("220")) {
            c.freed_greeting = Some(freed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server.check_alive().context("the capped server died")?;
    server.stop();
    Ok(c)
}

/// Write haraka-in's root under `dir/name` and start haraka-rs on it,
/// under `ulimit -n fd_limit` when given.
fn start(
    bin: &Path,
    dir: &Path,
    name: &str,
    listen: SocketAddrV4,
    smtp_ini: Vec<String>,
    fd_limit: Option<u64>,
    cert: &Cert,
) -> anyhow::Result<Proc> {
    let root = dir.join(name);
    let spec = RootSpec {
        role: Role::In,
        listen,
        sink: SINK,
        dns: SINK,
        smtp_ini_extra: smtp_ini,
    };
    roots::write(&root, &spec, cert)?;
    let mut cmd = match fd_limit {
        // The server raises its soft limit to the hard one: set both.
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("-c").arg(&root).env("RUST_LOG", "warn");
    let log = dir.join(format!("{name}.log"));
    let mut proc = Proc::spawn(name, &mut cmd, Some(&log))?;
    bench::wait_accepts(listen.into(), &mut proc, Duration::from_secs(30))
        .with_context(|| format!("starting {name} (log: {})", log.display()))?;
    Ok(proc)
}

/// The section of `docs/performance.md`.
fn render(
    o: &Options,
    setup: &Setup,
    command: &str,
    tables: &str,
    accepted: usize,
    delivered: u64,
) -> String {
    let l = &o.limits;
    let [dc, dd, idle, nr] = o.counts;
    format!(
        "## Soak: hostile clients (`cargo xtask soak`)\n\n\
         haraka-rs (release build) as haraka-in, forwarding to smtp-sink, on {net}; \
         {cpu} ({cores} cores, {busy} busy with other work just before), {mem}, {os}; {when}. A tool, not a test: nothing here is a CI \
         threshold.\n\n\
         Command:\n\n```\n{command}\n```\n\n\
         Server limits (`smtp.ini`): {ini}.\n\n\
         Load: {rate} normal transactions a second (10 KiB messages, from 127.0.0.90 to .99 in turn), first {base} s \
         on the idle server, then {attack} s while {dc} command-line and {dd} DATA drip-feeders \
         (one byte every {drip} ms), {idle} idle clients and {nr} clients that pipeline `NOOP`s \
         ({flood} KiB/s each) and never read come from {src} addresses (127.0.0.100 up) and reconnect whenever the \
         server closes them. A bound is twice the configured limit that should close that kind; \
         a non-reader is timed from when the server stops taking its input (a write stalls). \
         Then the server is restarted under `ulimit -n {fdl}` (its connection cap derived from \
         it) and {fdc} slow clients try to hold it.\n\n{tables}\n\
         {accepted} normal messages were accepted and {delivered} reached the sink.\n",
        net = setup.netns,
        cpu = setup.cpu,
        cores = setup.cores,
        busy = setup.busy_before,
        mem = setup.memory,
        os = setup.os,
        when = setup.when,
        ini = l.smtp_ini().join(", "),
        rate = o.rate,
        base = o.baseline.as_secs(),
        attack = o.attack.as_secs(),
        drip = o.drip_every.as_millis(),
        flood = o.flood_kib_per_s,
        src = o.sources,
        fdl = o.fd_limit,
        fdc = o.fd_clients,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn defaults_are_the_issue_load() {
        let o = parse(&[]).unwrap();
        assert_eq!(o.counts, [500, 500, 200, 100]);
        assert_eq!((o.fd_limit, o.fd_clients, o.rss_limit_mib), (128, 150, 64));
        assert!(o.out.is_some() && o.netns && !o.smoke);
        // Every hostile kind has a bound, and it is twice the issue's default.
        for k in Hostile::ALL {
            assert_eq!(o.limits.bound(k), Some(Duration::from_secs(20)), "{k:?}");
        }
        // Bounded: baseline, attack, the capped run's few seconds.
        assert!(o.baseline + o.attack <= Duration::from_secs(120));
    }

    #[test]
    fn options() {
        let o = parse(&args(
            "--drip-cmd 1 --drip-data 2 --idle 3 --non-readers 4 --drip-every 250 --flood-kib 8 --sources 7 \
             --rate 2.5 --baseline-secs 5 --secs 30 --inactivity-timeout 30 --command-timeout 0 \
             --data-timeout 40 --data-min-rate 0 --write-timeout 0 --max-connections 900 \
             --max-connections-per-ip 9 --fd-limit 0 --fd-clients 3 --rss-limit-mib 99 --no-write --no-netns --keep",
        ))
        .unwrap();
        assert_eq!(o.counts, [1, 2, 3, 4]);
        assert_eq!(o.drip_every, Duration::from_millis(250));
        assert_eq!((o.sources, o.rate, o.flood_kib_per_s), (7, 2.5, 8));
        assert_eq!(
            (o.baseline, o.attack),
            (Duration::from_secs(5), Duration::from_secs(30))
        );
        assert_eq!((o.fd_limit, o.fd_clients, o.rss_limit_mib), (0, 3, 99));
        assert!(o.out.is_none() && !o.netns && o.keep);
        let l = &o.limits;
        // 0 falls back to inactivity_timeout; no rate check leaves data_timeout.
        assert_eq!(l.bound(Hostile::DripCommand), Some(Duration::from_secs(60)));
        assert_eq!(l.bound(Hostile::NonReader), Some(Duration::from_secs(60)));
        assert_eq!(l.bound(Hostile::DripData), Some(Duration::from_secs(80)));
        let ini = l.smtp_ini();
        assert!(ini.contains(&"max_connections=900".to_owned()), "{ini:?}");
        assert!(ini.contains(&"max_connections_per_ip=9".to_owned()));
        assert!(ini.contains(&"data_min_rate=0".to_owned()));
    }

    #[test]
    fn data_drip_has_no_bound_without_a_data_limit() {
        let mut l = Options::default().limits;
        l.data_min_rate = 0;
        assert_eq!(l.bound(Hostile::DripData), None);
        assert!(
            !l.smtp_ini()
                .iter()
                .any(|s| s.starts_with("max_connections="))
        );
        l.data_timeout = 5;
        l.data_min_rate = 1;
        assert_eq!(l.bound(Hostile::DripData), Some(Duration::from_secs(10)));
    }

    #[test]
    fn smoke_is_small_and_writes_nothing() {
        let o = parse(&args("--smoke")).unwrap();
        assert!(o.smoke && o.out.is_none());
        assert!(o.counts.iter().sum::<usize>() <= 30);
        assert!(o.baseline + o.attack <= Duration::from_secs(20));
    }

    #[test]
    fn bad_options() {
        for bad in [
            "--sources 0",
            "--sources 151",
            "--rate 0",
            "--rate x",
            "--secs 0",
            "--secs 601",
            "--drip-every 0",
            "--flood-kib 0",
            "--idle 30000",
            "--inactivity-timeout 0",
            "--frobnicate",
            "--idle",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn clients_are_spread_over_the_sources() {
        let o = parse(&args(
            "--drip-cmd 5 --drip-data 0 --idle 2 --non-readers 1 --sources 3",
        ))
        .unwrap();
        let s = specs(&o);
        assert_eq!(s.len(), 8);
        assert_eq!(s.iter().filter(|x| x.kind == Hostile::Idle).count(), 2);
        for (i, spec) in s.iter().enumerate() {
            assert_eq!(spec.src, IpAddr::V4(lo(100 + (i % 3) as u8)));
            assert!(spec.src.is_loopback());
        }
        assert!(SERVER.ip().is_loopback() && SINK.ip().is_loopback() && CAPPED.ip().is_loopback());
    }
}
