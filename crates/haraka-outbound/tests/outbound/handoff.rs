//! A message queued here reaches its first attempt in memory; retries read the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::support::*;
use haraka_outbound::{Event, OutboundTls, StaticResolver};
use haraka_plugin_api::{Hook, OutboundQueue};
use haraka_queue::QueueStore;

fn delivered(e: &Event) -> bool {
    matches!(e, Event::Delivered { .. })
}

async fn counting_env(
    cfg: haraka_outbound::OutboundConfig,
    dns: StaticResolver,
) -> (Env, Arc<CountingStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::open(dir.path());
    let env = Env::with_store(
        cfg,
        dns,
        OutboundTls::default(),
        dir,
        store.clone() as Arc<dyn QueueStore>,
    )
    .await;
    (env, store)
}

fn dest(addr: &str) -> StaticResolver {
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip(addr));
    dns
}

#[tokio::test]
async fn the_first_attempt_uses_the_message_in_memory_and_a_retry_reads_the_file() {
    let full = Arc::new(AtomicBool::new(true));
    let script: Script = Arc::new(move |_, _, line: &str| {
        (line == "RCPT TO:<later@dest.test>" && full.swap(false, Ordering::SeqCst))
            .then(|| Act::Reply("452 4.2.2 mailbox full".into()))
    });
    let mx = FakeMx::start("127.0.30.2:0", script).await;
    let (mut env, store) = counting_env(config(mx.port()), dest("127.0.30.2")).await;

    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "first"))
        .await;
    env.event(delivered).await;
    assert_eq!(store.loads(), 0, "the file was read back");
    let msg = mx.wait_for(|d| d.messages().len() == 1).await.messages()[0].clone();
    assert!(msg.contains("\r\nSubject: first\r\n"), "{msg}");
    assert!(
        msg.ends_with("Hello.\r\n..leading dot line\r\nBye."),
        "{msg}"
    );

    env.out
        .enqueue(&conn(Some("u@sender.test"), &["later@dest.test"], "second"))
        .await;
    env.event(|e| matches!(e, Event::Deferred { .. })).await;
    assert_eq!(store.loads(), 0);
    assert_eq!(env.out.status().fresh_bytes, 0, "dropped after the attempt");

    env.out.retry_all_now();
    env.event(delivered).await;
    assert_eq!(store.loads(), 1, "the retry reads its file");
    let msgs = mx.wait_for(|d| d.messages().len() == 2).await.messages();
    assert!(msgs[1].contains("\r\nSubject: second\r\n"), "{}", msgs[1]);
    assert!(env.queue_files().is_empty());
}

#[tokio::test]
async fn beyond_the_budget_the_file_is_read() {
    let mx = FakeMx::plain("127.0.31.2:0").await;
    let mut cfg = config(mx.port());
    cfg.fresh_message_budget = 64;
    let (mut env, store) = counting_env(cfg, dest("127.0.31.2")).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "big"))
        .await;
    env.event(delivered).await;
    assert_eq!(store.loads(), 1);
    assert!(mx.rec.snapshot().messages()[0].contains("Subject: big"));
}

#[tokio::test]
async fn deliveries_split_from_one_message_share_one_copy() {
    let mx = FakeMx::plain("127.0.32.2:0").await;
    let dns = StaticResolver::new();
    for d in ["a.test", "b.test"] {
        dns.mx(d, 10, "mx.all.test");
    }
    dns.addr("mx.all.test", ip("127.0.32.2"));
    let mut cfg = config(mx.port());
    cfg.disabled = true;
    let (mut env, store) = counting_env(cfg, dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@a.test", "y@b.test"], "s"))
        .await;
    let files = env.queue_files();
    assert_eq!(files.len(), 2);
    let len = store.dir.load(&files[0]).unwrap().message.len();
    assert_eq!(env.out.status().fresh_bytes, len, "one copy for both");

    env.out.set_disabled(false);
    env.event(delivered).await;
    env.event(delivered).await;
    assert_eq!(store.loads(), 0);
    assert_eq!(env.out.status().fresh_bytes, 0);
    assert_eq!(mx.rec.snapshot().messages().len(), 2);
}

#[tokio::test]
async fn bounces_are_handed_over_too() {
    let script: Script = Arc::new(|_, _, line: &str| {
        (line == "RCPT TO:<x@dest.test>").then(|| Act::Reply("550 5.1.1 unknown".into()))
    });
    let mx = FakeMx::start("127.0.33.2:0", script).await;
    let dns = dest("127.0.33.2");
    dns.mx("sender.test", 10, "mx.dest.test");
    let (mut env, store) = counting_env(config(mx.port()), dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    env.event(|e| matches!(e, Event::Bounced { .. })).await;
    env.event(delivered).await;
    assert_eq!(store.loads(), 0);
    assert!(env.hooks.hooks_called().contains(&Hook::Bounce));
    let rec = mx.wait_for(|d| d.messages().len() == 1).await;
    assert!(rec.messages()[0].contains("Subject: failure notice"));
}
