//! Sans-IO SMTP for haraka-rs.
//!
//! This crate owns the SMTP protocol as Haraka 3.0.0 speaks it: the command parser,
//! RFC 5321 paths, reply formatting, the DATA receiver (dot-unstuffing, CRLF rules,
//! line and size limits), the `Received:` header, the server [`Session`] state
//! machine, and the client-side pieces shared by smtp_forward and outbound.
//!
//! It must never do IO, read a clock, spawn tasks or run plugins: bytes go in through
//! [`Session::feed`], hook answers through [`Session::hook_done`], and everything the
//! session wants done comes out of [`Session::poll`] as an [`Event`].
//!
//! Invariants: DATA ends only on CR LF `.` CR LF; a stored message never contains a
//! bare CR or bare LF; what [`Message::write_dot_stuffed`] produces is always
//! CRLF-terminated and dot-stuffed; no peer input can make it panic or grow memory
//! beyond the configured limits.
//!
//! The `testing` feature (off by default) adds `transcript`, the golden-transcript
//! format shared with the server's socket tests, and the `fuzz_*` functions, the
//! fuzz targets' entry points.

pub mod address;
pub mod budget;
pub mod client;
pub mod command;
pub mod conn;
pub mod data;
#[cfg(feature = "testing")]
mod fuzz;
pub mod hook;
pub mod ids;
pub mod message;
mod punycode;
pub mod received;
pub mod reply;
pub mod session;
#[cfg(feature = "testing")]
pub mod transcript;
pub mod xclient;

pub use address::{Address, AddressError};
pub use budget::{MemoryBudget, Reservation};
pub use conn::{
    ConnAction, Connection, Hello, HelloVerb, Local, Notes, RcptCount, Remote, Results, TlsInfo,
    TlsUpgrade, Transaction, canonical_ip,
};
#[cfg(feature = "testing")]
pub use fuzz::{fuzz_command, fuzz_data, fuzz_reply, fuzz_session};
pub use hook::{Action, Hook, HookArgs, Msg, Outcome};
pub use message::Message;
pub use reply::Reply;
pub use session::{Env, Event, Session, SessionConfig};
pub use xclient::XclientAttrs;
