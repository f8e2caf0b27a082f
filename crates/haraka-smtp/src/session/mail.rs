//! MAIL FROM: checks, parsing, the new transaction and the `mail` hook.

use super::{After, Session};
use crate::command::{MailArgs, param_entry, parse_mail_args, size_param};
use crate::conn::Transaction;
use crate::hook::{Hook, HookArgs, Outcome};

impl Session {
    /// `utf8`: whether the command line was valid UTF-8.
    pub(super) fn cmd_mail(&mut self, rest: &str, utf8: bool) {
        if self.conn.hello.is_none() {
            self.conn.errors += 1;
            self.respond1(503, "Use EHLO/HELO before MAIL");
            return;
        }
        let relaying = self.conn.relaying();
        if !relaying && matches!(self.conn.local.port, 587 | 465) {
            self.conn.errors += 1;
            self.respond1(550, "Authentication required");
            return;
        }
        if self.refused_not_utf8(utf8) {
            return;
        }
        let parsed = parse_mail_args(rest, self.cfg.strict_rfc1869 && !relaying);
        let Some(args) = self.envelope_args(parsed, |a| &a.params) else {
            return;
        };
        if let Some(body) = param_entry(&args.params, "BODY")
            && !body.is_some_and(|v| {
                v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME")
            })
        {
            // Only 8BITMIME is advertised (RFC 6152); BINARYMIME needs CHUNKING.
            self.respond1(555, "5.5.4 Unsupported BODY= value");
            return;
        }
        if let Some(size) = size_param(&args.params)
            && size > 0.0
            && self.cfg.databytes > 0
            && size > self.cfg.databytes as f64
        {
            self.respond1(550, "Message too big!");
            return;
        }
        // Checked last, so that a syntax error is still told as such; an open
        // transaction stays as it was.
        if self.refused_no_storage() {
            return;
        }
        // A second MAIL is accepted: the open transaction is reset first.
        self.reset_then(After::Mail(args));
    }

    pub(super) fn start_transaction(&mut self, args: MailArgs) {
        self.conn.tran_count += 1;
        let mut t = Transaction::new(format!("{}.{}", self.conn.uuid, self.conn.tran_count));
        t.mail_from = args.from.clone();
        t.mail_params = args.params.clone();
        self.conn.transaction = Some(t);
        self.run_hook(
            Hook::Mail,
            HookArgs::Mail {
                from: args.from,
                params: args.params,
            },
        );
    }

    pub(super) fn on_mail(&mut self, outcome: Outcome) {
        let Some(t) = &self.conn.transaction else {
            return;
        };
        let dmsg = format!("sender {}", t.mail_from_text());
        let answer = (outcome.action, outcome.msg.as_ref());
        let denied = format!("{dmsg} denied");
        if !self.rejected(answer, [(550, &denied), (450, &denied)], Session::reset) {
            self.respond_msg(250, answer.1, &format!("{dmsg} OK"));
        }
    }
}
