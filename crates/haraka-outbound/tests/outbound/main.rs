//! haraka-outbound's integration tests: the engine against fake MX servers on
//! loopback addresses, a loopback DNS server, restarts and failures.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod delivery;
mod dns;
mod handoff;
mod mail_params;
mod resilience;
mod reuse;
mod support;
