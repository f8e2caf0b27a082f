//! Integration tests of the tls plugin: the two hooks and the start-up errors
//! it reports.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use haraka_tls::testing as common;
mod hooks;
mod load;
