//! The server session: Haraka's `connection.js` as a state machine.
//!
//! Protocol: call [`Session::start`], then loop on [`Session::poll`]. Each
//! [`Event::Hook`] must be answered with [`Session::hook_done`] before the session
//! goes on; [`Event::ResolveRdns`] with [`Session::rdns_done`]; [`Event::StartTls`]
//! with [`Session::tls_done`] or [`Session::tls_failed`]. When `poll` returns `None`
//! the session waits for input ([`Session::feed`]) or for the peer to go away
//! ([`Session::peer_closed`]).
//!
//! While it waits for input, [`Session::poll_timeout`] says how long the driver may
//! wait before it calls [`Session::handle_timeout`]; after a wait that brought
//! input it reports the time waited with [`Session::time_passed`] before
//! [`Session::feed`]. The session keeps no clock: its limits are budgets charged
//! with the time the driver reports (see `timing.rs`).
//!
//! One command is processed at a time; buffered (pipelined) input is processed
//! after the reply to the previous command, so replies are always in order. Hooks
//! that plugins answer with a request ([`crate::ConnAction`]) are acted on once the
//! hook's own reply has been produced.

mod connect;
mod data;
mod helo;
mod input;
mod mail;
mod misc;
mod queue;
mod rcpt;
mod timing;

use std::collections::VecDeque;
use std::time::Duration;

use crate::budget::{MemoryBudget, Reservation};
use crate::command::MailArgs;
use crate::conn::{ConnAction, Connection, HelloVerb, TlsInfo, TlsUpgrade};
use crate::hook::{Action, Hook, HookArgs, Msg, Outcome};
use crate::message::MessageBuilder;
use crate::reply::{Reply, deny_tag};

/// What the session needs from its surroundings that would otherwise be IO.
pub trait Env: Send {
    /// The current date in RFC 2822 form for `Received:` (`Thu, 26 Nov 2026 15:51:23 +0000`).
    fn date(&self) -> String;
    /// A fresh connection UUID (XCLIENT replaces it).
    fn new_uuid(&mut self) -> String;
}

/// Settings the session reads from the config (smtp.ini and core flat files).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// `config/me`.
    pub me: String,
    /// `config/smtpgreeting` lines (empty = default greeting).
    pub greeting: Vec<String>,
    /// `smtp.ini [headers] show_version`... (`Haraka/3.0.0` vs `Haraka`).
    pub show_version: bool,
    /// The version string shown in greeting/Received (`Haraka/3.0.0`-style product token).
    pub version: String,
    /// `config/ehlo_hello_message`.
    pub ehlo_hello_message: String,
    /// `config/connection_close_message`.
    pub connection_close_message: String,
    /// `config/databytes`: maximum message size in bytes (0 = no limit).
    pub databytes: u64,
    /// `smtp.ini max_line_length` (512).
    pub max_line_length: usize,
    /// `smtp.ini max_data_line_length` (992).
    pub max_data_line_length: usize,
    /// `smtp.ini smtputf8`.
    pub smtputf8: bool,
    /// `smtp.ini strict_rfc1869`.
    pub strict_rfc1869: bool,
    /// `config/deny_includes_uuid`: 0 = off, otherwise the number of uuid characters.
    pub deny_includes_uuid: usize,
    /// `smtp.ini banner_includes_uuid`.
    pub banner_includes_uuid: bool,
    /// `smtp.ini [headers] add_received`.
    pub add_received: bool,
    /// `smtp.ini [headers] max_received`.
    pub max_received: usize,
    /// `smtp.ini [headers] clean_auth_results`.
    pub clean_auth_results: bool,
    /// The first label of the host name, for `deny_includes_uuid`.
    pub short_hostname: String,
    /// `smtp.ini inactivity_timeout`: how long the client may stay silent.
    pub inactivity_timeout: Duration,
    /// `smtp.ini command_timeout`: how long one command line may take to arrive once
    /// its first byte has come (zero: `inactivity_timeout`).
    pub command_timeout: Duration,
    /// `smtp.ini data_timeout`: how long the message after `354` may take in all
    /// (zero: no limit).
    pub data_timeout: Duration,
    /// `smtp.ini data_min_rate`: bytes per second the message must average over
    /// each `data_rate_period` (0: no minimum).
    pub data_min_rate: u64,
    /// `smtp.ini data_rate_period`: the period over which `data_min_rate` is measured.
    pub data_rate_period: Duration,
    /// `smtp.ini message_memory_budget`: the bytes of message data all sessions
    /// together may hold (clones share one counter).
    pub message_budget: MemoryBudget,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            me: "localhost".to_owned(),
            greeting: Vec::new(),
            show_version: true,
            version: "Haraka/3.0.0".to_owned(),
            ehlo_hello_message: "Haraka is at your service.".to_owned(),
            connection_close_message: "closing connection. Have a jolly good day.".to_owned(),
            databytes: 26_214_400,
            max_line_length: 512,
            max_data_line_length: 992,
            smtputf8: true,
            strict_rfc1869: false,
            deny_includes_uuid: 0,
            banner_includes_uuid: false,
            add_received: true,
            max_received: 100,
            clean_auth_results: true,
            short_hostname: "localhost".to_owned(),
            inactivity_timeout: Duration::from_secs(300),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::ZERO,
            data_min_rate: 1024,
            data_rate_period: Duration::from_secs(60),
            message_budget: MemoryBudget::unlimited(),
        }
    }
}

impl SessionConfig {
    /// `Haraka/3.0.0` with `show_version`, else `Haraka` (Haraka's `local.info`).
    pub fn product(&self) -> &str {
        if self.show_version {
            &self.version
        } else {
            self.version.split('/').next().unwrap_or("Haraka")
        }
    }
}

/// What the session wants its driver to do next.
#[derive(Debug)]
pub enum Event {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Run this hook's plugins, then call [`Session::hook_done`].
    Hook { hook: Hook, args: HookArgs },
    /// No plugin answered lookup_rdns: resolve the client's PTR and call
    /// [`Session::rdns_done`].
    ResolveRdns,
    /// Everything before this has been sent; upgrade the stream with this TLS
    /// configuration, then call [`Session::tls_done`] or [`Session::tls_failed`].
    StartTls(TlsUpgrade),
    /// Close the connection (after sending everything before this).
    Close,
}

/// Smallest command line limit honoured (a smaller configured value is raised).
const MIN_LINE: usize = 64;
/// Input buffered in command mode beyond this is refused (`421`, close).
pub const MAX_BUFFERED: usize = 1024 * 1024;
/// Storage limit for a message when `databytes` is 0 (no configured limit).
pub const UNLIMITED_DATABYTES_CAP: u64 = 256 * 1024 * 1024;

#[derive(Debug)]
enum Mode {
    /// connect_init … connect (or XCLIENT's restart): input waits.
    Connecting,
    Cmd,
    /// A connect/lookup_rdns rejection: every line but QUIT gets this reply.
    Loop {
        code: u16,
        lines: Vec<String>,
    },
    /// Receiving the message: the DATA receiver and the message it builds.
    Data(Box<data::DataState>),
    /// Waiting for the TLS handshake; input is discarded.
    Tls,
    Closing,
    Closed,
}

/// What happens once the transaction is reset.
#[derive(Debug)]
enum After {
    Nothing,
    Mail(MailArgs),
    Hello(HelloVerb, String),
    Disconnect,
    Restart,
}

#[derive(Debug)]
enum Pending {
    Hook(Hook),
    /// The `data` hook; the message starts with this builder (its `Received:`).
    Data(MessageBuilder),
    Reset(After),
    Rdns,
}

/// One SMTP server session.
pub struct Session {
    conn: Connection,
    cfg: SessionConfig,
    env: Box<dyn Env>,
    mode: Mode,
    pending: Option<Pending>,
    events: VecDeque<Event>,
    input: Vec<u8>,
    rcpt_params: Vec<(String, Option<String>)>,
    last_rcpt_msg: Option<Msg>,
    queue_msg: Msg,
    /// The peer is gone (or TLS failed): nothing more is sent.
    silent: bool,
    deferred_disconnect: bool,
    started: bool,
    /// What is left of `command_timeout` for the command line being received.
    line_left: Duration,
    /// The message bytes this session's transaction holds against
    /// `cfg.message_budget`; given back when the transaction ends.
    held: Reservation,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("uuid", &self.conn.uuid)
            .field("mode", &self.mode)
            .field("pending", &self.pending)
            .field("buffered", &self.input.len())
            .finish()
    }
}

impl Session {
    pub fn new(conn: Connection, cfg: SessionConfig, env: Box<dyn Env>) -> Session {
        let line_left = timing::line_limit(&cfg);
        let held = cfg.message_budget.reservation();
        Session {
            conn,
            cfg,
            env,
            mode: Mode::Connecting,
            pending: None,
            events: VecDeque::new(),
            input: Vec::new(),
            rcpt_params: Vec::new(),
            last_rcpt_msg: None,
            queue_msg: Msg::default(),
            silent: false,
            deferred_disconnect: false,
            started: false,
            line_left,
            held,
        }
    }

    /// Begin: runs connect_init, lookup_rdns, connect, then greets.
    pub fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        self.mode = Mode::Connecting;
        self.run_hook(Hook::ConnectInit, HookArgs::None);
    }

    /// Bytes from the client.
    pub fn feed(&mut self, input: &[u8]) {
        if matches!(self.mode, Mode::Closing | Mode::Closed | Mode::Tls) {
            return;
        }
        self.input.extend_from_slice(input);
        if !matches!(self.mode, Mode::Data(_)) && self.input.len() > MAX_BUFFERED {
            self.input.clear();
            self.respond(421, vec!["Too much pipelined input".to_owned()]);
            self.disconnect();
        }
    }

    /// The next thing to do, or `None` when the session waits for input.
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if !self.step() {
                return None;
            }
        }
    }

    /// The answer to the last [`Event::Hook`].
    pub fn hook_done(&mut self, outcome: Outcome) {
        let pending = match self.pending.take() {
            Some(Pending::Rdns) => {
                self.pending = Some(Pending::Rdns);
                return;
            }
            Some(p) => p,
            None => return,
        };
        if matches!(pending, Pending::Reset(_)) {
            self.drop_transaction();
        }
        if self.deferred_disconnect {
            self.deferred_disconnect = false;
            self.start_disconnect();
            return;
        }
        match pending {
            Pending::Hook(hook) => self.on_hook(hook, outcome),
            Pending::Data(builder) => self.on_data(outcome, builder),
            Pending::Reset(after) => self.after_reset(after),
            Pending::Rdns => {}
        }
        self.handle_requests();
    }

    /// The answer to [`Event::ResolveRdns`]: `Ok(name)`, or `Err("NXDOMAIN" | "DNSERROR")`.
    pub fn rdns_done(&mut self, result: Result<String, &'static str>) {
        if !matches!(self.pending, Some(Pending::Rdns)) {
            return;
        }
        self.pending = None;
        if self.deferred_disconnect {
            self.deferred_disconnect = false;
            self.start_disconnect();
            return;
        }
        self.rdns_result(result);
    }

    /// The TLS handshake after [`Event::StartTls`] succeeded.
    pub fn tls_done(&mut self, info: TlsInfo) {
        self.conn.tls = info;
        if !matches!(self.mode, Mode::Tls) {
            return;
        }
        self.input.clear();
        self.conn.hello = None;
        self.conn.esmtp = false;
        self.conn.capabilities.clear();
        self.mode = Mode::Cmd;
        self.reset_then(After::Nothing);
    }

    /// The TLS handshake failed: the session ends.
    pub fn tls_failed(&mut self) {
        self.silent = true;
        self.disconnect();
    }

    /// The client closed its side: run `disconnect` and finish.
    pub fn peer_closed(&mut self) {
        self.silent = true;
        self.disconnect();
    }

    /// Whether the session has ended (after [`Event::Close`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// Bytes buffered but not yet processed (for bounding memory per connection).
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    pub fn env(&mut self) -> &mut dyn Env {
        self.env.as_mut()
    }

    // ---- internals shared by the command modules ----

    /// Process some input if the session is ready for it; false if nothing moved.
    fn step(&mut self) -> bool {
        if self.pending.is_some() {
            return false;
        }
        match self.mode {
            Mode::Cmd | Mode::Loop { .. } => self.step_command(),
            Mode::Data(_) => self.step_data(),
            _ => false,
        }
    }

    fn on_hook(&mut self, hook: Hook, outcome: Outcome) {
        match hook {
            Hook::ConnectInit => self.run_hook(Hook::LookupRdns, HookArgs::None),
            Hook::LookupRdns => self.on_lookup_rdns(outcome),
            Hook::Connect => self.on_connect(outcome),
            Hook::Helo => self.on_hello(HelloVerb::Helo, outcome),
            Hook::Ehlo => self.on_hello(HelloVerb::Ehlo, outcome),
            Hook::Capabilities => self.on_capabilities(),
            Hook::Mail => self.on_mail(outcome),
            Hook::Rcpt => self.on_rcpt(outcome),
            Hook::RcptOk => self.on_rcpt_ok(outcome),
            Hook::MaxDataExceeded => self.on_max_data_exceeded(outcome),
            Hook::DataPost => self.on_data_post(outcome),
            Hook::Queue | Hook::QueueOutbound => self.on_queue(outcome),
            Hook::QueueOk => self.on_queue_ok(),
            Hook::Rset => self.on_rset(),
            Hook::Quit => self.on_quit(outcome),
            Hook::Vrfy => self.on_vrfy(outcome),
            Hook::Noop => self.on_noop(outcome),
            Hook::UnrecognizedCommand => self.on_unrecognized(outcome),
            Hook::Disconnect => {
                self.mode = Mode::Closed;
                self.events.push_back(Event::Close);
            }
            _ => {}
        }
    }

    /// Act on what a plugin asked for, once no hook is outstanding. One request per
    /// hook is acted on; STARTTLS and XCLIENT each end the command.
    fn handle_requests(&mut self) {
        if self.pending.is_some() || matches!(self.mode, Mode::Closing | Mode::Closed) {
            return;
        }
        match self.conn.take_requests().into_iter().next() {
            Some(ConnAction::StartTls(upgrade)) => {
                // Plaintext pipelined after STARTTLS is never processed (CVE-2011-0411).
                self.input.clear();
                self.mode = Mode::Tls;
                self.events.push_back(Event::StartTls(upgrade));
            }
            Some(ConnAction::Restart) => self.restart(),
            None => {}
        }
    }

    fn run_hook(&mut self, hook: Hook, args: HookArgs) {
        self.await_hook(Pending::Hook(hook), hook, args);
    }

    /// Ask the driver to run `hook`; its answer goes to what `pending` says.
    fn await_hook(&mut self, pending: Pending, hook: Hook, args: HookArgs) {
        self.pending = Some(pending);
        self.events.push_back(Event::Hook { hook, args });
    }

    /// Write a reply (with the `deny_includes_uuid` tag for 4xx/5xx).
    fn respond(&mut self, code: u16, lines: Vec<String>) {
        if self.silent {
            return;
        }
        let uuid = match &self.conn.transaction {
            Some(t) => t.uuid.as_str(),
            None => self.conn.uuid.as_str(),
        };
        let tag = deny_tag(
            code,
            self.cfg.deny_includes_uuid,
            uuid,
            &self.cfg.short_hostname,
        );
        let bytes = Reply { code, lines }.to_bytes_tagged(tag.as_deref());
        self.events.push_back(Event::Send(bytes));
    }

    /// Haraka's four rejections: reply `hard` (code, default text) to DENY and
    /// DENYDISCONNECT, `soft` to DENYSOFT and DENYSOFTDISCONNECT (the plugin's
    /// message replaces the text), then disconnect for the `…DISCONNECT` ones or
    /// run `then`. False for other actions.
    fn rejected(
        &mut self,
        (action, msg): (Action, Option<&Msg>),
        [hard, soft]: [(u16, &str); 2],
        then: fn(&mut Session),
    ) -> bool {
        let (code, default) = match action {
            Action::Deny | Action::DenyDisconnect => hard,
            Action::DenySoft | Action::DenySoftDisconnect => soft,
            _ => return false,
        };
        self.respond_msg(code, msg, default);
        if matches!(action, Action::DenyDisconnect | Action::DenySoftDisconnect) {
            self.disconnect();
        } else {
            then(self);
        }
        true
    }

    fn respond1(&mut self, code: u16, text: &str) {
        self.respond(code, vec![text.to_owned()]);
    }

    /// Reply with the plugin's message (its DSN code replaces `code`) or `default`.
    fn respond_msg(&mut self, code: u16, msg: Option<&Msg>, default: &str) {
        let (code, lines) = reply_parts(code, msg, default);
        self.respond(code, lines);
    }

    /// Run `reset_transaction` if a transaction is open.
    fn reset(&mut self) {
        self.reset_then(After::Nothing);
    }

    /// Run `reset_transaction` if a transaction is open, then do `after`.
    fn reset_then(&mut self, after: After) {
        if self.conn.transaction.is_some() {
            self.await_hook(
                Pending::Reset(after),
                Hook::ResetTransaction,
                HookArgs::None,
            );
        } else {
            self.after_reset(after);
        }
    }

    fn drop_transaction(&mut self) {
        self.conn.transaction = None;
        self.held.release();
        self.last_rcpt_msg = None;
    }

    fn after_reset(&mut self, after: After) {
        self.drop_transaction();
        match after {
            After::Nothing => {}
            After::Mail(args) => self.start_transaction(args),
            After::Hello(verb, host) => self.run_hello(verb, host),
            After::Disconnect => self.run_hook(Hook::Disconnect, HookArgs::None),
            After::Restart => self.after_restart(),
        }
    }

    /// Haraka's `disconnect()`: reset the transaction, run `disconnect`, close.
    fn disconnect(&mut self) {
        if matches!(self.mode, Mode::Closing | Mode::Closed) {
            return;
        }
        self.mode = Mode::Closing;
        self.input.clear();
        if self.pending.is_some() {
            self.deferred_disconnect = true;
            return;
        }
        self.start_disconnect();
    }

    fn start_disconnect(&mut self) {
        self.reset_then(After::Disconnect);
    }
}

/// The reply for a plugin's message: its DSN code (if any) and its non-blank lines,
/// else `code` and `default`.
fn reply_parts(code: u16, msg: Option<&Msg>, default: &str) -> (u16, Vec<String>) {
    match msg {
        Some(m) => {
            let code = m.code.unwrap_or(code);
            if has_text(m) {
                (code, m.lines.clone())
            } else {
                (code, vec![default.to_owned()])
            }
        }
        None => (code, vec![default.to_owned()]),
    }
}

fn has_text(m: &Msg) -> bool {
    m.lines
        .iter()
        .any(|l| l.chars().any(|c| !c.is_whitespace()))
}

/// The message of an outcome when it has text.
fn msg_with_text(outcome: &Outcome) -> Option<&Msg> {
    outcome.msg.as_ref().filter(|m| has_text(m))
}
