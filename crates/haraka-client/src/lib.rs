//! Async SMTP client for haraka-rs (smtp_forward and outbound).
