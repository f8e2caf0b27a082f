//! The machine and versions a run was measured on, and `docs/performance.md`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

use super::Options;
use super::report::{self, Row};
use super::targets::Kind;

/// Everything that says where and with what the figures were taken.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    pub node: String,
    pub postfix: String,
    pub netns: String,
    pub when: String,
    /// How busy the CPUs were just before the first target (other work on the machine).
    pub busy_before: String,
}

impl Setup {
    /// Read the machine description from `/proc` and the tools.
    pub fn probe(node: Option<&str>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once([':', '='])?;
                    (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
                })
                .unwrap_or_default()
        };
        let mem_gib = field(&meminfo, "MemTotal")
            .split_whitespace()
            .next()
            .and_then(|k| k.parse::<f64>().ok())
            .map_or_else(String::new, |k| format!("{:.1} GiB", k / 1024.0 / 1024.0));
        Self {
            cpu: field(&cpuinfo, "model name"),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory: mem_gib,
            kernel: first_line(&["uname", "-sr"]),
            os: field(&os, "PRETTY_NAME"),
            rustc: first_line(&["rustc", "--version"]),
            node: node.unwrap_or("—").to_owned(),
            postfix: first_line(&["postconf", "-d", "mail_version"])
                .rsplit('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned(),
            netns: String::new(),
            when: first_line(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
            busy_before: String::new(),
        }
    }
}

/// Percentage of CPU time not idle over `over`, from `/proc/stat`.
pub fn cpu_busy(over: std::time::Duration) -> Option<f64> {
    let sample = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // idle + iowait are fields 4 and 5.
        let idle = v.get(3)? + v.get(4).unwrap_or(&0);
        Some((v.iter().sum(), idle))
    };
    let (t0, i0) = sample()?;
    std::thread::sleep(over);
    let (t1, i1) = sample()?;
    let total = t1.checked_sub(t0)?;
    let idle = i1.checked_sub(i0)?;
    (total > 0).then(|| (total - idle.min(total)) as f64 * 100.0 / total as f64)
}

fn first_line(cmd: &[&str]) -> String {
    let Some((prog, args)) = cmd.split_first() else {
        return String::new();
    };
    Command::new(prog)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The whole report as Markdown.
pub fn render(opts: &Options, setup: &Setup, rows: &[(Kind, Row)], command: &str) -> String {
    let w = &opts.workload;
    let mut d = String::from("# Performance\n\n");
    d.push_str(
        "Measured with `cargo xtask bench`: one invocation runs every target on loopback with \
         the same workload, and every comparison below is a ratio taken within that invocation. \
         Figures are medians over the runs; nothing here is a test threshold.\n\n",
    );
    let _ = writeln!(d, "Command:\n\n```\n{command}\n```\n");
    let _ = writeln!(
        d,
        "Workload: {} messages of {} bytes, {} connections at once, {} per connection; \
         runs per target: {}, after a warm-up of {} messages; {} idle connections for the \
         connection-scaling run.\n",
        w.messages,
        w.size,
        w.concurrency,
        if w.per_conn > 1 {
            format!(
                "{} messages (smtp-source: `-d`, every message of a session)",
                w.per_conn
            )
        } else {
            "one message".to_owned()
        },
        opts.runs,
        opts.warmup,
        opts.idle_conns,
    );
    d.push_str("## Machine\n\n");
    let _ = writeln!(d, "- CPU: {} ({} cores)", setup.cpu, setup.cores);
    let _ = writeln!(d, "- memory: {}", setup.memory);
    let _ = writeln!(d, "- OS: {}, {}", setup.os, setup.kernel);
    let _ = writeln!(
        d,
        "- {}; node {}; Postfix {} (smtp-source, smtp-sink)",
        setup.rustc, setup.node, setup.postfix
    );
    let _ = writeln!(d, "- network: {}", setup.netns);
    let _ = writeln!(
        d,
        "- measured: {} (CPUs {} busy just before the first target)\n",
        setup.when, setup.busy_before
    );
    d.push_str("## Results\n\n");
    d.push_str(&report::table(rows));
    let cmp = report::comparisons(rows);
    if !cmp.is_empty() {
        d.push_str("\nWithin this invocation:\n\n");
        for c in cmp {
            let _ = writeln!(d, "- {c}");
        }
    }
    d.push_str(METHOD);
    let _ = writeln!(
        d,
        "- Haraka 3.0.0 runs with `smtp.ini` {}.",
        nodes_note(&opts.haraka_nodes)
    );
    if opts.haraka_nodelay {
        d.push_str(
            "- `--haraka-nodelay`: Haraka's sockets were given TCP_NODELAY by a preload \
             script; Haraka 3.0.0 itself leaves Nagle's algorithm on.\n",
        );
    } else {
        d.push_str(
            "- Haraka 3.0.0 never sets TCP_NODELAY, so on loopback each message it forwards \
             also waits on Nagle's algorithm and delayed ACKs, much of its latency; \
             `--haraka-nodelay` measures Haraka with TCP_NODELAY forced on. Haraka runs its \
             JavaScript on one core: messages/s × CPU-s per message shows how close it is to \
             that core.\n",
        );
    }
    d
}

fn nodes_note(nodes: &str) -> String {
    match nodes {
        "" => "without `nodes` (Haraka then runs a cluster master and one worker process; \
               CPU and memory are summed over both)"
            .to_owned(),
        "0" => "`nodes=0`: one process, no cluster master, the closest match to haraka-rs's \
                single process (with `nodes` unset, as in the example setup's config, Haraka adds a \
                cluster master process and its memory)"
            .to_owned(),
        n => format!("`nodes={n}` (CPU and memory summed over the master and its workers)"),
    }
}

const METHOD: &str = "
## Method

- Roots: the example haraka-in (`xclient`, `queue/smtp_forward` to the sink, \
`rcpt_to.in_host_list`, `tls` with a self-signed certificate) and haraka-out (`relay` with \
`acl=true` and `relay_acl_allow 127.0.0.0/8`, `tls`; mail goes to the outbound queue and is \
delivered to the MX of the recipient's domain, found through a private unbound on loopback, \
which names smtp-sink). Both servers read the same generated roots in Haraka's layout \
and log at WARN (`log.ini` `level=warn`, Haraka's level when a root has none; haraka-rs also \
gets `RUST_LOG=warn`). The clients do not use STARTTLS.
- messages/s: `smtp-source -s C -m N -l SIZE` against the server; the clock stops when the \
last message has reached `smtp-sink` (its `-c` counters), so haraka-out's figure includes \
queueing and delivery.
- CPU-s / 1k msgs: user + system time of the server's processes (`/proc/PID/stat`) over an \
smtp-source run, per 1,000 messages. The sink, the DNS server and the load generators are \
not counted.
- idle RSS: `VmRSS` once the started server has used no CPU for 300 ms, before any mail; \
peak RSS: `VmHWM` over the warm-up and all the mail runs (reset before them with \
`/proc/PID/clear_refs`).
- p50 / p99: the benchmark's own client (same workload, one thread), from sending the final \
`.` of DATA to reading the 250.
- idle connections: on the freshly started server, before any mail, that many connections \
are opened and each reads its greeting; the server's `VmRSS` is taken once it is idle again, \
and per-connection memory is its growth over the RSS just before.
- haraka-rs is built with `cargo build --release -p haraka-rs`; Haraka 3.0.0 is installed \
with npm under `target/bench/`, and its DNS resolvers are pointed at the loopback DNS \
server by a preload script.
- Durability: both outbound queues fsync each message file before the 250; haraka-rs also \
fsyncs the queue folder after the rename, at the same time as the files (one round of \
fsyncs per batch of concurrent messages). Haraka does not fsync the folder.
";

/// Write the report to `path`, keeping the soak's section of the file
/// (`cargo xtask soak` writes that one).
pub fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match crate::soak::doc_section(&existing) {
        Some(soak) => format!("{}\n\n{soak}\n", text.trim_end()),
        None => text.to_owned(),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn rewriting_keeps_the_soak_section() {
        let path = std::env::temp_dir().join(format!("bench-doc-test-{}.md", std::process::id()));
        let soak = "<!-- soak:begin -->\n## Soak\n\nfigures\n<!-- soak:end -->";
        std::fs::write(&path, format!("# Performance\n\nold bench\n\n{soak}\n")).unwrap();
        write(&path, "# Performance\n\nnew bench\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("# Performance\n\nnew bench\n\n{soak}\n"));
        // Without a soak section the report is written as it is.
        std::fs::write(&path, "# Performance\n\nold\n").unwrap();
        write(&path, "# Performance\n\nnew\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# Performance\n\nnew\n"
        );
        std::fs::remove_file(&path).unwrap();
    }
}
