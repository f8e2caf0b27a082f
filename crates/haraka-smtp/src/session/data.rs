//! DATA: the command, the `data` hook and 354, the end of the message, the size and
//! loop checks, `Authentication-Results`, and `data_post`.

use std::time::Duration;

use serde_json::Value;

use super::{After, Mode, Pending, Session, UNLIMITED_DATABYTES_CAP};
use crate::data::DataReceiver;
use crate::hook::{Action, Hook, HookArgs, Outcome};
use crate::message::MessageBuilder;
use crate::received::received_value;

/// The DATA state: the receiver cutting the input into lines, the message those
/// lines build, and the time the message has taken so far.
#[derive(Debug)]
pub(super) struct DataState {
    pub(super) rx: DataReceiver,
    pub(super) builder: MessageBuilder,
    pub(super) clock: DataClock,
    /// The memory budget ran out during this message: what arrived was dropped and
    /// nothing more is stored; the end of data answers 452.
    pub(super) over_budget: bool,
}

/// The reply when the memory budget for messages in flight is exhausted (Postfix's
/// text for the same condition).
pub(super) const INSUFFICIENT_STORAGE: (u16, &str) = (452, "4.3.1 Insufficient system storage");

/// The time a message has taken, as the driver reported it (see `timing.rs`):
/// in all, and in the current period of `data_rate_period`, which started when
/// the receiver had counted `period_start` bytes.
#[derive(Debug, Default)]
pub(super) struct DataClock {
    pub(super) elapsed: Duration,
    pub(super) period: Duration,
    pub(super) period_start: u64,
}

impl Session {
    /// While the memory budget is used up, MAIL, RCPT and DATA are answered 452
    /// (one atomic load), so a client does not send a whole envelope or message
    /// for nothing; true once answered.
    pub(super) fn refused_no_storage(&mut self) -> bool {
        let full = self.cfg.message_budget.exhausted();
        if full {
            let (code, text) = INSUFFICIENT_STORAGE;
            self.respond1(code, text);
        }
        full
    }

    pub(super) fn cmd_data(&mut self, rest: &str) {
        if !rest.is_empty() {
            self.conn.errors += 1;
            self.respond1(501, "Syntax error");
            return;
        }
        let Some(t) = &self.conn.transaction else {
            self.conn.errors += 1;
            self.respond1(503, "MAIL required first");
            return;
        };
        if t.rcpt_to.is_empty() {
            // Haraka answers `554 No valid recipients` only when its timing-dependent
            // `pipelining` flag is set; with synchronous plugins it answers 503.
            self.conn.errors += 1;
            self.respond1(503, "RCPT required first");
            return;
        }
        // The transaction stays open: the client may try DATA again or RSET.
        if self.refused_no_storage() {
            return;
        }
        let mut builder = MessageBuilder::new();
        if self.cfg.add_received {
            let date = self.env.date();
            let value = received_value(&self.conn, &self.cfg.me, self.cfg.product(), &date);
            builder.leading_field("Received", &value);
        }
        self.await_hook(Pending::Data(builder), Hook::Data, HookArgs::None);
    }

    pub(super) fn on_data(&mut self, outcome: Outcome, builder: MessageBuilder) {
        let answer = (outcome.action, outcome.msg.as_ref());
        let denied = "Message denied";
        if self.rejected(answer, [(554, denied), (451, denied)], Session::reset) {
            return;
        }
        self.respond1(354, "go ahead, make my day");
        let limit = match self.cfg.databytes {
            0 => UNLIMITED_DATABYTES_CAP,
            n => n,
        };
        let rx = DataReceiver::new(self.cfg.max_data_line_length, limit);
        self.mode = Mode::Data(Box::new(DataState {
            rx,
            builder,
            clock: DataClock::default(),
            over_budget: false,
        }));
    }

    /// The end-of-data line was seen.
    pub(super) fn data_done(&mut self) {
        let Mode::Data(state) = std::mem::replace(&mut self.mode, Mode::Cmd) else {
            return;
        };
        let DataState {
            rx,
            builder,
            over_budget,
            ..
        } = *state;
        let Some(t) = self.conn.transaction.as_mut() else {
            return;
        };
        t.data_bytes = rx.data_bytes();
        if rx.line_length_exceeded() {
            t.notes
                .insert("data_line_length_exceeded".to_owned(), Value::Bool(true));
        }
        t.message = builder.finish();
        if rx.exceeded() {
            self.run_hook(Hook::MaxDataExceeded, HookArgs::None);
            return;
        }
        if over_budget {
            // What arrived was dropped: never 250 for it.
            let (code, text) = INSUFFICIENT_STORAGE;
            self.respond1(code, text);
            self.reset_then(After::Nothing);
            return;
        }
        if t.message.received_count() > self.cfg.max_received {
            self.respond1(550, "Too many received headers - possible mail loop");
            self.reset_then(After::Nothing);
            return;
        }
        if self.cfg.clean_auth_results {
            t.message.clean_auth_results();
        }
        if let Some(ar) = self.auth_results()
            && let Some(t) = self.conn.transaction.as_mut()
        {
            t.message.add_header("Authentication-Results", &ar);
        }
        self.run_hook(Hook::DataPost, HookArgs::None);
    }

    /// `Authentication-Results` from the `authentication_results` notes (connection
    /// and transaction), or `None` when no plugin recorded a result.
    fn auth_results(&self) -> Option<String> {
        let mut parts = vec![self.cfg.me.clone()];
        let notes = [
            Some(&self.conn.notes),
            self.conn.transaction.as_ref().map(|t| &t.notes),
        ];
        for n in notes.into_iter().flatten() {
            if let Some(Value::Array(items)) = n.get("authentication_results") {
                parts.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
        (parts.len() > 1).then(|| parts.join(";\r\n\t"))
    }

    pub(super) fn on_max_data_exceeded(&mut self, outcome: Outcome) {
        let code = if outcome.action == Action::DenySoft {
            450
        } else {
            550
        };
        self.respond1(code, "Message too big!");
        self.reset_then(After::Nothing);
    }

    pub(super) fn on_data_post(&mut self, outcome: Outcome) {
        if self.conn.transaction.is_none() {
            return;
        }
        if let Some(ar) = self.auth_results()
            && let Some(t) = self.conn.transaction.as_mut()
        {
            t.message.remove_header("Authentication-Results");
            t.message.add_leading_header("Authentication-Results", &ar);
        }
        let answer = (outcome.action, outcome.msg.as_ref());
        let replies = [(550, "Message denied"), (450, "Message denied temporarily")];
        if self.rejected(answer, replies, |s| s.reset_then(After::Nothing)) {
            return;
        }
        let hook = if self.conn.relaying() {
            Hook::QueueOutbound
        } else {
            Hook::Queue
        };
        self.run_hook(hook, HookArgs::None);
    }
}
