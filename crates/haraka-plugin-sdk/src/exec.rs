//! Running a hook's future: first on the calling thread, then, if it has to wait,
//! on the SDK's own tokio runtime; and answering the host exactly once.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Waker};

use futures_util::FutureExt;
use haraka_plugin_api::{Connection, Hook, Outcome, Plugin};
use haraka_plugin_wire::{self as wire, PLUGIN_ERROR_TEXT, Target};
use tokio::runtime::Runtime;

use crate::{ffi, host};

/// Answers one hook call exactly once: by [`Completer::finish`], or with a 4xx
/// when dropped unanswered (a panic unwinding through it, a cancelled task).
pub(crate) struct Completer {
    token: u64,
    done: bool,
}

impl Completer {
    pub(crate) fn new(token: u64) -> Completer {
        Completer { token, done: false }
    }

    pub(crate) fn finish(mut self, outcome: &Outcome, changes: &[u8], body: Option<&[u8]>) {
        self.done = true;
        host::complete(self.token, outcome, changes, body);
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            host::complete(
                self.token,
                &Outcome::deny_soft(PLUGIN_ERROR_TEXT),
                &[],
                None,
            );
        }
    }
}

/// The runtime that drives hooks that wait; `None` if it could not be built.
fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("haraka-plugin")
                .enable_all()
                .build()
                .map_err(|e| {
                    host::log(
                        haraka_plugin_abi::HK_LOG_ERROR,
                        &format!("plugin runtime: {e}"),
                    )
                })
                .ok()
        })
        .as_ref()
}

/// What a finished hook sends back.
struct Answer {
    outcome: Outcome,
    changes: Vec<u8>,
    body: Option<Vec<u8>>,
}

fn body_fingerprint(conn: &Connection) -> Option<(usize, u64)> {
    conn.transaction.as_ref().map(|t| {
        let mut h = DefaultHasher::new();
        t.message.body.hash(&mut h);
        (t.message.body.len(), h.finish())
    })
}

async fn run_target(plugin: Arc<dyn Plugin>, hook: Hook, target: Target) -> Answer {
    match target {
        Target::Conn { mut conn, args } => {
            let before = body_fingerprint(&conn);
            let outcome = plugin.hook(hook, &mut conn, &args).await;
            let body = if body_fingerprint(&conn) != before {
                conn.transaction
                    .as_mut()
                    .map(|t| std::mem::take(&mut t.message.body))
            } else {
                None
            };
            let changes = wire::encode_conn_changes(&mut conn);
            Answer {
                outcome,
                changes,
                body,
            }
        }
        Target::Mail { mut mail, args } => {
            let outcome = plugin.outbound_hook(hook, &mut mail, &args).await;
            Answer {
                outcome,
                changes: wire::encode_mail_changes(&mail),
                body: None,
            }
        }
    }
}

/// Runs the hook: polled once here; if it is not ready, the rest runs on the SDK's
/// runtime. The call is answered when the future finishes, or never if it never
/// does (the server's timeout answers the client then).
pub(crate) fn run(
    plugin: Arc<dyn Plugin>,
    name: Arc<str>,
    hook: Hook,
    target: Target,
    completer: Completer,
) {
    let task = async move {
        match AssertUnwindSafe(run_target(plugin, hook, target))
            .catch_unwind()
            .await
        {
            Ok(answer) => {
                completer.finish(&answer.outcome, &answer.changes, answer.body.as_deref())
            }
            Err(panic) => {
                let panic = ffi::panic_text(&*panic);
                host::log(
                    haraka_plugin_abi::HK_LOG_ERROR,
                    &format!("plugin {name} panicked on hook {hook}: {panic}"),
                );
                completer.finish(&Outcome::deny_soft(PLUGIN_ERROR_TEXT), &[], None);
            }
        }
    };
    let rt = runtime();
    let _entered = rt.map(Runtime::enter);
    let mut task = Box::pin(task);
    let mut cx = Context::from_waker(Waker::noop());
    if task.as_mut().poll(&mut cx).is_pending() {
        match rt {
            // Spawning polls the task again at once, which registers its real waker.
            Some(rt) => drop(rt.spawn(task)),
            // Without a runtime the task is dropped and its completer answers 4xx.
            None => drop(task),
        }
    }
}
