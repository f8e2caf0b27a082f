//! The queue replies: `queue` / `queue_outbound`, then `queue_ok`.
//!
//! The transaction UUID is always appended as ` (<tuuid>)`. When nothing queued the
//! message the reply is `451 Queuing declined or disabled, try later (<tuuid>)`
//! (Haraka 3.0.0 wrote `451  (<tuuid>)` with no text). For `queue_outbound` the
//! driver hands a message nobody took to the outbound queue and reports that as the
//! hook's outcome (`Accept` = queued).

use super::{After, Session, has_text};
use crate::hook::{Action, Hook, HookArgs, Msg, Outcome};

impl Session {
    pub(super) fn on_queue(&mut self, outcome: Outcome) {
        let Some(t) = &self.conn.transaction else {
            return;
        };
        let tuuid = t.uuid.clone();
        let (default, code) = match outcome.action {
            Action::Accept => ("Message Queued", 250),
            Action::Deny | Action::DenyDisconnect => ("Message denied", 550),
            Action::DenySoft | Action::DenySoftDisconnect => ("Message denied temporarily", 450),
            _ => ("Queuing declined or disabled, try later", 451),
        };
        let mut msg = match outcome.msg {
            Some(m) if has_text(&m) => m,
            other => Msg {
                code: other.and_then(|m| m.code),
                lines: vec![default.to_owned()],
            },
        };
        let lines: Vec<String> = msg
            .lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .cloned()
            .collect();
        msg.lines = lines;
        if let Some(last) = msg.lines.last_mut() {
            last.push_str(&format!(" ({tuuid})"));
        }
        let code = msg.code.unwrap_or(code);
        match outcome.action {
            Action::Accept => {
                self.queue_msg = msg.clone();
                self.run_hook(Hook::QueueOk, HookArgs::QueueOk(msg));
            }
            Action::DenyDisconnect | Action::DenySoftDisconnect => {
                self.respond(code, msg.lines);
                self.disconnect();
            }
            _ => {
                self.respond(code, msg.lines);
                self.reset_then(After::Nothing);
            }
        }
    }

    pub(super) fn on_queue_ok(&mut self) {
        let lines = std::mem::take(&mut self.queue_msg.lines);
        self.respond(250, lines);
        self.reset_then(After::Nothing);
    }
}
