//! The `limit` plugin on a real socket: haraka-plugin-limit's replies once a
//! client is over its limits.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::time::{Duration, Instant};

use common::{Server, Smtp, copy_dir, free_port, run, workspace};

/// The quickstart root with `limit` listed first and `limit_ini`.
fn root_with_limit(port: u16, plugin_name: &str, limit_ini: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("config-examples/quickstart"), dir.path());
    let config = dir.path().join("config");
    std::fs::write(
        config.join("smtp.ini"),
        format!("listen=127.0.0.1:{port}\n"),
    )
    .unwrap();
    let plugins = std::fs::read_to_string(config.join("plugins")).unwrap();
    std::fs::write(config.join("plugins"), format!("{plugin_name}\n{plugins}")).unwrap();
    std::fs::write(config.join("limit.ini"), limit_ini).unwrap();
    dir
}

fn greeted(port: u16) -> Smtp {
    let mut c = Smtp::connect(port);
    let greeting = c.reply().pop().unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    c
}

/// Greeted once the server has handled the disconnects of earlier clients.
fn greeted_when_free(port: u16) -> Smtp {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = Smtp::connect(port);
        let r = c.reply();
        if r.first().is_some_and(|l| l.starts_with("220 ")) {
            return c;
        }
        assert_eq!(r, ["421 Too many concurrent connections"]);
        assert!(Instant::now() < deadline, "no slot was freed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn recipients_over_the_limit_are_refused() {
    let port = free_port();
    let dir = root_with_limit(
        port,
        "limit",
        "tarpit_delay=0\n[recipients]\nenabled=true\nmax=2\n",
    );
    let server = Server::start(dir.path(), port);
    let mut c = greeted(port);
    c.cmd("EHLO client.example");
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "250 sender <a@b.example> OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<one@quickstart.test>"),
        "250 recipient <one@quickstart.test> OK"
    );
    // a refused recipient counts as an attempt too
    assert_eq!(
        c.cmd("RCPT TO:<x@elsewhere.test>"),
        "550 I cannot deliver mail for <x@elsewhere.test>"
    );
    assert_eq!(
        c.cmd("RCPT TO:<two@quickstart.test>"),
        "450 Too many recipient attempts"
    );
    // the limit is per connection: a new transaction does not reset it
    assert_eq!(c.cmd("RSET"), "250 OK");
    c.cmd("MAIL FROM:<a@b.example>");
    assert_eq!(
        c.cmd("RCPT TO:<two@quickstart.test>"),
        "450 Too many recipient attempts"
    );
    drop(c);
    // a new connection starts from zero
    let mut c = greeted(port);
    c.cmd("EHLO client.example");
    c.cmd("MAIL FROM:<a@b.example>");
    assert_eq!(
        c.cmd("RCPT TO:<two@quickstart.test>"),
        "250 recipient <two@quickstart.test> OK"
    );
    drop(c);
    server.stop();
}

#[test]
fn connections_at_once_from_one_address_over_the_limit_are_refused() {
    let port = free_port();
    let dir = root_with_limit(
        port,
        "limit",
        "tarpit_delay=0\n[concurrency]\nenabled=true\nmax=2\n",
    );
    let server = Server::start(dir.path(), port);
    // Server::start's probe may still count until its disconnect is handled
    let a = greeted_when_free(port);
    let mut b = greeted_when_free(port);
    let mut third = Smtp::connect(port);
    assert_eq!(third.reply(), ["421 Too many concurrent connections"]);
    assert_eq!(third.reply(), Vec::<String>::new(), "closed");
    drop(a);
    assert_eq!(b.cmd("NOOP"), "250 OK");
    // a slot is free once the server handled the first client's disconnect
    let mut fourth = greeted_when_free(port);
    assert_eq!(fourth.cmd("QUIT").get(..3), Some("221"));
    drop(b);
    server.stop();
}

#[test]
fn connections_from_one_address_over_the_rate_are_refused() {
    let port = free_port();
    // the shipped `127=0` exemption is overridden for the test
    let dir = root_with_limit(
        port,
        "limit",
        "tarpit_delay=0\n[rate_conn]\nenabled=true\n127=3/1m\n",
    );
    let server = Server::start(dir.path(), port);
    // Server::start's probe is a connection too, unless the server saw it gone
    // before it counted it: the fourth or the fifth connection is refused.
    let mut greetings = 0;
    let refused = loop {
        let mut c = Smtp::connect(port);
        let r = c.reply();
        if r.first().is_some_and(|l| l.starts_with("220 ")) {
            greetings += 1;
            assert_eq!(c.cmd("QUIT").get(..3), Some("221"));
            assert!(greetings <= 3, "never refused");
            continue;
        }
        assert_eq!(c.reply(), Vec::<String>::new(), "closed");
        break r;
    };
    assert_eq!(refused, ["421 connection rate limit exceeded"]);
    assert!(greetings >= 2, "{greetings}");
    // refused connections count: the next one is refused as well
    let mut next = Smtp::connect(port);
    assert_eq!(next.reply(), ["421 connection rate limit exceeded"]);
    server.stop();
}

#[test]
fn unrecognized_commands_under_the_deprecated_name() {
    let port = free_port();
    let dir = root_with_limit(
        port,
        "max_unrecognized_commands",
        "tarpit_delay=0\n[unrecognized_commands]\nenabled=true\nmax=2\n",
    );
    let check = run(&["-c", dir.path().to_str().unwrap(), "--check"]);
    assert!(check.status.success(), "{check:?}");
    let server = Server::start(dir.path(), port);
    let mut c = greeted(port);
    assert_eq!(c.cmd("FOO"), "500 Unrecognized command");
    assert_eq!(c.cmd("BAR"), "500 Unrecognized command");
    assert_eq!(c.cmd("BAZ"), "421 Too many unrecognized commands");
    assert_eq!(c.reply(), Vec::<String>::new(), "closed");
    drop(c);
    server.stop();
}
