//! STARTTLS for haraka-rs (Haraka's tls plugin).
