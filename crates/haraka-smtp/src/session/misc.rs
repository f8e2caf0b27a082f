//! RSET, NOOP, VRFY, QUIT and unknown verbs (`unrecognized_command`, NEXT_HOOK).

use super::{After, Session, msg_with_text};
use crate::hook::{Action, Hook, HookArgs, Msg, Outcome};

impl Session {
    pub(super) fn cmd_rset(&mut self, rest: &str) {
        if !rest.is_empty() {
            self.respond1(501, "Syntax error");
            return;
        }
        self.run_hook(Hook::Rset, HookArgs::None);
    }

    pub(super) fn on_rset(&mut self) {
        self.respond1(250, "OK");
        self.reset_then(After::Nothing);
    }

    pub(super) fn cmd_quit(&mut self, rest: &str) {
        if !rest.is_empty() {
            self.respond1(501, "Syntax error");
            return;
        }
        self.run_hook(Hook::Quit, HookArgs::None);
    }

    pub(super) fn on_quit(&mut self, outcome: Outcome) {
        let default = format!("{} {}", self.cfg.me, self.cfg.connection_close_message);
        self.respond_msg(221, outcome.msg.as_ref(), &default);
        self.disconnect();
    }

    pub(super) fn on_noop(&mut self, outcome: Outcome) {
        let msg = outcome.msg.as_ref();
        match outcome.action {
            Action::Deny => self.respond_msg(500, msg, "Stop wasting my time"),
            Action::DenyDisconnect => {
                self.respond_msg(500, msg, "Stop wasting my time");
                self.disconnect();
            }
            _ => self.respond1(250, "OK"),
        }
    }

    pub(super) fn on_vrfy(&mut self, outcome: Outcome) {
        let answer = (outcome.action, outcome.msg.as_ref());
        let replies = [(550, "Access Denied"), (450, "Lookup Failed")];
        if self.rejected(answer, replies, |s| s.reset_then(After::Nothing)) {
            return;
        }
        let msg = answer.1;
        match outcome.action {
            Action::Accept => self.respond_msg(250, msg, "User OK"),
            _ => self.respond1(
                252,
                "Just try sending a mail and we'll see how it turns out...",
            ),
        }
    }

    /// `OK` means the plugin handled the command: its message (if any) is the reply,
    /// with the message's code or 250 (e.g. STARTTLS's `220 Go ahead.`).
    pub(super) fn on_unrecognized(&mut self, outcome: Outcome) {
        let msg = outcome.msg.as_ref();
        match outcome.action {
            Action::Accept => {
                if let Some(m) = msg_with_text(&outcome) {
                    let m = m.clone();
                    self.respond(m.code.unwrap_or(250), m.lines);
                }
            }
            Action::NextHook => self.next_hook(msg),
            Action::Deny => self.respond_msg(500, msg, "Unrecognized command"),
            Action::DenyDisconnect => {
                self.respond_msg(521, msg, "Unrecognized command");
                self.disconnect();
            }
            Action::DenySoftDisconnect => {
                self.respond_msg(421, msg, "Unrecognized command");
                self.disconnect();
            }
            _ => {
                self.conn.errors += 1;
                self.respond_msg(500, msg, "Unrecognized command");
            }
        }
    }

    /// NEXT_HOOK: run the hook named by the message and answer as that hook does.
    /// Only hooks that take no arguments can be named; anything else is unknown.
    fn next_hook(&mut self, msg: Option<&Msg>) {
        let name = msg.map(Msg::joined).unwrap_or_default();
        match Hook::from_name(name.trim()) {
            Some(h @ (Hook::Rset | Hook::Quit | Hook::Vrfy | Hook::Noop)) => {
                self.run_hook(h, HookArgs::None)
            }
            _ => {
                self.conn.errors += 1;
                self.respond1(500, "Unrecognized command");
            }
        }
    }
}
