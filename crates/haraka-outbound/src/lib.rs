//! Outbound delivery for haraka-rs: MX lookup, retries, bounces.
