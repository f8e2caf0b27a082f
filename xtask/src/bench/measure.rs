//! The measurements of one target: throughput and CPU with `smtp-source`,
//! latency with the load client, memory from `/proc`, and the
//! idle-connection run. Every figure of a repeated measurement is the
//! median over the runs.

use std::net::SocketAddr;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::client::{self, Envelope};
use super::procs::{self, Proc};
use super::report::{Figures, median, percentile};
use super::roots::{Role, SENDER};
use super::sink::SmtpSink;
use super::targets::Kind;
use super::{Options, Workload};

/// How long delivery may lag behind the last 250 before a run fails.
fn drain_timeout(w: &Workload) -> Duration {
    Duration::from_secs(15) + Duration::from_millis(20 * w.messages)
}

/// Measure `kind`, whose server (if any) is `server`.
pub fn target(
    kind: Kind,
    mut server: Option<&mut Proc>,
    sink: &SmtpSink,
    opts: &Options,
) -> anyhow::Result<Figures> {
    let addr: SocketAddr = kind.addr().into();
    let env = Envelope {
        from: SENDER.to_owned(),
        to: kind.role().unwrap_or(Role::In).recipient(),
    };
    let pid = server.as_ref().map(|p| p.pid());
    let mut fig = Figures::default();
    if let Some(pid) = pid {
        fig.idle_rss_kib = Some(settle(pid)?.rss_kib);
        // The connection-scaling run comes first, on the fresh server: after
        // the load, a garbage-collected heap would hide what connections cost.
        let (base, with) = idle_connections(addr, pid, opts.idle_conns)?;
        fig.idle_conns = Some(opts.idle_conns);
        fig.conns_base_kib = Some(base);
        fig.conns_rss_kib = Some(with);
        // So that the peak RSS is that of the mail runs alone.
        procs::reset_peak(pid)?;
    }
    if opts.warmup > 0 {
        let w = Workload {
            messages: opts.warmup,
            ..opts.workload.clone()
        };
        latency_run(addr, &w, &env, sink)?;
    }
    let (mut rates, mut cpus, mut p50s, mut p99s) = (vec![], vec![], vec![], vec![]);
    for run in 1..=opts.runs {
        let (rate, cpu) = source_run(addr, &opts.workload, &env, sink, pid)
            .with_context(|| format!("smtp-source run {run}"))?;
        rates.push(rate);
        cpus.extend(cpu);
        let lat = latency_run(addr, &opts.workload, &env, sink)
            .with_context(|| format!("load client run {run}"))?;
        p50s.push(percentile(&lat, 50.0));
        p99s.push(percentile(&lat, 99.0));
        eprintln!(
            "bench:   run {run}: {rate:.0} msg/s, {} CPU-s/1k msgs, p50 {:.2} ms, p99 {:.2} ms",
            cpu.map_or_else(|| "—".to_owned(), |c| format!("{c:.2}")),
            p50s[p50s.len() - 1].as_secs_f64() * 1000.0,
            p99s[p99s.len() - 1].as_secs_f64() * 1000.0,
        );
        if let Some(p) = server.as_deref_mut() {
            p.check_alive()?;
        }
    }
    fig.msgs_per_s = median(&rates);
    fig.msgs_per_s_range = (
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
    );
    fig.cpu_s_per_1000 = (!cpus.is_empty()).then(|| median(&cpus));
    fig.p50 = median_duration(&p50s);
    fig.p99 = median_duration(&p99s);
    if let Some(pid) = pid {
        fig.peak_rss_kib = Some(procs::usage(pid)?.hwm_kib);
    }
    if let Some(p) = server {
        p.check_alive()?;
    }
    Ok(fig)
}

/// One `smtp-source` run; returns (messages/s until the last message reached
/// the sink, server CPU-seconds per 1,000 messages).
fn source_run(
    addr: SocketAddr,
    w: &Workload,
    env: &Envelope,
    sink: &SmtpSink,
    pid: Option<u32>,
) -> anyhow::Result<(f64, Option<f64>)> {
    let target = sink.count() + w.messages;
    let before = pid.map(procs::usage).transpose()?;
    let started = Instant::now();
    let mut cmd = Command::new("smtp-source");
    cmd.args(source_args(addr, w, env));
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    let source_done = Instant::now();
    if !out.status.success() {
        bail!(
            "smtp-source failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let arrived = sink.wait_for(target, drain_timeout(w))?;
    let end = arrived.max(source_done);
    let secs = end.duration_since(started).as_secs_f64().max(1e-6);
    let cpu = match (pid, before) {
        (Some(pid), Some(before)) => {
            let after = procs::usage(pid)?;
            let used = after.cpu.saturating_sub(before.cpu).as_secs_f64();
            Some(used * 1000.0 / w.messages as f64)
        }
        _ => None,
    };
    Ok((w.messages as f64 / secs, cpu))
}

/// The `smtp-source` arguments for a workload. smtp-source sends one message
/// per connection, or with `-d` every message of a session over one
/// connection: `per_conn > 1` maps to `-d`.
pub fn source_args(addr: SocketAddr, w: &Workload, env: &Envelope) -> Vec<String> {
    let mut a = vec![
        "-s".to_owned(),
        w.concurrency.to_string(),
        "-m".to_owned(),
        w.messages.to_string(),
        "-l".to_owned(),
        w.size.to_string(),
        "-f".to_owned(),
        env.from.clone(),
        "-t".to_owned(),
        env.to.clone(),
        "-M".to_owned(),
        "client.bench.test".to_owned(),
    ];
    if w.per_conn > 1 {
        a.push("-d".to_owned());
    }
    a.push(addr.to_string());
    a
}

/// One load-client run; every message must be accepted and reach the sink.
/// Returns the latencies.
fn latency_run(
    addr: SocketAddr,
    w: &Workload,
    env: &Envelope,
    sink: &SmtpSink,
) -> anyhow::Result<Vec<Duration>> {
    let target = sink.count() + w.messages;
    let out = client::run(addr, w, env)?;
    if out.failed > 0 {
        bail!(
            "{} of {} messages failed; first: {}",
            out.failed,
            w.messages,
            out.first_error.unwrap_or_default()
        );
    }
    sink.wait_for(target, drain_timeout(w))?;
    Ok(out.latencies)
}

/// Wait until the process tree uses no CPU for 300 ms (start-up work done;
/// at most 10 s), and return its usage then.
fn settle(pid: u32) -> anyhow::Result<procs::Usage> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = procs::usage(pid)?;
    let mut quiet = 0;
    while quiet < 3 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        let now = procs::usage(pid)?;
        quiet = if now.cpu == last.cpu { quiet + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// RSS of the server before, and with `n` connections open that have read
/// the greeting (all closed again before this returns).
fn idle_connections(addr: SocketAddr, pid: u32, n: usize) -> anyhow::Result<(u64, u64)> {
    let base = settle(pid)?.rss_kib;
    let idle = client::open_idle(addr, n)?;
    if idle.len() != n {
        bail!("opened {} of {n} idle connections", idle.len());
    }
    let with = settle(pid)?.rss_kib;
    drop(idle);
    Ok((base, with))
}

fn median_duration(v: &[Duration]) -> Duration {
    let secs: Vec<f64> = v.iter().map(Duration::as_secs_f64).collect();
    Duration::from_secs_f64(median(&secs).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_source_arguments() {
        let env = Envelope {
            from: "a@b.test".into(),
            to: "c@d.test".into(),
        };
        let mut w = Workload {
            messages: 3000,
            size: 10_240,
            concurrency: 20,
            per_conn: 1,
        };
        let addr: SocketAddr = "127.0.0.72:2525"
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 25)));
        let a = source_args(addr, &w, &env).join(" ");
        assert_eq!(
            a,
            "-s 20 -m 3000 -l 10240 -f a@b.test -t c@d.test -M client.bench.test 127.0.0.72:2525"
        );
        w.per_conn = 10;
        assert!(source_args(addr, &w, &env).contains(&"-d".to_owned()));
    }
}
