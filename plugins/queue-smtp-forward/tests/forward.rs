//! The queue hook against a scripted backend on 127.0.0.1.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::time::{Duration, Instant};

use common::*;
use haraka_client::testing::{Action, FakeServer};
use haraka_plugin_api::{Action as Code, Msg, Outcome};

fn msg_text(o: &Outcome) -> String {
    o.msg.as_ref().map(Msg::joined).unwrap_or_default()
}

#[tokio::test]
async fn accepted_with_xclient_and_the_exact_bytes_forwarded() {
    let backend = FakeServer::default()
        .with_ehlo(&[
            "PIPELINING",
            "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
        ])
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    let mut conn = connection(&["<a@example.com>", "<B@Example.COM>"]);
    let out = queue(p.as_ref(), &mut conn).await;
    assert_eq!(out.action, Code::Accept, "{out:?}");
    assert_eq!(msg_text(&out), "2.0.0 Ok: queued as FAKE1");

    let s = &backend.record.wait_for(|s| s[0].closed).await[0];
    assert_eq!(
        s.lines,
        [
            "EHLO mx.test.local",
            "XCLIENT HELO=helo.example.org PROTO=ESMTP PORT=40000 DESTADDR=127.0.0.1 \
             DESTPORT=25 NAME=client.example.org ADDR=192.0.2.9",
            "EHLO helo.example.org",
            "MAIL FROM:<sender@remote.org>",
            "RCPT TO:<a@example.com>",
            "RCPT TO:<B@example.com>",
            "DATA",
            "QUIT",
        ]
    );
    assert_eq!(String::from_utf8_lossy(&s.messages[0]), FORWARDED_BODY);
}

#[tokio::test]
async fn multi_line_final_reply_is_joined_with_commas() {
    let backend = FakeServer::default()
        .with_handler(|_, line| {
            (line == ".").then(|| Action::reply("250-2.0.0 line one\n250 2.0.0 Ok: queued as ML1"))
        })
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::Accept);
    assert_eq!(msg_text(&out), "2.0.0 line one,2.0.0 Ok: queued as ML1");
}

#[tokio::test]
async fn backend_rejections_keep_code_and_text() {
    let table: &[(&str, &str, Code, Option<u16>, &str)] = &[
        (
            "RCPT TO:<b@example.com>",
            "550 5.1.1 <b@example.com>: Recipient address rejected: User unknown",
            Code::Deny,
            Some(550),
            "5.1.1 <b@example.com>: Recipient address rejected: User unknown",
        ),
        (".", "554 5.7.1 spam", Code::Deny, Some(554), "5.7.1 spam"),
        (
            "MAIL",
            "521 5.3.2 go away",
            Code::Deny,
            None,
            "5.3.2 go away",
        ),
        (
            "MAIL",
            "451 4.3.0 try later",
            Code::DenySoft,
            Some(451),
            "4.3.0 try later",
        ),
        (
            "DATA",
            "450 4.7.1 greylisted",
            Code::DenySoft,
            Some(450),
            "4.7.1 greylisted",
        ),
        (
            "GREETING",
            "421 4.3.2 busy",
            Code::DenySoft,
            None,
            "4.3.2 busy",
        ),
    ];
    for (on, answer, action, code, text) in table {
        let (on_, answer_) = (on.to_string(), answer.to_string());
        let backend = FakeServer::default()
            .with_handler(move |_, line| line.starts_with(&on_).then(|| Action::reply(&answer_)))
            .start()
            .await
            .unwrap();
        let p = plugin(&ini_for(backend.addr.port(), ""));
        let mut conn = connection(&["<a@example.com>", "<b@example.com>"]);
        let out = queue(p.as_ref(), &mut conn).await;
        assert_eq!(out.action, *action, "{answer:?}: {out:?}");
        let m = out.msg.unwrap();
        assert_eq!(m.code, *code, "{m:?}");
        assert_eq!(m.joined(), *text);
    }
}

#[tokio::test]
async fn backend_down_is_a_fast_tempfail() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let p = plugin(&ini_for(port, ""));
    let start = Instant::now();
    let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::DenySoft);
    assert_eq!(
        msg_text(&out),
        "4.4.1 Upstream server unavailable, try again later"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn silent_backend_tempfails_within_timeout() {
    for silent_at in ["GREETING", "EHLO", "."] {
        let backend = FakeServer::default()
            .with_handler(move |_, line| line.starts_with(silent_at).then_some(Action::Silent))
            .start()
            .await
            .unwrap();
        let p = plugin(&format!(
            "host=127.0.0.1\nport={}\ntimeout=0.5\n",
            backend.addr.port()
        ));
        let start = Instant::now();
        let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
        assert_eq!(out.action, Code::DenySoft, "{silent_at}");
        assert_eq!(
            msg_text(&out),
            "4.4.2 Upstream server timed out, try again later"
        );
        assert!(start.elapsed() < Duration::from_secs(3), "{silent_at}");
    }
}

#[tokio::test]
async fn reset_mid_data_tempfails() {
    let backend = FakeServer::default()
        .with_handler(|_, line| (line == "DATA").then_some(Action::CloseMidData))
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    let mut conn = connection(&["<a@example.com>"]);
    if let Some(t) = conn.transaction.as_mut() {
        t.message.body = "0123456789abcdef\r\n".repeat(100_000).into_bytes();
    }
    let out = queue(p.as_ref(), &mut conn).await;
    assert_eq!(out.action, Code::DenySoft, "{out:?}");
    assert_eq!(
        msg_text(&out),
        "4.4.2 Upstream connection lost, try again later"
    );
}

#[tokio::test]
async fn envelope_is_pipelined_when_advertised() {
    // The backend answers MAIL only once the last RCPT has arrived: a client that
    // waited for the MAIL reply before sending RCPT would time out.
    let backend = FakeServer::default()
        .with_handler(|_, line| {
            if line.starts_with("MAIL") || line == "RCPT TO:<a@example.com>" {
                Some(Action::Silent)
            } else if line == "RCPT TO:<b@example.com>" {
                Some(Action::reply("250 2.1.0 Ok\n250 2.1.5 Ok\n250 2.1.5 Ok"))
            } else {
                None
            }
        })
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    let out = queue(
        p.as_ref(),
        &mut connection(&["<a@example.com>", "<b@example.com>"]),
    )
    .await;
    assert_eq!(out.action, Code::Accept, "{out:?}");
}

#[tokio::test]
async fn connection_is_reused_after_rset_unless_xclient_was_sent() {
    let backend = FakeServer::default().start().await.unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    for _ in 0..2 {
        let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
        assert_eq!(out.action, Code::Accept);
    }
    let s = backend.record.sessions();
    assert_eq!(s.len(), 1, "one connection for two messages");
    assert_eq!(
        s[0].lines,
        [
            "EHLO mx.test.local",
            "MAIL FROM:<sender@remote.org>",
            "RCPT TO:<a@example.com>",
            "DATA",
            "RSET",
            "MAIL FROM:<sender@remote.org>",
            "RCPT TO:<a@example.com>",
            "DATA",
        ]
    );
    assert_eq!(s[0].messages.len(), 2);

    let xbackend = FakeServer::default()
        .with_ehlo(&["XCLIENT ADDR"])
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(xbackend.addr.port(), ""));
    for _ in 0..2 {
        let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
        assert_eq!(out.action, Code::Accept);
    }
    let s = xbackend
        .record
        .wait_for(|s| s.len() == 2 && s.iter().all(|x| x.closed))
        .await;
    assert!(s.iter().all(|x| x.lines[1] == "XCLIENT ADDR=192.0.2.9"));
}

#[tokio::test]
async fn pooled_connection_failing_rset_is_replaced() {
    let backend = FakeServer::default()
        .with_handler(|_, line| (line == "RSET").then_some(Action::Close))
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    for _ in 0..2 {
        let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
        assert_eq!(out.action, Code::Accept, "{out:?}");
    }
    assert_eq!(backend.record.sessions().len(), 2);
}

#[tokio::test]
async fn starttls_to_the_backend() {
    let (server_tls, client_tls) = tls_pair("127.0.0.1");
    let backend = FakeServer::default()
        .with_ehlo(&["PIPELINING", "STARTTLS", "XCLIENT ADDR HELO"])
        .with_tls(server_tls)
        .start()
        .await
        .unwrap();
    let root = Root::new(&[(
        "smtp_forward.ini",
        &ini_for(backend.addr.port(), "enable_tls=true"),
    )]);
    let p = haraka_plugin_api::plugin("queue/smtp_forward", root.plugin_with_tls(client_tls));
    let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::Accept, "{out:?}");
    let s = &backend.record.wait_for(|s| s[0].closed).await[0];
    assert!(s.tls);
    assert_eq!(
        s.lines[..5],
        [
            "EHLO mx.test.local",
            "STARTTLS",
            "EHLO mx.test.local",
            "XCLIENT HELO=helo.example.org ADDR=192.0.2.9",
            "EHLO helo.example.org",
        ]
    );
    assert_eq!(String::from_utf8_lossy(&s.messages[0]), FORWARDED_BODY);

    // Without enable_tls no STARTTLS is sent.
    let plain = plugin(&ini_for(backend.addr.port(), ""));
    let out = queue(plain.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::Accept);
    assert!(
        !backend.record.sessions()[1]
            .lines
            .contains(&"STARTTLS".to_string())
    );

    // A certificate that does not verify is a tempfail, not a plaintext fallback.
    let (_, other_tls) = tls_pair("127.0.0.1");
    let p = haraka_plugin_api::plugin("queue/smtp_forward", root.plugin_with_tls(other_tls));
    let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::DenySoft);
    assert_eq!(
        msg_text(&out),
        "4.7.5 TLS to the upstream server failed, try again later"
    );
}

#[tokio::test]
async fn xclient_refusals_and_forward_off() {
    // A refused XCLIENT (5xx), with and without PIPELINING, defers the message and
    // nothing reaches the backend: forwarding without it would hand the message in
    // under the proxy's own address. A 4xx keeps its code and text.
    for (caps, answer, extra, action) in [
        (&["XCLIENT ADDR"][..], "550 5.7.0 no", "", Code::DenySoft),
        (
            &["PIPELINING", "XCLIENT ADDR"][..],
            "554 5.7.1 no",
            "",
            Code::DenySoft,
        ),
        (
            &["XCLIENT ADDR"][..],
            "421 4.7.0 try later",
            "",
            Code::DenySoft,
        ),
        (
            &["XCLIENT ADDR"][..],
            "550 5.7.0 no",
            "xclient_refused=continue",
            Code::Accept,
        ),
        (
            &["PIPELINING", "XCLIENT ADDR"][..],
            "554 5.7.1 no",
            "xclient_refused=continue",
            Code::Accept,
        ),
    ] {
        let backend = FakeServer::default()
            .with_ehlo(caps)
            .with_handler(move |_, l| l.starts_with("XCLIENT").then(|| Action::reply(answer)))
            .start()
            .await
            .unwrap();
        let p = plugin(&ini_for(backend.addr.port(), extra));
        let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
        assert_eq!(out.action, action, "{answer} {extra}: {out:?}");
        let sessions = if action == Code::Accept {
            // Accepted after the dot: every line is recorded (the connection is pooled).
            backend.record.sessions()
        } else {
            // Refused: the connection is dropped; wait for the backend to see it go.
            tokio::time::timeout(
                Duration::from_secs(5),
                backend.record.wait_for(|s| s[0].closed),
            )
            .await
            .unwrap()
        };
        let lines = &sessions[0].lines;
        if action == Code::Accept {
            // Opted in: carry on without XCLIENT (pipelined, the EHLO was answered).
            assert!(
                lines.contains(&"MAIL FROM:<sender@remote.org>".to_owned()),
                "{lines:?}"
            );
        } else {
            assert!(lines.iter().all(|l| !l.starts_with("MAIL")), "{lines:?}");
            let want = if answer.starts_with('4') {
                "4.7.0 try later"
            } else {
                "4.7.0 Upstream server refused XCLIENT, try again later"
            };
            assert_eq!(msg_text(&out), want);
        }
    }

    let backend = FakeServer::default()
        .with_ehlo(&["XCLIENT ADDR"])
        .start()
        .await
        .unwrap();
    let root = Root::new(&[
        ("smtp_forward.ini", &ini_for(backend.addr.port(), "")),
        ("xclient.ini", "forward=false\n"),
    ]);
    let out = queue(
        root.factory().as_ref(),
        &mut connection(&["<a@example.com>"]),
    )
    .await;
    assert_eq!(out.action, Code::Accept);
    assert_eq!(
        backend.record.sessions()[0].lines[1],
        "MAIL FROM:<sender@remote.org>"
    );
}

#[tokio::test]
async fn auth_plain_and_one_message_per_rcpt() {
    let backend = FakeServer::default()
        .with_handler(|_, l| l.starts_with("AUTH").then(|| Action::reply("235 2.7.0 ok")))
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(
        backend.addr.port(),
        "auth_type=plain\nauth_user=user1\nauth_pass=secret\none_message_per_rcpt=true",
    ));
    let out = queue(
        p.as_ref(),
        &mut connection(&["<a@example.com>", "<b@example.com>"]),
    )
    .await;
    assert_eq!(out.action, Code::Accept);
    assert_eq!(msg_text(&out), "2.0.0 Ok: queued as FAKE2");
    let s = &backend.record.sessions()[0];
    assert_eq!(
        s.lines[..9],
        [
            "EHLO mx.test.local",
            "AUTH PLAIN AHVzZXIxAHNlY3JldA==",
            "MAIL FROM:<sender@remote.org>",
            "RCPT TO:<a@example.com>",
            "DATA",
            "RSET",
            "MAIL FROM:<sender@remote.org>",
            "RCPT TO:<b@example.com>",
            "DATA",
        ]
    );
    assert_eq!(s.messages.len(), 2);

    // A refused AUTH is our configuration problem: tempfail, never a bounce.
    let refusing = FakeServer::default()
        .with_handler(|_, l| {
            l.starts_with("AUTH")
                .then(|| Action::reply("535 5.7.8 bad"))
        })
        .start()
        .await
        .unwrap();
    let p = plugin(&ini_for(refusing.addr.port(), "auth_user=u\nauth_pass=p"));
    let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::DenySoft);
    assert_eq!(
        msg_text(&out),
        "4.7.0 Upstream authentication failed, try again later"
    );
}

#[tokio::test]
async fn per_domain_route_picks_its_backend() {
    let main = FakeServer::default().start().await.unwrap();
    let special = FakeServer::default().start().await.unwrap();
    let ini = format!(
        "{}\n[example.net]\nhost=127.0.0.1\nport={}\n",
        ini_for(main.addr.port(), ""),
        special.addr.port()
    );
    let p = plugin(&ini);
    let out = queue(
        p.as_ref(),
        &mut connection(&["<x@Example.NET>", "<y@example.com>"]),
    )
    .await;
    assert_eq!(out.action, Code::Accept);
    assert_eq!(special.record.sessions().len(), 1);
    assert_eq!(main.record.sessions().len(), 0);
    let out = queue(
        p.as_ref(),
        &mut connection(&["<y@example.com>", "<x@example.net>"]),
    )
    .await;
    assert_eq!(out.action, Code::Accept);
    assert_eq!(main.record.sessions().len(), 1);
}

#[tokio::test]
async fn relayed_mail_is_left_to_outbound_unless_enabled() {
    let backend = FakeServer::default().start().await.unwrap();
    let p = plugin(&ini_for(backend.addr.port(), ""));
    let mut conn = connection(&["<a@example.com>"]);
    conn.set_connection_relaying(true);
    assert_eq!(queue(p.as_ref(), &mut conn).await.action, Code::Cont);

    let p = plugin(&ini_for(backend.addr.port(), "enable_outbound=true"));
    assert!(
        p.hooks()
            .iter()
            .any(|r| r.hook == haraka_plugin_api::Hook::QueueOutbound)
    );
    let out = p
        .hook(
            haraka_plugin_api::Hook::QueueOutbound,
            &mut conn,
            &haraka_plugin_api::HookArgs::None,
        )
        .await;
    assert_eq!(out.action, Code::Accept);
}

#[tokio::test]
async fn smtputf8_and_8bitmime_are_passed_on_when_offered() {
    let with_params = |rcpt: &str, params: &[(&str, Option<&str>)]| {
        let mut conn = connection(&[rcpt]);
        let txn = conn.transaction.as_mut().unwrap();
        txn.mail_params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect();
        conn
    };
    let utf8 = [("BODY", Some("8BITMIME")), ("SMTPUTF8", None)];
    type Params<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: [(&[&str], &str, Params<'_>, Option<&str>); 5] = [
        // Offered: both go on.
        (
            &["PIPELINING", "8BITMIME", "SMTPUTF8"],
            "<a@example.com>",
            &utf8,
            Some("MAIL FROM:<sender@remote.org> SMTPUTF8 BODY=8BITMIME"),
        ),
        // Not asked for: nothing added.
        (
            &["PIPELINING", "8BITMIME", "SMTPUTF8"],
            "<a@example.com>",
            &[("BODY", Some("7BIT"))],
            Some("MAIL FROM:<sender@remote.org>"),
        ),
        // 8BITMIME not offered: sent without it (as Haraka always does).
        (
            &["SMTPUTF8"],
            "<a@example.com>",
            &utf8,
            Some("MAIL FROM:<sender@remote.org> SMTPUTF8"),
        ),
        // SMTPUTF8 asked for but not offered: refused, nothing sent.
        (&["PIPELINING", "8BITMIME"], "<a@example.com>", &utf8, None),
        // A non-ASCII local part needs SMTPUTF8 even when the sender did not say so.
        (&["PIPELINING", "8BITMIME"], "<jörg@example.com>", &[], None),
    ];
    for (caps, rcpt, params, want) in cases {
        let backend = FakeServer::default().with_ehlo(caps).start().await.unwrap();
        let p = plugin(&ini_for(backend.addr.port(), ""));
        let out = queue(p.as_ref(), &mut with_params(rcpt, params)).await;
        let lines = &backend.record.sessions()[0].lines;
        match want {
            Some(mail) => {
                assert_eq!(out.action, Code::Accept, "{caps:?}: {out:?}");
                assert_eq!(lines[1], mail);
            }
            None => {
                assert_eq!(out.action, Code::Deny, "{caps:?} {rcpt}: {out:?}");
                assert_eq!(out.msg.as_ref().and_then(|m| m.code), Some(554));
                assert_eq!(
                    msg_text(&out),
                    "5.6.7 SMTPUTF8 is required, but the upstream server does not offer it"
                );
                assert!(lines.iter().all(|l| !l.starts_with("MAIL")), "{lines:?}");
            }
        }
    }
}
