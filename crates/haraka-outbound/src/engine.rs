//! The engine: construction, start-up recovery, the scheduler, enqueueing.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, Diag};
use haraka_plugin_api::{
    Connection, Hook, OutboundArgs, OutboundHooks, OutboundMail, OutboundQueue, Outcome,
};
use haraka_queue::{NewItem, QueueDir, QueueEntry, QueueError, QueueStore, Recovery, now_ms};
use haraka_smtp::{Address, Notes};
use tokio::sync::{Notify, Semaphore, broadcast, watch};

use crate::bounce::BounceTemplates;
use crate::config::OutboundConfig;
use crate::conn_cache::{self, ConnCache};
use crate::enqueue;
use crate::handoff::{Budget, FreshBody};
use crate::resolver::{HickoryResolver, MxResolver};
use crate::{BoxFuture, NoHooks, OutboundError, OutboundTls};

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

/// A snapshot of the engine's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Deliveries waiting for their time (or for a free slot).
    pub scheduled: usize,
    /// Deliveries being attempted now.
    pub in_flight: usize,
    /// Bytes of freshly queued messages held in memory for their first attempt.
    pub fresh_bytes: usize,
    /// Connections waiting, idle, for another message to the same MX.
    pub idle_connections: usize,
}

#[derive(Default)]
struct Schedule {
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

pub(crate) struct Inner {
    pub cfg: OutboundConfig,
    pub store: Arc<dyn QueueStore>,
    pub resolver: Arc<dyn MxResolver>,
    pub hooks: Arc<dyn OutboundHooks>,
    pub tls: OutboundTls,
    pub templates: BounceTemplates,
    disabled: AtomicBool,
    sched: Mutex<Schedule>,
    wake: Notify,
    permits: Arc<Semaphore>,
    stop: watch::Sender<bool>,
    running: AtomicBool,
    in_flight: AtomicUsize,
    events: broadcast::Sender<Event>,
    fresh: Arc<Budget>,
    pub conns: ConnCache,
}

/// Haraka's outbound queue and delivery engine. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

/// Builds an [`Outbound`].
pub struct OutboundBuilder {
    cfg: OutboundConfig,
    store: Arc<dyn QueueStore>,
    resolver: Option<Arc<dyn MxResolver>>,
    hooks: Arc<dyn OutboundHooks>,
    tls: OutboundTls,
    templates: BounceTemplates,
}

impl OutboundBuilder {
    /// DNS (default: hickory with `cfg.nameservers`, or the system resolver).
    pub fn resolver(mut self, resolver: Arc<dyn MxResolver>) -> OutboundBuilder {
        self.resolver = Some(resolver);
        self
    }
    /// The plugin chain for the outbound hooks (default: none).
    pub fn hooks(mut self, hooks: Arc<dyn OutboundHooks>) -> OutboundBuilder {
        self.hooks = hooks;
        self
    }
    /// STARTTLS configuration (default: no TLS).
    pub fn tls(mut self, tls: OutboundTls) -> OutboundBuilder {
        self.tls = tls;
        self
    }
    /// Bounce templates (default: the built-in one).
    pub fn templates(mut self, templates: BounceTemplates) -> OutboundBuilder {
        self.templates = templates;
        self
    }

    pub fn build(self) -> Result<Outbound, OutboundError> {
        let resolver = match self.resolver {
            Some(r) => r,
            None => Arc::new(HickoryResolver::from_config(&self.cfg.nameservers)?),
        };
        if self.cfg.enable_tls && self.tls.config.is_none() {
            tracing::warn!("outbound enable_tls is set but no TLS client configuration was given");
        }
        let (events, _) = broadcast::channel(4096);
        let (stop, _) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(self.cfg.concurrency_max.clamp(1, 1 << 20)));
        let fresh = Budget::new(self.cfg.fresh_message_budget);
        let conns = conn_cache::new(self.cfg.connection_reuse, self.cfg.concurrency_max);
        Ok(Outbound {
            inner: Arc::new(Inner {
                disabled: AtomicBool::new(self.cfg.disabled),
                cfg: self.cfg,
                store: self.store,
                resolver,
                hooks: self.hooks,
                tls: self.tls,
                templates: self.templates,
                sched: Mutex::new(Schedule::default()),
                wake: Notify::new(),
                permits,
                stop,
                running: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                events,
                fresh,
                conns,
            }),
        })
    }
}

impl Outbound {
    pub fn builder(cfg: OutboundConfig, store: Arc<dyn QueueStore>) -> OutboundBuilder {
        OutboundBuilder {
            cfg,
            store,
            resolver: None,
            hooks: Arc::new(NoHooks),
            tls: OutboundTls::default(),
            templates: BounceTemplates::default(),
        }
    }

    /// Everything from a Haraka root: `outbound.ini` (+ legacy files), the queue
    /// directory (`queue_dir` or `ROOT/queue`), the bounce templates, DNS from
    /// `nameservers` or the system. Returns the config warnings too. Call inside a
    /// tokio runtime.
    pub fn from_config_dir(
        cfg: &ConfigDir,
        me: &str,
        hooks: Arc<dyn OutboundHooks>,
        tls: OutboundTls,
    ) -> Result<(Outbound, Vec<Diag>), OutboundError> {
        let (ocfg, warnings) = OutboundConfig::load(cfg, me).map_err(config_error)?;
        let dir = haraka_queue::resolve_queue_dir(cfg.root(), cfg.value("queue_dir").as_deref());
        let store = Arc::new(QueueDir::open(&dir)?);
        let outbound = Outbound::builder(ocfg, store)
            .hooks(hooks)
            .tls(tls)
            .templates(BounceTemplates::load(cfg))
            .build()?;
        Ok((outbound, warnings))
    }

    /// Recover the queue (temporary files deleted, unreadable files moved aside and
    /// reported) and start delivering. Call once, inside a tokio runtime.
    pub async fn start(&self) -> Result<Recovery, OutboundError> {
        let store = Arc::clone(&self.inner.store);
        let rec = tokio::task::spawn_blocking(move || store.recover())
            .await
            .map_err(|e| OutboundError::Invalid(format!("recovery task failed: {e}")))??;
        for q in &rec.quarantined {
            tracing::error!(file = %q.file, reason = %q.reason, moved_to = ?q.moved_to,
                "unreadable queue file moved aside");
            self.inner.emit(Event::Quarantined {
                file: q.file.clone(),
                reason: q.reason.clone(),
            });
        }
        for f in &rec.unrecognized {
            tracing::warn!(file = %f, "Unrecognized file in queue folder");
        }
        for e in &rec.entries {
            self.inner.schedule(e.clone(), e.name.next_attempt);
        }
        tracing::info!(count = rec.entries.len(), "outbound queue loaded");
        if !self.inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(run_scheduler(Arc::clone(&self.inner)));
            if self.inner.conns.keeps_idle() {
                let inner = Arc::clone(&self.inner);
                tokio::spawn(async move { inner.conns.run_reaper(inner.stop.subscribe()).await });
            }
        }
        Ok(rec)
    }

    /// Every waiting delivery is due now (SIGHUP, `--qunstick`).
    pub fn retry_all_now(&self) {
        self.inner.retry_now(None);
    }

    /// Waiting deliveries to `domain` are due now (`flushQueue <domain>`).
    pub fn retry_domain_now(&self, domain: &str) {
        self.inner.retry_now(Some(domain));
    }

    /// Stop or resume delivering (`disabled`); queueing goes on.
    pub fn set_disabled(&self, disabled: bool) {
        self.inner.disabled.store(disabled, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Stop starting deliveries and close idle connections. Attempts in progress
    /// finish on their own; queued mail stays on disk for the next start.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        self.inner.wake.notify_one();
    }

    pub fn status(&self) -> Status {
        Status {
            scheduled: self.inner.sched().queue.len(),
            in_flight: self.inner.in_flight.load(Ordering::SeqCst),
            fresh_bytes: self.inner.fresh.used(),
            idle_connections: self.inner.conns.idle(),
        }
    }

    /// Follow what happens to queued mail.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Queue a message generated here (Haraka's `outbound.send_email(from, to,
    /// contents)`): `message` is a complete message with CRLF line ends. Returns the
    /// transaction id once durable.
    pub async fn send_email(
        &self,
        from: Option<Address>,
        to: Vec<Address>,
        message: &[u8],
        notes: Notes,
    ) -> Result<String, OutboundError> {
        self.inner.send_email(from, to, message, notes).await
    }
}

fn config_error(e: ConfigErrors) -> OutboundError {
    OutboundError::Invalid(e.to_string())
}

impl OutboundQueue for Outbound {
    fn enqueue<'a>(&'a self, conn: &'a Connection) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(tx) = conn.transaction.as_ref() else {
                return Outcome::deny_soft("Queue error");
            };
            if tx.rcpt_to.is_empty() {
                return Outcome::deny_soft("No recipients for email");
            }
            let inner = &self.inner;
            let now = now_ms();
            let mut mail = OutboundMail {
                id: tx.uuid.clone(),
                domain: tx
                    .rcpt_to
                    .first()
                    .and_then(|a| a.host.clone())
                    .unwrap_or_default(),
                mail_from: tx.mail_from.clone(),
                rcpt_to: tx.rcpt_to.clone(),
                notes: tx.notes.clone(),
                attempts: 0,
                mx: None,
            };
            let _ = inner
                .hooks
                .run(Hook::PreSendTransEmail, &mut mail, &OutboundArgs::None)
                .await;
            if mail.rcpt_to.is_empty() {
                return Outcome::deny_soft("No recipients for email");
            }
            let message = enqueue::compose(
                &tx.message.headers,
                &tx.message.body,
                &inner.cfg,
                &tx.uuid,
                now,
            );
            let items = enqueue::items(
                &tx.uuid,
                mail.mail_from.as_ref(),
                &mail.rcpt_to,
                &mail.notes,
                Arc::from(message),
                inner.cfg.always_split,
                now,
            );
            match inner.submit(items).await {
                Ok(_) => Outcome::accept_with("Message Queued"),
                Err(e) => {
                    tracing::error!(uuid = %tx.uuid, error = %e, "could not queue message");
                    Outcome::deny_soft("Queue error")
                }
            }
        })
    }
}

impl Inner {
    fn sched(&self) -> MutexGuard<'_, Schedule> {
        self.sched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Deliver `entry` at `due` (epoch ms). A file already waiting is not added twice.
    pub(crate) fn schedule(&self, entry: QueueEntry, due: u64) {
        self.schedule_with(entry, due, None);
    }

    /// [`Inner::schedule`], with the message in memory for the first attempt.
    fn schedule_with(&self, entry: QueueEntry, due: u64, fresh: Option<Arc<FreshBody>>) {
        {
            let mut s = self.sched();
            if !s.files.insert(entry.file.clone()) {
                return;
            }
            s.seq += 1;
            let seq = s.seq;
            s.queue.insert((due, seq), Scheduled { entry, fresh });
        }
        self.wake.notify_one();
    }

    fn retry_now(&self, domain: Option<&str>) {
        {
            let mut s = self.sched();
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

    pub(crate) async fn send_email(
        &self,
        from: Option<Address>,
        to: Vec<Address>,
        message: &[u8],
        notes: Notes,
    ) -> Result<String, OutboundError> {
        if to.is_empty() {
            return Err(OutboundError::Invalid("No recipients for email".into()));
        }
        let tuuid = haraka_smtp::ids::uuid_from_bytes(rand::random());
        let now = now_ms();
        let message = enqueue::compose_raw(message, &self.cfg, &tuuid, now);
        let items = enqueue::items(
            &tuuid,
            from.as_ref(),
            &to,
            &notes,
            Arc::from(message),
            self.cfg.always_split,
            now,
        );
        self.submit(items).await?;
        Ok(tuuid)
    }

    fn pop_due(&self, now: u64) -> Option<Scheduled> {
        let mut s = self.sched();
        let key = *s.queue.keys().next().filter(|(due, _)| *due <= now)?;
        let due = s.queue.remove(&key)?;
        s.files.remove(&due.entry.file);
        Some(due)
    }

    fn next_due(&self) -> Option<u64> {
        self.sched().queue.keys().next().map(|(due, _)| *due)
    }
}

/// The scheduler: start each due delivery when a slot is free.
async fn run_scheduler(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = if inner.disabled.load(Ordering::SeqCst) {
            None
        } else {
            match inner.next_due() {
                None => None,
                Some(due) => {
                    let now = now_ms();
                    if due <= now {
                        let permit = tokio::select! {
                            p = Arc::clone(&inner.permits).acquire_owned() => p,
                            _ = stop.changed() => continue,
                        };
                        let Ok(permit) = permit else { return };
                        if let Some(due) = inner.pop_due(now_ms()) {
                            inner.in_flight.fetch_add(1, Ordering::SeqCst);
                            let inner2 = Arc::clone(&inner);
                            tokio::spawn(async move {
                                crate::job::supervise(Arc::clone(&inner2), due).await;
                                inner2.in_flight.fetch_sub(1, Ordering::SeqCst);
                                drop(permit);
                            });
                        }
                        continue;
                    }
                    Some(Duration::from_millis(due - now))
                }
            }
        };
        match wait {
            None => tokio::select! {
                _ = inner.wake.notified() => {}
                _ = stop.changed() => {}
            },
            Some(d) => tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = inner.wake.notified() => {}
                _ = stop.changed() => {}
            },
        }
    }
}
