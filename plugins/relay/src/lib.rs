//! Haraka's relay plugin for haraka-rs.
