//! A raw SMTP dialogue from a chosen 127.0.0.x source address, for what
//! swaks will not send (XCLIENT to a server that does not offer it, odd
//! pipelining, bare LFs, ...).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};

/// One SMTP reply: its code and every line's text after the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The lines as received, without CRLF.
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined by newlines.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A connected SMTP client that sends exactly what it is told.
pub struct RawSmtp {
    reader: BufReader<TcpStream>,
    transcript: String,
}

impl RawSmtp {
    /// Connect from `from` to `to` and read the greeting.
    pub fn connect(from: Ipv4Addr, to: SocketAddrV4) -> anyhow::Result<(Self, Reply)> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .context("creating a socket")?;
        bind(
            fd.as_raw_fd(),
            &SockaddrIn::from(SocketAddrV4::new(from, 0)),
        )
        .with_context(|| format!("binding {from}"))?;
        connect(fd.as_raw_fd(), &SockaddrIn::from(to))
            .with_context(|| format!("connecting {from} -> {to}"))?;
        let stream = TcpStream::from(fd);
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut this = Self {
            reader: BufReader::new(stream),
            transcript: String::new(),
        };
        let greeting = this.read_reply()?;
        Ok((this, greeting))
    }

    /// Send `line` plus CRLF and read the reply.
    pub fn cmd(&mut self, line: &str) -> anyhow::Result<Reply> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.read_reply()
    }

    /// Send bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        for l in String::from_utf8_lossy(bytes).lines() {
            self.transcript.push_str(&format!("C: {l}\n"));
        }
        self.reader
            .get_mut()
            .write_all(bytes)
            .context("sending to the server")
    }

    /// Read one (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut buf)
                .context("reading a reply")?;
            if n == 0 {
                bail!("connection closed; so far:\n{}", self.transcript);
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
            self.transcript.push_str(&format!("S: {line}\n"));
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                bail!("not an SMTP reply: {line:?}; so far:\n{}", self.transcript);
            };
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// Everything sent (`C:`) and received (`S:`) so far.
    pub fn transcript(&self) -> &str {
        &self.transcript
    }
}
