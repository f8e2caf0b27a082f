//! Integration tests of the tls plugin: the two hooks and the start-up errors
//! it reports.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;
mod hooks;
mod load;
