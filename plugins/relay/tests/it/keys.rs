//! The relay plugin's keys and hooks.

use crate::common::*;
use haraka_plugin_api::{Hook, HookArgs, MxHost, Outcome};
use haraka_plugin_relay::config::{parse_acl_entry, parse_nexthop};
use haraka_plugin_relay::{NOT_ACCEPTED, NOT_ALLOWED};

const EXAMPLE_RELAY_INI: &str =
    "[relay]\nforce_routing=true\nacl=true\ndest_domains=false\nall=false\n";

#[test]
fn registered_hooks_follow_relay_ini() {
    let table: [(&str, &[Hook]); 7] = [
        ("", &[Hook::ConnectInit, Hook::Connect, Hook::GetMx]),
        (
            EXAMPLE_RELAY_INI,
            &[Hook::ConnectInit, Hook::Connect, Hook::GetMx],
        ),
        ("[relay]\nacl=false\nforce_routing=false\n", &[]),
        (
            "[relay]\ndest_domains=true\n",
            &[Hook::ConnectInit, Hook::Connect, Hook::GetMx, Hook::Rcpt],
        ),
        ("[relay]\nacl=no\nall=yes\nforce_routing=0\n", &[Hook::Rcpt]),
        // the alias
        (
            "[relay]\nforce_route=false\n",
            &[Hook::ConnectInit, Hook::Connect],
        ),
        // keys outside [relay] are ignored, as in Haraka
        (
            "acl=false\nforce_routing=false\n[other]\nall=true\n",
            &[Hook::ConnectInit, Hook::Connect, Hook::GetMx],
        ),
    ];
    for (ini, expect) in table {
        let r = root(&[("relay.ini", ini)]);
        let p = plugin(r.path());
        assert_eq!(p.name(), "relay");
        assert_eq!(hooks(p.as_ref()), expect, "{ini:?}");
    }
}

#[test]
fn force_routing_wins_over_its_alias() {
    let r = root(&[(
        "relay.ini",
        "[relay]\nforce_routing=true\nforce_route=false\n",
    )]);
    let p = plugin(r.path());
    assert!(hooks(p.as_ref()).contains(&Hook::GetMx));
}

#[test]
fn acl_table() {
    let acl = "# who may relay\n10.0.0.2/32\n192.0.2.0/24\n2001:db8::/32\n198.51.100.7\n\
               2a00:1450::1\n203.0.113.5/32 # office\n::ffff:100.64.0.0/112\n\
               300.1.1.1\nnot-an-ip\n10.9.0.0/33\n";
    let r = root(&[("relay_acl_allow", acl)]);
    let p = plugin(r.path());
    let table = [
        ("10.0.0.2", true),
        ("10.0.0.3", false),
        ("::ffff:10.0.0.2", true),
        ("::10.0.0.2", false),
        ("192.0.2.200", true),
        ("192.0.3.1", false),
        ("2001:db8::1", true),
        ("2001:db9::1", false),
        ("198.51.100.7", true),
        ("198.51.100.8", false),
        // a bare IPv6 address is one host, not a /32
        ("2a00:1450::1", true),
        ("2a00:1450::2", false),
        ("203.0.113.5", true),
        ("100.64.1.1", true),
        ("100.65.0.1", false),
        ("127.0.0.1", false),
        ("::1", false),
        ("0.0.0.0", false),
    ];
    for (ip, allowed) in table {
        let (c, out) = connected(p.as_ref(), ip);
        assert_eq!(c.relaying(), allowed, "{ip}");
        let want = if allowed {
            Outcome::accept()
        } else {
            Outcome::cont()
        };
        assert_eq!(out, want, "{ip}");
        let kind = if allowed { "pass" } else { "skip" };
        let value = if allowed { "acl" } else { "acl(unlisted)" };
        assert!(c.results.has("relay", kind, value), "{ip}");
    }
}

#[test]
fn acl_entries() {
    let table = [
        ("10.0.0.2", Some("10.0.0.2/32")),
        ("10.0.0.2/32", Some("10.0.0.2/32")),
        ("10.0.0.0/8", Some("10.0.0.0/8")),
        ("2001:db8::1", Some("2001:db8::1/128")),
        ("::ffff:10.0.0.0/104", Some("10.0.0.0/8")),
        ("::ffff:10.0.0.1", Some("10.0.0.1/32")),
        (" 10.0.0.2/32 # comment", Some("10.0.0.2/32")),
        ("10.0.0.2/", None),
        ("10.0.0.2/33", None),
        ("10.0.0", None),
        ("host.example", None),
        ("", None),
    ];
    for (entry, expect) in table {
        let got = parse_acl_entry(entry).map(|n| n.to_string());
        assert_eq!(got.as_deref(), expect, "{entry:?}");
    }
}

#[test]
fn no_acl_file_means_nobody_relays() {
    let r = root(&[("relay.ini", EXAMPLE_RELAY_INI)]);
    let p = plugin(r.path());
    for ip in ["127.0.0.1", "10.0.0.2", "::1"] {
        let (c, out) = connected(p.as_ref(), ip);
        assert!(!c.relaying(), "{ip}");
        assert_eq!(out, Outcome::cont());
    }
}

#[test]
fn acl_is_reloaded() {
    let r = root(&[("relay_acl_allow", "10.0.0.2/32\n")]);
    let cfg = haraka_config::ConfigDir::open(r.path()).unwrap();
    let p = haraka_plugin_relay::Relay::new("relay", &cfg)
        .unwrap()
        .with_reload_interval(std::time::Duration::ZERO);
    let p = haraka_plugin_api::plugin("relay", p);
    let p: &dyn haraka_plugin_api::Plugin = p.as_ref();
    assert!(!connected(p, "10.0.0.3").0.relaying());
    std::fs::write(r.path().join("config/relay_acl_allow"), "10.0.0.2/31\n").unwrap();
    assert!(connected(p, "10.0.0.3").0.relaying());
    // acl switched off at run time: the hook stays registered but does nothing
    std::fs::write(r.path().join("config/relay.ini"), "[relay]\nacl=false\n").unwrap();
    assert!(!connected(p, "10.0.0.3").0.relaying());
    assert!(hooks(p).contains(&Hook::ConnectInit));
}

#[test]
fn connect_passes_relaying_clients() {
    let r = root(&[("relay_acl_allow", "10.0.0.2\n")]);
    let p = plugin(r.path());
    let (mut c, _) = connected(p.as_ref(), "10.0.0.2");
    assert_eq!(
        now(p.hook(Hook::Connect, &mut c, &HookArgs::None)),
        Outcome::accept()
    );
    let (mut c, _) = connected(p.as_ref(), "10.0.0.9");
    assert_eq!(
        now(p.hook(Hook::Connect, &mut c, &HookArgs::None)),
        Outcome::cont()
    );
}

const DEST: &str = "[domains]\n\
    example.com = { \"action\": \"accept\" }\n\
    Upper.Example = { \"action\": \"accept\", \"nexthop\": \"192.0.2.5:2525\" }\n\
    cont.example = { \"action\": \"continue\" }\n\
    deny.example = { \"action\": \"deny\" }\n\
    odd.example = { \"action\": \"maybe\" }\n\
    broken.example = { action: accept\n\
    routed.example = { \"nexthop\": \"[2001:db8::25]:587\" }\n\
    plain.example = { \"nexthop\": \"smarthost.test\" }\n\
    nohop.example = { \"action\": \"accept\" }\n\
    any = { \"nexthop\": \"127.0.0.1:2600\" }\n";

#[test]
fn dest_domains_actions() {
    let r = root(&[
        ("relay.ini", "[relay]\ndest_domains=true\n"),
        ("relay_dest_domains.ini", DEST),
    ]);
    let p = plugin(r.path());
    // (recipient, outcome, relaying afterwards)
    let table = [
        ("a@example.com", Outcome::accept(), true),
        ("a@EXAMPLE.COM", Outcome::accept(), true),
        ("a@upper.example", Outcome::accept(), true),
        ("a@cont.example", Outcome::cont(), true),
        ("a@deny.example", Outcome::deny(NOT_ALLOWED), false),
        ("a@odd.example", Outcome::deny(NOT_ACCEPTED), false),
        ("a@broken.example", Outcome::deny(NOT_ACCEPTED), false),
        ("a@routed.example", Outcome::deny(NOT_ACCEPTED), false),
        ("a@unlisted.example", Outcome::deny(NOT_ALLOWED), false),
        ("a@sub.example.com", Outcome::deny(NOT_ALLOWED), false),
        ("postmaster", Outcome::deny(NOT_ALLOWED), false),
    ];
    for (to, want, relaying) in table {
        let (mut c, _) = connected(p.as_ref(), "192.0.2.99");
        let out = rcpt(p.as_ref(), &mut c, addr(to));
        assert_eq!(out, want, "{to}");
        assert_eq!(c.relaying(), relaying, "{to}");
        // relaying granted by a recipient lasts for the transaction only
        c.transaction = None;
        assert!(!c.relaying(), "{to}");
    }
}

#[test]
fn dest_domains_skips_relaying_clients_and_missing_sections() {
    let r = root(&[
        ("relay.ini", "[relay]\ndest_domains=true\n"),
        ("relay_dest_domains.ini", DEST),
        ("relay_acl_allow", "10.0.0.2\n"),
    ]);
    let p = plugin(r.path());
    let (mut c, _) = connected(p.as_ref(), "10.0.0.2");
    assert_eq!(
        rcpt(p.as_ref(), &mut c, addr("a@unlisted.example")),
        Outcome::cont()
    );
    assert!(core_accepts(&c, &Outcome::cont()));

    let r = root(&[("relay.ini", "[relay]\ndest_domains=true\n")]);
    let p = plugin(r.path());
    let (mut c, _) = connected(p.as_ref(), "192.0.2.99");
    assert_eq!(
        rcpt(p.as_ref(), &mut c, addr("a@unlisted.example")),
        Outcome::cont()
    );
    assert!(!c.relaying());
}

#[test]
fn all_accepts_everything() {
    let r = root(&[("relay.ini", "[relay]\nall=true\n")]);
    let p = plugin(r.path());
    let (mut c, _) = connected(p.as_ref(), "192.0.2.99");
    assert_eq!(
        rcpt(p.as_ref(), &mut c, addr("x@anywhere.test")),
        Outcome::accept()
    );
    assert!(c.relaying());
}

#[test]
fn force_routing_answers_get_mx() {
    let r = root(&[("relay_dest_domains.ini", DEST)]);
    let p = plugin(r.path());
    let mx = |exchange: &str, port: u16| MxHost {
        exchange: exchange.into(),
        priority: 0,
        port,
        ip: exchange.parse().ok(),
    };
    let table = [
        (
            "upper.example",
            Some(("192.0.2.5:2525", mx("192.0.2.5", 2525))),
        ),
        (
            "UPPER.example",
            Some(("192.0.2.5:2525", mx("192.0.2.5", 2525))),
        ),
        (
            "routed.example",
            Some(("[2001:db8::25]:587", mx("2001:db8::25", 587))),
        ),
        (
            "plain.example",
            Some(("smarthost.test", mx("smarthost.test", 25))),
        ),
        (
            "elsewhere.test",
            Some(("127.0.0.1:2600", mx("127.0.0.1", 2600))),
        ),
        // a route without nexthop does not fall back to `any`
        ("nohop.example", None),
        ("broken.example", None),
    ];
    for (domain, expect) in table {
        let (out, mail) = get_mx(p.as_ref(), domain);
        match expect {
            Some((text, host)) => {
                assert_eq!(out, Outcome::accept_with(text), "{domain}");
                assert_eq!(mail.mx, Some(vec![host]), "{domain}");
            }
            None => {
                assert_eq!(out, Outcome::cont(), "{domain}");
                assert_eq!(mail.mx, None, "{domain}");
            }
        }
    }
}

#[test]
fn force_routing_without_routes_uses_mx() {
    for files in [
        vec![],
        vec![("relay_dest_domains.ini", "[other]\nx=1\n")],
        vec![
            ("relay.ini", "[relay]\nforce_routing=false\n"),
            ("relay_dest_domains.ini", DEST),
        ],
    ] {
        let r = root(&files);
        let p = plugin(r.path());
        let (out, mail) = get_mx(p.as_ref(), "elsewhere.test");
        assert_eq!(out, Outcome::cont(), "{files:?}");
        assert_eq!(mail.mx, None);
    }
}

#[test]
fn nexthop_forms() {
    let table = [
        ("host.test", Some(("host.test", 25))),
        ("host.test:2525", Some(("host.test", 2525))),
        ("192.0.2.1:26", Some(("192.0.2.1", 26))),
        ("[2001:db8::1]:2525", Some(("2001:db8::1", 2525))),
        ("[2001:db8::1]", Some(("2001:db8::1", 25))),
        ("2001:db8::1", Some(("2001:db8::1", 25))),
        (" host.test ", Some(("host.test", 25))),
        ("host.test:", None),
        ("host.test:port", None),
        ("host.test:70000", None),
        ("host.test:0", None),
        (":25", None),
        ("", None),
        ("[2001:db8::1]x", None),
        ("bad host:25", None),
    ];
    for (text, expect) in table {
        let got = parse_nexthop(text).map(|m| (m.exchange, m.port));
        let want = expect.map(|(h, p)| (h.to_owned(), p));
        assert_eq!(got, want, "{text:?}");
    }
}
