//! XCLIENT for haraka-rs (Haraka's xclient plugin).
