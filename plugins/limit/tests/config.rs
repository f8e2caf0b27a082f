//! `limit.ini` parsing, the rate syntax, the lookup keys and the counters.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use haraka_config::{ConfigDir, Ini};
use haraka_plugin_api::Hook;
use haraka_plugin_limit::config::{LIMIT_INI, from_ini, parse_max, truthy};
use haraka_plugin_limit::rate::{Rate, host_key, mail_key};
use haraka_plugin_limit::store::Counters;

fn limit_ini(text: &str) -> (tempfile::TempDir, Ini) {
    let r = root(&[("limit.ini", text)]);
    let cfg = ConfigDir::open(r.path()).unwrap();
    let ini = cfg.plugin_ini(&LIMIT_INI).unwrap();
    (r, ini)
}

#[test]
fn rate_syntax_table() {
    let secs = |s| Some(Duration::from_secs(s));
    let table: &[(&str, u64, Option<Duration>)] = &[
        ("5", 5, secs(60)),
        ("50/5m", 50, secs(300)),
        ("50/5M", 50, secs(300)),
        ("10/30", 10, secs(30)),
        ("10/30s", 10, secs(30)),
        ("1/2h", 1, secs(7200)),
        ("3/1d", 3, secs(86_400)),
        // an unknown unit leaves the period in seconds
        ("3/7x", 3, secs(7)),
        ("0", 0, secs(60)),
        // malformed: the limit is the leading digits, there is no period
        ("5/m", 5, None),
        ("50/5min", 50, None),
        ("abc", 0, None),
        ("", 0, None),
        ("7 ", 7, None),
    ];
    for (text, limit, period) in table {
        let r = Rate::parse(text);
        assert_eq!((r.limit, r.period), (*limit, *period), "{text:?}");
    }
    assert_eq!(Rate::parse("0/5m").enforced(), None);
    assert_eq!(Rate::parse("5/m").enforced(), None);
    assert_eq!(
        Rate::parse("2/10s").enforced(),
        Some((2, Duration::from_secs(10)))
    );
}

#[test]
fn max_and_truthiness_follow_javascript() {
    assert_eq!(parse_max("10"), Some(10.0));
    assert_eq!(parse_max("2.5"), Some(2.5));
    assert_eq!(parse_max("20x"), Some(20.0));
    assert_eq!(parse_max("0"), None);
    assert_eq!(parse_max("x"), None);
    assert_eq!(parse_max(""), None);
    for t in ["true", "false", "1", "yes", "x"] {
        assert!(truthy(t), "{t}");
    }
    for t in ["", "0", "0.0"] {
        assert!(!truthy(t), "{t}");
    }
}

#[test]
fn shipped_defaults_enable_nothing() {
    let (_r, ini) = limit_ini("");
    let cfg = from_ini(&ini);
    assert_eq!(cfg.tarpit_delay, Some(Duration::from_secs(3)));
    assert!(cfg.concurrency.is_none());
    assert!(cfg.recipients.is_none());
    assert!(cfg.unrecognized_commands.is_none());
    assert!(cfg.errors.is_none());
    assert!(cfg.rate_conn.is_none() && cfg.rate_rcpt.is_none());
    let (_r, p) = plugin_for("");
    assert_eq!(hooks(p.as_ref()), Vec::<Hook>::new());
}

#[test]
fn user_file_is_merged_over_the_shipped_one() {
    let (_r, ini) = limit_ini(
        "tarpit_delay=0.5\n[concurrency]\nenabled=true\n[unrecognized_commands]\nenabled=true\n\
         [errors]\nenabled=yes\nmax=2\n[recipients]\nenabled=true\nmax=20\nmax_relaying=100\n\
         [rate_conn]\nenabled=true\n192.0.2=3/10s\n",
    );
    let cfg = from_ini(&ini);
    assert_eq!(cfg.tarpit_delay, Some(Duration::from_millis(500)));
    assert_eq!(cfg.concurrency, Some(Some(3.0)), "shipped max=3");
    assert_eq!(
        cfg.unrecognized_commands,
        Some(Some(10.0)),
        "shipped max=10"
    );
    assert_eq!(cfg.errors, Some(Some(2.0)));
    let r = cfg.recipients.clone().unwrap();
    assert_eq!((r.max, r.max_relaying), (Some(20.0), Some(100.0)));
    let rc = cfg.rate_conn.clone().unwrap();
    assert_eq!(rc.entry("127"), Some("0"), "shipped loopback exemption");
    assert_eq!(rc.default(), Some("5"));
    assert_eq!(rc.entry("192.0.2"), Some("3/10s"));
    assert_eq!(rc.entry("enabled"), None);
}

#[test]
fn concurrency_enabled_is_javascript_truthy() {
    // `[concurrency] enabled` is not a declared boolean in the plugin.
    for (text, on) in [("true", true), ("false", true), ("0", false), ("", false)] {
        let (_r, ini) = limit_ini(&format!("[concurrency]\nenabled={text}\n"));
        assert_eq!(from_ini(&ini).concurrency.is_some(), on, "{text:?}");
    }
    // the declared booleans are real booleans
    let (_r, ini) = limit_ini("[errors]\nenabled=false\n");
    assert!(from_ini(&ini).errors.is_none());
}

#[test]
fn registered_hooks_follow_enabled_sections() {
    let table: &[(&str, &[Hook])] = &[
        (
            "[concurrency]\nenabled=true\n",
            &[Hook::ConnectInit, Hook::Connect, Hook::Disconnect],
        ),
        (
            "[errors]\nenabled=true\n",
            &[Hook::Helo, Hook::Ehlo, Hook::Mail, Hook::Data, Hook::Rcpt],
        ),
        ("[recipients]\nenabled=true\nmax=2\n", &[Hook::Rcpt]),
        (
            "[unrecognized_commands]\nenabled=true\n",
            &[Hook::UnrecognizedCommand],
        ),
        (
            "[rate_conn]\nenabled=true\n",
            &[Hook::ConnectInit, Hook::Connect],
        ),
        (
            "[rate_rcpt_host]\nenabled=true\n",
            &[Hook::Connect, Hook::Rcpt],
        ),
        ("[rate_rcpt_sender]\nenabled=true\n", &[Hook::Rcpt]),
        ("[rate_rcpt]\nenabled=true\n", &[Hook::Rcpt]),
        (
            "[rate_rcpt_null]\nenabled=true\n[outbound]\nenabled=true\n",
            &[],
        ),
    ];
    for (ini, expect) in table {
        let (_r, p) = plugin_for(ini);
        let mut got = hooks(p.as_ref());
        let mut want = expect.to_vec();
        got.sort_by_key(|h| h.name());
        want.sort_by_key(|h| h.name());
        assert_eq!(got, want, "{ini:?}");
    }
}

#[test]
fn host_lookup_order() {
    let (_r, ini) = limit_ini(
        "[rate_conn]\nenabled=true\n127=0\n192.0.2=7\n198.51.100.9=1/5m\nexample.com=9\n\
         mail.example.net=4\n2001:db8:0:0=6\ndefault=5\n",
    );
    let table = from_ini(&ini).rate_conn.unwrap();
    let key = |ip: &str, host: Option<&str>| {
        let mut c = conn(ip);
        c.remote.host = host.map(str::to_owned);
        host_key(&table, &c)
    };
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(key("127.0.0.1", None), s("127", "0"));
    assert_eq!(key("::ffff:127.0.0.1", None), s("127", "0"));
    assert_eq!(key("192.0.2.44", None), s("192.0.2", "7"));
    assert_eq!(key("198.51.100.9", None), s("198.51.100.9", "1/5m"));
    assert_eq!(key("198.51.100.10", None), s("198.51.100.10", "5"));
    assert_eq!(
        key("203.0.113.1", Some("MX1.Example.COM")),
        s("example.com", "9")
    );
    assert_eq!(
        key("203.0.113.1", Some("mail.example.net")),
        s("mail.example.net", "4")
    );
    assert_eq!(key("2001:db8::1", None), s("2001:db8:0:0", "6"));
    // the address wins over the name
    assert_eq!(key("192.0.2.1", Some("example.com")), s("192.0.2", "7"));

    let (_r, ini) = limit_ini("[rate_conn]\nenabled=true\ndefault=0\n");
    let table = from_ini(&ini).rate_conn.unwrap();
    assert_eq!(host_key(&table, &conn("192.0.2.1")), s("192.0.2.1", "0"));
}

#[test]
fn mail_lookup_order() {
    let (_r, ini) = limit_ini(
        "[rate_rcpt]\nenabled=true\nboss@example.com=0\nexample.com=2\nsub.example.org=3\n",
    );
    let table = from_ini(&ini).rate_rcpt.unwrap();
    let key = |a: Option<&str>| {
        let a = a.map(addr);
        mail_key(&table, a.as_ref())
    };
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(key(Some("boss@example.com")), s("boss@example.com", "0"));
    assert_eq!(key(Some("joe@EXAMPLE.com")), s("example.com", "2"));
    assert_eq!(
        key(Some("joe@a.sub.example.org")),
        s("sub.example.org", "3")
    );
    // the shipped default
    assert_eq!(key(Some("joe@other.test")), s("joe@other.test", "50/5m"));
    assert_eq!(key(None), s("", "50/5m"));
}

#[test]
fn counters_expire() {
    let c = Counters::default();
    let t0 = Instant::now();
    let p = Duration::from_secs(10);
    assert_eq!(c.fixed_incr("k", p, t0), 1);
    assert_eq!(c.fixed_incr("k", p, t0 + Duration::from_secs(9)), 2);
    assert_eq!(c.fixed_get("k", t0 + Duration::from_secs(9)), 2);
    // a fixed window starts at its first event
    assert_eq!(c.fixed_get("k", t0 + p), 0);
    assert_eq!(c.fixed_incr("k", p, t0 + p), 1);

    c.sliding_incr("s", p, t0);
    c.sliding_incr("s", p, t0 + Duration::from_secs(5));
    c.sliding_incr("s", p, t0 + Duration::from_secs(8));
    assert_eq!(c.sliding_count("s", p, t0 + Duration::from_secs(8)), 3);
    assert_eq!(c.sliding_count("s", p, t0 + Duration::from_secs(12)), 2);
    assert_eq!(c.sliding_count("s", p, t0 + Duration::from_secs(19)), 0);

    assert_eq!(c.concurrency_incr("ip", t0), 1);
    assert_eq!(c.concurrency_incr("ip", t0), 2);
    c.concurrency_decr("ip", t0);
    c.concurrency_decr("ip", t0);
    c.concurrency_decr("ip", t0);
    assert_eq!(c.concurrency_incr("ip", t0), 1);
    // a counter left behind is forgotten 3 minutes after its last connection
    assert_eq!(c.concurrency_incr("ip", t0 + Duration::from_secs(181)), 1);
}

#[test]
fn counters_are_bounded() {
    let c = Counters::with_capacity(100);
    let t0 = Instant::now();
    let p = Duration::from_secs(60);
    for i in 0..1000 {
        c.fixed_incr(&format!("k{i}"), p, t0);
        c.sliding_incr(&format!("k{i}"), p, t0);
        c.concurrency_incr(&format!("k{i}"), t0);
    }
    assert!(c.len() <= 300, "{}", c.len());
    // expired entries make room first
    let later = t0 + Duration::from_secs(3600);
    assert_eq!(c.fixed_incr("new", p, later), 1);
    assert!(c.len() <= 300);
    // a sliding window holds a bounded number of slices however many events
    for i in 0..10_000u64 {
        c.sliding_incr("busy", p, later + Duration::from_millis(i * 7));
    }
    let end = later + Duration::from_millis(70_000);
    let n = c.sliding_count("busy", p, end);
    assert!((8400..=8700).contains(&n), "{n}");
}
