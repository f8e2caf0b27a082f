//! Haraka's `early_talker` plugin for haraka-rs.
//!
//! Waits `pause` at `connect_init` (which holds the greeting back) and at `data`,
//! then looks at `connection.early_talker`, which the session sets when a client
//! sent input before the greeting or more than it may pipeline. An early talker
//! is answered `554 You talk too soon` and disconnected at `data` (with
//! `reject=false` it is only recorded in the results). Authenticated and
//! relaying clients, whitelisted addresses and loopback or private clients are
//! not checked, as in Haraka.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use haraka_config::{ConfigDir, ConfigErrors, IniSpec, Watched};
use haraka_plugin_api::{Connection, Hooks, Outcome, Plugin, PluginError, PluginInit, Register};
use ipnet::IpNet;

/// The reply to an early talker.
pub const TOO_SOON: &str = "You talk too soon";

/// `early_talker.ini`: `[main] reject` is a boolean, true by default; Haraka
/// ships `pause=5`.
pub const EARLY_TALKER_INI: IniSpec = IniSpec {
    name: "early_talker.ini",
    booleans: &["+main.reject"],
    shipped: Some("pause=5\n"),
    fixup: None,
};
/// The older value file: the pause in milliseconds, read when the ini file sets
/// none.
pub const PAUSE_FILE: &str = "early_talker.pause";

/// The plugin's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None`: the plugin does nothing.
    pub pause: Option<Duration>,
    pub reject: bool,
    /// `[ip_whitelist]` keys: addresses or CIDR ranges.
    pub whitelist: Vec<IpNet>,
}

/// Create the plugin (a [`haraka_plugin_api::PluginFactory`]).
pub fn factory(init: &PluginInit<'_>) -> Result<Arc<dyn Plugin>, PluginError> {
    Ok(haraka_plugin_api::plugin(
        init.name,
        EarlyTalker::new(init.name, init.config)?,
    ))
}

/// Read the settings; the files to watch.
pub fn load(cfg: &ConfigDir) -> Result<(Settings, Vec<PathBuf>), ConfigErrors> {
    let ini = cfg.plugin_ini(&EARLY_TALKER_INI)?;
    let seconds = |text: &str| {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)))
    };
    let pause = match ini.get("main", "pause").and_then(seconds) {
        Some(p) => Some(p),
        None => cfg
            .value(PAUSE_FILE)
            .and_then(|ms| seconds(&ms))
            .map(|p| p / 1000),
    };
    let mut whitelist = Vec::new();
    if let Some(section) = ini.section("ip_whitelist") {
        for (key, value) in &section.entries {
            match haraka_config::parse_ip_net(key) {
                Some(net) => whitelist.push(net),
                None => tracing::warn!(
                    "{}",
                    value.diag(format!("[ip_whitelist] {key}: not an address, ignored"))
                ),
            }
        }
    }
    let settings = Settings {
        pause,
        reject: ini.get_bool("main", "reject", true),
        whitelist,
    };
    Ok((settings, vec![ini.file.clone(), cfg.path(PAUSE_FILE)]))
}

/// The early_talker plugin.
pub struct EarlyTalker {
    name: String,
    cfg: Watched<Settings>,
}

impl EarlyTalker {
    /// Read `early_talker.ini` (and `early_talker.pause`); re-read when they change.
    pub fn new(name: &str, cfg: &ConfigDir) -> Result<EarlyTalker, ConfigErrors> {
        let dir = cfg.clone();
        Ok(EarlyTalker {
            name: name.to_owned(),
            cfg: Watched::with_paths(move || load(&dir))?,
        })
    }

    /// The settings as they are now.
    pub fn settings(&self) -> Arc<Settings> {
        self.cfg.get()
    }

    /// `connect_init` and `data`: wait, then refuse an early talker.
    fn early_talker<'a>(
        &'a self,
        conn: &'a mut Connection,
    ) -> impl Future<Output = Outcome> + Send + 'a {
        let cfg = self.cfg.get();
        async move {
            let Some(pause) = cfg.pause else {
                return Outcome::cont();
            };
            if !self.should_check(&cfg, conn) {
                return Outcome::cont();
            }
            tokio::time::sleep(pause).await;
            if !conn.early_talker {
                conn.results.add(&self.name, "pass", "early");
                return Outcome::cont();
            }
            conn.results.add(&self.name, "fail", "early");
            if !cfg.reject {
                return Outcome::cont();
            }
            Outcome::deny_disconnect(TOO_SOON)
        }
    }

    /// Haraka's `should_check`: privileged and nearby clients are not delayed.
    fn should_check(&self, cfg: &Settings, conn: &mut Connection) -> bool {
        let ip = haraka_smtp::canonical_ip(conn.remote.ip);
        let skip = if conn.auth_user.is_some() {
            "authed"
        } else if conn.relaying() {
            "relay"
        } else if cfg.whitelist.iter().any(|n| n.contains(&ip)) {
            "whitelist"
        } else if conn.remote.is_local() {
            "local_ip"
        } else if conn.remote.is_private() {
            "private_ip"
        } else {
            return true;
        };
        conn.results.add(&self.name, "skip", skip);
        false
    }
}

impl Register for EarlyTalker {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.connect_init(Self::early_talker);
        hooks.data(Self::early_talker);
    }
}
