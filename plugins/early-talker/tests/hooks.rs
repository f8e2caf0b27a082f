//! The early_talker plugin's settings and hooks.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use haraka_config::ConfigDir;
use haraka_plugin_api::{Connection, Hook, HookArgs, Local, Outcome, Plugin, PluginInit, Remote};
use haraka_plugin_early_talker::{TOO_SOON, factory, load};

fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("config").join(name), text).unwrap();
    }
    dir
}

fn plugin(files: &[(&str, &str)]) -> (tempfile::TempDir, Arc<dyn Plugin>) {
    let r = root(files);
    let cfg = ConfigDir::open(r.path()).unwrap();
    let p = factory(&PluginInit {
        name: "early_talker",
        config: &cfg,
    })
    .unwrap();
    (r, p)
}

fn conn(ip: &str, early: bool) -> Connection {
    let mut c = Connection::new(
        "UUID".into(),
        Remote::new(ip.parse().unwrap(), 40000),
        Local {
            ip: "192.0.2.1".parse().unwrap(),
            port: 25,
            host: "mx.test".into(),
        },
    );
    c.early_talker = early;
    c
}

fn skipped(c: &Connection, why: &str) -> bool {
    c.results.has("early_talker", "skip", why)
}

/// Files of a config directory: (name, content).
type Files<'a> = &'a [(&'a str, &'a str)];

#[test]
fn settings_table() {
    let ms = Duration::from_millis;
    let table: &[(Files<'_>, Option<Duration>, bool, usize)] = &[
        // Haraka's shipped pause=5, reject on
        (&[], Some(ms(5000)), true, 0),
        (
            &[("early_talker.ini", "pause=0.25\nreject=false\n")],
            Some(ms(250)),
            false,
            0,
        ),
        (
            &[("early_talker.ini", "[main]\npause=2\nreject=no\n")],
            Some(ms(2000)),
            false,
            0,
        ),
        // pause=0 falls back to the older value file, in milliseconds
        (
            &[
                ("early_talker.ini", "pause=0\n"),
                ("early_talker.pause", "300\n"),
            ],
            Some(ms(300)),
            true,
            0,
        ),
        (&[("early_talker.ini", "pause=0\n")], None, true, 0),
        (&[("early_talker.ini", "pause=soon\n")], None, true, 0),
        (
            &[(
                "early_talker.ini",
                "[ip_whitelist]\n198.51.100.0/24\n2001:db8::1\nnot-an-ip\n",
            )],
            Some(ms(5000)),
            true,
            2,
        ),
    ];
    for (files, pause, reject, listed) in table {
        let r = root(files);
        let (s, _) = load(&ConfigDir::open(r.path()).unwrap()).unwrap();
        assert_eq!(
            (s.pause, s.reject, s.whitelist.len()),
            (*pause, *reject, *listed),
            "{files:?}"
        );
    }
    let (_r, p) = plugin(&[]);
    let hooks: Vec<Hook> = p.hooks().iter().map(|r| r.hook).collect();
    assert_eq!(hooks, [Hook::ConnectInit, Hook::Data]);
}

#[tokio::test]
async fn an_early_talker_is_refused_at_data_after_the_pause() {
    let (_r, p) = plugin(&[("early_talker.ini", "pause=0.1\n")]);
    let mut c = conn("203.0.113.9", false);
    let t = Instant::now();
    assert_eq!(
        p.hook(Hook::ConnectInit, &mut c, &HookArgs::None).await,
        Outcome::cont()
    );
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "the greeting waits"
    );
    assert!(c.results.has("early_talker", "pass", "early"));
    c.early_talker = true;
    let t = Instant::now();
    assert_eq!(
        p.hook(Hook::Data, &mut c, &HookArgs::None).await,
        Outcome::deny_disconnect(TOO_SOON)
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert!(c.results.has("early_talker", "fail", "early"));
}

#[tokio::test]
async fn reject_false_only_records() {
    let (_r, p) = plugin(&[("early_talker.ini", "pause=0.01\nreject=false\n")]);
    let mut c = conn("203.0.113.9", true);
    assert_eq!(
        p.hook(Hook::Data, &mut c, &HookArgs::None).await,
        Outcome::cont()
    );
    assert!(c.results.has("early_talker", "fail", "early"));
}

#[tokio::test]
async fn privileged_and_nearby_clients_are_not_checked() {
    // a pause long enough that any wait would fail the hook-time bound below
    let (_r, p) = plugin(&[(
        "early_talker.ini",
        "pause=30\n[ip_whitelist]\n198.51.100.0/24\n",
    )]);
    let mut cases: Vec<(Connection, &str)> = vec![
        (conn("198.51.100.20", true), "whitelist"),
        (conn("127.0.0.1", true), "local_ip"),
        (conn("::1", true), "local_ip"),
        (conn("10.1.2.3", true), "private_ip"),
        (conn("fd00::5", true), "private_ip"),
    ];
    let mut authed = conn("203.0.113.9", true);
    authed.auth_user = Some("joe".into());
    cases.push((authed, "authed"));
    let mut relaying = conn("203.0.113.9", true);
    relaying.set_connection_relaying(true);
    cases.push((relaying, "relay"));
    for (mut c, why) in cases {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            p.hook(Hook::Data, &mut c, &HookArgs::None),
        )
        .await
        .expect("no pause");
        assert_eq!(out, Outcome::cont(), "{why}");
        assert!(skipped(&c, why), "{why}: {:?}", c.results);
    }
}

#[tokio::test]
async fn no_pause_no_check() {
    let (_r, p) = plugin(&[("early_talker.ini", "pause=0\n")]);
    let mut c = conn("203.0.113.9", true);
    assert_eq!(
        p.hook(Hook::Data, &mut c, &HookArgs::None).await,
        Outcome::cont()
    );
    assert!(c.results.get("early_talker").is_none());
}
