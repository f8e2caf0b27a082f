//! `envelope_data`: MAIL, RCPT and DATA in one pipelined group, and every way the
//! group can end, against the scripted server on 127.0.0.1.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::time::Duration;

use haraka_client::testing::{Action, FakeServer, Running};
use haraka_client::{ConnectOptions, Error, SmtpClient, Stage, Timeouts};
use haraka_smtp::Message;

fn opts() -> ConnectOptions {
    let t = Duration::from_secs(5);
    ConnectOptions {
        timeouts: Timeouts {
            connect: t,
            command: t,
            data_end: t,
        },
        bind: None,
    }
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn message() -> Message {
    Message {
        headers: vec![b"Subject: t".to_vec()],
        body: b".dot\r\n".to_vec(),
    }
}

/// A server with (or without) PIPELINING that refuses `<bad@example.com>` and
/// answers DATA with `data` (None: the default 354).
async fn server(pipelining: bool, data: Option<&'static str>) -> Running {
    let ehlo: &[&str] = if pipelining { &["PIPELINING"] } else { &[] };
    FakeServer::default()
        .with_ehlo(ehlo)
        .with_handler(move |_, line| match line {
            "RCPT TO:<bad@example.com>" => Some(Action::reply("550 5.1.1 no such user")),
            "DATA" => data.map(Action::reply),
            _ => None,
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn accepted_group_then_message() {
    for pipelining in [true, false] {
        let server = server(pipelining, None).await;
        let mut c = SmtpClient::connect(server.addr, &opts()).await.unwrap();
        c.ehlo("me.test").await.unwrap();
        let replies = c
            .envelope_data("<s@x.org>", &rcpts(&["<a@example.com>", "<b@example.com>"]))
            .await
            .unwrap();
        assert_eq!(replies.len(), 2, "pipelining={pipelining}");
        assert!(replies.iter().all(|r| r.code == 250));
        let done = c.message(&message()).await.unwrap();
        assert_eq!(done.code, 250);
        assert!(!c.is_broken());
        c.quit().await;
        let s = &server.record.wait_for(|s| s[0].closed).await[0];
        assert_eq!(
            s.lines,
            [
                "EHLO me.test",
                "MAIL FROM:<s@x.org>",
                "RCPT TO:<a@example.com>",
                "RCPT TO:<b@example.com>",
                "DATA",
                "QUIT"
            ],
            "pipelining={pipelining}"
        );
        assert_eq!(s.messages, [b"Subject: t\r\n\r\n..dot\r\n.\r\n".to_vec()]);
    }
}

#[tokio::test]
async fn refused_recipient_and_354_breaks_the_connection_without_a_message() {
    let server = server(true, None).await;
    let mut c = SmtpClient::connect(server.addr, &opts()).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let replies = c
        .envelope_data(
            "<s@x.org>",
            &rcpts(&["<a@example.com>", "<bad@example.com>"]),
        )
        .await
        .unwrap();
    assert_eq!(
        replies.iter().map(|r| r.code).collect::<Vec<_>>(),
        [250, 550]
    );
    assert!(c.is_broken());
    drop(c);
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert!(s.messages.is_empty(), "{:?}", s.messages);
}

#[tokio::test]
async fn refused_recipient_and_refused_data_keep_the_connection() {
    let server = server(true, Some("554 5.5.1 no valid recipients")).await;
    let mut c = SmtpClient::connect(server.addr, &opts()).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let replies = c
        .envelope_data("<s@x.org>", &rcpts(&["<bad@example.com>"]))
        .await
        .unwrap();
    assert_eq!(replies[0].code, 550);
    assert!(!c.is_broken());
    assert_eq!(c.rset().await.unwrap().code, 250);
}

#[tokio::test]
async fn refused_recipient_without_pipelining_sends_no_data() {
    let server = server(false, None).await;
    let mut c = SmtpClient::connect(server.addr, &opts()).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let replies = c
        .envelope_data("<s@x.org>", &rcpts(&["<bad@example.com>"]))
        .await
        .unwrap();
    assert_eq!(replies[0].code, 550);
    assert!(!c.is_broken());
    c.quit().await;
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert!(!s.lines.iter().any(|l| l == "DATA"), "{:?}", s.lines);
}

#[tokio::test]
async fn refused_data_after_accepted_recipients_is_an_error() {
    for pipelining in [true, false] {
        let server = server(pipelining, Some("451 4.3.0 not now")).await;
        let mut c = SmtpClient::connect(server.addr, &opts()).await.unwrap();
        c.ehlo("me.test").await.unwrap();
        let err = c
            .envelope_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Rejected { stage: Stage::Data, reply } if reply.code == 451),
            "pipelining={pipelining}: {err}"
        );
        assert!(!c.is_broken());
    }
}
