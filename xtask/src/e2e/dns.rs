//! A private `unbound` on a loopback address that answers only its own
//! local data: the test zone's MX and A records. Every other name is
//! REFUSED at once, and the server is forbidden to query any address, so it
//! never sends a packet anywhere.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::proc::{Daemon, wait_file_line};
use crate::util;

/// The zone the resolver is authoritative for.
pub const ZONE: &str = "test";

/// One named host of the test zone and what it means to the checks.
#[derive(Debug, Clone)]
pub enum Record {
    /// `domain MX pref host` plus `host A ip`.
    Mx {
        domain: String,
        pref: u16,
        host: String,
        ip: Ipv4Addr,
    },
    /// `domain MX 0 .` (RFC 7505 null MX: the domain accepts no mail).
    NullMx { domain: String },
    /// `name A ip` alone (a domain without MX: its A record is the implicit MX).
    A { name: String, ip: Ipv4Addr },
    /// A raw unbound `local-data` record, e.g. `"x.test. 60 IN TXT hi"`.
    Raw(String),
}

impl Record {
    /// A domain whose single MX host has address `ip`; the host is `mx.<domain>`.
    pub fn mx(domain: &str, ip: Ipv4Addr) -> Self {
        Self::Mx {
            domain: domain.to_owned(),
            pref: 10,
            host: format!("mx.{domain}"),
            ip,
        }
    }

    fn local_data(&self) -> Vec<String> {
        match self {
            Self::Mx {
                domain,
                pref,
                host,
                ip,
            } => vec![
                format!("{domain}. 60 IN MX {pref} {host}."),
                format!("{host}. 60 IN A {ip}"),
            ],
            Self::NullMx { domain } => vec![format!("{domain}. 60 IN MX 0 .")],
            Self::A { name, ip } => vec![format!("{name}. 60 IN A {ip}")],
            Self::Raw(r) => vec![r.clone()],
        }
    }
}

/// What `dig` saw.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The response code: NOERROR, NXDOMAIN, REFUSED, ...
    pub status: String,
    /// The answer section, one record per line, as `dig` prints it.
    pub records: Vec<String>,
}

impl Answer {
    /// The RDATA of every answer record (`10 mx.a.test.`, `127.0.0.31`).
    pub fn data(&self) -> Vec<String> {
        self.records
            .iter()
            .map(|r| r.split_whitespace().skip(4).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

/// The running DNS server; stopped when dropped.
pub struct Unbound {
    addr: SocketAddrV4,
    dir: PathBuf,
    daemon: Daemon,
}

impl Unbound {
    /// Write the config for `records` under `base/dns`, start unbound in the
    /// foreground and wait until it serves.
    pub fn start(base: &Path, addr: SocketAddrV4, records: &[Record]) -> anyhow::Result<Self> {
        let dir = base.join("dns");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let conf = dir.join("unbound.conf");
        std::fs::write(&conf, config(&dir, addr, records))
            .with_context(|| format!("writing {}", conf.display()))?;
        util::output(Command::new("unbound-checkconf").arg(&conf))?;
        let log = dir.join("unbound.log");
        let args = vec!["-d".to_owned(), "-c".to_owned(), conf.display().to_string()];
        let mut daemon = Daemon::new("unbound", Path::new("unbound"), &args, &log);
        daemon.start()?;
        let mut this = Self { addr, dir, daemon };
        // unbound -d logs "start of service" once its sockets are open.
        if let Err(e) = wait_file_line(&log, 0, "start of service", Duration::from_secs(15)) {
            let exited = this.daemon.try_wait()?;
            bail!(
                "unbound did not start ({e:#}; exit {exited:?}); log:\n{}",
                this.daemon.log()
            );
        }
        Ok(this)
    }

    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// Its folder (config and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// unbound's log: one `info:` line per query it answered.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Query the server with `dig`.
    pub fn dig(&self, name: &str, rtype: &str) -> anyhow::Result<Answer> {
        let out = util::output(
            Command::new("dig")
                .arg(format!("@{}", self.addr.ip()))
                .args(["-p", &self.addr.port().to_string()])
                .args(["+time=2", "+tries=1", "+noall", "+comments", "+answer"])
                .args([name, rtype]),
        )?;
        let status = out
            .lines()
            .find_map(|l| l.split_once("status: ").map(|(_, s)| s))
            .and_then(|s| s.split(',').next())
            .with_context(|| format!("no status in dig's answer:\n{out}"))?
            .to_owned();
        let records = out
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
            .map(str::to_owned)
            .collect();
        Ok(Answer { status, records })
    }

    /// Stop the server.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.daemon.stop(Duration::from_secs(5)).map(|_| ())
    }
}

fn config(dir: &Path, addr: SocketAddrV4, records: &[Record]) -> String {
    let d = dir.display();
    let mut s = format!(
        "# private resolver for cargo xtask e2e: local data only, never queries anything\n\
         server:\n\
         \x20 interface: {ip}@{port}\n\
         \x20 port: {port}\n\
         \x20 do-ip4: yes\n\
         \x20 do-ip6: no\n\
         \x20 do-udp: yes\n\
         \x20 do-tcp: yes\n\
         \x20 num-threads: 1\n\
         \x20 chroot: \"\"\n\
         \x20 username: \"\"\n\
         \x20 directory: \"{d}\"\n\
         \x20 pidfile: \"{d}/unbound-own.pid\"\n\
         \x20 use-syslog: no\n\
         \x20 logfile: \"\"\n\
         \x20 verbosity: 1\n\
         \x20 log-queries: yes\n\
         \x20 access-control: 127.0.0.0/8 allow\n\
         \x20 module-config: \"iterator\"\n\
         \x20 do-not-query-localhost: yes\n\
         \x20 do-not-query-address: 0.0.0.0/0\n\
         \x20 do-not-query-address: ::/0\n\
         \x20 local-zone: \".\" refuse\n\
         \x20 local-zone: \"{ZONE}.\" static\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    let data: Vec<String> = records.iter().flat_map(Record::local_data).collect();
    // A name outside the test zone gets a static zone of its own, so it is
    // answered (and its siblings refused) rather than falling under ".".
    let mut zones: Vec<&str> = data
        .iter()
        .filter_map(|d| d.split_whitespace().next())
        .filter(|owner| !owner.trim_end_matches('.').ends_with(&format!(".{ZONE}")))
        .collect();
    zones.sort_unstable();
    zones.dedup();
    for z in zones {
        let _ = writeln!(s, "  local-zone: \"{z}\" static");
    }
    for d in &data {
        let _ = writeln!(s, "  local-data: \"{d}\"");
    }
    s.push_str("remote-control:\n  control-enable: no\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_serves_local_data_only() {
        let ip = Ipv4Addr::new(127, 0, 0, 31);
        let records = [
            Record::mx("a.test", ip),
            Record::NullMx {
                domain: "null.test".into(),
            },
            Record::A {
                name: "example.net".into(),
                ip,
            },
        ];
        let c = config(
            Path::new("/x"),
            SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 153), 5353),
            &records,
        );
        for line in [
            "interface: 127.0.0.153@5353",
            "local-zone: \".\" refuse",
            "do-not-query-address: 0.0.0.0/0",
            "local-data: \"a.test. 60 IN MX 10 mx.a.test.\"",
            "local-data: \"mx.a.test. 60 IN A 127.0.0.31\"",
            "local-data: \"null.test. 60 IN MX 0 .\"",
            "local-zone: \"example.net.\" static",
        ] {
            assert!(c.contains(line), "missing {line:?} in\n{c}");
        }
        assert!(
            !c.contains("local-zone: \"a.test.\""),
            "a .test name got its own zone:\n{c}"
        );
    }

    #[test]
    fn answer_data_is_the_rdata() {
        let a = Answer {
            status: "NOERROR".into(),
            records: vec!["mx-ok.test.\t\t60\tIN\tMX\t10 mx.mx-ok.test.".into()],
        };
        assert_eq!(a.data(), ["10 mx.mx-ok.test."]);
    }
}
