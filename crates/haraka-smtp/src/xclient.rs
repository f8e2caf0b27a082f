//! XCLIENT (Postfix's XCLIENT_README): the original client's attributes, read from
//! an `XCLIENT` command as Haraka's xclient plugin reads them, and written into
//! `XCLIENT` commands for a server that advertises them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_COMMAND: usize = 512;
/// Postfix accepts NAME and HELO values up to this many bytes.
const MAX_VALUE: usize = 255;

/// What is known about the original client. `None` attributes are unknown: they
/// are not sent, and `[UNAVAILABLE]` / `[TEMPUNAVAIL]` read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XclientAttrs {
    /// `ADDR`: the client's IP (IPv6 is written with the `IPV6:` prefix).
    pub addr: Option<IpAddr>,
    /// `NAME`: the verified reverse name (lower-cased when read); when sending,
    /// also `[UNAVAILABLE]` / `[TEMPUNAVAIL]`.
    pub name: Option<String>,
    /// `PORT`: the client's port.
    pub port: Option<u16>,
    /// `HELO`: the name the client gave in HELO/EHLO (lower-cased when read).
    pub helo: Option<String>,
    /// `PROTO`: `SMTP` or `ESMTP` (lower-cased when read).
    pub proto: Option<String>,
    /// `LOGIN`: the name the client authenticated as (case kept).
    pub login: Option<String>,
    /// `DESTADDR`: the address the client connected to.
    pub destaddr: Option<IpAddr>,
    /// `DESTPORT`: the port the client connected to.
    pub destport: Option<u16>,
}

impl XclientAttrs {
    /// Parse the argument string of `XCLIENT` (everything after the verb), with the
    /// reasons some attributes were ignored (for the log).
    ///
    /// Attributes are `NAME=value` separated by spaces; names are case-insensitive;
    /// values are xtext. `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean "not known".
    /// Values that are not valid for their attribute are ignored, like unknown
    /// attributes.
    pub fn parse(rest: &str) -> (XclientAttrs, Vec<String>) {
        let mut attrs = XclientAttrs::default();
        let mut ignored = Vec::new();
        for token in rest.split(' ').filter(|t| !t.is_empty()) {
            if let Err(why) = attrs.apply(token) {
                ignored.push(format!("{token}: {why}"));
            }
        }
        (attrs, ignored)
    }

    fn apply(&mut self, token: &str) -> Result<(), &'static str> {
        let (name, raw) = token.split_once('=').ok_or("not NAME=value")?;
        if name.is_empty() || raw.is_empty() {
            return Err("not NAME=value");
        }
        let name = name.to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "addr" | "port" | "name" | "helo" | "proto" | "login" | "destaddr" | "destport"
        ) {
            return Err("unknown attribute");
        }
        let value = xtext_decode(raw).ok_or("invalid xtext")?;
        if value.eq_ignore_ascii_case("[UNAVAILABLE]")
            || value.eq_ignore_ascii_case("[TEMPUNAVAIL]")
        {
            return Ok(());
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("control, space or non-ASCII character in value");
        }
        match name.as_str() {
            "addr" => self.addr = Some(parse_addr(&value).ok_or("not an IP address")?),
            "destaddr" => self.destaddr = Some(parse_addr(&value).ok_or("not an IP address")?),
            "port" => self.port = Some(value.parse().map_err(|_| "not a port")?),
            "destport" => self.destport = Some(value.parse().map_err(|_| "not a port")?),
            "proto" => {
                let proto = value.to_ascii_lowercase();
                if !(proto.starts_with("smtp") || proto.starts_with("esmtp")) {
                    return Err("not SMTP or ESMTP");
                }
                self.proto = Some(proto);
            }
            "name" => self.name = Some(value.to_ascii_lowercase()),
            "helo" => self.helo = Some(value.to_ascii_lowercase()),
            _ => self.login = Some(value),
        }
        Ok(())
    }

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

/// `IPV6:<addr>` (prefix in any case) or a dotted IPv4 address; a bare IPv6 address
/// is refused as Haraka refuses it.
fn parse_addr(value: &str) -> Option<IpAddr> {
    match value.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("ipv6:") => value
            .get(5..)
            .and_then(|v| v.parse::<Ipv6Addr>().ok())
            .map(IpAddr::V6),
        _ => value.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    }
}

/// The XCLIENT form of an address: IPv6 with the `IPV6:` prefix Postfix expects.
pub fn xclient_addr(ip: IpAddr) -> String {
    match crate::conn::canonical_ip(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPV6:{v6}"),
    }
}

/// RFC 3461 xtext: `+`, `=`, and bytes outside `!`..`~` become `+XX`.
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// RFC 3461 xtext: `+XX` is the byte with hex value XX. `None` if a `+` is not
/// followed by two hex digits or the result is not UTF-8.
pub fn xtext_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'+' {
            let hex = text.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
