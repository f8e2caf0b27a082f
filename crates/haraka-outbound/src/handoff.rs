//! Messages queued by this engine are handed to their first delivery attempt in
//! memory, so that the attempt need not read back the file it just wrote.
//!
//! The file stays the source of truth: only the first attempt of a message queued
//! through [`crate::Outbound`] uses the copy; retries, recovered files and anything
//! else are loaded from disk. The copies waiting for their attempt share a byte
//! budget; a message that does not fit is read from its file.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default byte budget for messages waiting in memory for their first attempt.
pub const DEFAULT_BUDGET: usize = 32 << 20;

/// Bytes held by [`FreshBody`] copies, and the limit.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Keep `message` for a first attempt if it fits in the budget.
    pub(crate) fn reserve(self: &Arc<Self>, message: &Arc<[u8]>) -> Option<Arc<FreshBody>> {
        if self.limit == 0 {
            return None;
        }
        let len = message.len();
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(len).filter(|total| *total <= self.limit)
            })
            .ok()?;
        Some(Arc::new(FreshBody {
            message: Arc::clone(message),
            budget: Arc::clone(self),
        }))
    }

    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }
}

/// A message just made durable, kept for its first attempt. Deliveries split from
/// one message share one copy; its bytes go back to the budget when the last of
/// them is done with it.
#[derive(Debug)]
pub(crate) struct FreshBody {
    message: Arc<[u8]>,
    budget: Arc<Budget>,
}

impl FreshBody {
    pub(crate) fn message(&self) -> Arc<[u8]> {
        Arc::clone(&self.message)
    }
    pub(crate) fn is(&self, message: &Arc<[u8]>) -> bool {
        Arc::ptr_eq(&self.message, message)
    }
}

impl Drop for FreshBody {
    fn drop(&mut self) {
        self.budget
            .used
            .fetch_sub(self.message.len(), Ordering::SeqCst);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Arc<[u8]> {
        Arc::from(vec![b'x'; n])
    }

    #[test]
    fn the_budget_bounds_the_copies_and_is_given_back() {
        let budget = Budget::new(100);
        let a = budget.reserve(&bytes(60)).unwrap();
        assert_eq!(budget.used(), 60);
        assert!(budget.reserve(&bytes(41)).is_none(), "over the limit");
        let b = budget.reserve(&bytes(40)).unwrap();
        assert_eq!(budget.used(), 100);
        let shared = Arc::clone(&a);
        drop(a);
        assert_eq!(budget.used(), 100, "still held by a sibling delivery");
        drop(shared);
        assert_eq!(budget.used(), 40);
        assert_eq!(&*b.message(), &[b'x'; 40][..]);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let budget = Budget::new(0);
        assert!(budget.reserve(&bytes(0)).is_none());
        assert!(budget.reserve(&bytes(1)).is_none());
    }
}
