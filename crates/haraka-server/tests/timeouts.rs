//! Time limits over real sockets: a client that sends a byte now and then, in a
//! command line or inside DATA, or that stalls in a TLS handshake, is closed
//! within the configured bound (short values here), and nothing is queued.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use haraka_plugin_api::{
    BoxFuture, ConnAction, Connection, Hook, HookArgs, Msg, Outcome, Plugin, Registration,
    TlsUpgrade, ready,
};
use haraka_server::{ImplicitTls, ServerContext, ShutdownHandle};
use haraka_smtp::SessionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts every recipient, answers STARTTLS with `tls`, counts queued messages.
struct Accept {
    tls: Arc<rustls::ServerConfig>,
    queued: Arc<AtomicUsize>,
}

impl Plugin for Accept {
    fn name(&self) -> &str {
        "accept"
    }

    fn hooks(&self) -> Vec<Registration> {
        [Hook::Rcpt, Hook::UnrecognizedCommand, Hook::Queue]
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
        ready(match hook {
            Hook::UnrecognizedCommand => {
                conn.request(ConnAction::StartTls(TlsUpgrade(self.tls.clone())));
                Outcome::accept_with(Msg {
                    code: Some(220),
                    lines: vec!["Go ahead.".to_owned()],
                })
            }
            Hook::Queue => {
                self.queued.fetch_add(1, Ordering::SeqCst);
                Outcome::accept()
            }
            _ => Outcome::accept(),
        })
    }
}

/// A TLS configuration whose handshakes never get far enough to need a certificate.
fn tls_config() -> Arc<rustls::ServerConfig> {
    #[derive(Debug)]
    struct NoCert;
    impl rustls::server::ResolvesServerCert for NoCert {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCert));
    Arc::new(config)
}

struct Running {
    addr: SocketAddr,
    queued: Arc<AtomicUsize>,
    _shutdown: ShutdownHandle,
}

async fn start(session: SessionConfig, implicit_tls: bool) -> Running {
    let tls = tls_config();
    // Implicit TLS is chosen by port: take a free one first.
    let port = if implicit_tls {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    } else {
        0
    };
    let queued = Arc::new(AtomicUsize::new(0));
    let plugin = Arc::new(Accept {
        tls: tls.clone(),
        queued: queued.clone(),
    });
    let ctx = ServerContext {
        tls_handshake_timeout: Duration::from_millis(300),
        implicit_tls: implicit_tls.then(|| ImplicitTls { port, config: tls }),
        ..common::context(plugin, session)
    };
    let (addr, handle) = common::serve(ctx, SocketAddr::from(([127, 0, 0, 1], port))).await;
    Running {
        addr,
        queued,
        _shutdown: handle,
    }
}

fn config(inactivity_ms: u64) -> SessionConfig {
    SessionConfig {
        me: "mx.test.local".to_owned(),
        inactivity_timeout: Duration::from_millis(inactivity_ms),
        ..SessionConfig::default()
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut c = Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        };
        assert!(c.line().await.unwrap().starts_with("220 "));
        c
    }

    /// The next reply line, or `None` once the server closed.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("the server answers within 5 s")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn command(&mut self, line: &str) -> String {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.line().await.unwrap()
    }

    /// Send one byte every `every` until the server answers; the answer and when it
    /// came. Fails if the server is still silent after `bound`.
    async fn drip(&mut self, every: Duration, bound: Duration) -> (String, Duration) {
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < bound, "still connected after {bound:?}");
            // A write may fail once the server has closed: the reply is read below.
            let _ = self.stream.write_all(b"x").await;
            if let Ok(line) = tokio::time::timeout(every, self.line()).await {
                return (line.unwrap_or_default(), started.elapsed());
            }
        }
    }

    async fn closed(&mut self) -> bool {
        self.line().await.is_none()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_line_dripped_in_is_cut_after_command_timeout() {
    // Each byte comes well within inactivity_timeout; only the line's own budget ends it.
    let server = start(
        SessionConfig {
            command_timeout: Duration::from_millis(500),
            ..config(2000)
        },
        false,
    )
    .await;
    let mut c = Client::connect(server.addr).await;
    assert!(c.command("HELO c").await.starts_with("250 "));
    let (reply, after) = c
        .drip(Duration::from_millis(50), Duration::from_secs(3))
        .await;
    assert_eq!(reply, "421 4.4.2 mx.test.local timeout");
    assert!(after >= Duration::from_millis(450), "cut after {after:?}");
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_gets_harakas_inactivity_reply() {
    let server = start(config(300), false).await;
    let mut c = Client::connect(server.addr).await;
    let started = Instant::now();
    assert_eq!(c.line().await.as_deref(), Some("421 timeout"));
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dripped_in_is_cut_by_the_minimum_rate_and_not_queued() {
    let server = start(
        SessionConfig {
            data_min_rate: 1000,
            data_rate_period: Duration::from_millis(400),
            ..config(2000)
        },
        false,
    )
    .await;
    let mut c = Client::connect(server.addr).await;
    assert!(c.command("HELO c").await.starts_with("250 "));
    assert!(
        c.command("MAIL FROM:<s@remote.org>")
            .await
            .starts_with("250 ")
    );
    assert!(c.command("RCPT TO:<a@b.c>").await.starts_with("250 "));
    assert!(c.command("DATA").await.starts_with("354 "));
    let (reply, after) = c
        .drip(Duration::from_millis(50), Duration::from_secs(3))
        .await;
    assert_eq!(reply, "421 4.4.2 mx.test.local timeout");
    assert!(after >= Duration::from_millis(350), "cut after {after:?}");
    assert!(c.closed().await);
    assert_eq!(server.queued.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_data_timeout_is_cut_and_one_within_it_is_queued() {
    let server = start(
        SessionConfig {
            data_timeout: Duration::from_millis(600),
            data_min_rate: 0,
            ..config(2000)
        },
        false,
    )
    .await;
    let mut c = Client::connect(server.addr).await;
    assert!(c.command("HELO c").await.starts_with("250 "));
    for _ in 0..2 {
        assert!(
            c.command("MAIL FROM:<s@remote.org>")
                .await
                .starts_with("250 ")
        );
        assert!(c.command("RCPT TO:<a@b.c>").await.starts_with("250 "));
        assert!(c.command("DATA").await.starts_with("354 "));
        assert!(
            c.command("Subject: quick\r\n\r\nbody\r\n.")
                .await
                .starts_with("250 ")
        );
    }
    assert_eq!(server.queued.load(Ordering::SeqCst), 2);
    assert!(
        c.command("MAIL FROM:<s@remote.org>")
            .await
            .starts_with("250 ")
    );
    assert!(c.command("RCPT TO:<a@b.c>").await.starts_with("250 "));
    assert!(c.command("DATA").await.starts_with("354 "));
    let (reply, after) = c
        .drip(Duration::from_millis(50), Duration::from_secs(3))
        .await;
    assert_eq!(reply, "421 4.4.2 mx.test.local timeout");
    assert!(after >= Duration::from_millis(550), "cut after {after:?}");
    assert!(c.closed().await);
    assert_eq!(server.queued.load(Ordering::SeqCst), 2);
}

/// The first bytes of a TLS ClientHello record (announcing 512 bytes that never come).
const PARTIAL_CLIENT_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";

/// Wait until the server closes; how long that took. Fails after 3 s.
async fn closed_within(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after 3 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starttls_handshake_that_stalls_is_closed_within_the_handshake_timeout() {
    let server = start(config(10_000), false).await;
    let mut c = Client::connect(server.addr).await;
    assert!(c.command("HELO c").await.starts_with("250 "));
    assert_eq!(c.command("STARTTLS").await, "220 Go ahead.");
    c.stream.write_all(PARTIAL_CLIENT_HELLO).await.unwrap();
    let after = closed_within(&mut c.stream).await;
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_implicit_tls_handshake_that_stalls_is_closed_within_the_handshake_timeout() {
    let server = start(config(10_000), true).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(PARTIAL_CLIENT_HELLO).await.unwrap();
    let after = closed_within(&mut stream).await;
    assert!(
        after >= Duration::from_millis(250),
        "closed after {after:?}"
    );
}
