//! Small helpers: RFC 2822 dates, whole messages as [`Message`], host lists.

use std::net::IpAddr;

use haraka_smtp::Message;
use haraka_smtp::message::MessageBuilder;

/// `Thu, 26 Nov 2026 16:00:01 +0000` for epoch milliseconds (UTC).
pub fn rfc2822_date(epoch_ms: u64) -> String {
    haraka_smtp::ids::rfc2822_date(epoch_ms / 1000)
}

/// A complete message (CRLF line ends) as header fields and body, read the way a
/// received message is.
pub fn parse_message(message: &[u8]) -> Message {
    let mut builder = MessageBuilder::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        builder.push_line(line);
    }
    builder.finish()
}

/// Haraka's `ip_in_list`: `host` equals an entry (case-insensitive), or is an IP
/// inside an entry written as a CIDR range.
pub fn host_in_list(list: &[String], host: &str) -> bool {
    let ip = host.parse::<IpAddr>().ok();
    list.iter().any(|entry| {
        let entry = entry.trim();
        if entry.eq_ignore_ascii_case(host) {
            return true;
        }
        match (ip, entry.parse::<ipnet::IpNet>()) {
            (Some(ip), Ok(net)) => net.contains(&ip),
            _ => false,
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc2822_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822_date(1_795_708_801_000),
            "Thu, 26 Nov 2026 16:00:01 +0000"
        );
        assert_eq!(
            rfc2822_date(951_782_400_000),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
    }

    #[test]
    fn uuids_look_right() {
        let uuid = || haraka_smtp::ids::uuid_from_bytes(rand::random());
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid());
    }

    #[test]
    fn headers() {
        let msg = b"Subject: a\r\n b\r\nMessage-Id: <x@y>\r\n\r\nbody\r\n";
        let m = parse_message(msg);
        assert_eq!(m.body, b"body\r\n");
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.get_header("subject"), ["a b"]);
        assert_eq!(m.get_header("MESSAGE-ID"), ["<x@y>"]);
        assert!(m.get_header("Date").is_empty());
        assert_eq!(parse_message(b"\r\nbody").body, b"body");
        assert_eq!(parse_message(b"X: y").headers, [b"X: y"]);
    }

    #[test]
    fn host_lists() {
        let list = vec!["Mx.Example.com".to_owned(), "10.0.0.0/8".to_owned()];
        assert!(host_in_list(&list, "mx.example.com"));
        assert!(host_in_list(&list, "10.1.2.3"));
        assert!(!host_in_list(&list, "11.1.2.3"));
        assert!(!host_in_list(&list, "example.com"));
    }
}
