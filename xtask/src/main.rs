//! haraka-rs automation: every workflow is `cargo xtask <verb>`.

mod bench;
mod e2e;
mod fuzz;
mod soak;
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
cargo xtask <verb>

  test            the whole test suite: build, unit and integration tests, tidy, e2e
  tidy            repository rules (dependency graph, unsafe, docs, file sizes, fmt, clippy)
  e2e             end-to-end checks against real Postfix, swaks and a DNS server (installs them when missing)
  fuzz <target> [seconds]   run a fuzz target with cargo-afl (targets: command, data, ini, session, reply)
  bench [--smoke] [options]   throughput, CPU, memory and latency against Haraka 3.0.0 and the loopback limit (writes docs/performance.md)
  soak [--smoke] [options]    haraka-rs under drip-feeding, idle and non-reading clients, on loopback
                  (writes its section of docs/performance.md)
  fuzz-smoke      replay the fuzz corpora and regression cases through every target
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test_all(),
        Some("tidy") => tidy::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("e2e") => e2e::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("fuzz-smoke") => fuzz::smoke(),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The README's test command: everything CI runs.
fn test_all() -> anyhow::Result<()> {
    util::cargo(&["build", "--workspace", "--all-targets"])?;
    util::cargo(&["test", "--workspace", "--no-fail-fast"])?;
    tidy::run()?;
    fuzz::smoke()?;
    e2e::run(&[])?;
    Ok(())
}
