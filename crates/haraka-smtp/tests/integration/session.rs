//! Session API behaviour that transcripts do not show: which hooks run in which
//! order with which arguments, requests from plugins, memory bounds.

use std::net::IpAddr;
use std::sync::Arc;

use haraka_smtp::{
    Action, ConnAction, Connection, Env, Event, Hook, HookArgs, Local, Msg, Outcome, Remote,
    Session, SessionConfig, TlsInfo, TlsUpgrade,
};

struct FixedEnv;

impl Env for FixedEnv {
    fn date(&self) -> String {
        "Thu, 26 Nov 2026 15:51:23 +0000".to_owned()
    }
    fn new_uuid(&mut self) -> String {
        "11111111-1111-4111-8111-111111111111".to_owned()
    }
}

#[derive(Debug, PartialEq)]
enum Seen {
    Sent(String),
    Hook(Hook),
    Rdns,
    StartTls,
    Close,
}

type Answer = Box<dyn FnMut(Hook, &HookArgs, &mut Connection) -> Outcome>;

struct Harness {
    s: Session,
    seen: Vec<Seen>,
    args: Vec<(Hook, HookArgs)>,
    answer: Answer,
}

impl Harness {
    fn new(cfg: SessionConfig) -> Harness {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let conn = Connection::new(
            "CE8F089B-CD9D-4C31-8C7A-C9F0E0A61ED7".to_owned(),
            Remote::new(ip, 5555),
            Local {
                ip,
                port: 25,
                host: "mx".to_owned(),
            },
        );
        let cfg = SessionConfig {
            me: "mx".to_owned(),
            ..cfg
        };
        Harness {
            s: Session::new(conn, cfg, Box::new(FixedEnv)),
            seen: Vec::new(),
            args: Vec::new(),
            answer: Box::new(|h, _, _| match h {
                Hook::Rcpt | Hook::Queue => Outcome::accept(),
                _ => Outcome::cont(),
            }),
        }
    }

    fn drive(&mut self) {
        while let Some(ev) = self.s.poll() {
            match ev {
                Event::Send(b) => self.seen.push(Seen::Sent(String::from_utf8(b).unwrap())),
                Event::Hook { hook, args } => {
                    self.seen.push(Seen::Hook(hook));
                    let o = (self.answer)(hook, &args, self.s.conn_mut());
                    self.args.push((hook, args));
                    self.s.hook_done(o);
                }
                Event::ResolveRdns => {
                    self.seen.push(Seen::Rdns);
                    self.s.rdns_done(Ok("client.test".to_owned()));
                }
                Event::StartTls(_) => self.seen.push(Seen::StartTls),
                Event::Close => self.seen.push(Seen::Close),
            }
        }
    }

    fn start(&mut self) {
        self.s.start();
        self.drive();
        self.seen.clear();
        self.args.clear();
    }

    fn send(&mut self, input: &[u8]) {
        self.s.feed(input);
        self.drive();
    }

    fn take(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.seen)
    }
}

fn sent(s: &str) -> Seen {
    Seen::Sent(s.to_owned())
}

#[test]
fn connect_order() {
    let mut h = Harness::new(SessionConfig::default());
    h.s.start();
    h.drive();
    assert_eq!(
        h.take(),
        vec![
            Seen::Hook(Hook::ConnectInit),
            Seen::Hook(Hook::LookupRdns),
            Seen::Rdns,
            Seen::Hook(Hook::Connect),
            sent("220 mx ESMTP Haraka/3.0.0 ready\r\n"),
        ]
    );
    assert_eq!(h.s.conn().remote.host.as_deref(), Some("client.test"));
    assert_eq!(h.s.conn().remote.info.as_deref(), Some("client.test"));
}

#[test]
fn hook_args_and_resets() {
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    h.send(b"EHLO c.example\r\nMAIL FROM:<a@b.c> size=10 BODY=8BITMIME\r\nRCPT TO:<d@e.f> notify=never\r\n");
    let hooks: Vec<(Hook, HookArgs)> = std::mem::take(&mut h.args);
    assert_eq!(
        hooks[0],
        (Hook::Ehlo, HookArgs::Hello("c.example".to_owned()))
    );
    assert_eq!(hooks[1].0, Hook::Capabilities);
    match &hooks[2] {
        (
            Hook::Mail,
            HookArgs::Mail {
                from: Some(a),
                params,
            },
        ) => {
            assert_eq!(a.address(), "a@b.c");
            assert_eq!(params[0], ("SIZE".to_owned(), Some("10".to_owned())));
        }
        other => panic!("{other:?}"),
    }
    match &hooks[3] {
        (Hook::Rcpt, HookArgs::Rcpt { to, params }) => {
            assert_eq!(to.address(), "d@e.f");
            assert_eq!(params[0], ("NOTIFY".to_owned(), Some("never".to_owned())));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hooks[4].0, Hook::RcptOk);
    h.take();
    // RSET: the reply, then reset_transaction while the transaction still exists.
    h.answer = Box::new(|hook, _, conn| {
        if hook == Hook::ResetTransaction {
            assert!(conn.transaction.is_some());
        }
        Outcome::cont()
    });
    h.send(b"RSET\r\n");
    assert_eq!(
        h.take(),
        vec![
            Seen::Hook(Hook::Rset),
            sent("250 OK\r\n"),
            Seen::Hook(Hook::ResetTransaction)
        ]
    );
    assert!(h.s.conn().transaction.is_none());
    h.send(b"XYZZY plugh\r\n");
    assert_eq!(
        h.args.last().unwrap().1,
        HookArgs::Unrecognized {
            verb: "XYZZY".to_owned(),
            rest: "plugh".to_owned()
        }
    );
    assert_eq!(h.s.conn().errors, 1);
}

#[test]
fn quit_runs_disconnect_then_closes() {
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    h.send(b"HELO x\r\nMAIL FROM:<a@b.c>\r\nQUIT\r\nNOOP\r\n");
    let seen = h.take();
    let tail = &seen[seen.len() - 5..];
    assert_eq!(
        tail,
        [
            Seen::Hook(Hook::Quit),
            sent("221 mx closing connection. Have a jolly good day.\r\n"),
            Seen::Hook(Hook::ResetTransaction),
            Seen::Hook(Hook::Disconnect),
            Seen::Close,
        ]
    );
    assert!(h.s.is_closed());
    h.send(b"NOOP\r\n");
    assert!(h.take().is_empty());
}

#[test]
fn message_details() {
    let mut h = Harness::new(SessionConfig::default());
    h.answer = Box::new(|hook, args, conn| match hook {
        Hook::Rcpt => Outcome::accept(),
        Hook::Mail => {
            conn.set_relaying(true);
            conn.notes.insert(
                "authentication_results".to_owned(),
                serde_json::json!(["spf=pass"]),
            );
            Outcome::cont()
        }
        Hook::QueueOutbound => {
            let t = conn.transaction.as_ref().unwrap();
            // 29 header bytes, 2000 + CRLF + two folds of 3, the final `.\r\n`.
            assert_eq!(t.data_bytes, 29 + 2002 + 6 + 3);
            assert_eq!(
                t.notes.get("data_line_length_exceeded"),
                Some(&serde_json::Value::Bool(true))
            );
            let m = &t.message;
            assert_eq!(
                m.get_header("Authentication-Results"),
                vec!["mx;\tspf=pass"]
            );
            assert!(m.headers[0].starts_with(b"Authentication-Results: mx;\r\n\tspf=pass"));
            assert_eq!(m.get_header("Original-Authentication-Results"), vec!["old"]);
            assert!(m.get_header("Received")[0].starts_with("from x (client.test [127.0.0.1])"));
            Outcome::accept_with("2.0.0 queued as X")
        }
        Hook::QueueOk => {
            assert_eq!(
                *args,
                HookArgs::QueueOk(Msg::text(
                    "2.0.0 queued as X (CE8F089B-CD9D-4C31-8C7A-C9F0E0A61ED7.1)"
                ))
            );
            Outcome::cont()
        }
        _ => Outcome::cont(),
    });
    h.start();
    h.send(b"HELO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\n");
    h.take();
    let mut body = b"Authentication-Results: old\r\n".to_vec();
    body.extend_from_slice(&[b'x'; 2000]);
    body.extend_from_slice(b"\r\n.\r\n");
    h.send(&body);
    let seen = h.take();
    assert!(seen.contains(&Seen::Hook(Hook::QueueOutbound)), "{seen:?}");
    assert!(seen.contains(&sent(
        "250 2.0.0 queued as X (CE8F089B-CD9D-4C31-8C7A-C9F0E0A61ED7.1)\r\n"
    )));
    // The relaying set inside the transaction is gone with it.
    assert!(!h.s.conn().relaying());
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut h = Harness::new(SessionConfig::default());
    h.answer = Box::new(|hook, _, conn| {
        if hook == Hook::UnrecognizedCommand {
            conn.request(ConnAction::StartTls(TlsUpgrade(Arc::new(()))));
            return Outcome::accept_with(Msg {
                code: Some(220),
                lines: vec!["Go ahead.".to_owned()],
            });
        }
        Outcome::cont()
    });
    h.start();
    h.send(b"EHLO x\r\n");
    h.take();
    h.send(b"STARTTLS\r\nMAIL FROM:<evil@x.y>\r\n");
    assert_eq!(
        h.take(),
        vec![
            Seen::Hook(Hook::UnrecognizedCommand),
            sent("220 Go ahead.\r\n"),
            Seen::StartTls
        ]
    );
    assert_eq!(h.s.buffered(), 0);
    h.send(b"more plaintext before the handshake\r\n");
    assert!(h.take().is_empty());
    h.s.tls_done(TlsInfo {
        enabled: true,
        cipher: Some("TLS_AES_128_GCM_SHA256".to_owned()),
        ..TlsInfo::default()
    });
    h.drive();
    assert!(h.take().is_empty());
    assert!(h.s.conn().hello.is_none() && !h.s.conn().esmtp);
    h.send(b"MAIL FROM:<a@b.c>\r\n");
    assert_eq!(h.take(), vec![sent("503 Use EHLO/HELO before MAIL\r\n")]);
}

#[test]
fn tls_failure_closes_silently() {
    let mut h = Harness::new(SessionConfig::default());
    h.answer = Box::new(|hook, _, conn| {
        if hook == Hook::UnrecognizedCommand {
            conn.request(ConnAction::StartTls(TlsUpgrade(Arc::new(()))));
        }
        Outcome::new(Action::Accept, None)
    });
    h.start();
    h.send(b"STARTTLS\r\n");
    assert_eq!(
        h.take(),
        vec![Seen::Hook(Hook::UnrecognizedCommand), Seen::StartTls]
    );
    h.s.tls_failed();
    h.drive();
    assert_eq!(h.take(), vec![Seen::Hook(Hook::Disconnect), Seen::Close]);
}

#[test]
fn xclient_restart() {
    let mut h = Harness::new(SessionConfig::default());
    h.answer = Box::new(|hook, _, conn| {
        if hook == Hook::UnrecognizedCommand {
            conn.remote.ip = IpAddr::from([10, 1, 2, 3]);
            conn.remote.host = None;
            conn.hello = None;
            conn.request(ConnAction::Restart);
            return Outcome::accept();
        }
        Outcome::cont()
    });
    h.start();
    h.send(b"HELO x\r\nXCLIENT ADDR=10.1.2.3\r\n");
    let seen = h.take();
    assert_eq!(
        &seen[2..],
        [
            Seen::Hook(Hook::UnrecognizedCommand),
            Seen::Hook(Hook::LookupRdns),
            Seen::Rdns,
            Seen::Hook(Hook::Connect),
            sent("220 mx ESMTP Haraka/3.0.0 ready\r\n"),
        ]
    );
    assert_eq!(h.s.conn().uuid, "11111111-1111-4111-8111-111111111111");
    assert_eq!(h.s.conn().remote.host.as_deref(), Some("client.test"));
}

#[test]
fn peer_close_in_data() {
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    h.send(b"HELO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\npartial");
    h.take();
    h.s.peer_closed();
    h.drive();
    assert_eq!(
        h.take(),
        vec![
            Seen::Hook(Hook::ResetTransaction),
            Seen::Hook(Hook::Disconnect),
            Seen::Close
        ]
    );
}

#[test]
fn megabyte_without_lf() {
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    let chunk = [b'a'; 16 * 1024];
    for _ in 0..64 {
        h.s.feed(&chunk);
        assert!(h.s.buffered() <= 16 * 1024 + 512);
        h.drive();
        if h.s.is_closed() {
            break;
        }
    }
    assert_eq!(
        h.take(),
        vec![
            sent("521 Command line too long\r\n"),
            Seen::Hook(Hook::Disconnect),
            Seen::Close
        ]
    );
}

#[test]
fn pipelined_input_is_bounded() {
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    let many = b"NOOP\r\n".repeat(200_000);
    h.s.feed(&many);
    assert_eq!(h.s.buffered(), 0);
    h.drive();
    assert_eq!(
        h.take(),
        vec![
            sent("421 Too much pipelined input\r\n"),
            Seen::Hook(Hook::Disconnect),
            Seen::Close
        ]
    );
}

#[test]
fn early_talker_flag() {
    let mut h = Harness::new(SessionConfig::default());
    h.s.feed(b"EHLO x\r\n");
    h.s.start();
    h.drive();
    assert!(h.s.conn().early_talker);
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    h.send(b"EHLO x\r\n");
    h.send(b"MAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\n");
    assert!(!h.s.conn().early_talker);
}

#[test]
fn late_or_double_completion_is_ignored() {
    let mut h = Harness::new(SessionConfig::default());
    h.start();
    h.s.hook_done(Outcome::deny("nobody asked"));
    h.s.rdns_done(Ok("x".to_owned()));
    h.drive();
    assert!(h.take().is_empty());
    h.send(b"NOOP\r\n");
    assert_eq!(h.take(), vec![Seen::Hook(Hook::Noop), sent("250 OK\r\n")]);
}
