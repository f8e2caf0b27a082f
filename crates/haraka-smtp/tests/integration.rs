//! Integration tests of haraka-smtp: table tests of the parsers and the DATA
//! receiver, and the golden transcripts of `tests/transcripts/`.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod integration {
    pub mod address;
    pub mod client;
    pub mod command;
    pub mod data;
    pub mod message;
    pub mod session;
    pub mod transcripts;
}
