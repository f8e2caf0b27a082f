//! The benchmark's own SMTP load client, for what `smtp-source` cannot tell:
//! the time from sending the final `.` of DATA to reading the server's 250.
//!
//! `C` connections run at once; each sends up to `M` messages (EHLO once,
//! then MAIL, RCPT, DATA per message, no pipelining) and QUITs, and a new
//! connection takes its place until all `N` messages are sent. It runs on a
//! single-threaded runtime, so it never takes more than one core from the
//! server it measures. [`open_idle`] opens many connections that only read
//! the greeting, for the memory-per-connection figure.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::Workload;

/// Longest wait for any one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What one run of the load client saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// End of DATA to the 250, one entry per accepted message.
    pub latencies: Vec<Duration>,
    /// Messages refused or lost to a broken connection.
    pub failed: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// From the first connect to the last reply.
    pub elapsed: Duration,
}

/// Envelope of every message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: String,
    pub to: String,
}

/// Send `w.messages` messages to `addr`; see the module doc.
pub fn run(addr: SocketAddr, w: &Workload, env: &Envelope) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the load client's runtime")?;
    rt.block_on(run_async(addr, w, env))
}

async fn run_async(addr: SocketAddr, w: &Workload, env: &Envelope) -> anyhow::Result<Outcome> {
    let body = Arc::new(message_body(w.size, env));
    let left = Arc::new(AtomicU64::new(w.messages));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..w.concurrency.max(1) {
        let (left, body, env) = (Arc::clone(&left), Arc::clone(&body), env.clone());
        let per_conn = w.per_conn.max(1);
        tasks.spawn(async move { worker(addr, &left, per_conn, &body, &env).await });
    }
    let mut out = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        let part = joined.context("a load client task panicked")?;
        out.latencies.extend(part.latencies);
        out.failed += part.failed;
        if out.first_error.is_none() {
            out.first_error = part.first_error;
        }
    }
    out.elapsed = started.elapsed();
    Ok(out)
}

/// Take one message from the shared budget.
fn claim(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

async fn worker(
    addr: SocketAddr,
    left: &AtomicU64,
    per_conn: u64,
    body: &[u8],
    env: &Envelope,
) -> Outcome {
    let mut out = Outcome::default();
    while claim(left) {
        let mut conn = match Conn::open(addr).await {
            Ok(c) => c,
            Err(e) => {
                out.fail(1, &e);
                continue;
            }
        };
        let mut sent = 0;
        loop {
            match conn.message(body, env).await {
                Ok(latency) => out.latencies.push(latency),
                Err(e) => {
                    out.fail(1, &e);
                    break;
                }
            }
            sent += 1;
            if sent >= per_conn || !claim(left) {
                let _ = conn.quit().await;
                break;
            }
        }
    }
    out
}

impl Outcome {
    pub(crate) fn fail(&mut self, n: u64, e: &anyhow::Error) {
        self.failed += n;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }
}

/// One SMTP client connection after EHLO.
pub(crate) struct Conn {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    line: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        Self::open_from(None, addr).await
    }

    /// Connect from `src` (any local address when `None`), read the
    /// greeting, send EHLO.
    pub(crate) async fn open_from(src: Option<IpAddr>, addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = connect_from(src, addr, None)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        let (rd, wr) = stream.into_split();
        let mut c = Self {
            rd: BufReader::new(rd),
            wr,
            line: String::new(),
        };
        c.expect(220, "greeting").await?;
        c.command(b"EHLO client.bench.test\r\n", 250, "EHLO")
            .await?;
        Ok(c)
    }

    /// MAIL, RCPT, DATA, the message; returns end-of-DATA to reply.
    pub(crate) async fn message(
        &mut self,
        body: &[u8],
        env: &Envelope,
    ) -> anyhow::Result<Duration> {
        let mail = format!("MAIL FROM:<{}>\r\n", env.from);
        self.command(mail.as_bytes(), 250, "MAIL").await?;
        let rcpt = format!("RCPT TO:<{}>\r\n", env.to);
        self.command(rcpt.as_bytes(), 250, "RCPT").await?;
        self.command(b"DATA\r\n", 354, "DATA").await?;
        self.wr
            .write_all(body)
            .await
            .context("sending the message")?;
        let t0 = Instant::now();
        self.command(b".\r\n", 250, "end of DATA").await?;
        Ok(t0.elapsed())
    }

    pub(crate) async fn quit(&mut self) -> anyhow::Result<()> {
        self.command(b"QUIT\r\n", 221, "QUIT").await
    }

    async fn command(&mut self, line: &[u8], code: u16, what: &str) -> anyhow::Result<()> {
        self.wr
            .write_all(line)
            .await
            .with_context(|| format!("sending {what}"))?;
        self.expect(code, what).await
    }

    /// Read a whole (possibly multi-line) reply and check its code.
    async fn expect(&mut self, code: u16, what: &str) -> anyhow::Result<()> {
        let got = read_reply(&mut self.rd, &mut self.line, what).await?;
        if got != code {
            bail!("{what}: expected {code}, got {:?}", self.line.trim_end());
        }
        Ok(())
    }
}

/// A TCP connection to `addr` from `src` (port chosen by the kernel), with
/// a receive buffer of `rcvbuf` bytes when given (set before the handshake,
/// so the window stays small).
pub(crate) async fn connect_from(
    src: Option<IpAddr>,
    addr: SocketAddr,
    rcvbuf: Option<u32>,
) -> std::io::Result<TcpStream> {
    if src.is_none() && rcvbuf.is_none() {
        return TcpStream::connect(addr).await;
    }
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(ip) = src {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// Read one reply; returns its code (the last line stays in `line`).
pub(crate) async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(
    rd: &mut R,
    line: &mut String,
    what: &str,
) -> anyhow::Result<u16> {
    loop {
        line.clear();
        let n = tokio::time::timeout(REPLY_TIMEOUT, rd.read_line(line))
            .await
            .with_context(|| format!("{what}: no reply within {REPLY_TIMEOUT:?}"))?
            .with_context(|| format!("{what}: reading the reply"))?;
        if n == 0 {
            bail!("{what}: the server closed the connection");
        }
        let (code, last) =
            reply_line(line).with_context(|| format!("{what}: bad reply {line:?}"))?;
        if last {
            return Ok(code);
        }
    }
}

/// (code, is the last line) of one reply line.
pub fn reply_line(line: &str) -> Option<(u16, bool)> {
    let code = line.get(..3)?.parse::<u16>().ok()?;
    match line.as_bytes().get(3) {
        Some(b'-') => Some((code, false)),
        Some(b' ' | b'\r' | b'\n') | None => Some((code, true)),
        Some(_) => None,
    }
}

/// Headers plus `size` bytes of body in 78-character lines, dot-safe, without
/// the final `.` line.
pub fn message_body(size: usize, env: &Envelope) -> Vec<u8> {
    let mut m = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: haraka-rs benchmark\r\n\
         Message-ID: <bench-{}@bench.test>\r\n\r\n",
        env.from,
        env.to,
        std::process::id()
    )
    .into_bytes();
    let line: Vec<u8> = (0..78u8).map(|i| b'a' + i % 26).collect();
    let mut body = 0;
    while body < size {
        let n = (size - body).min(line.len());
        m.extend_from_slice(&line[..n]);
        m.extend_from_slice(b"\r\n");
        body += n + 2;
    }
    m
}

/// Connections that have read their greeting and stay open until dropped.
pub struct Idle {
    streams: Vec<std::net::TcpStream>,
}

impl Idle {
    /// How many are open.
    pub fn len(&self) -> usize {
        self.streams.len()
    }
}

/// Open `n` connections to `addr` (at most 100 handshakes at a time) and read
/// each greeting.
pub fn open_idle(addr: SocketAddr, n: usize) -> anyhow::Result<Idle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the idle client's runtime")?;
    rt.block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(100));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let gate = Arc::clone(&gate);
            tasks.spawn(async move {
                let _permit = gate.acquire().await.context("semaphore closed")?;
                let stream = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                let mut rd = BufReader::new(stream);
                let mut line = String::new();
                let code = read_reply(&mut rd, &mut line, "greeting").await?;
                if code != 220 {
                    bail!("greeting: {:?}", line.trim_end());
                }
                // The greeting is all a peer sends before we speak: nothing is buffered.
                rd.into_inner().into_std().context("detaching a connection")
            });
        }
        let mut streams = Vec::with_capacity(n);
        while let Some(joined) = tasks.join_next().await {
            streams.push(joined.context("an idle connection task panicked")??);
        }
        Ok(Idle { streams })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn reply_lines() {
        let cases = [
            ("250-PIPELINING\r\n", Some((250, false))),
            ("250 OK\r\n", Some((250, true))),
            ("354\r\n", Some((354, true))),
            ("221", Some((221, true))),
            ("25x OK", None),
            ("2500 OK", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(reply_line(line), want, "{line:?}");
        }
    }

    #[test]
    fn body_size_and_dot_safety() {
        let env = Envelope {
            from: "a@b.test".into(),
            to: "c@d.test".into(),
        };
        for size in [0, 1, 79, 80, 81, 10_240] {
            let m = message_body(size, &env);
            let text = String::from_utf8(m).unwrap();
            let (_, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                body.len() >= size && body.len() < size + 80,
                "{size}: {}",
                body.len()
            );
            assert!(text.ends_with("\r\n") || size == 0);
            assert!(!text.split("\r\n").any(|l| l.starts_with('.')));
        }
    }

    /// A loopback SMTP server in threads: answers `rcpt` to RCPT, 250 to the
    /// rest; returns its address and the count of messages it accepted.
    fn fake_server(rcpt: &'static str) -> (SocketAddr, Arc<AtomicU64>) {
        use std::io::{BufRead as _, BufReader as StdReader, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let accepted = Arc::clone(&count);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut w) = conn else { return };
                let accepted = Arc::clone(&accepted);
                std::thread::spawn(move || {
                    let mut r = StdReader::new(w.try_clone().unwrap());
                    let _ = w.write_all(b"220 fake ESMTP\r\n");
                    let (mut line, mut in_data) = (String::new(), false);
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let reply: &[u8] = if in_data {
                            if line != ".\r\n" {
                                continue;
                            }
                            in_data = false;
                            accepted.fetch_add(1, Ordering::Relaxed);
                            b"250 queued\r\n"
                        } else if line.starts_with("EHLO") {
                            b"250-fake\r\n250 PIPELINING\r\n"
                        } else if line.starts_with("RCPT") {
                            rcpt.as_bytes()
                        } else if line.starts_with("DATA") {
                            in_data = true;
                            b"354 go\r\n"
                        } else if line.starts_with("QUIT") {
                            let _ = w.write_all(b"221 bye\r\n");
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        if w.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, count)
    }

    fn env() -> Envelope {
        Envelope {
            from: "a@b.test".into(),
            to: "c@d.test".into(),
        }
    }

    #[test]
    fn sends_every_message_over_loopback() {
        let (addr, count) = fake_server("250 ok\r\n");
        let w = Workload {
            messages: 7,
            size: 1000,
            concurrency: 3,
            per_conn: 2,
        };
        let out = run(addr, &w, &env()).unwrap();
        assert_eq!(
            (out.latencies.len(), out.failed),
            (7, 0),
            "{:?}",
            out.first_error
        );
        assert_eq!(count.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn counts_refusals() {
        let (addr, count) = fake_server("550 no such user\r\n");
        let w = Workload {
            messages: 4,
            size: 10,
            concurrency: 2,
            per_conn: 1,
        };
        let out = run(addr, &w, &env()).unwrap();
        assert_eq!((out.latencies.len(), out.failed), (0, 4));
        assert!(out.first_error.unwrap().contains("550 no such user"));
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn holds_idle_connections() {
        let (addr, _) = fake_server("250 ok\r\n");
        let idle = open_idle(addr, 25).unwrap();
        assert_eq!(idle.len(), 25);
    }

    #[test]
    fn budget_is_shared_exactly() {
        let left = AtomicU64::new(3);
        assert_eq!((0..5).filter(|_| claim(&left)).count(), 3);
        assert_eq!(left.load(Ordering::Relaxed), 0);
    }
}
