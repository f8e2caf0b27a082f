//! Golden SMTP transcripts: a small text format shared by the sans-IO tests of this
//! crate and the socket tests of the server.
//!
//! One step per line; `#` starts a comment line, blank lines are ignored.
//!
//! | line | meaning |
//! | --- | --- |
//! | `O: key=value` | an option (only before the first other step); see [`Options`] |
//! | `C: text` | the client sends `text` CR LF |
//! | `R: text` | the client sends `text` as is (no CR LF added) |
//! | `S: text` | the next reply line is exactly `text` (with placeholders, below) |
//! | `E: close` / `E: starttls` | the server closes / starts TLS here |
//! | `H: hook=ANSWER` | from here on, the stub plugin chain answers `hook` with ANSWER |
//! | `A: timeout` / `A: peer_close` | the session's wait runs out / the client hangs up |
//! | `A: wait S` | the client stays silent for S seconds (`1.5`), in steps no longer than the session's waits (in memory only) |
//! | `M: line` | a block of `M:` lines is the whole message last queued, line by line |
//!
//! Consecutive `C:`/`R:` lines are sent as one packet (pipelining). An `H:` line
//! applies to hooks run after the replies expected before it. The connection is
//! made at the first step that is neither `H:` nor a send; sends before that reach
//! the server before its greeting (an early talker).
//!
//! ANSWER is `ACTION[:CODE][ text]` with ACTION one of `CONT OK DENY DENYSOFT
//! DENYDISCONNECT DENYSOFTDISCONNECT DISCONNECT STOP NEXT_HOOK`, CODE a reply code
//! that replaces the hook's (a DSN), `text` the message (`\n` separates lines).
//! Three stub behaviours exist besides: `PUSH text` (append `text` to the EHLO
//! capabilities, CONT), `STARTTLS` (reply `220 Go ahead.` and ask for TLS), and
//! `XCLIENT ip [name]` (set the client address and name, forget HELO, restart).
//!
//! Text escapes in every line: `\r`, `\n`, `\t`, `\\`, `\xHH` (a byte), and
//! `\{N}c` (the character `c` N times). Placeholders in `S:` and `M:` lines:
//! `<uuid>` (36 characters of upper-case hex and `-`), `<uuid:N>` (N such
//! characters), `<tuuid>` (`<uuid>.<n>`), `<date>` (an RFC 2822 date) and
//! `<host>` (a host name label).

mod matcher;
mod runner;

use std::net::IpAddr;
use std::time::Duration;

pub use matcher::matches;
pub use runner::{TEST_DATE, TEST_UUID, TestEnv, apply, run};

use crate::hook::{Action, Hook, Msg, Outcome};
use crate::session::SessionConfig;

/// A transcript that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct TranscriptError {
    pub line: usize,
    pub reason: String,
}

/// What a stub plugin chain answers for a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Plain(Outcome),
    /// Push a capability line, then CONT.
    Push(String),
    /// `220 Go ahead.` and a STARTTLS request.
    StartTls,
    /// Replace the client's address (and name), forget HELO, restart the session.
    Xclient {
        ip: IpAddr,
        name: Option<String>,
    },
}

/// Something the client side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    Timeout,
    PeerClose,
    /// Silence for this long.
    Wait(Duration),
}

/// One step of a transcript; `line` is its line number in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Send {
        line: usize,
        bytes: Vec<u8>,
    },
    Expect {
        line: usize,
        pattern: String,
    },
    ExpectClose {
        line: usize,
    },
    ExpectStartTls {
        line: usize,
    },
    Stub {
        line: usize,
        hook: Hook,
        answer: Answer,
    },
    Do {
        line: usize,
        action: ClientAction,
    },
    Message {
        line: usize,
        lines: Vec<String>,
    },
}

/// `O:` options with their defaults.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: SessionConfig,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    pub local_ip: IpAddr,
    pub local_port: u16,
    /// The answer to the core rDNS lookup: a name, or `NXDOMAIN` / `DNSERROR`.
    pub rdns: String,
    /// `connection.relaying` from the start.
    pub relaying: bool,
    /// The cipher reported after STARTTLS.
    pub tls_cipher: String,
}

impl Default for Options {
    fn default() -> Options {
        let localhost = IpAddr::from([127, 0, 0, 1]);
        Options {
            config: SessionConfig {
                me: "mx.test.local".to_owned(),
                short_hostname: "mx".to_owned(),
                ..SessionConfig::default()
            },
            remote_ip: localhost,
            remote_port: 40000,
            local_ip: localhost,
            local_port: 25,
            rdns: "NXDOMAIN".to_owned(),
            relaying: false,
            tls_cipher: "TLS_AES_256_GCM_SHA384".to_owned(),
        }
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("not a boolean: {v}")),
    }
}

fn parse_secs(v: &str) -> Result<Duration, String> {
    let secs: f64 = parse_num(v.trim())?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("not a duration: {v}"))
}

fn parse_num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("not a number: {v}"))
}

impl Options {
    /// Apply `key=value`.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        let c = &mut self.config;
        match key {
            "me" => c.me = v.to_owned(),
            "greeting" => c.greeting = v.split('|').map(str::to_owned).collect(),
            "show_version" => c.show_version = parse_bool(v)?,
            "ehlo_hello_message" => c.ehlo_hello_message = v.to_owned(),
            "connection_close_message" => c.connection_close_message = v.to_owned(),
            "databytes" => c.databytes = parse_num(v)?,
            "max_line_length" => c.max_line_length = parse_num(v)?,
            "max_data_line_length" => c.max_data_line_length = parse_num(v)?,
            "smtputf8" => c.smtputf8 = parse_bool(v)?,
            "strict_rfc1869" => c.strict_rfc1869 = parse_bool(v)?,
            "deny_includes_uuid" => c.deny_includes_uuid = parse_num(v)?,
            "banner_includes_uuid" => c.banner_includes_uuid = parse_bool(v)?,
            "add_received" => c.add_received = parse_bool(v)?,
            "max_received" => c.max_received = parse_num(v)?,
            "clean_auth_results" => c.clean_auth_results = parse_bool(v)?,
            "short_hostname" => c.short_hostname = v.to_owned(),
            "inactivity_timeout" => c.inactivity_timeout = parse_secs(v)?,
            "command_timeout" => c.command_timeout = parse_secs(v)?,
            "data_timeout" => c.data_timeout = parse_secs(v)?,
            "data_min_rate" => c.data_min_rate = parse_num(v)?,
            "data_rate_period" => c.data_rate_period = parse_secs(v)?,
            "message_memory_budget" => {
                c.message_budget = crate::budget::MemoryBudget::new(parse_num(v)?);
            }
            "remote_ip" => self.remote_ip = parse_num(v)?,
            "remote_port" => self.remote_port = parse_num(v)?,
            "local_ip" => self.local_ip = parse_num(v)?,
            "local_port" => self.local_port = parse_num(v)?,
            "rdns" => self.rdns = v.to_owned(),
            "relaying" => self.relaying = parse_bool(v)?,
            "tls_cipher" => self.tls_cipher = v.to_owned(),
            _ => return Err(format!("unknown option {key}")),
        }
        Ok(())
    }
}

/// A parsed transcript.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub options: Options,
    pub steps: Vec<Step>,
}

/// Decode the text escapes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('r') => out.push(b'\r'),
            Some('n') => out.push(b'\n'),
            Some('t') => out.push(b'\t'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16).map_err(|_| format!("bad \\x{hex}"))?;
                out.push(b);
            }
            Some('{') => {
                let n: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let n: usize = parse_num(&n)?;
                let c = chars.next().ok_or("\\{N} at end of line")?;
                let mut buf = [0u8; 4];
                let enc = c.encode_utf8(&mut buf).as_bytes().to_vec();
                for _ in 0..n {
                    out.extend_from_slice(&enc);
                }
            }
            other => return Err(format!("unknown escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

fn unescape_str(text: &str) -> Result<String, String> {
    unescape(text).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Parse `ACTION[:CODE][ text]` or a stub behaviour.
pub fn parse_answer(s: &str) -> Result<Answer, String> {
    let (head, text) = match s.split_once(' ') {
        Some((h, t)) => (h, Some(t)),
        None => (s, None),
    };
    match head {
        "PUSH" => return Ok(Answer::Push(unescape_str(text.unwrap_or(""))?)),
        "STARTTLS" => return Ok(Answer::StartTls),
        "XCLIENT" => {
            let mut words = text.unwrap_or("").split_whitespace();
            let ip = parse_num(words.next().unwrap_or(""))?;
            let name = words.next().map(str::to_owned);
            return Ok(Answer::Xclient { ip, name });
        }
        _ => {}
    }
    let (name, code) = match head.split_once(':') {
        Some((n, c)) => (n, Some(parse_num::<u16>(c)?)),
        None => (head, None),
    };
    let action = match name {
        "CONT" => Action::Cont,
        "OK" => Action::Accept,
        "DENY" => Action::Deny,
        "DENYSOFT" => Action::DenySoft,
        "DENYDISCONNECT" => Action::DenyDisconnect,
        "DENYSOFTDISCONNECT" => Action::DenySoftDisconnect,
        "DISCONNECT" => Action::Disconnect,
        "STOP" => Action::Stop,
        "NEXT_HOOK" => Action::NextHook,
        _ => return Err(format!("unknown answer {name}")),
    };
    let msg = match text {
        Some(t) => Some(Msg {
            code,
            ..Msg::text(unescape_str(t)?)
        }),
        None => code.map(|c| Msg {
            code: Some(c),
            lines: Vec::new(),
        }),
    };
    Ok(Answer::Plain(Outcome::new(action, msg)))
}

/// Parse a transcript file's text.
pub fn parse(text: &str) -> Result<Transcript, TranscriptError> {
    let mut options = Options::default();
    let mut steps: Vec<Step> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |reason: String| TranscriptError { line, reason };
        let raw = raw.trim_end_matches('\r');
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let (tag, body) = match raw.split_once(':') {
            Some((t, b)) if t.len() == 1 => (t, b.strip_prefix(' ').unwrap_or(b)),
            _ => return Err(err(format!("not a step: {raw}"))),
        };
        match tag {
            "O" => {
                if !steps.is_empty() {
                    return Err(err("options must come first".to_owned()));
                }
                let (k, v) = body
                    .split_once('=')
                    .ok_or_else(|| err("O: needs key=value".to_owned()))?;
                options.set(k.trim(), v.trim()).map_err(err)?;
            }
            "C" | "R" => {
                let mut bytes = unescape(body).map_err(err)?;
                if tag == "C" {
                    bytes.extend_from_slice(b"\r\n");
                }
                match steps.last_mut() {
                    Some(Step::Send { bytes: prev, .. }) => prev.extend_from_slice(&bytes),
                    _ => steps.push(Step::Send { line, bytes }),
                }
            }
            "S" => steps.push(Step::Expect {
                line,
                pattern: unescape_str(body).map_err(err)?,
            }),
            "E" => match body.trim() {
                "close" => steps.push(Step::ExpectClose { line }),
                "starttls" => steps.push(Step::ExpectStartTls { line }),
                other => return Err(err(format!("unknown event {other}"))),
            },
            "H" => {
                let (h, a) = body
                    .split_once('=')
                    .ok_or_else(|| err("H: needs hook=ANSWER".to_owned()))?;
                let hook =
                    Hook::from_name(h.trim()).ok_or_else(|| err(format!("unknown hook {h}")))?;
                let answer = parse_answer(a.trim()).map_err(err)?;
                steps.push(Step::Stub { line, hook, answer });
            }
            "A" => {
                let action = match body.trim() {
                    "timeout" => ClientAction::Timeout,
                    "peer_close" => ClientAction::PeerClose,
                    other if other.starts_with("wait ") => {
                        ClientAction::Wait(parse_secs(&other["wait ".len()..]).map_err(err)?)
                    }
                    other => return Err(err(format!("unknown action {other}"))),
                };
                steps.push(Step::Do { line, action });
            }
            "M" => {
                let text = unescape_str(body).map_err(err)?;
                match steps.last_mut() {
                    Some(Step::Message { lines, .. }) => lines.push(text),
                    _ => steps.push(Step::Message {
                        line,
                        lines: vec![text],
                    }),
                }
            }
            _ => return Err(err(format!("unknown step {tag}:"))),
        }
    }
    Ok(Transcript { options, steps })
}
