//! One SMTP session to one address (Haraka's `try_deliver_host_on_socket`): greeting,
//! EHLO (HELO fallback), STARTTLS by policy, MAIL, RCPT (pipelined when offered),
//! DATA, QUIT — and what its outcome means for the queued message. A connection
//! that delivered a message may instead wait in a [`haraka_client::Pool`] for the next one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use haraka_client::{ConnectOptions, Error, MailParams, SmtpClient, Stage, StartTls, Timeouts};
use haraka_smtp::{Address, Reply};
use hickory_resolver::proto::rr::Name;
use rustls_pki_types::ServerName;

use crate::conn_cache::{ConnCache, ConnKey};
use crate::dsn::{ParsedReply, RcptDsn};

/// STARTTLS policy for one session.
#[derive(Clone)]
pub enum TlsChoice {
    /// Plaintext.
    Off,
    /// STARTTLS when offered; a failed handshake is retried in plaintext.
    Opportunistic(Arc<rustls::ClientConfig>),
    /// TLS with a verified certificate or no delivery (`force_tls_hosts`). `None` when
    /// no verifying configuration is available.
    Required(Option<Arc<rustls::ClientConfig>>),
}

/// Everything one session needs.
pub struct SessionParams<'a> {
    pub addr: SocketAddr,
    /// The MX host name (TLS server name, `Remote-MTA`).
    pub exchange: &'a str,
    pub helo: &'a str,
    pub bind: Option<IpAddr>,
    pub tls: TlsChoice,
    pub mail_from: Option<&'a Address>,
    /// What the sender gave in MAIL FROM (`SMTPUTF8`, `BODY=8BITMIME`).
    pub mail_params: MailParams,
    pub rcpts: &'a [Address],
    pub message: &'a [u8],
    pub timeout: Duration,
}

/// A successful end of DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub response: String,
    pub secured: bool,
}

/// What the session means for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOutcome {
    /// This address could not be used (connect, IO, timeout, closed): try the next.
    NextAddress(String),
    /// The TLS handshake failed on an opportunistic upgrade: try this address again
    /// in plaintext.
    RetryPlain(String),
    /// The whole message failed temporarily.
    TempFail(String, RcptDsn),
    /// The whole message failed permanently.
    Bounce(String, RcptDsn),
    /// The recipients were answered one by one (indices into the recipient list).
    Finished {
        accepted: Option<Accepted>,
        ok: Vec<usize>,
        deferred: Vec<(usize, RcptDsn)>,
        bounced: Vec<(usize, RcptDsn)>,
    },
}

/// Run one session on a connection of its own (QUIT at the end).
pub async fn run(p: &SessionParams<'_>) -> SessionOutcome {
    fresh(p, None).await
}

/// Run one session, on an idle connection to the same destination when there is
/// one (after RSET); after a successful transaction the connection is left idle
/// for the next message instead of being closed. An idle connection that turns out
/// closed or refuses RSET is replaced by a new one, at no cost to the message.
pub(crate) async fn run_reusing(p: &SessionParams<'_>, cache: &ConnCache) -> SessionOutcome {
    if !cache.keeps_idle() {
        return fresh(p, None).await;
    }
    let key = ConnKey::of(p);
    while let Some(mut client) = cache.take(&key).await {
        let secured = client.is_tls();
        // RSET goes in the same pipelined group as the envelope.
        let result = transaction(&mut client, p, secured, true).await;
        if let Err(e) = &result
            && e.stage() == Some(Stage::Rset)
        {
            // Nothing was accepted on it: deliver on another connection.
            tracing::debug!(addr = %p.addr, error = %e, "idle connection failed RSET; connecting anew");
            if !client.is_broken() {
                client.quit().await;
            }
            continue;
        }
        return settle(client, result, p, Some((cache, key))).await;
    }
    fresh(p, Some((cache, key))).await
}

async fn fresh(p: &SessionParams<'_>, keep: Option<(&ConnCache, ConnKey)>) -> SessionOutcome {
    let opts = ConnectOptions {
        timeouts: Timeouts {
            connect: p.timeout,
            command: p.timeout,
            data_end: p.timeout,
        },
        bind: p.bind,
    };
    let mut client = match SmtpClient::connect(p.addr, &opts).await {
        Ok(c) => c,
        Err(e) => return failure(e, p),
    };
    let result = match greet(&mut client, p).await {
        Ok(Ok(secured)) => transaction(&mut client, p, secured, false).await,
        Ok(Err(outcome)) => Ok((outcome, false)),
        Err(e) => Err(e),
    };
    settle(client, result, p, keep).await
}

/// End a session: leave the connection idle when the transaction allows it and
/// there is a cache, else QUIT (unless the connection is broken).
async fn settle(
    client: SmtpClient,
    result: Result<(SessionOutcome, bool), Error>,
    p: &SessionParams<'_>,
    keep: Option<(&ConnCache, ConnKey)>,
) -> SessionOutcome {
    match result {
        Ok((outcome, reusable)) => {
            let left = match keep {
                Some((cache, key)) if reusable => cache.put(key, client),
                _ => Some(client),
            };
            if let Some(client) = left {
                client.quit().await;
            }
            outcome
        }
        Err(e) => {
            if !client.is_broken() {
                client.quit().await;
            }
            failure(e, p)
        }
    }
}

/// EHLO and STARTTLS by policy. `Ok(Err(_))`: the policy ends the session here.
async fn greet(
    client: &mut SmtpClient,
    p: &SessionParams<'_>,
) -> Result<Result<bool, SessionOutcome>, Error> {
    client.ehlo(p.helo).await?;
    let mut secured = false;
    let offered = client.capabilities().has("STARTTLS");
    match &p.tls {
        TlsChoice::Off => {}
        TlsChoice::Required(config) => {
            let Some(config) = config.clone().filter(|_| offered) else {
                let err = if offered {
                    "Host failed TLS verification required by configuration."
                } else {
                    "No TLS available but required by configuration."
                };
                return Ok(Err(temp_internal(err)));
            };
            match client.starttls(config, server_name(p)).await {
                Ok(StartTls::Secured) => secured = true,
                Ok(StartTls::Refused(reply)) => return Ok(Err(reply_failure(&reply, p))),
                Err(Error::Tls(e)) if is_certificate_error(&e) => {
                    return Ok(Err(temp_internal(
                        "Host failed TLS verification required by configuration.",
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        TlsChoice::Opportunistic(config) if offered => {
            match client.starttls(config.clone(), server_name(p)).await {
                Ok(StartTls::Secured) => secured = true,
                // Refused: carry on in plaintext.
                Ok(StartTls::Refused(_)) => {}
                Err(Error::Tls(e)) => return Ok(Err(SessionOutcome::RetryPlain(e.to_string()))),
                Err(e) => return Err(e),
            }
        }
        TlsChoice::Opportunistic(_) => {}
    }
    if secured {
        client.ehlo(p.helo).await?;
    }
    Ok(Ok(secured))
}

/// MAIL, RCPT, DATA. Also says whether the connection may carry another message:
/// only when the message was accepted and no reply announced the end of the
/// connection (421).
async fn transaction(
    client: &mut SmtpClient,
    p: &SessionParams<'_>,
    secured: bool,
    reused: bool,
) -> Result<(SessionOutcome, bool), Error> {
    let caps = client.capabilities();
    let utf8 = caps.has("SMTPUTF8");
    let from = match p.mail_from {
        Some(a) => path(a, utf8),
        None => "<>".to_owned(),
    };
    let rcpts: Vec<String> = p.rcpts.iter().map(|a| path(a, utf8)).collect();
    let Ok(from) = p.mail_params.mail_from(from, &rcpts, caps) else {
        // Nothing was sent for this message: the connection is as good as before.
        return Ok((smtputf8_not_offered(p), true));
    };
    // DATA goes in the same group as MAIL and RCPT (with PIPELINING): one round
    // trip less per message.
    let (replies, data_pending) = if reused {
        client.reset_envelope_then_data(&from, &rcpts).await?
    } else {
        client.envelope_then_data(&from, &rcpts).await?
    };
    let mut ok = Vec::new();
    let mut deferred = Vec::new();
    let mut bounced = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        match reply.code / 100 {
            2 => ok.push(i),
            4 => deferred.push((i, RcptDsn::from_reply(reply, p.exchange, true))),
            5 => bounced.push((i, RcptDsn::from_reply(reply, p.exchange, true))),
            _ => {
                if data_pending {
                    // The server waits for a message this session will not send.
                    client.abandon();
                }
                return Ok((reply_failure(reply, p), false));
            }
        }
    }
    if ok.is_empty() {
        let outcome = SessionOutcome::Finished {
            accepted: None,
            ok,
            deferred,
            bounced,
        };
        return Ok((outcome, false));
    }
    let reply = client.message_bytes(p.message).await?;
    let reusable = replies.iter().all(|r| r.code != 421) && reply.code / 100 == 2;
    let outcome = SessionOutcome::Finished {
        accepted: Some(Accepted {
            response: ParsedReply::new(&reply).text,
            secured,
        }),
        ok,
        deferred,
        bounced,
    };
    Ok((outcome, reusable))
}

/// Map a client error to what it means for the message.
fn failure(e: Error, p: &SessionParams<'_>) -> SessionOutcome {
    match e {
        Error::Rejected { reply, .. } => reply_failure(&reply, p),
        Error::Protocol { detail, .. } => {
            let err = format!("Unrecognized response from upstream server: {detail}");
            SessionOutcome::Bounce(err.clone(), RcptDsn::internal(550, 5, 1, &err))
        }
        Error::Invalid(detail) => {
            SessionOutcome::Bounce(detail.clone(), RcptDsn::internal(550, 5, 1, &detail))
        }
        other => SessionOutcome::NextAddress(format!("{}: {other}", p.addr)),
    }
}

/// A reply to the greeting, HELO, STARTTLS, MAIL, DATA or the final dot: 5xx bounces
/// the message, anything else unexpected defers it (`Upstream error: …`).
fn reply_failure(reply: &Reply, p: &SessionParams<'_>) -> SessionOutcome {
    let parsed = ParsedReply::new(reply);
    let dsn = RcptDsn::from_reply(reply, p.exchange, false);
    if reply.code / 100 == 5 {
        SessionOutcome::Bounce(parsed.reason(), dsn)
    } else {
        SessionOutcome::TempFail(format!("Upstream error: {}", parsed.reason()), dsn)
    }
}

/// The message needs SMTPUTF8 and this MX does not offer it: never sent without it
/// (RFC 6531 3.4), a permanent failure `5.6.7` as Postfix bounces it.
fn smtputf8_not_offered(p: &SessionParams<'_>) -> SessionOutcome {
    let err = format!(
        "SMTPUTF8 is required, but was not offered by host {}",
        p.exchange
    );
    let mut dsn = RcptDsn::internal(554, 6, 7, &err);
    dsn.remote_mta = Some(p.exchange.to_owned());
    SessionOutcome::Bounce(err, dsn)
}

fn temp_internal(err: &str) -> SessionOutcome {
    SessionOutcome::TempFail(err.to_owned(), RcptDsn::internal(450, 7, 10, err))
}

/// `<user@host>`: the host as written when the server speaks SMTPUTF8, else lower
/// case and punycode.
fn path(a: &Address, utf8: bool) -> String {
    let host = match (&a.host, &a.original_host) {
        (_, Some(orig)) if utf8 => orig.clone(),
        (Some(h), _) if !h.is_ascii() => Name::from_utf8(h)
            .map(|n| n.to_ascii().trim_end_matches('.').to_owned())
            .unwrap_or_else(|_| h.clone()),
        (Some(h), _) => h.clone(),
        (None, _) => return format!("<{}>", a.user),
    };
    format!("<{}@{}>", a.user, host)
}

fn server_name(p: &SessionParams<'_>) -> ServerName<'static> {
    ServerName::try_from(p.exchange.to_owned())
        .unwrap_or_else(|_| ServerName::IpAddress(p.addr.ip().into()))
}

fn is_certificate_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let a = Address::parse("User@Example.COM").unwrap();
        assert_eq!(path(&a, false), "<User@example.com>");
        assert_eq!(path(&a, true), "<User@Example.COM>");
        let idn = Address::parse("u@bücher.example").unwrap();
        assert_eq!(path(&idn, false), "<u@xn--bcher-kva.example>");
        assert_eq!(path(&idn, true), "<u@bücher.example>");
    }
}
