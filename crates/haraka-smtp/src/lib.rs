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

pub mod address;
pub mod client;
pub mod command;
pub mod conn;
pub mod data;
pub mod hook;
pub mod message;
pub mod received;
pub mod reply;
pub mod session;

pub use address::{Address, AddressError};
pub use conn::{
    ConnAction, Connection, Hello, HelloVerb, Local, Notes, Remote, Results, TlsInfo, TlsUpgrade,
    Transaction, canonical_ip,
};
pub use hook::{Action, Hook, HookArgs, Msg, Outcome};
pub use message::Message;
pub use reply::Reply;
pub use session::{Env, Event, Session, SessionConfig};
