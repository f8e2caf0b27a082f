//! A connection that delivered a message carries the next one to the same
//! destination (after RSET), and only then.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use haraka_client::testing::{FakeServer, Session};
use haraka_outbound::{Event, OutboundTls, StaticResolver};
use haraka_plugin_api::{Connection, Hook, OutboundArgs, OutboundQueue};

fn delivered(e: &Event) -> bool {
    matches!(e, Event::Delivered { .. })
}

fn dest(addr: &str) -> StaticResolver {
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip(addr));
    dns
}

/// Queue `c` and wait for its delivery; no temporary failure on the way.
async fn deliver(env: &mut Env, c: &Connection) {
    env.out.enqueue(c).await;
    env.event(delivered).await;
    assert!(
        env.hooks.args_of(Hook::Deferred).is_empty(),
        "{:?}",
        env.backlog
    );
}

fn send(to: &str, subject: &str) -> Connection {
    conn(Some("u@sender.test"), &[to], subject)
}

#[tokio::test]
async fn two_messages_in_a_row_share_one_connection() {
    let mx = FakeMx::plain("127.0.40.2:0").await;
    let mut env = Env::new(config(mx.port()), dest("127.0.40.2")).await;
    deliver(&mut env, &send("x@dest.test", "one")).await;
    deliver(&mut env, &send("y@dest.test", "two")).await;
    let rec = mx.rec.snapshot();
    assert_eq!(rec.sessions.len(), 1, "one TCP connection");
    assert_eq!(
        rec.sessions[0].lines,
        [
            "EHLO relay.test",
            "MAIL FROM:<u@sender.test>",
            "RCPT TO:<x@dest.test>",
            "DATA",
            "RSET",
            "MAIL FROM:<u@sender.test>",
            "RCPT TO:<y@dest.test>",
            "DATA",
        ]
    );
    assert_eq!(rec.messages().len(), 2);
    assert_eq!(env.out.status().idle_connections, 1);

    // Unused for the idle time (2 s), it is closed politely.
    let rec = mx.wait_for(|d| d.sessions[0].closed).await;
    assert_eq!(rec.sessions[0].lines.last().unwrap(), "QUIT");
    assert_eq!(env.out.status().idle_connections, 0);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced() {
    let mx = FakeMx::start(
        "127.0.41.2:0",
        Arc::new(|session, _, line: &str| {
            (session == 0 && line == ".").then(|| Act::ReplyClose("250 2.0.0 Ok, bye".into()))
        }),
    )
    .await;
    let mut env = Env::new(config(mx.port()), dest("127.0.41.2")).await;
    deliver(&mut env, &send("x@dest.test", "one")).await;
    mx.wait_for(|d| d.sessions[0].closed).await;
    deliver(&mut env, &send("y@dest.test", "two")).await;
    let rec = mx.rec.snapshot();
    assert_eq!(rec.sessions.len(), 2);
    assert_eq!(
        rec.sessions[0].lines.last().unwrap(),
        "DATA",
        "nothing sent to it"
    );
    assert_eq!(rec.sessions[1].lines[0], "EHLO relay.test");
    assert!(!rec.sessions[1].lines.contains(&"RSET".to_owned()));
    assert!(String::from_utf8_lossy(&rec.sessions[1].messages[0]).contains("Subject: two"));
}

#[tokio::test]
async fn a_refused_rset_means_a_new_connection() {
    let mx = FakeMx::start(
        "127.0.42.2:0",
        Arc::new(|_, _, line: &str| {
            (line == "RSET").then(|| Act::ReplyClose("421 4.3.2 shutting down".into()))
        }),
    )
    .await;
    let mut env = Env::new(config(mx.port()), dest("127.0.42.2")).await;
    deliver(&mut env, &send("x@dest.test", "one")).await;
    deliver(&mut env, &send("y@dest.test", "two")).await;
    let rec = mx.rec.snapshot();
    assert_eq!(rec.sessions.len(), 2);
    assert_eq!(rec.sessions[0].lines.last().unwrap(), "RSET");
    assert_eq!(rec.sessions[0].messages.len(), 1);
    assert_eq!(rec.sessions[1].messages.len(), 1);
}

#[tokio::test]
async fn a_refused_message_closes_the_connection() {
    let mx = FakeMx::start(
        "127.0.43.2:0",
        Arc::new(|session, _, line: &str| {
            (session == 0 && line == ".").then(|| Act::Reply("451 4.3.0 try again".into()))
        }),
    )
    .await;
    let mut cfg = config(mx.port());
    cfg.connection_reuse = Duration::from_secs(600);
    let mut env = Env::new(cfg, dest("127.0.43.2")).await;
    env.out.enqueue(&send("x@dest.test", "one")).await;
    env.event(|e| matches!(e, Event::Deferred { .. })).await;
    let rec = mx.wait_for(|d| d.sessions[0].closed).await;
    assert_eq!(rec.sessions[0].lines.last().unwrap(), "QUIT");
    assert_eq!(env.out.status().idle_connections, 0);
    env.out.enqueue(&send("y@dest.test", "two")).await;
    env.event(delivered).await;
    assert_eq!(mx.rec.snapshot().sessions.len(), 2);
}

#[tokio::test]
async fn shutdown_closes_idle_connections() {
    let mx = FakeMx::plain("127.0.44.2:0").await;
    let mut cfg = config(mx.port());
    cfg.connection_reuse = Duration::from_secs(600);
    let mut env = Env::new(cfg, dest("127.0.44.2")).await;
    deliver(&mut env, &send("x@dest.test", "one")).await;
    assert_eq!(env.out.status().idle_connections, 1);
    env.out.shutdown();
    let rec = mx.wait_for(|d| d.sessions[0].closed).await;
    assert_eq!(rec.sessions[0].lines.last().unwrap(), "QUIT");
}

#[tokio::test]
async fn zero_idle_time_means_a_connection_per_message() {
    let mx = FakeMx::plain("127.0.45.2:0").await;
    let mut cfg = config(mx.port());
    cfg.connection_reuse = Duration::ZERO;
    let mut env = Env::new(cfg, dest("127.0.45.2")).await;
    deliver(&mut env, &send("x@dest.test", "one")).await;
    deliver(&mut env, &send("y@dest.test", "two")).await;
    let rec = mx.wait_for(|d| d.sessions.iter().all(|s| s.closed)).await;
    assert_eq!(rec.sessions.len(), 2);
    assert!(
        rec.sessions
            .iter()
            .all(|s| s.lines.last().unwrap() == "QUIT")
    );
}

fn secured(env: &Env) -> Vec<bool> {
    env.hooks
        .args_of(Hook::Delivered)
        .iter()
        .map(|a| matches!(a, OutboundArgs::Delivered { secured: true, .. }))
        .collect()
}

fn with_helo(mut c: Connection, helo: &str) -> Connection {
    let tx = c.transaction.as_mut().unwrap();
    tx.notes.insert("outbound_helo".into(), helo.into());
    c
}

#[tokio::test]
async fn helo_name_and_tls_choice_keep_connections_apart() {
    let (server_cfg, client_cfg) = haraka_client::testing::tls_pair("mx.tls.test").unwrap();
    let server = FakeServer::default()
        .with_ehlo(&["PIPELINING", "STARTTLS"])
        .with_tls(server_cfg)
        .start()
        .await
        .unwrap();
    let tls = OutboundTls {
        config: Some(client_cfg),
        no_tls_hosts: vec!["plain.test".into()],
        ..OutboundTls::default()
    };
    let mut cfg = config(25);
    cfg.connection_reuse = Duration::from_secs(600);
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::with(cfg, StaticResolver::new(), tls, dir).await;
    let mut host = mx_host("mx.tls.test", server.addr.port());
    host.ip = Some(server.addr.ip());
    env.hooks.route_to(vec![host]);

    deliver(&mut env, &send("a@tls.test", "1")).await;
    deliver(&mut env, &send("b@plain.test", "2")).await;
    deliver(&mut env, &with_helo(send("c@tls.test", "3"), "other.test")).await;
    deliver(&mut env, &send("d@tls.test", "4")).await;
    deliver(&mut env, &send("e@plain.test", "5")).await;

    let sessions = server.record.sessions();
    let summary: Vec<(bool, usize, String)> = sessions
        .iter()
        .map(|s: &Session| (s.tls, s.messages.len(), s.lines[0].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (true, 2, "EHLO relay.test".to_owned()),
            (false, 2, "EHLO relay.test".to_owned()),
            (true, 1, "EHLO other.test".to_owned()),
        ]
    );
    assert_eq!(secured(&env), [true, false, true, true, false]);
    let tls_lines = &sessions[0].lines;
    assert_eq!(tls_lines.iter().filter(|l| *l == "RSET").count(), 1);
    assert_eq!(
        tls_lines.iter().filter(|l| l.starts_with("EHLO")).count(),
        2,
        "EHLO before and after STARTTLS only: {tls_lines:?}"
    );
}
