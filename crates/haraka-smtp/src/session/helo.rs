//! HELO / EHLO and the EHLO capability list.

use super::{After, Session};
use crate::command::hello_host;
use crate::conn::{Hello, HelloVerb};
use crate::hook::{Hook, HookArgs, Outcome};

impl Session {
    /// `utf8`: whether the command line was valid UTF-8.
    pub(super) fn cmd_hello(&mut self, verb: HelloVerb, rest: &str, utf8: bool) {
        let Some(host) = hello_host(rest) else {
            let text = format!(
                "{} requires domain/address - see RFC-2821 4.1.1.1",
                verb.as_str()
            );
            self.respond1(501, &text);
            return;
        };
        // A name with control characters cannot be passed on (XCLIENT HELO=, the
        // Received header, a backend EHLO): refuse it now rather than deferring
        // every later message of the session.
        if host.bytes().any(|b| b.is_ascii_control()) {
            let text = format!(
                "Syntax error (control characters not allowed in {})",
                verb.as_str()
            );
            self.respond1(501, &text);
            return;
        }
        // Bytes that are not UTF-8 were read as U+FFFD, which smtp_forward would
        // pass on as the name. Only the name counts, as for control characters.
        if !utf8 && host.contains(char::REPLACEMENT_CHARACTER) {
            self.respond1(501, "Syntax error (invalid UTF-8)");
            return;
        }
        // An open transaction is reset first; the session then goes on normally
        // (Haraka 3.0.0 stalled here; fixed in 3.1.4).
        self.reset_then(After::Hello(verb, host.to_owned()));
    }

    pub(super) fn run_hello(&mut self, verb: HelloVerb, host: String) {
        self.conn.hello = Some(Hello {
            verb,
            host: host.clone(),
        });
        let hook = match verb {
            HelloVerb::Helo => Hook::Helo,
            HelloVerb::Ehlo => Hook::Ehlo,
        };
        self.run_hook(hook, HookArgs::Hello(host));
    }

    fn hello_line(&self) -> String {
        format!(
            "{} Hello {}{}",
            self.cfg.me,
            self.conn.remote_text(),
            self.cfg.ehlo_hello_message
        )
    }

    pub(super) fn on_hello(&mut self, verb: HelloVerb, outcome: Outcome) {
        let answer = (outcome.action, outcome.msg.as_ref());
        let denied = format!("{} denied", verb.as_str());
        if self.rejected(answer, [(550, &denied), (450, &denied)], |s| {
            s.conn.hello = None
        }) {
            return;
        }
        match verb {
            HelloVerb::Helo => {
                let line = self.hello_line();
                self.respond1(250, &line);
            }
            HelloVerb::Ehlo => {
                self.conn.capabilities.clear();
                self.conn.esmtp = true;
                self.run_hook(Hook::Capabilities, HookArgs::None);
            }
        }
    }

    /// The EHLO reply: greeting line, core keywords, then what `capabilities` pushed.
    pub(super) fn on_capabilities(&mut self) {
        let mut lines = vec![
            self.hello_line(),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
        ];
        if self.cfg.smtputf8 {
            lines.push("SMTPUTF8".to_owned());
        }
        // RFC 1870 allows SIZE without a number (no fixed limit); Haraka 3.0.0 wrote
        // `SIZE 0` when databytes was unset.
        if self.cfg.databytes > 0 {
            lines.push(format!("SIZE {}", self.cfg.databytes));
        } else {
            lines.push("SIZE".to_owned());
        }
        lines.extend(self.conn.capabilities.iter().cloned());
        self.respond(250, lines);
    }
}
