//! Hooks for the ABI test fixtures, which must break the protocol on purpose.
//! Not for plugins: a plugin answers by returning from its hook.

use std::cell::Cell;

use haraka_plugin_api::Outcome;

thread_local! {
    static TOKEN: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` with `token` as the current call's token on this thread.
pub(crate) fn with_token(token: u64, f: impl FnOnce()) {
    let outer = TOKEN.with(|t| t.replace(Some(token)));
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TOKEN.with(|t| t.set(self.0));
        }
    }
    let _restore = Restore(outer);
    f();
}

/// The token of the hook call whose synchronous part runs on this thread.
pub fn current_token() -> Option<u64> {
    TOKEN.with(Cell::get)
}

/// Waits once: the rest of the hook runs on the SDK's runtime, after a wake-up.
pub async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await;
}

/// Answers call `token` directly, bypassing the once-only guard of the SDK.
pub fn complete_raw(token: u64, outcome: &Outcome) {
    crate::host::complete(token, outcome, &[], None);
}
