//! The sender's `SMTPUTF8` and `BODY=8BITMIME` travel through the queue file to the
//! MX: passed on when the MX offers them, a 5.6.7 bounce when SMTPUTF8 is needed and
//! not offered, nothing added for a plain message.

use std::time::Duration;

use crate::support::*;
use haraka_client::testing::{Action, FakeServer, Running, Session};
use haraka_outbound::{Event, RetrySchedule, StaticResolver};
use haraka_plugin_api::{Connection, OutboundQueue};

const BOTH: &[&str] = &["PIPELINING", "8BITMIME", "SMTPUTF8"];

fn with_params(mut c: Connection, params: &[(&str, Option<&str>)]) -> Connection {
    let tx = c.transaction.as_mut().unwrap();
    tx.mail_params = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
        .collect();
    c
}

fn utf8_params(c: Connection) -> Connection {
    with_params(c, &[("SMTPUTF8", None), ("BODY", Some("8BITMIME"))])
}

async fn env_for(server: &Running, cfg: haraka_outbound::OutboundConfig) -> Env {
    let env = Env::new(cfg, StaticResolver::new()).await;
    env.hooks
        .route_to(vec![mx_host("127.0.0.1", server.addr.port())]);
    env
}

async fn sessions_until(server: &Running, pred: impl Fn(&[Session]) -> bool) -> Vec<Session> {
    tokio::time::timeout(PATIENCE, server.record.wait_for(pred))
        .await
        .expect("the fake MX never saw what the test waits for")
}

fn mail_lines(sessions: &[Session]) -> Vec<String> {
    sessions
        .iter()
        .flat_map(|s| s.lines.iter())
        .filter(|l| l.starts_with("MAIL FROM:"))
        .cloned()
        .collect()
}

/// Deliver `c` through a fresh engine to an MX offering `ehlo`; the MAIL FROM lines
/// the MX saw.
async fn mail_from_seen(ehlo: &[&str], c: Connection) -> Vec<String> {
    let server = FakeServer::default().with_ehlo(ehlo).start().await.unwrap();
    let mut env = env_for(&server, config(25)).await;
    env.out.enqueue(&c).await;
    env.event(|e| matches!(e, Event::Delivered { .. })).await;
    mail_lines(&server.record.sessions())
}

#[tokio::test]
async fn passed_on_when_the_mx_offers_them() {
    let c = utf8_params(conn(Some("u@sender.test"), &["x@dest.test"], "s"));
    assert_eq!(
        mail_from_seen(BOTH, c).await,
        ["MAIL FROM:<u@sender.test> SMTPUTF8 BODY=8BITMIME"]
    );
    // Without 8BITMIME at the MX the message goes without BODY=.
    let c = utf8_params(conn(Some("u@sender.test"), &["x@dest.test"], "s"));
    assert_eq!(
        mail_from_seen(&["SMTPUTF8"], c).await,
        ["MAIL FROM:<u@sender.test> SMTPUTF8"]
    );
    // A non-ASCII local part asks for SMTPUTF8 by itself.
    let c = conn(Some("u@sender.test"), &["jörg@dest.test"], "s");
    assert_eq!(
        mail_from_seen(BOTH, c).await,
        ["MAIL FROM:<u@sender.test> SMTPUTF8"]
    );
}

#[tokio::test]
async fn plain_messages_are_unchanged() {
    let plain = conn(Some("u@sender.test"), &["x@dest.test"], "s");
    assert_eq!(
        mail_from_seen(BOTH, plain).await,
        ["MAIL FROM:<u@sender.test>"]
    );
    let seven = with_params(
        conn(Some("u@sender.test"), &["x@dest.test"], "s"),
        &[("BODY", Some("7BIT")), ("SIZE", Some("100"))],
    );
    assert_eq!(
        mail_from_seen(BOTH, seven).await,
        ["MAIL FROM:<u@sender.test>"]
    );
}

#[tokio::test]
async fn a_retry_read_from_the_queue_file_keeps_them() {
    // The first attempt has the message in memory; the MX defers it, so the second
    // attempt reads everything back from the file.
    let server = FakeServer::default()
        .with_ehlo(BOTH)
        .with_handler(|s, line| {
            (s.index == 0 && line.starts_with("MAIL")).then(|| Action::reply("451 4.3.0 later"))
        })
        .start()
        .await
        .unwrap();
    let mut cfg = config(25);
    cfg.temp_fail_intervals = RetrySchedule::new(vec![Duration::from_millis(1); 2]);
    let mut env = env_for(&server, cfg).await;
    let c = utf8_params(conn(Some("u@sender.test"), &["x@dest.test"], "s"));
    env.out.enqueue(&c).await;
    env.event(|e| matches!(e, Event::Delivered { .. })).await;
    assert_eq!(
        mail_lines(&server.record.sessions()),
        [
            "MAIL FROM:<u@sender.test> SMTPUTF8 BODY=8BITMIME",
            "MAIL FROM:<u@sender.test> SMTPUTF8 BODY=8BITMIME",
        ]
    );
}

#[tokio::test]
async fn bounced_when_smtputf8_is_needed_and_not_offered() {
    let cases = [
        // The sender asked for it.
        utf8_params(conn(Some("u@sender.test"), &["x@dest.test"], "asked")),
        // A recipient's local part is not ASCII.
        conn(Some("u@sender.test"), &["jörg@dest.test"], "needed"),
    ];
    for c in cases {
        let server = FakeServer::default()
            .with_ehlo(&["PIPELINING", "8BITMIME"])
            .start()
            .await
            .unwrap();
        let mut env = env_for(&server, config(25)).await;
        env.out.enqueue(&c).await;
        let e = env.event(|e| matches!(e, Event::Bounced { .. })).await;
        assert!(
            matches!(&e, Event::Bounced { err, .. }
                if err == "SMTPUTF8 is required, but was not offered by host 127.0.0.1"),
            "{e:?}"
        );
        // The bounce itself (to the ASCII sender, null sender) is the only message
        // the MX gets; the original was never offered to it.
        let sessions = sessions_until(&server, |s| s.iter().any(|s| !s.messages.is_empty())).await;
        assert_eq!(mail_lines(&sessions), ["MAIL FROM:<>"]);
        let all: Vec<&String> = sessions.iter().flat_map(|s| s.lines.iter()).collect();
        assert!(
            all.iter()
                .all(|l| !l.starts_with("RCPT TO:<x@") && !l.contains("jörg")),
            "{all:?}"
        );
        let dsn = String::from_utf8_lossy(&sessions[0].messages[0]).into_owned();
        assert!(dsn.contains("Status: 5.6.7"), "{dsn}");
        assert!(dsn.contains("SMTPUTF8 is required"), "{dsn}");
        assert!(dsn.contains("Remote-MTA: 127.0.0.1"), "{dsn}");
    }
}
