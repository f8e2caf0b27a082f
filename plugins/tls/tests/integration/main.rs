//! Integration tests of the tls plugin: loading, SNI, reload, real loopback
//! handshakes and the two hooks.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;
mod handshake;
mod hooks;
mod load;
mod reload;
