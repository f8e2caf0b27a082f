//! The soak's clients, all tasks on one single-threaded runtime so they
//! never take more than one core from the server: a steady stream of
//! normal transactions, the hostile kinds, and the capped-descriptor probe.
//!
//! Every hostile client reconnects as soon as the server has closed it, until
//! the phase ends, so the pressure lasts the whole phase; each connection's
//! life (from the end of the TCP handshake until the server closed it) is one
//! sample of how long that kind survives.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout_at;

use crate::bench::client::{self, Conn, Envelope, Outcome};

/// Longest one normal transaction may take before it counts as failed.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// Handshakes (and DATA set-ups) in progress at once, so a thousand clients
/// ramp up without a SYN flood.
const HANDSHAKES_AT_ONCE: usize = 64;
/// Receive buffer of a client that never reads: small, so the server's
/// replies back up quickly and the client costs the machine little memory.
const NON_READER_RCVBUF: u32 = 4096;
/// A write that takes longer than this means the server stopped reading.
const STALLED: Duration = Duration::from_millis(200);

/// The hostile kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hostile {
    /// One byte of a command line every `drip_every`.
    DripCommand,
    /// A valid transaction up to `354`, then one byte of message every `drip_every`.
    DripData,
    /// Reads the greeting, then says nothing.
    Idle,
    /// Pipelines `NOOP`s and never reads a reply (timed from when the
    /// server stops taking its input).
    NonReader,
}

impl Hostile {
    pub const ALL: [Hostile; 4] = [
        Hostile::DripCommand,
        Hostile::DripData,
        Hostile::Idle,
        Hostile::NonReader,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Hostile::DripCommand => "drip-feeder, command line",
            Hostile::DripData => "drip-feeder, inside DATA",
            Hostile::Idle => "idle after the greeting",
            Hostile::NonReader => "pipelines, never reads",
        }
    }
}

/// How one hostile connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The server closed it this long after the handshake; the last reply line it sent.
    Closed {
        after: Duration,
        last: Option<String>,
    },
    /// Turned away before it could misbehave (a 4xx/5xx greeting or reply).
    Refused(String),
    /// Still open when the phase ended, this old.
    Open(Duration),
    /// No connection (connect failed, or the set-up broke off without a reply).
    Failed(String),
}

/// One hostile client's part in the phase.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub kind: Hostile,
    pub src: IpAddr,
    pub drip_every: Duration,
    /// A non-reader's sending rate.
    pub flood_kib_per_s: u32,
}

/// Connections of the hostile kinds open right now (for the time series).
#[derive(Debug, Default)]
pub struct OpenCount(AtomicUsize);

impl OpenCount {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

struct Holding<'a>(&'a OpenCount);

impl<'a> Holding<'a> {
    fn new(c: &'a OpenCount) -> Self {
        c.0.fetch_add(1, Ordering::Relaxed);
        Self(c)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Run every client of `specs` against `addr` until `end`; returns each
/// connection's end, by kind.
pub async fn hostile(
    specs: Vec<Spec>,
    addr: SocketAddr,
    end: Instant,
    open: Arc<OpenCount>,
    env: Envelope,
) -> Vec<(Hostile, End)> {
    let gate = Arc::new(Semaphore::new(HANDSHAKES_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs {
        let (gate, open, env) = (Arc::clone(&gate), Arc::clone(&open), env.clone());
        tasks.spawn(async move {
            let mut ends = Vec::new();
            while Instant::now() < end {
                let e = one(spec, addr, end, &gate, &open, &env).await;
                let pause = matches!(e, End::Refused(_) | End::Failed(_));
                ends.push((spec.kind, e));
                if pause {
                    // Turned away: try again a little later, as a real client would.
                    let _ =
                        timeout_at(end.into(), tokio::time::sleep(Duration::from_secs(1))).await;
                }
            }
            ends
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(ends) = joined {
            out.extend(ends);
        }
    }
    out
}

/// One connection of `spec.kind`, from connect to its end.
async fn one(
    spec: Spec,
    addr: SocketAddr,
    end: Instant,
    gate: &Semaphore,
    open: &OpenCount,
    env: &Envelope,
) -> End {
    let Ok(permit) = gate.acquire().await else {
        return End::Failed("semaphore closed".into());
    };
    let rcvbuf = (spec.kind == Hostile::NonReader).then_some(NON_READER_RCVBUF);
    let stream = match timeout_at(
        end.into(),
        client::connect_from(Some(spec.src), addr, rcvbuf),
    )
    .await
    {
        Err(_) => return End::Open(Duration::ZERO),
        Ok(Err(e)) => return End::Failed(format!("connect: {e}")),
        Ok(Ok(s)) => s,
    };
    let t0 = Instant::now();
    let _holding = Holding::new(open);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = String::new();
    if spec.kind != Hostile::NonReader {
        let mut steps: Vec<(String, u16)> = vec![(String::new(), 220)];
        if spec.kind == Hostile::DripData {
            steps.extend([
                ("EHLO drip.soak.test\r\n".to_owned(), 250),
                (format!("MAIL FROM:<{}>\r\n", env.from), 250),
                (format!("RCPT TO:<{}>\r\n", env.to), 250),
                ("DATA\r\n".to_owned(), 354),
            ]);
        }
        for (cmd, want) in steps {
            if !cmd.is_empty() && wr.write_all(cmd.as_bytes()).await.is_err() {
                return End::Failed("the server closed during set-up".into());
            }
            let got =
                timeout_at(end.into(), client::read_reply(&mut rd, &mut line, "set-up")).await;
            match got {
                Err(_) => return End::Open(t0.elapsed()),
                Ok(Err(e)) => return End::Failed(format!("{e:#}")),
                Ok(Ok(code)) if code == want => {}
                Ok(Ok(_)) => return End::Refused(line.trim_end().to_owned()),
            }
        }
    }
    drop(permit);
    match spec.kind {
        Hostile::DripCommand => drip(rd, wr, b"EHLO ", spec.drip_every, end, t0).await,
        Hostile::DripData => drip(rd, wr, b"Subject: ", spec.drip_every, end, t0).await,
        Hostile::Idle => {
            let mut last = None;
            match wait_close(&mut rd, end, &mut last).await {
                true => End::Closed {
                    after: t0.elapsed(),
                    last,
                },
                false => End::Open(t0.elapsed()),
            }
        }
        Hostile::NonReader => flood(wr, spec.flood_kib_per_s, end, t0).await,
    }
}

/// Read until the server closes (true) or `until` passes (false); keeps the
/// last complete line received in `last`.
async fn wait_close<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    until: Instant,
    last: &mut Option<String>,
) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match timeout_at(until.into(), rd.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(n)) => {
                if let Some(l) = last_line(&buf[..n]) {
                    *last = Some(l);
                }
            }
        }
    }
}

/// The last non-empty line of `bytes`, trimmed.
pub fn last_line(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Send `prefix`, then `a`s, one byte every `every`, until the server closes.
async fn drip(
    mut rd: BufReader<tokio::net::tcp::OwnedReadHalf>,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    prefix: &[u8],
    every: Duration,
    end: Instant,
    t0: Instant,
) -> End {
    let mut last = None;
    for i in 0.. {
        let byte = prefix.get(i).copied().unwrap_or(b'a');
        if wr.write_all(&[byte]).await.is_err() {
            return End::Closed {
                after: t0.elapsed(),
                last,
            };
        }
        let next = (Instant::now() + every).min(end);
        if wait_close(&mut rd, next, &mut last).await {
            return End::Closed {
                after: t0.elapsed(),
                last,
            };
        }
        if Instant::now() >= end {
            break;
        }
    }
    End::Open(t0.elapsed())
}

/// Pipeline `NOOP`s, `kib_per_s` KiB a second at most in 4 KiB writes, never reading;
/// the server has closed the connection when a write fails. The clock starts
/// when the server stops taking the input (a write takes longer than
/// [`STALLED`]): how fast the buffers fill is the client's doing, what
/// happens after is the server's. A connection that never stalls is timed
/// from `t0`.
async fn flood(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    kib_per_s: u32,
    end: Instant,
    t0: Instant,
) -> End {
    let chunk = b"NOOP\r\n".repeat(4 * 1024 / 6);
    let pause = Duration::from_secs_f64(4.0 / f64::from(kib_per_s.max(1)));
    let mut since = t0;
    let mut stalled = false;
    loop {
        let write_started = Instant::now();
        let wrote = timeout_at(end.into(), wr.write_all(&chunk)).await;
        if !stalled && write_started.elapsed() > STALLED {
            (since, stalled) = (write_started, true);
        }
        match wrote {
            Err(_) => return End::Open(since.elapsed()),
            Ok(Err(_)) => {
                return End::Closed {
                    after: since.elapsed(),
                    last: None,
                };
            }
            Ok(Ok(())) => {}
        }
        if timeout_at(end.into(), tokio::time::sleep(pause))
            .await
            .is_err()
        {
            return End::Open(since.elapsed());
        }
    }
}

/// Normal transactions (connect, EHLO, MAIL, RCPT, DATA, QUIT) from `srcs` in turn,
/// `rate` a second for `duration`, each in its own task (open loop: a slow
/// server does not slow the stream). The latency is the whole transaction,
/// from connect to the 250 after the message.
pub async fn normal(
    addr: SocketAddr,
    srcs: &[IpAddr],
    rate: f64,
    duration: Duration,
    body: Arc<Vec<u8>>,
    env: Envelope,
) -> Outcome {
    let started = Instant::now();
    let end = started + duration;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0.. {
        tick.tick().await;
        if Instant::now() >= end {
            break;
        }
        let Some(src) = srcs.get(i % srcs.len().max(1)).copied() else {
            break;
        };
        let (body, env) = (Arc::clone(&body), env.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let tx = async {
                let mut c = Conn::open_from(Some(src), addr).await?;
                c.message(&body, &env).await?;
                let latency = t0.elapsed();
                let _ = c.quit().await;
                anyhow::Ok(latency)
            };
            match tokio::time::timeout(TRANSACTION_TIMEOUT, tx).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("no 250 within {TRANSACTION_TIMEOUT:?}")),
            }
        });
    }
    let mut out = Outcome::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(latency)) => out.latencies.push(latency),
            Ok(Err(e)) => out.fail(1, &e),
            Err(e) => out.fail(1, &anyhow::anyhow!("a client task failed: {e}")),
        }
    }
    out.elapsed = started.elapsed();
    out
}

/// A new client's first reply: how long it took and its line (`None`: no
/// reply within `wait`, or the connection failed).
pub async fn first_reply(
    src: IpAddr,
    addr: SocketAddr,
    wait: Duration,
) -> (Duration, Option<String>) {
    let t0 = Instant::now();
    let deadline = t0 + wait;
    let Ok(Ok(stream)) =
        timeout_at(deadline.into(), client::connect_from(Some(src), addr, None)).await
    else {
        return (t0.elapsed(), None);
    };
    let mut rd = BufReader::new(stream);
    let mut line = String::new();
    match timeout_at(
        deadline.into(),
        client::read_reply(&mut rd, &mut line, "greeting"),
    )
    .await
    {
        Ok(Ok(_)) => (t0.elapsed(), Some(line.trim_end().to_owned())),
        _ => (t0.elapsed(), None),
    }
}

/// Open `n` connections from `srcs` in turn, each reading its first reply;
/// returns the ones the server greeted with 220 (held open) and how many it
/// turned away.
pub async fn hold(srcs: &[IpAddr], addr: SocketAddr, n: usize) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let Some(src) = srcs.get(i % srcs.len().max(1)) else {
            break;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let Ok(Ok(stream)) = timeout_at(
            deadline.into(),
            client::connect_from(Some(*src), addr, None),
        )
        .await
        else {
            refused += 1;
            continue;
        };
        let mut rd = BufReader::new(stream);
        let mut line = String::new();
        match timeout_at(
            deadline.into(),
            client::read_reply(&mut rd, &mut line, "greeting"),
        )
        .await
        {
            Ok(Ok(220)) => held.push(rd.into_inner()),
            _ => refused += 1,
        }
    }
    (held, refused)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn last_lines() {
        assert_eq!(
            last_line(b"250 ok\r\n421 4.4.2 mx timeout\r\n").as_deref(),
            Some("421 4.4.2 mx timeout")
        );
        assert_eq!(last_line(b"\r\n"), None);
        assert_eq!(last_line(b"partial").as_deref(), Some("partial"));
    }

    /// A loopback server that greets, answers every line with 250 (354 to
    /// DATA) and closes each connection after `close_after`.
    fn closing_server(close_after: Duration) -> SocketAddr {
        use std::io::{BufRead as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut w) = conn else { return };
                std::thread::spawn(move || {
                    let _ = w.set_read_timeout(Some(Duration::from_millis(20)));
                    let _ = w.set_write_timeout(Some(Duration::from_millis(20)));
                    let mut r = std::io::BufReader::new(w.try_clone().unwrap());
                    let t0 = Instant::now();
                    let _ = w.write_all(b"220 fake\r\n");
                    let mut line = String::new();
                    while t0.elapsed() < close_after {
                        line.clear();
                        if let Ok(n) = r.read_line(&mut line) {
                            if n == 0 {
                                return;
                            }
                            let reply: &[u8] = if line.starts_with("DATA") {
                                b"354 go\r\n"
                            } else if line.ends_with('\n') {
                                b"250 ok\r\n"
                            } else {
                                continue;
                            };
                            let _ = w.write_all(reply);
                        }
                    }
                    let _ = w.write_all(b"421 4.4.2 fake timeout\r\n");
                });
            }
        });
        addr
    }

    #[test]
    fn every_kind_sees_the_server_close_it() {
        let addr = closing_server(Duration::from_millis(300));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let src: IpAddr = "127.0.0.1".parse().unwrap();
        let specs = Hostile::ALL
            .into_iter()
            .map(|kind| Spec {
                kind,
                src,
                drip_every: Duration::from_millis(50),
                flood_kib_per_s: 64,
            })
            .collect();
        let env = Envelope {
            from: "a@b.test".into(),
            to: "c@d.test".into(),
        };
        let open = Arc::new(OpenCount::default());
        let end = Instant::now() + Duration::from_millis(1500);
        let ends = rt.block_on(hostile(specs, addr, end, Arc::clone(&open), env));
        assert_eq!(open.get(), 0);
        for kind in Hostile::ALL {
            let closed: Vec<Duration> = ends
                .iter()
                .filter_map(|(k, e)| match e {
                    End::Closed { after, .. } if *k == kind => Some(*after),
                    _ => None,
                })
                .collect();
            assert!(!closed.is_empty(), "{kind:?}: {ends:?}");
            for after in closed {
                assert!(
                    after >= Duration::from_millis(250) && after < Duration::from_secs(1),
                    "{kind:?}: {after:?}"
                );
            }
        }
        // The drip-feeders saw the parting reply.
        assert!(ends.iter().any(|(k, e)| *k == Hostile::DripCommand
            && matches!(e, End::Closed { last: Some(l), .. } if l.starts_with("421"))));
    }
}
