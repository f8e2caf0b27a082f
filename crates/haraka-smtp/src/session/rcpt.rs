//! RCPT TO: parsing, the `rcpt` hook with Haraka's relaying rule, and `rcpt_ok`.

use super::Session;
use crate::command::{ArgError, Params, parse_rcpt_args};
use crate::hook::{Action, Hook, HookArgs, Msg, Outcome};

impl Session {
    /// The arguments of MAIL or RCPT, or `None` once the command was answered: 501
    /// when they do not parse, 555 for parameters after HELO.
    pub(super) fn envelope_args<A>(
        &mut self,
        parsed: Result<A, ArgError>,
        params: fn(&A) -> &Params,
    ) -> Option<A> {
        let args = match parsed {
            Ok(a) => a,
            Err(e) => {
                self.conn.errors += 1;
                self.respond(501, e.reply_lines());
                return None;
            }
        };
        if !self.conn.esmtp && !params(&args).is_empty() {
            self.respond1(555, "Invalid command parameters");
            return None;
        }
        Some(args)
    }

    /// A MAIL or RCPT line that is not UTF-8 is answered 501 (RFC 6531 allows
    /// only UTF-8 in addresses); true once answered.
    pub(super) fn refused_not_utf8(&mut self, utf8: bool) -> bool {
        if !utf8 {
            self.conn.errors += 1;
            self.respond1(501, "Syntax error (invalid UTF-8)");
        }
        !utf8
    }

    /// `utf8`: whether the command line was valid UTF-8.
    pub(super) fn cmd_rcpt(&mut self, rest: &str, utf8: bool) {
        if self.conn.transaction.is_none() {
            self.conn.errors += 1;
            self.respond1(503, "Use MAIL before RCPT");
            return;
        }
        if self.refused_not_utf8(utf8) {
            return;
        }
        let strict = self.cfg.strict_rfc1869 && !self.conn.relaying();
        let Some(args) = self.envelope_args(parse_rcpt_args(rest, strict), |a| &a.params) else {
            return;
        };
        // The transaction and its recipients so far stay as they were.
        if self.refused_no_storage() {
            return;
        }
        if let Some(t) = self.conn.transaction.as_mut() {
            t.rcpt_to.push(args.to.clone());
        }
        self.rcpt_params = args.params.clone();
        self.run_hook(
            Hook::Rcpt,
            HookArgs::Rcpt {
                to: args.to,
                params: args.params,
            },
        );
    }

    /// The recipient under consideration and `recipient <addr>`.
    fn current_rcpt(&self) -> Option<(crate::Address, String)> {
        let rcpt = self.conn.transaction.as_ref()?.rcpt_to.last()?.clone();
        let dmsg = format!("recipient {}", rcpt.format());
        Some((rcpt, dmsg))
    }

    fn pop_rcpt(&mut self) {
        if let Some(t) = self.conn.transaction.as_mut() {
            t.rcpt_to.pop();
        }
    }

    /// The reply for the four rejections (shared by rcpt and rcpt_ok); false if
    /// `action` is not a rejection.
    fn rcpt_rejected(&mut self, action: Action, msg: Option<&Msg>, dmsg: &str) -> bool {
        let count = &mut self.conn.rcpt_count;
        match action {
            Action::Deny | Action::DenyDisconnect => count.reject += 1,
            Action::DenySoft | Action::DenySoftDisconnect => count.tempfail += 1,
            _ => return false,
        }
        let denied = format!("{dmsg} denied");
        self.rejected(
            (action, msg),
            [(550, &denied), (450, &denied)],
            Session::pop_rcpt,
        )
    }

    pub(super) fn on_rcpt(&mut self, outcome: Outcome) {
        let Some((rcpt, dmsg)) = self.current_rcpt() else {
            return;
        };
        let mut action = outcome.action;
        if action == Action::Cont && self.conn.relaying() {
            action = Action::Accept;
        }
        if self.rcpt_rejected(action, outcome.msg.as_ref(), &dmsg) {
            return;
        }
        if action == Action::Accept {
            self.last_rcpt_msg = outcome.msg;
            let params = self.rcpt_params.clone();
            self.run_hook(Hook::RcptOk, HookArgs::Rcpt { to: rcpt, params });
            return;
        }
        // CONT without relaying, or any other code: nobody vouched for it.
        self.conn.rcpt_count.reject += 1;
        let text = format!("I cannot deliver mail for {}", rcpt.format());
        self.respond1(550, &text);
        self.pop_rcpt();
    }

    pub(super) fn on_rcpt_ok(&mut self, outcome: Outcome) {
        let Some((_, dmsg)) = self.current_rcpt() else {
            return;
        };
        let msg = outcome.msg.or_else(|| self.last_rcpt_msg.take());
        if self.rcpt_rejected(outcome.action, msg.as_ref(), &dmsg) {
            return;
        }
        self.conn.rcpt_count.accept += 1;
        self.respond_msg(250, msg.as_ref(), &format!("{dmsg} OK"));
    }
}
