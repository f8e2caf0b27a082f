//! `--check` on every example root, and on broken roots.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use common::{copy_dir, run, workspace};

#[test]
fn every_example_root_passes_check() {
    let dir = workspace().join("config-examples");
    let mut roots: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    roots.sort();
    assert!(roots.len() >= 5, "{roots:?}");
    for root in roots {
        let out = run(&["-c", root.to_str().unwrap(), "--check"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}:\n{text}\n{}",
            root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("OK"), "{text}");
    }
}

#[test]
fn flat_roots_report_their_aliases() {
    let root = workspace().join("config-examples/haraka-in");
    let out = run(&["-c", root.to_str().unwrap(), "--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("flat layout"), "{text}");
    assert!(text.contains("[plugins]"), "{text}");
    assert!(
        text.contains("plugins: xclient, queue/smtp_forward, rcpt_to.in_host_list, tls"),
        "{text}"
    );

    let root = workspace().join("config-examples/haraka-out");
    let out = run(&["-c", root.to_str().unwrap(), "--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plugins: relay, tls"), "{text}");
    assert!(text.contains("listen: 10.0.0.1:2526"), "{text}");
}

#[test]
fn a_broken_root_lists_every_error_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("smtp.ini"),
        "listen=127.0.0.1:2525\ninactivity_timeout=soon\n",
    )
    .unwrap();
    std::fs::write(
        config.join("plugins"),
        "rcpt_to.in_host_list\nno_such_plugin\nqueue/file\nalso_missing\n",
    )
    .unwrap();
    std::fs::write(config.join("databytes"), "lots\n").unwrap();
    let out = run(&["-c", dir.path().to_str().unwrap(), "--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    let plugins = config.join("plugins");
    assert!(
        text.contains(&format!("{}:2: plugin 'no_such_plugin'", plugins.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}:4: plugin 'also_missing'", plugins.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}:2", config.join("smtp.ini").display())),
        "{text}"
    );
    assert!(text.contains("databytes"), "{text}");
    assert!(text.contains("4 error(s)"), "{text}");
}

#[test]
fn check_refuses_an_inactivity_timeout_that_ends_sessions_at_once() {
    let check = |value: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let ini = format!("listen=127.0.0.1:2525\ninactivity_timeout={value}\n");
        std::fs::write(config.join("smtp.ini"), ini).unwrap();
        std::fs::write(config.join("plugins"), "queue/file\n").unwrap();
        let out = run(&["-c", dir.path().to_str().unwrap(), "--check"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text)
    };
    let (ok, text) = check("0.001");
    assert!(!ok, "{text}");
    assert!(text.contains("smtp.ini:2"), "{text}");
    assert!(text.contains("at least 1 second"), "{text}");
    // 0 is Haraka's "unset": the default.
    let (ok, text) = check("0");
    assert!(ok, "{text}");
}

#[test]
fn a_missing_root_is_a_clear_error() {
    let out = run(&["-c", "/nonexistent/haraka-root", "--check"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/nonexistent/haraka-root"), "{text}");
}

#[test]
fn install_creates_a_root_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new");
    let out = run(&["-i", root.to_str().unwrap()]);
    assert!(out.status.success());
    let out = run(&["-c", root.to_str().unwrap(), "--check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn order_lists_hooks_in_plugin_order() {
    let root = workspace().join("config-examples/haraka-in-real");
    let out = run(&["-c", root.to_str().unwrap(), "-o"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let caps: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("capabilities"))
        .collect();
    // xclient is listed before tls, so XCLIENT is advertised before STARTTLS.
    assert!(
        caps.len() >= 2 && caps[0].contains("xclient") && caps[caps.len() - 1].contains("tls"),
        "{text}"
    );
}

#[test]
fn list_names_the_builtins() {
    let out = run(&["-l"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "tls",
        "xclient",
        "rcpt_to.in_host_list",
        "queue/smtp_forward",
        "relay",
        "queue/file",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{text}"
        );
    }
}

/// `--check` on a copy of the quickstart with `smtp_ini` appended, run by `sh`
/// after `setup`.
fn check_quickstart(setup: &str, smtp_ini: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("config-examples/quickstart"), dir.path());
    let ini = dir.path().join("config/smtp.ini");
    let mut text = std::fs::read_to_string(&ini).unwrap();
    text.push_str(smtp_ini);
    std::fs::write(&ini, text).unwrap();
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("{setup} && exec \"$0\" \"$@\""),
            common::bin(),
        ])
        .args(["-c", dir.path().to_str().unwrap(), "--check"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn check_prints_the_limits_in_force() {
    let text = check_quickstart(
        "true",
        "max_connections=77\nmax_connections_per_ip=0\nmessage_memory_budget=123456\n",
    );
    assert!(
        text.contains(
            "\nlimits: max_connections=77 max_connections_per_ip=0 \
             message_memory_budget=123456 (0 = unlimited)\n"
        ),
        "{text}"
    );
    // The defaults: the cap derived from the open-file limit, as at start
    // ((128 - 32) / 2), and a bounded budget.
    let text = check_quickstart("ulimit -n 128", "");
    let line = text
        .lines()
        .find(|l| l.starts_with("limits: "))
        .unwrap_or_default();
    assert!(
        line.starts_with("limits: max_connections=48 max_connections_per_ip=50 "),
        "{text}"
    );
    let budget: u64 = line
        .split("message_memory_budget=")
        .nth(1)
        .and_then(|b| b.split(' ').next())
        .and_then(|b| b.parse().ok())
        .unwrap_or_default();
    assert!(budget > 0 && budget <= 256 << 20, "{text}");
}
