//! The engine: construction, start-up recovery, the scheduler, enqueueing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use haraka_client::MailParams;
use haraka_config::{ConfigDir, ConfigErrors, Diag};
use haraka_plugin_api::{
    Connection, Hook, Msg, OutboundArgs, OutboundHooks, OutboundMail, OutboundQueue, Outcome,
};
use haraka_queue::{QueueDir, QueueStore, Recovery, now_ms};
use haraka_smtp::{Address, Notes};
use tokio::sync::{Semaphore, broadcast, watch};

use crate::bounce::BounceTemplates;
use crate::config::OutboundConfig;
use crate::conn_cache::{ConnCache, MAX_IDLE};
use crate::enqueue;
use crate::job::{self, Context};
use crate::queue::{Event, Queue};
use crate::resolver::{HickoryResolver, MxResolver};
use crate::{BoxFuture, NoHooks, OutboundError, OutboundTls};

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

/// The engine: what every delivery works with, and the scheduler's controls.
struct Inner {
    cx: Arc<Context>,
    disabled: AtomicBool,
    permits: Arc<Semaphore>,
    stop: watch::Sender<bool>,
    running: AtomicBool,
    in_flight: AtomicUsize,
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
        let (stop, _) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(self.cfg.concurrency_max.clamp(1, 1 << 20)));
        Ok(Outbound {
            inner: Arc::new(Inner {
                disabled: AtomicBool::new(self.cfg.disabled),
                permits,
                stop,
                running: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                cx: Arc::new(Context {
                    queue: Queue::new(Arc::clone(&self.store), self.cfg.fresh_message_budget),
                    conns: ConnCache::idle_only(
                        self.cfg.concurrency_max.min(MAX_IDLE),
                        self.cfg.connection_reuse,
                    ),
                    cfg: self.cfg,
                    store: self.store,
                    resolver,
                    hooks: self.hooks,
                    tls: self.tls,
                    templates: self.templates,
                }),
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
        let cx = &self.inner.cx;
        let store = Arc::clone(&cx.store);
        let rec = tokio::task::spawn_blocking(move || store.recover())
            .await
            .map_err(|e| OutboundError::Invalid(format!("recovery task failed: {e}")))??;
        for q in &rec.quarantined {
            tracing::error!(file = %q.file, reason = %q.reason, moved_to = ?q.moved_to,
                "unreadable queue file moved aside");
            cx.queue.emit(Event::Quarantined {
                file: q.file.clone(),
                reason: q.reason.clone(),
            });
        }
        for f in &rec.unrecognized {
            tracing::warn!(file = %f, "Unrecognized file in queue folder");
        }
        for e in &rec.entries {
            cx.queue.schedule(e.clone(), e.name.next_attempt);
        }
        tracing::info!(count = rec.entries.len(), "outbound queue loaded");
        if !self.inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(run_scheduler(Arc::clone(&self.inner)));
            if cx.conns.keeps_idle() {
                let (cx, stop) = (Arc::clone(cx), self.inner.stop.subscribe());
                tokio::spawn(async move { cx.conns.run_reaper(stop).await });
            }
        }
        Ok(rec)
    }

    /// Every waiting delivery is due now (SIGHUP, `--qunstick`).
    pub fn retry_all_now(&self) {
        self.inner.cx.queue.retry_now(None);
    }

    /// Waiting deliveries to `domain` are due now (`flushQueue <domain>`).
    pub fn retry_domain_now(&self, domain: &str) {
        self.inner.cx.queue.retry_now(Some(domain));
    }

    /// Stop or resume delivering (`disabled`); queueing goes on.
    pub fn set_disabled(&self, disabled: bool) {
        self.inner.disabled.store(disabled, Ordering::SeqCst);
        self.inner.cx.queue.wake.notify_one();
    }

    /// Stop starting deliveries and close idle connections. Attempts in progress
    /// finish on their own; queued mail stays on disk for the next start.
    pub fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        self.inner.cx.queue.wake.notify_one();
    }

    pub fn status(&self) -> Status {
        let cx = &self.inner.cx;
        Status {
            scheduled: cx.queue.len(),
            in_flight: self.inner.in_flight.load(Ordering::SeqCst),
            fresh_bytes: cx.queue.fresh.used(),
            idle_connections: cx.conns.idle(),
        }
    }

    /// Follow what happens to queued mail.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.cx.queue.subscribe()
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
        self.inner.cx.send_email(from, to, message, notes).await
    }
}

/// What the client gets when the message could not be queued:
/// `451 4.3.0 Queue error` (Haraka: 550; a write failure is temporary).
fn queue_error() -> Outcome {
    Outcome::deny_soft(Msg {
        code: Some(451),
        lines: vec!["4.3.0 Queue error".to_owned()],
    })
}

fn config_error(e: ConfigErrors) -> OutboundError {
    OutboundError::Invalid(e.to_string())
}

impl OutboundQueue for Outbound {
    fn enqueue<'a>(&'a self, conn: &'a Connection) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let Some(tx) = conn.transaction.as_ref() else {
                return queue_error();
            };
            if tx.rcpt_to.is_empty() {
                return Outcome::deny_soft("No recipients for email");
            }
            let cx = &self.inner.cx;
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
            let _ = cx
                .hooks
                .run(Hook::PreSendTransEmail, &mut mail, &OutboundArgs::None)
                .await;
            if mail.rcpt_to.is_empty() {
                return Outcome::deny_soft("No recipients for email");
            }
            let message = enqueue::compose(
                &tx.message.headers,
                &tx.message.body,
                &cx.cfg,
                &tx.uuid,
                now,
            );
            let items = enqueue::items(
                &tx.uuid,
                mail.mail_from.as_ref(),
                MailParams::from_args(&tx.mail_params),
                &mail.rcpt_to,
                &mail.notes,
                Arc::from(message),
                cx.cfg.always_split,
                now,
            );
            match cx.queue.submit(items).await {
                Ok(_) => Outcome::accept_with("Message Queued"),
                Err(e) => {
                    tracing::error!(uuid = %tx.uuid, error = %e, "could not queue message");
                    queue_error()
                }
            }
        })
    }
}

/// The scheduler: start each due delivery when a slot is free.
async fn run_scheduler(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let queue = &inner.cx.queue;
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = if inner.disabled.load(Ordering::SeqCst) {
            None
        } else {
            match queue.next_due() {
                None => None,
                Some(due) => {
                    let now = now_ms();
                    if due <= now {
                        let permit = tokio::select! {
                            p = Arc::clone(&inner.permits).acquire_owned() => p,
                            _ = stop.changed() => continue,
                        };
                        let Ok(permit) = permit else { return };
                        if let Some(due) = queue.pop_due(now_ms()) {
                            inner.in_flight.fetch_add(1, Ordering::SeqCst);
                            let inner2 = Arc::clone(&inner);
                            tokio::spawn(async move {
                                job::supervise(Arc::clone(&inner2.cx), due).await;
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
                _ = queue.wake.notified() => {}
                _ = stop.changed() => {}
            },
            Some(d) => tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = queue.wake.notified() => {}
                _ = stop.changed() => {}
            },
        }
    }
}
