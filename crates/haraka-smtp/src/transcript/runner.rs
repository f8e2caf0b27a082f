//! Runs a transcript against the sans-IO [`Session`] with a stub plugin chain.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Answer, ClientAction, Options, Step, Transcript, matches};
use crate::conn::{ConnAction, Connection, Local, Remote, TlsInfo, TlsUpgrade};
use crate::hook::{Hook, Msg, Outcome};
use crate::session::{Env, Event, Session};

/// The connection UUID the runner gives every session.
pub const TEST_UUID: &str = "CE8F089B-CD9D-4C31-8C7A-C9F0E0A61ED7";
/// The date the runner's environment reports.
pub const TEST_DATE: &str = "Thu, 26 Nov 2026 15:51:23 +0000";

/// The fixed clock and UUID sequence transcripts expect.
#[derive(Debug, Default)]
pub struct TestEnv {
    n: u32,
}

impl Env for TestEnv {
    fn date(&self) -> String {
        TEST_DATE.to_owned()
    }
    fn new_uuid(&mut self) -> String {
        self.n += 1;
        format!("00000000-0000-4000-8000-{:012X}", self.n)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Line(String),
    Close,
    StartTls,
}

struct Runner<'a> {
    opts: &'a Options,
    answers: HashMap<Hook, Answer>,
    out: VecDeque<Out>,
    message: Option<Vec<String>>,
}

/// Apply a stub answer to the connection and give the hook's outcome.
pub fn apply(answer: &Answer, conn: &mut Connection) -> Outcome {
    match answer {
        Answer::Plain(o) => o.clone(),
        Answer::Push(cap) => {
            conn.capabilities.push(cap.clone());
            Outcome::cont()
        }
        Answer::StartTls => {
            conn.request(ConnAction::StartTls(TlsUpgrade(Arc::new(()))));
            Outcome::accept_with(Msg {
                code: Some(220),
                lines: vec!["Go ahead.".to_owned()],
            })
        }
        Answer::Xclient { ip, name } => {
            conn.remote.ip = *ip;
            conn.remote.host = name.as_ref().map(|n| n.to_lowercase());
            conn.hello = None;
            conn.esmtp = false;
            conn.set_connection_relaying(false);
            conn.request(ConnAction::Restart);
            Outcome::accept()
        }
    }
}

impl Runner<'_> {
    fn drive(&mut self, s: &mut Session) -> Result<(), String> {
        for _ in 0..1_000_000 {
            let Some(ev) = s.poll() else {
                return Ok(());
            };
            match ev {
                Event::Send(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let body = text
                        .strip_suffix("\r\n")
                        .ok_or_else(|| format!("reply without CRLF: {text:?}"))?;
                    for l in body.split("\r\n") {
                        self.out.push_back(Out::Line(l.to_owned()));
                    }
                }
                Event::Hook { hook, .. } => {
                    if matches!(hook, Hook::Queue | Hook::QueueOutbound)
                        && let Some(t) = &s.conn().transaction
                    {
                        let bytes = t.message.to_bytes();
                        let text = String::from_utf8_lossy(&bytes);
                        let body = text.strip_suffix("\r\n").unwrap_or(&text);
                        self.message = Some(body.split("\r\n").map(str::to_owned).collect());
                    }
                    let answer = self
                        .answers
                        .get(&hook)
                        .cloned()
                        .unwrap_or(Answer::Plain(Outcome::cont()));
                    let outcome = apply(&answer, s.conn_mut());
                    s.hook_done(outcome);
                }
                Event::ResolveRdns => {
                    let r = match self.opts.rdns.as_str() {
                        "NXDOMAIN" => Err("NXDOMAIN"),
                        "DNSERROR" => Err("DNSERROR"),
                        name => Ok(name.to_owned()),
                    };
                    s.rdns_done(r);
                }
                Event::StartTls(_) => {
                    self.out.push_back(Out::StartTls);
                    s.tls_done(TlsInfo {
                        enabled: true,
                        advertised: true,
                        cipher: Some(self.opts.tls_cipher.clone()),
                        version: Some("TLSv1.3".to_owned()),
                        ..TlsInfo::default()
                    });
                }
                Event::Close => self.out.push_back(Out::Close),
            }
        }
        Err("session does not settle".to_owned())
    }

    fn next(&mut self, line: usize) -> Result<Out, String> {
        self.out
            .pop_front()
            .ok_or_else(|| format!("line {line}: expected more output, got none"))
    }
}

/// Run `t` against a fresh [`Session`]; `Err` describes the first mismatch.
pub fn run(t: &Transcript) -> Result<(), String> {
    let o = &t.options;
    let mut conn = Connection::new(
        TEST_UUID.to_owned(),
        Remote::new(o.remote_ip, o.remote_port),
        Local {
            ip: o.local_ip,
            port: o.local_port,
            host: o.config.me.clone(),
        },
    );
    conn.set_relaying(o.relaying);
    let mut s = Session::new(conn, o.config.clone(), Box::new(TestEnv { n: 0 }));
    let mut r = Runner {
        opts: o,
        answers: HashMap::new(),
        out: VecDeque::new(),
        message: None,
    };
    // The session starts (and greets) before the first step that is not `H:` or a
    // send: sends before that arrive before the greeting.
    let mut started = false;
    for step in &t.steps {
        if !started && !matches!(step, Step::Stub { .. } | Step::Send { .. }) {
            started = true;
            s.start();
            r.drive(&mut s)?;
        }
        match step {
            Step::Send { bytes, .. } => {
                s.feed(bytes);
                r.drive(&mut s)?;
            }
            Step::Stub { hook, answer, .. } => {
                r.answers.insert(*hook, answer.clone());
            }
            Step::Do { action, .. } => {
                match action {
                    ClientAction::Timeout => s.handle_timeout(),
                    ClientAction::PeerClose => s.peer_closed(),
                    &ClientAction::Wait(mut left) => {
                        // As the driver does: wake at each `poll_timeout`.
                        while !left.is_zero() {
                            let Some(limit) = s.poll_timeout().filter(|l| !l.is_zero()) else {
                                break;
                            };
                            if left < limit {
                                s.time_passed(left);
                                break;
                            }
                            s.handle_timeout();
                            r.drive(&mut s)?;
                            left -= limit;
                        }
                    }
                }
                r.drive(&mut s)?;
            }
            Step::Expect { line, pattern } => match r.next(*line)? {
                Out::Line(l) if matches(pattern, &l) => {}
                other => return Err(format!("line {line}: expected {pattern:?}, got {other:?}")),
            },
            Step::ExpectClose { line } => match r.next(*line)? {
                Out::Close => {}
                other => return Err(format!("line {line}: expected close, got {other:?}")),
            },
            Step::ExpectStartTls { line } => match r.next(*line)? {
                Out::StartTls => {}
                other => return Err(format!("line {line}: expected STARTTLS, got {other:?}")),
            },
            Step::Message { line, lines } => {
                let got = r
                    .message
                    .take()
                    .ok_or_else(|| format!("line {line}: no message was queued"))?;
                if got.len() != lines.len() || !lines.iter().zip(&got).all(|(p, a)| matches(p, a)) {
                    return Err(format!("line {line}: message differs:\n{}", got.join("\n")));
                }
            }
        }
    }
    if !started {
        s.start();
        r.drive(&mut s)?;
    }
    if let Some(extra) = r.out.pop_front() {
        return Err(format!("unexpected output at the end: {extra:?}"));
    }
    Ok(())
}
