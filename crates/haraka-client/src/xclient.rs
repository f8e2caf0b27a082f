//! XCLIENT (Postfix's XCLIENT_README): the original client's attributes, sent to a
//! server that advertises them.

use std::net::IpAddr;

use haraka_smtp::client::{xclient_addr, xtext};

/// The longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_COMMAND: usize = 512;
/// Postfix accepts NAME and HELO values up to this many bytes.
const MAX_VALUE: usize = 255;

/// What is known about the original client. `None` attributes are not sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XclientAttrs {
    /// `ADDR`: the client's IP (IPv6 is sent with the `IPV6:` prefix).
    pub addr: Option<IpAddr>,
    /// `NAME`: the verified reverse name, or `[UNAVAILABLE]` / `[TEMPUNAVAIL]`.
    pub name: Option<String>,
    /// `PORT`: the client's port.
    pub port: Option<u16>,
    /// `HELO`: the name the client gave in HELO/EHLO.
    pub helo: Option<String>,
    /// `PROTO`: `SMTP` or `ESMTP`.
    pub proto: Option<String>,
    /// `LOGIN`: the name the client authenticated as.
    pub login: Option<String>,
    /// `DESTADDR`: the address the client connected to.
    pub destaddr: Option<IpAddr>,
    /// `DESTPORT`: the port the client connected to.
    pub destport: Option<u16>,
}

impl XclientAttrs {
    /// The `NAME=value` pairs the server advertised, in the order Postfix asks for
    /// (NAME and ADDR last), values xtext-encoded.
    pub fn pairs(&self, advertised: &[String]) -> Vec<String> {
        let all: [(&str, Option<String>); 8] = [
            ("HELO", self.helo.clone()),
            ("PROTO", self.proto.clone()),
            ("LOGIN", self.login.clone()),
            ("PORT", self.port.map(|p| p.to_string())),
            ("DESTADDR", self.destaddr.map(xclient_addr)),
            ("DESTPORT", self.destport.map(|p| p.to_string())),
            ("NAME", self.name.clone()),
            ("ADDR", self.addr.map(xclient_addr)),
        ];
        all.into_iter()
            .filter(|(k, _)| advertised.iter().any(|a| a.eq_ignore_ascii_case(k)))
            .filter_map(|(k, v)| {
                let v = v?;
                (!v.is_empty() && v.len() <= MAX_VALUE).then(|| format!("{k}={}", xtext(&v)))
            })
            .collect()
    }

    /// The XCLIENT command lines (without CRLF), each within the SMTP line limit.
    /// Empty when the server advertised nothing this has a value for.
    pub fn commands(&self, advertised: &[String]) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for pair in self.pairs(advertised) {
            match lines.last_mut() {
                Some(line) if line.len() + 1 + pair.len() + 2 <= MAX_COMMAND => {
                    line.push(' ');
                    line.push_str(&pair);
                }
                _ => lines.push(format!("XCLIENT {pair}")),
            }
        }
        lines
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        [
            "NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN", "DESTADDR", "DESTPORT",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn only_advertised_in_postfix_order() {
        let attrs = XclientAttrs {
            addr: Some("2001:db8::1".parse().unwrap()),
            name: Some("[UNAVAILABLE]".into()),
            port: Some(40000),
            helo: Some("client.example.org".into()),
            proto: Some("ESMTP".into()),
            login: None,
            destaddr: Some("::ffff:192.0.2.1".parse().unwrap()),
            destport: Some(25),
        };
        assert_eq!(
            attrs.commands(&all()),
            [
                "XCLIENT HELO=client.example.org PROTO=ESMTP PORT=40000 DESTADDR=192.0.2.1 \
              DESTPORT=25 NAME=[UNAVAILABLE] ADDR=IPV6:2001:db8::1"
            ]
        );
        let some = ["ADDR".to_string(), "helo".to_string()];
        assert_eq!(
            attrs.commands(&some),
            ["XCLIENT HELO=client.example.org ADDR=IPV6:2001:db8::1"]
        );
        assert!(attrs.commands(&["LOGIN".to_string()]).is_empty());
    }

    #[test]
    fn long_values_split_or_dropped() {
        let attrs = XclientAttrs {
            addr: Some("192.0.2.7".parse().unwrap()),
            name: Some(format!("{}.example", "n".repeat(240))),
            helo: Some("h".repeat(250)),
            login: Some("l".repeat(300)),
            ..XclientAttrs::default()
        };
        let cmds = attrs.commands(&all());
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert!(cmds.iter().all(|c| c.len() + 2 <= MAX_COMMAND));
        assert!(cmds[1].ends_with("ADDR=192.0.2.7"));
        assert!(!cmds.concat().contains("LOGIN="));
    }
}
