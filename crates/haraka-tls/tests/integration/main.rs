//! Integration tests of haraka-tls: loading tls.ini and the certificates, SNI,
//! reload and real loopback handshakes.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use haraka_tls::testing as common;
mod handshake;
mod load;
mod reload;
