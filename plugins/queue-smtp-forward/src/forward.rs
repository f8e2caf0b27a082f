//! Forwarding one transaction to the backend and mapping the result to an outcome.
//!
//! Pooling: a connection is reused only when no XCLIENT was sent on it (XCLIENT
//! binds it to one client); the pool key is (address, TLS wanted, TLS name, EHLO
//! name, AUTH user). A reused connection gets RSET first; if that fails, a fresh
//! connection is opened instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use haraka_client::{
    Capabilities, ConnectOptions, Error, Lease, MailParams, Pool, Reply, SmtpClient, Stage,
    StartTls, Timeouts, Xclient, XclientAttrs,
};
use haraka_plugin_api::{Address, Connection, HelloVerb, Msg, Outcome, Transaction};
use rustls_pki_types::ServerName;
use tokio::time::Instant;

use crate::config::{Auth, Config, Route};
use crate::host_pool::HostPool;
use crate::warm::Warmup;

/// What makes two backend connections interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    addr: SocketAddr,
    tls: bool,
    server_name: String,
    helo: String,
    auth_user: Option<String>,
}

/// The connections and TLS settings shared by every message.
pub struct Forwarder {
    connector: Connector,
    host_pool: Option<HostPool>,
    warm: Warmup,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("pool", &self.connector.pool)
            .finish_non_exhaustive()
    }
}

/// Opens (or takes from the pool) backend connections; cheap to clone into a task.
#[derive(Clone)]
pub(crate) struct Connector {
    pool: Arc<Pool<PoolKey>>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// Everything a backend connection for one transaction depends on, owned so that
/// it can be prepared ahead in a task ([`Warmup`]) and compared with the plan at
/// queue time: a prepared connection is used only for an identical plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    host: String,
    port: u16,
    /// The EHLO name (`me`).
    me: String,
    tls: bool,
    auth: Option<Auth>,
    /// XCLIENT attributes and HELO, when smtp_forward forwards the client's identity.
    xclient: Option<(XclientAttrs, String)>,
    /// Forward without XCLIENT when the backend refuses it (`xclient_refused=continue`).
    xclient_refused_continue: bool,
    connect_timeout: Duration,
    timeout: Duration,
}

/// A connection ready for MAIL, with its pool slot.
pub(crate) type Ready = (Lease<PoolKey>, SmtpClient);

impl Forwarder {
    /// `tls`: how backend certificates are verified (`None`: STARTTLS fails).
    pub fn new(cfg: &Config, tls: Option<Arc<rustls::ClientConfig>>) -> Forwarder {
        let host_pool =
            (!cfg.host_pool.is_empty()).then(|| HostPool::new(&cfg.host_pool, cfg.dead_host_retry));
        Forwarder {
            connector: Connector {
                pool: Pool::new(cfg.max_connections, cfg.timeout),
                tls,
            },
            host_pool,
            warm: Warmup::default(),
        }
    }

    /// The plan for `conn`'s transaction along `route`, or the refusal when no
    /// backend is configured. `pick` chooses from `forwarding_host_pool`.
    fn plan(
        &self,
        cfg: &Config,
        route: &Route,
        conn: &Connection,
        pick: bool,
    ) -> Result<Plan, Outcome> {
        let route = cfg.connection_route(route);
        let from_pool = std::ptr::eq(route, &cfg.main);
        let target = match (&self.host_pool, from_pool) {
            (Some(pool), true) if pick => pool.get(),
            (Some(_), true) => None,
            _ => route.host.clone().map(|h| (h, cfg.port_of(route))),
        };
        let Some((host, port)) = target else {
            return Err(Outcome::deny_soft(
                "4.3.5 Mail forwarding is not configured, try again later",
            ));
        };
        let me = conn.local.host.clone();
        let xclient = cfg.forward_xclient.then(|| {
            let helo = conn.hello_host().unwrap_or(&me).to_owned();
            (xclient_attrs(conn), helo)
        });
        Ok(Plan {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            me,
            tls: route.enable_tls,
            auth: route.auth.clone(),
            xclient,
            xclient_refused_continue: cfg.xclient_refused_continue,
            connect_timeout: cfg.connect_timeout,
            timeout: cfg.timeout,
        })
    }

    /// Start connecting to the backend for `conn`'s transaction while the client
    /// is still sending (from the `rcpt_ok` hook), so that the backend's greeting,
    /// EHLO and XCLIENT are done by the time the message is complete. Not with
    /// `forwarding_host_pool`, whose pick is made once, at queue time.
    pub fn prepare(&self, cfg: &Config, route: &Route, conn: &Connection) {
        let Some(txn) = conn.transaction.as_ref() else {
            return;
        };
        if self.host_pool.is_some() && std::ptr::eq(cfg.connection_route(route), &cfg.main) {
            return;
        }
        if let Ok(plan) = self.plan(cfg, route, conn, false) {
            self.warm
                .start(&conn.uuid, &txn.uuid, plan, self.connector.clone());
        }
    }

    /// Drop what was prepared for the transactions of a connection that ended.
    pub fn forget(&self, conn: &Connection) {
        self.warm.forget_connection(&conn.uuid);
    }

    /// Connections prepared and not yet used.
    pub fn prepared(&self) -> usize {
        self.warm.pending()
    }

    /// Forward the transaction of `conn` along `route`.
    pub async fn forward(&self, cfg: &Config, route: &Route, conn: &Connection) -> Outcome {
        let Some(txn) = conn.transaction.as_ref() else {
            return Outcome::cont();
        };
        let plan = match self.plan(cfg, route, conn, true) {
            Ok(p) => p,
            Err(refusal) => {
                tracing::error!(uuid = %txn.uuid, "smtp_forward: no host for route [{}]", cfg.connection_route(route).name);
                return refusal;
            }
        };
        let (host, port) = (plan.host.clone(), plan.port);
        tracing::info!(uuid = %txn.uuid, "smtp_forward: forwarding to {host}:{port}");
        let prepared = self.warm.take(&txn.uuid, &plan).await;
        match self.deliver(cfg, &plan, txn, prepared).await {
            Ok(reply) => {
                tracing::info!(uuid = %txn.uuid, "smtp_forward: accepted by {host}:{port}: {}", reply.text());
                Outcome::accept_with(Msg::text(reply.lines.join(",")))
            }
            Err(err) => {
                tracing::warn!(uuid = %txn.uuid, "smtp_forward: {host}:{port}: {err}");
                if err.is_transport()
                    && err.stage() == Some(Stage::Connect)
                    && let Some(pool) = &self.host_pool
                {
                    pool.failed(&host, port);
                }
                outcome_for(&err)
            }
        }
    }

    async fn deliver(
        &self,
        cfg: &Config,
        plan: &Plan,
        txn: &Transaction,
        prepared: Option<Result<Ready, Error>>,
    ) -> Result<Reply, Error> {
        let (lease, mut client) = match prepared {
            Some(ready) => ready?,
            None => self.connector.connect(plan).await?,
        };
        let result = send(cfg, txn, &mut client).await;
        // Back to the pool (the next user sends RSET first), or closed in the
        // background: the client's answer never waits for housekeeping.
        lease.release(client);
        result
    }
}

impl Connector {
    /// A connection ready for MAIL: an idle pooled one that answers RSET, else a
    /// new one (trying each address of the host while connecting fails).
    pub(crate) async fn connect(&self, plan: &Plan) -> Result<Ready, Error> {
        let deadline = Instant::now() + plan.connect_timeout;
        let addrs = resolve(&plan.host, plan.port, plan.connect_timeout).await?;
        let mut last = None;
        for addr in addrs {
            let key = PoolKey {
                addr,
                tls: plan.tls,
                server_name: plan.host.clone(),
                helo: plan.me.clone(),
                auth_user: plan.auth.as_ref().map(|a| a.user.clone()),
            };
            let wait = deadline.saturating_duration_since(Instant::now());
            let mut lease = self.pool.acquire(key, wait).await?;
            if let Some(mut client) = lease.take_idle() {
                // RSET both clears what the last user left and proves the
                // connection still works before any of this message is sent.
                match client.rset().await {
                    Ok(_) => return Ok((lease, client)),
                    Err(e) => tracing::debug!(
                        "smtp_forward: pooled connection unusable ({e}); reconnecting"
                    ),
                }
            }
            match self.open(plan, addr, deadline).await {
                Ok(client) => return Ok((lease, client)),
                Err(
                    e @ (Error::Connect { .. }
                    | Error::Timeout {
                        stage: Stage::Connect,
                        ..
                    }),
                ) => {
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Invalid(format!("{} has no address", plan.host))))
    }

    /// Connect, EHLO, STARTTLS, XCLIENT, AUTH.
    async fn open(
        &self,
        plan: &Plan,
        addr: SocketAddr,
        deadline: Instant,
    ) -> Result<SmtpClient, Error> {
        let opts = ConnectOptions {
            timeouts: Timeouts {
                connect: deadline.saturating_duration_since(Instant::now()),
                command: plan.timeout,
                data_end: plan.timeout,
            },
            bind: None,
        };
        let mut client = SmtpClient::connect(addr, &opts).await?;
        let me = plan.me.as_str();
        client.ehlo(me).await?;
        if plan.tls && client.capabilities().has("STARTTLS") {
            let tls = self.tls.clone().ok_or_else(|| {
                Error::Tls(std::io::Error::other(
                    "no CA certificates to verify the backend",
                ))
            })?;
            let name = ServerName::try_from(plan.host.clone())
                .map_err(|e| Error::Tls(std::io::Error::other(e)))?;
            match client.starttls(tls, name).await? {
                StartTls::Secured => {
                    client.ehlo(me).await?;
                }
                StartTls::Refused(reply) => {
                    return Err(Error::Rejected {
                        stage: Stage::StartTls,
                        reply,
                    });
                }
            }
        }
        if let Some((attrs, helo)) = &plan.xclient
            && client.capabilities().has("XCLIENT")
            && let Xclient::Refused(reply) = client.xclient(attrs, helo).await?
        {
            // Without XCLIENT the backend sees the proxy's own address, which a
            // backend trusting the proxy treats as a trusted relay: fail closed.
            if !plan.xclient_refused_continue {
                return Err(Error::Rejected {
                    stage: Stage::Xclient,
                    reply,
                });
            }
            tracing::info!(
                "smtp_forward: XCLIENT refused ({} {}); continuing without (xclient_refused=continue)",
                reply.code,
                reply.text()
            );
        }
        if let Some(auth) = &plan.auth {
            client.auth(auth.mechanism, &auth.user, &auth.pass).await?;
        }
        Ok(client)
    }
}

/// MAIL, RCPT (all or, with one_message_per_rcpt, one at a time) and DATA, pipelined
/// when the backend offers PIPELINING; then the message.
async fn send(cfg: &Config, txn: &Transaction, client: &mut SmtpClient) -> Result<Reply, Error> {
    let rcpts: Vec<String> = txn.rcpt_to.iter().map(path).collect();
    let from = mail_from(txn, &rcpts, client.capabilities())?;
    let groups: Vec<&[String]> = if cfg.one_message_per_rcpt {
        rcpts.chunks(1).collect()
    } else {
        vec![rcpts.as_slice()]
    };
    let mut last = None;
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            client.rset().await?;
        }
        let replies = client.envelope_data(&from, group).await?;
        if let Some(bad) = replies.into_iter().find(|r| !(200..300).contains(&r.code)) {
            return Err(Error::Rejected {
                stage: Stage::Rcpt,
                reply: bad,
            });
        }
        // A connection that carried XCLIENT is never reused: QUIT rides with the dot.
        let reply = if i + 1 == groups.len() && client.xclient_sent() {
            client.message_then_quit(&txn.message).await?
        } else {
            client.message(&txn.message).await?
        };
        last = Some(reply);
    }
    last.ok_or_else(|| Error::Invalid("no recipients".into()))
}

/// `<user@domain>` with the domain lower-cased (punycoded), no ESMTP parameters.
fn path(a: &Address) -> String {
    a.forward_path()
}

/// MAIL FROM's argument: the path, then `SMTPUTF8` and `BODY=8BITMIME` when the
/// sender gave them and the backend offers them (Haraka passes neither on). An
/// envelope that needs SMTPUTF8 (the sender asked for it, or a local part is not
/// ASCII) is not sent to a backend that does not offer it (RFC 6531 3.4): 554
/// 5.6.7, as Postfix bounces it.
fn mail_from(txn: &Transaction, rcpts: &[String], caps: &Capabilities) -> Result<String, Error> {
    let from = match &txn.mail_from {
        Some(a) => path(a),
        None => "<>".to_owned(),
    };
    MailParams::from_args(&txn.mail_params)
        .mail_from(from, rcpts, caps)
        .map_err(|_| Error::Rejected {
            stage: Stage::Mail,
            reply: Reply {
                code: 554,
                lines: vec![
                    "5.6.7 SMTPUTF8 is required, but the upstream server does not offer it"
                        .to_owned(),
                ],
            },
        })
}

async fn resolve(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found = tokio::time::timeout(limit, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| Error::Timeout {
            stage: Stage::Connect,
            after: limit,
        })?
        .map_err(|source| Error::Io {
            stage: Stage::Connect,
            source,
        })?;
    Ok(found.collect())
}

/// The original client's attributes, for XCLIENT.
pub fn xclient_attrs(conn: &Connection) -> XclientAttrs {
    let name = match conn.remote.host.as_deref() {
        Some("DNSERROR") => "[TEMPUNAVAIL]".to_owned(),
        Some(h) if !h.is_empty() && h != "NXDOMAIN" && h != "Unknown" => h.to_owned(),
        _ => "[UNAVAILABLE]".to_owned(),
    };
    let proto = conn
        .xclient_proto
        .as_ref()
        .map(|p| p.to_ascii_uppercase())
        .or_else(|| {
            conn.hello.as_ref().map(|h| match h.verb {
                HelloVerb::Ehlo => "ESMTP".to_owned(),
                HelloVerb::Helo => "SMTP".to_owned(),
            })
        });
    XclientAttrs {
        addr: Some(conn.remote.ip),
        name: Some(name),
        port: Some(conn.remote.port),
        helo: conn.hello_host().map(str::to_owned),
        proto,
        login: conn
            .auth_user
            .clone()
            .or_else(|| conn.xclient_login.clone()),
        destaddr: Some(conn.local.ip),
        destport: Some(conn.local.port),
    }
}

/// The reply the client gets for a failed forward.
pub fn outcome_for(err: &Error) -> Outcome {
    let soft = |text: &str| Outcome::deny_soft(Msg::text(text));
    match err {
        Error::Rejected { stage, reply } => {
            let text = reply.text();
            let text = if text.trim().is_empty() {
                format!("Upstream server answered {} to {stage}", reply.code)
            } else {
                text
            };
            match stage {
                Stage::Auth => {
                    return soft("4.7.0 Upstream authentication failed, try again later");
                }
                Stage::StartTls => {
                    return soft("4.7.5 Upstream server refused STARTTLS, try again later");
                }
                Stage::Xclient if (500..600).contains(&reply.code) => {
                    return soft("4.7.0 Upstream server refused XCLIENT, try again later");
                }
                _ => {}
            }
            if (500..600).contains(&reply.code) && *stage != Stage::Rset {
                let code = (550..=554).contains(&reply.code).then_some(reply.code);
                Outcome::deny(Msg {
                    code,
                    lines: vec![text],
                })
            } else {
                let code = (450..=452).contains(&reply.code).then_some(reply.code);
                Outcome::deny_soft(Msg {
                    code,
                    lines: vec![text],
                })
            }
        }
        Error::Connect { .. } => soft("4.4.1 Upstream server unavailable, try again later"),
        Error::Timeout { .. } => soft("4.4.2 Upstream server timed out, try again later"),
        Error::Closed { .. } | Error::Io { .. } => {
            soft("4.4.2 Upstream connection lost, try again later")
        }
        Error::Tls(_) => soft("4.7.5 TLS to the upstream server failed, try again later"),
        Error::Protocol { .. } => soft("4.5.0 Upstream server protocol error, try again later"),
        Error::PoolExhausted { .. } => {
            soft("4.4.5 Too many connections to the upstream server, try again later")
        }
        Error::Invalid(_) => soft("4.3.0 Message could not be forwarded, try again later"),
    }
}
