//! Idle connections kept for the next transaction to the same destination.
//!
//! Rules:
//! * a connection is left idle between transactions ([`Pool::put`], or
//!   [`Lease::release`]); whoever takes it out sends RSET before using it.
//!   Connections that sent XCLIENT or failed are never kept;
//! * an idle connection is handed out newest first, and only while younger than
//!   `idle_timeout` and silent (one the server spoke on or closed is dropped);
//!   older ones are closed with QUIT when their key is asked for, or as they expire
//!   when a [`Pool::run_reaper`] task runs, so connections to destinations seen once
//!   do not stay open;
//! * at most `max_idle` connections are idle in all; a zero `idle_timeout` or
//!   `max_idle` keeps none;
//! * with [`Pool::acquire`], at most `max_connections` connections per key exist at
//!   once, in use or idle: a [`Lease`] holds one slot until it is dropped. Callers
//!   that bound their connections themselves use [`Pool::take`] and [`Pool::put`].
//!
//! The key must describe everything that makes connections interchangeable (address,
//! TLS, EHLO name, AUTH identity, local address).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::client::SmtpClient;
use crate::error::Error;

#[derive(Debug)]
struct State<K> {
    /// Per key, oldest first. Emptied lists stay (their capacity is reused) until
    /// the reaper passes.
    conns: HashMap<K, Vec<(Instant, SmtpClient)>>,
    /// Connection slots per key, for [`Pool::acquire`].
    slots: HashMap<K, Arc<Semaphore>>,
    count: usize,
    closed: bool,
}

/// Idle connections, and connection slots, per key.
#[derive(Debug)]
pub struct Pool<K> {
    max_connections: usize,
    max_idle: usize,
    idle_timeout: Duration,
    state: Mutex<State<K>>,
    /// Woken when the first connection is left idle, or on close.
    changed: Notify,
}

/// A connection slot for one key, with an idle connection if one was available.
#[derive(Debug)]
pub struct Lease<K: Hash + Eq + Clone> {
    pool: Arc<Pool<K>>,
    key: K,
    idle: Option<SmtpClient>,
    _permit: OwnedSemaphorePermit,
}

impl<K: Hash + Eq + Clone + Send + 'static> Pool<K> {
    /// `max_connections` per key through [`Pool::acquire`] (at least 1); idle
    /// connections live `idle_timeout`.
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Arc<Pool<K>> {
        Arc::new(Pool::build(
            max_connections.max(1),
            usize::MAX,
            idle_timeout,
        ))
    }

    /// Only idle connections, at most `max_idle` in all, through [`Pool::take`] and
    /// [`Pool::put`] (the caller bounds its connections).
    pub fn idle_only(max_idle: usize, idle_timeout: Duration) -> Pool<K> {
        Pool::build(usize::MAX, max_idle, idle_timeout)
    }

    fn build(max_connections: usize, max_idle: usize, idle_timeout: Duration) -> Pool<K> {
        Pool {
            max_connections,
            max_idle,
            idle_timeout,
            state: Mutex::new(State {
                conns: HashMap::new(),
                slots: HashMap::new(),
                count: 0,
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Does this pool keep idle connections at all?
    pub fn keeps_idle(&self) -> bool {
        !self.idle_timeout.is_zero() && self.max_idle > 0
    }

    /// Wait up to `wait` for a free slot for `key`; the lease carries an idle
    /// connection when one is fresh.
    pub async fn acquire(self: &Arc<Self>, key: K, wait: Duration) -> Result<Lease<K>, Error> {
        let slots = {
            let mut idle = self.lock();
            match idle.slots.get(&key) {
                Some(s) => Arc::clone(s),
                None => {
                    let s = Arc::new(Semaphore::new(self.max_connections));
                    idle.slots.insert(key.clone(), Arc::clone(&s));
                    s
                }
            }
        };
        let permit = tokio::time::timeout(wait, slots.acquire_owned())
            .await
            .map_err(|_| Error::PoolExhausted { waited: wait })?
            .map_err(|_| Error::Invalid("connection pool closed".into()))?;
        let idle = self.take(&key).await;
        Ok(Lease {
            pool: Arc::clone(self),
            key,
            idle,
            _permit: permit,
        })
    }

    /// The newest idle connection for `key` that is still fresh and silent.
    pub async fn take(&self, key: &K) -> Option<SmtpClient> {
        loop {
            let mut client = self.pop(key)?;
            if !client.is_stale().await {
                return Some(client);
            }
        }
    }

    fn pop(&self, key: &K) -> Option<SmtpClient> {
        let mut idle = self.lock();
        let list = idle.conns.get_mut(key)?;
        let now = Instant::now();
        let fresh_from = list
            .iter()
            .position(|(since, _)| now.duration_since(*since) < self.idle_timeout)
            .unwrap_or(list.len());
        let expired: Vec<_> = list.drain(..fresh_from).collect();
        let client = list.pop().map(|(_, c)| c);
        idle.count -= expired.len() + usize::from(client.is_some());
        drop(idle);
        quit_all(expired.into_iter().map(|(_, c)| c));
        client
    }

    /// Leave `client` idle for `key`. Gives it back when it cannot be kept (broken,
    /// sent XCLIENT, pool full or closed): the caller closes it.
    pub fn put(&self, key: K, client: SmtpClient) -> Option<SmtpClient> {
        if !self.keeps_idle() || client.is_broken() || client.xclient_sent() {
            return Some(client);
        }
        let mut idle = self.lock();
        if idle.closed || idle.count >= self.max_idle {
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

    /// Idle connections held for `key` right now.
    pub fn idle_count(&self, key: &K) -> usize {
        self.lock().conns.get(key).map_or(0, Vec::len)
    }

    /// Idle connections held right now.
    pub fn idle(&self) -> usize {
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
                .position(|(since, _)| now.duration_since(*since) < self.idle_timeout)
                .unwrap_or(list.len());
            out.extend(list.drain(..keep_from).map(|(_, c)| c));
            if let Some((since, _)) = list.first() {
                let at = *since + self.idle_timeout;
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

    /// Close idle connections with QUIT as they expire, until `stop` says so; then
    /// close them all and keep no more.
    pub async fn run_reaper(&self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            let (old, next) = self.expired();
            quit_all(old);
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
        quit_all(self.close());
    }
}

/// QUIT each connection in the background.
fn quit_all(clients: impl IntoIterator<Item = SmtpClient>) {
    for c in clients {
        tokio::spawn(c.quit());
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> Lease<K> {
    /// The idle connection this lease came with, if any (taken once).
    pub fn take_idle(&mut self) -> Option<SmtpClient> {
        self.idle.take()
    }

    /// Give a connection back for reuse (between transactions) and free the slot.
    /// A connection the pool cannot keep is closed in the background (with QUIT
    /// unless it is broken).
    pub fn release(self, client: SmtpClient) {
        let Lease {
            pool, key, _permit, ..
        } = self;
        if let Some(client) = pool.put(key, client)
            && !client.is_broken()
        {
            tokio::spawn(client.quit());
        }
    }
}
