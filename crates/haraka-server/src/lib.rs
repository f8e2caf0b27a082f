//! The haraka-rs server.
//!
//! Owns the tokio side of an SMTP server: listeners, the per-connection driver that
//! feeds socket bytes into the sans-IO `haraka_smtp::Session` and runs the hooks it
//! asks for, the hook runner (plugin order, priorities, timeouts, panics), STARTTLS
//! upgrades, core rDNS, privilege dropping and graceful shutdown.
//!
//! It must never decide SMTP replies itself (the session does) and never depend on a
//! particular plugin: plugins reach it only through `haraka_plugin_api`.

pub mod context;
mod driver;
pub mod env;
pub mod limits;
pub mod memory;
pub mod privs;
pub mod rdns;
pub mod runner;
pub mod server;

pub use context::{ImplicitTls, ServerContext};
pub use env::{EnvSource, SystemEnv};
pub use limits::{ConnCaps, raise_nofile_limit};
pub use rdns::Rdns;
pub use runner::{LoadedPlugin, Pipeline};
pub use server::{Phase, Server, ServerError, Shutdown, ShutdownHandle, shutdown_channel};
