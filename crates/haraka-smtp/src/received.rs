//! The `Received:` header Haraka adds (H300 `Connection.received_line`).
//!
//! ```text
//! Received: from <helo> (<remote.info> [<ip>])\r\n
//! \tby <me> (<product>) with <proto> id <tuuid>\r\n
//! \tenvelope-from <mail_from>[\r\n\ttls <cipher>][ <authheader>];\r\n
//! \t<date>
//! ```

use crate::conn::{Connection, HelloVerb};

/// `ESMTP` / `SMTP`, plus `S` with TLS and `A` with an auth header.
pub fn protocol(conn: &Connection) -> String {
    let ehlo = conn
        .hello
        .as_ref()
        .is_some_and(|h| h.verb == HelloVerb::Ehlo);
    let mut p = if ehlo { "ESMTP" } else { "SMTP" }.to_owned();
    if conn.tls.enabled {
        p.push('S');
    }
    if conn.auth_user.is_some() {
        p.push('A');
    }
    p
}

/// `<remote.info> [<ip>]`, or `[<ip>]` when the first rDNS answer was not a name
/// (Haraka's `get_remote('info')`).
pub fn remote_info(conn: &Connection) -> String {
    match conn.remote.info.as_deref() {
        Some(h) if !h.is_empty() && h != "NXDOMAIN" && h != "DNSERROR" => {
            format!("{h} [{}]", conn.remote.ip)
        }
        _ => format!("[{}]", conn.remote.ip),
    }
}

fn strip_trailing_fold(s: &str) -> &str {
    let s = s.strip_suffix('\t').unwrap_or(s);
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.strip_suffix('\r').unwrap_or(s)
}

/// The value of the `Received:` field (after `Received: `), folded with CR LF TAB.
/// `me` is the server name, `product` `Haraka/3.0.0` or `Haraka`, `date` the RFC
/// 2822 date. Without a transaction the id and sender are empty.
pub fn received_value(conn: &Connection, me: &str, product: &str, date: &str) -> String {
    let helo = conn.hello_host().unwrap_or("unknown");
    let (tuuid, from) = match &conn.transaction {
        Some(t) => (t.uuid.as_str(), t.mail_from_text()),
        None => ("", "<>".to_owned()),
    };
    let mut v = format!(
        "from {helo} ({})\r\n\tby {me} ({product}) with {} id {tuuid}\r\n\tenvelope-from {from}",
        remote_info(conn),
        protocol(conn),
    );
    if let Some(cipher) = conn.tls.cipher.as_deref() {
        v.push_str(&format!("\r\n\ttls {}", strip_trailing_fold(cipher)));
    }
    if let Some(auth) = conn.auth_user.as_deref() {
        v.push_str(&format!(" {}", strip_trailing_fold(auth)));
    }
    v.push_str(&format!(";\r\n\t{date}"));
    v
}
