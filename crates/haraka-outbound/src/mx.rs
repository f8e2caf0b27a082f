//! Where to deliver a queued message: the `get_mx` answer of a plugin, or DNS (MX,
//! implicit MX, null MX), with loop protection, priority order and per-host addresses.

use std::net::{IpAddr, UdpSocket};

use haraka_plugin_api::{Action, MxHost, OutboundMail, Outcome};
use rand::Rng;

use crate::dsn::RcptDsn;
use crate::resolver::{LookupError, MxResolver};

/// Why no MX list could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxFailure {
    /// Permanent: bounce with this error.
    Bounce(String, RcptDsn),
    /// Temporary: defer with this error.
    TempFail(String, RcptDsn),
}

/// What a plugin's `get_mx` answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginMx {
    /// Deliver to these hosts (no loop check, as in Haraka).
    Hosts(Vec<MxHost>),
    /// Nobody decided: look up DNS.
    Dns,
    Fail(MxFailure),
}

/// Interpret the `get_mx` outcome. OK uses `mail.mx` if the plugin set it, else the
/// reply text `host`, `host:port`, `ip` or `ip:port` (`default_port` when absent).
pub fn from_plugin(outcome: &Outcome, mail: &OutboundMail, default_port: u16) -> PluginMx {
    let domain = &mail.domain;
    match outcome.action {
        Action::Accept => {
            if let Some(list) = mail.mx.as_ref().filter(|l| !l.is_empty()) {
                return PluginMx::Hosts(list.clone());
            }
            let text = outcome.msg.as_ref().map(|m| m.joined()).unwrap_or_default();
            match parse_host_port(text.trim(), default_port) {
                Some(mx) => PluginMx::Hosts(vec![mx]),
                None => PluginMx::Dns,
            }
        }
        Action::Deny | Action::DenyDisconnect => {
            let err = format!("No MX for {domain}");
            PluginMx::Fail(MxFailure::Bounce(
                err.clone(),
                RcptDsn::internal(550, 1, 2, &err),
            ))
        }
        Action::DenySoft | Action::DenySoftDisconnect => {
            let err = format!("Temporary MX lookup error for {domain}");
            PluginMx::Fail(MxFailure::TempFail(
                err.clone(),
                RcptDsn::internal(450, 1, 2, &err),
            ))
        }
        _ => PluginMx::Dns,
    }
}

/// Haraka's `^(.*?)(:(\d+))?$` on a `get_mx` string; `[v6]` and `[v6]:port` too.
pub fn parse_host_port(text: &str, default_port: u16) -> Option<MxHost> {
    if text.is_empty() {
        return None;
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => default_port,
            None => return None,
        };
        (h, port)
    } else if text.parse::<IpAddr>().is_ok() {
        (text, default_port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h, p.parse().ok()?)
            }
            _ => (text, default_port),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(MxHost {
        exchange: host.to_ascii_lowercase(),
        priority: 0,
        port,
        ip: host.parse().ok(),
    })
}

/// MX hosts from DNS, loop-checked (unless `local_mx_ok`) and sorted.
pub async fn from_dns(
    resolver: &dyn MxResolver,
    domain: &str,
    me: &str,
    local_mx_ok: bool,
    port: u16,
) -> Result<Vec<MxHost>, MxFailure> {
    let records = match resolver.mx(domain).await {
        Ok(r) => r,
        Err(LookupError::NotFound) => Vec::new(),
        Err(LookupError::Temporary(e)) => {
            let err = format!("DNS lookup failure: {e}");
            return Err(MxFailure::TempFail(
                err,
                RcptDsn::internal(450, 1, 0, &format!("DNS lookup failure: {domain}")),
            ));
        }
    };
    if let [only] = records.as_slice()
        && only.preference == 0
        && only.exchange.is_empty()
    {
        let err = format!("Domain {domain} sends and receives no email (NULL MX)");
        return Err(MxFailure::Bounce(
            err.clone(),
            RcptDsn::internal(550, 1, 2, &err),
        ));
    }
    let mut hosts: Vec<MxHost> = records
        .into_iter()
        .filter(|r| !r.exchange.is_empty())
        .map(|r| MxHost {
            ip: r.exchange.parse().ok(),
            exchange: r.exchange,
            priority: r.preference,
            port,
        })
        .collect();
    if hosts.is_empty() {
        hosts = implicit_mx(resolver, domain, port).await;
    }
    if hosts.is_empty() {
        let err = format!("Nowhere to deliver mail to for domain: {domain}");
        return Err(MxFailure::Bounce(
            err.clone(),
            RcptDsn::internal(550, 1, 2, &err),
        ));
    }
    if !local_mx_ok {
        let mut kept = Vec::with_capacity(hosts.len());
        for h in hosts {
            if !is_local_host(resolver, &h, me).await {
                kept.push(h);
            }
        }
        hosts = kept;
    }
    Ok(sort_mx(hosts))
}

/// No MX records: the domain's own AAAA and A addresses.
async fn implicit_mx(resolver: &dyn MxResolver, domain: &str, port: u16) -> Vec<MxHost> {
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Ok(v6) = resolver.ipv6(domain).await {
        ips.extend(v6.into_iter().map(IpAddr::V6));
    }
    if let Ok(v4) = resolver.ipv4(domain).await {
        ips.extend(v4.into_iter().map(IpAddr::V4));
    }
    ips.into_iter()
        .map(|ip| MxHost {
            exchange: ip.to_string(),
            priority: 0,
            port,
            ip: Some(ip),
        })
        .collect()
}

/// Sort by priority; shuffle hosts of equal priority.
pub fn sort_mx(mut hosts: Vec<MxHost>) -> Vec<MxHost> {
    let mut rng = rand::rng();
    let mut keyed: Vec<(u16, u32, MxHost)> = hosts
        .drain(..)
        .map(|h| (h.priority, rng.random(), h))
        .collect();
    keyed.sort_by_key(|(p, r, _)| (*p, *r));
    keyed.into_iter().map(|(_, _, h)| h).collect()
}

/// The MX is this machine: its name is `me`, or one of its addresses is local.
async fn is_local_host(resolver: &dyn MxResolver, mx: &MxHost, me: &str) -> bool {
    if let Some(ip) = mx.ip {
        return is_local_ip(ip);
    }
    if mx.exchange.eq_ignore_ascii_case(me) {
        return true;
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Ok(v4) = resolver.ipv4(&mx.exchange).await {
        ips.extend(v4.into_iter().map(IpAddr::V4));
    }
    if let Ok(v6) = resolver.ipv6(&mx.exchange).await {
        ips.extend(v6.into_iter().map(IpAddr::V6));
    }
    ips.into_iter().any(is_local_ip)
}

/// Loopback, unspecified, link-local, or an address of a local interface.
pub fn is_local_ip(ip: IpAddr) -> bool {
    let special = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_unspecified() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local_ip(IpAddr::V4(v4)))
        }
    };
    // Binding succeeds only for an address this machine has (no packet is sent).
    special || UdpSocket::bind((ip, 0)).is_ok()
}

/// The addresses to try for one MX: the IP itself, else AAAA then A with IPv6
/// enabled, else A only. A DNS failure yields nothing (the next MX is tried).
pub async fn addresses(resolver: &dyn MxResolver, mx: &MxHost, ipv6: bool) -> Vec<IpAddr> {
    if let Some(ip) = mx.ip.or_else(|| mx.exchange.parse().ok()) {
        return vec![ip];
    }
    let mut out = Vec::new();
    if ipv6 && let Ok(v6) = resolver.ipv6(&mx.exchange).await {
        out.extend(v6.into_iter().map(IpAddr::V6));
    }
    if let Ok(v4) = resolver.ipv4(&mx.exchange).await {
        out.extend(v4.into_iter().map(IpAddr::V4));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use crate::resolver::StaticResolver;

    #[test]
    fn host_port_table() {
        let cases: [(&str, Option<(&str, u16)>); 8] = [
            ("mx.example.com", Some(("mx.example.com", 25))),
            ("MX.example.com:2525", Some(("mx.example.com", 2525))),
            ("127.0.0.1:2600", Some(("127.0.0.1", 2600))),
            ("10.0.0.5", Some(("10.0.0.5", 25))),
            ("::1", Some(("::1", 25))),
            ("[::1]:2525", Some(("::1", 2525))),
            ("", None),
            (":25", None),
        ];
        for (text, want) in cases {
            let got = parse_host_port(text, 25).map(|m| (m.exchange, m.port));
            assert_eq!(got, want.map(|(h, p)| (h.to_owned(), p)), "{text}");
        }
        assert!(parse_host_port("127.0.0.1:2600", 25).unwrap().ip.is_some());
    }

    #[test]
    fn sorting_keeps_priority_order() {
        let h = |p: u16, n: &str| MxHost {
            exchange: n.into(),
            priority: p,
            port: 25,
            ip: None,
        };
        for _ in 0..20 {
            let s = sort_mx(vec![h(20, "c"), h(10, "a"), h(10, "b"), h(30, "d")]);
            let p: Vec<u16> = s.iter().map(|m| m.priority).collect();
            assert_eq!(p, vec![10, 10, 20, 30]);
        }
    }

    #[test]
    fn local_addresses() {
        for ip in [
            "127.0.0.1",
            "127.5.5.5",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "169.254.1.1",
        ] {
            assert!(is_local_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.1", "2001:db8::1"] {
            assert!(!is_local_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn dns_cases() {
        let r = StaticResolver::new();
        r.mx("null.test", 0, ".");
        r.mx("mx.test", 20, "b.mx.test")
            .mx("mx.test", 10, "a.mx.test")
            .addr("a.mx.test", "192.0.2.1".parse().unwrap());
        r.addr("implicit.test", "192.0.2.7".parse().unwrap());
        r.fail("servfail.test");
        r.mx("loop.test", 10, "lo.loop.test")
            .addr("lo.loop.test", "127.0.0.1".parse().unwrap());
        r.mx("me.test", 10, "mail.me.test");

        let null = from_dns(&r, "null.test", "me", false, 25)
            .await
            .unwrap_err();
        assert!(
            matches!(&null, MxFailure::Bounce(e, _) if e == "Domain null.test sends and receives no email (NULL MX)"),
            "{null:?}"
        );
        let list = from_dns(&r, "mx.test", "me", false, 25).await.unwrap();
        assert_eq!(list[0].exchange, "a.mx.test");
        assert_eq!(list[1].exchange, "b.mx.test");
        let imp = from_dns(&r, "implicit.test", "me", false, 2525)
            .await
            .unwrap();
        assert_eq!(imp[0].ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(imp[0].port, 2525);
        let none = from_dns(&r, "nowhere.test", "me", false, 25)
            .await
            .unwrap_err();
        assert!(matches!(&none, MxFailure::Bounce(e, _) if e.starts_with("Nowhere to deliver")));
        let tmp = from_dns(&r, "servfail.test", "me", false, 25)
            .await
            .unwrap_err();
        assert!(matches!(&tmp, MxFailure::TempFail(e, _) if e.starts_with("DNS lookup failure")));
        assert!(
            from_dns(&r, "loop.test", "me", false, 25)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            from_dns(&r, "loop.test", "me", true, 25)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            from_dns(&r, "me.test", "mail.me.test", false, 25)
                .await
                .unwrap()
                .is_empty()
        );

        let a = addresses(&r, &list[0], true).await;
        assert_eq!(a, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
    }
}
