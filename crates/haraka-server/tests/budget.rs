//! `smtp.ini message_memory_budget` over real loopback sockets: concurrent
//! messages share one budget; a message that does not fit is answered 452 and
//! dropped, never 250; the bytes come back when a transaction ends; while it is
//! used up, MAIL, RCPT and DATA are answered 452.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haraka_plugin_api::{
    BoxFuture, Connection, Hook, HookArgs, Outcome, Plugin, Registration, ready,
};
use haraka_server::{Rdns, ServerContext, ShutdownHandle};
use haraka_smtp::MemoryBudget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts every recipient and queues every message, keeping what it queued.
#[derive(Default)]
struct Sink(Mutex<Vec<Vec<u8>>>);

impl Plugin for Sink {
    fn name(&self) -> &str {
        "sink"
    }
    fn hooks(&self) -> Vec<Registration> {
        vec![
            Registration::new(Hook::Rcpt),
            Registration::new(Hook::Queue),
        ]
    }
    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        _: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        if hook == Hook::Queue
            && let Some(t) = &conn.transaction
        {
            self.0.lock().unwrap().push(t.message.to_bytes());
        }
        ready(Outcome::accept())
    }
}

const BUDGET: u64 = 100_000;
const STORAGE: &str = "452 4.3.1 Insufficient system storage";

async fn start(budget: &MemoryBudget) -> (SocketAddr, Arc<Sink>, ShutdownHandle) {
    let sink = Arc::new(Sink::default());
    let session = haraka_smtp::SessionConfig {
        me: "mx.test".to_owned(),
        add_received: false,
        message_budget: budget.clone(),
        ..Default::default()
    };
    let ctx = ServerContext {
        rdns: Rdns::fixed(Ok("client.test".to_owned())),
        ..common::context(sink.clone(), session)
    };
    let (addr, handle) = common::serve(ctx, common::loopback()).await;
    (addr, sink, handle)
}

struct Client(TcpStream);

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut c = Client(TcpStream::connect(addr).await.unwrap());
        assert!(c.line().await.starts_with("220 "));
        c
    }

    /// One reply line (the last of a multi-line reply), within 5 s.
    async fn line(&mut self) -> String {
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            while !got.ends_with(b"\r\n") {
                let n = tokio::time::timeout(Duration::from_secs(5), self.0.read(&mut byte))
                    .await
                    .expect("a reply within 5 s")
                    .unwrap();
                assert!(n > 0, "closed after {got:?}");
                got.push(byte[0]);
            }
            if got.get(3) != Some(&b'-') {
                got.truncate(got.len() - 2);
                return String::from_utf8(got).unwrap();
            }
            got.clear();
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }

    /// EHLO, MAIL, RCPT, then DATA's reply.
    async fn envelope(&mut self) -> String {
        assert!(self.cmd("EHLO c.test").await.starts_with("250 "));
        self.transaction().await
    }

    async fn transaction(&mut self) -> String {
        assert!(
            self.cmd("MAIL FROM:<s@remote.test>")
                .await
                .starts_with("250 ")
        );
        assert!(self.cmd("RCPT TO:<r@mx.test>").await.starts_with("250 "));
        self.cmd("DATA").await
    }
}

/// An empty header section, then `n` body lines of 64 bytes each (with CR LF),
/// the last one saying `tag`.
fn lines(n: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + n * 64);
    out.extend_from_slice(b"\r\n");
    for i in 0..n {
        let text = if i + 1 == n {
            format!("{tag:-<62}")
        } else {
            format!("line {i:->57}")
        };
        assert_eq!(text.len(), 62);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The queued message is what [`lines`] sent.
fn whole(queued: &[u8], n: usize, tag: &str) -> bool {
    queued == &lines(n, tag)[..]
}

/// Wait (at most 5 s) until the budget holds at least `min` and at most `max` bytes.
async fn until_used(budget: &MemoryBudget, min: u64, max: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(min..=max).contains(&budget.used()) {
        assert!(
            Instant::now() < deadline,
            "budget holds {} bytes, expected {min}..={max}",
            budget.used()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_message_that_runs_out_of_budget_gets_452_and_the_other_is_delivered() {
    let budget = MemoryBudget::new(BUDGET);
    let (addr, sink, _handle) = start(&budget).await;
    let mut first = Client::connect(addr).await;
    assert!(first.envelope().await.starts_with("354 "));
    // 19 KB of body: held in memory (with the body's spare capacity) until queued.
    first.send(&lines(300, "end of first")).await;
    until_used(&budget, 300 * 64, BUDGET).await;
    let held_by_first = budget.used();

    // 102 KB cannot fit next to it: the second message runs out on its way.
    let mut second = Client::connect(addr).await;
    assert!(second.envelope().await.starts_with("354 "));
    second.send(&lines(1600, "end of second")).await;
    assert_eq!(second.cmd(".").await, STORAGE);
    // What the second message had reserved is given back at once.
    until_used(&budget, held_by_first, held_by_first).await;

    assert!(first.cmd(".").await.starts_with("250 "));
    until_used(&budget, 0, 0).await;
    {
        let queued = sink.0.lock().unwrap();
        assert_eq!(queued.len(), 1, "only the first message is queued");
        assert!(whole(&queued[0], 300, "end of first"), "delivered whole");
    }

    // The budget is free again: the refused sender's retry is accepted.
    assert!(second.transaction().await.starts_with("354 "));
    second.send(&lines(300, "retry")).await;
    assert!(second.cmd(".").await.starts_with("250 "));
    until_used(&budget, 0, 0).await;
    let queued = sink.0.lock().unwrap();
    assert_eq!(queued.len(), 2);
    assert!(whole(&queued[1], 300, "retry"));
}

#[tokio::test]
async fn data_gets_452_while_the_budget_is_exhausted_and_354_once_it_is_free() {
    let budget = MemoryBudget::new(BUDGET);
    let (addr, sink, _handle) = start(&budget).await;
    let mut c = Client::connect(addr).await;
    assert!(c.cmd("EHLO c.test").await.starts_with("250 "));
    assert!(c.cmd("MAIL FROM:<s@remote.test>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<r@mx.test>").await.starts_with("250 "));
    // Between RCPT and DATA, another message (here: the test itself) takes the
    // whole budget.
    let mut other = budget.reservation();
    assert!(other.hold(BUDGET));
    assert_eq!(c.cmd("DATA").await, STORAGE);
    drop(other);
    // The transaction stayed open: DATA again, now accepted.
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(&lines(10, "second")).await;
    assert!(c.cmd(".").await.starts_with("250 "));
    let queued = sink.0.lock().unwrap();
    assert_eq!(queued.len(), 1);
    assert!(whole(&queued[0], 10, "second"));
}

#[tokio::test]
async fn mail_and_rcpt_get_452_while_the_budget_is_exhausted() {
    let budget = MemoryBudget::new(BUDGET);
    let (addr, sink, _handle) = start(&budget).await;
    let mut other = budget.reservation();
    assert!(other.hold(BUDGET));

    let mut c = Client::connect(addr).await;
    assert!(c.cmd("EHLO c.test").await.starts_with("250 "));
    assert_eq!(c.cmd("MAIL FROM:<s@remote.test>").await, STORAGE);
    // A syntax error is still told as such.
    assert!(c.cmd("MAIL FROM:broken<").await.starts_with("501 "));
    // No transaction was opened.
    assert!(c.cmd("RCPT TO:<r@mx.test>").await.starts_with("503 "));
    drop(other);

    assert!(c.cmd("MAIL FROM:<s@remote.test>").await.starts_with("250 "));
    assert!(c.cmd("RCPT TO:<r@mx.test>").await.starts_with("250 "));
    let mut other = budget.reservation();
    assert!(other.hold(BUDGET));
    assert_eq!(c.cmd("RCPT TO:<r2@mx.test>").await, STORAGE);
    drop(other);
    // The transaction and its first recipient are kept.
    assert!(c.cmd("RCPT TO:<r3@mx.test>").await.starts_with("250 "));
    assert!(c.cmd("DATA").await.starts_with("354 "));
    c.send(&lines(10, "kept")).await;
    assert!(c.cmd(".").await.starts_with("250 "));
    until_used(&budget, 0, 0).await;
    let queued = sink.0.lock().unwrap();
    assert_eq!(queued.len(), 1);
    assert!(whole(&queued[0], 10, "kept"));
}

#[tokio::test]
async fn a_lost_connection_gives_its_bytes_back() {
    let budget = MemoryBudget::new(BUDGET);
    let (addr, sink, _handle) = start(&budget).await;
    let mut c = Client::connect(addr).await;
    assert!(c.envelope().await.starts_with("354 "));
    c.send(&lines(100, "never ends")).await;
    until_used(&budget, 100 * 64, BUDGET).await;
    drop(c);
    until_used(&budget, 0, 0).await;
    assert!(sink.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn many_short_lines_without_an_empty_line_are_charged_their_overhead() {
    // 20 KB of 3-byte lines held line by line would cost far more than 20 KB.
    let budget = MemoryBudget::new(BUDGET);
    let (addr, sink, _handle) = start(&budget).await;
    let mut c = Client::connect(addr).await;
    assert!(c.envelope().await.starts_with("354 "));
    c.send(&b"a:\r\n".repeat(5000)).await;
    assert_eq!(c.cmd(".").await, STORAGE);
    until_used(&budget, 0, 0).await;
    assert!(sink.0.lock().unwrap().is_empty());
}
