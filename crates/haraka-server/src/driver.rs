//! The per-connection driver: moves bytes between the socket and the sans-IO
//! [`Session`], runs the hooks it asks for, performs STARTTLS and rDNS, waits for
//! input no longer than the session's [`Session::poll_timeout`], and drops the
//! connection when the server's [`Shutdown`] closes every session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use haraka_plugin_api::{Action, Connection, Hook, HookArgs, Local, Outcome, Remote, TlsInfo};
use haraka_smtp::{Event, Session};
use haraka_tls::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::context::ServerContext;
use crate::limits::ConnSlot;
use crate::server::{Phase, Shutdown};

/// Read buffer size per connection.
const READ_CHUNK: usize = 16 * 1024;

/// Serve one client until the session ends or the server closes every session.
pub async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: Arc<ServerContext>,
    mut shutdown: Shutdown,
    // Given back (dropped) however this connection ends.
    _slot: ConnSlot,
) {
    let _ = tcp.set_nodelay(true);
    let conn = Connection::new(
        ctx.env.connection_uuid(),
        Remote::new(peer.ip(), peer.port()),
        Local {
            ip: local.ip(),
            port: local.port(),
            host: ctx.session.me.clone(),
        },
    );
    let span = tracing::info_span!("conn", uuid = %conn.uuid);
    let serving = async move {
        tracing::info!(
            "connect ip={} port={} local_port={}",
            peer.ip(),
            peer.port(),
            local.port()
        );
        let implicit = ctx
            .implicit_tls
            .as_ref()
            .filter(|t| t.port == local.port())
            .map(|t| t.config.clone());
        let mut session = Session::new(conn, ctx.session.clone(), ctx.env.session_env());
        let mut driver = Driver {
            stream: Stream::Plain(tcp),
            out: Vec::with_capacity(1024),
            ctx,
        };
        if let Some(config) = implicit {
            // SMTPS: the handshake comes before the greeting.
            match driver.handshake(config).await {
                Some(info) => session.conn_mut().tls = info,
                None => return,
            }
        }
        driver.run(&mut session).await;
        tracing::info!("disconnect");
    }
    .instrument(span);
    tokio::select! {
        () = serving => {}
        () = shutdown.reached(Phase::Closing) => {}
    }
}

struct Driver {
    stream: Stream,
    out: Vec<u8>,
    ctx: Arc<ServerContext>,
}

impl Driver {
    async fn run(&mut self, session: &mut Session) {
        session.start();
        // Read into spare capacity: nothing to zero per connection.
        let mut buf = Vec::with_capacity(READ_CHUNK);
        loop {
            if !self.drain(session).await {
                return;
            }
            let Some(limit) = session.poll_timeout() else {
                let _ = self.flush().await;
                return;
            };
            if self.flush().await.is_err() {
                self.peer_gone(session).await;
                return;
            }
            buf.clear();
            // The session keeps no clock: it is told how long each wait took, so
            // its limits count only time spent waiting for this client.
            let waiting = tokio::time::Instant::now();
            match tokio::time::timeout(limit, self.stream.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.peer_gone(session).await;
                    return;
                }
                Ok(Ok(n)) => {
                    session.time_passed(waiting.elapsed());
                    session.feed(buf.get(..n).unwrap_or_default());
                }
                Err(_) => session.handle_timeout(),
            }
        }
    }

    /// Handle every event the session has; `false` once the connection is closed.
    async fn drain(&mut self, session: &mut Session) -> bool {
        while let Some(event) = session.poll() {
            match event {
                Event::Send(bytes) => self.out.extend_from_slice(&bytes),
                Event::Hook { hook, args } => {
                    // Replies already produced go out before a hook that may take
                    // time, unless the client pipelined more commands.
                    if !self.out.is_empty()
                        && session.buffered() == 0
                        && self.flush().await.is_err()
                    {
                        self.peer_gone(session).await;
                        return false;
                    }
                    let outcome = self.run_hook(hook, &args, session).await;
                    if hook == Hook::Connect {
                        self.take_early_input(session);
                    }
                    session.hook_done(outcome);
                }
                Event::ResolveRdns => {
                    let ip = session.conn().remote.ip;
                    let result = self.ctx.rdns.reverse(ip).await;
                    session.rdns_done(result);
                }
                Event::StartTls(upgrade) => {
                    if self.flush().await.is_err() {
                        self.peer_gone(session).await;
                        return false;
                    }
                    match self.start_tls(upgrade).await {
                        Some(info) => session.tls_done(info),
                        None => {
                            session.tls_failed();
                            self.stream = Stream::Gone;
                        }
                    }
                }
                Event::Close => {
                    let _ = self.flush().await;
                    // TLS owes the peer a close_notify; a plain socket is just
                    // closed (close sends the FIN; a shutdown call would cost a
                    // syscall per connection for nothing).
                    if matches!(self.stream, Stream::Tls(_)) {
                        let limit = self.ctx.write_timeout;
                        let _ = tokio::time::timeout(limit, self.stream.shutdown()).await;
                    }
                    self.stream = Stream::Gone;
                    // The session still owes the disconnect hook.
                    while let Some(ev) = session.poll() {
                        if let Event::Hook { hook, args } = ev {
                            let outcome = self.run_hook(hook, &args, session).await;
                            session.hook_done(outcome);
                        }
                    }
                    return false;
                }
            }
        }
        true
    }

    /// The greeting is decided next: input that already arrived goes to the
    /// session first, which marks the client an early talker (Haraka's
    /// `connection.early_talker`, read by plugins such as `early_talker`). One
    /// poll without waiting: when the socket is not known to be readable it costs
    /// no system call; what does not fit is read as usual afterwards.
    fn take_early_input(&mut self, session: &mut Session) {
        let mut early = [0u8; 512];
        if let Some(Ok(n)) = self.stream.read(&mut early).now_or_never()
            && let Some(bytes) = early.get(..n)
            && !bytes.is_empty()
        {
            session.feed(bytes);
        }
    }

    async fn run_hook(&self, hook: Hook, args: &HookArgs, session: &mut Session) -> Outcome {
        let outcome = self.ctx.pipeline.run(hook, session.conn_mut(), args).await;
        if hook == Hook::QueueOutbound
            && outcome.action == Action::Cont
            && let Some(outbound) = &self.ctx.outbound
        {
            return outbound.enqueue(session.conn()).await;
        }
        outcome
    }

    /// Send what the session produced. A client that stops reading fails this once
    /// a write has made no progress for `write_timeout`; its output is dropped.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let limit = self.ctx.write_timeout;
        let res = write_all_bounded(&mut self.stream, &self.out, limit).await;
        self.out.clear();
        if let Err(e) = &res
            && e.kind() == std::io::ErrorKind::TimedOut
        {
            tracing::info!("write timeout: the client read nothing for {limit:?}");
        }
        res
    }

    async fn peer_gone(&mut self, session: &mut Session) {
        session.peer_closed();
        self.out.clear();
        while let Some(ev) = session.poll() {
            if let Event::Hook { hook, args } = ev {
                let outcome = self.run_hook(hook, &args, session).await;
                session.hook_done(outcome);
            }
        }
    }

    async fn start_tls(&mut self, upgrade: haraka_plugin_api::TlsUpgrade) -> Option<TlsInfo> {
        match upgrade.0.downcast::<rustls::ServerConfig>() {
            Ok(config) => self.handshake(config).await,
            Err(_) => {
                tracing::error!(
                    "STARTTLS requested with a configuration that is not a rustls ServerConfig"
                );
                None
            }
        }
    }

    /// The server side of a TLS handshake on the plain stream.
    async fn handshake(&mut self, config: Arc<rustls::ServerConfig>) -> Option<TlsInfo> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return None;
        };
        let acceptor = TlsAcceptor::from(config);
        match tokio::time::timeout(self.ctx.tls_handshake_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => {
                let (_, state) = tls.get_ref();
                let info = TlsInfo {
                    enabled: true,
                    advertised: true,
                    verified: state.peer_certificates().is_some_and(|c| !c.is_empty()),
                    cipher: state
                        .negotiated_cipher_suite()
                        .and_then(|s| s.suite().as_str().map(iana_cipher_name)),
                    version: state
                        .protocol_version()
                        .and_then(|v| v.as_str().map(str::to_owned)),
                    peer_subject: None,
                };
                tracing::info!(cipher = ?info.cipher, version = ?info.version, "TLS established");
                self.stream = Stream::Tls(Box::new(tls.into()));
                Some(info)
            }
            Ok(Err(e)) => {
                tracing::warn!("TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                tracing::warn!("TLS handshake timed out");
                None
            }
        }
    }
}

/// Write all of `buf` and flush; `TimedOut` once one write has made no progress for
/// `limit`. The timer is only set when the socket is not writable at once, so the
/// common case costs what `write_all` costs.
async fn write_all_bounded(
    stream: &mut Stream,
    mut buf: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    let stalled = || std::io::Error::new(std::io::ErrorKind::TimedOut, "write timeout");
    while !buf.is_empty() {
        // A write that is not ready has taken nothing, so dropping it is safe.
        let n = match stream.write(buf).now_or_never() {
            Some(r) => r?,
            None => tokio::time::timeout(limit, stream.write(buf))
                .await
                .map_err(|_| stalled())??,
        };
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = buf.get(n..).unwrap_or_default();
    }
    match stream.flush().now_or_never() {
        Some(r) => r,
        None => tokio::time::timeout(limit, stream.flush())
            .await
            .map_err(|_| stalled())?,
    }
}

/// The IANA name of a cipher suite, as Haraka prints it (`TLS_AES_256_GCM_SHA384`);
/// rustls names the TLS 1.3 suites `TLS13_…`.
fn iana_cipher_name(rustls_name: &str) -> String {
    match rustls_name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => rustls_name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::iana_cipher_name;

    #[test]
    fn cipher_names_are_iana() {
        assert_eq!(
            iana_cipher_name("TLS13_AES_256_GCM_SHA384"),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            iana_cipher_name("TLS13_CHACHA20_POLY1305_SHA256"),
            "TLS_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(
            iana_cipher_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
    }
}
