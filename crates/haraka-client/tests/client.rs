//! The client against the scripted server on 127.0.0.1.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use haraka_client::testing::{Action, FakeServer};
use haraka_client::{
    AuthMechanism, ConnectOptions, Error, Pool, SmtpClient, Stage, StartTls, Timeouts, Xclient,
    XclientAttrs,
};
use haraka_smtp::Message;
use rustls_pki_types::ServerName;

fn opts(secs: f64) -> ConnectOptions {
    let t = Duration::from_secs_f64(secs);
    ConnectOptions {
        timeouts: Timeouts {
            connect: t,
            command: t,
            data_end: t,
        },
        bind: None,
    }
}

fn message() -> Message {
    Message {
        headers: vec![b"Subject: test".to_vec()],
        body: b"line one\r\n.starts with dot\r\nbare\nLF\r\n".to_vec(),
    }
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn tls_pair(name: &str) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    haraka_client::testing::tls_pair(name).unwrap()
}

#[tokio::test]
async fn full_dialogue_with_xclient_pipelining_and_reuse() {
    let server = FakeServer::default()
        .with_ehlo(&["PIPELINING", "XCLIENT NAME ADDR PROTO HELO"])
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    assert_eq!(c.greeting().code, 220);
    c.ehlo("mx.test.local").await.unwrap();
    let attrs = XclientAttrs {
        addr: Some("192.0.2.9".parse().unwrap()),
        name: Some("client.example.org".into()),
        helo: Some("helo.example.org".into()),
        proto: Some("ESMTP".into()),
        login: Some("ignored-not-advertised".into()),
        ..XclientAttrs::default()
    };
    assert_eq!(
        c.xclient(&attrs, "helo.example.org").await.unwrap(),
        Xclient::Done
    );
    assert!(c.xclient_sent());
    let replies = c
        .envelope(
            "<s@remote.org>",
            &rcpts(&["<a@example.com>", "<b@example.com>"]),
        )
        .await
        .unwrap();
    assert_eq!(replies.len(), 2);
    let done = c.data(&message()).await.unwrap();
    assert_eq!(done.lines, ["2.0.0 Ok: queued as FAKE1"]);
    c.rset().await.unwrap();
    c.envelope("<>", &rcpts(&["<c@example.com>"]))
        .await
        .unwrap();
    c.data(&Message::default()).await.unwrap();
    c.quit().await;

    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert_eq!(
        s.lines,
        [
            "EHLO mx.test.local",
            "XCLIENT HELO=helo.example.org PROTO=ESMTP NAME=client.example.org ADDR=192.0.2.9",
            "EHLO helo.example.org",
            "MAIL FROM:<s@remote.org>",
            "RCPT TO:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "RSET",
            "MAIL FROM:<>",
            "RCPT TO:<c@example.com>",
            "DATA",
            "QUIT",
        ]
    );
    assert_eq!(
        String::from_utf8_lossy(&s.messages[0]),
        "Subject: test\r\n\r\nline one\r\n..starts with dot\r\nbare\r\nLF\r\n.\r\n"
    );
    // An empty message is an empty header section and an empty body.
    assert_eq!(s.messages[1], b"\r\n.\r\n");
}

#[tokio::test]
async fn ehlo_falls_back_to_helo_and_no_pipelining_is_sequential() {
    let server = FakeServer::default()
        .with_handler(|_, line| {
            if line.starts_with("EHLO") {
                Some(Action::reply("502 5.5.1 no EHLO here"))
            } else if line == "RCPT TO:<bad@example.com>" {
                Some(Action::reply("550 5.1.1 unknown"))
            } else {
                None
            }
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    assert!(!c.is_esmtp());
    let replies = c
        .envelope(
            "<s@x.org>",
            &rcpts(&["<bad@example.com>", "<ok@example.com>"]),
        )
        .await
        .unwrap();
    assert_eq!(
        replies.iter().map(|r| r.code).collect::<Vec<_>>(),
        [550, 250]
    );
    let s = server.record.sessions();
    assert_eq!(
        s[0].lines,
        [
            "EHLO me.test",
            "HELO me.test",
            "MAIL FROM:<s@x.org>",
            "RCPT TO:<bad@example.com>",
            "RCPT TO:<ok@example.com>"
        ]
    );
}

#[tokio::test]
async fn pipelined_mail_rejection_keeps_the_stream_in_step() {
    let server = FakeServer::default()
        .with_handler(|_, line| {
            if line.starts_with("MAIL") {
                Some(Action::reply("451 4.3.0 try later"))
            } else if line.starts_with("RCPT") {
                Some(Action::reply("503 5.5.1 need MAIL"))
            } else {
                None
            }
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let err = c
        .envelope("<s@x.org>", &rcpts(&["<a@example.com>", "<b@example.com>"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { stage: Stage::Mail, reply } if reply.code == 451),
        "{err}"
    );
    assert!(!err.is_permanent());
    // Both RCPT replies were consumed: the next command gets its own reply.
    assert_eq!(c.noop().await.unwrap().code, 250);
}

#[tokio::test]
async fn refused_connection_and_silent_server_fail_within_the_timeouts() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = SmtpClient::connect(addr, &opts(5.0)).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.is_transport());

    let server = FakeServer::default()
        .with_handler(|_, line| (line == "GREETING").then_some(Action::Silent))
        .start()
        .await
        .unwrap();
    let start = Instant::now();
    let err = SmtpClient::connect(server.addr, &opts(0.3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                stage: Stage::Greeting,
                ..
            }
        ),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn reset_mid_data_and_bad_replies_are_transport_errors() {
    let server = FakeServer::default()
        .with_handler(|_, line| (line == "DATA").then_some(Action::CloseMidData))
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    c.envelope("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    let big = Message {
        headers: vec![b"Subject: big".to_vec()],
        body: "0123456789abcdef\r\n".repeat(200_000).into_bytes(),
    };
    let err = c.data(&big).await.unwrap_err();
    assert!(err.is_transport(), "{err}");
    assert!(c.is_broken());

    let server = FakeServer::default()
        .with_handler(|_, line| line.starts_with("EHLO").then(|| Action::reply("hello?")))
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    let err = c.ehlo("me.test").await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
}

#[tokio::test]
async fn xclient_refusals() {
    for (answer, want_refused) in [
        ("550 5.7.0 not authorized", true),
        ("421 4.7.0 later", false),
    ] {
        let server = FakeServer::default()
            .with_ehlo(&["XCLIENT ADDR"])
            .with_handler(move |_, line| line.starts_with("XCLIENT").then(|| Action::reply(answer)))
            .start()
            .await
            .unwrap();
        let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
        c.ehlo("me.test").await.unwrap();
        let attrs = XclientAttrs {
            addr: Some("::1".parse().unwrap()),
            ..XclientAttrs::default()
        };
        let got = c.xclient(&attrs, "h").await;
        if want_refused {
            assert!(matches!(got, Ok(Xclient::Refused(_))), "{got:?}");
            assert!(!c.xclient_sent());
        } else {
            assert!(
                matches!(
                    got,
                    Err(Error::Rejected {
                        stage: Stage::Xclient,
                        ..
                    })
                ),
                "{got:?}"
            );
        }
        assert_eq!(
            server.record.sessions()[0].lines[1],
            "XCLIENT ADDR=IPV6:::1"
        );
    }
}

#[tokio::test]
async fn auth_plain_and_login() {
    let server = FakeServer::default()
        .with_handler(|s, line| {
            let back = |n: usize| {
                s.lines
                    .len()
                    .checked_sub(n + 1)
                    .map(|i| s.lines[i].as_str())
            };
            if line == "AUTH LOGIN" {
                Some(Action::reply("334 VXNlcm5hbWU6"))
            } else if back(1) == Some("AUTH LOGIN") {
                Some(Action::reply("334 UGFzc3dvcmQ6"))
            } else if line.starts_with("AUTH PLAIN") || back(2) == Some("AUTH LOGIN") {
                Some(Action::reply("235 2.7.0 Authentication successful"))
            } else {
                None
            }
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    c.auth(AuthMechanism::Plain, "user1", "secret")
        .await
        .unwrap();
    let mut c2 = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c2.ehlo("me").await.unwrap();
    c2.auth(AuthMechanism::Login, "user1", "secret")
        .await
        .unwrap();
    let s = server.record.sessions();
    assert_eq!(s[0].lines[1], "AUTH PLAIN AHVzZXIxAHNlY3JldA==");
    assert_eq!(s[1].lines[1..], ["AUTH LOGIN", "dXNlcjE=", "c2VjcmV0"]);
}

#[tokio::test]
async fn starttls_verified_and_unverified() {
    let (server_cfg, client_cfg) = tls_pair("localhost");
    let server = FakeServer::default()
        .with_ehlo(&["STARTTLS", "PIPELINING"])
        .with_tls(server_cfg)
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    assert!(c.ehlo("me").await.unwrap().has("STARTTLS"));
    let name = ServerName::try_from("localhost").unwrap();
    assert_eq!(
        c.starttls(Arc::clone(&client_cfg), name).await.unwrap(),
        StartTls::Secured
    );
    assert!(c.is_tls());
    assert!(!c.ehlo("me").await.unwrap().has("STARTTLS"));
    c.envelope("<s@x.org>", &rcpts(&["<a@b.org>"]))
        .await
        .unwrap();
    c.data(&message()).await.unwrap();
    c.quit().await;
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert!(s.tls);
    assert_eq!(s.lines[..3], ["EHLO me", "STARTTLS", "EHLO me"]);
    assert_eq!(s.messages.len(), 1);

    // A certificate for another name does not verify: the handshake fails.
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    let other = ServerName::try_from("mail.other.test").unwrap();
    let err = c.starttls(client_cfg, other).await.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    assert!(c.is_broken());
}

#[tokio::test]
async fn reader_data_matches_message_data() {
    let server = FakeServer::default().start().await.unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    c.envelope("<s@x.org>", &rcpts(&["<a@b.org>"]))
        .await
        .unwrap();
    let raw = b"Subject: test\r\n\r\nline one\r\n.starts with dot\r\nbare\nLF\r\n".to_vec();
    c.data_from_reader(&mut raw.as_slice()).await.unwrap();
    let s = server.record.sessions();
    assert_eq!(
        String::from_utf8_lossy(&s[0].messages[0]),
        "Subject: test\r\n\r\nline one\r\n..starts with dot\r\nbare\r\nLF\r\n.\r\n"
    );
}

#[tokio::test]
async fn command_injection_is_refused() {
    let server = FakeServer::default().start().await.unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    let err = c
        .envelope("<a@b>\r\nRCPT TO:<evil@x>", &rcpts(&["<a@b.org>"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
}

#[tokio::test]
async fn pool_reuses_limits_and_expires() {
    let server = FakeServer::default().start().await.unwrap();
    let pool: Arc<Pool<&'static str>> = Pool::new(1, Duration::from_secs(60));
    let wait = Duration::from_millis(200);

    let mut lease = pool.acquire("k", wait).await.unwrap();
    assert!(lease.take_idle().is_none());
    // The only slot is taken.
    let err = pool.acquire("k", wait).await.unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err}");
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    c.rset().await.unwrap();
    lease.release(c);
    assert_eq!(pool.idle_count(&"k"), 1);

    let mut lease = pool.acquire("k", wait).await.unwrap();
    let mut c = lease.take_idle().expect("idle connection handed out");
    c.noop().await.unwrap();
    lease.release(c);
    assert_eq!(server.record.sessions().len(), 1, "one TCP connection");

    // A connection the server closed while idle is not handed out.
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    assert_eq!(c.command("QUIT").await.unwrap().code, 221);
    server
        .record
        .wait_for(|s| s.len() == 2 && s[1].closed)
        .await;
    let lease = pool.acquire("stale", wait).await.unwrap();
    lease.release(c);
    assert_eq!(pool.idle_count(&"stale"), 1);
    assert!(
        pool.acquire("stale", wait)
            .await
            .unwrap()
            .take_idle()
            .is_none()
    );

    // Expired idle connections are dropped.
    let short: Arc<Pool<u8>> = Pool::new(2, Duration::ZERO);
    let lease = short.acquire(1, wait).await.unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me").await.unwrap();
    lease.release(c);
    assert!(short.acquire(1, wait).await.unwrap().take_idle().is_none());
}

#[tokio::test]
async fn an_idle_only_pool_keeps_a_bounded_number_and_quits_expired_connections() {
    let server = FakeServer::default().start().await.unwrap();
    let connect = || async {
        let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
        c.ehlo("me").await.unwrap();
        c
    };
    let pool: Arc<Pool<u8>> = Arc::new(Pool::idle_only(1, Duration::from_millis(50)));
    assert!(pool.keeps_idle());
    assert!(pool.put(1, connect().await).is_none());
    // Full: the caller gets the second connection back.
    assert!(pool.put(2, connect().await).is_some());
    assert_eq!((pool.idle(), pool.idle_count(&1)), (1, 1));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let reaper = tokio::spawn({
        let pool = Arc::clone(&pool);
        async move { pool.run_reaper(stopped).await }
    });
    // Expired, the idle connection is closed politely.
    server
        .record
        .wait_for(|s| {
            s.first()
                .is_some_and(|s| s.lines.iter().any(|l| l == "QUIT"))
        })
        .await;
    assert_eq!(pool.idle(), 0);
    // Once the reaper is stopped, nothing is kept.
    stop.send_replace(true);
    reaper.await.unwrap();
    assert!(pool.put(1, connect().await).is_some());
    assert!(!Pool::<u8>::idle_only(0, Duration::from_secs(1)).keeps_idle());
}

#[tokio::test]
async fn message_then_quit_pipelines_quit_with_the_dot_and_skips_its_reply() {
    // The server never answers QUIT: a client that waited for the 221 would hang
    // until its 5 s timeout.
    let server = FakeServer::default()
        .with_ehlo(&["PIPELINING"])
        .with_handler(|_, line| (line == "QUIT").then_some(Action::Silent))
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    c.envelope_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    let started = Instant::now();
    let done = c.message_then_quit(&message()).await.unwrap();
    assert_eq!(done.code, 250);
    assert!(c.is_broken(), "nothing may follow QUIT");
    assert!(matches!(c.rset().await, Err(Error::Closed { .. })));
    c.quit().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert_eq!(
        s.lines,
        [
            "EHLO me.test",
            "MAIL FROM:<s@x.org>",
            "RCPT TO:<a@example.com>",
            "DATA",
            "QUIT"
        ]
    );
    assert_eq!(s.messages.len(), 1);
}

#[tokio::test]
async fn message_then_quit_without_pipelining_leaves_quit_to_quit() {
    let server = FakeServer::default()
        .with_ehlo(&["8BITMIME"])
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    assert!(!c.capabilities().has("PIPELINING"));
    c.envelope_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    c.message_then_quit(&message()).await.unwrap();
    assert!(!c.is_broken());
    c.quit().await;
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert_eq!(s.lines.last().map(String::as_str), Some("QUIT"));
    assert_eq!(s.lines.iter().filter(|l| *l == "QUIT").count(), 1);
}

#[tokio::test]
async fn xclient_and_the_following_ehlo_go_in_one_write_with_pipelining() {
    // The server never answers XCLIENT: only a client that sent EHLO without
    // waiting for that answer gets its EHLO seen.
    let server = FakeServer::default()
        .with_ehlo(&["PIPELINING", "XCLIENT ADDR"])
        .with_handler(|_, line| line.starts_with("XCLIENT").then_some(Action::Silent))
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(1.0)).await.unwrap();
    c.ehlo("proxy.test").await.unwrap();
    let attrs = XclientAttrs {
        addr: Some("192.0.2.9".parse().unwrap()),
        ..XclientAttrs::default()
    };
    let err = c.xclient(&attrs, "client.test").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    let s = server.record.wait_for(|s| s[0].lines.len() == 3).await;
    assert_eq!(
        s[0].lines,
        [
            "EHLO proxy.test",
            "XCLIENT ADDR=192.0.2.9",
            "EHLO client.test"
        ]
    );
}

#[tokio::test]
async fn pipelined_xclient_refused_keeps_the_session_and_its_fresh_capabilities() {
    let server = FakeServer::default()
        .with_ehlo(&["PIPELINING", "XCLIENT ADDR"])
        .with_handler(|_, line| {
            line.starts_with("XCLIENT")
                .then(|| Action::reply("550 5.7.0 Error: insufficient authorization"))
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("proxy.test").await.unwrap();
    let attrs = XclientAttrs {
        addr: Some("192.0.2.9".parse().unwrap()),
        ..XclientAttrs::default()
    };
    match c.xclient(&attrs, "client.test").await.unwrap() {
        Xclient::Refused(r) => assert_eq!(r.code, 550),
        other => panic!("{other:?}"),
    }
    assert!(!c.xclient_sent());
    assert!(c.capabilities().has("PIPELINING"));
    c.envelope_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    c.message(&message()).await.unwrap();
}

#[tokio::test]
async fn envelope_then_data_sends_to_whichever_recipients_are_accepted() {
    let server = FakeServer::default()
        .with_handler(|_, line| {
            (line == "RCPT TO:<gone@example.com>").then(|| Action::reply("550 5.1.1 unknown"))
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let (replies, pending) = c
        .envelope_then_data(
            "<s@x.org>",
            &rcpts(&["<gone@example.com>", "<here@example.com>"]),
        )
        .await
        .unwrap();
    assert_eq!(
        replies.iter().map(|r| r.code).collect::<Vec<_>>(),
        [550, 250]
    );
    assert!(pending);
    let done = c
        .message_bytes(b"Subject: t\r\n\r\n.dot\r\nbare\nLF")
        .await
        .unwrap();
    assert_eq!(done.code, 250);
    c.quit().await;
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert_eq!(
        s.messages[0],
        b"Subject: t\r\n\r\n..dot\r\nbare\r\nLF\r\n.\r\n".to_vec()
    );
}

#[tokio::test]
async fn envelope_then_data_with_every_recipient_refused_sends_nothing() {
    let server = FakeServer::default()
        .with_handler(|_, line| {
            if line.starts_with("RCPT") {
                Some(Action::reply("450 4.2.0 later"))
            } else if line == "DATA" {
                Some(Action::reply("554 5.5.1 no valid recipients"))
            } else {
                None
            }
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let (replies, pending) = c
        .envelope_then_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    assert_eq!(replies[0].code, 450);
    assert!(!pending);
    assert!(
        !c.is_broken(),
        "the server refused DATA: the connection is fine"
    );
    c.rset().await.unwrap();
}

#[tokio::test]
async fn envelope_then_data_leaves_a_354_without_recipients_broken() {
    let server = FakeServer::default()
        .with_handler(|_, line| {
            line.starts_with("RCPT")
                .then(|| Action::reply("550 5.1.1 unknown"))
        })
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let (_, pending) = c
        .envelope_then_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    assert!(!pending);
    // The fake server answered 354 anyway: only closing ends that DATA.
    assert!(c.is_broken());
    c.quit().await;
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert!(s.messages.is_empty());
    assert_eq!(s.lines.last().map(String::as_str), Some("DATA"));
}

#[tokio::test]
async fn reset_envelope_then_data_sends_rset_with_the_envelope() {
    let server = FakeServer::default().start().await.unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let (replies, pending) = c
        .reset_envelope_then_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap();
    assert_eq!(replies[0].code, 250);
    assert!(pending);
    assert_eq!(
        c.message_bytes(b"Subject: x\r\n\r\nbody\r\n")
            .await
            .unwrap()
            .code,
        250
    );
    c.quit().await;
    let s = &server.record.wait_for(|s| s[0].closed).await[0];
    assert_eq!(
        s.lines,
        [
            "EHLO me.test",
            "RSET",
            "MAIL FROM:<s@x.org>",
            "RCPT TO:<a@example.com>",
            "DATA",
            "QUIT"
        ]
    );
}

#[tokio::test]
async fn a_refused_rset_gives_the_connection_up() {
    let server = FakeServer::default()
        .with_handler(|_, line| (line == "RSET").then(|| Action::reply("502 5.5.1 no")))
        .start()
        .await
        .unwrap();
    let mut c = SmtpClient::connect(server.addr, &opts(5.0)).await.unwrap();
    c.ehlo("me.test").await.unwrap();
    let err = c
        .reset_envelope_then_data("<s@x.org>", &rcpts(&["<a@example.com>"]))
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some(Stage::Rset));
    // The server went on to DATA; no message may follow on this connection.
    assert!(c.is_broken());
}
