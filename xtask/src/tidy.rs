//! Repository rules, checked as ordinary code: `cargo xtask tidy` runs them all, and
//! the fast ones also run as tests of this crate (so `cargo test` enforces them).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::util;

/// Crates allowed to contain `unsafe` (each block with a `// SAFETY:` comment).
const UNSAFE_ALLOWED: &[&str] = &[
    "crates/haraka-plugin-abi",
    "crates/haraka-plugin-sdk",
    "crates/haraka-plugin-host",
    "plugins/examples",
];

/// The workspace crates a plugin may depend on: the plugin API (and the SDK that
/// wraps it) and the libraries below it. Never the server, the binary, the outbound
/// engine, the queue, the cdylib host or another plugin.
const PLUGIN_MAY_USE: &[&str] = &[
    "haraka-plugin-api",
    "haraka-plugin-sdk",
    "haraka-smtp",
    "haraka-config",
    "haraka-client",
    "haraka-tls",
];

/// Haraka's names of the built-in plugins, which the server must never mention:
/// it runs whatever the plugin list names, through the `Plugin` trait.
const PLUGIN_NAMES: &[&str] = &[
    "\"xclient\"",
    "\"tls\"",
    "\"relay\"",
    "queue/smtp_forward",
    "smtp_forward",
    "rcpt_to.in_host_list",
    "queue/file",
    "haraka_plugin_tls",
    "haraka_plugin_xclient",
    "haraka_plugin_relay",
    "haraka_plugin_queue",
    "haraka_plugin_rcpt",
];

/// Longest source file, in lines.
const MAX_LINES: usize = 800;

/// Everything: the fast rules, then fmt and clippy.
pub fn run() -> anyhow::Result<()> {
    let root = util::root();
    let mut problems = Vec::new();
    problems.extend(dependency_rules(&root)?);
    problems.extend(source_rules(&root)?);
    if !problems.is_empty() {
        bail!(
            "tidy found {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
    util::cargo(&["fmt", "--all", "--", "--check"])?;
    util::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    eprintln!("tidy: ok");
    Ok(())
}

/// Workspace packages and their workspace dependencies (normal and build, not dev).
fn workspace_graph(root: &Path) -> anyhow::Result<BTreeMap<String, (PathBuf, Vec<String>)>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = util::output(
        Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--offline",
                "--no-deps",
            ])
            .current_dir(root),
    )
    .or_else(|_| {
        util::output(
            Command::new("cargo")
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .current_dir(root),
        )
    })?;
    let meta: Value = serde_json::from_str(&out).context("cargo metadata output")?;
    let mut graph = BTreeMap::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default().to_owned();
        let dir = PathBuf::from(pkg["manifest_path"].as_str().unwrap_or_default())
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let deps = pkg["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect();
        graph.insert(name, (dir, deps));
    }
    Ok(graph)
}

/// The dependency rules of ARCHITECTURE.md.
pub fn dependency_rules(root: &Path) -> anyhow::Result<Vec<String>> {
    let graph = workspace_graph(root)?;
    let mut problems = Vec::new();
    let forbid = |pkg: &str, banned: &[&str], why: &str, problems: &mut Vec<String>| {
        if let Some((_, deps)) = graph.get(pkg) {
            for d in deps {
                if banned
                    .iter()
                    .any(|b| d == b || (b.ends_with('*') && d.starts_with(&b[..b.len() - 1])))
                {
                    problems.push(format!("{pkg} must not depend on {d}: {why}"));
                }
            }
        }
    };
    let async_crates = [
        "tokio",
        "tokio-*",
        "futures*",
        "async-*",
        "hickory-*",
        "mio",
    ];
    forbid(
        "haraka-smtp",
        &async_crates,
        "the protocol crate is sans-IO",
        &mut problems,
    );
    forbid(
        "haraka-plugin-api",
        &async_crates,
        "the plugin API does no IO",
        &mut problems,
    );
    forbid(
        "haraka-plugin-api",
        &["haraka-server"],
        "plugins never see the server",
        &mut problems,
    );
    forbid(
        "haraka-plugin-host",
        &["haraka-plugin-sdk"],
        "the host and the SDK share only the abi and wire crates",
        &mut problems,
    );
    forbid(
        "haraka-config",
        &async_crates,
        "config reading is synchronous",
        &mut problems,
    );
    forbid(
        "haraka-tls",
        &["haraka-server", "haraka-rs", "haraka-plugin-*"],
        "TLS is a library the server, plugins and outbound share",
        &mut problems,
    );
    if let Some((_, deps)) = graph.get("haraka-plugin-abi") {
        for d in deps.iter().filter(|d| graph.contains_key(*d)) {
            problems.push(format!(
                "haraka-plugin-abi must not depend on workspace crate {d}"
            ));
        }
    }
    for (name, (dir, deps)) in &graph {
        if dir.starts_with(root.join("plugins")) {
            for d in deps.iter().filter(|d| graph.contains_key(*d)) {
                if !PLUGIN_MAY_USE.contains(&d.as_str()) {
                    problems.push(format!(
                        "plugin {name} must not depend on {d}: plugins see the plugin API and libraries only"
                    ));
                }
            }
        }
        if name != "haraka-rs" && deps.iter().any(|d| d == "haraka-rs") {
            problems.push(format!("{name} must not depend on the binary"));
        }
    }
    Ok(problems)
}

/// Rules over the Rust sources: `unsafe` placement and SAFETY comments, crate docs,
/// file length.
pub fn source_rules(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for dir in ["crates", "plugins", "xtask"] {
        let mut files = Vec::new();
        collect_rs(&root.join(dir), &mut files)?;
        for file in files {
            let rel = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
            let text = fs::read_to_string(&file).with_context(|| file.display().to_string())?;
            let lines: Vec<&str> = text.lines().collect();
            if lines.len() > MAX_LINES {
                problems.push(format!(
                    "{}: {} lines (max {MAX_LINES})",
                    rel.display(),
                    lines.len()
                ));
            }
            if rel.ends_with("src/lib.rs") && !text.trim_start().starts_with("//!") {
                problems.push(format!("{}: must start with //! crate docs", rel.display()));
            }
            if rel.starts_with("crates/haraka-server/src") {
                for (i, line) in lines.iter().enumerate() {
                    if let Some(p) = plugin_named(line) {
                        problems.push(format!(
                            "{}:{}: the server names the plugin {p}",
                            rel.display(),
                            i + 1
                        ));
                    }
                }
            }
            let allowed = UNSAFE_ALLOWED.iter().any(|p| rel.starts_with(p));
            // This file names the patterns it looks for.
            let is_self = rel == Path::new("xtask/src/tidy.rs");
            for (i, line) in lines.iter().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if is_self
                    || !(code.contains("unsafe {")
                        || code.contains("unsafe fn")
                        || code.contains("unsafe impl")
                        || code.contains("unsafe extern"))
                {
                    continue;
                }
                if !allowed {
                    problems.push(format!(
                        "{}:{}: unsafe outside the plugin ABI/SDK/host crates",
                        rel.display(),
                        i + 1
                    ));
                } else if code.contains("unsafe {") && !has_safety_comment(&lines, i) {
                    problems.push(format!(
                        "{}:{}: unsafe block without a // SAFETY: comment",
                        rel.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// The built-in plugin a line of server code names, if any.
fn plugin_named(line: &str) -> Option<&'static str> {
    PLUGIN_NAMES.iter().copied().find(|p| line.contains(p))
}

/// A `// SAFETY:` comment on the line or within the 6 lines above.
fn has_safety_comment(lines: &[&str], i: usize) -> bool {
    let from = i.saturating_sub(6);
    lines[from..=i].iter().any(|l| l.contains("SAFETY:"))
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect_rs(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_graph_follows_the_architecture() {
        let problems = dependency_rules(&util::root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn sources_follow_the_rules() {
        let problems = source_rules(&util::root()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn plugin_names_in_server_code() {
        assert_eq!(
            plugin_named(r#"if name == "queue/smtp_forward" {"#),
            Some("queue/smtp_forward")
        );
        assert_eq!(
            plugin_named("use haraka_plugin_xclient::Xclient;"),
            Some("haraka_plugin_xclient")
        );
        assert_eq!(plugin_named(r#"registry.get("tls")"#), Some("\"tls\""));
        assert_eq!(plugin_named("use haraka_plugin_api::Plugin;"), None);
        assert_eq!(plugin_named("// STARTTLS upgrades the stream"), None);
    }

    #[test]
    fn safety_comment_lookup() {
        let lines = [
            "// SAFETY: fine",
            "let x = unsafe { f() };",
            "",
            "",
            "",
            "",
            "",
            "",
            "unsafe { g() }",
        ];
        assert!(has_safety_comment(&lines, 1));
        assert!(!has_safety_comment(&lines, 8));
    }
}
