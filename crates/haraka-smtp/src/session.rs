//! The server session: Haraka's `connection.js` as a state machine.
//!
//! Protocol: call [`Session::start`], then loop on [`Session::poll`]. Each
//! [`Event::Hook`] must be answered with [`Session::hook_done`] before the session
//! goes on; [`Event::ResolveRdns`] with [`Session::rdns_done`]; [`Event::StartTls`]
//! with [`Session::tls_done`] or [`Session::tls_failed`]. When `poll` returns `None`
//! the session waits for input ([`Session::feed`]) or for the peer to go away
//! ([`Session::peer_closed`]).

use crate::conn::{Connection, TlsInfo, TlsUpgrade};
use crate::hook::{Hook, HookArgs, Outcome};

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

/// One SMTP server session.
pub struct Session {
    conn: Connection,
    cfg: SessionConfig,
    env: Box<dyn Env>,
}

impl Session {
    pub fn new(conn: Connection, cfg: SessionConfig, env: Box<dyn Env>) -> Session {
        Session { conn, cfg, env }
    }

    /// Begin: runs connect_init, lookup_rdns, connect, then greets.
    pub fn start(&mut self) {}

    /// Bytes from the client.
    pub fn feed(&mut self, _input: &[u8]) {}

    /// The next thing to do, or `None` when the session waits for input.
    pub fn poll(&mut self) -> Option<Event> {
        None
    }

    /// The answer to the last [`Event::Hook`].
    pub fn hook_done(&mut self, _outcome: Outcome) {}

    /// The answer to [`Event::ResolveRdns`]: `Ok(name)`, or `Err("NXDOMAIN" | "DNSERROR")`.
    pub fn rdns_done(&mut self, _result: Result<String, &'static str>) {}

    /// The TLS handshake after [`Event::StartTls`] succeeded.
    pub fn tls_done(&mut self, info: TlsInfo) {
        self.conn.tls = info;
    }

    /// The TLS handshake failed: the session ends.
    pub fn tls_failed(&mut self) {}

    /// The inactivity timer fired: `421 timeout` and close.
    pub fn timeout(&mut self) {}

    /// The client closed its side: run `disconnect` and finish.
    pub fn peer_closed(&mut self) {}

    /// Whether the session has ended (after [`Event::Close`]).
    pub fn is_closed(&self) -> bool {
        false
    }

    /// Bytes buffered but not yet processed (for bounding memory per connection).
    pub fn buffered(&self) -> usize {
        0
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
}
