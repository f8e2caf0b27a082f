//! `forwarding_host_pool`: backends handed out round-robin from a list shuffled
//! once; a backend that failed to connect is skipped for `dead_forwarding_host_retry_secs`,
//! unless every backend is marked dead (then the marks are ignored).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

/// The backends of `forwarding_host_pool`.
#[derive(Debug)]
pub struct HostPool {
    hosts: Vec<(String, u16)>,
    next: AtomicUsize,
    dead: Mutex<HashMap<(String, u16), Instant>>,
    retry: Duration,
}

impl HostPool {
    pub fn new(hosts: &[(String, u16)], retry: Duration) -> HostPool {
        let mut hosts = hosts.to_vec();
        hosts.shuffle(&mut rand::rng());
        HostPool {
            hosts,
            next: AtomicUsize::new(0),
            dead: Mutex::new(HashMap::new()),
            retry,
        }
    }

    /// The next live backend (or simply the next one when all are marked dead).
    pub fn get(&self) -> Option<(String, u16)> {
        let n = self.hosts.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut dead = self.dead.lock().unwrap_or_else(PoisonError::into_inner);
        dead.retain(|_, until| *until > now);
        let pick = (0..n)
            .map(|i| &self.hosts[(start + i) % n])
            .find(|h| !dead.contains_key(*h))
            .unwrap_or(&self.hosts[start % n]);
        Some(pick.clone())
    }

    /// Mark a backend dead for the retry period.
    pub fn failed(&self, host: &str, port: u16) {
        tracing::warn!(
            "smtp_forward: backend {host}:{port} marked dead for {:?}",
            self.retry
        );
        let mut dead = self.dead.lock().unwrap_or_else(PoisonError::into_inner);
        dead.insert((host.to_owned(), port), Instant::now() + self.retry);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_dead_until_all_dead() {
        let hosts = vec![("a".to_string(), 25), ("b".to_string(), 26)];
        let pool = HostPool::new(&hosts, Duration::from_secs(60));
        let first = pool.get().unwrap();
        let second = pool.get().unwrap();
        assert_ne!(first, second);
        pool.failed(&first.0, first.1);
        for _ in 0..4 {
            assert_eq!(pool.get().unwrap(), second);
        }
        pool.failed(&second.0, second.1);
        // Everything dead: hand them out anyway.
        assert!(pool.get().is_some());
    }
}
