use std::net::IpAddr;

use haraka_plugin_api::{
    Action, Address, ConnAction, Connection, Hello, HelloVerb, Hook, HookArgs, Local, Msg, MxHost,
    OutboundArgs, OutboundMail, Remote, Transaction,
};
use serde_json::json;

use super::*;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn connection() -> Connection {
    let ip: IpAddr = "192.0.2.7".parse().unwrap();
    let mut remote = Remote::new(ip, 40000);
    remote.host = Some("client.example".into());
    let local = Local {
        ip: "127.0.0.1".parse().unwrap(),
        port: 25,
        host: "mx.example".into(),
    };
    let mut conn = Connection::new("C-1".into(), remote, local);
    conn.hello = Some(Hello {
        verb: HelloVerb::Ehlo,
        host: "client.example".into(),
    });
    conn.esmtp = true;
    conn.capabilities = vec!["PIPELINING".into()];
    conn.notes.insert("seen".into(), json!(1));
    conn.results.add("dnsbl", "pass", "zen");
    conn.tran_count = 1;
    conn.set_connection_relaying(true);
    let mut t = Transaction::new("C-1.1".into());
    t.mail_from = Some(addr("Sender@Example.COM"));
    t.mail_params = vec![("SIZE".into(), Some("10".into())), ("BODY".into(), None)];
    t.rcpt_to = vec![addr("a@example.org"), addr("b@example.org")];
    t.relaying = Some(false);
    t.message.headers = vec![b"Subject: hi".to_vec(), b"X-Raw: \xff\xfe".to_vec()];
    t.message.body = b"body\r\n".to_vec();
    t.data_bytes = 42;
    t.skip_plugins = vec!["spf".into()];
    t.results.add("rcpt_allow", "pass", "a@example.org");
    conn.transaction = Some(t);
    conn
}

#[test]
fn a_connection_survives_the_round_trip() {
    let mut conn = connection();
    let request = encode_conn_request(&mut conn, &HookArgs::None);
    let Target::Conn { conn: mut back, .. } =
        decode_request(&request, b"body\r\n".to_vec()).unwrap()
    else {
        panic!("not a conn request")
    };
    assert_eq!(back.remote, conn.remote);
    assert_eq!(back.local, conn.local);
    assert_eq!(back.hello, conn.hello);
    assert_eq!(back.capabilities, conn.capabilities);
    assert_eq!(back.notes, conn.notes);
    assert_eq!(back.results, conn.results);
    assert_eq!(back.tran_count, 1);
    assert!(!back.relaying(), "the transaction's override wins");
    assert!(
        conn::connection_relaying(&mut back),
        "the connection flag survives"
    );
    let (t, u) = (
        conn.transaction.as_ref().unwrap(),
        back.transaction.as_ref().unwrap(),
    );
    assert_eq!(u.mail_from, t.mail_from);
    assert_eq!(u.mail_params, t.mail_params);
    assert_eq!(u.rcpt_to, t.rcpt_to);
    assert_eq!(u.message, t.message, "headers (even non-UTF-8) and body");
    assert_eq!(u.data_bytes, 42);
    assert_eq!(u.skip_plugins, t.skip_plugins);
    assert_eq!(u.results, t.results);
    // Encoding does not disturb the relaying override of the original.
    assert_eq!(conn.transaction.as_ref().unwrap().relaying, Some(false));
}

#[test]
fn every_hook_argument_survives_the_round_trip() {
    let table = vec![
        HookArgs::None,
        HookArgs::Hello("client.example".into()),
        HookArgs::Mail {
            from: None,
            params: vec![],
        },
        HookArgs::Mail {
            from: Some(addr("x@y.example")),
            params: vec![("SIZE".into(), Some("1".into()))],
        },
        HookArgs::Rcpt {
            to: addr("a@b.example"),
            params: vec![("NOTIFY".into(), None)],
        },
        HookArgs::Unrecognized {
            verb: "XFOO".into(),
            rest: "bar baz".into(),
        },
        HookArgs::QueueOk(Msg::text("queued as 1")),
        HookArgs::Deny {
            action: Action::DenySoft,
            msg: Some(Msg::dsn(451, "4.3.0", "later")),
            plugin: "p".into(),
            hook: Hook::Rcpt,
        },
        HookArgs::Ip("::1".parse().unwrap()),
    ];
    for args in table {
        assert_eq!(decode_args(&encode_args(&args)).unwrap(), args);
    }
}

#[test]
fn outbound_mail_and_arguments_survive_the_round_trip() {
    let mail = OutboundMail {
        id: "Q.1".into(),
        domain: "example.org".into(),
        mail_from: None,
        rcpt_to: vec![addr("a@example.org")],
        notes: serde_json::Map::new(),
        attempts: 2,
        mx: Some(vec![MxHost {
            exchange: "mx.example.org".into(),
            priority: 10,
            port: 2525,
            ip: Some("127.0.0.1".parse().unwrap()),
        }]),
    };
    let args = OutboundArgs::Delivered {
        host: "mx".into(),
        ip: "127.0.0.1".into(),
        port: 25,
        response: "250 ok".into(),
        ok_recips: vec![addr("a@example.org")],
        secured: true,
    };
    let Target::Mail {
        mail: back,
        args: a,
    } = decode_request(&encode_mail_request(&mail, &args), Vec::new()).unwrap()
    else {
        panic!("not a mail request")
    };
    assert_eq!(back.mx, mail.mx);
    assert_eq!(back.rcpt_to, mail.rcpt_to);
    assert_eq!(back.attempts, 2);
    assert!(matches!(
        a,
        OutboundArgs::Delivered {
            secured: true,
            port: 25,
            ..
        }
    ));
    for args in [
        OutboundArgs::None,
        OutboundArgs::GetMx { domain: "d".into() },
        OutboundArgs::Deferred {
            delay_secs: 60,
            err: "e".into(),
        },
        OutboundArgs::Bounce { err: "b".into() },
    ] {
        let text = format!("{args:?}");
        assert_eq!(
            format!(
                "{:?}",
                decode_outbound_args(&encode_outbound_args(&args)).unwrap()
            ),
            text
        );
    }
}

#[test]
fn edits_are_applied_and_identities_are_not() {
    let mut real = connection();
    let mut edited = connection();
    edited.uuid = "forged".into();
    edited.tran_count = 99;
    edited.notes.insert("added".into(), json!("yes"));
    edited.results.add("me", "fail", "nope");
    edited.capabilities.push("X-FOO".into());
    edited.set_connection_relaying(false);
    edited.request(ConnAction::Restart);
    let t = edited.transaction.as_mut().unwrap();
    t.uuid = "forged.1".into();
    t.message.headers.retain(|h| !h.starts_with(b"Subject"));
    t.message.headers.push(b"X-Added: 1".to_vec());
    t.rcpt_to.pop();
    t.relaying = None;
    let changes = encode_conn_changes(&mut edited);
    apply_conn_changes(&mut real, &changes, Some(b"new\r\n".to_vec())).unwrap();
    assert_eq!(real.uuid, "C-1");
    assert_eq!(real.tran_count, 1);
    assert_eq!(real.notes.get("added"), Some(&json!("yes")));
    assert!(real.results.has("me", "fail", "nope"));
    assert_eq!(
        real.capabilities,
        vec!["PIPELINING".to_owned(), "X-FOO".to_owned()]
    );
    assert!(!real.relaying());
    assert!(matches!(
        real.take_requests().as_slice(),
        [ConnAction::Restart]
    ));
    let t = real.transaction.as_ref().unwrap();
    assert_eq!(t.uuid, "C-1.1");
    assert_eq!(
        t.message.headers,
        vec![b"X-Raw: \xff\xfe".to_vec(), b"X-Added: 1".to_vec()]
    );
    assert_eq!(t.rcpt_to.len(), 1);
    assert_eq!(t.message.body, b"new\r\n");
}

#[test]
fn malformed_changes_change_nothing() {
    let table: Vec<&[u8]> = vec![
        b"not json",
        b"{}",
        br#"{"conn": {"uuid": "x"}}"#,
        br#"{"conn": {"uuid": "x", "remote": {"ip": "nope", "port": 1}}}"#,
    ];
    for bytes in table {
        let mut real = connection();
        let before = format!("{real:?}");
        assert!(
            apply_conn_changes(&mut real, bytes, None).is_err(),
            "{bytes:?}"
        );
        assert_eq!(format!("{real:?}"), before);
    }
    let mut outside = connection();
    outside.transaction = None;
    assert!(apply_conn_changes(&mut outside, b"", Some(vec![1])).is_err());
}

#[test]
fn a_c_plugin_may_write_addresses_as_text() {
    let v = json!({ "kind": "rcpt", "to": { "original": "Who@Where.Example" }, "params": [] });
    let HookArgs::Rcpt { to, .. } = decode_args(&v).unwrap() else {
        panic!("not rcpt")
    };
    assert_eq!(to.address(), "Who@where.example");
    assert!(decode_args(&json!({ "kind": "rcpt", "to": { "original": "no-at" } })).is_err());
}
