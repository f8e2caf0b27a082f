//! Entry points for the fuzz targets (the harness calls these with arbitrary bytes).
//!
//! Each must never panic on any input except where it checks an invariant with
//! `assert!`: a failed assertion is a bug the fuzzer found.

use std::net::IpAddr;
use std::time::Duration;

use crate::address::Address;
use crate::client::ReplyParser;
use crate::command::{parse_command, parse_mail_args, parse_rcpt_args, split_verb};
use crate::conn::{Connection, Local, Remote};
use crate::data::{DataReceiver, Feed};
use crate::hook::Outcome;
use crate::message::MessageBuilder;
use crate::session::{Env, Event, Session, SessionConfig};

/// The command parser, the rfc1869 parser and the address parser.
pub fn fuzz_command(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let _ = parse_command(&line);
    let _ = split_verb(&line);
    for strict in [false, true] {
        let _ = parse_mail_args(&line, strict);
        let _ = parse_rcpt_args(&line, strict);
    }
    if let Ok(Some(a)) = Address::parse_reverse_path(&line) {
        let _ = (a.address(), a.format(), a.forward_path());
    }
}

/// The DATA receiver, fed in chunks whose sizes come from the first bytes; checks
/// that stored lines never hold a bare CR or LF, and that the dot-stuffed output
/// reads back to the same message.
pub fn fuzz_data(data: &[u8]) {
    let (chunk, max_line, input) = match data {
        [a, b, rest @ ..] => (usize::from(*a).max(1), 8 + usize::from(*b) * 4, rest),
        _ => return,
    };
    let mut rx = DataReceiver::new(max_line, 1 << 20);
    let mut builder = MessageBuilder::new();
    let mut stored = Vec::new();
    for piece in input.chunks(chunk) {
        let done = rx.feed(piece, |l| {
            assert!(l.ends_with(b"\r\n"));
            for (i, &b) in l.iter().enumerate() {
                match b {
                    b'\r' => assert_eq!(l.get(i + 1), Some(&b'\n'), "bare CR stored"),
                    b'\n' => assert!(i > 0 && l[i - 1] == b'\r', "bare LF stored"),
                    _ => {}
                }
            }
            stored.extend_from_slice(l);
            builder.push_line(l);
        });
        if let Feed::Done { consumed } = done {
            assert!(consumed <= piece.len());
            break;
        }
    }
    let msg = builder.finish();
    let mut wire = Vec::new();
    msg.write_dot_stuffed(&mut wire);
    let mut back = DataReceiver::new(usize::MAX / 2, 0);
    let mut again = MessageBuilder::new();
    let end = back.feed(&wire, |l| again.push_line(l));
    assert_eq!(
        end,
        Feed::Done {
            consumed: wire.len()
        }
    );
    assert_eq!(again.finish().to_bytes(), msg.to_bytes());
}

/// The client reply parser, fed in two pieces.
pub fn fuzz_reply(data: &[u8]) {
    let mut p = ReplyParser::new();
    let mid = data.len() / 2;
    p.feed(&data[..mid]);
    while let Ok(Some(_)) = p.next_reply() {}
    p.feed(&data[mid..]);
    while let Ok(Some(_)) = p.next_reply() {}
}

struct FuzzEnv;

impl Env for FuzzEnv {
    fn date(&self) -> String {
        "Thu, 26 Nov 2026 15:51:23 +0000".to_owned()
    }
    fn new_uuid(&mut self) -> String {
        "00000000-0000-4000-8000-000000000000".to_owned()
    }
}

/// A whole session: every hook answers CONT (queue answers OK), the input arrives
/// in pieces split at 0xFF bytes (one starting with a byte below 0x10 after a wait
/// that byte decides). Checks that the session settles and that every reply is
/// CRLF-terminated.
pub fn fuzz_session(data: &[u8]) {
    let ip = IpAddr::from([127, 0, 0, 1]);
    let conn = Connection::new(
        "00000000-0000-4000-8000-000000000000".to_owned(),
        Remote::new(ip, 4000),
        Local {
            ip,
            port: 25,
            host: "mx".to_owned(),
        },
    );
    let cfg = SessionConfig {
        databytes: 4096,
        ..SessionConfig::default()
    };
    let mut s = Session::new(conn, cfg, Box::new(FuzzEnv));
    s.start();
    let drive = |s: &mut Session| {
        let mut n = 0;
        while let Some(ev) = s.poll() {
            n += 1;
            assert!(n < 1_000_000, "session does not settle");
            match ev {
                Event::Send(b) => assert!(b.ends_with(b"\r\n")),
                Event::Hook { hook, .. } => {
                    let o = match hook {
                        crate::Hook::Queue | crate::Hook::Rcpt => Outcome::accept(),
                        _ => Outcome::cont(),
                    };
                    s.hook_done(o);
                }
                Event::ResolveRdns => s.rdns_done(Err("NXDOMAIN")),
                Event::StartTls(_) => s.tls_failed(),
                Event::Close => {}
            }
        }
    };
    drive(&mut s);
    for piece in data.split(|&b| b == 0xFF) {
        // A piece that starts with a byte below 0x10 arrives after 40 s times that
        // byte (up to 600 s), so the time limits (300 s idle and per line, 1 KiB/s
        // per 60 s in DATA) are exercised; other pieces arrive at once.
        let first = piece.first().copied().unwrap_or(0xFF);
        let waited = match first {
            0..0x10 => Duration::from_secs(40 * u64::from(first)),
            _ => Duration::ZERO,
        };
        match s.poll_timeout() {
            Some(limit) if waited >= limit => s.handle_timeout(),
            _ => s.time_passed(waited),
        }
        drive(&mut s);
        if s.is_closed() {
            return;
        }
        s.feed(piece);
        drive(&mut s);
        if s.is_closed() {
            return;
        }
    }
    s.peer_closed();
    drive(&mut s);
    assert!(s.is_closed());
}
