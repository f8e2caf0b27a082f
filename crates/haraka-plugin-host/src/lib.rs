//! Loads cdylib plugins into haraka-rs.
