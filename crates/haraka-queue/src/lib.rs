//! The durable on-disk outbound queue of haraka-rs.
