//! Connection start: lookup_rdns, the core rDNS answer, connect, the greeting, the
//! LOOP state, and XCLIENT's restart.

use super::{After, Event, Mode, Pending, Session, msg_with_text, reply_parts};
use crate::hook::{Action, Hook, HookArgs, Msg, Outcome};

impl Session {
    pub(super) fn on_lookup_rdns(&mut self, outcome: Outcome) {
        let msg = outcome.msg.as_ref();
        match outcome.action {
            Action::Accept => {
                let name = msg_with_text(&outcome)
                    .map(Msg::joined)
                    .unwrap_or_else(|| "Unknown".to_owned());
                self.set_remote_host(name);
                self.run_hook(Hook::Connect, HookArgs::None);
            }
            Action::Deny => self.loop_respond(554, msg, "rDNS Lookup Failed"),
            Action::DenyDisconnect | Action::Disconnect => {
                self.respond_msg(554, msg, "rDNS Lookup Failed");
                self.disconnect();
            }
            Action::DenySoft => self.loop_respond(421, msg, "rDNS Temporary Failure"),
            Action::DenySoftDisconnect => {
                self.respond_msg(421, msg, "rDNS Temporary Failure");
                self.disconnect();
            }
            _ => {
                self.pending = Some(Pending::Rdns);
                self.events.push_back(Event::ResolveRdns);
            }
        }
    }

    pub(super) fn rdns_result(&mut self, result: Result<String, &'static str>) {
        let host = match result {
            Ok(name) if name.is_empty() => "Unknown".to_owned(),
            Ok(name) => name,
            Err("NXDOMAIN") => "NXDOMAIN".to_owned(),
            Err(_) => "DNSERROR".to_owned(),
        };
        self.set_remote_host(host);
        self.run_hook(Hook::Connect, HookArgs::None);
    }

    /// `remote.host`; `remote.info` keeps the first answer (XCLIENT does not change it).
    fn set_remote_host(&mut self, host: String) {
        if self.conn.remote.info.is_none() {
            self.conn.remote.info = Some(host.clone());
        }
        self.conn.remote.host = Some(host);
    }

    pub(super) fn on_connect(&mut self, outcome: Outcome) {
        let msg = outcome.msg.as_ref();
        match outcome.action {
            Action::Deny => self.loop_respond(554, msg, "Your mail is not welcome here"),
            Action::DenyDisconnect | Action::Disconnect => {
                self.respond_msg(554, msg, "Your mail is not welcome here");
                self.disconnect();
            }
            Action::DenySoft => self.loop_respond(421, msg, "Come back later"),
            Action::DenySoftDisconnect => {
                self.respond_msg(421, msg, "Come back later");
                self.disconnect();
            }
            _ => {
                match msg_with_text(&outcome) {
                    Some(m) => {
                        let m = m.clone();
                        self.respond(m.code.unwrap_or(220), m.lines);
                    }
                    None => {
                        let greeting = self.greeting();
                        self.respond(220, greeting);
                    }
                }
                self.mode = Mode::Cmd;
                if !self.input.is_empty() {
                    self.conn.early_talker = true;
                }
            }
        }
    }

    /// `<me> ESMTP Haraka/3.0.0 ready[ (<uuid>)]`, or the `smtpgreeting` lines.
    fn greeting(&self) -> Vec<String> {
        let uuid = if self.cfg.banner_includes_uuid {
            format!(" ({})", self.conn.uuid)
        } else {
            String::new()
        };
        let me = &self.cfg.me;
        match self.cfg.greeting.split_first() {
            Some((first, rest)) => {
                let mut lines = vec![format!("{me} ESMTP {first}{uuid}")];
                lines.extend(rest.iter().cloned());
                lines
            }
            None => vec![format!("{me} ESMTP {} ready{uuid}", self.cfg.product())],
        }
    }

    /// Reply and enter the LOOP state: every later line but QUIT gets the same reply.
    fn loop_respond(&mut self, code: u16, msg: Option<&Msg>, default: &str) {
        let (code, lines) = reply_parts(code, msg, default);
        self.respond(code, lines.clone());
        self.mode = Mode::Loop { code, lines };
    }

    /// XCLIENT: the plugin has replaced the client's attributes. New UUID, transaction
    /// reset, then lookup_rdns (unless the plugin set a name) and connect; the
    /// greeting is the reply. connect_init is not run again (as in Haraka).
    pub(super) fn restart(&mut self) {
        self.conn.uuid = self.env.new_uuid();
        self.conn.capabilities.clear();
        self.mode = Mode::Connecting;
        self.reset_then(After::Restart);
    }

    pub(super) fn after_restart(&mut self) {
        if self.conn.remote.host.is_none() {
            self.run_hook(Hook::LookupRdns, HookArgs::None);
        } else {
            self.run_hook(Hook::Connect, HookArgs::None);
        }
    }
}
