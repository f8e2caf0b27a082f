//! Haraka's hooks and return codes, as plain data.
//!
//! The session asks for a hook to be run ([`crate::Event::Hook`]) and is told the
//! [`Outcome`]; it never runs plugins itself.

use std::fmt;
use std::net::IpAddr;

use crate::address::Address;

/// A Haraka hook. The order of the variants is the order they fire in an SMTP session,
/// then the outbound hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    ConnectInit,
    LookupRdns,
    Connect,
    Capabilities,
    UnrecognizedCommand,
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    RcptOk,
    Data,
    DataPost,
    MaxDataExceeded,
    Queue,
    QueueOutbound,
    QueueOk,
    ResetTransaction,
    Deny,
    Rset,
    Quit,
    Vrfy,
    Noop,
    Disconnect,
    // outbound
    PreSendTransEmail,
    SendEmail,
    GetMx,
    Delivered,
    Deferred,
    Bounce,
}

impl Hook {
    /// Every hook, in firing order.
    pub const ALL: [Hook; 29] = [
        Hook::ConnectInit,
        Hook::LookupRdns,
        Hook::Connect,
        Hook::Capabilities,
        Hook::UnrecognizedCommand,
        Hook::Helo,
        Hook::Ehlo,
        Hook::Mail,
        Hook::Rcpt,
        Hook::RcptOk,
        Hook::Data,
        Hook::DataPost,
        Hook::MaxDataExceeded,
        Hook::Queue,
        Hook::QueueOutbound,
        Hook::QueueOk,
        Hook::ResetTransaction,
        Hook::Deny,
        Hook::Rset,
        Hook::Quit,
        Hook::Vrfy,
        Hook::Noop,
        Hook::Disconnect,
        Hook::PreSendTransEmail,
        Hook::SendEmail,
        Hook::GetMx,
        Hook::Delivered,
        Hook::Deferred,
        Hook::Bounce,
    ];

    /// Haraka's name of the hook (`rcpt_ok`, `data_post`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Hook::ConnectInit => "connect_init",
            Hook::LookupRdns => "lookup_rdns",
            Hook::Connect => "connect",
            Hook::Capabilities => "capabilities",
            Hook::UnrecognizedCommand => "unrecognized_command",
            Hook::Helo => "helo",
            Hook::Ehlo => "ehlo",
            Hook::Mail => "mail",
            Hook::Rcpt => "rcpt",
            Hook::RcptOk => "rcpt_ok",
            Hook::Data => "data",
            Hook::DataPost => "data_post",
            Hook::MaxDataExceeded => "max_data_exceeded",
            Hook::Queue => "queue",
            Hook::QueueOutbound => "queue_outbound",
            Hook::QueueOk => "queue_ok",
            Hook::ResetTransaction => "reset_transaction",
            Hook::Deny => "deny",
            Hook::Rset => "rset",
            Hook::Quit => "quit",
            Hook::Vrfy => "vrfy",
            Hook::Noop => "noop",
            Hook::Disconnect => "disconnect",
            Hook::PreSendTransEmail => "pre_send_trans_email",
            Hook::SendEmail => "send_email",
            Hook::GetMx => "get_mx",
            Hook::Delivered => "delivered",
            Hook::Deferred => "deferred",
            Hook::Bounce => "bounce",
        }
    }

    /// The hook with Haraka's name `name`.
    pub fn from_name(name: &str) -> Option<Hook> {
        Hook::ALL.iter().copied().find(|h| h.name() == name)
    }

    /// Hooks where every plugin runs and the return value is ignored.
    pub fn runs_all(self) -> bool {
        matches!(self, Hook::ConnectInit | Hook::Disconnect)
    }

    /// Outbound hooks run against a queued message, not an SMTP session.
    pub fn is_outbound(self) -> bool {
        matches!(
            self,
            Hook::PreSendTransEmail
                | Hook::SendEmail
                | Hook::GetMx
                | Hook::Delivered
                | Hook::Deferred
                | Hook::Bounce
        )
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Haraka's return codes (`next(CODE, msg)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `CONT` (900): let the next plugin run.
    Cont,
    /// `STOP` (901): stops the chain; replied like "anything else".
    Stop,
    /// `DENY` (902): 5xx.
    Deny,
    /// `DENYSOFT` (903): 4xx.
    DenySoft,
    /// `DENYDISCONNECT` (904): 5xx and close.
    DenyDisconnect,
    /// `DISCONNECT` (905): close (honoured by connect and lookup_rdns).
    Disconnect,
    /// `OK` (906): accept; stop running other plugins on this hook.
    Accept,
    /// `NEXT_HOOK` (907): only on unrecognized_command; the message names the hook.
    NextHook,
    /// `DELAY` (908): only on send_email; the message is the delay in seconds.
    Delay,
    /// `DENYSOFTDISCONNECT` (909): 4xx and close.
    DenySoftDisconnect,
}

impl Action {
    /// Haraka's numeric constant.
    pub fn code(self) -> u16 {
        match self {
            Action::Cont => 900,
            Action::Stop => 901,
            Action::Deny => 902,
            Action::DenySoft => 903,
            Action::DenyDisconnect => 904,
            Action::Disconnect => 905,
            Action::Accept => 906,
            Action::NextHook => 907,
            Action::Delay => 908,
            Action::DenySoftDisconnect => 909,
        }
    }

    /// The action for Haraka's numeric constant.
    pub fn from_code(code: u16) -> Option<Action> {
        Some(match code {
            900 => Action::Cont,
            901 => Action::Stop,
            902 => Action::Deny,
            903 => Action::DenySoft,
            904 => Action::DenyDisconnect,
            905 => Action::Disconnect,
            906 => Action::Accept,
            907 => Action::NextHook,
            908 => Action::Delay,
            909 => Action::DenySoftDisconnect,
            _ => return None,
        })
    }

    /// Haraka's upper-case name (`constants.translate`), as used in logs.
    pub fn name(self) -> &'static str {
        match self {
            Action::Cont => "CONT",
            Action::Stop => "STOP",
            Action::Deny => "DENY",
            Action::DenySoft => "DENYSOFT",
            Action::DenyDisconnect => "DENYDISCONNECT",
            Action::Disconnect => "DISCONNECT",
            Action::Accept => "OK",
            Action::NextHook => "NEXT_HOOK",
            Action::Delay => "DELAY",
            Action::DenySoftDisconnect => "DENYSOFTDISCONNECT",
        }
    }

    /// Any of the four rejections (these trigger the `deny` hook).
    pub fn is_deny(self) -> bool {
        matches!(
            self,
            Action::Deny | Action::DenySoft | Action::DenyDisconnect | Action::DenySoftDisconnect
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The message a plugin gives with its return code: Haraka's string / array / DSN.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Msg {
    /// A code that replaces the hook's default code (a haraka-dsn object does this).
    pub code: Option<u16>,
    /// Reply lines; blank lines are dropped when the reply is written.
    pub lines: Vec<String>,
}

impl Msg {
    /// A one-line message; `\n` splits it into several lines as in Haraka.
    pub fn text(text: impl AsRef<str>) -> Msg {
        Msg {
            code: None,
            lines: text.as_ref().split('\n').map(str::to_owned).collect(),
        }
    }

    /// A DSN-style message: `code` replaces the hook's code, the text is `status text`.
    pub fn dsn(code: u16, status: &str, text: &str) -> Msg {
        Msg {
            code: Some(code),
            lines: vec![format!("{status} {text}")],
        }
    }

    /// The lines joined with a space: for log lines and single-line uses.
    pub fn joined(&self) -> String {
        self.lines.join(" ")
    }
}

impl From<&str> for Msg {
    fn from(s: &str) -> Msg {
        Msg::text(s)
    }
}

impl From<String> for Msg {
    fn from(s: String) -> Msg {
        Msg::text(s)
    }
}

/// What a hook answered: a return code and an optional message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    pub msg: Option<Msg>,
}

impl Outcome {
    pub fn new(action: Action, msg: Option<Msg>) -> Outcome {
        Outcome { action, msg }
    }
    /// `next()`.
    pub fn cont() -> Outcome {
        Outcome::new(Action::Cont, None)
    }
    /// `next(OK)`.
    pub fn accept() -> Outcome {
        Outcome::new(Action::Accept, None)
    }
    /// `next(OK, msg)`.
    pub fn accept_with(msg: impl Into<Msg>) -> Outcome {
        Outcome::new(Action::Accept, Some(msg.into()))
    }
    /// `next(DENY, msg)`.
    pub fn deny(msg: impl Into<Msg>) -> Outcome {
        Outcome::new(Action::Deny, Some(msg.into()))
    }
    /// `next(DENYSOFT, msg)`.
    pub fn deny_soft(msg: impl Into<Msg>) -> Outcome {
        Outcome::new(Action::DenySoft, Some(msg.into()))
    }
    /// `next(DENYDISCONNECT, msg)`.
    pub fn deny_disconnect(msg: impl Into<Msg>) -> Outcome {
        Outcome::new(Action::DenyDisconnect, Some(msg.into()))
    }
    /// `next(DENYSOFTDISCONNECT, msg)`.
    pub fn deny_soft_disconnect(msg: impl Into<Msg>) -> Outcome {
        Outcome::new(Action::DenySoftDisconnect, Some(msg.into()))
    }
    /// What a timed-out plugin counts as.
    pub fn plugin_timeout() -> Outcome {
        Outcome::deny_soft("plugin timeout")
    }
    /// The message's text, or `default` when the plugin gave none.
    pub fn text_or(&self, default: &str) -> Vec<String> {
        match &self.msg {
            Some(m) if m.lines.iter().any(|l| !l.trim().is_empty()) => m.lines.clone(),
            _ => vec![default.to_owned()],
        }
    }
}

/// The arguments a hook is called with (Haraka's `params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookArgs {
    None,
    /// helo / ehlo: the name the client gave.
    Hello(String),
    /// mail: the sender (`None` = the null sender `<>`) and its ESMTP parameters.
    Mail {
        from: Option<Address>,
        params: Vec<(String, Option<String>)>,
    },
    /// rcpt / rcpt_ok: the recipient and its ESMTP parameters.
    Rcpt {
        to: Address,
        params: Vec<(String, Option<String>)>,
    },
    /// unrecognized_command: the verb (as sent) and the rest of the line.
    Unrecognized {
        verb: String,
        rest: String,
    },
    /// queue_ok: the message of the queue plugin.
    QueueOk(Msg),
    /// deny: what was rejected, by whom, at which hook.
    Deny {
        action: Action,
        msg: Option<Msg>,
        plugin: String,
        hook: Hook,
    },
    /// lookup_rdns has no args; `Rdns` is what the core resolver found (for logging).
    Ip(IpAddr),
}
