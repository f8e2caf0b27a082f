//! The host's API table, kept for the life of the process, and safe wrappers
//! around its two callbacks.

#![allow(unsafe_code, reason = "calls through the host's function pointers")]

use std::sync::OnceLock;

use haraka_plugin_abi::{HkBytes, HkHostApi, HkOutcome};
use haraka_plugin_api::Outcome;

static HOST: OnceLock<HkHostApi> = OnceLock::new();
static LOG_NAME: OnceLock<String> = OnceLock::new();

/// Keeps the host's table (the first one wins: there is one host per process).
pub(crate) fn install(api: HkHostApi, plugin_name: &str) {
    let _ = HOST.set(api);
    let _ = LOG_NAME.set(plugin_name.to_owned());
}

/// The most verbose level the host records (0 before `create`).
pub(crate) fn max_log_level() -> u32 {
    HOST.get().map_or(0, |h| h.max_log_level)
}

/// Sends one line to the host's log; dropped before `create` has run.
pub(crate) fn log(level: u32, message: &str) {
    let Some(api) = HOST.get() else { return };
    let Some(log) = api.log else { return };
    let name = LOG_NAME.get().map_or("", String::as_str);
    // SAFETY: `log` comes from the host's static table (checked at `create`); both
    // slices are borrowed for the duration of the call, as the ABI requires.
    unsafe {
        log(
            level,
            HkBytes::from_slice(name.as_bytes()),
            HkBytes::from_slice(message.as_bytes()),
        )
    };
}

/// Answers hook call `token`. The host ignores (and logs) any answer after the first.
pub(crate) fn complete(token: u64, outcome: &Outcome, changes: &[u8], body: Option<&[u8]>) {
    let Some(complete) = HOST.get().and_then(|h| h.complete) else {
        return;
    };
    let (reply_code, reply) = match &outcome.msg {
        Some(m) => (u32::from(m.code.unwrap_or(0)), m.lines.join("\n")),
        None => (0, String::new()),
    };
    let answer = HkOutcome {
        struct_size: size_of::<HkOutcome>() as u32,
        action: u32::from(outcome.action.code()),
        reply_code,
        body_replaced: u32::from(body.is_some()),
        reply: HkBytes::from_slice(reply.as_bytes()),
        changes: HkBytes::from_slice(changes),
        body: body.map_or(HkBytes::EMPTY, HkBytes::from_slice),
    };
    // SAFETY: `complete` comes from the host's static table; `answer` and the
    // slices it points to live until the call returns, which is all the ABI asks.
    unsafe { complete(token, &answer) };
}
