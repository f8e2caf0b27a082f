//! A small scripted SMTP server for the outbound checks: it records every
//! transaction (a connection carrying several messages gives one record each)
//! and answers RCPT and the final dot as the check tells it
//! (accept, 4xx, 5xx), so a check can make an MX fail and then recover.
//! Plain threads and blocking sockets; a stop flag plus a wake-up
//! connection end the accept loop.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use super::proc::wait_until;

/// How the sink answers a recipient (and, after DATA, the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `250`.
    Accept,
    /// `451 4.3.0 ...`: try again later.
    TempFail,
    /// `550 5.1.1 ...`: permanent failure.
    Reject,
    /// Any reply line, e.g. `"452 4.2.2 mailbox full"`.
    Reply(String),
}

impl Verdict {
    fn line(&self, what: &str) -> String {
        match self {
            Self::Accept => format!("250 2.0.0 {what} ok"),
            Self::TempFail => format!("451 4.3.0 {what}: temporary failure (e2e sink)"),
            Self::Reject => format!("550 5.1.1 {what}: rejected (e2e sink)"),
            Self::Reply(r) => r.clone(),
        }
    }
}

/// One SMTP session the sink served.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The HELO/EHLO argument.
    pub helo: String,
    /// MAIL FROM argument (without the brackets).
    pub mail_from: String,
    /// Each RCPT TO argument and the code answered.
    pub rcpts: Vec<(String, u16)>,
    /// The message (dot-unstuffed, CRLF kept) and the code answered to it.
    pub data: Option<(String, u16)>,
}

impl Session {
    /// True if the message was accepted.
    pub fn delivered(&self) -> bool {
        matches!(self.data, Some((_, c)) if c < 300)
    }
}

#[derive(Default)]
struct State {
    default: Option<Verdict>,
    data: Option<Verdict>,
    rules: Vec<(String, Verdict)>,
    sessions: Vec<Session>,
}

/// A running sink; stopped when dropped.
pub struct Sink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    /// Listen on `addr`; accept everything until told otherwise.
    pub fn start(addr: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).with_context(|| format!("sink: binding {addr}"))?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(format!("sink {addr}"))
            .spawn(move || accept_loop(&listener, &st, &sp))
            .context("spawning the sink thread")?;
        Ok(Self {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The answer to every recipient no rule matches (and to the dot).
    pub fn set_default(&self, v: Verdict) {
        lock(&self.state).default = Some(v);
    }

    /// The answer to the final dot (250 unless set).
    pub fn set_data_verdict(&self, v: Verdict) {
        lock(&self.state).data = Some(v);
    }

    /// Answer recipients containing `pattern` with `v` (first rule wins).
    pub fn add_rule(&self, pattern: &str, v: Verdict) {
        lock(&self.state).rules.push((pattern.to_owned(), v));
    }

    /// Drop every rule and answer everything with 250 again.
    pub fn reset(&self) {
        let mut s = lock(&self.state);
        s.rules.clear();
        s.default = None;
        s.data = None;
    }

    /// Every session so far (finished or not).
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.state).sessions.clone()
    }

    /// Forget the recorded sessions.
    pub fn clear(&self) {
        lock(&self.state).sessions.clear();
    }

    /// Wait until some session satisfies `pred`; returns it.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Session) -> bool,
    ) -> anyhow::Result<Session> {
        wait_until(&format!("sink {}: {what}", self.addr), timeout, || {
            Ok(self.sessions().into_iter().find(|s| pred(s)))
        })
    }

    /// Wait until a message containing `needle` is accepted.
    pub fn wait_for_message(&self, needle: &str, timeout: Duration) -> anyhow::Result<Session> {
        self.wait_for(&format!("a message with {needle:?}"), timeout, |s| {
            s.delivered() && s.data.as_ref().is_some_and(|(d, _)| d.contains(needle))
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<Mutex<State>>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let st = Arc::clone(state);
        // Sessions are short; a detached thread per session is enough. Its
        // socket times out, so no thread outlives a stuck peer for long.
        let _ = std::thread::Builder::new()
            .name("sink session".into())
            .spawn(move || {
                let _ = serve(stream, &st);
            });
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let peer = stream.peer_addr().ok();
    let mut index = {
        let mut s = lock(state);
        s.sessions.push(Session {
            peer,
            ..Session::default()
        });
        s.sessions.len() - 1
    };
    // haraka-rs's outbound keeps a connection briefly for the next message to the
    // same MX: each MAIL after the first starts a record of its own.
    let mut had_mail = false;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut say = |line: &str| out.write_all(format!("{line}\r\n").as_bytes());
    say("220 sink.test ESMTP e2e sink")?;
    loop {
        let Some(line) = read_line(&mut reader)? else {
            return Ok(());
        };
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        let current = index;
        let record = |f: &dyn Fn(&mut Session)| {
            if let Some(sess) = lock(state).sessions.get_mut(current) {
                f(sess);
            }
        };
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let helo = cmd.get(5..).unwrap_or("").trim().to_owned();
            record(&|s| s.helo.clone_from(&helo));
            if upper.starts_with("EHLO") {
                say("250-sink.test")?;
                say("250-PIPELINING")?;
                say("250 8BITMIME")?;
            } else {
                say("250 sink.test")?;
            }
        } else if upper.starts_with("MAIL FROM:") {
            if had_mail {
                let mut s = lock(state);
                let helo = s
                    .sessions
                    .get(index)
                    .map(|x| x.helo.clone())
                    .unwrap_or_default();
                s.sessions.push(Session {
                    peer,
                    helo,
                    ..Session::default()
                });
                index = s.sessions.len() - 1;
            }
            had_mail = true;
            let from = angle(cmd.get(10..).unwrap_or(""));
            if let Some(sess) = lock(state).sessions.get_mut(index) {
                sess.mail_from.clone_from(&from);
            }
            say("250 2.1.0 sender ok")?;
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = angle(cmd.get(8..).unwrap_or(""));
            let verdict = {
                let s = lock(state);
                s.rules
                    .iter()
                    .find(|(p, _)| rcpt.contains(p.as_str()))
                    .map(|(_, v)| v.clone())
                    .or_else(|| s.default.clone())
                    .unwrap_or(Verdict::Accept)
            };
            let reply = verdict.line(&rcpt);
            let code = code(&reply);
            record(&|s| s.rcpts.push((rcpt.clone(), code)));
            say(&reply)?;
        } else if upper == "DATA" {
            say("354 go ahead")?;
            let body = read_data(&mut reader)?;
            let verdict = lock(state).data.clone().unwrap_or(Verdict::Accept);
            let reply = verdict.line("message");
            let code = code(&reply);
            record(&|s| s.data = Some((body.clone(), code)));
            say(&reply)?;
        } else if upper == "QUIT" {
            say("221 2.0.0 bye")?;
            return reader.get_ref().shutdown(Shutdown::Both);
        } else if upper == "RSET" || upper == "NOOP" {
            say("250 2.0.0 ok")?;
        } else {
            say("502 5.5.2 not implemented")?;
        }
    }
}

/// Read DATA up to the lone dot, undoing dot-stuffing.
fn read_data(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut body = String::new();
    loop {
        let Some(line) = read_line(reader)? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        if line == ".\r\n" || line == ".\n" {
            return Ok(body);
        }
        body.push_str(line.strip_prefix('.').unwrap_or(&line));
    }
}

/// One line (with its ending), bytes that are not UTF-8 replaced; `None` at EOF.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

fn angle(arg: &str) -> String {
    let a = arg.trim();
    let inner = a.split_whitespace().next().unwrap_or("");
    inner
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

fn code(reply: &str) -> u16 {
    reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_codes() {
        assert_eq!(angle(" <a@b.test> SIZE=10"), "a@b.test");
        assert_eq!(angle("<>"), "");
        assert_eq!(code("451 4.3.0 later"), 451);
        assert_eq!(Verdict::Reject.line("x").get(..3), Some("550"));
    }

    #[test]
    fn unstuffs_data() {
        let mut r = std::io::Cursor::new(b"a\r\n..b\r\n.\r\nEXTRA".to_vec());
        assert_eq!(read_data(&mut r).unwrap(), "a\r\n.b\r\n");
    }
}
