//! The outbound side of the plugin API: queued mail as plugins see it (Haraka's
//! `hmail`), the outbound hook arguments, and the traits that connect the SMTP server,
//! the outbound engine and the hook runner.

use std::net::IpAddr;

use haraka_smtp::{Address, Connection, Hook, Notes, Outcome};

use crate::BoxFuture;

/// A mail exchanger to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Host name (or an IP literal).
    pub exchange: String,
    /// MX preference; lower is tried first.
    pub priority: u16,
    /// Port, 25 unless a plugin says otherwise.
    pub port: u16,
    /// Resolved address, when known.
    pub ip: Option<IpAddr>,
}

/// A queued message for one destination domain (Haraka's `hmail`).
#[derive(Debug, Clone)]
pub struct OutboundMail {
    /// Queue id (`<tuuid>.<k>`).
    pub id: String,
    pub domain: String,
    /// `None` is the null sender.
    pub mail_from: Option<Address>,
    pub rcpt_to: Vec<Address>,
    pub notes: Notes,
    /// Delivery attempts that failed temporarily so far.
    pub attempts: u32,
    /// Set by a `get_mx` plugin that answers OK: where to deliver instead of DNS.
    pub mx: Option<Vec<MxHost>>,
}

/// Arguments of the outbound hooks.
#[derive(Debug, Clone)]
pub enum OutboundArgs {
    /// send_email, pre_send_trans_email.
    None,
    GetMx {
        domain: String,
    },
    Delivered {
        host: String,
        ip: String,
        port: u16,
        response: String,
        ok_recips: Vec<Address>,
        secured: bool,
    },
    Deferred {
        delay_secs: u64,
        err: String,
    },
    Bounce {
        err: String,
    },
}

/// Runs outbound hooks through the plugin chain (implemented by the server's runner).
pub trait OutboundHooks: Send + Sync {
    fn run<'a>(
        &'a self,
        hook: Hook,
        mail: &'a mut OutboundMail,
        args: &'a OutboundArgs,
    ) -> BoxFuture<'a, Outcome>;
}

/// Where the server hands a relayed message when no `queue_outbound` plugin took it
/// (Haraka's outbound queue). Answers `Accept` with the reply text once the message is
/// durable, or a rejection saying why it is not.
pub trait OutboundQueue: Send + Sync {
    fn enqueue<'a>(&'a self, conn: &'a Connection) -> BoxFuture<'a, Outcome>;
}
