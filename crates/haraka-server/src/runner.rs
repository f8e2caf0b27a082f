//! The hook runner: Haraka's `plugins.run_hooks`.
//!
//! Plugins run in the order of the plugin list, sorted (stably) by priority. The
//! first answer other than `CONT` ends the chain, except on `connect_init` and
//! `disconnect` where every plugin runs. A rejection first runs the `deny` hook,
//! which may cancel it. Every call is bounded by the plugin's timeout; a timeout
//! or a panic becomes a 4xx for that command and never takes the server down.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use haraka_plugin_api::{
    Action, BoxFuture, Connection, Hook, HookArgs, Msg, OutboundArgs, OutboundHooks, OutboundMail,
    Outcome, Plugin,
};

/// A plugin with the timeout that applies to its hooks.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub plugin: Arc<dyn Plugin>,
    /// `None` disables the timer (Haraka's `0`).
    pub timeout: Option<Duration>,
}

#[derive(Clone)]
struct Entry {
    plugin: Arc<dyn Plugin>,
    name: String,
    priority: i32,
    timeout: Option<Duration>,
}

/// Every registered hook of every plugin, in running order.
#[derive(Clone, Default)]
pub struct Pipeline {
    chains: HashMap<Hook, Vec<Entry>>,
    plugins: Vec<Arc<dyn Plugin>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Pipeline {
    /// Build the chains from plugins in plugin-list order.
    pub fn new(plugins: Vec<LoadedPlugin>) -> Pipeline {
        let mut chains: HashMap<Hook, Vec<Entry>> = HashMap::new();
        for lp in &plugins {
            for reg in lp.plugin.hooks() {
                chains.entry(reg.hook).or_default().push(Entry {
                    plugin: lp.plugin.clone(),
                    name: lp.plugin.name().to_owned(),
                    priority: reg.priority.clamp(-100, 100),
                    timeout: lp.timeout,
                });
            }
        }
        for chain in chains.values_mut() {
            // Stable: equal priorities keep plugin-list order.
            chain.sort_by_key(|e| e.priority);
        }
        Pipeline {
            chains,
            plugins: plugins.into_iter().map(|lp| lp.plugin).collect(),
        }
    }

    /// The plugins, in plugin-list order.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// `(plugin name, priority)` in running order for `hook` (for `haraka-rs -o`).
    pub fn order(&self, hook: Hook) -> Vec<(String, i32)> {
        self.chains
            .get(&hook)
            .map(|c| c.iter().map(|e| (e.name.clone(), e.priority)).collect())
            .unwrap_or_default()
    }

    /// Whether any plugin registered for `hook`.
    pub fn has(&self, hook: Hook) -> bool {
        self.chains.get(&hook).is_some_and(|c| !c.is_empty())
    }

    /// Run `hook` for an SMTP session.
    pub async fn run(&self, hook: Hook, conn: &mut Connection, args: &HookArgs) -> Outcome {
        let Some(chain) = self.chains.get(&hook) else {
            return Outcome::cont();
        };
        for entry in chain {
            if is_skipped(conn, &entry.name) {
                continue;
            }
            let outcome = call_hook(entry, hook, conn, args).await;
            tracing::debug!(plugin = %entry.name, %hook, result = %outcome.action, "hook");
            if hook.runs_all() || outcome.action == Action::Cont {
                continue;
            }
            if outcome.action.is_deny() && hook != Hook::Deny {
                let deny_args = HookArgs::Deny {
                    action: outcome.action,
                    msg: outcome.msg.clone(),
                    plugin: entry.name.clone(),
                    hook,
                };
                let verdict = Box::pin(self.run(Hook::Deny, conn, &deny_args)).await;
                if verdict.action == Action::Accept {
                    tracing::info!(plugin = %entry.name, %hook, "rejection cancelled by a deny plugin");
                    continue;
                }
            }
            return outcome;
        }
        Outcome::cont()
    }

    /// Run an outbound hook for a queued message.
    pub async fn run_outbound(
        &self,
        hook: Hook,
        mail: &mut OutboundMail,
        args: &OutboundArgs,
    ) -> Outcome {
        let Some(chain) = self.chains.get(&hook) else {
            return Outcome::cont();
        };
        for entry in chain {
            let fut = AssertUnwindSafe(entry.plugin.outbound_hook(hook, mail, args));
            let outcome = guard(entry, hook, fut).await;
            if outcome.action != Action::Cont {
                return outcome;
            }
        }
        Outcome::cont()
    }

    /// Tell every plugin the server is going down.
    pub fn shutdown(&self) {
        for p in &self.plugins {
            if std::panic::catch_unwind(AssertUnwindSafe(|| p.shutdown())).is_err() {
                tracing::error!(plugin = p.name(), "plugin panicked in shutdown");
            }
        }
    }
}

impl OutboundHooks for Pipeline {
    fn run<'a>(
        &'a self,
        hook: Hook,
        mail: &'a mut OutboundMail,
        args: &'a OutboundArgs,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(self.run_outbound(hook, mail, args))
    }
}

fn is_skipped(conn: &Connection, name: &str) -> bool {
    conn.transaction
        .as_ref()
        .is_some_and(|t| t.skip_plugins.iter().any(|s| s == name))
}

async fn call_hook(entry: &Entry, hook: Hook, conn: &mut Connection, args: &HookArgs) -> Outcome {
    // The plugin's synchronous part runs on the first poll, inside the panic guard.
    let fut = AssertUnwindSafe(async move { entry.plugin.hook(hook, conn, args).await });
    guard(entry, hook, fut).await
}

async fn guard<F>(entry: &Entry, hook: Hook, fut: AssertUnwindSafe<F>) -> Outcome
where
    F: std::future::Future<Output = Outcome>,
{
    let fut = fut.catch_unwind();
    let result = match entry.timeout {
        Some(limit) => match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(
                    plugin = %entry.name, %hook,
                    "Plugin {} timed out on hook {} - make sure it calls the callback",
                    entry.name, hook
                );
                return Outcome::plugin_timeout();
            }
        },
        None => fut.await,
    };
    match result {
        Ok(outcome) => outcome,
        Err(_) => panicked(entry, hook),
    }
}

fn panicked(entry: &Entry, hook: Hook) -> Outcome {
    tracing::error!(plugin = %entry.name, %hook, "plugin panicked; answering with a temporary failure");
    Outcome::new(
        Action::DenySoft,
        Some(Msg::text("Internal error in plugin, try again later")),
    )
}
