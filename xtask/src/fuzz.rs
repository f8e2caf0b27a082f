//! Fuzzing with cargo-afl (`cargo xtask fuzz <target> [seconds]`) and the replay of
//! seeds and regression cases that CI runs (`cargo xtask fuzz-smoke`).
//!
//! Layout (see `fuzz/README.md`): `fuzz/` is its own cargo workspace; the targets
//! are the functions of `fuzz/src/lib.rs`, which this module compiles in as well,
//! so the smoke replay calls exactly what AFL calls. Hand-written seeds live in
//! `fuzz/seeds/<target>/`, crash inputs in `fuzz/regressions/<target>/`; the
//! working corpus (`fuzz/corpus/`) and AFL's output (`fuzz/artifacts/`) are not
//! committed.

#[path = "../../fuzz/src/lib.rs"]
mod targets;

use std::cell::RefCell;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::util;
use targets::TARGETS;

/// The cargo-afl release that `fuzz/Cargo.toml` pins the `afl` crate to (the two
/// must match: the runtime cargo-afl builds is per afl.rs version).
const CARGO_AFL_VERSION: &str = "0.18.2";

/// Fuzzing time when none is given.
const DEFAULT_SECONDS: u64 = 60;

/// Run one target under AFL++ for a while; crash inputs become regression cases.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let Some(target) = args.first() else {
        bail!(
            "usage: cargo xtask fuzz <target> [seconds]; targets: {}",
            names.join(", ")
        );
    };
    let Some(&(name, f)) = TARGETS.iter().find(|(n, _)| n == target) else {
        bail!(
            "unknown fuzz target {target:?}; targets: {}",
            names.join(", ")
        );
    };
    let seconds = match args.get(1) {
        Some(s) => s
            .parse::<u64>()
            .with_context(|| format!("seconds: {s:?}"))?,
        None => DEFAULT_SECONDS,
    };
    let root = util::root();
    let fuzz = root.join("fuzz");
    ensure_cargo_afl()?;
    let target_dir = root.join("target").join("fuzz");
    util::run(
        Command::new(cargo())
            .args(["afl", "build", "--bin", name, "--target-dir"])
            .arg(&target_dir)
            .current_dir(&fuzz),
    )?;
    let binary = target_dir.join("debug").join(name);

    let corpus = fuzz.join("corpus").join(name);
    let seeded = fill_corpus(&fuzz, name, &corpus)?;
    let out = fuzz.join("artifacts").join(name);
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| out.display().to_string())?;
    }
    fs::create_dir_all(&out)?;
    eprintln!(
        "xtask: fuzzing {name} for {seconds} s from {seeded} inputs in {} (AFL log: {})",
        corpus.display(),
        out.join("afl.log").display()
    );
    afl_fuzz(&binary, &corpus, &out, seconds)?;

    let stats_dir = out.join("default");
    let stats = fs::read_to_string(stats_dir.join("fuzzer_stats")).unwrap_or_default();
    let learned = keep_queue(&stats_dir.join("queue"), &corpus)?;
    let stat = |k: &str| stat_value(&stats, k).unwrap_or("?").to_owned();
    eprintln!(
        "xtask: fuzz {name}: {} s, {} executions ({} /s), {} corpus entries ({learned} new kept), \
         edges {}/{}, {} crashes, {} hangs",
        stat("run_time"),
        stat("execs_done"),
        stat("execs_per_sec"),
        stat("corpus_count"),
        stat("edges_found"),
        stat("total_edges"),
        stat("saved_crashes"),
        stat("saved_hangs"),
    );
    for hang in inputs(&stats_dir.join("hangs"))? {
        eprintln!(
            "xtask: hang (not kept; check it by hand): {}",
            hang.display()
        );
    }
    let crashes = keep_crashes(
        name,
        f,
        &stats_dir.join("crashes"),
        &fuzz.join("regressions").join(name),
    )?;
    if !crashes.is_empty() {
        bail!(
            "fuzz {name}: {} crash(es); kept in fuzz/regressions/{name}/, fix them \
             (`cargo xtask fuzz-smoke` replays them):\n{}",
            crashes.len(),
            crashes.join("\n")
        );
    }
    Ok(())
}

/// Replay every seed and regression case through its target, in this process.
pub fn smoke() -> anyhow::Result<()> {
    let fuzz = util::root().join("fuzz");
    let (count, failures) = replay_all(&fuzz)?;
    if !failures.is_empty() {
        bail!(
            "fuzz-smoke: {} of {count} inputs fail:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    eprintln!(
        "fuzz-smoke: {count} inputs replayed through {} targets, all pass",
        TARGETS.len()
    );
    Ok(())
}

/// `(inputs replayed, failures)` over `fuzz/seeds` and `fuzz/regressions`.
fn replay_all(fuzz: &Path) -> anyhow::Result<(usize, Vec<String>)> {
    let mut count = 0;
    let mut failures = Vec::new();
    for &(name, f) in TARGETS {
        for kind in ["seeds", "regressions"] {
            for file in inputs(&fuzz.join(kind).join(name))? {
                let data = fs::read(&file).with_context(|| file.display().to_string())?;
                count += 1;
                if let Err(why) = replay(f, &data) {
                    failures.push(format!("{}: {why}", file.display()));
                }
            }
        }
    }
    Ok((count, failures))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Install cargo-afl and build AFL++ for this toolchain, unless already done.
fn ensure_cargo_afl() -> anyhow::Result<()> {
    let version = Command::new(cargo())
        .args(["afl", "--version"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !version.starts_with(&format!("cargo-afl {CARGO_AFL_VERSION} ")) {
        util::run(Command::new(cargo()).args([
            "install",
            "cargo-afl",
            "--locked",
            "--force",
            "--version",
            &format!("={CARGO_AFL_VERSION}"),
        ]))?;
    }
    // Builds AFL++ (from the sources cargo-afl ships) once per toolchain; says so
    // and fails when that was already done.
    let out = Command::new(cargo())
        .args(["afl", "config", "--build"])
        .output()
        .context("cannot run cargo afl config")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !stderr.contains("already built") {
        bail!("cargo afl config --build failed: {}\n{stderr}", out.status);
    }
    Ok(())
}

/// Run afl-fuzz for `seconds`, printing a progress line each minute (as often as
/// AFL updates its stats file).
fn afl_fuzz(binary: &Path, corpus: &Path, out: &Path, seconds: u64) -> anyhow::Result<()> {
    let log = fs::File::create(out.join("afl.log"))?;
    let mut child = Command::new(cargo())
        .args(["afl", "fuzz", "-i"])
        .arg(corpus)
        .arg("-o")
        .arg(out)
        .args(["-V", &seconds.to_string(), "--"])
        .arg(binary)
        .env("AFL_NO_UI", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_NO_AFFINITY", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .env("AFL_IGNORE_SEED_PROBLEMS", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start cargo afl fuzz")?;
    let started = Instant::now();
    // afl-fuzz stops itself after -V seconds; calibration comes on top.
    let deadline = Duration::from_secs(seconds + 300);
    let mut last_report = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > deadline {
            child.kill()?;
            bail!("afl-fuzz did not stop after {} s", deadline.as_secs());
        }
        std::thread::sleep(Duration::from_millis(500));
        if last_report.elapsed() >= Duration::from_secs(60) {
            last_report = Instant::now();
            let stats =
                fs::read_to_string(out.join("default").join("fuzzer_stats")).unwrap_or_default();
            eprintln!(
                "xtask: {} s: {} execs, {} corpus, {} crashes (AFL stats, up to a minute old)",
                started.elapsed().as_secs(),
                stat_value(&stats, "execs_done").unwrap_or("-"),
                stat_value(&stats, "corpus_count").unwrap_or("-"),
                stat_value(&stats, "saved_crashes").unwrap_or("-"),
            );
        }
    };
    if !status.success() {
        let log = fs::read_to_string(out.join("afl.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("afl-fuzz failed: {status}\n{}", tail.join("\n"));
    }
    Ok(())
}

/// One field of AFL's `fuzzer_stats` (`key : value` lines).
fn stat_value<'a>(stats: &'a str, key: &str) -> Option<&'a str> {
    stats.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// Copy seeds and regression cases into the working corpus (named by content, so
/// a second run adds nothing twice). Returns how many inputs the corpus holds.
fn fill_corpus(fuzz: &Path, name: &str, corpus: &Path) -> anyhow::Result<usize> {
    fs::create_dir_all(corpus).with_context(|| corpus.display().to_string())?;
    for kind in ["seeds", "regressions"] {
        for file in inputs(&fuzz.join(kind).join(name))? {
            let data = fs::read(&file)?;
            write_once(
                corpus,
                &format!("{}-{:016x}", &kind[..4], fnv1a(&data)),
                &data,
            )?;
        }
    }
    Ok(inputs(corpus)?.len())
}

/// Keep what AFL found interesting for the next run. Returns how many were new.
fn keep_queue(queue: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let mut new = 0;
    for file in inputs(queue)? {
        let data = fs::read(&file)?;
        if write_once(corpus, &format!("q-{:016x}", fnv1a(&data)), &data)? {
            new += 1;
        }
    }
    Ok(new)
}

/// Copy crash inputs into `regressions` and say for each what it does.
fn keep_crashes(
    name: &str,
    f: targets::Target,
    crashes: &Path,
    regressions: &Path,
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for file in inputs(crashes)? {
        let data = fs::read(&file)?;
        let kept = format!("crash-{:016x}", fnv1a(&data));
        write_once(regressions, &kept, &data)?;
        let why = match replay(f, &data) {
            Err(why) => why.replace('\n', " "),
            Ok(()) => "does not panic when replayed in-process (abort, stack overflow or memory?)"
                .to_owned(),
        };
        found.push(format!("  fuzz/regressions/{name}/{kept}: {why}"));
    }
    Ok(found)
}

/// Write `dir/file` unless it exists; true when written.
fn write_once(dir: &Path, file: &str, data: &[u8]) -> anyhow::Result<bool> {
    fs::create_dir_all(dir)?;
    let path = dir.join(file);
    if path.exists() {
        return Ok(false);
    }
    fs::write(&path, data).with_context(|| path.display().to_string())?;
    Ok(true)
}

/// The input files of a directory (none when it does not exist): every regular
/// file except dot-files, `README*` and AFL's own `README.txt`, sorted.
fn inputs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && !file.starts_with('.') && !file.starts_with("README") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// 64-bit FNV-1a: names corpus and regression files by their content.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

thread_local! {
    /// While [`replay`] runs on this thread: the message of the panic it caught.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Install (once) a panic hook that records a panic inside [`replay`] instead of
/// printing it, and leaves every other panic to the hook that was there before.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let caught = CAUGHT.with(|c| match c.borrow_mut().as_mut() {
                Some(message) => {
                    *message = info.to_string();
                    true
                }
                None => false,
            });
            if !caught {
                previous(info);
            }
        }));
    });
}

/// Run `f` on `data`; a panic becomes its message and location.
fn replay(f: targets::Target, data: &[u8]) -> Result<(), String> {
    install_panic_hook();
    CAUGHT.with(|c| *c.borrow_mut() = Some(String::new()));
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(data)));
    let message = CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_default();
    result.map_err(|_| message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_and_a_binary() {
        let fuzz = util::root().join("fuzz");
        let manifest = fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
        for (name, _) in TARGETS {
            assert!(
                !inputs(&fuzz.join("seeds").join(name)).unwrap().is_empty(),
                "no seeds for {name}"
            );
            assert!(
                fuzz.join("fuzz_targets")
                    .join(format!("{name}.rs"))
                    .is_file(),
                "no binary for {name}"
            );
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "{name} not in fuzz/Cargo.toml"
            );
        }
    }

    #[test]
    fn afl_crate_matches_cargo_afl() {
        let manifest = fs::read_to_string(util::root().join("fuzz/Cargo.toml")).unwrap();
        assert!(manifest.contains(&format!("afl = \"={CARGO_AFL_VERSION}\"")));
    }

    #[test]
    fn fuzz_package_is_not_in_the_root_workspace() {
        let root = fs::read_to_string(util::root().join("Cargo.toml")).unwrap();
        assert!(!root.contains("\"fuzz\""));
        let manifest = fs::read_to_string(util::root().join("fuzz/Cargo.toml")).unwrap();
        assert!(manifest.lines().any(|l| l.trim() == "[workspace]"));
    }

    #[test]
    fn stats_lines() {
        let stats = "start_time        : 1\nexecs_per_sec     : 7758.14\nsaved_crashes     : 0\n";
        assert_eq!(stat_value(stats, "execs_per_sec"), Some("7758.14"));
        assert_eq!(stat_value(stats, "saved_crashes"), Some("0"));
        assert_eq!(stat_value(stats, "execs_done"), None);
    }

    #[test]
    fn replay_reports_the_panic_and_its_place() {
        fn boom(data: &[u8]) {
            assert!(data.is_empty(), "boom {}", data.len());
        }
        assert_eq!(replay(boom, b""), Ok(()));
        let why = replay(boom, b"xy").unwrap_err();
        assert!(why.contains("boom 2"), "{why}");
        assert!(why.contains("fuzz.rs"), "{why}");
    }

    #[test]
    fn content_names_and_corpus_filling() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let seeds = dir.join("seeds").join("t");
        fs::create_dir_all(&seeds).unwrap();
        fs::write(seeds.join("a"), b"one").unwrap();
        fs::write(seeds.join("b"), b"one").unwrap();
        fs::write(seeds.join("README.md"), b"not an input").unwrap();
        let corpus = dir.join("corpus").join("t");
        assert_eq!(fill_corpus(&dir, "t", &corpus).unwrap(), 1);
        assert_eq!(fill_corpus(&dir, "t", &corpus).unwrap(), 1);
        assert!(write_once(&corpus, "q-1", b"two").unwrap());
        assert!(!write_once(&corpus, "q-1", b"two").unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crashes_become_regression_cases() {
        fn boom(data: &[u8]) {
            assert!(!data.starts_with(b"!"), "bang");
        }
        let dir = std::env::temp_dir().join(format!("xtask-crashes-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let crashes = dir.join("crashes");
        fs::create_dir_all(&crashes).unwrap();
        fs::write(crashes.join("id:000000,sig:06"), b"!x").unwrap();
        fs::write(crashes.join("README.txt"), b"AFL's note").unwrap();
        let regressions = dir.join("regressions");
        let found = keep_crashes("t", boom, &crashes, &regressions).unwrap();
        assert_eq!(found.len(), 1);
        let kept = format!("crash-{:016x}", fnv1a(b"!x"));
        assert!(found[0].contains(&kept), "{}", found[0]);
        assert!(found[0].contains("bang"), "{}", found[0]);
        assert_eq!(fs::read(regressions.join(&kept)).unwrap(), b"!x");
        assert_eq!(inputs(&regressions).unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seeds_and_regressions_replay() {
        let (count, failures) = replay_all(&util::root().join("fuzz")).unwrap();
        assert!(count >= TARGETS.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
