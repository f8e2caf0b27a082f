//! A scripted SMTP server on 127.0.0.1 for tests of code that uses this client
//! (feature `testing`). It records every line and every DATA body it receives.
//!
//! By default it behaves like a plain Postfix: `220` greeting, EHLO lists
//! [`FakeServer::ehlo`], XCLIENT answers a new `220` greeting, STARTTLS upgrades
//! when a TLS configuration is given, DATA answers `354`, the final dot
//! `250 2.0.0 Ok: queued as FAKE<n>`. A handler can replace any answer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::server::TlsStream;

/// What the server does in answer to a line (or to the connection, for `greeting`,
/// or to the end of DATA, for `.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes (CRLF-terminated lines, possibly several replies).
    Reply(String),
    /// Say nothing and keep reading.
    Silent,
    /// Close the connection.
    Close,
    /// During DATA: close after the first bytes of the message arrive.
    CloseMidData,
}

impl Action {
    pub fn reply(text: &str) -> Action {
        let mut s = text.replace("\r\n", "\n").replace('\n', "\r\n");
        if !s.ends_with("\r\n") {
            s.push_str("\r\n");
        }
        Action::Reply(s)
    }
}

/// Decides answers: return `None` to get the default answer.
pub type Handler = Arc<dyn Fn(&Session, &str) -> Option<Action> + Send + Sync>;

/// What one connection has seen so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// Index of the connection (0 = first accepted).
    pub index: usize,
    /// Every command line received, in order (DATA bodies are not lines).
    pub lines: Vec<String>,
    /// Every message received, as sent (dot-stuffed, up to and including `.\r\n`).
    pub messages: Vec<Vec<u8>>,
    pub tls: bool,
    pub xclient: bool,
    /// The connection has ended.
    pub closed: bool,
}

/// The server's recorded sessions.
#[derive(Debug, Default)]
pub struct Record {
    sessions: Mutex<Vec<Session>>,
    changed: Notify,
}

impl Record {
    /// A copy of every session so far.
    pub fn sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wait until `pred` holds for the recorded sessions (no sleeping: woken by
    /// each change).
    pub async fn wait_for(&self, pred: impl Fn(&[Session]) -> bool) -> Vec<Session> {
        loop {
            let notified = self.changed.notified();
            let now = self.sessions();
            if pred(&now) {
                return now;
            }
            notified.await;
        }
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut Session)) {
        let mut all = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = all.get_mut(index) {
            f(s);
        }
        drop(all);
        self.changed.notify_waiters();
    }

    fn snapshot(&self, index: usize) -> Session {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .cloned()
            .unwrap_or_default()
    }
}

/// The fake server's settings.
#[derive(Clone)]
pub struct FakeServer {
    /// Keyword lines of the EHLO reply (after the first line).
    pub ehlo: Vec<String>,
    /// For STARTTLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub handler: Option<Handler>,
}

impl Default for FakeServer {
    fn default() -> FakeServer {
        FakeServer {
            ehlo: vec!["PIPELINING".into(), "8BITMIME".into()],
            tls: None,
            handler: None,
        }
    }
}

/// A running fake server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
}

impl FakeServer {
    pub fn with_ehlo(mut self, lines: &[&str]) -> FakeServer {
        self.ehlo = lines.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn with_handler(
        mut self,
        f: impl Fn(&Session, &str) -> Option<Action> + Send + Sync + 'static,
    ) -> FakeServer {
        self.handler = Some(Arc::new(f));
        self
    }

    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> FakeServer {
        self.tls = Some(config);
        self
    }

    /// Listen on 127.0.0.1 (any port) and serve connections until the runtime ends.
    pub async fn start(self) -> io::Result<Running> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let record = Arc::new(Record::default());
        let rec = Arc::clone(&record);
        let server = Arc::new(self);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let index = {
                    let mut all = rec.sessions.lock().unwrap_or_else(PoisonError::into_inner);
                    let index = all.len();
                    all.push(Session {
                        index,
                        ..Session::default()
                    });
                    all.len() - 1
                };
                rec.changed.notify_waiters();
                let (server, rec) = (Arc::clone(&server), Arc::clone(&rec));
                tokio::spawn(async move {
                    let _ = server.serve(Io::Plain(tcp), index, &rec).await;
                    rec.update(index, |s| s.closed = true);
                });
            }
        });
        Ok(Running { addr, record })
    }

    fn answer(&self, session: &Session, line: &str, count: usize) -> Action {
        if let Some(a) = self.handler.as_ref().and_then(|h| h(session, line)) {
            return a;
        }
        let verb = line
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "GREETING" | "XCLIENT" => Action::reply("220 backend.test ESMTP fake"),
            "EHLO" => {
                let mut lines = vec!["250-backend.test".to_string()];
                let mut caps = self.ehlo.clone();
                if session.tls {
                    caps.retain(|c| !c.eq_ignore_ascii_case("STARTTLS"));
                }
                for c in &caps {
                    lines.push(format!("250-{c}"));
                }
                if let Some(last) = lines.last_mut() {
                    *last = last.replacen("250-", "250 ", 1);
                }
                Action::reply(&lines.join("\n"))
            }
            "HELO" => Action::reply("250 backend.test"),
            "STARTTLS" => Action::reply("220 2.0.0 Ready to start TLS"),
            "DATA" => Action::reply("354 End data with <CR><LF>.<CR><LF>"),
            "." => Action::reply(&format!("250 2.0.0 Ok: queued as FAKE{count}")),
            "QUIT" => Action::reply("221 2.0.0 Bye"),
            "MAIL" | "RCPT" | "RSET" | "NOOP" | "AUTH" => Action::reply("250 2.0.0 Ok"),
            _ => Action::reply("502 5.5.2 Error: command not recognized"),
        }
    }

    async fn serve(&self, mut io: Io, index: usize, rec: &Record) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::new();
        let mut count = 0usize;
        match self.answer(&rec.snapshot(index), "GREETING", 0) {
            Action::Reply(r) => send(&mut io, r.as_bytes()).await?,
            Action::Close | Action::CloseMidData => return Ok(()),
            Action::Silent => {}
        }
        loop {
            let Some(line) = read_line(&mut io, &mut buf).await? else {
                return Ok(());
            };
            rec.update(index, |s| s.lines.push(line.clone()));
            let session = rec.snapshot(index);
            let action = self.answer(&session, &line, count);
            let verb = line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match action {
                Action::Silent => continue,
                Action::Close => return Ok(()),
                Action::CloseMidData => {
                    send(&mut io, b"354 go ahead\r\n").await?;
                    let mut chunk = [0u8; 1];
                    let _ = io.read(&mut chunk).await?;
                    return Ok(());
                }
                Action::Reply(r) => {
                    send(&mut io, r.as_bytes()).await?;
                    let ok = r.starts_with('2') || r.starts_with('3');
                    if verb == "QUIT" {
                        return Ok(());
                    }
                    if verb == "XCLIENT" && ok {
                        rec.update(index, |s| s.xclient = true);
                    }
                    if verb == "STARTTLS" && ok {
                        let Some(cfg) = self.tls.clone() else {
                            continue;
                        };
                        let Io::Plain(tcp) = io else {
                            return Ok(());
                        };
                        buf.clear();
                        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                        io = Io::Tls(Box::new(acceptor.accept(tcp).await?));
                        rec.update(index, |s| s.tls = true);
                        continue;
                    }
                    if verb == "DATA" && r.starts_with("354") {
                        let msg = read_message(&mut io, &mut buf).await?;
                        count += 1;
                        rec.update(index, |s| s.messages.push(msg));
                        let session = rec.snapshot(index);
                        match self.answer(&session, ".", count) {
                            Action::Reply(r) => send(&mut io, r.as_bytes()).await?,
                            Action::Silent => {}
                            Action::Close | Action::CloseMidData => return Ok(()),
                        }
                    }
                }
            }
        }
    }
}

async fn send(io: &mut Io, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

async fn read_line(io: &mut Io, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    loop {
        if let Some(pos) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..pos + 2).take(pos).collect();
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn read_message(io: &mut Io, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    loop {
        let end = if buf.starts_with(b".\r\n") {
            Some(3)
        } else {
            buf.windows(5)
                .position(|w| w == b"\r\n.\r\n")
                .map(|p| p + 5)
        };
        if let Some(end) = end {
            return Ok(buf.drain(..end).collect());
        }
        let mut chunk = [0u8; 16384];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A self-signed certificate for `name` (a DNS name or an IP), as a server
/// configuration and a client configuration that trusts exactly that certificate.
pub fn tls_pair(
    name: &str,
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>), String> {
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck =
        rcgen::generate_simple_self_signed(vec![name.to_string()]).map_err(|e| e.to_string())?;
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).map_err(|e| e.to_string())?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server), Arc::new(client)))
}
