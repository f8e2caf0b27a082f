//! Connection caps and the write timeout, over real loopback sockets.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use haraka_plugin_api::{
    BoxFuture, Connection, Hook, HookArgs, Outcome, Plugin, Registration, ready,
};
use haraka_server::{ConnCaps, Rdns, ServerContext, ShutdownHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Counts the connections that reached the plugins.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Plugin for Counter {
    fn name(&self) -> &str {
        "counter"
    }
    fn hooks(&self) -> Vec<Registration> {
        vec![
            Registration::with_priority(Hook::ConnectInit, 0),
            Registration::with_priority(Hook::LookupRdns, 0),
        ]
    }
    fn hook<'a>(
        &'a self,
        hook: Hook,
        _: &'a mut Connection,
        _: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        if hook == Hook::ConnectInit {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        ready(Outcome::cont())
    }
}

async fn start(
    caps: ConnCaps,
    write_timeout: Duration,
) -> (SocketAddr, Arc<Counter>, ShutdownHandle) {
    let counter = Arc::new(Counter::default());
    let session = haraka_smtp::SessionConfig {
        me: "mx.test".to_owned(),
        ..Default::default()
    };
    let ctx = ServerContext {
        write_timeout,
        caps,
        rdns: Rdns::fixed(Ok("client.test".to_owned())),
        ..common::context(counter.clone(), session)
    };
    let (addr, handle) = common::serve(ctx, common::loopback()).await;
    (addr, counter, handle)
}

/// Connect from `from` (any 127.0.0.0/8 address).
async fn connect(server: SocketAddr, from: [u8; 4]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// The first line the server sends, or `None` at EOF / reset / 5 s of silence.
async fn first_line(s: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        got.push(byte[0]);
    }
    got.truncate(got.len() - 2);
    Some(String::from_utf8(got).unwrap())
}

/// The server closed the connection: EOF (or a reset) and nothing more.
async fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => rest.is_empty(),
        Ok(Err(_)) => true,
        Err(_) => false,
    }
}

/// Connect from `from` until greeted (a slot is given back asynchronously).
async fn greeted_within(server: SocketAddr, from: [u8; 4], limit: Duration) -> TcpStream {
    let deadline = Instant::now() + limit;
    loop {
        let mut c = connect(server, from).await;
        let line = first_line(&mut c).await;
        if line.as_deref().is_some_and(|l| l.starts_with("220 ")) {
            return c;
        }
        assert!(Instant::now() < deadline, "never greeted again: {line:?}");
        tokio::task::yield_now().await;
    }
}

const GREETING: &str = "220 mx.test ESMTP Haraka/3.0.0 ready";
const PER_IP: &str = "421 4.7.0 mx.test Too many concurrent connections";
const TOTAL: &str = "421 4.3.2 mx.test Too many connections, try again later";

#[tokio::test]
async fn caps_refuse_with_421_before_any_hook_and_slots_come_back() {
    let caps = ConnCaps {
        max_connections: 3,
        max_connections_per_ip: 2,
    };
    let (addr, counter, handle) = start(caps, Duration::from_secs(5)).await;
    let mut c1 = connect(addr, [127, 0, 0, 1]).await;
    assert_eq!(first_line(&mut c1).await.as_deref(), Some(GREETING));
    let mut c2 = connect(addr, [127, 0, 0, 1]).await;
    assert_eq!(first_line(&mut c2).await.as_deref(), Some(GREETING));
    let mut over_ip = connect(addr, [127, 0, 0, 1]).await;
    assert_eq!(first_line(&mut over_ip).await.as_deref(), Some(PER_IP));
    assert!(closed(&mut over_ip).await);
    let mut c3 = connect(addr, [127, 0, 0, 2]).await;
    assert_eq!(first_line(&mut c3).await.as_deref(), Some(GREETING));
    let mut over_all = connect(addr, [127, 0, 0, 3]).await;
    assert_eq!(first_line(&mut over_all).await.as_deref(), Some(TOTAL));
    assert!(closed(&mut over_all).await);
    // Refused connections never reached a hook.
    assert_eq!(counter.0.load(Ordering::SeqCst), 3);

    // One closes: its address may connect again.
    c1.write_all(b"QUIT\r\n").await.unwrap();
    assert!(first_line(&mut c1).await.unwrap().starts_with("221 "));
    drop(c1);
    let _again = greeted_within(addr, [127, 0, 0, 1], Duration::from_secs(2)).await;
    drop((c2, c3));
    handle.shutdown();
}

#[tokio::test]
async fn caps_are_exact_under_concurrent_connects() {
    let caps = ConnCaps {
        max_connections: 10,
        max_connections_per_ip: 0,
    };
    let (addr, counter, handle) = start(caps, Duration::from_secs(5)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u8 {
        tasks.spawn(async move {
            let mut c = connect(addr, [127, 0, 1, i]).await;
            let line = first_line(&mut c).await;
            (line, c)
        });
    }
    let mut held = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (line, c) = done.unwrap();
        match line.as_deref() {
            Some(GREETING) => greeted += 1,
            Some(TOTAL) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
        held.push(c);
    }
    assert_eq!((greeted, refused), (10, 30));
    assert_eq!(counter.0.load(Ordering::SeqCst), 10);
    // Every slot comes back, however the client went away.
    drop(held);
    let mut again = Vec::new();
    for i in 0..10u8 {
        again.push(greeted_within(addr, [127, 0, 2, i], Duration::from_secs(2)).await);
    }
    handle.shutdown();
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_by_the_write_timeout() {
    let caps = ConnCaps {
        max_connections: 1,
        max_connections_per_ip: 0,
    };
    let (addr, _, handle) = start(caps, Duration::from_millis(300)).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = socket.connect(addr).await.unwrap();
    // Each EHLO asks for about twenty times its size in reply; nothing is read.
    let chunk = b"EHLO pipelining.test\r\n".repeat(512);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(e) = c.write_all(&chunk).await {
                return e;
            }
        }
    })
    .await;
    let err = ended.expect("the server never closed the non-reading client");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
    // Its slot was given back: the only one there is.
    let _next = greeted_within(addr, [127, 0, 0, 1], Duration::from_secs(2)).await;
    handle.shutdown();
}

#[tokio::test]
async fn a_slow_non_reader_is_closed_after_a_bounded_backlog() {
    let caps = ConnCaps {
        max_connections: 0,
        max_connections_per_ip: 0,
    };
    let (addr, _, handle) = start(caps, Duration::from_millis(300)).await;
    // Ordinary buffers on the client side, and commands at a pace the server
    // easily keeps up with: only the server's bound on the replies it queues
    // unread makes its writes stall. Without one the kernel grows that queue to
    // megabytes, which this pace takes over ten seconds to fill.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let chunk = b"NOOP\r\n".repeat(512);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            if let Err(e) = c.write_all(&chunk).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let err = ended.expect("the server never closed the slow non-reader");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    handle.shutdown();
}
