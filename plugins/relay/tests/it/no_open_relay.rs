//! No address trick makes the relay plugin an open relay.
//!
//! For a client outside the ACL, a recipient may only be accepted when its domain
//! (after the last `@`, compared whole) is a listed destination; the way the local
//! part is written (percent hack, bang path, source route, quoted `@`) never matters.

use crate::common::*;
use haraka_plugin_api::{Address, Plugin};

const EXAMPLE_RELAY_INI: &str =
    "[relay]\nforce_routing=true\nacl=true\ndest_domains=false\nall=false\n";
const DEST_RELAY_INI: &str = "[relay]\nacl=true\ndest_domains=true\n";
const DEST: &str = "[domains]\nlocal = { \"action\": \"accept\", \"nexthop\": \"10.0.0.2:25\" }\n";

/// Recipient paths as a client may write them, and whether they are for `local`.
const TRICKS: &[(&str, bool)] = &[
    ("a@local", true),
    ("a@LOCAL", true),
    ("A@Local", true),
    ("a%evil.test@local", true),
    ("a%evil.test%local@local", true),
    ("evil.test!a@local", true),
    ("@evil.test:a@local", true),
    ("@evil.test,@other.test:a@local", true),
    ("\"a@evil.test\"@local", true),
    ("\"a@evil.test\\\"\"@local", true),
    ("a@evil.test", false),
    ("a@local@evil.test", false),
    ("a@evil.test%local", false),
    ("a@evil.test!local", false),
    ("a@local.", false),
    ("a@local..", false),
    ("a@local.evil.test", false),
    ("a@sub.local", false),
    ("a@xlocal", false),
    ("a@local ", false),
    ("a@[10.0.0.2]", false),
    ("a@[127.0.0.1]", false),
    ("postmaster", false),
    ("local", false),
    ("a@", false),
];

/// Run connect_init and rcpt; whether the core would accept the recipient.
fn accepted(p: &dyn Plugin, client: &str, to: Address) -> bool {
    let (mut c, _) = connected(p, client);
    let out = rcpt(p, &mut c, to);
    core_accepts(&c, &out)
}

/// The parser's view of `path`, when it accepts it.
fn parsed(path: &str) -> Option<Address> {
    Address::parse(path).ok()
}

#[test]
fn example_config_outsiders_relay_nothing() {
    let r = root(&[
        ("relay.ini", EXAMPLE_RELAY_INI),
        ("relay_acl_allow", "10.0.0.2/32\n"),
    ]);
    let p = plugin(r.path());
    for client in [
        "10.0.0.3",
        "192.0.2.1",
        "::10.0.0.2",
        "::ffff:10.0.0.3",
        "127.0.0.1",
        "::1",
    ] {
        for (path, _) in TRICKS {
            assert!(!accepted(p.as_ref(), client, addr(path)), "{client} {path}");
            if let Some(a) = parsed(path) {
                assert!(!accepted(p.as_ref(), client, a), "{client} parsed {path}");
            }
        }
    }
}

#[test]
fn example_config_acl_clients_relay_everything() {
    let r = root(&[
        ("relay.ini", EXAMPLE_RELAY_INI),
        ("relay_acl_allow", "10.0.0.2/32\n"),
    ]);
    let p = plugin(r.path());
    for client in ["10.0.0.2", "::ffff:10.0.0.2", "::ffff:a00:2"] {
        for (path, _) in TRICKS {
            assert!(accepted(p.as_ref(), client, addr(path)), "{client} {path}");
        }
    }
}

#[test]
fn dest_domains_outsiders_reach_only_the_listed_domain() {
    let r = root(&[
        ("relay.ini", DEST_RELAY_INI),
        ("relay_acl_allow", "10.0.0.2/32\n"),
        ("relay_dest_domains.ini", DEST),
    ]);
    let p = plugin(r.path());
    for client in ["192.0.2.1", "10.0.0.3", "::10.0.0.2", "2001:db8::10:0:0:2"] {
        for (path, for_local) in TRICKS {
            let got = accepted(p.as_ref(), client, addr(path));
            assert_eq!(got, *for_local, "{client} {path}");
            // Whatever the parser makes of the path, only `local` is ever accepted.
            if let Some(a) = parsed(path) {
                let host = a.host.clone();
                if accepted(p.as_ref(), client, a) {
                    assert_eq!(host.as_deref(), Some("local"), "{client} parsed {path}");
                }
            }
        }
    }
}

#[test]
fn relaying_granted_by_one_recipient_ends_with_the_transaction() {
    let r = root(&[
        ("relay.ini", DEST_RELAY_INI),
        ("relay_dest_domains.ini", DEST),
    ]);
    let p = plugin(r.path());
    let (mut c, _) = connected(p.as_ref(), "192.0.2.1");
    let out = rcpt(p.as_ref(), &mut c, addr("a@local"));
    assert!(core_accepts(&c, &out));
    // the next transaction starts without relaying
    let out = rcpt(p.as_ref(), &mut c, addr("a@evil.test"));
    assert!(!core_accepts(&c, &out));
}
