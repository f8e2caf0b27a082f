//! swaks as the SMTP client: a builder for one session and its transcript,
//! with functions that find the reply to a given command.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The header that tags a test message so it can be found after delivery.
pub const ID_HEADER: &str = "X-E2E-Id";

/// One swaks run, built up option by option. Every run names its server,
/// EHLO and sender explicitly so swaks never looks anything up.
#[derive(Debug, Clone)]
pub struct Swaks {
    server: SocketAddr,
    args: Vec<String>,
    peer_cert: Option<PathBuf>,
}

impl Swaks {
    /// A session to `server` with EHLO `e2e-client.test`, sender
    /// `sender@sender.test` (a domain whose MX, the Postfix MX host, takes
    /// bounces), recipient `rcpt`.
    pub fn new(server: SocketAddr, rcpt: &str) -> Self {
        let mut s = Self {
            server,
            args: Vec::new(),
            peer_cert: None,
        };
        s.args.extend(
            [
                "--server",
                &server.ip().to_string(),
                "--port",
                &server.port().to_string(),
                "--to",
                rcpt,
                "--timeout",
                "30",
            ]
            .map(str::to_owned),
        );
        s.opt("--ehlo", "e2e-client.test")
            .opt("--from", "sender@sender.test")
    }

    /// Add (or, for a single-valued option, override) `flag value`.
    pub fn opt(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value.to_owned());
        self
    }

    /// Add a bare flag.
    pub fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.to_owned());
        self
    }

    /// Connect from this local address (any 127.0.0.x works on Linux).
    pub fn source_ip(self, ip: IpAddr) -> Self {
        self.opt("--local-interface", &ip.to_string())
    }

    /// The EHLO name.
    pub fn ehlo(self, name: &str) -> Self {
        self.opt("--ehlo", name)
    }

    /// The envelope sender (also the From header).
    pub fn mail_from(self, addr: &str) -> Self {
        self.opt("--from", addr)
    }

    /// Add a header line (`Name: value`).
    pub fn header(self, line: &str) -> Self {
        self.opt("--add-header", line)
    }

    /// Tag the message with `X-E2E-Id: id`.
    pub fn id(self, id: &str) -> Self {
        self.header(&format!("{ID_HEADER}: {id}"))
    }

    /// The body text.
    pub fn body(self, text: &str) -> Self {
        self.opt("--body", text)
    }

    /// Require STARTTLS.
    pub fn starttls(self) -> Self {
        self.flag("--tls")
    }

    /// Save the server's TLS certificate (PEM) to `path`; the transcript
    /// returns it in [`Transcript::peer_cert`].
    pub fn save_peer_cert(mut self, path: &Path) -> Self {
        self.peer_cert = Some(path.to_path_buf());
        self.opt("--tls-get-peer-cert", &path.display().to_string())
    }

    /// Stop after a stage: CONNECT, FIRST-HELO, XCLIENT, TLS, HELO, MAIL, RCPT, DATA, DOT.
    pub fn quit_after(self, stage: &str) -> Self {
        self.opt("--quit-after", stage)
    }

    /// Send `XCLIENT ADDR=addr [HELO=helo] NAME=[UNAVAILABLE]` after the first EHLO.
    /// With `verify == false` it is sent even if the server does not offer it.
    pub fn xclient(self, addr: IpAddr, helo: Option<&str>, verify: bool) -> Self {
        let mut s = self
            .opt("--xclient-addr", &addr.to_string())
            .opt("--xclient-name", "[UNAVAILABLE]");
        if let Some(h) = helo {
            s = s.opt("--xclient-helo", h);
        }
        if verify {
            s
        } else {
            s.flag("--xclient-no-verify")
        }
    }

    /// The SMTP timeout for each step.
    pub fn timeout(self, t: Duration) -> Self {
        self.opt("--timeout", &format!("{}s", t.as_secs().max(1)))
    }

    /// Run the session. A refused command is not an `Err`: it is in the
    /// transcript; `Err` means swaks itself could not run.
    pub fn run(&self) -> anyhow::Result<Transcript> {
        if let Some(p) = &self.peer_cert {
            let _ = std::fs::remove_file(p);
        }
        let started = Instant::now();
        let out = Command::new("swaks")
            .args(&self.args)
            .env("LC_ALL", "C")
            .output()
            .with_context(|| format!("running swaks {}", self.args.join(" ")))?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let peer_cert = match &self.peer_cert {
            Some(p) => std::fs::read_to_string(p).ok(),
            None => None,
        };
        Ok(Transcript {
            server: self.server,
            command: format!("swaks {}", self.args.join(" ")),
            status: out.status.code(),
            text,
            elapsed: started.elapsed(),
            peer_cert,
        })
    }
}

/// What one swaks run did.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// The server it talked to.
    pub server: SocketAddr,
    /// The command line, for error messages.
    pub command: String,
    /// swaks's exit code (0 = every step accepted).
    pub status: Option<i32>,
    /// swaks's output: ` -> ` lines are sent, `<- ` / `<** ` lines received.
    pub text: String,
    /// How long the whole session took.
    pub elapsed: Duration,
    /// The server certificate in PEM, with [`Swaks::save_peer_cert`].
    pub peer_cert: Option<String>,
}

/// One line of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line swaks sent.
    Sent(String),
    /// A reply line received (`250-PIPELINING`, `550 5.7.1 no`).
    Got(String),
}

impl Transcript {
    /// The session's SMTP lines in order (swaks's own notes left out).
    pub fn lines(&self) -> Vec<Line> {
        self.text
            .lines()
            .filter_map(|l| {
                let (mark, rest) = (l.get(..4)?, l.get(4..)?);
                match mark {
                    " -> " | " ~> " => Some(Line::Sent(rest.to_owned())),
                    "<-  " | "<** " | "<~  " | "<~* " => Some(Line::Got(rest.to_owned())),
                    _ => None,
                }
            })
            .collect()
    }

    /// The final reply line to the first sent line starting with `command`
    /// (case-insensitive), e.g. `"RCPT TO"`, `"STARTTLS"`, `"."`.
    /// `CONNECT` gives the greeting.
    pub fn reply_to(&self, command: &str) -> Option<String> {
        let lines = self.lines();
        let start = if command.eq_ignore_ascii_case("CONNECT") {
            0
        } else {
            let c = command.to_ascii_uppercase();
            lines.iter().position(
                |l| matches!(l, Line::Sent(s) if s.to_ascii_uppercase().starts_with(&c)),
            )? + 1
        };
        let mut last = None;
        for l in &lines[start..] {
            match l {
                Line::Got(g) => {
                    last = Some(g.clone());
                    // A final line has a space (or nothing) after the code.
                    if g.as_bytes().get(3) != Some(&b'-') {
                        break;
                    }
                }
                Line::Sent(_) if last.is_some() => break,
                Line::Sent(_) => {}
            }
        }
        last
    }

    /// The reply code to `command`.
    pub fn code_of(&self, command: &str) -> Option<u16> {
        self.reply_to(command)?.get(..3)?.parse().ok()
    }

    /// Fail unless the reply to `command` has `code`'s class or exact value:
    /// `expect(".", "250")`, `expect("RCPT TO", "5")`, `expect("DATA", "45")`.
    pub fn expect(&self, command: &str, code_prefix: &str) -> anyhow::Result<String> {
        match self.reply_to(command) {
            Some(r) if r.starts_with(code_prefix) => Ok(r),
            Some(r) => bail!(
                "expected {code_prefix}xx to {command}, got {r:?}\n{}",
                self.excerpt()
            ),
            None => bail!("no reply to {command}\n{}", self.excerpt()),
        }
    }

    /// Fail unless swaks exited 0 (every step accepted).
    pub fn expect_success(&self) -> anyhow::Result<()> {
        if self.status != Some(0) {
            bail!("swaks exited {:?}\n{}", self.status, self.excerpt());
        }
        Ok(())
    }

    /// The queue id from a `250 ... queued as ID` reply to the final dot.
    pub fn queued_as(&self) -> Option<String> {
        let r = self.reply_to(".")?;
        let (_, id) = r.split_once("queued as ")?;
        Some(id.trim().trim_end_matches(')').to_owned())
    }

    /// True if the session upgraded to TLS.
    pub fn tls_started(&self) -> bool {
        self.text.contains("=== TLS started")
    }

    /// The command line and the transcript, for error messages.
    pub fn excerpt(&self) -> String {
        format!("$ {}\n{}", self.command, self.text.trim_end())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
=== Trying 127.0.0.20:2525...
=== Connected to 127.0.0.20.
<-  220 backend.test ESMTP Postfix
 -> EHLO c.test
<-  250-backend.test
<-  250 CHUNKING
 -> MAIL FROM:<a@b.test>
<-  250 2.1.0 Ok
 -> RCPT TO:<x@y.test>
<** 554 5.7.1 <x@y.test>: Relay access denied
 -> QUIT
<-  221 2.0.0 Bye
";

    fn t(text: &str) -> Transcript {
        Transcript {
            server: "127.0.0.1:25".parse().unwrap(),
            command: "swaks".into(),
            status: Some(24),
            text: text.into(),
            elapsed: Duration::ZERO,
            peer_cert: None,
        }
    }

    #[test]
    fn finds_final_replies() {
        let tr = t(SAMPLE);
        assert_eq!(tr.code_of("CONNECT"), Some(220));
        assert_eq!(tr.reply_to("EHLO").as_deref(), Some("250 CHUNKING"));
        assert_eq!(tr.code_of("mail from"), Some(250));
        assert_eq!(tr.code_of("RCPT TO"), Some(554));
        assert_eq!(tr.code_of("DATA"), None);
        assert!(tr.expect("RCPT TO", "5").is_ok());
        assert!(tr.expect("RCPT TO", "4").is_err());
        assert!(tr.expect_success().is_err());
    }

    #[test]
    fn finds_the_queue_id() {
        let tr = t(" -> .\n<-  250 2.0.0 Ok: queued as 8F3A599C425\n -> QUIT\n");
        assert_eq!(tr.queued_as().as_deref(), Some("8F3A599C425"));
    }
}
