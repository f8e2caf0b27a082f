//! The engine's queue in memory: deliveries waiting for their time, new items
//! written durably and then scheduled, and the stream of [`Event`]s.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use haraka_queue::{NewItem, QueueEntry, QueueError, QueueStore};
use tokio::sync::{Notify, broadcast};

use crate::handoff::{Budget, FreshBody};

/// What happened to queued mail (for logs, statistics and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A delivery was written to the queue.
    Queued { id: String, file: String },
    /// A delivery attempt ended with the message accepted by `host`.
    Delivered {
        id: String,
        host: String,
        response: String,
    },
    /// A temporary failure; next attempt at `next_attempt` (epoch ms).
    Deferred {
        id: String,
        attempts: u32,
        next_attempt: u64,
        err: String,
    },
    /// A bounce to the sender was queued.
    Bounced { id: String, err: String },
    /// The failed message had the null sender (or its bounce could not be queued).
    DoubleBounce { id: String, err: String },
    /// Removed without delivery or bounce (a plugin said so, or the file vanished).
    Dropped { id: String, reason: String },
    /// An unreadable queue file was moved aside.
    Quarantined { file: String, reason: String },
}

#[derive(Default)]
struct Table {
    seq: u64,
    queue: BTreeMap<(u64, u64), Scheduled>,
    files: HashSet<String>,
}

/// A delivery waiting for its time.
pub(crate) struct Scheduled {
    pub entry: QueueEntry,
    /// The message, for a first attempt of a message queued here (see [`crate::handoff`]).
    pub fresh: Option<Arc<FreshBody>>,
}

/// Deliveries waiting for their time, and the events of queued mail.
pub(crate) struct Queue {
    store: Arc<dyn QueueStore>,
    table: Mutex<Table>,
    /// Woken when a delivery is scheduled (and by the engine's controls).
    pub wake: Notify,
    events: broadcast::Sender<Event>,
    pub fresh: Arc<Budget>,
}

impl Queue {
    /// Over `store`, keeping up to `fresh_budget` bytes of new messages in memory.
    pub(crate) fn new(store: Arc<dyn QueueStore>, fresh_budget: usize) -> Queue {
        Queue {
            store,
            table: Mutex::new(Table::default()),
            wake: Notify::new(),
            events: broadcast::channel(4096).0,
            fresh: Budget::new(fresh_budget),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Deliveries waiting.
    pub(crate) fn len(&self) -> usize {
        self.table().queue.len()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Deliver `entry` at `due` (epoch ms). A file already waiting is not added twice.
    pub(crate) fn schedule(&self, entry: QueueEntry, due: u64) {
        self.schedule_with(entry, due, None);
    }

    /// [`Queue::schedule`], with the message in memory for the first attempt.
    fn schedule_with(&self, entry: QueueEntry, due: u64, fresh: Option<Arc<FreshBody>>) {
        {
            let mut s = self.table();
            if !s.files.insert(entry.file.clone()) {
                return;
            }
            s.seq += 1;
            let seq = s.seq;
            s.queue.insert((due, seq), Scheduled { entry, fresh });
        }
        self.wake.notify_one();
    }

    pub(crate) fn retry_now(&self, domain: Option<&str>) {
        {
            let mut s = self.table();
            let old = std::mem::take(&mut s.queue);
            for ((due, seq), e) in old {
                let hit = domain.is_none_or(|d| e.entry.envelope.domain.eq_ignore_ascii_case(d));
                s.queue.insert((if hit { 0 } else { due }, seq), e);
            }
        }
        self.wake.notify_one();
    }

    /// Write items durably and schedule them. Items due now keep their message in
    /// memory for the first attempt, as far as the budget allows.
    pub(crate) async fn submit(&self, items: Vec<NewItem>) -> Result<Vec<QueueEntry>, QueueError> {
        let messages: Vec<(String, Option<Arc<[u8]>>)> = items
            .iter()
            .map(|i| {
                let now = i.next_attempt.is_none();
                (i.envelope.uuid.clone(), now.then(|| Arc::clone(&i.message)))
            })
            .collect();
        let entries = self.store.put(items).await?;
        let mut last: Option<Arc<FreshBody>> = None;
        for (i, e) in entries.iter().enumerate() {
            self.emit(Event::Queued {
                id: e.envelope.uuid.clone(),
                file: e.file.clone(),
            });
            let message = messages
                .get(i)
                .filter(|(uuid, _)| *uuid == e.envelope.uuid)
                .and_then(|(_, m)| m.as_ref());
            let fresh = match (message, &last) {
                (None, _) => None,
                (Some(m), Some(f)) if f.is(m) => Some(Arc::clone(f)),
                (Some(m), _) => {
                    last = self.fresh.reserve(m);
                    last.clone()
                }
            };
            self.schedule_with(e.clone(), e.name.next_attempt, fresh);
        }
        Ok(entries)
    }

    pub(crate) fn pop_due(&self, now: u64) -> Option<Scheduled> {
        let mut s = self.table();
        let key = *s.queue.keys().next().filter(|(due, _)| *due <= now)?;
        let due = s.queue.remove(&key)?;
        s.files.remove(&due.entry.file);
        Some(due)
    }

    pub(crate) fn next_due(&self) -> Option<u64> {
        self.table().queue.keys().next().map(|(due, _)| *due)
    }
}
