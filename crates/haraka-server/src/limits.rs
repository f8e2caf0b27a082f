//! What a public listener may hold: the connection caps (`smtp.ini`
//! `max_connections`, `max_connections_per_ip`), the file-descriptor budget they are
//! derived from, and the throttle that keeps the accept loop's log readable.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use haraka_smtp::reply::Overload;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::sync::Notify;

/// The caps as configured; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnCaps {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

/// File descriptors kept for the process itself (listeners, the runtime, logs,
/// config and queue files) when the default `max_connections` is derived.
const FD_RESERVE: u64 = 32;

impl ConnCaps {
    /// `max_connections` when not configured: half of what `nofile` descriptors leave
    /// after [`FD_RESERVE`], since a relayed connection also holds a backend socket.
    pub fn default_max_connections(nofile: u64) -> usize {
        let n = nofile.saturating_sub(FD_RESERVE) / 2;
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    }
}

/// Raise `RLIMIT_NOFILE`'s soft limit to its hard limit and return the soft limit
/// in force afterwards (unchanged when raising is refused).
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            return Ok(soft);
        }
        return Ok(hard);
    }
    Ok(soft)
}

/// The open connections, counted exactly: a [`ConnSlot`] is taken at accept and
/// given back when it is dropped, however the connection's task ends.
#[derive(Debug)]
pub(crate) struct ConnLimits {
    caps: ConnCaps,
    open: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Woken when a slot is given back (an accept loop starved of descriptors waits
    /// on it).
    released: Notify,
}

impl ConnLimits {
    pub(crate) fn new(caps: ConnCaps) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            caps,
            open: AtomicUsize::new(0),
            by_ip: Mutex::new(HashMap::new()),
            released: Notify::new(),
        })
    }

    /// A slot for a connection from `ip`, or which cap it would exceed.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Overload> {
        let max = self.caps.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .map_err(|_| Overload::Server)?;
        let per_ip = self.caps.max_connections_per_ip;
        if per_ip == 0 {
            return Ok(ConnSlot {
                limits: Arc::clone(self),
                ip: None,
            });
        }
        let ip = client_key(ip);
        let mut map = self.by_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(ip).or_insert(0);
        if *count >= per_ip {
            drop(map);
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Overload::ClientAddress);
        }
        *count += 1;
        Ok(ConnSlot {
            limits: Arc::clone(self),
            ip: Some(ip),
        })
    }

    /// Resolves when a slot is given back (or at once if one was given back since
    /// the returned future was first polled).
    pub(crate) fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// What `max_connections_per_ip` counts a client as: an IPv4 address (also when
/// it reaches a dual-stack listener as `::ffff:a.b.c.d`) on its own, an IPv6
/// address as its /64, since one host usually holds a whole /64 and could
/// otherwise open unlimited connections from fresh addresses.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (!0u128 << 64))),
        v4 => v4,
    }
}

/// One open connection's place under the caps, given back on drop.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    limits: Arc<ConnLimits>,
    ip: Option<IpAddr>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = self
                .limits
                .by_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = map.get_mut(&ip) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(&ip);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::AcqRel);
        self.limits.released.notify_waiters();
    }
}

/// Lets an event through to the log at most once per interval and counts the rest.
#[derive(Debug)]
pub(crate) struct LogEvery {
    interval: Duration,
    last: Option<Instant>,
    count: u64,
}

impl LogEvery {
    pub(crate) fn new(interval: Duration) -> LogEvery {
        LogEvery {
            interval,
            last: None,
            count: 0,
        }
    }

    /// Count one event; `Some(n)` when it should be logged, `n` being the events
    /// since the last one logged, this one included.
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn caps_count_exactly_and_slots_come_back() {
        let l = ConnLimits::new(ConnCaps {
            max_connections: 3,
            max_connections_per_ip: 2,
        });
        let a1 = l.try_acquire(ip("192.0.2.1"));
        let a2 = l.try_acquire(ip("::ffff:192.0.2.1"));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(
            l.try_acquire(ip("192.0.2.1")).err(),
            Some(Overload::ClientAddress)
        );
        let b = l.try_acquire(ip("192.0.2.2"));
        assert!(b.is_ok());
        assert_eq!(l.try_acquire(ip("192.0.2.3")).err(), Some(Overload::Server));
        assert_eq!(l.open(), 3);
        drop(a1);
        assert_eq!(l.open(), 2);
        assert!(l.try_acquire(ip("192.0.2.1")).is_ok());
        drop((a2, b));
        assert_eq!(l.open(), 0);
        assert!(l.by_ip.lock().is_ok_and(|m| m.is_empty()));
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let l = ConnLimits::new(ConnCaps {
            max_connections: 0,
            max_connections_per_ip: 2,
        });
        let a = l.try_acquire(ip("2001:db8:1:2::1"));
        let b = l.try_acquire(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert!(a.is_ok() && b.is_ok());
        // Another address of the same /64 is the same client.
        assert_eq!(
            l.try_acquire(ip("2001:db8:1:2:abcd::99")).err(),
            Some(Overload::ClientAddress)
        );
        // The neighbouring /64s are other clients.
        assert!(l.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        assert!(l.try_acquire(ip("2001:db8:1:1::1")).is_ok());
        drop(a);
        assert!(l.try_acquire(ip("2001:db8:1:2::7")).is_ok());
    }

    #[test]
    fn ipv4_and_mapped_clients_are_counted_per_address() {
        let l = ConnLimits::new(ConnCaps {
            max_connections: 0,
            max_connections_per_ip: 1,
        });
        let held: Vec<_> = ["192.0.2.1", "::ffff:192.0.2.2", "192.0.2.3"]
            .into_iter()
            .map(|a| l.try_acquire(ip(a)))
            .collect();
        assert!(held.iter().all(Result::is_ok));
        assert_eq!(
            l.try_acquire(ip("::ffff:192.0.2.1")).err(),
            Some(Overload::ClientAddress)
        );
        assert_eq!(
            l.try_acquire(ip("192.0.2.2")).err(),
            Some(Overload::ClientAddress)
        );
    }

    #[test]
    fn client_keys() {
        let cases = [
            ("192.0.2.1", "192.0.2.1"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::"),
            ("2001:db8:0:0:8000::1", "2001:db8::"),
            ("2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:1::"),
            ("::1", "::"),
        ];
        for (addr, key) in cases {
            assert_eq!(client_key(ip(addr)), ip(key), "{addr}");
        }
    }

    #[test]
    fn zero_is_unlimited() {
        let l = ConnLimits::new(ConnCaps::default());
        let slots: Vec<_> = (0..100).map(|_| l.try_acquire(ip("192.0.2.1"))).collect();
        assert!(slots.iter().all(Result::is_ok));
        assert_eq!(l.open(), 100);
    }

    #[test]
    fn exact_under_concurrency() {
        let l = ConnLimits::new(ConnCaps {
            max_connections: 10,
            max_connections_per_ip: 0,
        });
        let granted = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let mut held = Vec::new();
                    for _ in 0..1000 {
                        if let Ok(slot) = l.try_acquire(ip("192.0.2.1")) {
                            granted.fetch_add(1, Ordering::Relaxed);
                            assert!(l.open() <= 10);
                            held.push(slot);
                            if held.len() > 1 {
                                held.remove(0);
                            }
                        }
                    }
                });
            }
        });
        assert!(granted.load(Ordering::Relaxed) >= 10);
        assert_eq!(l.open(), 0);
    }

    #[test]
    fn default_max_connections_follows_the_fd_limit() {
        assert_eq!(ConnCaps::default_max_connections(128), 48);
        assert_eq!(ConnCaps::default_max_connections(1024), 496);
        assert_eq!(ConnCaps::default_max_connections(10), 1);
        assert!(ConnCaps::default_max_connections(u64::MAX) > 1 << 40);
    }

    #[test]
    fn log_every_counts_what_it_suppresses() {
        let mut t = LogEvery::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.hit(start), Some(1));
        for i in 1..=5 {
            assert_eq!(t.hit(start + Duration::from_secs(i)), None);
        }
        assert_eq!(t.hit(start + Duration::from_secs(10)), Some(6));
        assert_eq!(t.hit(start + Duration::from_secs(11)), None);
    }
}
