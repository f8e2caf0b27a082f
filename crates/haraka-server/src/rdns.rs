//! Core reverse DNS (Haraka's `dns.reverse` when no `lookup_rdns` plugin answers).
//!
//! `/etc/hosts` is consulted first (as Node's resolver does), then PTR through the
//! system resolver, bounded by a timeout. Loopback addresses are never sent to DNS:
//! `127.in-addr.arpa` and `::1` are answered locally (RFC 6761 §6.3, RFC 6303), as
//! `localhost` when `/etc/hosts` does not name them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;

/// Reverse lookups for client addresses.
#[derive(Clone)]
pub struct Rdns {
    fixed: Option<Result<String, &'static str>>,
    resolver: Option<TokioResolver>,
    hosts: HashMap<IpAddr, String>,
    timeout: Duration,
}

impl std::fmt::Debug for Rdns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rdns")
            .field("dns", &self.resolver.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Rdns {
    /// `/etc/hosts` plus the system resolver (if `/etc/resolv.conf` can be read).
    pub fn system(timeout: Duration) -> Rdns {
        let resolver = match TokioResolver::builder_tokio() {
            Ok(mut b) => {
                b.options_mut().timeout = timeout;
                b.options_mut().attempts = 1;
                b.build().ok()
            }
            Err(e) => {
                tracing::warn!("no system DNS resolver ({e}); rDNS uses /etc/hosts only");
                None
            }
        };
        let hosts = std::fs::read_to_string("/etc/hosts")
            .map(|t| parse_hosts(&t))
            .unwrap_or_default();
        Rdns {
            fixed: None,
            resolver,
            hosts,
            timeout,
        }
    }

    /// Always the same answer (for tests).
    pub fn fixed(answer: Result<String, &'static str>) -> Rdns {
        Rdns {
            fixed: Some(answer),
            resolver: None,
            hosts: HashMap::new(),
            timeout: Duration::from_secs(1),
        }
    }

    /// Only the given static table (for tests and for machines without DNS).
    pub fn static_table(hosts: HashMap<IpAddr, String>) -> Rdns {
        Rdns {
            fixed: None,
            resolver: None,
            hosts,
            timeout: Duration::from_secs(1),
        }
    }

    /// The first PTR name, or `NXDOMAIN` / `DNSERROR` as Haraka records them.
    pub async fn reverse(&self, ip: IpAddr) -> Result<String, &'static str> {
        if let Some(answer) = &self.fixed {
            return answer.clone();
        }
        if let Some(name) = self.hosts.get(&ip) {
            return Ok(name.clone());
        }
        if haraka_smtp::canonical_ip(ip).is_loopback() {
            return Ok("localhost".to_owned());
        }
        let Some(resolver) = &self.resolver else {
            return Err("NXDOMAIN");
        };
        match tokio::time::timeout(self.timeout, resolver.reverse_lookup(ip)).await {
            Ok(Ok(lookup)) => lookup
                .answers()
                .iter()
                .find_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::PTR(name) => {
                        Some(name.0.to_utf8().trim_end_matches('.').to_owned())
                    }
                    _ => None,
                })
                .ok_or("NXDOMAIN"),
            Ok(Err(e)) if e.is_no_records_found() || e.is_nx_domain() => Err("NXDOMAIN"),
            Ok(Err(_)) | Err(_) => Err("DNSERROR"),
        }
    }
}

/// `ip name [aliases]` lines; the first name of the first line for an address wins.
fn parse_hosts(text: &str) -> HashMap<IpAddr, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let (Some(ip), Some(name)) = (fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(ip) = ip.parse::<IpAddr>() {
            map.entry(ip).or_insert_with(|| name.to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_is_answered_locally() {
        let r = Rdns::static_table(HashMap::from([(
            "127.0.0.1".parse().unwrap(),
            "vm".to_owned(),
        )]));
        assert_eq!(
            r.reverse("127.0.0.1".parse().unwrap()).await,
            Ok("vm".to_owned())
        );
        assert_eq!(
            r.reverse("127.0.0.42".parse().unwrap()).await,
            Ok("localhost".to_owned())
        );
        assert_eq!(
            r.reverse("::1".parse().unwrap()).await,
            Ok("localhost".to_owned())
        );
        assert_eq!(
            r.reverse("::ffff:127.0.0.9".parse().unwrap()).await,
            Ok("localhost".to_owned())
        );
        assert_eq!(
            r.reverse("192.0.2.1".parse().unwrap()).await,
            Err("NXDOMAIN")
        );
    }

    #[test]
    fn hosts_file() {
        let m = parse_hosts(
            "127.0.0.1 localhost loc\n# x\n::1 ip6-localhost\n127.0.0.1 other\nbad line\n",
        );
        assert_eq!(m.get(&"127.0.0.1".parse().unwrap()).unwrap(), "localhost");
        assert_eq!(m.get(&"::1".parse().unwrap()).unwrap(), "ip6-localhost");
        assert_eq!(m.len(), 2);
    }
}
