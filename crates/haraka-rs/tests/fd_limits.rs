//! The binary under a small open-file limit: the default connection cap, running
//! out of descriptors, and raising the soft limit at start.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, copy_dir, free_port, workspace};

fn quickstart(port: u16, smtp_ini: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("config-examples/quickstart"), dir.path());
    std::fs::write(
        dir.path().join("config/smtp.ini"),
        format!("listen=127.0.0.1:{port}\n{smtp_ini}"),
    )
    .unwrap();
    dir
}

/// A connection and the first line the server sent, within `wait`
/// (`None`: nothing yet, or closed).
fn connect(port: u16, wait: Duration) -> (TcpStream, Option<String>) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let line = first_line(&s, wait);
    (s, line)
}

fn first_line(s: &TcpStream, wait: Duration) -> Option<String> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut line = String::new();
    match BufReader::new(s).read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    }
}

fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn out_of_descriptors_the_loop_neither_spins_nor_floods_and_serves_again() {
    let port = free_port();
    let dir = quickstart(port, "max_connections=0\nmax_connections_per_ip=0\n");
    let server = Server::start_after("ulimit -n 48", dir.path(), port);
    let mut held = Vec::new();
    let mut waiting = None;
    for _ in 0..48 {
        let (s, line) = connect(port, Duration::from_millis(700));
        match line {
            Some(l) if l.starts_with("220 ") => held.push(s),
            // Out of descriptors, or only slow: the log tells.
            None if server.log_text().contains("accept failed") => {
                waiting = Some(s);
                break;
            }
            None => held.push(s),
            Some(other) => panic!("unexpected {other}"),
        }
    }
    let waiting = waiting.expect("the descriptors never ran out");
    assert!(held.len() >= 8, "only {} connections", held.len());
    // Out of descriptors for at least the 0.7 s waited above: one report, no flood.
    let log = server.log_text();
    assert_eq!(count(&log, "accept failed"), 1, "{log}");
    assert!(log.contains("No file descriptors available") || log.contains("Too many open files"));

    // Some clients leave: the one waiting in the backlog is greeted within 1 s.
    let left = Instant::now();
    held.truncate(held.len() - 4);
    let line = first_line(&waiting, Duration::from_secs(1));
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("220 ")),
        "{line:?}"
    );
    assert!(left.elapsed() < Duration::from_secs(1));
    let (next, line) = connect(port, Duration::from_secs(1));
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("220 ")),
        "{line:?}"
    );
    drop((held, waiting, next));
    server.stop();
}

#[test]
fn the_default_cap_follows_the_descriptor_limit_and_refuses_cheaply() {
    let port = free_port();
    let dir = quickstart(port, "");
    // (64 - 32) / 2 = 16 connections.
    let server = Server::start_after("ulimit -n 64", dir.path(), port);
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let refused = loop {
        let (s, line) = connect(port, Duration::from_secs(2));
        let line = line.unwrap_or_default();
        if line.starts_with("220 ") {
            held.push(s);
            assert!(held.len() <= 16, "more than 16 served");
        } else if held.len() == 16 {
            break line;
        } else {
            // The start-up probe's slot is given back asynchronously.
            assert!(Instant::now() < deadline, "refused early: {line}");
        }
    };
    assert_eq!(
        refused,
        "421 4.3.2 mx.quickstart.test Too many connections, try again later"
    );
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (s, line) = connect(port, Duration::from_secs(1));
        if line.as_deref().is_some_and(|l| l.starts_with("220 ")) {
            held.push(s);
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {line:?}");
    }
    let log = server.log_text();
    assert!(log.contains("open-file limit: 64"), "{log}");
    assert!(
        log.contains("max_connections=16 max_connections_per_ip=50"),
        "{log}"
    );
    assert_eq!(count(&log, "accept failed"), 0, "{log}");
    drop(held);
    server.stop();
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_limit() {
    let hard = Command::new("sh")
        .args(["-c", "ulimit -H -n"])
        .output()
        .unwrap();
    let hard = String::from_utf8(hard.stdout).unwrap().trim().to_owned();
    let Ok(hard) = hard.parse::<u64>() else {
        // An unlimited hard limit cannot be a soft open-file limit; nothing to compare.
        return;
    };
    let port = free_port();
    let dir = quickstart(port, "");
    let server = Server::start_after("ulimit -S -n 40", dir.path(), port);
    let log = server.log_text();
    assert!(log.contains(&format!("open-file limit: {hard}")), "{log}");
    let cap = (hard - 32) / 2;
    assert!(log.contains(&format!("max_connections={cap} ")), "{log}");
    server.stop();
}
