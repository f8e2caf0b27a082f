//! Small helpers: RFC 2822 dates, UUIDs, header access, host lists.

use std::net::IpAddr;

use rand::Rng;

/// `Thu, 26 Nov 2026 16:00:01 +0000` for epoch milliseconds (UTC).
pub fn rfc2822_date(epoch_ms: u64) -> String {
    haraka_smtp::ids::rfc2822_date(epoch_ms / 1000)
}

/// A random UUID (version 4) in upper case, as Haraka writes them.
pub fn uuid() -> String {
    haraka_smtp::ids::uuid_from_bytes(rand::rng().random())
}

/// The header block of a message (up to and including the empty line's CRLF, or
/// everything when there is no empty line) and the rest.
pub fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\r\n") {
        return (&message[..2], &message[2..]);
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => message.split_at(p + 4),
        None => (message, &[]),
    }
}

/// The header fields of a header block, each with its folded lines, without the CRLF
/// that ends it.
pub fn header_fields(block: &[u8]) -> Vec<&[u8]> {
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < block.len() {
        if block[i] == b'\n' {
            let next = block.get(i + 1).copied();
            if !matches!(next, Some(b' ') | Some(b'\t')) {
                let end = if i > start && block[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                if end > start {
                    fields.push(&block[start..end]);
                }
                start = i + 1;
            }
        }
        i += 1;
    }
    if start < block.len() {
        fields.push(&block[start..]);
    }
    fields
}

/// The value of the first field called `name` (case-insensitive), unfolded and trimmed.
pub fn header_value(fields: &[&[u8]], name: &str) -> Option<String> {
    fields.iter().find_map(|f| {
        let text = String::from_utf8_lossy(f);
        let (n, v) = text.split_once(':')?;
        if n.trim().eq_ignore_ascii_case(name) {
            let unfolded: String = v.replace("\r\n", "").replace('\n', "");
            Some(unfolded.trim().to_owned())
        } else {
            None
        }
    })
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
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid());
    }

    #[test]
    fn headers() {
        let msg = b"Subject: a\r\n b\r\nMessage-Id: <x@y>\r\n\r\nbody\r\n";
        let (h, b) = split_message(msg);
        assert_eq!(b, b"body\r\n");
        let f = header_fields(h);
        assert_eq!(f.len(), 2);
        assert_eq!(header_value(&f, "subject").unwrap(), "a b");
        assert_eq!(header_value(&f, "MESSAGE-ID").unwrap(), "<x@y>");
        assert_eq!(header_value(&f, "Date"), None);
        assert_eq!(split_message(b"\r\nbody").1, b"body");
        assert_eq!(split_message(b"X: y").0, b"X: y");
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
