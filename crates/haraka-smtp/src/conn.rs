//! The state a session keeps about its client and its current transaction: what
//! Haraka's plugins see as `connection` and `connection.transaction`.

use std::any::Any;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::address::Address;
use crate::message::Message;

/// Free-form notes (`connection.notes`, `transaction.notes`).
pub type Notes = Map<String, Value>;

/// The client's side of the connection (`connection.remote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub ip: IpAddr,
    pub port: u16,
    /// rDNS name, or `NXDOMAIN` / `DNSERROR` / `Unknown` as Haraka records them.
    pub host: Option<String>,
    /// The first rDNS result, kept for the `Received:` header (not changed by XCLIENT).
    pub info: Option<String>,
}

impl Remote {
    pub fn new(ip: IpAddr, port: u16) -> Remote {
        Remote {
            ip,
            port,
            host: None,
            info: None,
        }
    }

    /// IPv4-mapped IPv6 addresses are treated as the IPv4 address they carry.
    pub fn canonical_ip(&self) -> IpAddr {
        canonical_ip(self.ip)
    }

    /// Loopback (`connection.remote.is_local`).
    pub fn is_local(&self) -> bool {
        self.canonical_ip().is_loopback()
    }

    /// RFC 1918 / ULA / link-local / loopback (`connection.remote.is_private`).
    pub fn is_private(&self) -> bool {
        match self.canonical_ip() {
            IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        }
    }
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`; every other address is returned unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The server's side (`connection.local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub ip: IpAddr,
    pub port: u16,
    /// The `me` name.
    pub host: String,
}

/// Which greeting the client used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloVerb {
    Helo,
    Ehlo,
}

impl HelloVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            HelloVerb::Helo => "HELO",
            HelloVerb::Ehlo => "EHLO",
        }
    }
}

/// `connection.hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub verb: HelloVerb,
    pub host: String,
}

/// `connection.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub enabled: bool,
    pub advertised: bool,
    pub verified: bool,
    /// IANA name of the negotiated cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    pub cipher: Option<String>,
    pub version: Option<String>,
    /// Subject of a verified client certificate.
    pub peer_subject: Option<String>,
}

/// Results a plugin recorded (`connection.results` / `transaction.results`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    entries: Map<String, Value>,
}

impl Results {
    /// Append `value` to the `kind` list (`pass`, `fail`, `skip`, `err`, `msg`) of `plugin`.
    pub fn add(&mut self, plugin: &str, kind: &str, value: impl Into<Value>) {
        let entry = self
            .entries
            .entry(plugin.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(obj) = entry {
            let list = obj
                .entry(kind.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(value.into());
            }
        }
    }

    /// Everything recorded for `plugin`.
    pub fn get(&self, plugin: &str) -> Option<&Value> {
        self.entries.get(plugin)
    }

    /// Whether `plugin` recorded `value` under `kind`.
    pub fn has(&self, plugin: &str, kind: &str, value: &str) -> bool {
        self.entries
            .get(plugin)
            .and_then(|p| p.get(kind))
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|v| v.as_str() == Some(value)))
    }

    pub fn all(&self) -> &Map<String, Value> {
        &self.entries
    }
}

/// An opaque TLS server configuration handed from the tls plugin to the server's
/// driver (it holds an `Arc<rustls::ServerConfig>`; this crate does not know rustls).
#[derive(Clone)]
pub struct TlsUpgrade(pub Arc<dyn Any + Send + Sync>);

impl fmt::Debug for TlsUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsUpgrade(..)")
    }
}

/// Something a plugin asks the session to do after its hook has been answered.
#[derive(Debug, Clone)]
pub enum ConnAction {
    /// STARTTLS: after the reply, discard buffered input and upgrade the stream.
    StartTls(TlsUpgrade),
    /// XCLIENT: the client's attributes were replaced; reset the session and run
    /// connect_init / lookup_rdns / connect again, then greet anew.
    Restart,
}

/// `connection.transaction`: one MAIL ... end-of-message.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// `<connection uuid>.<n>`.
    pub uuid: String,
    /// The sender; `None` is the null sender `<>`.
    pub mail_from: Option<Address>,
    pub mail_params: Vec<(String, Option<String>)>,
    /// Accepted recipients, in order.
    pub rcpt_to: Vec<Address>,
    pub notes: Notes,
    pub results: Results,
    /// `Some` once a plugin set relaying for this transaction only.
    pub relaying: Option<bool>,
    /// The message, filled by DATA.
    pub message: Message,
    /// Bytes received after the 354, as Haraka counts them.
    pub data_bytes: u64,
    /// Plugins to skip for the rest of this transaction (`notes.skip_plugins`).
    pub skip_plugins: Vec<String>,
}

impl Transaction {
    pub fn new(uuid: String) -> Transaction {
        Transaction {
            uuid,
            mail_from: None,
            mail_params: Vec::new(),
            rcpt_to: Vec::new(),
            notes: Notes::new(),
            results: Results::default(),
            relaying: None,
            message: Message::default(),
            data_bytes: 0,
            skip_plugins: Vec::new(),
        }
    }

    /// The sender as it appears in replies and headers: `<addr>` or `<>`.
    pub fn mail_from_text(&self) -> String {
        match &self.mail_from {
            Some(a) => a.format(),
            None => "<>".to_owned(),
        }
    }
}

/// `connection.rcpt_count`: the RCPT commands of the connection that its hooks
/// answered, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RcptCount {
    pub accept: u32,
    pub tempfail: u32,
    pub reject: u32,
}

impl RcptCount {
    /// All of them.
    pub fn total(&self) -> u32 {
        self.accept
            .saturating_add(self.tempfail)
            .saturating_add(self.reject)
    }
}

/// Everything the session and the plugins know about one client connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub uuid: String,
    pub remote: Remote,
    pub local: Local,
    pub hello: Option<Hello>,
    pub tls: TlsInfo,
    /// EHLO was used (ESMTP parameters allowed).
    pub esmtp: bool,
    /// EHLO keywords pushed by `capabilities` plugins.
    pub capabilities: Vec<String>,
    pub notes: Notes,
    pub results: Results,
    pub transaction: Option<Transaction>,
    /// Transactions started so far (the `n` of `<uuid>.<n>`).
    pub tran_count: u32,
    /// Counted errors (`connection.errors`).
    pub errors: u32,
    /// Answered RCPT commands (`connection.rcpt_count`).
    pub rcpt_count: RcptCount,
    /// An auth plugin's `authheader` (adds `A` to the Received protocol).
    pub auth_user: Option<String>,
    /// Set by XCLIENT: the `PROTO` the original client used, if given.
    pub xclient_proto: Option<String>,
    /// Set by XCLIENT: the `LOGIN` of the original client, if given.
    pub xclient_login: Option<String>,
    /// The client sent commands before the greeting, or more than it may pipeline
    /// (Haraka's `connection.early_talker`; core only records it).
    pub early_talker: bool,
    relaying: bool,
    actions: Vec<ConnAction>,
}

impl Connection {
    pub fn new(uuid: String, remote: Remote, local: Local) -> Connection {
        Connection {
            uuid,
            remote,
            local,
            hello: None,
            tls: TlsInfo::default(),
            esmtp: false,
            capabilities: Vec::new(),
            notes: Notes::new(),
            results: Results::default(),
            transaction: None,
            tran_count: 0,
            errors: 0,
            rcpt_count: RcptCount::default(),
            auth_user: None,
            xclient_proto: None,
            xclient_login: None,
            early_talker: false,
            relaying: false,
            actions: Vec::new(),
        }
    }

    /// `connection.relaying`: the transaction's value if a plugin set one, else the
    /// connection's.
    pub fn relaying(&self) -> bool {
        self.transaction
            .as_ref()
            .and_then(|t| t.relaying)
            .unwrap_or(self.relaying)
    }

    /// Haraka's setter: inside a transaction it affects that transaction only.
    pub fn set_relaying(&mut self, relaying: bool) {
        match self.transaction.as_mut() {
            Some(t) => t.relaying = Some(relaying),
            None => self.relaying = relaying,
        }
    }

    /// The connection-level flag, ignoring any transaction override (XCLIENT clears it).
    pub fn set_connection_relaying(&mut self, relaying: bool) {
        self.relaying = relaying;
        if let Some(t) = self.transaction.as_mut() {
            t.relaying = None;
        }
    }

    /// Ask the session to do something after the current hook has been answered.
    pub fn request(&mut self, action: ConnAction) {
        self.actions.push(action);
    }

    /// The requests made since the last call (the session drains them).
    pub fn take_requests(&mut self) -> Vec<ConnAction> {
        std::mem::take(&mut self.actions)
    }

    /// `<host> [<ip>]` or `[<ip>]` (Haraka's `get_remote('host')`).
    pub fn remote_text(&self) -> String {
        match self.remote.host.as_deref() {
            Some(h) if !h.is_empty() && h != "NXDOMAIN" && h != "DNSERROR" => {
                format!("{h} [{}]", self.remote.ip)
            }
            _ => format!("[{}]", self.remote.ip),
        }
    }

    /// The hello name, if any.
    pub fn hello_host(&self) -> Option<&str> {
        self.hello.as_ref().map(|h| h.host.as_str())
    }
}
