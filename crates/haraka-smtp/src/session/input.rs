//! Input: cutting command lines out of the buffer, the checks Haraka makes on every
//! line (length, TLS ClientHello, 8-bit after HELO, LOOP state), the verb dispatch,
//! and feeding DATA.

use super::data::DataState;
use super::{MIN_LINE, Mode, Session};
use crate::command::{Command, parse_command};
use crate::conn::HelloVerb;
use crate::data::Feed;
use crate::hook::{Hook, HookArgs};
use crate::message::MessageBuilder;

impl Session {
    /// Take one command line from the buffer and process it.
    pub(super) fn step_command(&mut self) -> bool {
        let max = self.cfg.max_line_length.max(MIN_LINE);
        let window = self.input.len().min(max);
        match self.input[..window].iter().position(|&b| b == b'\n') {
            Some(lf) => {
                let raw: Vec<u8> = self.input.drain(..=lf).collect();
                // The next line gets the whole of `command_timeout`.
                self.line_left = super::timing::line_limit(&self.cfg);
                if !self.input.is_empty() {
                    self.note_pipelined(&raw);
                }
                self.process_line(&raw);
                true
            }
            None if self.input.len() > max => {
                self.input.clear();
                self.respond1(521, "Command line too long");
                self.disconnect();
                true
            }
            None => false,
        }
    }

    /// Haraka's early-talker rule for input buffered behind a command.
    fn note_pipelined(&mut self, raw: &[u8]) {
        let head: Vec<u8> = raw.iter().take(4).map(u8::to_ascii_uppercase).collect();
        let may_pipeline = matches!(
            head.as_slice(),
            b"RSET" | b"MAIL" | b"SEND" | b"SOML" | b"SAML" | b"RCPT"
        );
        if !self.conn.esmtp || !may_pipeline {
            self.conn.early_talker = true;
        }
    }

    fn process_line(&mut self, raw: &[u8]) {
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().any(|&b| b >= 0x80) {
            if line.len() >= 3 && line[0] == 0x16 && line[1] == 0x03 && line[2] <= 0x01 {
                self.input.clear();
                self.respond1(501, "SSL attempted over a non-SSL socket");
                self.disconnect();
                return;
            }
            if self
                .conn
                .hello
                .as_ref()
                .is_some_and(|h| h.verb == HelloVerb::Helo)
            {
                self.respond1(501, "Syntax error (8-bit characters not allowed)");
                return;
            }
        }
        // Lossy for every command; HELO/EHLO, MAIL and RCPT refuse what is not
        // UTF-8 (RFC 6531) rather than pass U+FFFD on in a name or an address.
        let (text, utf8) = match std::str::from_utf8(line) {
            Ok(s) => (s.to_owned(), true),
            Err(_) => (String::from_utf8_lossy(line).into_owned(), false),
        };
        if let Mode::Loop { code, lines } = &self.mode {
            if text.to_uppercase() == "QUIT" {
                self.run_hook(Hook::Quit, HookArgs::None);
            } else {
                let (code, lines) = (*code, lines.clone());
                self.respond(code, lines);
            }
            return;
        }
        self.dispatch(parse_command(&text), utf8);
    }

    fn dispatch(&mut self, cmd: Command, utf8: bool) {
        match cmd {
            Command::Helo(rest) => self.cmd_hello(HelloVerb::Helo, &rest, utf8),
            Command::Ehlo(rest) => self.cmd_hello(HelloVerb::Ehlo, &rest, utf8),
            Command::Mail(rest) => self.cmd_mail(&rest, utf8),
            Command::Rcpt(rest) => self.cmd_rcpt(&rest, utf8),
            Command::Data(rest) => self.cmd_data(&rest),
            Command::Rset(rest) => self.cmd_rset(&rest),
            Command::Noop(_) => self.run_hook(Hook::Noop, HookArgs::None),
            Command::Vrfy(_) => self.run_hook(Hook::Vrfy, HookArgs::None),
            Command::Help(_) => self.respond1(250, "Not implemented"),
            Command::Quit(rest) => self.cmd_quit(&rest),
            Command::Proxy(_) => {
                let text = format!("PROXY not allowed from {}", self.conn.remote.ip);
                self.respond1(421, &text);
                self.disconnect();
            }
            Command::Unknown { verb, rest } => self.run_hook(
                Hook::UnrecognizedCommand,
                HookArgs::Unrecognized { verb, rest },
            ),
            Command::Unparsable(line) => self.run_hook(
                Hook::UnrecognizedCommand,
                HookArgs::Unrecognized {
                    verb: line,
                    rest: String::new(),
                },
            ),
        }
    }

    /// Feed buffered input to the DATA receiver.
    pub(super) fn step_data(&mut self) -> bool {
        let Mode::Data(state) = &mut self.mode else {
            return false;
        };
        if self.input.is_empty() {
            return false;
        }
        let DataState {
            rx,
            builder,
            over_budget,
            ..
        } = &mut **state;
        let dropping = *over_budget;
        let feed = rx.feed(&self.input, |line| {
            if !dropping {
                builder.push_line(line);
            }
        });
        // One charge per read, of what the message holds in memory: the budget may
        // be overshot by at most one read per session before it refuses.
        if !dropping && !self.held.hold(builder.memory()) {
            *over_budget = true;
            *builder = MessageBuilder::new();
            self.held.release();
        }
        match feed {
            Feed::More => self.input.clear(),
            Feed::Done { consumed } => {
                self.input.drain(..consumed);
                self.data_done();
            }
        }
        true
    }
}
