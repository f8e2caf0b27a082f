//! The `early_talker` plugin through the binary. Loopback clients are never
//! checked (as in Haraka), so the client first takes a public address with
//! XCLIENT, which restarts the session and greets anew.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use common::{Server, Smtp, copy_dir, free_port, run, workspace};

fn root(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("config-examples/quickstart"), dir.path());
    let config = dir.path().join("config");
    std::fs::write(
        config.join("smtp.ini"),
        format!("listen=127.0.0.1:{port}\n"),
    )
    .unwrap();
    let plugins = std::fs::read_to_string(config.join("plugins")).unwrap();
    std::fs::write(
        config.join("plugins"),
        format!("xclient\nearly_talker\n{plugins}"),
    )
    .unwrap();
    std::fs::write(config.join("early_talker.ini"), "pause=0.2\n").unwrap();
    dir
}

/// Connected, greeted, and restarted as 203.0.113.9; `early` sends EHLO with
/// the XCLIENT command instead of after the new greeting.
fn as_public_client(port: u16, early: bool) -> Smtp {
    let mut c = Smtp::connect(port);
    assert!(c.reply()[0].starts_with("220 "));
    assert!(c.cmd("EHLO proxy.example").starts_with("250 "));
    if early {
        c.send("XCLIENT ADDR=203.0.113.9 NAME=client.example\r\nEHLO client.example");
        assert!(c.reply()[0].starts_with("220 "));
        assert!(c.reply().last().unwrap().starts_with("250 "));
    } else {
        assert!(
            c.cmd("XCLIENT ADDR=203.0.113.9 NAME=client.example")
                .starts_with("220 ")
        );
        assert!(c.cmd("EHLO client.example").starts_with("250 "));
    }
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "250 sender <a@b.example> OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<user@quickstart.test>"),
        "250 recipient <user@quickstart.test> OK"
    );
    c
}

#[test]
fn an_early_talker_is_refused_at_data() {
    let port = free_port();
    let dir = root(port);
    let check = run(&["-c", dir.path().to_str().unwrap(), "--check"]);
    assert!(check.status.success(), "{check:?}");
    let server = Server::start(dir.path(), port);

    let mut early = as_public_client(port, true);
    assert_eq!(early.cmd("DATA"), "554 You talk too soon");
    assert_eq!(early.reply(), Vec::<String>::new(), "closed");

    let mut patient = as_public_client(port, false);
    assert_eq!(patient.cmd("DATA"), "354 go ahead, make my day");
    drop(patient);
    server.stop();
}

#[test]
fn loopback_clients_are_not_checked() {
    let port = free_port();
    let dir = root(port);
    let server = Server::start(dir.path(), port);
    let mut c = Smtp::connect(port);
    // the whole transaction before the greeting
    c.send(
        "HELO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<user@quickstart.test>\r\nDATA",
    );
    assert!(c.reply()[0].starts_with("220 "));
    assert!(c.reply()[0].starts_with("250 "));
    c.reply();
    c.reply();
    assert_eq!(c.reply(), ["354 go ahead, make my day"]);
    drop(c);
    server.stop();
}
