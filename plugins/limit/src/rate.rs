//! haraka-plugin-limit's rate syntax and lookup keys.
//!
//! A rate is `LIMIT[/PERIOD[UNIT]]`: at most `LIMIT` events per `PERIOD` (60 s
//! when absent) with `UNIT` one of `s m h d` in any case (an unknown unit leaves
//! `PERIOD` in seconds, as the plugin does). A limit of 0 disables the check for
//! that lookup.

use std::net::IpAddr;
use std::time::Duration;

use haraka_plugin_api::{Address, Connection};

use crate::config::RateTable;

/// A parsed rate value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// The leading digits (0 when there are none).
    pub limit: u64,
    /// The period, `None` when the value is not `\d+(/\d+\S?)?`.
    pub period: Option<Duration>,
}

impl Rate {
    /// The plugin's `getLimit` and `getTTL` of one value.
    pub fn parse(value: &str) -> Rate {
        let digits = value.bytes().take_while(u8::is_ascii_digit).count();
        let limit = value
            .get(..digits)
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        Rate {
            limit,
            period: period(value),
        }
    }

    /// Whether the value is a well-formed rate with a non-zero limit.
    pub fn enforced(&self) -> Option<(u64, Duration)> {
        match (self.limit, self.period) {
            (0, _) | (_, None) => None,
            (limit, Some(period)) => Some((limit, period)),
        }
    }
}

/// `^(\d+)(?:\/(\d+)(\S)?)?$`: the period, 60 s by default.
fn period(value: &str) -> Option<Duration> {
    let (qty, rest) = match value.split_once('/') {
        None => (value, None),
        Some((q, r)) => (q, Some(r)),
    };
    if qty.is_empty() || !qty.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let Some(rest) = rest else {
        return Some(Duration::from_secs(60));
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = rest.split_at(digits);
    let n: u64 = num.parse().ok()?;
    let mut chars = unit.chars();
    let unit = chars.next();
    if chars.next().is_some() || unit.is_some_and(char::is_whitespace) {
        return None;
    }
    let secs = match unit.map(|c| c.to_ascii_lowercase()) {
        Some('m') => n.saturating_mul(60),
        Some('h') => n.saturating_mul(3600),
        Some('d') => n.saturating_mul(86_400),
        _ => n,
    };
    Some(Duration::from_secs(secs))
}

/// The lookups of a client, most specific first: the address shortened one
/// label at a time (`1.2.3.4`, `1.2.3`, `1.2`, `1`; IPv6 in full form by groups),
/// then the rDNS name shortened from the left.
pub fn host_candidates(conn: &Connection) -> (String, Vec<String>) {
    let ip = haraka_smtp::canonical_ip(conn.remote.ip);
    let (text, sep) = match ip {
        IpAddr::V4(v4) => (v4.to_string(), '.'),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|s| format!("{s:x}")).collect();
            (groups.join(":"), ':')
        }
    };
    let mut out = prefixes(&text, sep);
    if let Some(host) = conn.remote.host.as_deref() {
        out.extend(suffixes(&host.to_ascii_lowercase()));
    }
    (text, out)
}

/// `a.b.c` → `a.b.c`, `a.b`, `a`.
fn prefixes(text: &str, sep: char) -> Vec<String> {
    let parts: Vec<&str> = text.split(sep).collect();
    (1..=parts.len())
        .rev()
        .filter_map(|n| parts.get(..n))
        .map(|p| p.join(&sep.to_string()))
        .collect()
}

/// `a.b.c` → `a.b.c`, `b.c`, `c`.
fn suffixes(name: &str) -> Vec<String> {
    let parts: Vec<&str> = name.split('.').collect();
    (0..parts.len())
        .filter_map(|i| parts.get(i..))
        .map(|p| p.join("."))
        .collect()
}

/// The plugin's `get_host_key`: the first listed lookup of the client, else its
/// address with `default` (an absent default is 0: unlimited).
pub fn host_key(table: &RateTable, conn: &Connection) -> (String, String) {
    let (ip, candidates) = host_candidates(conn);
    for c in candidates {
        if let Some(v) = table.entry(&c) {
            return (c, v.to_owned());
        }
    }
    (ip, table.default().unwrap_or("0").to_owned())
}

/// The plugin's `get_mail_key`: the whole address, then its domain shortened from
/// the left, else the address with `default`. `None` is the null sender.
pub fn mail_key(table: &RateTable, mail: Option<&Address>) -> (String, String) {
    let email = mail.map(Address::address).unwrap_or_default();
    if let Some(v) = table.entry(&email) {
        return (email, v.to_owned());
    }
    if let Some(host) = mail.and_then(|m| m.host.as_deref()) {
        for c in suffixes(&host.to_ascii_lowercase()) {
            if let Some(v) = table.entry(&c) {
                return (c, v.to_owned());
            }
        }
    }
    (email, table.default().unwrap_or("0").to_owned())
}
