//! What every haraka-rs plugin sees.
//!
//! Owns [`Register`] and [`Hooks`] (Haraka's `register_hook`), which built-in and
//! cdylib plugins alike implement; the [`Plugin`] trait the hook runner drives; the
//! outbound hook arguments; and the traits through which the server and the
//! outbound engine meet without depending on each other. It re-exports the
//! protocol types plugins work with from `haraka-smtp`.
//!
//! Safe code only; it must never do network IO or depend on an async runtime.

mod hooks;
mod outbound;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use haraka_config::{ConfigDir, ConfigErrors, Diag, Ini};
pub use haraka_smtp::{
    Action, Address, ConnAction, Connection, Hello, HelloVerb, Hook, HookArgs, Local, Message, Msg,
    Notes, Outcome, RcptCount, Remote, Results, TlsInfo, TlsUpgrade, Transaction,
};
pub use hooks::{
    Answer, Hooks, Later, Now, OnArgs, OnCommand, OnConn, OnGetMx, OnHello, OnMail, OnMsg,
    OnOutbound, OnOutboundArgs, OnRcpt, Priority, Register, plugin,
};
pub use outbound::{MxHost, OutboundArgs, OutboundHooks, OutboundMail, OutboundQueue};

/// A boxed future that can move between threads (plugins are called from any worker).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A hook a plugin registers for, with Haraka's priority (−100 … 100, lower runs first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registration {
    pub hook: Hook,
    pub priority: i32,
}

impl Registration {
    pub fn new(hook: Hook) -> Registration {
        Registration { hook, priority: 0 }
    }
    pub fn with_priority(hook: Hook, priority: i32) -> Registration {
        Registration {
            hook,
            priority: priority.clamp(-100, 100),
        }
    }
}

/// A plugin as the hook runner drives it: what [`plugin`] makes of a [`Register`].
///
/// A hook answers with an [`Outcome`] (Haraka's `next(code, msg)`). Returning is
/// calling `next` exactly once; the server enforces the timeout and turns a panic
/// into a 4xx for that command.
pub trait Plugin: Send + Sync + 'static {
    /// Haraka's name, as written in `config/plugins` (`queue/smtp_forward`).
    fn name(&self) -> &str;

    /// The hooks this plugin runs on, in registration order.
    fn hooks(&self) -> Vec<Registration>;

    /// Run an SMTP-session hook.
    fn hook<'a>(
        &'a self,
        hook: Hook,
        conn: &'a mut Connection,
        args: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome>;

    /// Run an outbound hook (`send_email`, `get_mx`, `delivered`, `deferred`, `bounce`).
    fn outbound_hook<'a>(
        &'a self,
        _hook: Hook,
        _mail: &'a mut OutboundMail,
        _args: &'a OutboundArgs,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async { Outcome::cont() })
    }

    /// Called once on shutdown.
    fn shutdown(&self) {}
}

/// What a plugin gets when it is created.
pub struct PluginInit<'a> {
    /// The name from the plugin list.
    pub name: &'a str,
    /// The root's config directory.
    pub config: &'a ConfigDir,
}

/// Why a plugin could not be created: a start-up error.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Other(String),
}

/// Creates a built-in plugin.
pub type PluginFactory = fn(&PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError>;

/// A ready outcome, for plugins whose hooks do not await anything.
pub fn ready<'a>(outcome: Outcome) -> BoxFuture<'a, Outcome> {
    Box::pin(std::future::ready(outcome))
}
