//! Outbound delivery for haraka-rs: Haraka's outbound queue and its delivery engine.
//!
//! Owns: turning a relayed message into durable queue items (one per recipient domain,
//! `always_split` honoured, `Received` / `Message-Id` / `Date` as Haraka adds them),
//! the scheduler (`concurrency_max`, Haraka's [`RetrySchedule`], SIGHUP-style
//! "retry now"), MX selection (the `get_mx` hook, DNS MX, implicit MX, null MX,
//! loop protection, preference order and fallback) behind the [`MxResolver`] trait,
//! the SMTP session through `haraka-client` (EHLO/HELO, STARTTLS policy, pipelined
//! envelope, per-recipient results), RFC 3464 bounces from `outbound.bounce_message`,
//! and the outbound hooks `send_email`, `get_mx`, `delivered`, `deferred`, `bounce`
//! (plus `pre_send_trans_email`). Two economies Haraka does not make: a message
//! queued here reaches its first attempt in memory instead of being read back from
//! its file, and a connection that just delivered a message waits briefly for the
//! next message to the same MX address.
//!
//! It must never answer a message as queued before it is durable, never bounce to
//! the null sender, never let one message (a bad file, a DNS failure, a TLS or
//! protocol error, a panic) affect another, and never speak SMTP except through
//! `haraka-client`.

pub mod bounce;
pub mod config;
mod conn_cache;
pub mod dsn;
mod engine;
pub mod enqueue;
mod handoff;
mod job;
pub mod mx;
mod queue;
pub mod resolver;
mod retry;
pub mod session;
pub mod util;

pub use bounce::BounceTemplates;
pub use config::OutboundConfig;
pub use engine::{Outbound, OutboundBuilder, Status};
pub use haraka_plugin_api::BoxFuture;
pub use haraka_tls::OutboundTls;
pub use queue::Event;
pub use resolver::{HickoryResolver, LookupError, MxRecord, MxResolver, StaticResolver};
pub use retry::RetrySchedule;

/// Why the engine could not do something.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Queue(#[from] haraka_queue::QueueError),
    #[error("DNS resolver: {0}")]
    Resolver(#[from] LookupError),
    #[error("{0}")]
    Invalid(String),
    #[error("the outbound engine is not running")]
    Stopped,
}

/// Hooks that do nothing (every hook answers CONT): outbound without plugins.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl haraka_plugin_api::OutboundHooks for NoHooks {
    fn run<'a>(
        &'a self,
        _hook: haraka_plugin_api::Hook,
        _mail: &'a mut haraka_plugin_api::OutboundMail,
        _args: &'a haraka_plugin_api::OutboundArgs,
    ) -> BoxFuture<'a, haraka_plugin_api::Outcome> {
        haraka_plugin_api::ready(haraka_plugin_api::Outcome::cont())
    }
}
