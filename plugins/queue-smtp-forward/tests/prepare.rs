//! Backend connections prepared from rcpt_ok (warm.rs) against a scripted backend.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use haraka_client::testing::FakeServer;
use haraka_plugin_api::{Action as Code, Outcome};

const XCLIENT_CAPS: [&str; 2] = ["PIPELINING", "XCLIENT NAME ADDR PROTO HELO"];

/// Wait (at most 5 s) until the backend's sessions satisfy `pred`.
async fn seen(
    backend: &haraka_client::testing::Running,
    pred: impl Fn(&[haraka_client::testing::Session]) -> bool,
) -> Vec<haraka_client::testing::Session> {
    tokio::time::timeout(Duration::from_secs(5), backend.record.wait_for(pred))
        .await
        .expect("the backend never saw that")
}

/// A backend offering PIPELINING and XCLIENT, and a root forwarding to it.
async fn xclient_backend() -> (haraka_client::testing::Running, Root) {
    let backend = FakeServer::default()
        .with_ehlo(&XCLIENT_CAPS)
        .start()
        .await
        .unwrap();
    let root = Root::new(&[("smtp_forward.ini", &ini_for(backend.addr.port(), ""))]);
    (backend, root)
}

fn ok(out: &Outcome) {
    assert_eq!(out.action, Code::Accept, "{out:?}");
}

#[tokio::test]
async fn handshake_is_done_before_the_queue_hook_on_the_same_connection() {
    let (backend, root) = xclient_backend().await;
    let p = root.factory();
    let mut conn = connection(&["<a@example.com>"]);
    rcpt_ok(p.as_ref(), &mut conn).await;
    // Before any queue hook the backend has been greeted, told who the client is
    // and greeted again.
    let s = seen(&backend, |s| s.first().is_some_and(|s| s.lines.len() == 3)).await;
    assert_eq!(s[0].lines[2], "EHLO helo.example.org");
    // More recipients keep the connection being prepared.
    conn.transaction
        .as_mut()
        .unwrap()
        .rcpt_to
        .push(addr("<b@example.com>"));
    rcpt_ok(p.as_ref(), &mut conn).await;
    ok(&queue(p.as_ref(), &mut conn).await);
    let s = &seen(&backend, |s| s[0].closed).await;
    assert_eq!(s.len(), 1, "one backend connection");
    assert_eq!(
        s[0].lines[3..],
        [
            "MAIL FROM:<sender@remote.org>",
            "RCPT TO:<a@example.com>",
            "RCPT TO:<b@example.com>",
            "DATA",
            "QUIT"
        ]
    );
    assert_eq!(String::from_utf8_lossy(&s[0].messages[0]), FORWARDED_BODY);
}

#[tokio::test]
async fn a_transaction_changed_after_data_gets_a_fresh_connection() {
    let (backend, root) = xclient_backend().await;
    let p = root.factory();
    let mut conn = connection(&["<a@example.com>"]);
    rcpt_ok(p.as_ref(), &mut conn).await;
    seen(&backend, |s| s.first().is_some_and(|s| s.lines.len() == 3)).await;
    // A later plugin could change what XCLIENT would say.
    conn.remote.host = Some("other.example.org".into());
    ok(&queue(p.as_ref(), &mut conn).await);
    let s = seen(&backend, |s| s.len() == 2 && s.iter().all(|s| s.closed)).await;
    let prepared = s.iter().find(|s| s.messages.is_empty()).unwrap();
    assert_eq!(prepared.lines.last().map(String::as_str), Some("QUIT"));
    let used = s.iter().find(|s| !s.messages.is_empty()).unwrap();
    assert!(
        used.lines[1].contains("NAME=other.example.org"),
        "{:?}",
        used.lines
    );
}

#[tokio::test]
async fn disconnect_closes_an_unused_prepared_connection() {
    let (backend, root) = xclient_backend().await;
    let p = root.factory();
    let mut conn = connection(&["<a@example.com>"]);
    rcpt_ok(p.as_ref(), &mut conn).await;
    seen(&backend, |s| s.first().is_some_and(|s| s.lines.len() == 3)).await;
    // The client went away before its message was complete.
    disconnect(p.as_ref(), &mut conn).await;
    let s = seen(&backend, |s| s[0].closed).await;
    assert_eq!(s[0].lines.last().map(String::as_str), Some("QUIT"));
    assert!(s[0].messages.is_empty());
}

#[tokio::test]
async fn a_new_transaction_closes_the_previous_unused_one() {
    let (backend, root) = xclient_backend().await;
    let forward = root.plugin_with_tls(tls_pair("localhost").1);
    let mut conn = connection(&["<a@example.com>"]);
    forward.prepare(&conn);
    // data_post refused the first message; the client sends another.
    conn.transaction.as_mut().unwrap().uuid = "C0FFEE.2".into();
    forward.prepare(&conn);
    assert_eq!(forward.prepared_connections(), 1);
    ok(&forward.queue_forward(&conn).await);
    let s = seen(&backend, |s| s.len() == 2 && s.iter().all(|s| s.closed)).await;
    assert_eq!(s.iter().filter(|s| s.messages.len() == 1).count(), 1);
    assert_eq!(forward.prepared_connections(), 0);
}

#[tokio::test]
async fn backend_down_while_preparing_is_still_a_fast_tempfail() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let p = plugin(&ini_for(port, ""));
    let mut conn = connection(&["<a@example.com>"]);
    let start = Instant::now();
    rcpt_ok(p.as_ref(), &mut conn).await;
    let out = queue(p.as_ref(), &mut conn).await;
    assert_eq!(out.action, Code::DenySoft);
    assert_eq!(
        out.msg.as_ref().map(|m| m.joined()).unwrap_or_default(),
        "4.4.1 Upstream server unavailable, try again later"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn at_most_64_connections_wait_prepared() {
    let (backend, root) = xclient_backend().await;
    let forward = root.plugin_with_tls(tls_pair("localhost").1);
    let mut conns = Vec::new();
    for i in 0..70 {
        let mut conn = connection(&["<a@example.com>"]);
        conn.uuid = format!("C{i}");
        conn.transaction.as_mut().unwrap().uuid = format!("C{i}.1");
        forward.prepare(&conn);
        conns.push(conn);
    }
    assert_eq!(forward.prepared_connections(), 64);
    // The ones beyond the limit connect at queue time.
    for conn in &conns {
        ok(&forward.queue_forward(conn).await);
    }
    assert_eq!(forward.prepared_connections(), 0);
    let s = seen(&backend, |s| s.len() == 70 && s.iter().all(|s| s.closed)).await;
    assert!(s.iter().all(|s| s.messages.len() == 1));
}
