//! One delivery attempt of one queued message (Haraka's `HMailItem`): load,
//! `send_email`, `get_mx`, the SMTP sessions, then delivered / deferred / bounced.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use haraka_client::MailParams;
use haraka_plugin_api::{Action, Hook, MxHost, OutboundArgs, OutboundHooks, OutboundMail};
use haraka_queue::{Envelope, NewItem, QueueEntry, QueueError, QueueStore, StoredMessage, now_ms};
use haraka_smtp::{Address, Notes};
use serde_json::Value;

use crate::bounce::{self, BounceInput, BounceTemplates};
use crate::config::OutboundConfig;
use crate::conn_cache::ConnCache;
use crate::dsn::RcptDsn;
use crate::enqueue;
use crate::handoff::FreshBody;
use crate::mx::{self, MxFailure, PluginMx};
use crate::queue::{Event, Queue, Scheduled};
use crate::resolver::MxResolver;
use crate::session::{self, Accepted, SessionOutcome, SessionParams, TlsChoice};
use crate::util::host_in_list;
use crate::{OutboundError, OutboundTls, RetrySchedule};

/// What every delivery attempt works with. The engine owns one and hands it to
/// each attempt; the way back to the engine is [`Context::queue`].
pub(crate) struct Context {
    pub cfg: OutboundConfig,
    pub store: Arc<dyn QueueStore>,
    /// Where deferred deliveries and bounces are scheduled and events reported.
    pub queue: Queue,
    pub resolver: Arc<dyn MxResolver>,
    pub hooks: Arc<dyn OutboundHooks>,
    pub tls: OutboundTls,
    pub templates: BounceTemplates,
    pub conns: ConnCache,
}

impl Context {
    /// Queue a message generated here (Haraka's `outbound.send_email`); returns
    /// the transaction id once durable.
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
            MailParams::default(),
            &to,
            &notes,
            Arc::from(message),
            self.cfg.always_split,
            now,
        );
        self.queue.submit(items).await?;
        Ok(tuuid)
    }
}

/// Run one delivery in its own task, so that a panic in it (a plugin bug) costs only
/// that message a temporary failure; when its retries run out the file is moved aside
/// instead of bounced (the bounce would run the same plugins again).
pub(crate) async fn supervise(cx: Arc<Context>, due: Scheduled) {
    let Scheduled { entry, fresh } = due;
    let task = tokio::spawn(process(Arc::clone(&cx), entry.clone(), fresh));
    let Err(e) = task.await else { return };
    let err = format!("delivery task failed: {e}");
    tracing::error!(file = %entry.file, error = %err, "delivery failed unexpectedly");
    let attempts = entry.name.attempts + 1;
    let Some(delay) = cx.cfg.temp_fail_intervals.delay(attempts) else {
        quarantine(&cx, &entry.file, &err).await;
        return;
    };
    let next = RetrySchedule::due(now_ms(), delay);
    let store = Arc::clone(&cx.store);
    let stale = entry.clone();
    match blocking(move || reschedule_current(&*store, &stale, attempts, next)).await {
        Ok(renamed) => {
            cx.queue.schedule(renamed, next);
            cx.queue.emit(Event::Deferred {
                id: entry.envelope.uuid.clone(),
                attempts,
                next_attempt: next,
                err,
            });
        }
        Err(e) => cx.queue.emit(Event::Dropped {
            id: entry.envelope.uuid.clone(),
            reason: format!("{err}; then: {e}"),
        }),
    }
}

/// Rename to a new schedule (the current file, if a queue tool renamed it meanwhile).
fn reschedule_current(
    store: &dyn QueueStore,
    entry: &QueueEntry,
    attempts: u32,
    next: u64,
) -> Result<QueueEntry, QueueError> {
    store.on_current_file(&entry.file, &entry.name, |file| {
        let current = QueueEntry {
            file: file.to_owned(),
            ..entry.clone()
        };
        store.reschedule(&current, attempts, next)
    })
}

/// A loaded message being delivered.
struct Job {
    entry: QueueEntry,
    mail: OutboundMail,
    message: Arc<[u8]>,
    /// Reported once every file operation of the attempt is done.
    events: Vec<Event>,
}

impl Job {
    fn new(entry: QueueEntry, message: Arc<[u8]>) -> Job {
        Job {
            mail: mail_of(&entry),
            entry,
            message,
            events: Vec::new(),
        }
    }
    fn envelope(&self) -> &Envelope {
        &self.entry.envelope
    }
    fn id(&self) -> String {
        self.entry.envelope.uuid.clone()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(QueueError::Io(std::io::Error::other(e.to_string()))))
}

/// One attempt. A first attempt of a message queued here has it in memory
/// (`fresh`, dropped when the attempt ends whatever its outcome); any other is
/// loaded from its file.
async fn process(cx: Arc<Context>, entry: QueueEntry, fresh: Option<Arc<FreshBody>>) {
    if let Some(fresh) = fresh {
        let mut job = Job::new(entry, fresh.message());
        deliver(&cx, &mut job).await;
        flush(&cx, &mut job);
        return;
    }
    let store = Arc::clone(&cx.store);
    let (file, name) = (entry.file.clone(), entry.name.clone());
    let loaded: Result<StoredMessage, QueueError> =
        blocking(move || store.on_current_file(&file, &name, |f| store.load(f))).await;
    let stored = match loaded {
        Ok(s) => s,
        Err(e) if e.is_not_found() => {
            cx.queue.emit(Event::Dropped {
                id: entry.envelope.uuid.clone(),
                reason: "queue file vanished".into(),
            });
            return;
        }
        Err(e) if e.is_corrupt() || matches!(e, QueueError::BadName(_)) => {
            quarantine(&cx, &entry.file, &e.to_string()).await;
            return;
        }
        Err(e) => {
            let err = format!("Error reading queue file {}: {e}", entry.file);
            let mut job = Job::new(entry, Arc::from(&b""[..]));
            let rcpts = with_dsn(
                &job.entry.envelope.rcpt_to,
                &RcptDsn::internal(450, 3, 0, &err),
            );
            temp_fail(&cx, &mut job, rcpts, err).await;
            flush(&cx, &mut job);
            return;
        }
    };
    let mut job = Job::new(stored.entry, Arc::from(stored.message));
    deliver(&cx, &mut job).await;
    flush(&cx, &mut job);
}

fn flush(cx: &Context, job: &mut Job) {
    for e in job.events.drain(..) {
        cx.queue.emit(e);
    }
}

async fn quarantine(cx: &Context, file: &str, reason: &str) {
    tracing::error!(file, reason, "unreadable queue file moved aside");
    let store = Arc::clone(&cx.store);
    let f = file.to_owned();
    if let Err(e) = blocking(move || store.quarantine(&f)).await {
        tracing::error!(file, error = %e, "could not move the unreadable queue file aside");
    }
    cx.queue.emit(Event::Quarantined {
        file: file.to_owned(),
        reason: reason.to_owned(),
    });
}

fn mail_of(entry: &QueueEntry) -> OutboundMail {
    let e = &entry.envelope;
    OutboundMail {
        id: e.uuid.clone(),
        domain: e.domain.clone(),
        mail_from: e.mail_from.clone(),
        rcpt_to: e.rcpt_to.clone(),
        notes: e.notes.clone(),
        attempts: entry.name.attempts,
        mx: None,
    }
}

fn with_dsn(rcpts: &[Address], dsn: &RcptDsn) -> Vec<(Address, RcptDsn)> {
    rcpts.iter().map(|a| (a.clone(), dsn.clone())).collect()
}

async fn deliver(cx: &Context, job: &mut Job) {
    let sent = cx
        .hooks
        .run(Hook::SendEmail, &mut job.mail, &OutboundArgs::None)
        .await;
    if sent.action == Action::Delay {
        let secs = sent
            .msg
            .as_ref()
            .and_then(|m| m.joined().trim().parse::<u64>().ok())
            .unwrap_or(0);
        let next = RetrySchedule::due(now_ms(), Duration::from_secs(secs));
        let attempts = job.entry.name.attempts;
        reschedule(cx, job, attempts, next, "delayed by send_email".into()).await;
        return;
    }
    let hosts = match choose_mx(cx, job).await {
        Ok(h) => h,
        Err(MxFailure::Bounce(err, dsn)) => {
            let rcpts = with_dsn(&job.envelope().rcpt_to, &dsn);
            bounce(cx, job, rcpts, &err).await;
            remove(cx, &job.entry).await;
            return;
        }
        Err(MxFailure::TempFail(err, dsn)) => {
            let rcpts = with_dsn(&job.envelope().rcpt_to, &dsn);
            temp_fail(cx, job, rcpts, err).await;
            return;
        }
    };
    let outcome = try_hosts(cx, job, &hosts).await;
    finish(cx, job, outcome).await;
}

async fn choose_mx(cx: &Context, job: &mut Job) -> Result<Vec<MxHost>, MxFailure> {
    let args = OutboundArgs::GetMx {
        domain: job.envelope().domain.clone(),
    };
    let outcome = cx.hooks.run(Hook::GetMx, &mut job.mail, &args).await;
    match mx::from_plugin(&outcome, &job.mail, cx.cfg.smtp_port) {
        PluginMx::Hosts(h) => Ok(h),
        PluginMx::Fail(f) => Err(f),
        PluginMx::Dns => {
            mx::from_dns(
                &*cx.resolver,
                &job.envelope().domain,
                &cx.cfg.me,
                cx.cfg.local_mx_ok,
                cx.cfg.smtp_port,
            )
            .await
        }
    }
}

/// What the attempt over all hosts came to.
enum Attempt {
    Whole(SessionOutcome),
    Finished {
        accepted: Option<(Accepted, String, IpAddr, u16)>,
        ok: Vec<usize>,
        deferred: Vec<(usize, RcptDsn)>,
        bounced: Vec<(usize, RcptDsn)>,
    },
}

/// Each MX in order, each of its addresses in turn, until one session ends with an
/// answer about the message.
async fn try_hosts(cx: &Context, job: &Job, hosts: &[MxHost]) -> Attempt {
    let notes = &job.mail.notes;
    let helo = notes
        .get("outbound_helo")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(&cx.cfg.me)
        .to_owned();
    let bind = notes
        .get("outbound_ip")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok());
    let domain = job.envelope().domain.clone();
    for mx in hosts {
        let addrs = mx::addresses(&*cx.resolver, mx, cx.cfg.ipv6_enabled).await;
        for ip in addrs {
            let mut tls = tls_choice(cx, job, mx, ip, &domain);
            loop {
                let params = SessionParams {
                    addr: SocketAddr::new(ip, mx.port),
                    exchange: &mx.exchange,
                    helo: &helo,
                    bind,
                    tls: tls.clone(),
                    mail_from: job.envelope().mail_from.as_ref(),
                    mail_params: MailParams {
                        smtputf8: job.envelope().smtputf8,
                        eight_bit: job.envelope().body_8bitmime,
                    },
                    rcpts: &job.envelope().rcpt_to,
                    message: &job.message,
                    timeout: cx.cfg.connect_timeout,
                };
                match session::run_reusing(&params, &cx.conns).await {
                    SessionOutcome::NextAddress(e) => {
                        tracing::info!(id = %job.id(), error = %e, "trying the next address");
                        break;
                    }
                    SessionOutcome::RetryPlain(e) => {
                        tracing::info!(id = %job.id(), host = %mx.exchange, error = %e,
                            "TLS handshake failed; retrying without TLS");
                        if matches!(tls, TlsChoice::Opportunistic(_)) {
                            tls = TlsChoice::Off;
                            continue;
                        }
                        break;
                    }
                    SessionOutcome::Finished {
                        accepted,
                        ok,
                        deferred,
                        bounced,
                    } => {
                        return Attempt::Finished {
                            accepted: accepted.map(|a| (a, mx.exchange.clone(), ip, mx.port)),
                            ok,
                            deferred,
                            bounced,
                        };
                    }
                    whole => return Attempt::Whole(whole),
                }
            }
        }
    }
    let err = format!("Tried all MXs {domain}");
    Attempt::Whole(SessionOutcome::TempFail(
        "Tried all MXs".into(),
        RcptDsn::internal(550, 1, 2, &err),
    ))
}

fn tls_choice(cx: &Context, job: &Job, mx: &MxHost, ip: IpAddr, domain: &str) -> TlsChoice {
    let p = &cx.tls;
    let forced = job.envelope().force_tls
        || host_in_list(&p.force_tls_hosts, &mx.exchange)
        || host_in_list(&p.force_tls_hosts, domain);
    if forced {
        return TlsChoice::Required(p.verified.clone());
    }
    let excluded = host_in_list(&p.no_tls_hosts, &ip.to_string())
        || host_in_list(&p.no_tls_hosts, &mx.exchange)
        || host_in_list(&p.no_tls_hosts, domain);
    match &p.config {
        Some(cfg) if cx.cfg.enable_tls && !excluded => TlsChoice::Opportunistic(Arc::clone(cfg)),
        _ => TlsChoice::Off,
    }
}

async fn finish(cx: &Context, job: &mut Job, attempt: Attempt) {
    let all = job.envelope().rcpt_to.clone();
    match attempt {
        Attempt::Whole(SessionOutcome::Bounce(err, dsn)) => {
            bounce(cx, job, with_dsn(&all, &dsn), &err).await;
            remove(cx, &job.entry).await;
        }
        Attempt::Whole(SessionOutcome::TempFail(err, dsn)) => {
            temp_fail(cx, job, with_dsn(&all, &dsn), err).await;
        }
        Attempt::Whole(other) => {
            // NextAddress / RetryPlain never end the loop; treat as a retry.
            tracing::error!(id = %job.id(), outcome = ?other, "unexpected delivery outcome");
            let dsn = RcptDsn::internal(450, 4, 0, "unexpected delivery outcome");
            temp_fail(cx, job, with_dsn(&all, &dsn), "delivery failed".into()).await;
        }
        Attempt::Finished {
            accepted,
            ok,
            deferred,
            bounced,
        } => {
            let pick = |list: &[(usize, RcptDsn)]| -> Vec<(Address, RcptDsn)> {
                list.iter()
                    .filter_map(|(i, d)| all.get(*i).map(|a| (a.clone(), d.clone())))
                    .collect()
            };
            let deferred = pick(&deferred);
            let bounced = pick(&bounced);
            if let Some((acc, host, ip, port)) = accepted {
                delivered(cx, job, &ok, acc, host, ip, port).await;
            }
            let mut keep_file = false;
            if !deferred.is_empty() {
                let err = format!("Some recipients temp failed: {}", list_of(&deferred));
                if deferred.len() == all.len() {
                    temp_fail(cx, job, deferred, err).await;
                    keep_file = true;
                } else {
                    split_and_defer(cx, job, deferred, err).await;
                }
            }
            if !bounced.is_empty() {
                let err = format!("Some recipients failed: {}", list_of(&bounced));
                bounce(cx, job, bounced, &err).await;
            }
            if !keep_file {
                remove(cx, &job.entry).await;
            }
        }
    }
}

fn list_of(rcpts: &[(Address, RcptDsn)]) -> String {
    rcpts
        .iter()
        .map(|(a, _)| a.format())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn delivered(
    cx: &Context,
    job: &mut Job,
    ok: &[usize],
    acc: Accepted,
    host: String,
    ip: IpAddr,
    port: u16,
) {
    let ok_recips: Vec<Address> = ok
        .iter()
        .filter_map(|i| job.envelope().rcpt_to.get(*i).cloned())
        .collect();
    tracing::info!(id = %job.id(), domain = %job.envelope().domain, host = %host, ip = %ip,
        port, tls = acc.secured, response = %acc.response, rcpts = ok_recips.len(), "delivered");
    let args = OutboundArgs::Delivered {
        host: host.clone(),
        ip: ip.to_string(),
        port,
        response: acc.response.clone(),
        ok_recips,
        secured: acc.secured,
    };
    let _ = cx.hooks.run(Hook::Delivered, &mut job.mail, &args).await;
    job.events.push(Event::Delivered {
        id: job.id(),
        host,
        response: acc.response,
    });
}

/// Some recipients were deferred, others not: they get a queue file of their own.
async fn split_and_defer(cx: &Context, job: &mut Job, rcpts: Vec<(Address, RcptDsn)>, err: String) {
    let mut envelope = job.envelope().clone();
    envelope.rcpt_to = rcpts.iter().map(|(a, _)| a.clone()).collect();
    let item = NewItem {
        envelope,
        message: Arc::clone(&job.message),
        attempts: job.entry.name.attempts,
        next_attempt: None,
    };
    match cx.store.put(vec![item]).await {
        Ok(mut entries) if !entries.is_empty() => {
            let entry = entries.remove(0);
            let mut split = Job {
                mail: OutboundMail {
                    rcpt_to: entry.envelope.rcpt_to.clone(),
                    ..job.mail.clone()
                },
                entry,
                message: Arc::clone(&job.message),
                events: Vec::new(),
            };
            temp_fail(cx, &mut split, rcpts, err).await;
            job.events.append(&mut split.events);
        }
        result => {
            let e = match result {
                Err(e) => e.to_string(),
                Ok(_) => "no entry".into(),
            };
            let msg = format!("Error re-queueing some recipients: {e}");
            let dsn = RcptDsn::internal(450, 3, 0, &msg);
            let rcpts: Vec<(Address, RcptDsn)> =
                rcpts.into_iter().map(|(a, _)| (a, dsn.clone())).collect();
            bounce(cx, job, rcpts, &msg).await;
        }
    }
}

/// A temporary failure of `job` (its file is renamed, or bounced when retries ran out).
async fn temp_fail(cx: &Context, job: &mut Job, rcpts: Vec<(Address, RcptDsn)>, err: String) {
    let attempts = job.entry.name.attempts + 1;
    let Some(delay) = cx.cfg.temp_fail_intervals.delay(attempts) else {
        let rcpts: Vec<(Address, RcptDsn)> = rcpts
            .into_iter()
            .map(|(a, mut d)| {
                d.make_permanent();
                (a, d)
            })
            .collect();
        bounce(cx, job, rcpts, &format!("Too many failures ({err})")).await;
        remove(cx, &job.entry).await;
        return;
    };
    job.mail.attempts = attempts;
    let args = OutboundArgs::Deferred {
        delay_secs: delay.as_secs(),
        err: err.clone(),
    };
    let answer = cx.hooks.run(Hook::Deferred, &mut job.mail, &args).await;
    let delay = match answer.action {
        Action::Cont => delay,
        Action::DenySoft => answer
            .msg
            .as_ref()
            .and_then(|m| m.joined().trim().parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or(delay),
        other => {
            tracing::info!(id = %job.id(), action = %other, "deferred hook: not deferring; deleting mail");
            remove(cx, &job.entry).await;
            job.events.push(Event::Dropped {
                id: job.id(),
                reason: format!("deferred hook answered {other}"),
            });
            return;
        }
    };
    let next = RetrySchedule::due(now_ms(), delay);
    reschedule(cx, job, attempts, next, err).await;
}

async fn reschedule(cx: &Context, job: &mut Job, attempts: u32, next: u64, err: String) {
    let store = Arc::clone(&cx.store);
    let entry = job.entry.clone();
    let renamed = blocking(move || reschedule_current(&*store, &entry, attempts, next));
    match renamed.await {
        Ok(renamed) => {
            tracing::info!(id = %job.id(), file = %renamed.file, attempts, error = %err, "deferred");
            job.events.push(Event::Deferred {
                id: job.id(),
                attempts,
                next_attempt: next,
                err,
            });
            job.entry = renamed.clone();
            cx.queue.schedule(renamed, next);
        }
        Err(e) if e.is_not_found() => {
            job.events.push(Event::Dropped {
                id: job.id(),
                reason: "queue file vanished".into(),
            });
        }
        Err(e) => {
            let msg = format!("Error re-queueing email: {e}");
            let dsn = RcptDsn::internal(450, 3, 0, &msg);
            let rcpts = with_dsn(&job.envelope().rcpt_to.clone(), &dsn);
            bounce(cx, job, rcpts, &msg).await;
            remove(cx, &job.entry).await;
        }
    }
}

/// A permanent failure for `rcpts`: run the `bounce` hook, then send the DSN to the
/// sender (never to the null sender). The caller removes the queue file.
async fn bounce(cx: &Context, job: &mut Job, rcpts: Vec<(Address, RcptDsn)>, err: &str) {
    let mut mail = OutboundMail {
        rcpt_to: rcpts.iter().map(|(a, _)| a.clone()).collect(),
        ..job.mail.clone()
    };
    let args = OutboundArgs::Bounce {
        err: err.to_owned(),
    };
    let answer = cx.hooks.run(Hook::Bounce, &mut mail, &args).await;
    if answer.action != Action::Cont {
        tracing::info!(id = %job.id(), action = %answer.action, "bounce hook: not sending a bounce");
        job.events.push(Event::Dropped {
            id: job.id(),
            reason: format!("bounce hook answered {}", answer.action),
        });
        return;
    }
    let Some(sender) = job.envelope().mail_from.clone() else {
        tracing::warn!(id = %job.id(), error = err, "Double bounce: Mail was already a bounce");
        job.events.push(Event::DoubleBounce {
            id: job.id(),
            err: err.to_owned(),
        });
        return;
    };
    let message = bounce::build(
        &cx.templates,
        &BounceInput {
            me: &cx.cfg.me,
            sender: &sender,
            rcpts: &rcpts,
            reason: err,
            queue_time: job.envelope().queue_time,
            original: &job.message,
            now_ms: now_ms(),
        },
    );
    match cx
        .send_email(None, vec![sender], &message, Default::default())
        .await
    {
        Ok(_) => {
            tracing::info!(id = %job.id(), error = err, "bounce queued");
            job.events.push(Event::Bounced {
                id: job.id(),
                err: err.to_owned(),
            });
        }
        Err(e) => {
            tracing::warn!(id = %job.id(), error = %e, "Double bounce: Unable to queue the bounce message");
            job.events.push(Event::DoubleBounce {
                id: job.id(),
                err: format!("Unable to queue the bounce message: {e}"),
            });
        }
    }
}

/// Remove the file of `entry` (the current file, if a queue tool renamed it meanwhile).
async fn remove(cx: &Context, entry: &QueueEntry) {
    let store = Arc::clone(&cx.store);
    let (f, name) = (entry.file.clone(), entry.name.clone());
    let removed = blocking(move || store.on_current_file(&f, &name, |f| store.remove(f)));
    if let Err(e) = removed.await {
        tracing::error!(file = %entry.file, error = %e, "could not remove queue file");
    }
}
