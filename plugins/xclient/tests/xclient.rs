//! The xclient plugin driven through the `Plugin` trait.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use haraka_config::ConfigDir;
use haraka_plugin_api::{
    Action, ConnAction, Connection, Hello, HelloVerb, Hook, HookArgs, Local, Msg, Outcome, Plugin,
    PluginInit, Remote, Transaction,
};

/// The plugin's hooks never wait; poll once.
fn now<T>(fut: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("hook future was not ready"),
    }
}

fn root(hosts: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    if let Some(text) = hosts {
        std::fs::write(dir.path().join("config/xclient.hosts"), text).unwrap();
    }
    dir
}

fn plugin(root: &Path) -> Arc<dyn Plugin> {
    let cfg = ConfigDir::open(root).unwrap();
    haraka_plugin_xclient::factory(&PluginInit {
        name: "xclient",
        config: &cfg,
    })
    .unwrap()
}

fn conn(ip: &str) -> Connection {
    let ip: IpAddr = ip.parse().unwrap();
    Connection::new(
        "UUID-1".into(),
        Remote::new(ip, 40000),
        Local {
            ip: "127.0.0.1".parse().unwrap(),
            port: 25,
            host: "mx.test".into(),
        },
    )
}

fn advertised(p: &dyn Plugin, ip: &str) -> bool {
    let mut c = conn(ip);
    let out = now(p.hook(Hook::Capabilities, &mut c, &HookArgs::None));
    assert_eq!(out, Outcome::cont());
    c.capabilities
        .iter()
        .any(|l| l == "XCLIENT NAME ADDR PROTO HELO LOGIN")
}

fn xclient(p: &dyn Plugin, c: &mut Connection, verb: &str, rest: &str) -> Outcome {
    let args = HookArgs::Unrecognized {
        verb: verb.into(),
        rest: rest.into(),
    };
    now(p.hook(Hook::UnrecognizedCommand, c, &args))
}

fn deny(code: u16, status: &str, text: &str) -> Outcome {
    Outcome::deny(Msg::dsn(code, status, text))
}

#[test]
fn registers_capabilities_and_unrecognized_command() {
    let r = root(None);
    let p = plugin(r.path());
    assert_eq!(p.name(), "xclient");
    let hooks: Vec<Hook> = p.hooks().iter().map(|r| r.hook).collect();
    assert_eq!(hooks, [Hook::Capabilities, Hook::UnrecognizedCommand]);
}

#[test]
fn advertised_only_to_trusted_clients() {
    let r = root(Some(
        "# trusted\n; also a comment\n192.0.2.7\n10.1.0.0/16\n2001:db8::/32\n::ffff:198.51.100.0/120\nnot-an-ip\n10.0.0.0/33\n",
    ));
    let p = plugin(r.path());
    let table = [
        ("127.0.0.1", true),
        ("::1", true),
        ("::ffff:127.0.0.1", true),
        ("127.0.0.2", false),
        ("192.0.2.7", true),
        ("::ffff:192.0.2.7", true),
        ("192.0.2.8", false),
        ("10.1.255.3", true),
        ("10.2.0.1", false),
        ("2001:db8:1::5", true),
        ("2001:db9::5", false),
        ("198.51.100.200", true),
        ("198.51.101.1", false),
        // IPv4-compatible (not mapped) must not be taken for 192.0.2.7
        ("::192.0.2.7", false),
    ];
    for (ip, expect) in table {
        assert_eq!(advertised(p.as_ref(), ip), expect, "{ip}");
    }
}

#[test]
fn loopback_is_trusted_without_a_hosts_file() {
    let r = root(None);
    let p = plugin(r.path());
    assert!(advertised(p.as_ref(), "127.0.0.1"));
    assert!(advertised(p.as_ref(), "::1"));
    assert!(!advertised(p.as_ref(), "192.0.2.1"));
}

#[test]
fn hosts_file_is_reloaded_when_it_changes() {
    let r = root(Some("192.0.2.1\n"));
    let cfg = ConfigDir::open(r.path()).unwrap();
    let p: Arc<dyn Plugin> = haraka_plugin_api::plugin(
        "xclient",
        haraka_plugin_xclient::Xclient::new(&cfg)
            .unwrap()
            .with_reload_interval(std::time::Duration::ZERO),
    );
    assert!(!advertised(p.as_ref(), "192.0.2.99"));
    std::fs::write(
        r.path().join("config/xclient.hosts"),
        "192.0.2.1\n192.0.2.99\n",
    )
    .unwrap();
    assert!(advertised(p.as_ref(), "192.0.2.99"));
    std::fs::remove_file(r.path().join("config/xclient.hosts")).unwrap();
    assert!(!advertised(p.as_ref(), "192.0.2.1"));
    assert!(advertised(p.as_ref(), "127.0.0.1"));
}

#[test]
fn refusals() {
    let r = root(Some("192.0.2.5\n"));
    let p = plugin(r.path());
    let table: [(&str, &str, &str, Outcome); 11] = [
        // Haraka compares the verb case-sensitively.
        ("127.0.0.1", "xclient", "ADDR=1.2.3.4", Outcome::cont()),
        ("127.0.0.1", "Xclient", "ADDR=1.2.3.4", Outcome::cont()),
        ("127.0.0.1", "AUTH", "PLAIN", Outcome::cont()),
        (
            "192.0.2.6",
            "XCLIENT",
            "ADDR=1.2.3.4",
            deny(550, "5.5.0", "Not authorized"),
        ),
        (
            "127.0.0.1",
            "XCLIENT",
            "NAME=a.example",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
        (
            "127.0.0.1",
            "XCLIENT",
            "ADDR=[UNAVAILABLE]",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
        (
            "127.0.0.1",
            "XCLIENT",
            "ADDR=[TEMPUNAVAIL]",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
        (
            "127.0.0.1",
            "XCLIENT",
            "ADDR=::1",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
        (
            "127.0.0.1",
            "XCLIENT",
            "ADDR=IPV6:1.2.3.4",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
        (
            "::1",
            "XCLIENT",
            "ADDR=300.1.1.1",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
        (
            "192.0.2.5",
            "XCLIENT",
            "",
            deny(501, "5.5.4", "No valid IP address found"),
        ),
    ];
    for (ip, verb, rest, expect) in table {
        let mut c = conn(ip);
        let out = xclient(p.as_ref(), &mut c, verb, rest);
        assert_eq!(out, expect, "{ip} {verb} {rest}");
        assert!(c.take_requests().is_empty(), "{verb} {rest}");
        assert_eq!(c.remote.ip, ip.parse::<IpAddr>().unwrap());
    }
}

#[test]
fn refused_inside_a_transaction() {
    let r = root(None);
    let p = plugin(r.path());
    let mut c = conn("127.0.0.1");
    c.transaction = Some(Transaction::new("UUID-1.1".into()));
    let out = xclient(p.as_ref(), &mut c, "XCLIENT", "ADDR=1.2.3.4");
    assert_eq!(out, deny(503, "5.5.0", "Mail transaction in progress"));
    let msg = out.msg.unwrap();
    assert_eq!(msg.code, Some(503));
    assert_eq!(msg.lines, ["5.5.0 Mail transaction in progress"]);
    assert!(c.transaction.is_some());
}

#[test]
fn success_replaces_the_client_and_restarts() {
    let r = root(None);
    let p = plugin(r.path());
    let mut c = conn("127.0.0.1");
    c.set_relaying(true);
    c.hello = Some(Hello {
        verb: HelloVerb::Ehlo,
        host: "proxy.local".into(),
    });
    let out = xclient(
        p.as_ref(),
        &mut c,
        "XCLIENT",
        "NAME=Mail.Example.ORG ADDR=192.0.2.44 PORT=5555 PROTO=ESMTP HELO=Client.Example.ORG LOGIN=Alice REVERSE_NAME=x.example DESTADDR=198.51.100.1 DESTPORT=587",
    );
    assert_eq!(out, Outcome::accept());
    assert_eq!(out.action, Action::Accept);
    assert_eq!(c.remote.ip, "192.0.2.44".parse::<IpAddr>().unwrap());
    assert_eq!(c.remote.port, 5555);
    assert_eq!(c.remote.host.as_deref(), Some("mail.example.org"));
    assert_eq!(
        c.hello,
        Some(Hello {
            verb: HelloVerb::Ehlo,
            host: "client.example.org".into()
        })
    );
    assert!(c.esmtp);
    assert_eq!(c.xclient_proto.as_deref(), Some("esmtp"));
    assert_eq!(c.xclient_login.as_deref(), Some("Alice"));
    assert_eq!(c.local.ip, "198.51.100.1".parse::<IpAddr>().unwrap());
    assert_eq!(c.local.port, 587);
    assert!(!c.relaying());
    let requests = c.take_requests();
    assert_eq!(requests.len(), 1);
    assert!(matches!(requests[0], ConnAction::Restart));
}

#[test]
fn minimal_success_unsets_helo_and_name() {
    let r = root(None);
    let p = plugin(r.path());
    let mut c = conn("::1");
    c.remote.host = Some("localhost".into());
    c.esmtp = true;
    c.hello = Some(Hello {
        verb: HelloVerb::Ehlo,
        host: "proxy.local".into(),
    });
    let out = xclient(p.as_ref(), &mut c, "XCLIENT", "addr=IPv6:2001:DB8::7");
    assert_eq!(out, Outcome::accept());
    assert_eq!(c.remote.ip, "2001:db8::7".parse::<IpAddr>().unwrap());
    assert_eq!(c.remote.port, 40000);
    assert_eq!(c.remote.host, None);
    assert_eq!(c.hello, None);
    assert!(!c.esmtp);
    assert_eq!(c.xclient_proto, None);
    assert_eq!(c.xclient_login, None);
}

#[test]
fn attribute_values() {
    let r = root(None);
    let p = plugin(r.path());
    /// arguments, expected remote.host, expected hello host, expected proto
    type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let table: [Row<'_>; 8] = [
        ("ADDR=1.2.3.4 NAME=[UNAVAILABLE]", None, None, None),
        (
            "ADDR=1.2.3.4 NAME=[TEMPUNAVAIL] HELO=[unavailable]",
            None,
            None,
            None,
        ),
        // xtext
        (
            "ADDR=1.2.3.4 NAME=mail+2Eexample.org",
            Some("mail.example.org"),
            None,
            None,
        ),
        // a decoded CR LF must never reach a header
        (
            "ADDR=1.2.3.4 NAME=evil+0D+0ABcc:x HELO=ok",
            None,
            Some("ok"),
            None,
        ),
        ("ADDR=1.2.3.4 HELO=a+20b", None, None, None),
        ("ADDR=1.2.3.4 NAME=bad+zz", None, None, None),
        ("ADDR=1.2.3.4 PROTO=LMTP", None, None, None),
        (
            "ADDR=1.2.3.4  PROTO=SMTP   HELO=h.example ",
            None,
            Some("h.example"),
            Some("smtp"),
        ),
    ];
    for (rest, host, helo, proto) in table {
        let mut c = conn("127.0.0.1");
        let out = xclient(p.as_ref(), &mut c, "XCLIENT", rest);
        assert_eq!(out, Outcome::accept(), "{rest}");
        assert_eq!(c.remote.ip, "1.2.3.4".parse::<IpAddr>().unwrap(), "{rest}");
        assert_eq!(c.remote.host.as_deref(), host, "{rest}");
        assert_eq!(c.hello_host(), helo, "{rest}");
        assert_eq!(c.xclient_proto.as_deref(), proto, "{rest}");
    }
}

#[test]
fn proto_smtp_sets_helo_verb() {
    let r = root(None);
    let p = plugin(r.path());
    let mut c = conn("127.0.0.1");
    c.esmtp = true;
    let out = xclient(
        p.as_ref(),
        &mut c,
        "XCLIENT",
        "ADDR=1.2.3.4 PROTO=SMTP HELO=h",
    );
    assert_eq!(out, Outcome::accept());
    assert_eq!(c.hello.as_ref().map(|h| h.verb), Some(HelloVerb::Helo));
    assert!(!c.esmtp);
}

#[test]
fn second_xclient_needs_a_trusted_new_address() {
    let r = root(Some("192.0.2.10\n"));
    let p = plugin(r.path());
    let mut c = conn("127.0.0.1");
    assert_eq!(
        xclient(p.as_ref(), &mut c, "XCLIENT", "ADDR=203.0.113.9"),
        Outcome::accept()
    );
    c.take_requests();
    assert_eq!(
        xclient(p.as_ref(), &mut c, "XCLIENT", "ADDR=127.0.0.1"),
        deny(550, "5.5.0", "Not authorized")
    );
    let mut c = conn("127.0.0.1");
    assert_eq!(
        xclient(p.as_ref(), &mut c, "XCLIENT", "ADDR=192.0.2.10"),
        Outcome::accept()
    );
    assert_eq!(
        xclient(p.as_ref(), &mut c, "XCLIENT", "ADDR=203.0.113.9"),
        Outcome::accept()
    );
}

#[test]
fn other_hooks_continue() {
    let r = root(None);
    let p = plugin(r.path());
    let mut c = conn("127.0.0.1");
    assert_eq!(
        now(p.hook(Hook::Helo, &mut c, &HookArgs::Hello("x".into()))),
        Outcome::cont()
    );
}
