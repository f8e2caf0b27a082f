//! The relay plugin driven through the `Plugin` trait.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;
mod keys;
mod no_open_relay;
