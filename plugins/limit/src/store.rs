//! The counters, held in process instead of Redis, with bounded memory: every
//! entry expires as the plugin's Redis keys do, expired entries are swept, and a
//! table never holds more than its capacity (when it is full of live entries an
//! arbitrary one is dropped, which can only make that one key's limit late).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a concurrency counter lives after its last connection (the plugin's
/// `expire(dbkey, 3 * 60)`).
pub const CONCURRENCY_TTL: Duration = Duration::from_secs(180);
/// The most keys a table holds.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// A connection-rate window is counted in this many slices.
const SLICES: u32 = 64;

trait Expiring {
    fn expired(&self, now: Instant) -> bool;
}

/// A map of counters with expiry and a bound.
struct Table<V> {
    map: HashMap<String, V>,
    capacity: usize,
}

impl<V: Expiring> Table<V> {
    fn new(capacity: usize) -> Table<V> {
        Table {
            map: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The live entry of `key`, made by `fresh` when absent or expired.
    fn entry(&mut self, key: &str, now: Instant, fresh: impl FnOnce() -> V) -> &mut V {
        if self.map.get(key).is_some_and(|v| v.expired(now)) {
            self.map.remove(key);
        }
        if !self.map.contains_key(key) && self.map.len() >= self.capacity {
            self.map.retain(|_, v| !v.expired(now));
            if self.map.len() >= self.capacity
                && let Some(victim) = self.map.keys().next().cloned()
            {
                self.map.remove(&victim);
            }
        }
        self.map.entry(key.to_owned()).or_insert_with(fresh)
    }

    fn live(&self, key: &str, now: Instant) -> Option<&V> {
        self.map.get(key).filter(|v| !v.expired(now))
    }
}

/// Connections at once from one address.
struct Concurrent {
    count: u64,
    expires: Instant,
}

impl Expiring for Concurrent {
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

/// A count in a window that starts at its first event (Redis INCR + EXPIRE).
struct Fixed {
    count: u64,
    expires: Instant,
}

impl Expiring for Fixed {
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

/// Events in the last `period`, in slices of `period / 64` (the plugin keeps one
/// Redis hash field per millisecond); the key lives for two periods after its
/// last event.
struct Sliding {
    slices: VecDeque<(Instant, u64)>,
    expires: Instant,
}

impl Expiring for Sliding {
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

impl Sliding {
    fn count(&self, now: Instant, period: Duration) -> u64 {
        self.slices
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= period)
            .map(|(_, n)| *n)
            .sum()
    }
}

/// Every counter of one plugin instance.
pub struct Counters {
    concurrent: Mutex<Table<Concurrent>>,
    fixed: Mutex<Table<Fixed>>,
    sliding: Mutex<Table<Sliding>>,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters::with_capacity(DEFAULT_CAPACITY)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A counter is never left half-updated: a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Counters {
    /// Counters whose tables hold at most `capacity` keys each.
    pub fn with_capacity(capacity: usize) -> Counters {
        Counters {
            concurrent: Mutex::new(Table::new(capacity)),
            fixed: Mutex::new(Table::new(capacity)),
            sliding: Mutex::new(Table::new(capacity)),
        }
    }

    /// A connection from `key` opened: its count, this one included.
    pub fn concurrency_incr(&self, key: &str, now: Instant) -> u64 {
        let mut t = lock(&self.concurrent);
        let e = t.entry(key, now, || Concurrent {
            count: 0,
            expires: now,
        });
        e.count = e.count.saturating_add(1);
        e.expires = now + CONCURRENCY_TTL;
        e.count
    }

    /// A connection from `key` closed.
    pub fn concurrency_decr(&self, key: &str, now: Instant) {
        let mut t = lock(&self.concurrent);
        if let Some(e) = t.map.get_mut(key) {
            e.count = e.count.saturating_sub(1);
            if e.count == 0 || e.expired(now) {
                t.map.remove(key);
            }
        }
    }

    /// Count an event of `key` in a window of `period` that started with its
    /// first event; the count, this one included.
    pub fn fixed_incr(&self, key: &str, period: Duration, now: Instant) -> u64 {
        let mut t = lock(&self.fixed);
        let e = t.entry(key, now, || Fixed {
            count: 0,
            expires: now + period,
        });
        e.count = e.count.saturating_add(1);
        e.count
    }

    /// The count of `key`'s current window (0 when there is none).
    pub fn fixed_get(&self, key: &str, now: Instant) -> u64 {
        lock(&self.fixed).live(key, now).map_or(0, |e| e.count)
    }

    /// Record an event of `key` (kept for two `period`s).
    pub fn sliding_incr(&self, key: &str, period: Duration, now: Instant) {
        let slice = period / SLICES;
        let mut t = lock(&self.sliding);
        let e = t.entry(key, now, || Sliding {
            slices: VecDeque::new(),
            expires: now,
        });
        while e
            .slices
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > period)
        {
            e.slices.pop_front();
        }
        match e.slices.back_mut() {
            Some((start, n)) if now.saturating_duration_since(*start) < slice => *n += 1,
            _ => e.slices.push_back((now, 1)),
        }
        e.expires = now + period.saturating_mul(2);
    }

    /// Events of `key` in the last `period`.
    pub fn sliding_count(&self, key: &str, period: Duration, now: Instant) -> u64 {
        lock(&self.sliding)
            .live(key, now)
            .map_or(0, |e| e.count(now, period))
    }

    /// Keys held, over all tables (for tests of the bound).
    pub fn len(&self) -> usize {
        lock(&self.concurrent).map.len()
            + lock(&self.fixed).map.len()
            + lock(&self.sliding).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
