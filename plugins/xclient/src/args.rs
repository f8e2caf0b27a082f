//! The arguments of an `XCLIENT` command (Postfix's XCLIENT_README), read as
//! Haraka's xclient plugin reads them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The attributes of one XCLIENT command that are usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XclientArgs {
    /// `ADDR`: the original client's address.
    pub addr: Option<IpAddr>,
    /// `PORT`: the original client's port.
    pub port: Option<u16>,
    /// `NAME`: the original client's host name (lower-cased).
    pub name: Option<String>,
    /// `HELO`: the name the original client gave (lower-cased).
    pub helo: Option<String>,
    /// `PROTO`: `smtp` or `esmtp` (lower-cased).
    pub proto: Option<String>,
    /// `LOGIN`: the original client's login name (case kept).
    pub login: Option<String>,
    /// `DESTADDR`: the address the original client connected to.
    pub destaddr: Option<IpAddr>,
    /// `DESTPORT`: the port the original client connected to.
    pub destport: Option<u16>,
    /// Why some attributes were ignored (for the log).
    pub ignored: Vec<String>,
}

/// Parse the argument string of `XCLIENT` (everything after the verb).
///
/// Attributes are `NAME=value` separated by spaces; names are case-insensitive;
/// values are xtext. `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean "not known". Values
/// that are not valid for their attribute are ignored, like unknown attributes.
pub fn parse(rest: &str) -> XclientArgs {
    let mut args = XclientArgs::default();
    for token in rest.split(' ').filter(|t| !t.is_empty()) {
        if let Err(why) = apply(&mut args, token) {
            args.ignored.push(format!("{token}: {why}"));
        }
    }
    args
}

fn apply(args: &mut XclientArgs, token: &str) -> Result<(), &'static str> {
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
    if is_unavailable(&value) {
        return Ok(());
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("control, space or non-ASCII character in value");
    }
    match name.as_str() {
        "addr" => args.addr = Some(parse_addr(&value).ok_or("not an IP address")?),
        "destaddr" => args.destaddr = Some(parse_addr(&value).ok_or("not an IP address")?),
        "port" => args.port = Some(value.parse().map_err(|_| "not a port")?),
        "destport" => args.destport = Some(value.parse().map_err(|_| "not a port")?),
        "proto" => {
            let proto = value.to_ascii_lowercase();
            if !(proto.starts_with("smtp") || proto.starts_with("esmtp")) {
                return Err("not SMTP or ESMTP");
            }
            args.proto = Some(proto);
        }
        "name" => args.name = Some(value.to_ascii_lowercase()),
        "helo" => args.helo = Some(value.to_ascii_lowercase()),
        _ => args.login = Some(value),
    }
    Ok(())
}

fn is_unavailable(value: &str) -> bool {
    value.eq_ignore_ascii_case("[UNAVAILABLE]") || value.eq_ignore_ascii_case("[TEMPUNAVAIL]")
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
