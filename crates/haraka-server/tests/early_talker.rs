//! Input that arrives while the connect hooks run (before the greeting) marks the
//! client an early talker, as Haraka's core does; a client that waits does not.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::{BoxFuture, Connection, Hook, HookArgs, Outcome, Plugin, Registration};
use haraka_server::ShutdownHandle;
use haraka_smtp::SessionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Holds the greeting back at `connect_init` until the test lets it go, and
/// refuses DATA from early talkers.
struct Pause {
    release: Arc<tokio::sync::Semaphore>,
}

impl Plugin for Pause {
    fn name(&self) -> &str {
        "pause"
    }

    fn hooks(&self) -> Vec<Registration> {
        [Hook::ConnectInit, Hook::Rcpt, Hook::Data]
            .into_iter()
            .map(Registration::new)
            .collect()
    }

    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        _args: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match hook {
                Hook::ConnectInit => {
                    let permit = self.release.acquire().await.unwrap();
                    permit.forget();
                    Outcome::cont()
                }
                Hook::Data if conn.early_talker => Outcome::deny_disconnect("You talk too soon"),
                _ => Outcome::accept(),
            }
        })
    }
}

async fn start(release: Arc<tokio::sync::Semaphore>) -> (SocketAddr, ShutdownHandle) {
    let session = SessionConfig {
        me: "mx.test.local".to_owned(),
        ..SessionConfig::default()
    };
    let (addr, handle) = common::serve(
        common::context(Arc::new(Pause { release }), session),
        common::loopback(),
    )
    .await;
    (addr, handle)
}

/// The code of the next whole reply (multi-line replies read to their end).
async fn reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    loop {
        if let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..pos + 2).collect();
            if line.get(3) != Some(&b'-') {
                return String::from_utf8_lossy(&line[..3.min(pos)]).into_owned();
            }
            continue;
        }
        let mut chunk = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk));
        match read.await.expect("a reply within 5 s") {
            Ok(0) | Err(_) => return "closed".to_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// MAIL, RCPT and DATA, each after the previous reply: the reply codes, and
/// `closed` when DATA was refused and the server then closed.
async fn converse(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Vec<String> {
    let mut got = Vec::new();
    for cmd in ["MAIL FROM:<a@b.test>", "RCPT TO:<c@d.test>", "DATA"] {
        stream
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .unwrap();
        got.push(reply(stream, buf).await);
    }
    if got.last().is_some_and(|c| c.starts_with('5')) {
        got.push(reply(stream, buf).await);
    }
    got
}

async fn round_trip() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut a = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (mut b, _) = listener.accept().await.unwrap();
    a.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    b.read_exact(&mut one).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_before_the_greeting_marks_an_early_talker() {
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (addr, _shutdown) = start(release.clone()).await;
    let mut early = TcpStream::connect(addr).await.unwrap();
    // EHLO alone is sent while connect_init still holds the greeting (legal
    // pipelining would not mark the client later)
    early.write_all(b"EHLO client.test\r\n").await.unwrap();
    // A byte through another loopback pair needs a turn of the runtime's I/O
    // driver, which records the server socket's readiness as well: the server
    // can see the early input without waiting once connect_init returns.
    round_trip().await;
    release.add_permits(1);
    let mut buf = Vec::new();
    assert_eq!(reply(&mut early, &mut buf).await, "220");
    assert_eq!(reply(&mut early, &mut buf).await, "250");
    let got = converse(&mut early, &mut buf).await;
    assert_eq!(got, ["250", "250", "554", "closed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_waits_for_the_greeting_is_not_an_early_talker() {
    let release = Arc::new(tokio::sync::Semaphore::new(1));
    let (addr, _shutdown) = start(release).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(reply(&mut c, &mut buf).await, "220");
    c.write_all(b"EHLO client.test\r\n").await.unwrap();
    assert_eq!(reply(&mut c, &mut buf).await, "250");
    let got = converse(&mut c, &mut buf).await;
    c.shutdown().await.unwrap();
    assert_eq!(got[..3], ["250", "250", "354"]);
}
