//! Haraka 3.0.0, the reference: installed with npm into
//! `target/bench/haraka-3.0.0` when missing, and run as
//! `node -r bench-dns.js .../bin/haraka -c ROOT`.
//!
//! The preload script points every DNS resolver of the node process (the
//! callback API Haraka's core uses for rDNS and outbound, the promise API and
//! every `Resolver` that haraka-net-utils creates for MX lookups) at the
//! benchmark's loopback DNS server, so Haraka never asks the machine's
//! configured name server.

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util;

/// The version compared against.
pub const VERSION: &str = "3.0.0";

/// The installed Haraka: its `bin/haraka` and the preload script.
#[derive(Debug, Clone)]
pub struct HarakaJs {
    pub bin: PathBuf,
    pub preload: PathBuf,
    /// The optional TCP_NODELAY preload (`--haraka-nodelay`).
    pub nodelay: PathBuf,
    pub node: String,
}

/// The folder Haraka is installed into.
pub fn install_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| util::root().join("target"), PathBuf::from);
    target.join("bench").join(format!("haraka-{VERSION}"))
}

/// Install Haraka 3.0.0 with npm unless that exact version is there.
pub fn ensure() -> anyhow::Result<HarakaJs> {
    let dir = install_dir();
    let pkg = dir.join("node_modules/Haraka");
    if installed_version(&pkg).as_deref() != Some(VERSION) {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        eprintln!("bench: installing Haraka {VERSION} into {}", dir.display());
        // --ignore-scripts: the optional native add-ons (sqlite3, syslog) are
        // not needed by the plugins benchmarked and would need a compiler.
        util::run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--ignore-scripts"])
                .args(["--loglevel", "error", "--prefix"])
                .arg(&dir)
                .arg(format!("Haraka@{VERSION}")),
        )?;
        let got = installed_version(&pkg);
        if got.as_deref() != Some(VERSION) {
            bail!("npm installed Haraka {got:?}, not {VERSION}");
        }
    }
    let preload = dir.join("bench-dns.js");
    std::fs::write(&preload, PRELOAD).with_context(|| format!("writing {}", preload.display()))?;
    let nodelay = dir.join("bench-nodelay.js");
    std::fs::write(&nodelay, NODELAY).with_context(|| format!("writing {}", nodelay.display()))?;
    let node = util::output(Command::new("node").arg("--version"))?
        .trim()
        .to_owned();
    Ok(HarakaJs {
        bin: pkg.join("bin/haraka"),
        preload,
        nodelay,
        node,
    })
}

fn installed_version(pkg: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pkg.join("package.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["version"].as_str().map(str::to_owned)
}

impl HarakaJs {
    /// The command that runs Haraka on `root`, its DNS pinned to `dns`;
    /// `nodelay` also sets TCP_NODELAY on every socket.
    pub fn command(&self, root: &Path, dns: SocketAddrV4, nodelay: bool) -> Command {
        let mut cmd = Command::new("node");
        cmd.arg("-r").arg(&self.preload);
        if nodelay {
            cmd.arg("-r").arg(&self.nodelay);
        }
        cmd.arg(&self.bin)
            .arg("-c")
            .arg(root)
            .env("HARAKA_BENCH_DNS", dns.to_string());
        cmd
    }
}

/// Loaded before Haraka: every resolver asks `HARAKA_BENCH_DNS` only.
const PRELOAD: &str = r"'use strict';
// cargo xtask bench: every DNS resolver of this process asks the benchmark's
// loopback DNS server only (HARAKA_BENCH_DNS=ip:port), never the system's.
const dns = require('node:dns');
const server = process.env.HARAKA_BENCH_DNS;
if (!server) throw new Error('HARAKA_BENCH_DNS is not set');
const servers = [server];
dns.setServers(servers);
dns.promises.setServers(servers);
for (const api of [dns, dns.promises]) {
    const Base = api.Resolver;
    api.Resolver = class extends Base {
        constructor (options) {
            super(options);
            this.setServers(servers);
        }
    };
}
";

/// `--haraka-nodelay`: TCP_NODELAY on every socket Haraka opens or accepts
/// (Haraka 3.0.0 leaves Nagle's algorithm on).
const NODELAY: &str = r"'use strict';
// cargo xtask bench --haraka-nodelay: disable Nagle's algorithm on every socket.
const net = require('node:net');
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
    this.setNoDelay(true);
    return connect.apply(this, args);
};
const emit = net.Server.prototype.emit;
net.Server.prototype.emit = function (event, socket, ...rest) {
    if (event === 'connection' && socket && typeof socket.setNoDelay === 'function') {
        socket.setNoDelay(true);
    }
    return emit.call(this, event, socket, ...rest);
};
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preload_pins_every_resolver() {
        for needle in [
            "dns.setServers(servers)",
            "dns.promises.setServers(servers)",
            "api.Resolver = class extends Base",
            "HARAKA_BENCH_DNS",
        ] {
            assert!(PRELOAD.contains(needle), "{needle}");
        }
    }

    #[test]
    fn the_command_names_root_and_dns() {
        let h = HarakaJs {
            bin: "/x/bin/haraka".into(),
            preload: "/x/bench-dns.js".into(),
            nodelay: "/x/bench-nodelay.js".into(),
            node: "v20".into(),
        };
        let dns: SocketAddrV4 = "127.0.0.76:5353"
            .parse()
            .unwrap_or(SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 53));
        let args = |nodelay| -> Vec<String> {
            h.command(Path::new("/r"), dns, nodelay)
                .get_args()
                .map(|a| a.to_string_lossy().into())
                .collect()
        };
        assert_eq!(
            args(false),
            ["-r", "/x/bench-dns.js", "/x/bin/haraka", "-c", "/r"]
        );
        assert_eq!(
            args(true),
            [
                "-r",
                "/x/bench-dns.js",
                "-r",
                "/x/bench-nodelay.js",
                "/x/bin/haraka",
                "-c",
                "/r"
            ]
        );
    }
}
