//! The plugin's hooks and replies.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use haraka_plugin_api::{Hook, HookArgs, Outcome};
use haraka_plugin_limit::*;

#[test]
fn concurrency_per_address() {
    let (_r, p) = plugin_for("[concurrency]\nenabled=true\nmax=2\n");
    let p = p.as_ref();
    let mut a = conn("192.0.2.7");
    let mut b = conn("192.0.2.7");
    let mut other = conn("192.0.2.8");
    assert_eq!(connect(p, &mut a), Outcome::cont());
    assert_eq!(connect(p, &mut b), Outcome::cont());
    assert_eq!(connect(p, &mut other), Outcome::cont());
    let mut c = conn("::ffff:192.0.2.7");
    assert_eq!(
        connect(p, &mut c),
        Outcome::deny_soft_disconnect(TOO_MANY_CONCURRENT)
    );
    assert!(c.results.has("limit", "fail", "concurrency.max"));
    assert!(c.results.has("limit", "concurrent", "3/2"));
    // the refused connection and one other close: there is room again
    run(p, Hook::Disconnect, &mut c, &HookArgs::None);
    run(p, Hook::Disconnect, &mut a, &HookArgs::None);
    let mut d = conn("192.0.2.7");
    assert_eq!(connect(p, &mut d), Outcome::cont());
}

#[test]
fn recipients_per_connection() {
    let (_r, p) = plugin_for("[recipients]\nenabled=true\nmax=2\nmax_relaying=3\n");
    let p = p.as_ref();
    let mut c = conn("192.0.2.7");
    mail(&mut c, Some("a@example.com"));
    assert_eq!(rcpt(p, &mut c, "x@example.net"), Outcome::cont());
    c.rcpt_count.accept = 1;
    assert_eq!(rcpt(p, &mut c, "x@example.net"), Outcome::cont());
    // rejected recipients count too, and a new transaction does not reset them
    c.rcpt_count.reject = 1;
    mail(&mut c, Some("a@example.com"));
    assert_eq!(
        rcpt(p, &mut c, "y@example.net"),
        Outcome::deny_soft(TOO_MANY_RECIPIENTS)
    );
    c.set_connection_relaying(true);
    assert_eq!(rcpt(p, &mut c, "y@example.net"), Outcome::cont());
    c.rcpt_count.tempfail = 1;
    assert_eq!(
        rcpt(p, &mut c, "y@example.net"),
        Outcome::deny_soft(TOO_MANY_RECIPIENTS)
    );
}

#[test]
fn unrecognized_commands() {
    let (_r, p) = plugin_for("[unrecognized_commands]\nenabled=true\nmax=2\n");
    let p = p.as_ref();
    let mut c = conn("192.0.2.7");
    let cmd = |c: &mut _| {
        let args = HookArgs::Unrecognized {
            verb: "FOO".into(),
            rest: String::new(),
        };
        run(p, Hook::UnrecognizedCommand, c, &args)
    };
    assert_eq!(cmd(&mut c), Outcome::cont());
    assert_eq!(cmd(&mut c), Outcome::cont());
    assert_eq!(
        cmd(&mut c),
        Outcome::deny_soft_disconnect(TOO_MANY_UNRECOGNIZED)
    );
}

#[test]
fn errors_at_every_hook() {
    let (_r, p) = plugin_for("[errors]\nenabled=true\nmax=1\n");
    let p = p.as_ref();
    let mut c = conn("192.0.2.7");
    let helo = HookArgs::Hello("client.test".into());
    assert_eq!(run(p, Hook::Ehlo, &mut c, &helo), Outcome::cont());
    c.errors = 1;
    assert_eq!(run(p, Hook::Helo, &mut c, &helo), Outcome::cont());
    c.errors = 2;
    let denied = Outcome::deny_soft_disconnect(TOO_MANY_ERRORS);
    assert_eq!(run(p, Hook::Ehlo, &mut c, &helo), denied);
    let from = HookArgs::Mail {
        from: None,
        params: vec![],
    };
    assert_eq!(run(p, Hook::Mail, &mut c, &from), denied);
    mail(&mut c, None);
    assert_eq!(rcpt(p, &mut c, "x@example.net"), denied);
    assert_eq!(run(p, Hook::Data, &mut c, &HookArgs::None), denied);
}

#[test]
fn connection_rate() {
    let (_r, p) = plugin_for("[rate_conn]\nenabled=true\ndefault=2/1m\n198.51.100=0\n");
    let p = p.as_ref();
    for _ in 0..2 {
        assert_eq!(connect(p, &mut conn("192.0.2.7")), Outcome::cont());
    }
    let mut c = conn("192.0.2.7");
    assert_eq!(connect(p, &mut c), Outcome::deny_soft_disconnect(RATE_CONN));
    assert!(c.results.has("limit", "rate_conn", "3:2/1m"));
    // another address has its own count; a listed 0 is unlimited
    assert_eq!(connect(p, &mut conn("192.0.2.8")), Outcome::cont());
    for _ in 0..5 {
        assert_eq!(connect(p, &mut conn("198.51.100.1")), Outcome::cont());
    }
    // the shipped `127=0` stays unless the user overrides it
    for _ in 0..5 {
        assert_eq!(connect(p, &mut conn("127.0.0.1")), Outcome::cont());
    }
}

#[test]
fn recipient_rate_of_a_host_is_enforced_at_connect() {
    let (_r, p) = plugin_for("[rate_rcpt_host]\nenabled=true\ndefault=2/1m\n");
    let p = p.as_ref();
    let mut c = conn("192.0.2.7");
    assert_eq!(connect(p, &mut c), Outcome::cont());
    mail(&mut c, Some("a@example.com"));
    for _ in 0..3 {
        assert_eq!(rcpt(p, &mut c, "x@example.net"), Outcome::cont());
    }
    let mut next = conn("192.0.2.7");
    assert_eq!(connect(p, &mut next), Outcome::deny_soft(RATE_RCPT_HOST));
    assert_eq!(connect(p, &mut conn("192.0.2.9")), Outcome::cont());
}

#[test]
fn recipient_rate_by_sender_and_by_recipient() {
    let (_r, p) = plugin_for(
        "[rate_rcpt_sender]\nenabled=true\ndefault=2/1m\nvip.example=0\n\
         [rate_rcpt]\nenabled=true\ndefault=0\nexample.net=3/1h\n",
    );
    let p = p.as_ref();
    let mut c = conn("192.0.2.7");
    mail(&mut c, Some("a@example.com"));
    assert_eq!(rcpt(p, &mut c, "x@other.test"), Outcome::cont());
    assert_eq!(rcpt(p, &mut c, "y@other.test"), Outcome::cont());
    assert_eq!(
        rcpt(p, &mut c, "z@other.test"),
        Outcome::deny_soft(RATE_RCPT_SENDER)
    );
    // the count follows the sender across connections
    let mut c2 = conn("192.0.2.99");
    mail(&mut c2, Some("a@example.com"));
    assert_eq!(
        rcpt(p, &mut c2, "x@other.test"),
        Outcome::deny_soft(RATE_RCPT_SENDER)
    );
    // an exempt sender, and the null sender, are not counted
    let mut v = conn("192.0.2.7");
    mail(&mut v, Some("boss@vip.example"));
    for _ in 0..3 {
        assert_eq!(rcpt(p, &mut v, "x@other.test"), Outcome::cont());
    }
    // [rate_rcpt]: the recipient's domain shares one count
    for to in ["a@example.net", "b@example.net", "c@EXAMPLE.net"] {
        assert_eq!(rcpt(p, &mut v, to), Outcome::cont());
    }
    assert_eq!(
        rcpt(p, &mut v, "d@example.net"),
        Outcome::deny_soft(RATE_RCPT)
    );
    let mut n = conn("192.0.2.7");
    mail(&mut n, None);
    for _ in 0..3 {
        assert_eq!(rcpt(p, &mut n, "x@other.test"), Outcome::cont());
    }
}

#[tokio::test]
async fn tarpit_delays_only_a_penalty() {
    let (_r, p) = plugin_for("tarpit_delay=0.2\n[unrecognized_commands]\nenabled=true\nmax=1\n");
    let mut c = conn("192.0.2.7");
    let args = HookArgs::Unrecognized {
        verb: "FOO".into(),
        rest: String::new(),
    };
    let t = Instant::now();
    let first = p.hook(Hook::UnrecognizedCommand, &mut c, &args).await;
    assert_eq!(first, Outcome::cont());
    assert!(t.elapsed() < Duration::from_millis(150));
    let second = p.hook(Hook::UnrecognizedCommand, &mut c, &args).await;
    assert_eq!(second, Outcome::deny_soft_disconnect(TOO_MANY_UNRECOGNIZED));
    assert!(t.elapsed() >= Duration::from_millis(200));
}
