//! DNS behind a trait: the system resolver (or configured name servers) through
//! hickory, and a static table for tests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::{Resolver, TokioResolver};

use crate::BoxFuture;

/// One MX record. An empty `exchange` is the root name (RFC 7505 null MX).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxRecord {
    pub preference: u16,
    pub exchange: String,
}

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// NXDOMAIN or an empty answer: the name has no such records.
    #[error("no records")]
    NotFound,
    /// SERVFAIL, timeout, unreachable server, …: try again later.
    #[error("{0}")]
    Temporary(String),
}

/// The lookups outbound delivery needs.
pub trait MxResolver: Send + Sync + 'static {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, LookupError>>;
    fn ipv4<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, LookupError>>;
    fn ipv6<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, LookupError>>;
}

/// hickory-resolver with the system configuration or a list of name servers.
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// `/etc/resolv.conf`.
    pub fn system() -> Result<HickoryResolver, LookupError> {
        let builder =
            Resolver::builder_tokio().map_err(|e| LookupError::Temporary(e.to_string()))?;
        let inner = builder
            .build()
            .map_err(|e| LookupError::Temporary(e.to_string()))?;
        Ok(HickoryResolver { inner })
    }

    /// Ask only `servers` (UDP, then TCP), e.g. a loopback server in tests.
    pub fn with_nameservers(servers: &[SocketAddr]) -> Result<HickoryResolver, LookupError> {
        let configs = servers
            .iter()
            .map(|s| {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                ns
            })
            .collect();
        let inner = Resolver::builder_with_config(
            ResolverConfig::from_name_servers(configs),
            TokioRuntimeProvider::default(),
        )
        .build()
        .map_err(|e| LookupError::Temporary(e.to_string()))?;
        Ok(HickoryResolver { inner })
    }

    /// The system resolver when `servers` is empty, else those servers.
    pub fn from_config(servers: &[SocketAddr]) -> Result<HickoryResolver, LookupError> {
        if servers.is_empty() {
            HickoryResolver::system()
        } else {
            HickoryResolver::with_nameservers(servers)
        }
    }
}

/// A fully qualified name (so no search domain is appended); IDNs become punycode.
fn fqdn(name: &str) -> Result<Name, LookupError> {
    let mut n = Name::from_utf8(name.trim_end_matches('.'))
        .map_err(|e| LookupError::Temporary(format!("bad name {name:?}: {e}")))?;
    n.set_fqdn(true);
    Ok(n)
}

fn map_err(e: NetError) -> LookupError {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(_)) => LookupError::NotFound,
        other => LookupError::Temporary(other.to_string()),
    }
}

impl MxResolver for HickoryResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, LookupError>> {
        Box::pin(async move {
            let lookup = self.inner.mx_lookup(fqdn(domain)?).await.map_err(map_err)?;
            let mut out = Vec::new();
            for r in lookup.answers() {
                if let RData::MX(mx) = &r.data {
                    let exchange = mx.exchange.to_ascii();
                    out.push(MxRecord {
                        preference: mx.preference,
                        exchange: exchange.trim_end_matches('.').to_ascii_lowercase(),
                    });
                }
            }
            if out.is_empty() {
                return Err(LookupError::NotFound);
            }
            Ok(out)
        })
    }

    fn ipv4<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, LookupError>> {
        Box::pin(async move {
            let lookup = self.inner.ipv4_lookup(fqdn(host)?).await.map_err(map_err)?;
            let out: Vec<Ipv4Addr> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            if out.is_empty() {
                return Err(LookupError::NotFound);
            }
            Ok(out)
        })
    }

    fn ipv6<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, LookupError>> {
        Box::pin(async move {
            let lookup = self.inner.ipv6_lookup(fqdn(host)?).await.map_err(map_err)?;
            let out: Vec<Ipv6Addr> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::AAAA(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            if out.is_empty() {
                return Err(LookupError::NotFound);
            }
            Ok(out)
        })
    }
}

/// A fixed table of answers (names in lower case without the final dot). A name that
/// is in no table is NOT FOUND; a name marked failing answers a temporary error.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    inner: Arc<Mutex<Tables>>,
}

#[derive(Debug, Default)]
struct Tables {
    mx: HashMap<String, Vec<MxRecord>>,
    a: HashMap<String, Vec<IpAddr>>,
    failing: Vec<String>,
}

impl StaticResolver {
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Add an MX record (`exchange` `""` or `"."` for a null MX).
    pub fn mx(&self, domain: &str, preference: u16, exchange: &str) -> &StaticResolver {
        self.tables()
            .mx
            .entry(domain.to_ascii_lowercase())
            .or_default()
            .push(MxRecord {
                preference,
                exchange: exchange.trim_end_matches('.').to_ascii_lowercase(),
            });
        self
    }

    /// Add an address record (A or AAAA by the address family).
    pub fn addr(&self, host: &str, ip: IpAddr) -> &StaticResolver {
        self.tables()
            .a
            .entry(host.to_ascii_lowercase())
            .or_default()
            .push(ip);
        self
    }

    /// Every lookup of `name` fails temporarily (like SERVFAIL).
    pub fn fail(&self, name: &str) -> &StaticResolver {
        self.tables().failing.push(name.to_ascii_lowercase());
        self
    }

    fn check(&self, name: &str) -> Result<String, LookupError> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        if self.tables().failing.contains(&key) {
            return Err(LookupError::Temporary(format!("SERVFAIL for {key}")));
        }
        Ok(key)
    }

    fn addrs(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        let key = self.check(host)?;
        self.tables()
            .a
            .get(&key)
            .cloned()
            .ok_or(LookupError::NotFound)
    }
}

impl MxResolver for StaticResolver {
    fn mx<'a>(&'a self, domain: &'a str) -> BoxFuture<'a, Result<Vec<MxRecord>, LookupError>> {
        Box::pin(async move {
            let key = self.check(domain)?;
            self.tables()
                .mx
                .get(&key)
                .cloned()
                .ok_or(LookupError::NotFound)
        })
    }

    fn ipv4<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<Ipv4Addr>, LookupError>> {
        Box::pin(async move {
            let v: Vec<Ipv4Addr> = self
                .addrs(host)?
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect();
            if v.is_empty() {
                Err(LookupError::NotFound)
            } else {
                Ok(v)
            }
        })
    }

    fn ipv6<'a>(&'a self, host: &'a str) -> BoxFuture<'a, Result<Vec<Ipv6Addr>, LookupError>> {
        Box::pin(async move {
            let v: Vec<Ipv6Addr> = self
                .addrs(host)?
                .into_iter()
                .filter_map(|ip| match ip {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => None,
                })
                .collect();
            if v.is_empty() {
                Err(LookupError::NotFound)
            } else {
                Ok(v)
            }
        })
    }
}
