//! Async SMTP client for haraka-rs: what `queue/smtp_forward` and outbound delivery
//! use to talk to the next hop.
//!
//! Owns: connecting (with an optional local address), the greeting, EHLO with HELO
//! fallback, STARTTLS (rustls), XCLIENT with re-EHLO, AUTH PLAIN/LOGIN, MAIL/RCPT
//! (pipelined when advertised) with the sender's `SMTPUTF8`/`BODY=8BITMIME`
//! ([`MailParams`]), DATA streamed in chunks through
//! `haraka_smtp::message::DotStuffer` (dot-stuffing, CRLF line ends), RSET, QUIT,
//! and a small per-destination connection [`Pool`]. Every step is bounded by a
//! timeout from [`Timeouts`]; every failure is an [`Error`] that says whether it was
//! the transport or the server's reply.
//!
//! It must never decide policy (which reply means what for the sender is the
//! caller's business), never hold more than one copy of a message, never send a
//! command containing CR or LF, and never panic on what a server sends.

mod auth;
mod client;
mod error;
mod mail_params;
mod pool;
#[cfg(feature = "testing")]
pub mod testing;

pub use auth::{AuthMechanism, base64, plain_response};
pub use client::{ConnectOptions, SmtpClient, StartTls, Timeouts, Xclient};
pub use error::{Error, Stage};
pub use haraka_smtp::Reply;
pub use haraka_smtp::client::Capabilities;
pub use haraka_smtp::xclient::XclientAttrs;
pub use mail_params::{MailParams, Smtputf8NotOffered};
pub use pool::{Lease, Pool};
