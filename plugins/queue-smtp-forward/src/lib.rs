//! Haraka's queue/smtp_forward for haraka-rs.
