//! One SMTP client connection: every step bounded by a timeout.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use haraka_smtp::client::{Capabilities, ReplyParser};
use haraka_smtp::{Reply, XclientAttrs};
use haraka_tls::Stream;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::auth::{AuthMechanism, base64, plain_response};
use crate::error::{Error, Stage};

mod transaction;

/// Write the DATA stream in pieces of about this size.
const CHUNK: usize = 32 * 1024;
/// Bytes read from the server at once.
const READ_BUF: usize = 4096;

/// How long each step may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the TCP connection.
    pub connect: Duration,
    /// Each command's reply (greeting included), each write, the TLS handshake.
    pub command: Duration,
    /// The reply to the final dot.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(25),
            data_end: Duration::from_secs(25),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    pub timeouts: Timeouts,
    /// Local address to connect from (port chosen by the system).
    pub bind: Option<IpAddr>,
}

/// What STARTTLS did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartTls {
    /// The connection is now TLS; EHLO must be sent again.
    Secured,
    /// The server refused; the plaintext connection is still usable.
    Refused(Reply),
}

/// What XCLIENT did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Xclient {
    /// Accepted; the server greeted anew and EHLO was sent again.
    Done,
    /// The server answered 5xx: carry on without it (no new EHLO needed).
    Refused(Reply),
    /// The server did not advertise any attribute there is a value for.
    NotSent,
}

/// A connected SMTP client.
pub struct SmtpClient {
    stream: Stream,
    parser: ReplyParser,
    peer: SocketAddr,
    timeouts: Timeouts,
    greeting: Reply,
    caps: Capabilities,
    esmtp: bool,
    tls: bool,
    xclient: bool,
    broken: bool,
    /// QUIT went out with the final dot: nothing more may be sent.
    quit_sent: bool,
    /// Where replies are read into (its spare capacity: never zeroed).
    read_buf: Vec<u8>,
}

impl std::fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpClient")
            .field("peer", &self.peer)
            .field("tls", &self.tls)
            .field("xclient", &self.xclient)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// Connect to `addr` and read the greeting, which must be 2xx.
    pub async fn connect(addr: SocketAddr, opts: &ConnectOptions) -> Result<SmtpClient, Error> {
        let t = opts.timeouts;
        let tcp = bounded(Stage::Connect, t.connect, open(addr, opts.bind))
            .await?
            .map_err(|source| Error::Connect { addr, source })?;
        let _ = tcp.set_nodelay(true);
        let mut client = SmtpClient {
            stream: Stream::Plain(tcp),
            parser: ReplyParser::default(),
            peer: addr,
            timeouts: t,
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
            caps: Capabilities::default(),
            esmtp: false,
            tls: false,
            xclient: false,
            broken: false,
            quit_sent: false,
            read_buf: Vec::with_capacity(READ_BUF),
        };
        let greeting = client.read_reply(Stage::Greeting, t.command).await?;
        if !is_2xx(&greeting) {
            return Err(Error::Rejected {
                stage: Stage::Greeting,
                reply: greeting,
            });
        }
        client.greeting = greeting;
        Ok(client)
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }
    /// The capabilities of the last EHLO (empty after HELO or a TLS upgrade).
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }
    pub fn is_tls(&self) -> bool {
        self.tls
    }
    /// XCLIENT was accepted on this connection: it speaks for one client now.
    pub fn xclient_sent(&self) -> bool {
        self.xclient
    }
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }
    /// Whether an IO, timeout or protocol error left the connection unusable, or
    /// QUIT was already sent ([`SmtpClient::message_then_quit`]).
    pub fn is_broken(&self) -> bool {
        self.broken || self.quit_sent
    }

    /// Give the connection up (e.g. with a DATA pending that must not be
    /// completed): nothing more is sent on it, and it is only closed.
    pub fn abandon(&mut self) {
        self.broken = true;
    }

    /// The server already sent something or closed: a pooled connection gone stale.
    pub async fn is_stale(&mut self) -> bool {
        if self.broken || self.parser.buffered() > 0 {
            return true;
        }
        let mut probe = [0u8; 1];
        // A zero timeout still polls the read once: ready means data or EOF.
        match tokio::time::timeout(Duration::ZERO, self.stream.read(&mut probe)).await {
            Err(_) => false,
            Ok(_) => {
                self.broken = true;
                true
            }
        }
    }

    /// EHLO `name`; a 5xx answer falls back to HELO. Returns the capabilities.
    pub async fn ehlo(&mut self, name: &str) -> Result<&Capabilities, Error> {
        let reply = self
            .command_at(Stage::Ehlo, &format!("EHLO {name}"))
            .await?;
        self.ehlo_answered(reply, name).await
    }

    /// Take the capabilities from an EHLO reply; a 5xx falls back to HELO.
    async fn ehlo_answered(&mut self, reply: Reply, name: &str) -> Result<&Capabilities, Error> {
        if is_2xx(&reply) {
            self.caps = Capabilities::from_reply(&reply);
            self.esmtp = true;
            return Ok(&self.caps);
        }
        if !(500..600).contains(&reply.code) {
            return Err(Error::Rejected {
                stage: Stage::Ehlo,
                reply,
            });
        }
        let reply = self
            .command_at(Stage::Helo, &format!("HELO {name}"))
            .await?;
        self.caps = Capabilities::default();
        self.esmtp = false;
        expect_2xx(Stage::Helo, reply)?;
        Ok(&self.caps)
    }

    /// STARTTLS, verifying the server as `server_name` with `config`. A handshake
    /// failure is [`Error::Tls`] and leaves the connection unusable (the caller may
    /// connect again without TLS).
    pub async fn starttls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> Result<StartTls, Error> {
        if !matches!(self.stream, Stream::Plain(_)) {
            return Err(Error::Invalid("STARTTLS on a TLS connection".into()));
        }
        let reply = self.command_at(Stage::StartTls, "STARTTLS").await?;
        if !is_2xx(&reply) {
            return Ok(StartTls::Refused(reply));
        }
        if self.parser.buffered() > 0 {
            // Plaintext after the 220 would be read as if it came over TLS.
            self.broken = true;
            return Err(Error::Protocol {
                stage: Stage::StartTls,
                detail: "data received after the STARTTLS reply".into(),
            });
        }
        self.broken = true; // until the handshake completes
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(Error::Invalid("STARTTLS on a TLS connection".into()));
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = bounded(
            Stage::StartTls,
            self.timeouts.command,
            connector.connect(server_name, tcp),
        )
        .await?
        .map_err(Error::Tls)?;
        self.stream = Stream::Tls(Box::new(tls.into()));
        self.broken = false;
        self.tls = true;
        self.caps = Capabilities::default();
        Ok(StartTls::Secured)
    }

    /// Send the attributes of `attrs` the server advertises in XCLIENT; on success
    /// the server greets anew and EHLO `helo` is sent again (Postfix XCLIENT_README).
    /// A 4xx answer is an error; a 5xx answer is [`Xclient::Refused`].
    ///
    /// With PIPELINING the XCLIENT commands and the EHLO that follows them go in
    /// one write (EHLO ends the group, as RFC 2920 wants), which saves a round
    /// trip per connection; the EHLO is then answered whatever XCLIENT's fate.
    pub async fn xclient(&mut self, attrs: &XclientAttrs, helo: &str) -> Result<Xclient, Error> {
        let advertised = self.caps.params("XCLIENT").unwrap_or_default();
        let commands = attrs.commands(advertised);
        if commands.is_empty() {
            return Ok(Xclient::NotSent);
        }
        if self.caps.has("PIPELINING") {
            return self.xclient_pipelined(&commands, helo).await;
        }
        for line in commands {
            let reply = self.command_at(Stage::Xclient, &line).await?;
            if (500..600).contains(&reply.code) {
                return Ok(Xclient::Refused(reply));
            }
            if !(200..400).contains(&reply.code) {
                return Err(Error::Rejected {
                    stage: Stage::Xclient,
                    reply,
                });
            }
            self.xclient = true;
        }
        self.ehlo(helo).await?;
        Ok(Xclient::Done)
    }

    async fn xclient_pipelined(
        &mut self,
        commands: &[String],
        helo: &str,
    ) -> Result<Xclient, Error> {
        let ehlo = format!("EHLO {helo}");
        let mut batch = Vec::new();
        for line in commands.iter().chain(std::iter::once(&ehlo)) {
            check_line(line)?;
            batch.extend_from_slice(line.as_bytes());
            batch.extend_from_slice(b"\r\n");
        }
        self.write_all(Stage::Xclient, &batch).await?;
        let (mut refused, mut failed) = (None, None);
        for _ in commands {
            let reply = self
                .read_reply(Stage::Xclient, self.timeouts.command)
                .await?;
            if (500..600).contains(&reply.code) {
                refused.get_or_insert(reply);
            } else if !(200..400).contains(&reply.code) {
                failed.get_or_insert(reply);
            } else {
                self.xclient = true;
            }
        }
        let ehlo_reply = self.read_reply(Stage::Ehlo, self.timeouts.command).await?;
        if let Some(reply) = failed {
            return Err(Error::Rejected {
                stage: Stage::Xclient,
                reply,
            });
        }
        self.ehlo_answered(ehlo_reply, helo).await?;
        Ok(match refused {
            Some(reply) => Xclient::Refused(reply),
            None => Xclient::Done,
        })
    }

    /// AUTH with `mechanism`; answers other than 2xx/334 are errors.
    pub async fn auth(
        &mut self,
        mechanism: AuthMechanism,
        user: &str,
        pass: &str,
    ) -> Result<Reply, Error> {
        let reply = match mechanism {
            AuthMechanism::Plain => {
                let line = format!("AUTH PLAIN {}", plain_response(user, pass));
                self.command_at(Stage::Auth, &line).await?
            }
            AuthMechanism::Login => {
                let mut reply = self.command_at(Stage::Auth, "AUTH LOGIN").await?;
                for secret in [user, pass] {
                    if reply.code != 334 {
                        break;
                    }
                    reply = self
                        .command_at(Stage::Auth, &base64(secret.as_bytes()))
                        .await?;
                }
                reply
            }
        };
        expect_2xx(Stage::Auth, reply)
    }

    /// RSET (before reusing the connection for another message).
    pub async fn rset(&mut self) -> Result<Reply, Error> {
        let reply = self.command_at(Stage::Rset, "RSET").await?;
        expect_2xx(Stage::Rset, reply)
    }

    pub async fn noop(&mut self) -> Result<Reply, Error> {
        let reply = self.command_at(Stage::Noop, "NOOP").await?;
        expect_2xx(Stage::Noop, reply)
    }

    /// Any command line; the reply is returned whatever its code.
    pub async fn command(&mut self, line: &str) -> Result<Reply, Error> {
        self.command_at(Stage::Other, line).await
    }

    /// QUIT, wait briefly for the reply, close. Errors are ignored: the work is done.
    pub async fn quit(mut self) {
        if self.quit_sent {
            return;
        }
        if !self.broken && self.command_at(Stage::Quit, "QUIT").await.is_ok() {
            let _ = tokio::time::timeout(self.timeouts.command, self.stream.shutdown()).await;
        }
    }

    async fn command_at(&mut self, stage: Stage, line: &str) -> Result<Reply, Error> {
        check_line(line)?;
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write_all(stage, &bytes).await?;
        self.read_reply(stage, self.timeouts.command).await
    }

    async fn write_all(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), Error> {
        if self.broken || self.quit_sent {
            return Err(Error::Closed { stage });
        }
        let limit = self.timeouts.command;
        let stream = &mut self.stream;
        let result = bounded(stage, limit, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => {
                self.broken = true;
                Err(io_error(stage, source))
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    async fn read_reply(&mut self, stage: Stage, limit: Duration) -> Result<Reply, Error> {
        if self.broken {
            return Err(Error::Closed { stage });
        }
        let result = bounded(stage, limit, self.read_reply_inner(stage)).await;
        let result = result.and_then(|r| r);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn read_reply_inner(&mut self, stage: Stage) -> Result<Reply, Error> {
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::Protocol {
                        stage,
                        detail: e.to_string(),
                    });
                }
            }
            // A buffer kept in the client, not an array in this future: every
            // await of a reply would otherwise zero and move 4 KiB.
            self.read_buf.clear();
            let n = self
                .stream
                .read_buf(&mut self.read_buf)
                .await
                .map_err(|source| io_error(stage, source))?;
            if n == 0 {
                return Err(Error::Closed { stage });
            }
            self.parser.feed(self.read_buf.get(..n).unwrap_or_default());
        }
    }
}

async fn open(addr: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}

/// `fut` within `limit`, or a timeout error for `stage`.
async fn bounded<T>(
    stage: Stage,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| Error::Timeout {
            stage,
            after: limit,
        })
}

fn io_error(stage: Stage, source: io::Error) -> Error {
    match source.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Error::Closed { stage },
        _ => Error::Io { stage, source },
    }
}

fn is_2xx(reply: &Reply) -> bool {
    (200..300).contains(&reply.code)
}

fn expect_2xx(stage: Stage, reply: Reply) -> Result<Reply, Error> {
    if is_2xx(&reply) {
        Ok(reply)
    } else {
        Err(Error::Rejected { stage, reply })
    }
}

/// Command arguments come from peers: a CR or LF would inject a second command.
fn check_line(line: &str) -> Result<(), Error> {
    if line.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Error::Invalid(format!(
            "refusing to send a command with CR, LF or NUL: {:?}",
            line.escape_debug().to_string()
        )));
    }
    Ok(())
}
