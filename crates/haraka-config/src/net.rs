//! Address lists (a relay ACL, trusted clients, ...): one address or range
//! per entry.

use std::net::IpAddr;

use ipnet::IpNet;

/// `a.b.c.d[/n]` or an IPv6 address `[/n]`. A bare address is a single host (/32 or
/// /128), text after `#` is a comment, and an IPv4-mapped IPv6 range becomes the
/// IPv4 range it carries (so it matches clients seen as IPv4). `None` when the entry
/// is not an address or range.
pub fn parse_ip_net(entry: &str) -> Option<IpNet> {
    let entry = entry.split_once('#').map_or(entry, |(e, _)| e).trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).ok()?,
            None => net,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ip_net;

    #[test]
    fn table() {
        let cases = [
            ("10.0.0.2/32", Some("10.0.0.2/32")),
            ("10.0.0.2", Some("10.0.0.2/32")),
            (" 192.168.0.0/16 # office", Some("192.168.0.0/16")),
            ("2001:db8::1", Some("2001:db8::1/128")),
            ("2001:db8::/32", Some("2001:db8::/32")),
            ("::ffff:10.0.0.0/104", Some("10.0.0.0/8")),
            ("::ffff:10.0.0.2", Some("10.0.0.2/32")),
            ("10.0.0.300", None),
            ("example.com", None),
            ("", None),
        ];
        for (entry, want) in cases {
            assert_eq!(
                parse_ip_net(entry).map(|n| n.to_string()).as_deref(),
                want,
                "{entry}"
            );
        }
    }
}
