//! haraka-plugin-limit for haraka-rs (plugin name `limit`; Haraka 3.0.0 also
//! loads it for the deprecated names `max_unrecognized_commands` and
//! `rate_limit`).
//!
//! Reads `limit.ini` as the npm plugin does and enforces, per enabled section:
//! connections at once per client address (`[concurrency]`), recipients per
//! connection (`[recipients]`), unrecognized commands and errors per connection,
//! and the rates `[rate_conn]`, `[rate_rcpt_host]`, `[rate_rcpt_sender]` and
//! `[rate_rcpt]`, with the plugin's replies and its `tarpit_delay`. The counters
//! live in this process (bounded, expiring), not in Redis. Which hooks are
//! registered follows the `enabled` keys at start-up; the values are re-read
//! when the file changes.

pub mod config;
pub mod rate;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use haraka_config::{ConfigDir, ConfigErrors, Watched};
use haraka_plugin_api::{
    Address, Connection, Hooks, Outcome, Plugin, PluginError, PluginInit, Register,
};

use crate::config::LimitConfig;
use crate::rate::Rate;
use crate::store::Counters;

pub const TOO_MANY_CONCURRENT: &str = "Too many concurrent connections";
pub const TOO_MANY_ERRORS: &str = "Too many errors";
pub const TOO_MANY_RECIPIENTS: &str = "Too many recipient attempts";
pub const TOO_MANY_UNRECOGNIZED: &str = "Too many unrecognized commands";
pub const RATE_CONN: &str = "connection rate limit exceeded";
pub const RATE_RCPT_HOST: &str = "recipient rate limit exceeded";
pub const RATE_RCPT_SENDER: &str = "rcpt rate limit exceeded";
pub const RATE_RCPT: &str = "rate limit exceeded";

/// Create the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(
        init.name,
        Limit::new(init.name, init.config)?,
    ))
}

/// A limit was exceeded: the reply, whether the client is disconnected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Penalty {
    disconnect: bool,
    msg: &'static str,
}

const fn soft(msg: &'static str) -> Option<Penalty> {
    Some(Penalty {
        disconnect: false,
        msg,
    })
}

const fn soft_disconnect(msg: &'static str) -> Option<Penalty> {
    Some(Penalty {
        disconnect: true,
        msg,
    })
}

/// The limit plugin.
pub struct Limit {
    name: String,
    /// The settings at start-up: they decide the registered hooks.
    registered: LimitConfig,
    cfg: Watched<LimitConfig>,
    counters: Counters,
}

impl Limit {
    /// Read `limit.ini` from `cfg`; it is re-read when it changes.
    pub fn new(name: &str, cfg: &ConfigDir) -> Result<Limit, ConfigErrors> {
        let dir = cfg.clone();
        let cfg = Watched::with_paths(move || config::load(&dir))?;
        Ok(Limit {
            name: name.to_owned(),
            registered: (*cfg.get()).clone(),
            cfg,
            counters: Counters::default(),
        })
    }

    /// Look for a changed file at most once per `interval` (default 1 s).
    pub fn with_reload_interval(self, interval: Duration) -> Limit {
        Limit {
            cfg: self.cfg.with_interval(interval),
            ..self
        }
    }

    /// The configuration as it is now.
    pub fn config(&self) -> Arc<LimitConfig> {
        self.cfg.get()
    }

    /// The counters (for tests and diagnostics).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The plugin's `penalize`: DENYSOFT or DENYSOFTDISCONNECT with `msg`, after
    /// `tarpit_delay` when one is set.
    fn answer(&self, penalty: Option<Penalty>) -> impl Future<Output = Outcome> + Send + 'static {
        let delay = penalty.and(self.cfg.get().tarpit_delay);
        async move {
            let Some(p) = penalty else {
                return Outcome::cont();
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if p.disconnect {
                Outcome::deny_soft_disconnect(p.msg)
            } else {
                Outcome::deny_soft(p.msg)
            }
        }
    }

    fn fail(&self, conn: &mut Connection, what: &str, penalty: Option<Penalty>) -> Option<Penalty> {
        conn.results.add(&self.name, "fail", what);
        penalty
    }

    /// `connect_init`: count the connection (concurrency and connection rate).
    fn connect_init(&self, conn: &mut Connection) -> Outcome {
        let cfg = self.cfg.get();
        let now = Instant::now();
        if self.registered.concurrency.is_some() && cfg.concurrency.is_some() {
            let key = concurrency_key(conn);
            let n = self.counters.concurrency_incr(&key, now);
            conn.results.add(&self.name, "concurrent_count", n);
        }
        if self.registered.rate_conn.is_some()
            && let Some(table) = &cfg.rate_conn
        {
            let (key, value) = rate::host_key(table, conn);
            if let Some(period) = Rate::parse(&value).period.filter(|_| value != "0") {
                let key = format!("rate_conn:{key}");
                self.counters.sliding_incr(&key, period, now);
            }
        }
        Outcome::cont()
    }

    /// `connect`: concurrency, connection rate, recipient rate of the host.
    fn connect(&self, conn: &mut Connection) -> impl Future<Output = Outcome> + Send + 'static {
        let penalty = self.check_connect(conn);
        self.answer(penalty)
    }

    fn check_connect(&self, conn: &mut Connection) -> Option<Penalty> {
        let cfg = self.cfg.get();
        let now = Instant::now();
        if self.registered.concurrency.is_some()
            && let Some(max) = cfg.concurrency.flatten()
            && let Some(count) = last_number(conn, &self.name, "concurrent_count")
        {
            conn.results
                .add(&self.name, "concurrent", format!("{count}/{max}"));
            if count as f64 > max {
                return self.fail(
                    conn,
                    "concurrency.max",
                    soft_disconnect(TOO_MANY_CONCURRENT),
                );
            }
        }
        if self.registered.rate_conn.is_some()
            && let Some(table) = &cfg.rate_conn
        {
            let (key, value) = rate::host_key(table, conn);
            if let Some((limit, period)) = Rate::parse(&value).enforced() {
                let n = self
                    .counters
                    .sliding_count(&format!("rate_conn:{key}"), period, now);
                conn.results
                    .add(&self.name, "rate_conn", format!("{n}:{value}"));
                if n > limit {
                    return self.fail(conn, "rate_conn", soft_disconnect(RATE_CONN));
                }
            }
        }
        if self.registered.rate_rcpt_host.is_some()
            && let Some(table) = &cfg.rate_rcpt_host
        {
            let (key, value) = rate::host_key(table, conn);
            let limit = Rate::parse(&value).limit;
            let n = self
                .counters
                .fixed_get(&format!("rate_rcpt_host:{key}"), now);
            if limit > 0 && n > 0 {
                conn.results
                    .add(&self.name, "rate_rcpt_host", format!("{key}:{n}:{value}"));
                if n > limit {
                    return self.fail(conn, "rate_rcpt_host", soft(RATE_RCPT_HOST));
                }
            }
        }
        None
    }

    /// `disconnect`: the connection no longer counts.
    fn disconnect(&self, conn: &mut Connection) -> Outcome {
        if self.registered.concurrency.is_some()
            && last_number(conn, &self.name, "concurrent_count").is_some()
        {
            self.counters
                .concurrency_decr(&concurrency_key(conn), Instant::now());
        }
        Outcome::cont()
    }

    /// `helo`, `ehlo`, `mail`, `data`: `[errors] max`.
    fn errors(&self, conn: &mut Connection) -> impl Future<Output = Outcome> + Send + 'static {
        let penalty = self.check_errors(conn);
        self.answer(penalty)
    }

    fn helo(
        &self,
        conn: &mut Connection,
        _host: &str,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        self.errors(conn)
    }

    fn mail(
        &self,
        conn: &mut Connection,
        _from: Option<&Address>,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        self.errors(conn)
    }

    fn check_errors(&self, conn: &mut Connection) -> Option<Penalty> {
        self.registered.errors?;
        let max = self.cfg.get().errors.flatten()?;
        if f64::from(conn.errors) <= max {
            return None;
        }
        self.fail(conn, "errors.max", soft_disconnect(TOO_MANY_ERRORS))
    }

    /// `rcpt`: errors, recipients, then the recipient rates.
    fn rcpt(
        &self,
        conn: &mut Connection,
        to: &Address,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        let penalty = self
            .check_errors(conn)
            .or_else(|| self.check_recipients(conn))
            .or_else(|| self.check_rcpt_rates(conn, to));
        self.answer(penalty)
    }

    fn check_recipients(&self, conn: &mut Connection) -> Option<Penalty> {
        self.registered.recipients.as_ref()?;
        let cfg = self.cfg.get();
        let r = cfg.recipients.as_ref()?;
        let max = match r.max_relaying {
            Some(m) if conn.relaying() => m,
            _ => r.max?,
        };
        let count = f64::from(conn.rcpt_count.total()) + 1.0;
        if count <= max {
            return None;
        }
        self.fail(conn, "recipients.max", soft(TOO_MANY_RECIPIENTS))
    }

    fn check_rcpt_rates(&self, conn: &mut Connection, to: &Address) -> Option<Penalty> {
        let cfg = self.cfg.get();
        let now = Instant::now();
        if self.registered.rate_rcpt_host.is_some()
            && let Some(table) = &cfg.rate_rcpt_host
        {
            let (key, value) = rate::host_key(table, conn);
            if let Some(period) = Rate::parse(&value).period.filter(|_| value != "0") {
                self.counters
                    .fixed_incr(&format!("rate_rcpt_host:{key}"), period, now);
            }
        }
        if self.registered.rate_rcpt_sender.is_some()
            && let Some(table) = &cfg.rate_rcpt_sender
        {
            let from = conn.transaction.as_ref().and_then(|t| t.mail_from.as_ref());
            let (key, value) = rate::mail_key(table, from);
            conn.results
                .add(&self.name, "rate_rcpt_sender", value.as_str());
            if self.over("rate_rcpt_sender", &key, &value, now) {
                return self.fail(conn, "rate_rcpt_sender", soft(RATE_RCPT_SENDER));
            }
        }
        if self.registered.rate_rcpt.is_some()
            && let Some(table) = &cfg.rate_rcpt
        {
            let (key, value) = rate::mail_key(table, Some(to));
            conn.results.add(&self.name, "rate_rcpt", value.as_str());
            if self.over("rate_rcpt", &key, &value, now) {
                return self.fail(conn, "rate_rcpt", soft(RATE_RCPT));
            }
        }
        None
    }

    /// The plugin's `rate_limit`: count one event of `key` and say whether its
    /// rate is exceeded (a limit of 0, an empty key or a malformed value never is).
    fn over(&self, kind: &str, key: &str, value: &str, now: Instant) -> bool {
        if key.is_empty() {
            return false;
        }
        let Some((limit, period)) = Rate::parse(value).enforced() else {
            return false;
        };
        self.counters
            .fixed_incr(&format!("{kind}:{key}"), period, now)
            > limit
    }

    /// `unrecognized_command`: `[unrecognized_commands] max`.
    fn unrecognized(
        &self,
        conn: &mut Connection,
        verb: &str,
        _rest: &str,
    ) -> impl Future<Output = Outcome> + Send + 'static {
        let penalty = self.check_unrecognized(conn, verb);
        self.answer(penalty)
    }

    fn check_unrecognized(&self, conn: &mut Connection, verb: &str) -> Option<Penalty> {
        self.registered.unrecognized_commands?;
        conn.results.add(&self.name, "unrec_cmds", verb);
        let max = self.cfg.get().unrecognized_commands.flatten()?;
        let seen = conn
            .results
            .get(&self.name)
            .and_then(|r| r.get("unrec_cmds"))
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len);
        if seen as f64 <= max {
            return None;
        }
        self.fail(
            conn,
            "unrec_cmds.max",
            soft_disconnect(TOO_MANY_UNRECOGNIZED),
        )
    }
}

/// `concurrency|<ip>` (IPv4-mapped IPv6 as IPv4).
fn concurrency_key(conn: &Connection) -> String {
    format!("concurrency|{}", haraka_smtp::canonical_ip(conn.remote.ip))
}

/// The last number this plugin recorded under `kind`.
fn last_number(conn: &Connection, plugin: &str, kind: &str) -> Option<u64> {
    conn.results
        .get(plugin)?
        .get(kind)?
        .as_array()?
        .last()?
        .as_u64()
}

impl Register for Limit {
    fn register(&self, hooks: &mut Hooks<Self>) {
        let c = &self.registered;
        if c.concurrency.is_some() || c.rate_conn.is_some() {
            hooks.connect_init(Self::connect_init);
        }
        if c.concurrency.is_some() || c.rate_conn.is_some() || c.rate_rcpt_host.is_some() {
            hooks.connect(Self::connect);
        }
        if c.concurrency.is_some() {
            hooks.disconnect(Self::disconnect);
        }
        if c.errors.is_some() {
            hooks.helo(Self::helo);
            hooks.ehlo(Self::helo);
            hooks.mail(Self::mail);
            hooks.data(Self::errors);
        }
        let rcpt = c.errors.is_some()
            || c.recipients.is_some()
            || c.rate_rcpt_host.is_some()
            || c.rate_rcpt_sender.is_some()
            || c.rate_rcpt.is_some();
        if rcpt {
            hooks.rcpt(Self::rcpt);
        }
        if c.unrecognized_commands.is_some() {
            hooks.unrecognized_command(Self::unrecognized);
        }
    }
}
