//! Listeners, the accept loop and graceful shutdown (through each connection's
//! [`Shutdown`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use haraka_smtp::reply::Overload;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::context::ServerContext;
use crate::driver;
use crate::limits::{ConnLimits, LogEvery};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Bound listeners, ready to serve.
pub struct Server {
    listeners: Vec<TcpListener>,
    ctx: Arc<ServerContext>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addrs", &self.local_addrs())
            .finish()
    }
}

/// Tells a running server to stop accepting and wind down.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        let _ = self.0.send(true);
    }
}

/// How far the server's shutdown has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// The listeners are closed; open sessions go on until the grace period ends.
    Draining,
    /// The grace period is over: every session ends now.
    Closing,
}

/// One connection's view of the server's shutdown: each connection's driver holds
/// one, and [`Server::run`] moves them all through the [`Phase`]s.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<Phase>);

impl Shutdown {
    /// Resolves once the server has reached `phase` (or is gone).
    pub async fn reached(&mut self, phase: Phase) {
        let _ = self.0.wait_for(|p| *p >= phase).await;
    }
}

impl Server {
    /// Bind every address (before privileges are dropped).
    pub async fn bind(
        addrs: &[SocketAddr],
        ctx: Arc<ServerContext>,
    ) -> Result<Server, ServerError> {
        let mut listeners = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let l = match bind_one(addr) {
                // Haraka's default `[::0]:25` falls back to IPv4 where IPv6 is missing.
                Err(e) if is_v6_any(addr) && no_ipv6(&e) => {
                    let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
                    tracing::warn!("cannot listen on {addr} ({e}); using {v4}");
                    bind_one(v4).map_err(|source| ServerError::Bind { addr: v4, source })?
                }
                other => other.map_err(|source| ServerError::Bind { addr, source })?,
            };
            tracing::info!("listening on {}", l.local_addr().unwrap_or(addr));
            listeners.push(l);
        }
        Ok(Server { listeners, ctx })
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serve until `shutdown` fires, then let sessions finish for at most `grace`.
    ///
    /// Each accept task spawns its sessions itself, so a new session starts on
    /// the worker thread that accepted it, with no hop through another task (the
    /// caller may be running this on a thread outside the runtime's workers).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let sessions = Arc::new(Mutex::new(JoinSet::new()));
        let (phase, _) = watch::channel(Phase::Running);
        let mut accepts = JoinSet::new();
        let limits = ConnLimits::new(self.ctx.caps);
        for listener in self.listeners {
            let accept = Accept {
                listener,
                sessions: Arc::clone(&sessions),
                ctx: Arc::clone(&self.ctx),
                phase: phase.clone(),
                limits: Arc::clone(&limits),
            };
            accepts.spawn(accept.run());
        }
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        accepts.abort_all();
        while accepts.join_next().await.is_some() {}
        phase.send_replace(Phase::Draining);
        let mut sessions =
            std::mem::take(&mut *sessions.lock().unwrap_or_else(PoisonError::into_inner));
        while sessions.try_join_next().is_some() {}
        tracing::info!(
            "shutting down: {} session(s) open, waiting up to {:?}",
            sessions.len(),
            grace
        );
        let drained = tokio::time::timeout(grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("force shutdown: closing {} session(s)", sessions.len());
            phase.send_replace(Phase::Closing);
            while sessions.join_next().await.is_some() {}
        }
        self.ctx.pipeline.shutdown();
    }
}

/// How often the accept loop may log the same kind of trouble.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// The first and the longest pause after an accept error (e.g. out of descriptors).
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// One listener's accept loop.
struct Accept {
    listener: TcpListener,
    sessions: Arc<Mutex<JoinSet<()>>>,
    ctx: Arc<ServerContext>,
    phase: watch::Sender<Phase>,
    limits: Arc<ConnLimits>,
}

impl Accept {
    /// Accept until aborted. Connections beyond a cap get their `421` and are
    /// closed here, before any TLS, hook or rDNS. An accept error (out of file
    /// descriptors, above all) never ends the loop and never makes it spin: it waits
    /// until a connection closes or a short, growing pause ends, and it is logged
    /// once per [`LOG_INTERVAL`] with a count.
    async fn run(self) {
        let refusals = [Overload::Server, Overload::ClientAddress]
            .map(|o| o.reply(&self.ctx.session.me).to_bytes());
        let mut refused = LogEvery::new(LOG_INTERVAL);
        let mut failed = LogEvery::new(LOG_INTERVAL);
        let mut backoff = BACKOFF_MIN;
        loop {
            // Taken before accepting, so a slot given back meanwhile is not missed.
            let released = self.limits.released();
            let (tcp, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if per_connection(&e) => {
                    tracing::debug!("accept: {e}");
                    continue;
                }
                Err(e) => {
                    if let Some(n) = failed.hit(Instant::now()) {
                        tracing::warn!(
                            "accept failed: {e} ({n} time(s) since the last report; \
                             retrying as connections close)"
                        );
                    }
                    tokio::select! {
                        () = released => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            let local = tcp.local_addr().unwrap_or(peer);
            let slot = match self.limits.try_acquire(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    // SMTPS clients would not understand a plaintext reply.
                    let tls = self.ctx.implicit_tls.as_ref();
                    if tls.is_none_or(|t| t.port != local.port()) {
                        let reply = match why {
                            Overload::Server => &refusals[0],
                            Overload::ClientAddress => &refusals[1],
                        };
                        // A fresh socket's send buffer is empty: this never waits.
                        let _ = tcp.try_write(reply);
                    }
                    if let Some(n) = refused.hit(Instant::now()) {
                        let cap = match why {
                            Overload::Server => "max_connections",
                            Overload::ClientAddress => "max_connections_per_ip",
                        };
                        tracing::info!(
                            "refused {}: {cap} reached ({n} refusal(s) since the last report)",
                            peer.ip()
                        );
                    }
                    continue;
                }
            };
            let mut set = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            // Reap the sessions that ended since the last accept.
            while set.try_join_next().is_some() {}
            let shutdown = Shutdown(self.phase.subscribe());
            let ctx = Arc::clone(&self.ctx);
            set.spawn(driver::serve(tcp, peer, local, ctx, shutdown, slot));
        }
    }
}

/// An accept error that concerns only the connection being accepted.
fn per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// A shutdown channel: the handle fires it, the receiver goes to [`Server::run`].
pub fn shutdown_channel() -> (ShutdownHandle, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    (ShutdownHandle(tx), rx)
}

fn is_v6_any(addr: SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().is_unspecified())
}

/// The kernel has no IPv6 (`EAFNOSUPPORT`) or no IPv6 address to bind (`EADDRNOTAVAIL`).
fn no_ipv6(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AddrNotAvailable
        || e.raw_os_error() == Some(nix::libc::EAFNOSUPPORT)
}

/// The kernel send buffer of every client connection (accepted sockets inherit it
/// from the listener). SMTP sends a client only replies, so this is plenty, and it
/// turns off the kernel's growth of the buffer up to megabytes: a client that
/// pipelines commands and never reads fills it within a few hundred kilobytes of
/// replies, after which `write_timeout` closes it.
const CLIENT_SEND_BUFFER: u32 = 64 * 1024;

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(CLIENT_SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
