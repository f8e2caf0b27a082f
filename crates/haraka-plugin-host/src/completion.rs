//! The host's side of hook answers: the API table handed to plugins, tokens that
//! are consumed once, and the `log` and `complete` callbacks.
//!
//! A token is a number, never reused. Registering one gives a receiver; the first
//! `complete` with that token takes the entry out and sends the answer; any later
//! `complete` (a second answer, or one after the server gave up on the hook) finds
//! nothing, is counted, logged and ignored. Nothing a plugin passes is trusted to
//! be a pointer into host memory, so no completion can touch freed state.

#![allow(unsafe_code, reason = "the host's C callbacks read plugin-lent slices")]

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use haraka_plugin_abi::{
    ABI_MAJOR, ABI_MINOR, HK_DENYSOFT, HK_LOG_DEBUG, HK_LOG_ERROR, HK_LOG_INFO, HK_LOG_TRACE,
    HK_LOG_WARN, HkBytes, HkHostApi, HkOutcome,
};
use haraka_plugin_api::Hook;
use tokio::sync::oneshot;
use tracing::level_filters::LevelFilter;

/// A plugin's answer, copied out of the `complete` call.
#[derive(Debug)]
pub(crate) struct Completed {
    pub(crate) action: u32,
    pub(crate) reply_code: u32,
    pub(crate) reply: Vec<u8>,
    pub(crate) changes: Vec<u8>,
    pub(crate) body: Option<Vec<u8>>,
}

struct Waiting {
    tx: oneshot::Sender<Completed>,
    plugin: Arc<str>,
    hook: Hook,
}

/// How many finished tokens are remembered to name the plugin of a stray answer.
const REMEMBERED: usize = 1024;

struct Registry {
    next: u64,
    waiting: HashMap<u64, Waiting>,
    finished: VecDeque<(u64, Arc<str>, Hook)>,
}

impl Registry {
    fn remember(&mut self, token: u64, plugin: Arc<str>, hook: Hook) {
        if self.finished.len() == REMEMBERED {
            self.finished.pop_front();
        }
        self.finished.push_back((token, plugin, hook));
    }
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        next: 1,
        waiting: HashMap::new(),
        finished: VecDeque::new(),
    })
});

static IGNORED: AtomicU64 = AtomicU64::new(0);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Answers that arrived for a call already answered or given up on (process-wide).
pub fn ignored_completions() -> u64 {
    IGNORED.load(Ordering::SeqCst)
}

/// One outstanding hook call; dropping it (the hook's future finished or was
/// abandoned by the server's timeout) retires the token.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) token: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut reg = registry();
        if let Some(w) = reg.waiting.remove(&self.token) {
            tracing::debug!(plugin = %w.plugin, hook = %w.hook, "hook abandoned before the plugin answered");
            reg.remember(self.token, w.plugin, w.hook);
        }
    }
}

/// A fresh token for a call of `plugin`'s `hook`.
pub(crate) fn register(plugin: Arc<str>, hook: Hook) -> (Ticket, oneshot::Receiver<Completed>) {
    let (tx, rx) = oneshot::channel();
    let mut reg = registry();
    let token = reg.next;
    reg.next += 1;
    reg.waiting.insert(token, Waiting { tx, plugin, hook });
    (Ticket { token }, rx)
}

/// The table every plugin gets (built once, static afterwards).
pub(crate) fn host_api() -> &'static HkHostApi {
    static API: OnceLock<HkHostApi> = OnceLock::new();
    API.get_or_init(|| HkHostApi {
        struct_size: size_of::<HkHostApi>() as u32,
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        max_log_level: match LevelFilter::current() {
            LevelFilter::OFF => 0,
            LevelFilter::ERROR => HK_LOG_ERROR,
            LevelFilter::WARN => HK_LOG_WARN,
            LevelFilter::INFO => HK_LOG_INFO,
            LevelFilter::DEBUG => HK_LOG_DEBUG,
            _ => HK_LOG_TRACE,
        },
        log: Some(log),
        complete: Some(complete),
    })
}

unsafe extern "C" fn log(level: u32, plugin: HkBytes, message: HkBytes) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: both slices are lent for the duration of this call (ABI rule).
        let (plugin, message) = unsafe { (plugin.as_slice(), message.as_slice()) };
        let plugin = String::from_utf8_lossy(plugin);
        let message = String::from_utf8_lossy(message);
        match level {
            HK_LOG_ERROR => tracing::error!(target: "haraka_plugin", plugin = %plugin, "{message}"),
            HK_LOG_WARN => tracing::warn!(target: "haraka_plugin", plugin = %plugin, "{message}"),
            HK_LOG_INFO => tracing::info!(target: "haraka_plugin", plugin = %plugin, "{message}"),
            HK_LOG_DEBUG => tracing::debug!(target: "haraka_plugin", plugin = %plugin, "{message}"),
            _ => tracing::trace!(target: "haraka_plugin", plugin = %plugin, "{message}"),
        }
    }));
}

/// Copies an answer out of the plugin's `HkOutcome`.
///
/// # Safety
/// `outcome` is NULL or points to an `HkOutcome` whose first field is its size and
/// whose slices are readable for the duration of the call.
unsafe fn read(outcome: *const HkOutcome) -> Result<Completed, String> {
    if outcome.is_null() {
        return Err("NULL outcome".into());
    }
    // SAFETY: non-NULL; every version of the struct starts with its u32 size.
    let size = unsafe { outcome.cast::<u32>().read() } as usize;
    if size < size_of::<HkOutcome>() {
        return Err(format!(
            "outcome of {size} bytes, expected {}",
            size_of::<HkOutcome>()
        ));
    }
    // SAFETY: the plugin says the whole struct is there; its slices are lent for
    // the call and copied here.
    unsafe {
        let o = &*outcome;
        Ok(Completed {
            action: o.action,
            reply_code: o.reply_code,
            reply: o.reply.as_slice().to_vec(),
            changes: o.changes.as_slice().to_vec(),
            body: (o.body_replaced != 0).then(|| o.body.as_slice().to_vec()),
        })
    }
}

unsafe extern "C" fn complete(token: u64, outcome: *const HkOutcome) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let mut reg = registry();
        let Some(waiting) = reg.waiting.remove(&token) else {
            let known = reg.finished.iter().find(|(t, _, _)| *t == token).cloned();
            drop(reg);
            IGNORED.fetch_add(1, Ordering::SeqCst);
            match known {
                Some((_, plugin, hook)) => tracing::warn!(
                    %plugin, %hook,
                    "plugin answered a hook call that was already answered or timed out; ignored"
                ),
                None => tracing::warn!(token, "plugin answered an unknown hook call; ignored"),
            }
            return;
        };
        reg.remember(token, waiting.plugin.clone(), waiting.hook);
        drop(reg);
        // SAFETY: the ABI lends `outcome` and its slices for this call.
        let completed = unsafe { read(outcome) }.unwrap_or_else(|why| {
            tracing::error!(plugin = %waiting.plugin, hook = %waiting.hook, "malformed answer: {why}");
            Completed {
                action: HK_DENYSOFT,
                reply_code: 0,
                reply: crate::PLUGIN_ERROR_TEXT.as_bytes().to_vec(),
                changes: Vec::new(),
                body: None,
            }
        });
        // The receiver is gone only if the hook was abandoned at this very moment.
        let _ = waiting.tx.send(completed);
    }));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn answer(action: u32) -> HkOutcome {
        HkOutcome {
            struct_size: size_of::<HkOutcome>() as u32,
            action,
            reply_code: 0,
            body_replaced: 0,
            reply: HkBytes::EMPTY,
            changes: HkBytes::EMPTY,
            body: HkBytes::EMPTY,
        }
    }

    #[test]
    fn a_token_is_answered_once_and_then_ignored() {
        let (ticket, mut rx) = register("t".into(), Hook::Rcpt);
        let before = ignored_completions();
        // SAFETY: a valid outcome lent for the call.
        unsafe { complete(ticket.token, &answer(902)) };
        // SAFETY: as above.
        unsafe { complete(ticket.token, &answer(906)) };
        assert_eq!(rx.try_recv().unwrap().action, 902, "the first answer wins");
        assert!(ignored_completions() > before);
    }

    #[test]
    fn an_abandoned_token_ignores_its_late_answer_and_garbage_is_refused() {
        let (ticket, _rx) = register("t".into(), Hook::Helo);
        let token = ticket.token;
        drop(ticket);
        let before = ignored_completions();
        // SAFETY: as above.
        unsafe { complete(token, &answer(906)) };
        assert!(ignored_completions() > before);
        // SAFETY: an unknown token and a NULL outcome are both handled.
        unsafe { complete(u64::MAX, std::ptr::null()) };

        let (ticket, mut rx) = register("t".into(), Hook::Helo);
        let mut short = answer(906);
        short.struct_size = 4;
        // SAFETY: a struct lent for the call, claiming to be too short.
        unsafe { complete(ticket.token, &short) };
        assert_eq!(rx.try_recv().unwrap().action, HK_DENYSOFT);
    }
}
