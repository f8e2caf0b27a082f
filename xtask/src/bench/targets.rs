//! The five targets of one invocation, their loopback addresses, and how
//! each server is started. A target that cannot run says why, and the rest
//! of the invocation goes on.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;

use super::haraka_js::HarakaJs;
use super::procs::Proc;
use super::roots::{self, Role, RootSpec};
use crate::e2e::Cert;

const fn lo(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// `smtp-sink`: every message ends here. Port 25, because Haraka delivers
/// to an MX on port 25 and has no setting to change that.
pub const SINK: SocketAddrV4 = SocketAddrV4::new(lo(71), 25);
/// The DNS server (MX of [`roots::OUT_DOMAIN`] is the sink).
pub const DNS: SocketAddrV4 = SocketAddrV4::new(lo(76), 5353);

/// One row of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `smtp-source` straight to `smtp-sink`: the limit of the machine.
    Direct,
    RsIn,
    HarakaIn,
    RsOut,
    HarakaOut,
}

impl Kind {
    /// Every target, in the order they run.
    pub const ALL: [Kind; 5] = [
        Kind::Direct,
        Kind::RsIn,
        Kind::HarakaIn,
        Kind::RsOut,
        Kind::HarakaOut,
    ];

    /// The name `--targets` takes.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::RsIn => "haraka-rs-in",
            Kind::HarakaIn => "haraka-in",
            Kind::RsOut => "haraka-rs-out",
            Kind::HarakaOut => "haraka-out",
        }
    }

    /// The row label of the report.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Direct => "smtp-source → smtp-sink (limit)",
            Kind::RsIn => "haraka-rs as haraka-in",
            Kind::HarakaIn => "Haraka 3.0.0 as haraka-in",
            Kind::RsOut => "haraka-rs as haraka-out",
            Kind::HarakaOut => "Haraka 3.0.0 as haraka-out",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// haraka-in or haraka-out (`None` for the direct run).
    pub fn role(self) -> Option<Role> {
        match self {
            Kind::Direct => None,
            Kind::RsIn | Kind::HarakaIn => Some(Role::In),
            Kind::RsOut | Kind::HarakaOut => Some(Role::Out),
        }
    }

    /// Where the load is sent.
    pub fn addr(self) -> SocketAddrV4 {
        match self {
            Kind::Direct => SINK,
            Kind::RsIn => SocketAddrV4::new(lo(72), 2525),
            Kind::RsOut => SocketAddrV4::new(lo(73), 2526),
            Kind::HarakaIn => SocketAddrV4::new(lo(74), 2525),
            Kind::HarakaOut => SocketAddrV4::new(lo(75), 2526),
        }
    }

    /// The Haraka 3.0.0 target of the same role (what a ratio is taken against).
    pub fn reference(self) -> Option<Kind> {
        match self {
            Kind::RsIn => Some(Kind::HarakaIn),
            Kind::RsOut => Some(Kind::HarakaOut),
            _ => None,
        }
    }

    pub fn is_haraka_js(self) -> bool {
        matches!(self, Kind::HarakaIn | Kind::HarakaOut)
    }

    pub fn is_haraka_rs(self) -> bool {
        matches!(self, Kind::RsIn | Kind::RsOut)
    }
}

/// What the servers need; a missing piece is the reason its targets are skipped.
pub struct Ctx {
    /// This invocation's folder (roots, logs, queues).
    pub dir: PathBuf,
    pub haraka_rs: Result<PathBuf, String>,
    pub haraka_js: Result<HarakaJs, String>,
    /// Whether the DNS server runs (the haraka-out targets need it).
    pub dns: Result<(), String>,
    /// Haraka's `smtp.ini nodes=` (empty: unset).
    pub haraka_nodes: String,
    /// Load the TCP_NODELAY preload into Haraka too.
    pub haraka_nodelay: bool,
    pub cert: Cert,
}

/// How long a server may take to start listening.
const START: Duration = Duration::from_secs(60);

/// Start the server of `kind` (`None` for the direct run); `Err` is the
/// reason to skip the target.
pub fn start(kind: Kind, ctx: &Ctx) -> Result<Option<Proc>, String> {
    let Some(role) = kind.role() else {
        return Ok(None);
    };
    if role == Role::Out {
        ctx.dns.clone()?;
    }
    let root_dir = ctx.dir.join(kind.name());
    let mut spec = RootSpec {
        role,
        listen: kind.addr(),
        sink: SINK,
        dns: DNS,
        smtp_ini_extra: Vec::new(),
    };
    let mut cmd = if kind.is_haraka_rs() {
        let bin = ctx.haraka_rs.clone()?;
        // Every benchmark client (and the idle-connection run) comes from one
        // address: the per-client cap would measure refusals, not the server.
        spec.smtp_ini_extra.push("max_connections_per_ip=0".into());
        let mut c = Command::new(bin);
        // The same level as log.ini, in case the binary does not read that file.
        c.arg("-c").arg(&root_dir).env("RUST_LOG", "warn");
        c
    } else {
        let haraka = ctx.haraka_js.clone()?;
        if !ctx.haraka_nodes.is_empty() {
            spec.smtp_ini_extra
                .push(format!("nodes={}", ctx.haraka_nodes));
        }
        haraka.command(&root_dir, DNS, ctx.haraka_nodelay)
    };
    roots::write(&root_dir, &spec, &ctx.cert).map_err(|e| format!("{e:#}"))?;
    let log = ctx.dir.join(format!("{}.log", kind.name()));
    spawn_and_wait(kind, &mut cmd, &log).map_err(|e| format!("{e:#}"))
}

fn spawn_and_wait(kind: Kind, cmd: &mut Command, log: &Path) -> anyhow::Result<Option<Proc>> {
    let mut proc = Proc::spawn(kind.label(), cmd, Some(log))?;
    super::wait_accepts(kind.addr().into(), &mut proc, START)
        .with_context(|| format!("starting {} (log: {})", kind.label(), log.display()))?;
    Ok(Some(proc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_addresses_differ() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
            let others = Kind::ALL.iter().filter(|o| o.addr() == k.addr()).count();
            assert_eq!(others, 1, "{k:?}");
            assert!(k.addr().ip().is_loopback());
        }
        assert_eq!(Kind::from_name("postfix"), None);
        assert_eq!(Kind::RsOut.reference(), Some(Kind::HarakaOut));
        assert!(DNS.ip().is_loopback() && SINK.ip().is_loopback());
    }
}
