//! `config/tls.ini` as Haraka 3.0.0 reads it, reduced to what rustls can do.
//!
//! Every key is classified: supported, accepted with a warning (OpenSSL-only or
//! not implemented), or unknown (warning). Warnings are collected as [`Diag`]s
//! with file and line so the caller can log them once at start-up.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use haraka_config::{ConfigDir, Diag, IniValue, Section};
use ipnet::IpNet;

use crate::TlsError;

/// The lowest protocol version a side accepts. rustls implements TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// The options of one direction (inbound server or outbound client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideSettings {
    /// Key files, as written (relative to the config dir or absolute).
    pub keys: Vec<String>,
    /// Certificate files, paired with `keys` by index.
    pub certs: Vec<String>,
    /// `key` or `cert` was written in tls.ini (a failure to load them is then fatal).
    pub explicit: bool,
    /// CA bundle for verifying the peer.
    pub ca: Option<String>,
    pub min_version: MinVersion,
    pub request_cert: bool,
    pub reject_unauthorized: bool,
    pub honor_cipher_order: bool,
}

/// Everything the plugin and the outbound side take from `tls.ini`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls.ini` as located by the config crate.
    pub file: PathBuf,
    /// `[main]` overridden by `[inbound]`.
    pub inbound: SideSettings,
    /// `[outbound]` over the inheritable keys of `[main]`.
    pub outbound: SideSettings,
    /// `[no_tls_hosts]`: clients that are never offered STARTTLS.
    pub no_tls_hosts: Vec<IpNet>,
    /// `no_starttls_ports[]`: local ports without STARTTLS.
    pub no_starttls_ports: Vec<u16>,
    /// `requireAuthorized[]`: local ports where client certificates must verify.
    pub require_authorized: Vec<u16>,
    /// `[outbound] force_tls_hosts[]`.
    pub force_tls_hosts: Vec<String>,
    /// `[outbound] no_tls_hosts[]`.
    pub outbound_no_tls_hosts: Vec<String>,
    /// What was accepted but not applied, and unknown keys.
    pub warnings: Vec<Diag>,
}

/// Keys Haraka passes to OpenSSL that rustls has no equivalent for.
const OPENSSL_ONLY: &[&str] = &[
    "ciphers",
    "dhparam",
    "ecdhCurve",
    "secureProtocol",
    "secureOptions",
    "pfx",
    "passphrase",
    "crl",
    "sessionIdContext",
    "NPNProtocols",
    "ALPNProtocols",
    "session",
];

/// Keys read for one side (`[main]`, `[inbound]`, `[outbound]`).
const SIDE_KEYS: &[&str] = &[
    "key",
    "cert",
    "ca",
    "minVersion",
    "requestCert",
    "rejectUnauthorized",
    "honorCipherOrder",
];

/// `[main]`-only keys that are handled (or deliberately ignored) elsewhere.
const MAIN_ONLY: &[&str] = &[
    "no_starttls_ports",
    "requireAuthorized",
    "requestOCSP",
    "enableOCSPStapling",
    "mutual_tls",
    "force_tls_hosts",
];

/// Keys `[outbound]` inherits from `[main]` (H300 `outbound/tls.js`).
const OUTBOUND_INHERITS: &[&str] = &[
    "key",
    "cert",
    "minVersion",
    "requestCert",
    "honorCipherOrder",
    "rejectUnauthorized",
];

impl TlsSettings {
    /// Read `tls.ini` from `cfg`. A missing file gives Haraka's defaults.
    pub fn load(cfg: &ConfigDir) -> Result<TlsSettings, TlsError> {
        let ini = cfg.ini("tls.ini")?;
        let empty = Section::default();
        let main = ini.section("main").unwrap_or(&empty);
        let inbound_sec = ini.section("inbound");
        let outbound_sec = ini.section("outbound");
        let mut warnings = Vec::new();

        let inbound_chain: Vec<&Section> = inbound_sec.into_iter().chain([main]).collect();
        let inbound = side(&inbound_chain, None, &ini.file, &mut warnings);

        let outbound_chain: Vec<&Section> = outbound_sec.into_iter().collect();
        let outbound = side(&outbound_chain, Some(main), &ini.file, &mut warnings);

        let mut settings = TlsSettings {
            file: ini.file.clone(),
            inbound,
            outbound,
            no_tls_hosts: Vec::new(),
            no_starttls_ports: ports(main, "no_starttls_ports", &mut warnings),
            require_authorized: ports(main, "requireAuthorized", &mut warnings),
            force_tls_hosts: match outbound_sec {
                Some(s) if has_key(s, "force_tls_hosts") => strings(s, "force_tls_hosts"),
                _ => strings(main, "force_tls_hosts"),
            },
            outbound_no_tls_hosts: outbound_sec
                .map(|s| strings(s, "no_tls_hosts"))
                .unwrap_or_default(),
            warnings: Vec::new(),
        };

        for section in &ini.sections {
            match section.name.as_str() {
                "main" => check_main(section, &mut warnings),
                "inbound" => check_keys(section, SIDE_KEYS, &[], &mut warnings),
                "outbound" => check_keys(
                    section,
                    SIDE_KEYS,
                    &["force_tls_hosts", "no_tls_hosts"],
                    &mut warnings,
                ),
                "no_tls_hosts" => {
                    settings.no_tls_hosts = ip_list(section, &mut warnings);
                }
                "redis" => check_redis(section, &mut warnings),
                "mutual_auth_hosts" | "mutual_auth_hosts_exclude" => {
                    for (key, value) in &section.entries {
                        warnings.push(diag(
                            value,
                            format!(
                                "[{}] {key}: mutual TLS host lists are not implemented; ignored",
                                section.name
                            ),
                        ));
                    }
                }
                other => {
                    if let Some((_, value)) = section.entries.first() {
                        warnings.push(diag(
                            value,
                            format!(
                                "[{other}]: per-certificate TLS options are not supported; \
                                 the [main] options apply to every certificate"
                            ),
                        ));
                    }
                }
            }
        }
        settings.warnings = warnings;
        Ok(settings)
    }
}

/// The options of one side: the first section in `chain` that has a key wins; keys
/// listed in [`OUTBOUND_INHERITS`] then fall back to `inherit`.
fn side(
    chain: &[&Section],
    inherit: Option<&Section>,
    file: &Path,
    warnings: &mut Vec<Diag>,
) -> SideSettings {
    let find = |key: &str| -> Option<(&Section, &IniValue)> {
        for s in chain {
            if let Some(v) = s.get(key).or_else(|| s.array(key).and_then(<[_]>::last)) {
                return Some((s, v));
            }
        }
        let parent = inherit.filter(|_| OUTBOUND_INHERITS.contains(&key))?;
        let v = parent
            .get(key)
            .or_else(|| parent.array(key).and_then(<[_]>::last))?;
        Some((parent, v))
    };
    let list = |key: &str| -> Option<Vec<String>> {
        let (section, _) = find(key)?;
        Some(strings(section, key))
    };
    let flag = |key: &str, default: bool| match find(key) {
        Some((_, IniValue { value: None, .. })) => true,
        Some((_, IniValue { value: Some(v), .. })) => haraka_config::is_true(v),
        None => default,
    };

    let keys = list("key");
    let certs = list("cert");
    let explicit = keys.is_some() || certs.is_some();
    let keys = keys.unwrap_or_else(|| vec!["tls_key.pem".to_owned()]);
    let certs = certs.unwrap_or_else(|| vec!["tls_cert.pem".to_owned()]);
    if keys.len() != certs.len() {
        warnings.push(Diag {
            file: file.to_owned(),
            line: 0,
            message: format!(
                "number of keys ({}) not equal to certs ({}); only complete pairs are used",
                keys.len(),
                certs.len()
            ),
        });
    }

    let min_version = match find("minVersion") {
        None => MinVersion::Tls12,
        Some((_, v)) => {
            let text = v.value.as_deref().unwrap_or("").trim();
            match text.to_ascii_lowercase().as_str() {
                "tlsv1.3" => MinVersion::Tls13,
                "tlsv1.2" => MinVersion::Tls12,
                "tlsv1" | "tlsv1.1" => {
                    warnings.push(diag(
                        v,
                        format!(
                            "minVersion={text}: only TLS 1.2 and 1.3 are available; using TLSv1.2"
                        ),
                    ));
                    MinVersion::Tls12
                }
                _ => {
                    warnings.push(diag(
                        v,
                        format!("minVersion={text}: not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3; using TLSv1.2"),
                    ));
                    MinVersion::Tls12
                }
            }
        }
    };

    SideSettings {
        keys,
        certs,
        explicit,
        ca: chain
            .iter()
            .find_map(|s| s.get("ca"))
            .and_then(|v| v.value.clone())
            .filter(|v| !v.trim().is_empty()),
        min_version,
        request_cert: flag("requestCert", true),
        reject_unauthorized: flag("rejectUnauthorized", false),
        honor_cipher_order: flag("honorCipherOrder", true),
    }
}

/// A string or `key[]=` list; empty values are dropped.
fn strings(section: &Section, key: &str) -> Vec<String> {
    let values: Vec<&IniValue> = match section.array(key) {
        Some(items) if !items.is_empty() => items.iter().collect(),
        _ => section.get(key).into_iter().collect(),
    };
    values
        .into_iter()
        .filter_map(|v| v.value.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn has_key(section: &Section, key: &str) -> bool {
    section.get(key).is_some() || section.array(key).is_some()
}

/// A list of port numbers (`no_starttls_ports[]=587`; a plain value is accepted too).
fn ports(section: &Section, key: &str, warnings: &mut Vec<Diag>) -> Vec<u16> {
    let mut out = Vec::new();
    let values: Vec<&IniValue> = match section.array(key) {
        Some(items) if !items.is_empty() => items.iter().collect(),
        _ => section.get(key).into_iter().collect(),
    };
    for v in values {
        let text = v.value.as_deref().unwrap_or("").trim();
        match text.parse::<u16>() {
            Ok(port) => out.push(port),
            Err(_) => warnings.push(diag(v, format!("{key}: {text:?} is not a port number"))),
        }
    }
    out
}

/// `[no_tls_hosts]`: IP addresses and CIDR ranges as keys.
fn ip_list(section: &Section, warnings: &mut Vec<Diag>) -> Vec<IpNet> {
    let mut out = Vec::new();
    for (key, value) in &section.entries {
        let key = key.trim();
        if let Ok(net) = key.parse::<IpNet>() {
            out.push(net);
        } else if let Ok(ip) = key.parse::<IpAddr>() {
            out.push(IpNet::from(ip));
        } else {
            warnings.push(diag(
                value,
                format!("[no_tls_hosts] {key}: not an IP address or CIDR range; ignored"),
            ));
        }
    }
    out
}

fn check_main(section: &Section, warnings: &mut Vec<Diag>) {
    check_keys(section, SIDE_KEYS, MAIN_ONLY, warnings);
    for key in ["requestOCSP", "enableOCSPStapling", "mutual_tls"] {
        if let Some(v) = section.get(key)
            && v.value.as_deref().is_none_or(haraka_config::is_true)
        {
            let what = if key == "mutual_tls" {
                "client certificates on outgoing connections follow [outbound] key/cert"
            } else {
                "OCSP stapling is not implemented"
            };
            warnings.push(diag(v, format!("{key}: {what}; ignored")));
        }
    }
}

fn check_redis(section: &Section, warnings: &mut Vec<Diag>) {
    if let Some(v) = section.get("disable_for_failed_hosts")
        && v.value.as_deref().is_none_or(haraka_config::is_true)
    {
        warnings.push(diag(
            v,
            "[redis] disable_for_failed_hosts: remembering failed TLS peers is not implemented; ignored"
                .to_owned(),
        ));
    }
}

/// Warn about OpenSSL-only and unknown keys of `section`.
fn check_keys(section: &Section, known: &[&str], extra: &[&str], warnings: &mut Vec<Diag>) {
    let names = section.entries.iter().map(|(k, v)| (k.as_str(), v)).chain(
        section
            .arrays
            .iter()
            .filter_map(|(k, vs)| vs.first().map(|v| (k.as_str(), v))),
    );
    for (key, value) in names {
        let bare = key.strip_suffix("[]").unwrap_or(key);
        if known.contains(&bare) || extra.contains(&bare) {
            continue;
        }
        let message = if OPENSSL_ONLY.contains(&bare) {
            format!(
                "[{}] {bare}: OpenSSL option without a rustls equivalent; ignored",
                section.name
            )
        } else {
            format!("[{}] {bare}: unknown key; ignored", section.name)
        };
        warnings.push(diag(value, message));
    }
}

fn diag(value: &IniValue, message: String) -> Diag {
    Diag {
        file: value.file.clone(),
        line: value.line,
        message,
    }
}
