//! The server roots the benchmark runs, in Haraka's own layout
//! (`ROOT/config/...`), read alike by haraka-rs and Haraka 3.0.0: the example setup's
//! haraka-in and haraka-out with their addresses moved to loopback.
//!
//! * haraka-in: `xclient`, `queue/smtp_forward` (to the sink),
//!   `rcpt_to.in_host_list`, `tls`, in the example setup's order.
//! * haraka-out: `relay` (ACL 127.0.0.0/8) and `tls`; accepted mail goes to
//!   the durable outbound queue and is delivered to the MX the loopback DNS
//!   server names for the recipient's domain.

use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::e2e::Cert;

/// The domain haraka-in accepts mail for (its `host_list`).
pub const IN_DOMAIN: &str = "example.com";
/// The domain haraka-out delivers to: its MX is the sink.
pub const OUT_DOMAIN: &str = "bench.test";
/// The envelope sender of every message.
pub const SENDER: &str = "sender@example.net";

/// Which of the example setup's two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    In,
    Out,
}

impl Role {
    /// The recipient of every message sent to this role.
    pub fn recipient(self) -> String {
        match self {
            Role::In => format!("bench@{IN_DOMAIN}"),
            Role::Out => format!("bench@{OUT_DOMAIN}"),
        }
    }
}

/// Where the root's server listens and what it talks to.
#[derive(Debug, Clone)]
pub struct RootSpec {
    pub role: Role,
    pub listen: SocketAddrV4,
    /// haraka-in's forward destination (the sink).
    pub sink: SocketAddrV4,
    /// haraka-out's DNS server (`outbound.ini nameservers`; Haraka's own
    /// resolver is pointed at it by the preload script, see `haraka_js`).
    pub dns: SocketAddrV4,
    /// Extra `smtp.ini` lines (Haraka's `nodes=`).
    pub smtp_ini_extra: Vec<String>,
}

/// Write the root for `spec` at `dir` (replacing what was there); returns `dir`.
pub fn write(dir: &Path, spec: &RootSpec, cert: &Cert) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let config = dir.join("config");
    std::fs::create_dir_all(&config).with_context(|| format!("creating {}", config.display()))?;
    std::fs::create_dir_all(dir.join("queue")).context("creating the queue folder")?;
    for (name, text) in files(spec, cert) {
        let path = config.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// (file name under `config/`, content) of the root.
pub fn files(spec: &RootSpec, cert: &Cert) -> Vec<(&'static str, String)> {
    let mut smtp_ini = format!("listen={}\n", spec.listen);
    for line in &spec.smtp_ini_extra {
        let _ = writeln!(smtp_ini, "{line}");
    }
    let tls_ini = "key=bench-tls.pem\ncert=bench-tls.pem\n".to_owned();
    let pem = format!("{}{}", cert.key_pem, cert.cert_pem);
    let mut files = vec![
        ("smtp.ini", smtp_ini),
        // Haraka's level when a root has no log.ini; stated so both servers log alike.
        ("log.ini", "[main]\nlevel=warn\n".to_owned()),
        ("tls.ini", tls_ini),
        ("bench-tls.pem", pem),
    ];
    match spec.role {
        Role::In => files.extend([
            ("me", "mail.example.com\n".to_owned()),
            (
                "plugins",
                "xclient\nqueue/smtp_forward\nrcpt_to.in_host_list\ntls\n".to_owned(),
            ),
            ("host_list", format!("{IN_DOMAIN}\n")),
            (
                "smtp_forward.ini",
                format!(
                    "enable_outbound=false\nhost={}\nport={}\n",
                    spec.sink.ip(),
                    spec.sink.port()
                ),
            ),
        ]),
        Role::Out => files.extend([
            ("me", "mailrelay.example.com\n".to_owned()),
            ("plugins", "relay\ntls\n".to_owned()),
            (
                "relay.ini",
                "[relay]\nacl=true\nforce_routing=true\ndest_domains=false\nall=false\n".to_owned(),
            ),
            ("relay_acl_allow", "127.0.0.0/8\n".to_owned()),
            // local_mx_ok: the MX is on loopback, which both servers refuse by default.
            // nameservers: haraka-rs's resolver setting (Haraka ignores the key).
            (
                "outbound.ini",
                format!("local_mx_ok=true\nnameservers={}\n", spec.dns),
            ),
        ]),
    }
    files
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn spec(role: Role) -> RootSpec {
        RootSpec {
            role,
            listen: "127.0.0.72:2525".parse().unwrap(),
            sink: "127.0.0.71:25".parse().unwrap(),
            dns: "127.0.0.76:5353".parse().unwrap(),
            smtp_ini_extra: vec!["nodes=0".into()],
        }
    }

    fn get<'a>(files: &'a [(&str, String)], name: &str) -> &'a str {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.as_str())
            .unwrap()
    }

    #[test]
    fn haraka_in_root() {
        let cert = Cert::self_signed(&["mail.example.com"]).unwrap();
        let f = files(&spec(Role::In), &cert);
        assert_eq!(get(&f, "smtp.ini"), "listen=127.0.0.72:2525\nnodes=0\n");
        assert!(get(&f, "smtp_forward.ini").contains("host=127.0.0.71\nport=25\n"));
        assert_eq!(get(&f, "host_list"), "example.com\n");
        assert!(get(&f, "bench-tls.pem").contains("BEGIN CERTIFICATE"));
        assert!(!f.iter().any(|(n, _)| *n == "outbound.ini"));
    }

    #[test]
    fn haraka_out_root() {
        let cert = Cert::self_signed(&["mailrelay.example.com"]).unwrap();
        let f = files(&spec(Role::Out), &cert);
        assert_eq!(get(&f, "plugins"), "relay\ntls\n");
        assert_eq!(get(&f, "relay_acl_allow"), "127.0.0.0/8\n");
        assert!(get(&f, "outbound.ini").contains("nameservers=127.0.0.76:5353"));
        assert!(get(&f, "relay.ini").starts_with("[relay]\nacl=true\n"));
    }

    #[test]
    fn writes_a_real_layout() {
        let dir = std::env::temp_dir().join(format!("bench-root-test-{}", std::process::id()));
        let cert = Cert::self_signed(&["x.test"]).unwrap();
        write(&dir, &spec(Role::Out), &cert).unwrap();
        assert!(dir.join("config/plugins").is_file());
        assert!(dir.join("queue").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
