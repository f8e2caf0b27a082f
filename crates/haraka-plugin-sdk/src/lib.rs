//! Write haraka-rs plugins as cdylibs, the way a Haraka plugin is written.
//!
//! A plugin is a type with a constructor, [`NewPlugin::new`] (read the config,
//! keep what the hooks need), and a [`Register::register`] that names the method
//! handling each hook, as Haraka's `register_hook('rcpt', 'check')` does.
//! `export_plugin!(MyPlugin);` in a crate built with `crate-type = ["cdylib"]`
//! makes it a library the server loads from `ROOT/plugins/`.
//!
//! ```
//! use haraka_plugin_sdk::{
//!     Address, Connection, Hooks, NewPlugin, Outcome, PluginError, PluginInit, Register,
//!     export_plugin,
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
//! impl Register for NoBob {
//!     fn register(&self, hooks: &mut Hooks<Self>) {
//!         hooks.rcpt(Self::check);
//!     }
//! }
//!
//! impl NoBob {
//!     fn check(&self, _conn: &mut Connection, to: &Address) -> Outcome {
//!         if to.user == "bob" { Outcome::deny("no Bob here") } else { Outcome::cont() }
//!     }
//! }
//!
//! export_plugin!(NoBob);
//! # fn main() {}
//! ```
//!
//! A handler answers with an [`Outcome`], or is an `async fn` when it has to wait;
//! [`Hooks`] lists every hook and the arguments its handler gets. Built-in plugins
//! use the same [`Register`] trait (from `haraka-plugin-api`, re-exported here).
//!
//! The SDK owns everything on the plugin's side of the ABI: the exported entry
//! symbol and vtable, rebuilding a [`Connection`] from the host's view and sending
//! the plugin's edits back, running the hook's future (on the calling thread, then
//! on the SDK's own runtime if it has to wait), answering every call exactly once,
//! forwarding `tracing` events and panics to the host's log, and config files that
//! reload when they change ([`config`]).
//!
//! It must never let a panic unwind into the host (every entry catches it and a
//! hook that panics answers 4xx), never hand the host memory to free, and never
//! keep a pointer the host lent it beyond the call.

#![warn(missing_docs)]

pub mod config;
mod exec;
mod ffi;
mod host;
mod log;
#[doc(hidden)]
pub mod testing;

use std::sync::Arc;

#[doc(hidden)]
pub use haraka_plugin_abi as abi;
pub use haraka_plugin_api as api;
pub use haraka_plugin_api::{
    Action, Address, BoxFuture, ConfigDir, ConnAction, Connection, Hello, HelloVerb, Hook,
    HookArgs, Hooks, Ini, Local, Message, Msg, MxHost, Notes, OutboundArgs, OutboundMail, Outcome,
    Plugin, PluginError, PluginInit, Register, Remote, Results, TlsInfo, Transaction,
};
pub use {serde_json, tracing};

/// How a plugin is built from its name and config directory (the constructor
/// `export_plugin!` calls, and what [`factory`] wraps for built-in use).
pub trait NewPlugin: Register {
    /// Read the plugin's config and build it; an error is a start-up error.
    fn new(init: &PluginInit<'_>) -> Result<Self, PluginError>;
}

/// A `haraka_plugin_api::PluginFactory` for `T`: link the same plugin crate into
/// the server as a built-in with `factory::<MyPlugin>`.
pub fn factory<T: NewPlugin>(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(init.name, T::new(init)?))
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
