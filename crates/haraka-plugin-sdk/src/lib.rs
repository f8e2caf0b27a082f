//! Write haraka-rs plugins as cdylibs.
//!
//! A plugin author implements the same [`Plugin`] trait as the built-in plugins,
//! adds [`NewPlugin`] (how to build it from its config), and writes
//! `export_plugin!(MyPlugin);` in a crate built with `crate-type = ["cdylib"]`.
//! The SDK owns everything on the plugin's side of the ABI: the exported entry
//! symbol and vtable, rebuilding a [`Connection`] from the host's view and sending
//! the plugin's edits back, running the hook's future (on the calling thread, then
//! on the SDK's own runtime if it has to wait), answering every call exactly once,
//! forwarding `tracing` events and panics to the host's log, and config files that
//! reload when they change ([`config`]).
//!
//! ```
//! use haraka_plugin_sdk::{
//!     BoxFuture, Connection, Hook, HookArgs, NewPlugin, Outcome, Plugin, PluginError,
//!     PluginInit, Registration, export_plugin, ready,
//! };
//!
//! pub struct NoBob;
//!
//! impl NewPlugin for NoBob {
//!     fn new(_init: &PluginInit<'_>) -> Result<NoBob, PluginError> {
//!         Ok(NoBob)
//!     }
//! }
//!
//! impl Plugin for NoBob {
//!     fn name(&self) -> &str {
//!         "no_bob"
//!     }
//!     fn hooks(&self) -> Vec<Registration> {
//!         vec![Registration::new(Hook::Rcpt)]
//!     }
//!     fn hook<'a>(&'a self, _: Hook, _: &'a mut Connection, args: &'a HookArgs) -> BoxFuture<'a, Outcome> {
//!         match args {
//!             HookArgs::Rcpt { to, .. } if to.user == "bob" => ready(Outcome::deny("no Bob here")),
//!             _ => ready(Outcome::cont()),
//!         }
//!     }
//! }
//!
//! export_plugin!(NoBob);
//! # fn main() {}
//! ```
//!
//! It must never let a panic unwind into the host (every entry catches it and a
//! hook that panics answers 4xx), never hand the host memory to free, and never
//! keep a pointer the host lent it beyond the call.

pub mod config;
mod exec;
mod ffi;
mod host;
mod log;
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;

pub use haraka_plugin_abi as abi;
pub use haraka_plugin_api as api;
pub use haraka_plugin_api::{
    Action, Address, BoxFuture, ConfigDir, Connection, Hook, HookArgs, Ini, Msg, Notes,
    OutboundArgs, OutboundMail, Outcome, Plugin, PluginError, PluginInit, Registration, Results,
    Transaction, ready,
};
pub use {serde_json, tracing};

/// How a plugin is built from its name and config directory (the constructor
/// `export_plugin!` calls, and what [`factory`] wraps for built-in use).
pub trait NewPlugin: Plugin + Sized {
    /// Read the plugin's config and build it; an error is a start-up error.
    fn new(init: &PluginInit<'_>) -> Result<Self, PluginError>;
}

/// A `haraka_plugin_api::PluginFactory` for `T`: link the same plugin crate into
/// the server as a built-in with `factory::<MyPlugin>`.
pub fn factory<T: NewPlugin>(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(Arc::new(T::new(init)?))
}

/// Exports `$ty` (a [`NewPlugin`]) as a haraka-rs plugin library: defines the
/// entry symbol `haraka_plugin_entry_v1` and its static vtable. Use it once, in a
/// crate built with `crate-type = ["cdylib"]` (see the crate example).
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        $crate::__export_plugin!(
            haraka_plugin_entry_v1,
            $crate::abi::ABI_MAJOR,
            $crate::__private::VTABLE_SIZE,
            $ty
        );
    };
}

/// Exports under an explicit symbol, major version and vtable size. For the ABI
/// test fixtures only: a plugin exported this way is deliberately broken.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin {
    ($symbol:ident, $major:expr, $size:expr, $ty:ty) => {
        /// The plugin library's entry point (see `haraka-plugin-abi`).
        #[allow(unsafe_code, reason = "the entry point must be exported unmangled")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $symbol() -> *const $crate::abi::HkPluginVtable {
            static VTABLE: $crate::abi::HkPluginVtable =
                $crate::__private::vtable::<$ty>($major, $size);
            &VTABLE
        }
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::ffi::{VTABLE_SIZE, vtable};
}
