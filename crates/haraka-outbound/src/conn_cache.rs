//! Idle SMTP connections kept for the next message to the same destination.
//!
//! After a transaction that ended with the message accepted, the session leaves its
//! connection here instead of sending QUIT; the next delivery with the same
//! [`ConnKey`] within the idle time sends RSET and goes on with MAIL. A connection
//! is kept for [`crate::OutboundConfig::connection_reuse`] (2 s by default, like
//! Postfix's connection cache); then, or when the engine shuts down, it is closed
//! with QUIT. Haraka itself opens a connection per message.
//!
//! `haraka_client::Pool` is not used: it never closes an idle connection unless its
//! key is asked for again, so connections to destinations seen once would stay open.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use haraka_client::SmtpClient;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::session::{SessionParams, TlsChoice};

/// How long a connection waits for the next message by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(2);

/// At most this many idle connections in all (fewer with a lower `concurrency_max`).
const MAX_IDLE: usize = 1000;

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

#[derive(Default)]
struct Idle {
    /// Per key, oldest first.
    conns: HashMap<ConnKey, Vec<(Instant, SmtpClient)>>,
    count: usize,
    closed: bool,
}

/// The idle connections of one engine.
pub(crate) struct ConnCache {
    keep: Duration,
    max: usize,
    idle: Mutex<Idle>,
    /// Woken when the first connection is left idle, or on shutdown.
    changed: Notify,
}

impl ConnCache {
    /// Keep connections `keep` long, at most `max` in all; zero of either: never.
    pub(crate) fn new(keep: Duration, max: usize) -> ConnCache {
        ConnCache {
            keep,
            max: max.min(MAX_IDLE),
            idle: Mutex::new(Idle::default()),
            changed: Notify::new(),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.keep.is_zero() && self.max > 0
    }

    fn lock(&self) -> MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently left connection for `key`, if it has not waited too long.
    pub(crate) fn take(&self, key: &ConnKey) -> Option<SmtpClient> {
        let mut idle = self.lock();
        let list = idle.conns.get_mut(key)?;
        let fresh = list
            .last()
            .is_some_and(|(since, _)| since.elapsed() < self.keep);
        let client = if fresh { list.pop() } else { None };
        if list.is_empty() {
            idle.conns.remove(key);
        }
        if client.is_some() {
            idle.count -= 1;
        }
        client.map(|(_, c)| c)
    }

    /// Leave `client` idle for `key`. Gives it back when it cannot be kept (full,
    /// shut down, broken): the caller closes it.
    pub(crate) fn put(&self, key: ConnKey, client: SmtpClient) -> Option<SmtpClient> {
        if !self.enabled() || client.is_broken() {
            return Some(client);
        }
        let mut idle = self.lock();
        if idle.closed || idle.count >= self.max {
            return Some(client);
        }
        idle.count += 1;
        idle.conns
            .entry(key)
            .or_default()
            .push((Instant::now(), client));
        if idle.count == 1 {
            self.changed.notify_one();
        }
        None
    }

    pub(crate) fn idle(&self) -> usize {
        self.lock().count
    }

    /// Remove the connections that waited too long; also says when the next one
    /// will have.
    fn expired(&self) -> (Vec<SmtpClient>, Option<Instant>) {
        let mut idle = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut next: Option<Instant> = None;
        idle.conns.retain(|_, list| {
            let keep_from = list
                .iter()
                .position(|(since, _)| now.duration_since(*since) < self.keep)
                .unwrap_or(list.len());
            out.extend(list.drain(..keep_from).map(|(_, c)| c));
            if let Some((since, _)) = list.first() {
                let at = *since + self.keep;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
            !list.is_empty()
        });
        idle.count -= out.len();
        (out, next)
    }

    /// Stop keeping connections; returns those idle now.
    fn close(&self) -> Vec<SmtpClient> {
        let mut idle = self.lock();
        idle.closed = true;
        idle.count = 0;
        let all = std::mem::take(&mut idle.conns);
        drop(idle);
        self.changed.notify_one();
        all.into_values().flatten().map(|(_, c)| c).collect()
    }

    /// Close connections as they expire, until `stop` says so; then close them all.
    pub(crate) async fn run_reaper(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let (old, next) = self.expired();
            for c in old {
                tokio::spawn(c.quit());
            }
            match next {
                Some(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = stop.changed() => {}
                },
                None => tokio::select! {
                    _ = self.changed.notified() => {}
                    _ = stop.changed() => {}
                },
            }
        }
        for c in self.close() {
            tokio::spawn(c.quit());
        }
    }
}
