//! Configuration, hook registration, check_sender / check_recipient, get_mx.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use common::*;
use haraka_client::testing::FakeServer;
use haraka_plugin_api::{
    Action as Code, Hook, HookArgs, MxHost, Notes, OutboundArgs, OutboundMail, Plugin, PluginInit,
};
use haraka_plugin_queue_smtp_forward::{Selector, factory};
use serde_json::Value;

fn rcpt(p: &dyn Plugin, conn: &mut haraka_plugin_api::Connection, to: &str) -> Code {
    let args = HookArgs::Rcpt {
        to: addr(to),
        params: Vec::new(),
    };
    futures_block(p.hook(Hook::Rcpt, conn, &args)).action
}

fn futures_block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn defaults_and_every_key() {
    let cfg = Root::new(&[]).config();
    assert_eq!(cfg.main.host.as_deref(), Some("localhost"));
    assert_eq!(cfg.main.port, Some(2555));
    assert!(!cfg.enable_outbound && !cfg.check_sender && !cfg.check_recipient);
    assert!(!cfg.main.enable_tls && !cfg.one_message_per_rcpt);
    assert_eq!(cfg.selector, Selector::RcptTo);
    assert_eq!(cfg.connect_timeout.as_secs(), 10);
    assert_eq!(cfg.timeout.as_secs(), 25);
    assert_eq!(cfg.max_connections, 1000);
    assert!(cfg.forward_xclient);

    let cfg = Root::new(&[(
        "smtp_forward.ini",
        "host=10.0.0.2\nport=25\nenable_tls=true\nenable_outbound=true\n\
         one_message_per_rcpt=yes\ncheck_sender=true\ncheck_recipient=true\n\
         domain_selector=mail_from\nqueue=smtp_forward\nauth_type=LOGIN\nauth_user=u\n\
         auth_pass=p\nforwarding_host_pool=10.0.0.3:2525, 10.0.0.4\n\
         dead_forwarding_host_retry_secs=5\nconnect_timeout=3\ntimeout=7.5\n\
         max_connections=4\n[example.com]\nhost=10.0.0.5\nenable_outbound=false\n\
         bind=10.0.0.1\nbind_helo=out.example.com\nusing_lmtp=true\n",
    )])
    .config();
    assert_eq!(cfg.main.host.as_deref(), Some("10.0.0.2"));
    assert_eq!(cfg.main.port, Some(25));
    assert!(cfg.main.enable_tls && cfg.enable_outbound && cfg.one_message_per_rcpt);
    assert!(cfg.check_sender && cfg.check_recipient);
    assert_eq!(cfg.selector, Selector::MailFrom);
    assert_eq!(cfg.main.queue.as_deref(), Some("smtp_forward"));
    let auth = cfg.main.auth.as_ref().unwrap();
    assert_eq!(auth.mechanism, haraka_client::AuthMechanism::Login);
    assert_eq!((auth.user.as_str(), auth.pass.as_str()), ("u", "p"));
    assert_eq!(
        cfg.host_pool,
        [("10.0.0.3".to_string(), 2525), ("10.0.0.4".to_string(), 25)]
    );
    assert_eq!(cfg.dead_host_retry.as_secs(), 5);
    assert_eq!(cfg.connect_timeout.as_secs(), 3);
    assert_eq!(cfg.timeout.as_millis(), 7500);
    assert_eq!(cfg.max_connections, 4);
    let dom = cfg.domain("example.com").unwrap();
    assert_eq!(dom.host.as_deref(), Some("10.0.0.5"));
    assert_eq!(dom.enable_outbound, Some(false));
    assert!(!dom.enable_tls, "a section does not inherit enable_tls");
    assert_eq!(dom.bind.as_deref(), Some("10.0.0.1"));
    assert_eq!(dom.bind_helo.as_deref(), Some("out.example.com"));
    assert!(dom.using_lmtp);
    assert_eq!(cfg.port_of(dom), 25, "port from [main]");
}

#[test]
fn invalid_values_are_startup_errors_with_file_and_line() {
    let root = Root::new(&[(
        "smtp_forward.ini",
        "port=none\nauth_type=cram-md5\nauth_user=u\ndomain_selector=x\ntimeout=-1\n\
         max_connections=0\nforwarding_host_pool=h:0\nxclient_refused=maybe\n",
    )]);
    let dir = root.config_dir();
    let init = PluginInit {
        name: "queue/smtp_forward",
        config: &dir,
    };
    let err = factory(&init)
        .err()
        .expect("invalid config refused")
        .to_string();
    for want in [
        "smtp_forward.ini:1: [main] port",
        ":2: [main] auth_type",
        ":4: [main] domain_selector",
        ":5: [main] timeout",
        ":6: [main] max_connections",
        ":7: [main] forwarding_host_pool",
        ":8: [main] xclient_refused",
    ] {
        assert!(err.contains(want), "{want} missing in:\n{err}");
    }
}

#[test]
fn hooks_follow_the_flags() {
    let hooks = |ini: &str| -> Vec<Hook> { plugin(ini).hooks().iter().map(|r| r.hook).collect() };
    assert_eq!(
        hooks(""),
        [Hook::RcptOk, Hook::Queue, Hook::GetMx, Hook::Disconnect]
    );
    assert_eq!(
        hooks("check_sender=true\ncheck_recipient=true\nenable_outbound=true"),
        [
            Hook::Mail,
            Hook::Rcpt,
            Hook::RcptOk,
            Hook::Queue,
            Hook::QueueOutbound,
            Hook::GetMx,
            Hook::Disconnect
        ]
    );
    assert_eq!(plugin("").name(), "queue/smtp_forward");
}

#[test]
fn check_recipient_splits_routes() {
    let p = plugin(
        "check_recipient=true\n[example.com]\nhost=127.0.0.1\n[other.org]\nhost=127.0.0.2\n",
    );
    let mut conn = connection(&[]);
    assert_eq!(rcpt(p.as_ref(), &mut conn, "<a@example.com>"), Code::Accept);
    let args = HookArgs::Rcpt {
        to: addr("<b@other.org>"),
        params: Vec::new(),
    };
    let out = futures_block(p.hook(Hook::Rcpt, &mut conn, &args));
    assert_eq!(out.action, Code::DenySoft);
    assert_eq!(out.msg.unwrap().joined(), "Split transaction, retry soon");
    assert_eq!(rcpt(p.as_ref(), &mut conn, "<c@unlisted.net>"), Code::Cont);
    assert_eq!(rcpt(p.as_ref(), &mut conn, "<d@EXAMPLE.com>"), Code::Accept);
    let notes = &conn.transaction.as_ref().unwrap().notes;
    assert_eq!(notes["queue"]["wants"], "smtp_forward");
    assert_eq!(notes["queue"]["next_hop"], "smtp://127.0.0.1");

    // A relaying client with a local sender goes to outbound.
    let mut conn = connection(&[]);
    conn.set_connection_relaying(true);
    if let Some(t) = conn.transaction.as_mut() {
        t.notes.insert("local_sender".into(), Value::Bool(true));
    }
    assert_eq!(
        rcpt(p.as_ref(), &mut conn, "<x@anywhere.test>"),
        Code::Accept
    );
    assert_eq!(
        conn.transaction.unwrap().notes["queue"]["wants"],
        "outbound"
    );
}

#[test]
fn check_sender_refuses_spoofed_local_senders() {
    let p = plugin("check_sender=true\n[example.com]\nhost=127.0.0.1\n");
    let mail = |from: Option<&str>| HookArgs::Mail {
        from: from.map(addr),
        params: Vec::new(),
    };
    let mut conn = connection(&[]);
    let out = futures_block(p.hook(Hook::Mail, &mut conn, &mail(Some("<me@example.com>"))));
    assert_eq!(out.action, Code::Deny);
    assert_eq!(out.msg.unwrap().joined(), "Spoofed MAIL FROM");
    assert_eq!(
        conn.transaction.as_ref().unwrap().notes["local_sender"],
        true
    );

    conn.set_connection_relaying(true);
    let out = futures_block(p.hook(Hook::Mail, &mut conn, &mail(Some("<me@example.com>"))));
    assert_eq!(out.action, Code::Cont);
    for from in [None, Some("<x@elsewhere.org>")] {
        let mut conn = connection(&[]);
        let out = futures_block(p.hook(Hook::Mail, &mut conn, &mail(from)));
        assert_eq!(out.action, Code::Cont, "{from:?}");
    }
}

fn hmail(domain: &str, notes: Notes) -> OutboundMail {
    OutboundMail {
        id: "Q1".into(),
        domain: domain.into(),
        mail_from: Some(addr("<s@sender.org>")),
        rcpt_to: vec![addr(&format!("<r@{domain}>"))],
        notes,
        attempts: 0,
        mx: None,
    }
}

#[test]
fn get_mx_routes_configured_domains() {
    let p = plugin(
        "host=10.0.0.2\nport=2525\n[example.com]\nbind=10.0.0.1\n[example.net]\nhost=10.0.0.9\nport=26\n",
    );
    let run = |mail: &mut OutboundMail| {
        let args = OutboundArgs::GetMx {
            domain: mail.domain.clone(),
        };
        futures_block(p.outbound_hook(Hook::GetMx, mail, &args)).action
    };
    let mx = |exchange: &str, port: u16| {
        Some(vec![MxHost {
            exchange: exchange.into(),
            priority: 0,
            port,
            ip: None,
        }])
    };
    let mut m = hmail("example.com", Notes::new());
    assert_eq!(run(&mut m), Code::Accept);
    assert_eq!(m.mx, mx("10.0.0.2", 2525));
    assert_eq!(m.notes["outbound_ip"], "10.0.0.1");
    let mut m = hmail("Example.NET", Notes::new());
    assert_eq!(run(&mut m), Code::Accept);
    assert_eq!(m.mx, mx("10.0.0.9", 26));
    let mut m = hmail("elsewhere.org", Notes::new());
    assert_eq!(run(&mut m), Code::Cont);
    assert_eq!(m.mx, None);
    let mut notes = Notes::new();
    notes.insert("next_hop".into(), Value::from("smtp://relay.test:587"));
    let mut m = hmail("elsewhere.org", notes);
    assert_eq!(run(&mut m), Code::Accept);
    assert_eq!(m.mx, mx("relay.test", 587));
}

#[tokio::test]
async fn flat_xclient_destination_supplies_host_and_port() {
    let backend = FakeServer::default().start().await.unwrap();
    let root = Root::new(&[(
        "xclient.ini",
        &format!(
            "enabled=true\nforward=true\ndestination=127.0.0.1:{}\n",
            backend.addr.port()
        ),
    )]);
    let p = root.factory();
    let out = queue(p.as_ref(), &mut connection(&["<a@example.com>"])).await;
    assert_eq!(out.action, Code::Accept, "{out:?}");
    assert_eq!(backend.record.sessions().len(), 1);
}
