//! Idle SMTP connections kept for the next message to the same destination.
//!
//! After a transaction that ended with the message accepted, the session leaves its
//! connection here instead of sending QUIT; the next delivery with the same
//! [`ConnKey`] within the idle time sends RSET and goes on with MAIL. A connection
//! is kept for [`crate::OutboundConfig::connection_reuse`] (2 s by default, like
//! Postfix's connection cache); then, or when the engine shuts down, it is closed
//! with QUIT by the engine's reaper task. Haraka itself opens a connection per
//! message.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use haraka_client::Pool;

use crate::session::{SessionParams, TlsChoice};

/// How long a connection waits for the next message by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(2);

/// At most this many idle connections in all (fewer with a lower `concurrency_max`).
pub(crate) const MAX_IDLE: usize = 1000;

/// What makes two connections interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    addr: SocketAddr,
    helo: String,
    bind: Option<IpAddr>,
    tls: TlsKey,
}

/// The STARTTLS policy of a connection: the client configuration (by identity) and,
/// with TLS, the server name its certificate was checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TlsKey {
    Off,
    Opportunistic(usize, String),
    Required(Option<usize>, String),
}

impl ConnKey {
    pub(crate) fn of(p: &SessionParams<'_>) -> ConnKey {
        let id = |c: &Arc<rustls::ClientConfig>| Arc::as_ptr(c) as usize;
        let tls = match &p.tls {
            TlsChoice::Off => TlsKey::Off,
            TlsChoice::Opportunistic(c) => TlsKey::Opportunistic(id(c), p.exchange.to_owned()),
            TlsChoice::Required(c) => TlsKey::Required(c.as_ref().map(id), p.exchange.to_owned()),
        };
        ConnKey {
            addr: p.addr,
            helo: p.helo.to_owned(),
            bind: p.bind,
            tls,
        }
    }
}

/// The idle connections of one engine.
pub(crate) type ConnCache = Pool<ConnKey>;
