//! The memory budget for messages in flight: one counter shared by every session of
//! a server (`smtp.ini message_memory_budget`), charged with the bytes of message
//! data a session holds and given back when its transaction ends.
//!
//! A [`Reservation`] is the guard: it grows as the message arrives and returns
//! everything it holds when it is released or dropped, so a transaction that ends
//! in any way (queued, rejected, reset, timed out, connection lost) gives its bytes
//! back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shared budget. Clones share one counter. A limit of 0 means no limit (the
/// bytes are still counted).
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (0: no limit).
    pub fn new(limit: u64) -> MemoryBudget {
        MemoryBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicU64::new(0),
            }),
        }
    }

    /// A budget without a limit.
    pub fn unlimited() -> MemoryBudget {
        MemoryBudget::new(0)
    }

    /// The limit in bytes (0: none).
    pub fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Bytes held by all reservations together.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// No byte can be reserved any more.
    pub fn exhausted(&self) -> bool {
        self.inner.limit > 0 && self.used() >= self.inner.limit
    }

    /// An empty reservation against this budget.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }

    /// Take `n` bytes if they fit under the limit.
    fn take(&self, n: u64) -> bool {
        let limit = self.inner.limit;
        if limit == 0 {
            self.inner.used.fetch_add(n, Ordering::Relaxed);
            return true;
        }
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        // Never below zero, whatever the order of concurrent releases.
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

impl Default for MemoryBudget {
    fn default() -> MemoryBudget {
        MemoryBudget::unlimited()
    }
}

/// Bytes one transaction holds against a [`MemoryBudget`]; given back on
/// [`Reservation::release`] or drop.
#[derive(Debug)]
pub struct Reservation {
    budget: MemoryBudget,
    held: u64,
}

impl Reservation {
    /// Hold `total` bytes in all (a no-op when already held). False, with nothing
    /// more taken, when the budget cannot cover the difference.
    pub fn hold(&mut self, total: u64) -> bool {
        let Some(more) = total.checked_sub(self.held).filter(|&m| m > 0) else {
            return true;
        };
        if !self.budget.take(more) {
            return false;
        }
        self.held = total;
        true
    }

    /// Bytes held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Give everything back.
    pub fn release(&mut self) {
        if self.held > 0 {
            self.budget.give_back(self.held);
            self.held = 0;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_back_on_drop() {
        let b = MemoryBudget::new(100);
        let mut r1 = b.reservation();
        let mut r2 = b.reservation();
        assert!(r1.hold(60));
        assert!(r1.hold(60), "holding the same total takes nothing more");
        assert!(!r2.hold(41), "60 + 41 is over 100");
        assert_eq!(r2.held(), 0);
        assert!(r2.hold(40));
        assert!(b.exhausted());
        assert_eq!(b.used(), 100);
        drop(r1);
        assert_eq!(b.used(), 40);
        assert!(!b.exhausted());
        r2.release();
        assert_eq!(b.used(), 0);
        r2.release();
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn growing_takes_only_the_difference() {
        let b = MemoryBudget::new(10);
        let mut r = b.reservation();
        assert!(r.hold(4));
        assert!(r.hold(10));
        assert_eq!(b.used(), 10);
        assert!(!r.hold(11));
        assert_eq!(r.held(), 10);
    }

    #[test]
    fn no_limit_counts_but_never_refuses() {
        let b = MemoryBudget::unlimited();
        let mut r = b.reservation();
        assert!(r.hold(u64::MAX / 2));
        assert!(!b.exhausted());
        assert_eq!(b.used(), u64::MAX / 2);
        drop(r);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn clones_share_one_counter() {
        let b = MemoryBudget::new(5);
        let c = b.clone();
        let mut r = c.reservation();
        assert!(r.hold(5));
        assert!(b.exhausted());
    }
}
