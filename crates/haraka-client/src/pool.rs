//! A small pool of idle connections, keyed by destination.
//!
//! Rules:
//! * at most `max_connections` connections per key exist at once, in use or idle: a
//!   [`Lease`] holds one slot from [`Pool::acquire`] until it is dropped;
//! * a connection goes back between transactions ([`Lease::release`]); whoever
//!   takes it out sends RSET before using it. Connections that sent XCLIENT or
//!   failed are never kept, only dropped;
//! * an idle connection older than `idle_timeout`, or one the server already spoke
//!   on or closed, is dropped instead of handed out.
//!
//! The key must describe everything that makes connections interchangeable (address,
//! TLS, EHLO name, AUTH identity, local address).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::client::SmtpClient;
use crate::error::Error;

struct Destination {
    slots: Arc<Semaphore>,
    idle: Vec<(Instant, SmtpClient)>,
}

/// Idle connections and connection slots per key.
pub struct Pool<K> {
    max_connections: usize,
    idle_timeout: Duration,
    inner: Mutex<HashMap<K, Destination>>,
}

impl<K> std::fmt::Debug for Pool<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// A connection slot for one key, with an idle connection if one was available.
pub struct Lease<K: Hash + Eq + Clone> {
    pool: Arc<Pool<K>>,
    key: K,
    idle: Option<SmtpClient>,
    _permit: OwnedSemaphorePermit,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for Lease<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone + Send + 'static> Pool<K> {
    /// `max_connections` per key (at least 1); idle connections live `idle_timeout`.
    pub fn new(max_connections: usize, idle_timeout: Duration) -> Arc<Pool<K>> {
        Arc::new(Pool {
            max_connections: max_connections.max(1),
            idle_timeout,
            inner: Mutex::new(HashMap::new()),
        })
    }

    /// Wait up to `wait` for a free slot for `key`; the lease carries an idle
    /// connection when one is fresh.
    pub async fn acquire(self: &Arc<Self>, key: K, wait: Duration) -> Result<Lease<K>, Error> {
        let slots = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let dest = inner.entry(key.clone()).or_insert_with(|| Destination {
                slots: Arc::new(Semaphore::new(self.max_connections)),
                idle: Vec::new(),
            });
            Arc::clone(&dest.slots)
        };
        let permit = tokio::time::timeout(wait, slots.acquire_owned())
            .await
            .map_err(|_| Error::PoolExhausted { waited: wait })?
            .map_err(|_| Error::Invalid("connection pool closed".into()))?;
        let mut lease = Lease {
            pool: Arc::clone(self),
            key,
            idle: None,
            _permit: permit,
        };
        while let Some(mut client) = self.pop_idle(&lease.key) {
            if !client.is_stale().await {
                lease.idle = Some(client);
                break;
            }
        }
        Ok(lease)
    }

    fn pop_idle(&self, key: &K) -> Option<SmtpClient> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let dest = inner.get_mut(key)?;
        let now = Instant::now();
        dest.idle
            .retain(|(since, _)| now.duration_since(*since) < self.idle_timeout);
        dest.idle.pop().map(|(_, c)| c)
    }

    /// Idle connections held for `key` right now.
    pub fn idle_count(&self, key: &K) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.get(key).map_or(0, |d| d.idle.len())
    }
}

impl<K: Hash + Eq + Clone> Lease<K> {
    /// The idle connection this lease came with, if any (taken once).
    pub fn take_idle(&mut self) -> Option<SmtpClient> {
        self.idle.take()
    }

    pub fn key(&self) -> &K {
        &self.key
    }

    /// Give a connection back for reuse (between transactions) and free the slot.
    /// Broken connections and connections that sent XCLIENT are dropped instead.
    pub fn release(self, client: SmtpClient) {
        if client.is_broken() || client.xclient_sent() {
            return;
        }
        let mut inner = self
            .pool
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(dest) = inner.get_mut(&self.key) {
            dest.idle.push((Instant::now(), client));
        }
    }
}
