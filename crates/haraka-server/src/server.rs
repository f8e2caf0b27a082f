//! Listeners, the accept loop and graceful shutdown (through each connection's
//! [`Shutdown`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::context::ServerContext;
use crate::driver;

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
        for listener in self.listeners {
            let sessions = Arc::clone(&sessions);
            let ctx = Arc::clone(&self.ctx);
            let phase = phase.clone();
            accepts.spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((tcp, peer)) => {
                            let local = tcp.local_addr().unwrap_or(peer);
                            let mut set = sessions.lock().unwrap_or_else(PoisonError::into_inner);
                            // Reap the sessions that ended since the last accept.
                            while set.try_join_next().is_some() {}
                            let shutdown = Shutdown(phase.subscribe());
                            set.spawn(driver::serve(tcp, peer, local, Arc::clone(&ctx), shutdown));
                        }
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
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

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
