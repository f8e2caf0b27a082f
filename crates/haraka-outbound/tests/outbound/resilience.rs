//! Restart recovery, isolation of failures, and STARTTLS policy.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::support::*;
use haraka_client::testing::FakeServer;
use haraka_outbound::{Event, Outbound, OutboundTls, StaticResolver};
use haraka_plugin_api::{Hook, OutboundArgs, OutboundQueue, Outcome};
use haraka_queue::{QueueDir, QueueStore, Syncer};

fn delivered(e: &Event) -> bool {
    matches!(e, Event::Delivered { .. })
}

fn deferred(e: &Event) -> bool {
    matches!(e, Event::Deferred { .. })
}

/// A Haraka 3 queue file whose body is dot-stuffed on disk.
fn haraka_file(domain: &str) -> Vec<u8> {
    let json = format!(
        "\n{{\n\t\"queue_time\": 1795708856374,\n\t\"domain\": \"{domain}\",\n\t\"rcpt_to\": [{{\"original\": \"<h@{domain}>\", \"original_host\": \"{domain}\", \"host\": \"{domain}\", \"user\": \"h\"}}],\n\t\"mail_from\": {{\"original\": \"<u@sender.test>\", \"original_host\": \"sender.test\", \"host\": \"sender.test\", \"user\": \"u\"}},\n\t\"notes\": {{}},\n\t\"uuid\": \"OLD-HARAKA.1.1\",\n\t\"force_tls\": false\n}}\n"
    );
    let mut out = (json.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"Subject: from haraka\r\n\r\n..dotted\r\n");
    out
}

#[tokio::test]
async fn a_restart_recovers_and_delivers_the_queue() {
    let mx = FakeMx::plain("127.0.20.2:0").await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.20.2"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();

    // First run: delivery disabled, so the message stays queued.
    let mut cfg = config(mx.port());
    cfg.disabled = true;
    let first = Env::with(cfg, dns.clone(), OutboundTls::default(), dir).await;
    first
        .out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "kept"))
        .await;
    first.out.shutdown();
    let Env { dir, .. } = first;
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 1);

    // What a crash and a migration leave behind.
    std::fs::write(path.join("__tmp__.1_1_0_1_TMPTMP_1_h"), b"half").unwrap();
    std::fs::write(path.join("1_1_0_1_BADBAD_1_h"), b"not a queue file").unwrap();
    std::fs::write(
        path.join("1795708856374_1795708861425_1_28703_ZNqUCn_10_vm"),
        haraka_file("dest.test"),
    )
    .unwrap();

    let mut second = Env::with(config(mx.port()), dns, OutboundTls::default(), dir).await;
    let q = second
        .event(|e| matches!(e, Event::Quarantined { .. }))
        .await;
    assert!(matches!(&q, Event::Quarantined { file, .. } if file == "1_1_0_1_BADBAD_1_h"));
    second.event(delivered).await;
    second.event(delivered).await;
    let rec = mx.wait_for(|d| d.messages().len() == 2).await;
    let msgs = rec.messages();
    assert!(msgs.iter().any(|m| m.contains("Subject: kept")));
    assert!(
        msgs.iter()
            .any(|m| m.contains("Subject: from haraka\r\n\r\n..dotted")),
        "{msgs:?}"
    );
    assert_eq!(
        second.queue_files(),
        vec!["error.1_1_0_1_BADBAD_1_h".to_owned()]
    );
}

#[tokio::test]
async fn a_panicking_plugin_costs_only_its_own_message() {
    let mx = FakeMx::plain("127.0.21.2:0").await;
    let dns = StaticResolver::new();
    dns.mx("fine.test", 10, "mx.fine.test")
        .addr("mx.fine.test", ip("127.0.21.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    *env.hooks.panic_on.lock().unwrap() = Some("boom.test".into());
    env.out
        .enqueue(&conn(
            Some("u@sender.test"),
            &["x@boom.test", "y@fine.test"],
            "s",
        ))
        .await;
    let e = env.event(deferred).await;
    assert!(
        matches!(&e, Event::Deferred { err, .. } if err.starts_with("delivery task failed")),
        "{e:?}"
    );
    env.event(delivered).await;
    assert_eq!(env.out.status().scheduled, 1);
    let files = env.queue_files();
    assert_eq!(files.len(), 1);
    assert_eq!(
        haraka_queue::QueueName::parse(&files[0]).unwrap().attempts,
        1
    );

    // When its retries run out, the message is moved aside, not retried forever.
    env.out.retry_all_now();
    env.event(deferred).await;
    env.out.retry_all_now();
    let q = env.event(|e| matches!(e, Event::Quarantined { .. })).await;
    assert!(
        matches!(&q, Event::Quarantined { reason, .. } if reason.starts_with("delivery task failed"))
    );
    assert_eq!(env.out.status().scheduled, 0);
    assert!(env.queue_files()[0].starts_with("error."));
}

struct FailingDirSync;

impl Syncer for FailingDirSync {
    fn sync_file(&self, f: &File) -> std::io::Result<()> {
        f.sync_all()
    }
    fn sync_dir(&self, _: &Path) -> std::io::Result<()> {
        Err(std::io::Error::other("disk on fire"))
    }
}

#[tokio::test]
async fn a_queue_that_cannot_write_answers_a_temporary_error() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(QueueDir::open_with(dir.path(), "h".into(), Arc::new(FailingDirSync)).unwrap());
    let out = Outbound::builder(config(25), store as Arc<dyn QueueStore>)
        .resolver(Arc::new(StaticResolver::new()))
        .build()
        .unwrap();
    out.start().await.unwrap();
    let answer = out
        .enqueue(&conn(Some("u@sender.test"), &["x@a.test"], "s"))
        .await;
    // 451, as docs/compat.md says (the session's default for DENYSOFT is 450).
    assert_eq!(
        answer,
        Outcome::deny_soft(haraka_plugin_api::Msg {
            code: Some(451),
            lines: vec!["4.3.0 Queue error".into()],
        })
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn tls_server(name: &str) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    haraka_client::testing::tls_pair(name).unwrap()
}

#[tokio::test]
async fn opportunistic_tls_secures_the_session() {
    let (server_cfg, client_cfg) = tls_server("mx.tls.test");
    let server = FakeServer::default()
        .with_ehlo(&["PIPELINING", "STARTTLS"])
        .with_tls(server_cfg)
        .start()
        .await
        .unwrap();
    let tls = OutboundTls {
        config: Some(client_cfg),
        ..OutboundTls::default()
    };
    let mut env = Env::with(
        config(25),
        StaticResolver::new(),
        tls,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let mut host = mx_host("mx.tls.test", server.addr.port());
    host.ip = Some(server.addr.ip());
    env.hooks.route_to(vec![host]);
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@tls.test"], "s"))
        .await;
    env.event(delivered).await;
    let OutboundArgs::Delivered { secured, .. } = &env.hooks.args_of(Hook::Delivered)[0] else {
        panic!()
    };
    assert!(secured);
    let sessions = server.record.sessions();
    assert!(sessions[0].tls);
    assert_eq!(sessions[0].messages.len(), 1);
}

#[tokio::test]
async fn a_failed_handshake_is_retried_in_plaintext() {
    let mx = FakeMx::start(
        "127.0.22.2:0",
        Arc::new(|_, _, l: &str| match l {
            l if l.starts_with("EHLO") => reply("250-fake.test\r\n250-STARTTLS\r\n250 PIPELINING"),
            "STARTTLS" => Some(Act::ReplyClose("220 2.0.0 go ahead".into())),
            _ => None,
        }),
    )
    .await;
    let (_, client_cfg) = tls_server("mx.tls.test");
    let tls = OutboundTls {
        config: Some(client_cfg),
        ..OutboundTls::default()
    };
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.22.2"));
    let mut env = Env::with(config(mx.port()), dns, tls, tempfile::tempdir().unwrap()).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    env.event(delivered).await;
    let rec = mx.rec.snapshot();
    assert_eq!(rec.sessions.len(), 2);
    assert!(rec.sessions[0].lines.contains(&"STARTTLS".to_owned()));
    assert!(!rec.sessions[1].lines.contains(&"STARTTLS".to_owned()));
    assert_eq!(rec.sessions[1].messages.len(), 1);
}

#[tokio::test]
async fn forced_tls_needs_an_offer_and_a_valid_certificate() {
    // No STARTTLS offered.
    let plain = FakeMx::plain("127.0.23.2:0").await;
    // STARTTLS with a certificate for another name.
    let (wrong_cfg, wrong_client) = tls_server("other.test");
    let wrong = FakeServer::default()
        .with_ehlo(&["STARTTLS"])
        .with_tls(wrong_cfg)
        .start()
        .await
        .unwrap();
    let tls = OutboundTls {
        config: Some(wrong_client.clone()),
        verified: Some(wrong_client),
        force_tls_hosts: vec!["forced.test".into()],
        no_tls_hosts: Vec::new(),
    };
    let mut env = Env::with(
        config(25),
        StaticResolver::new(),
        tls,
        tempfile::tempdir().unwrap(),
    )
    .await;

    env.hooks
        .route_to(vec![mx_host("127.0.23.2", plain.port())]);
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@forced.test"], "s"))
        .await;
    let e = env.event(deferred).await;
    assert!(
        matches!(&e, Event::Deferred { err, .. } if err == "No TLS available but required by configuration."),
        "{e:?}"
    );
    assert!(
        plain
            .rec
            .snapshot()
            .lines()
            .iter()
            .all(|l| !l.starts_with("MAIL"))
    );

    let mut host = mx_host("mx.forced.test", wrong.addr.port());
    host.ip = Some(wrong.addr.ip());
    env.hooks.route_to(vec![host]);
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["y@forced.test"], "s"))
        .await;
    let e = env.event(deferred).await;
    assert!(
        matches!(&e, Event::Deferred { err, .. } if err == "Host failed TLS verification required by configuration."),
        "{e:?}"
    );
    assert!(
        wrong
            .record
            .sessions()
            .iter()
            .all(|s| s.messages.is_empty())
    );
}
