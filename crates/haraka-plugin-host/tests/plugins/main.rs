//! Loads the example and fixture plugin libraries of `plugins/examples/` (built
//! on first use by `haraka_plugin_host::testing`) and drives hooks through them
//! with the `Plugin` trait, as the server's hook runner does.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod dialogues;
mod load_errors;
mod misbehaving;
mod support;
