//! Haraka's rcpt_to.in_host_list for haraka-rs.
