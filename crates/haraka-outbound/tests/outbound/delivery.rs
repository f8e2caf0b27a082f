//! The engine against fake MX servers on loopback addresses.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::*;
use haraka_outbound::{Event, RetrySchedule, StaticResolver};
use haraka_plugin_api::{Action, Hook, OutboundArgs, OutboundQueue, Outcome};

fn delivered(e: &Event) -> bool {
    matches!(e, Event::Delivered { .. })
}

#[tokio::test]
async fn delivers_through_dns_mx_and_adds_headers() {
    let mx = FakeMx::plain("127.0.1.2:0").await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.1.2"));
    let mut env = Env::new(config(mx.port()), dns).await;

    let c = conn(Some("u@sender.test"), &["x@dest.test", "y@DEST.test"], "hi");
    let out = env.out.enqueue(&c).await;
    assert_eq!(out, Outcome::accept_with("Message Queued"));
    assert_eq!(env.queue_files().len(), 1, "one delivery per domain");

    env.event(delivered).await;
    let rec = mx.wait_for(|d| d.sessions.iter().any(|s| s.closed)).await;
    let lines = rec.lines();
    assert_eq!(lines[0], "EHLO relay.test");
    assert!(lines.contains(&"MAIL FROM:<u@sender.test>".to_owned()));
    assert!(lines.contains(&"RCPT TO:<x@dest.test>".to_owned()));
    assert!(lines.contains(&"RCPT TO:<y@dest.test>".to_owned()));
    assert_eq!(lines.last().unwrap(), "QUIT");
    let msg = &rec.messages()[0];
    assert!(msg.starts_with("Received: (Haraka outbound); "), "{msg}");
    assert!(msg.contains("\r\nReceived: from client by relay.test\r\n"));
    let tuuid = &c.transaction.as_ref().unwrap().uuid;
    assert!(
        msg.contains(&format!("\r\nMessage-Id: <{tuuid}@relay.test>\r\n")),
        "{msg}"
    );
    assert!(msg.contains("\r\nDate: "));
    assert!(
        msg.contains("\r\n..leading dot line\r\n"),
        "dot-stuffed on the wire"
    );
    assert!(env.queue_files().is_empty());
    assert_eq!(
        env.hooks.hooks_called(),
        vec![
            Hook::PreSendTransEmail,
            Hook::SendEmail,
            Hook::GetMx,
            Hook::Delivered
        ]
    );
    let OutboundArgs::Delivered {
        host,
        ip: addr,
        ok_recips,
        secured,
        ..
    } = &env.hooks.args_of(Hook::Delivered)[0]
    else {
        panic!("no delivered args");
    };
    assert_eq!(
        (host.as_str(), addr.as_str()),
        ("mx.dest.test", "127.0.1.2")
    );
    assert_eq!(ok_recips.len(), 2);
    assert!(!secured);
}

#[tokio::test]
async fn falls_back_across_hosts_and_addresses() {
    let good = FakeMx::plain("127.0.2.3:0").await;
    let port = good.port();
    let dns = StaticResolver::new();
    // The preferred MX has two addresses where nothing listens.
    dns.mx("dest.test", 10, "a.dest.test")
        .mx("dest.test", 20, "b.dest.test")
        .addr("a.dest.test", ip("127.0.2.8"))
        .addr("a.dest.test", ip("127.0.2.9"))
        .addr("b.dest.test", ip("127.0.2.3"));
    let mut env = Env::new(config(port), dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    let e = env.event(delivered).await;
    assert!(matches!(e, Event::Delivered { host, .. } if host == "b.dest.test"));
}

#[tokio::test]
async fn null_mx_bounces_without_any_attempt() {
    let sender_mx = FakeMx::plain("127.0.3.2:0").await;
    let dns = StaticResolver::new();
    dns.mx("null.test", 0, ".");
    dns.mx("sender.test", 10, "mx.sender.test")
        .addr("mx.sender.test", ip("127.0.3.2"));
    let mut env = Env::new(config(sender_mx.port()), dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@null.test"], "nullmx"))
        .await;
    let e = env.event(|e| matches!(e, Event::Bounced { .. })).await;
    assert!(
        matches!(&e, Event::Bounced { err, .. } if err == "Domain null.test sends and receives no email (NULL MX)"),
        "{e:?}"
    );
    env.event(delivered).await;
    let rec = sender_mx.wait_for(|d| !d.messages().is_empty()).await;
    assert_eq!(rec.sessions.len(), 1, "only the bounce was sent");
    let lines = rec.lines();
    assert!(lines.contains(&"MAIL FROM:<>".to_owned()), "{lines:?}");
    assert!(lines.contains(&"RCPT TO:<u@sender.test>".to_owned()));
    let bounce = &rec.messages()[0];
    assert!(bounce.contains("\r\nTo: <u@sender.test>\r\n"), "{bounce}");
    assert!(
        bounce
            .contains("Status: 5.1.2 (550 Domain null.test sends and receives no email (NULL MX))")
    );
    assert!(bounce.contains("Subject: nullmx"));
}

#[tokio::test]
async fn rcpt_5xx_bounces_to_the_sender_s_mx() {
    let script: Script = Arc::new(|_, _, line: &str| {
        (line == "RCPT TO:<x@dest.test>")
            .then(|| Act::Reply("550 5.1.1 <x@dest.test>: User unknown".into()))
    });
    let dest = FakeMx::start("127.0.4.2:0", script).await;
    let sender_mx = FakeMx::plain(&format!("127.0.4.3:{}", dest.port())).await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.4.2"));
    dns.mx("sender.test", 10, "mx.sender.test")
        .addr("mx.sender.test", ip("127.0.4.3"));
    let mut env = Env::new(config(dest.port()), dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "bye"))
        .await;
    let e = env.event(|e| matches!(e, Event::Bounced { .. })).await;
    assert!(
        matches!(&e, Event::Bounced { err, .. } if err == "Some recipients failed: <x@dest.test>")
    );
    let rec = sender_mx.wait_for(|d| !d.messages().is_empty()).await;
    let bounce = &rec.messages()[0];
    for want in [
        "From: MAILER-DAEMON@relay.test\r\n",
        "Subject: failure notice\r\n",
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Final-Recipient: rfc822;x@dest.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: mx.dest.test\r\nDiagnostic-Code: smtp;550 5.1.1 <x@dest.test>: User unknown \r\n",
        "<x@dest.test>: 550 5.1.1 <x@dest.test>: User unknown",
    ] {
        assert!(bounce.contains(want), "missing {want:?}:\n{bounce}");
    }
    let dest_rec = dest.rec.snapshot();
    assert!(
        dest_rec.messages().is_empty(),
        "no DATA without an accepted recipient"
    );
    // Both the original and the bounce are gone from the queue once delivered.
    env.event(delivered).await;
    assert!(env.hooks.hooks_called().contains(&Hook::Bounce));
}

#[tokio::test]
async fn temp_failure_is_deferred_then_retried_now() {
    let script: Script = Arc::new(|session, _, line: &str| {
        (session == 0 && line.starts_with("RCPT")).then(|| Act::Reply("451 4.7.1 try later".into()))
    });
    let mx = FakeMx::start("127.0.5.2:0", script).await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.5.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    let e = env.event(|e| matches!(e, Event::Deferred { .. })).await;
    let Event::Deferred {
        attempts,
        err,
        next_attempt,
        ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(attempts, 1);
    assert_eq!(err, "Some recipients temp failed: <x@dest.test>");
    assert!(next_attempt > haraka_queue::now_ms() + 3_000_000);
    let files = env.queue_files();
    assert_eq!(files.len(), 1);
    assert_eq!(
        haraka_queue::QueueName::parse(&files[0]).unwrap().attempts,
        1
    );
    let OutboundArgs::Deferred { delay_secs, .. } = &env.hooks.args_of(Hook::Deferred)[0] else {
        panic!()
    };
    assert_eq!(*delay_secs, 3600);
    assert_eq!(env.out.status().scheduled, 1);

    // A queue tool renames the file behind the engine's back; the engine finds it.
    assert_eq!(
        haraka_queue::cli::retry_now(env.dir.path(), None).unwrap(),
        1
    );
    assert_ne!(env.queue_files(), files);
    env.out.retry_all_now();
    env.event(delivered).await;
    assert!(env.queue_files().is_empty());
    assert_eq!(mx.rec.snapshot().sessions.len(), 2);
}

#[tokio::test]
async fn retries_run_out_then_the_sender_gets_a_bounce() {
    let script: Script = Arc::new(|_, _, line: &str| {
        (line == "RCPT TO:<x@dest.test>").then(|| Act::Reply("451 4.7.1 greylisted".into()))
    });
    let mx = FakeMx::start("127.0.6.2:0", script).await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.6.2"));
    dns.mx("sender.test", 10, "mx.dest.test");
    let mut cfg = config(mx.port());
    cfg.temp_fail_intervals = RetrySchedule::new(vec![Duration::from_millis(20); 2]);
    let mut env = Env::new(cfg, dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    let e = env.event(|e| matches!(e, Event::Bounced { .. })).await;
    assert!(
        matches!(&e, Event::Bounced { err, .. } if err == "Too many failures (Some recipients temp failed: <x@dest.test>)"),
        "{e:?}"
    );
    env.event(delivered).await;
    let rec = mx.wait_for(|d| !d.messages().is_empty()).await;
    assert_eq!(rec.sessions.len(), 4, "three attempts, then the bounce");
    let bounce = &rec.messages()[0];
    assert!(
        bounce.contains("Action: failed\r\nStatus: 5.7.1\r\n"),
        "{bounce}"
    );
    assert_eq!(env.hooks.args_of(Hook::Deferred).len(), 2);
}

#[tokio::test]
async fn a_null_sender_is_never_bounced() {
    let script: Script = Arc::new(|_, _, line: &str| {
        line.starts_with("RCPT")
            .then(|| Act::Reply("550 5.1.1 no such user".into()))
    });
    let mx = FakeMx::start("127.0.7.2:0", script).await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.7.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    env.out.enqueue(&conn(None, &["x@dest.test"], "s")).await;
    env.event(|e| matches!(e, Event::DoubleBounce { .. })).await;
    let rec = mx
        .wait_for(|d| d.sessions.iter().all(|s| s.closed) && !d.sessions.is_empty())
        .await;
    assert_eq!(rec.sessions.len(), 1);
    assert!(rec.lines().contains(&"MAIL FROM:<>".to_owned()));
    assert!(env.queue_files().is_empty());
}

#[tokio::test]
async fn partial_failures_split_the_recipients() {
    let full = Arc::new(AtomicBool::new(true));
    let script: Script = Arc::new(move |_, _, line: &str| match line {
        "RCPT TO:<soft@dest.test>" if full.swap(false, Ordering::SeqCst) => {
            reply("452 4.2.2 mailbox full")
        }
        "RCPT TO:<hard@dest.test>" => reply("550 5.1.1 unknown"),
        _ => None,
    });
    let mx = FakeMx::start("127.0.8.2:0", script).await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.8.2"));
    dns.mx("sender.test", 10, "mx.dest.test");
    let mut env = Env::new(config(mx.port()), dns).await;
    let c = conn(
        Some("u@sender.test"),
        &["ok@dest.test", "soft@dest.test", "hard@dest.test"],
        "s",
    );
    env.out.enqueue(&c).await;
    env.event(delivered).await;
    env.event(|e| matches!(e, Event::Deferred { .. })).await;
    env.event(|e| matches!(e, Event::Bounced { err, .. } if err == "Some recipients failed: <hard@dest.test>")).await;
    // The bounce to the sender and the deferred split remain; the original is gone.
    env.event(delivered).await;
    let files = env.queue_files();
    assert_eq!(files.len(), 1, "{files:?}");
    let left = haraka_queue::cli::inspect(env.dir.path(), &files[0]).unwrap();
    assert!(left.contains("rcpt: <soft@dest.test>\n"), "{left}");
    assert!(!left.contains("ok@dest.test"));
    env.out.retry_all_now();
    env.event(delivered).await;
    assert!(env.queue_files().is_empty());
}

#[tokio::test]
async fn get_mx_hook_routes_or_denies() {
    let mx = FakeMx::plain("127.0.9.2:0").await;
    let dns = StaticResolver::new();
    dns.mx("sender.test", 10, "127.0.9.2");
    let mut env = Env::new(config(mx.port()), dns).await;
    env.hooks.route_to(vec![mx_host("127.0.9.2", mx.port())]);
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@nodns.test"], "s"))
        .await;
    let e = env.event(delivered).await;
    assert!(matches!(e, Event::Delivered { host, .. } if host == "127.0.9.2"));

    *env.hooks.mx.lock().unwrap() = None;
    env.hooks.answer(Hook::GetMx, Outcome::deny("no"));
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@denied.test"], "s"))
        .await;
    let e = env.event(|e| matches!(e, Event::Bounced { .. })).await;
    assert!(
        matches!(&e, Event::Bounced { err, .. } if err == "No MX for denied.test"),
        "{e:?}"
    );

    // get_mx answering OK with "host:port" text.
    env.hooks.answer(
        Hook::GetMx,
        Outcome::accept_with(format!("127.0.9.2:{}", mx.port())),
    );
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@text.test"], "s"))
        .await;
    env.event(delivered).await;
}

#[tokio::test]
async fn dns_failure_defers_only_that_message() {
    let mx = FakeMx::plain("127.0.10.2:0").await;
    let dns = StaticResolver::new();
    dns.fail("broken.test");
    dns.mx("fine.test", 10, "mx.fine.test")
        .addr("mx.fine.test", ip("127.0.10.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    env.out
        .enqueue(&conn(
            Some("u@sender.test"),
            &["x@broken.test", "y@fine.test"],
            "s",
        ))
        .await;
    let e = env.event(|e| matches!(e, Event::Deferred { .. })).await;
    assert!(
        matches!(&e, Event::Deferred { err, .. } if err.starts_with("DNS lookup failure")),
        "{e:?}"
    );
    env.event(delivered).await;
    assert_eq!(env.queue_files().len(), 1);
}

#[tokio::test]
async fn send_email_delay_and_deferred_drop() {
    let mx = FakeMx::start(
        "127.0.11.2:0",
        Arc::new(|_, _, l: &str| {
            l.starts_with("MAIL")
                .then(|| Act::Reply("421 4.3.2 busy".into()))
        }),
    )
    .await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.11.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    env.hooks.answer(
        Hook::SendEmail,
        Outcome::new(Action::Delay, Some("300".into())),
    );
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    let e = env.event(|e| matches!(e, Event::Deferred { .. })).await;
    assert!(
        matches!(e, Event::Deferred { attempts: 0, .. }),
        "DELAY is not a failure"
    );
    assert!(mx.rec.snapshot().sessions.is_empty());

    env.hooks.answer(Hook::SendEmail, Outcome::cont());
    env.hooks.answer(Hook::Deferred, Outcome::accept());
    env.out.retry_all_now();
    let e = env.event(|e| matches!(e, Event::Dropped { .. })).await;
    assert!(
        matches!(&e, Event::Dropped { reason, .. } if reason.contains("OK")),
        "{e:?}"
    );
    let OutboundArgs::Deferred { err, .. } = &env.hooks.args_of(Hook::Deferred)[0] else {
        panic!()
    };
    assert_eq!(err, "Upstream error: 421 4.3.2 busy");
    assert!(env.queue_files().is_empty());
}

#[tokio::test]
async fn garbage_replies_bounce_and_greeting_4xx_defers() {
    let mx = FakeMx::start(
        "127.0.12.2:0",
        Arc::new(|session, _, l: &str| match (session, l) {
            (0, l) if l.starts_with("MAIL") => reply("hello there"),
            (1, "GREETING") => reply("421 4.3.2 go away"),
            _ => None,
        }),
    )
    .await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.12.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    env.out.enqueue(&conn(None, &["x@dest.test"], "s")).await;
    let e = env.event(|e| matches!(e, Event::DoubleBounce { .. })).await;
    assert!(
        matches!(&e, Event::DoubleBounce { err, .. } if err.starts_with("Unrecognized response from upstream server")),
        "{e:?}"
    );
    env.out.enqueue(&conn(None, &["y@dest.test"], "s")).await;
    let e = env.event(|e| matches!(e, Event::Deferred { .. })).await;
    assert!(
        matches!(&e, Event::Deferred { err, .. } if err == "Upstream error: 421 4.3.2 go away"),
        "{e:?}"
    );
}

#[tokio::test]
async fn concurrency_max_limits_parallel_deliveries() {
    let mx = FakeMx::plain("127.0.13.2:0").await;
    let dns = StaticResolver::new();
    for d in ["a.test", "b.test", "c.test", "d.test"] {
        dns.mx(d, 10, "mx.all.test");
    }
    dns.addr("mx.all.test", ip("127.0.13.2"));
    let mut cfg = config(mx.port());
    cfg.concurrency_max = 1;
    let mut env = Env::new(cfg, dns).await;
    let c = conn(
        Some("u@sender.test"),
        &["x@a.test", "x@b.test", "x@c.test", "x@d.test"],
        "s",
    );
    env.out.enqueue(&c).await;
    for _ in 0..4 {
        env.event(delivered).await;
    }
    let rec = mx.rec.snapshot();
    assert_eq!(rec.max_active, 1);
    assert_eq!(rec.messages().len(), 4);
    assert_eq!(rec.sessions.len(), 1, "one connection carried them in turn");
}

#[tokio::test]
async fn always_split_makes_one_delivery_per_recipient() {
    let mx = FakeMx::plain("127.0.14.2:0").await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.14.2"));
    let mut cfg = config(mx.port());
    cfg.always_split = true;
    cfg.disabled = true;
    let env = Env::new(cfg, dns).await;
    env.out
        .enqueue(&conn(
            Some("u@sender.test"),
            &["x@dest.test", "y@dest.test"],
            "s",
        ))
        .await;
    let files = env.queue_files();
    assert_eq!(files.len(), 2);
    let shown = haraka_queue::cli::qlist(env.dir.path()).unwrap();
    assert!(
        shown
            .iter()
            .all(|l| l.contains(" rcpt:1 from:<u@sender.test> domain:dest.test")),
        "{shown:?}"
    );
    assert_eq!(
        env.out.status().scheduled,
        2,
        "disabled: queued, not delivered"
    );
    assert!(mx.rec.snapshot().sessions.is_empty());
}

#[tokio::test]
async fn a_peer_that_hangs_up_defers_after_trying_every_mx() {
    let mx = FakeMx::start(
        "127.0.15.2:0",
        Arc::new(|_, _, l: &str| l.starts_with("MAIL").then_some(Act::Close)),
    )
    .await;
    let dns = StaticResolver::new();
    dns.mx("dest.test", 10, "mx.dest.test")
        .addr("mx.dest.test", ip("127.0.15.2"))
        .addr("mx.dest.test", ip("127.0.15.2"));
    let mut env = Env::new(config(mx.port()), dns).await;
    env.out
        .enqueue(&conn(Some("u@sender.test"), &["x@dest.test"], "s"))
        .await;
    let e = env.event(|e| matches!(e, Event::Deferred { .. })).await;
    assert!(
        matches!(&e, Event::Deferred { err, .. } if err == "Tried all MXs"),
        "{e:?}"
    );
    assert_eq!(mx.rec.snapshot().sessions.len(), 2, "each address once");
}
