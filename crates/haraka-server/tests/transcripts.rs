//! The golden transcripts of `haraka-smtp`, replayed over a real listening server.
//!
//! The sans-IO tests of the protocol crate run the same files against the session in
//! memory; here the bytes cross a TCP socket, the driver runs the hooks through the
//! real `Pipeline`, and the `H:` answers come from a scripted plugin.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haraka_plugin_api::{
    BoxFuture, Connection, Hook, HookArgs, Outcome, Plugin, Registration, ready,
};
use haraka_server::{EnvSource, Rdns, ServerContext};
use haraka_smtp::transcript::{self, Answer, ClientAction, Step, Transcript};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Answers hooks from the transcript's `H:` lines and records queued messages.
struct Script {
    answers: Mutex<HashMap<Hook, Answer>>,
    relaying: bool,
    queued: Mutex<Option<Vec<String>>>,
}

impl Plugin for Script {
    fn name(&self) -> &str {
        "script"
    }

    fn hooks(&self) -> Vec<Registration> {
        Hook::ALL
            .iter()
            .filter(|h| !h.is_outbound())
            .map(|h| Registration::new(*h))
            .collect()
    }

    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        _args: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        if hook == Hook::ConnectInit && self.relaying {
            conn.set_relaying(true);
        }
        if matches!(hook, Hook::Queue | Hook::QueueOutbound)
            && let Some(t) = &conn.transaction
        {
            let bytes = t.message.to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            let body = text.strip_suffix("\r\n").unwrap_or(&text);
            *self.queued.lock().unwrap() = Some(body.split("\r\n").map(str::to_owned).collect());
        }
        let answer = self.answers.lock().unwrap().get(&hook).cloned();
        ready(match answer {
            Some(a) => transcript::apply(&a, conn),
            None => Outcome::cont(),
        })
    }
}

/// Why a transcript cannot be replayed over a socket (it is covered in memory).
fn socket_skip(t: &Transcript, text: &str) -> Option<&'static str> {
    let o = &t.options;
    if o.local_port != 25 {
        return Some("needs a specific local port");
    }
    if !o.remote_ip.is_loopback() || o.remote_ip.is_ipv6() {
        return Some("needs a non-loopback client address");
    }
    if text.contains("A: wait") {
        return Some("lets time pass (covered over sockets by tests/timeouts.rs)");
    }
    if text.contains("E: starttls") || text.contains("=STARTTLS") {
        return Some("needs a real TLS handshake (covered by the tls plugin's tests)");
    }
    // An `H:` right after a command that gets no reply changes the answer while the
    // server may still be working on that command: only the in-memory run orders
    // the two deterministically.
    let leading = t
        .steps
        .iter()
        .take_while(|s| matches!(s, Step::Stub { .. } | Step::Send { .. }))
        .count();
    let mut unanswered_send = false;
    for step in &t.steps[leading..] {
        match step {
            Step::Send { .. } => unanswered_send = true,
            Step::Stub { .. } if unanswered_send => {
                return Some("changes a hook answer before the server's reply");
            }
            Step::Expect { .. } | Step::ExpectClose { .. } => unanswered_send = false,
            _ => {}
        }
    }
    None
}

fn transcripts() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../haraka-smtp/tests/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("transcripts dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

async fn start(
    t: &Transcript,
    script: Arc<Script>,
    inactivity: Duration,
) -> (SocketAddr, haraka_server::ShutdownHandle) {
    let o = &t.options;
    let rdns = match o.rdns.as_str() {
        "NXDOMAIN" => Rdns::fixed(Err("NXDOMAIN")),
        "DNSERROR" => Rdns::fixed(Err("DNSERROR")),
        name => Rdns::fixed(Ok(name.to_owned())),
    };
    let session = haraka_smtp::SessionConfig {
        inactivity_timeout: inactivity,
        ..o.config.clone()
    };
    let ctx = ServerContext {
        rdns,
        env: Arc::new(FixedEnv),
        ..common::context(script, session)
    };
    let (addr, handle) = common::serve(ctx, common::loopback()).await;
    (addr, handle)
}

/// The same UUIDs and date as the in-memory runner, so expectations match exactly.
struct FixedEnv;

impl EnvSource for FixedEnv {
    fn connection_uuid(&self) -> String {
        transcript::TEST_UUID.to_owned()
    }
    fn session_env(&self) -> Box<dyn haraka_smtp::Env> {
        Box::<transcript::TestEnv>::default()
    }
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn replay(t: &Transcript) -> Result<(), String> {
    let inactivity = if t.steps.iter().any(|s| {
        matches!(
            s,
            Step::Do {
                action: ClientAction::Timeout,
                ..
            }
        )
    }) {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(30)
    };
    let script = Arc::new(Script {
        answers: Mutex::new(HashMap::new()),
        relaying: t.options.relaying,
        queued: Mutex::new(None),
    });
    // `H:` lines before the connection decide the connect-time hooks.
    let leading = t
        .steps
        .iter()
        .take_while(|s| matches!(s, Step::Stub { .. }))
        .count();
    for step in &t.steps[..leading] {
        if let Step::Stub { hook, answer, .. } = step {
            script.answers.lock().unwrap().insert(*hook, answer.clone());
        }
    }
    let (addr, shutdown) = start(t, script.clone(), inactivity).await;
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(t.options.remote_ip, 0))
        .map_err(|e| format!("bind {}: {e}", t.options.remote_ip))?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let mut c = Client {
        stream,
        buf: Vec::new(),
    };
    let result = async {
        for step in &t.steps[leading..] {
            match step {
                Step::Send { bytes, .. } => {
                    c.stream.write_all(bytes).await.map_err(|e| e.to_string())?;
                }
                Step::Stub { hook, answer, .. } => {
                    script.answers.lock().unwrap().insert(*hook, answer.clone());
                }
                Step::Expect { line, pattern } => {
                    let got = c.line().await.ok_or(format!(
                        "line {line}: connection closed, expected {pattern:?}"
                    ))?;
                    if !transcript::matches(pattern, &got) {
                        return Err(format!("line {line}: expected {pattern:?}, got {got:?}"));
                    }
                }
                Step::ExpectClose { line } => {
                    if let Some(extra) = c.line().await {
                        return Err(format!("line {line}: expected close, got {extra:?}"));
                    }
                }
                Step::ExpectStartTls { line } => {
                    return Err(format!("line {line}: STARTTLS not replayed over sockets"));
                }
                Step::Do { action, .. } => match action {
                    ClientAction::Timeout | ClientAction::Wait(_) => {}
                    ClientAction::PeerClose => {
                        c.stream.shutdown().await.map_err(|e| e.to_string())?;
                    }
                },
                Step::Message { line, lines } => {
                    let got = script
                        .queued
                        .lock()
                        .unwrap()
                        .take()
                        .ok_or(format!("line {line}: nothing queued"))?;
                    if got.len() != lines.len()
                        || !lines
                            .iter()
                            .zip(&got)
                            .all(|(p, a)| transcript::matches(p, a))
                    {
                        return Err(format!("line {line}: message differs:\n{}", got.join("\n")));
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    shutdown.shutdown();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_transcripts_over_a_real_socket() {
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut skipped = Vec::new();
    for (path, text) in transcripts() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let t = match transcript::parse(&text) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if let Some(why) = socket_skip(&t, &text) {
            skipped.push(format!("{name} ({why})"));
            continue;
        }
        ran += 1;
        if let Err(e) = replay(&t).await {
            failures.push(format!("{name}: {e}"));
        }
    }
    eprintln!(
        "replayed {ran} transcripts over sockets; in memory only: {}",
        skipped.join(", ")
    );
    assert!(ran >= 40, "only {ran} transcripts replayed");
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn remote_ip_used_by_transcripts_is_loopback() {
    let ip: IpAddr = "127.0.0.2".parse().unwrap();
    assert!(ip.is_loopback());
}

/// Shutdown: the listeners close at once, an open session is still answered during
/// the grace period (1 s in `start`), then it is closed without a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_listeners_then_sessions_after_the_grace_period() {
    let t = transcript::parse("").unwrap();
    let script = Arc::new(Script {
        answers: Mutex::new(HashMap::new()),
        relaying: false,
        queued: Mutex::new(None),
    });
    let (addr, handle) = start(&t, script, Duration::from_secs(30)).await;
    let mut c = Client {
        stream: TcpStream::connect(addr).await.unwrap(),
        buf: Vec::new(),
    };
    assert!(c.line().await.unwrap().starts_with("220 "));
    handle.shutdown();
    let asked = std::time::Instant::now();
    while TcpStream::connect(addr).await.is_ok() {
        assert!(asked.elapsed() < Duration::from_secs(5), "still listening");
        tokio::task::yield_now().await;
    }
    c.stream.write_all(b"HELO client.test\r\n").await.unwrap();
    assert!(c.line().await.unwrap().starts_with("250 "));
    assert_eq!(
        c.line().await,
        None,
        "closed at the end of the grace period"
    );
    let waited = asked.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&waited),
        "closed after {waited:?}"
    );
}
