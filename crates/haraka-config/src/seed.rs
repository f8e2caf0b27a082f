//! The seed-layout aliases of seed-layout §5 that live at the config level, and the
//! plugin list (which several of them feed).
//!
//! Every alias here is consulted only where real Haraka would find nothing, and is
//! logged once through [`ConfigDir::alias`].

use std::path::{Path, PathBuf};

use crate::ConfigErrors;
use crate::booleans::XCLIENT_INI;
use crate::dir::{ConfigDir, Layout, PluginEntry};
use crate::ini::{Ini, IniValue};

/// Haraka 3.0.0 `plugins.deprecated`: old plugin name → replacement.
const DEPRECATED: &[(&str, &str)] = &[
    ("connect.asn", "asn"),
    ("connect.fcrdns", "fcrdns"),
    ("connect.geoip", "geoip"),
    ("connect.p0f", "p0f"),
    ("connect.rdns_access", "access"),
    ("data.nomsgid", "headers"),
    ("data.noreceived", "headers"),
    ("data.rfc5322_header_checks", "headers"),
    ("data.headers", "headers"),
    ("log.syslog", "syslog"),
    ("mail_from.access", "access"),
    ("mail_from.blocklist", "access"),
    ("mail_from.nobounces", "bounce"),
    ("max_unrecognized_commands", "limit"),
    ("rate_limit", "limit"),
    ("rcpt_to.access", "access"),
    ("rcpt_to.blocklist", "access"),
    ("rcpt_to.qmail_deliverable", "qmail-deliverable"),
    ("rdns.regexp", "access"),
    ("relay_acl", "relay"),
    ("relay_force_routing", "relay"),
];

/// A plugin-list name as Haraka loads it: `haraka-plugin-` stripped, deprecated
/// names replaced (with Haraka's notice).
pub fn normalize_plugin_name(raw: &str) -> String {
    let name = raw.strip_prefix("haraka-plugin-").unwrap_or(raw);
    match DEPRECATED.iter().find(|(old, _)| *old == name) {
        Some((old, new)) => {
            tracing::info!(
                "the plugin {old} has been replaced by '{new}'. Please update config/plugins"
            );
            (*new).to_owned()
        }
        None => name.to_owned(),
    }
}

impl ConfigDir {
    /// The plugin list, in order: `config/plugins`; else the seed `config` file's
    /// `[plugins]` section; else a regular file `ROOT/plugins`. A seed `xclient.ini`
    /// with `enabled=false` drops `xclient`.
    pub fn plugins(&self) -> Result<Vec<PluginEntry>, ConfigErrors> {
        let real = self.path("plugins");
        let raw: Vec<IniValue> = if let Some(list) = self.read_list_at(&real) {
            if self.layout() == Layout::Flat {
                self.alias(format!(
                    "seed-compat: using {} as {}",
                    real.display(),
                    self.root().join("config").join("plugins").display()
                ));
            }
            list
        } else if let Some(sect) = self.seed_config().and_then(|c| c.section("plugins")) {
            self.alias(format!(
                "seed-compat: using {} [plugins] as {}",
                self.root().join("config").display(),
                self.root().join("config").join("plugins").display()
            ));
            plugins_from_section(sect)
        } else {
            let alt = self.root().join("plugins");
            match self.read_list_at(&alt) {
                Some(list) => {
                    self.alias(format!(
                        "seed-compat: using {} as {}",
                        alt.display(),
                        real.display()
                    ));
                    list
                }
                None => Vec::new(),
            }
        };
        let mut out: Vec<PluginEntry> = raw
            .into_iter()
            .map(|v| PluginEntry {
                name: normalize_plugin_name(v.text()),
                file: v.file,
                line: v.line,
            })
            .collect();
        let xc = self.xclient_ini()?;
        if !xc.get_bool("main", "enabled", true) && out.iter().any(|p| p.name == "xclient") {
            out.retain(|p| p.name != "xclient");
            self.alias(format!(
                "seed-compat: {} enabled=false removes xclient from the plugin list",
                xc.file.display()
            ));
        }
        Ok(out)
    }

    /// The seed's `xclient.ini` (`enabled`, `forward`, `destination`; no Haraka file
    /// has this name). `enabled` and `forward` default to true.
    pub fn xclient_ini(&self) -> Result<Ini, ConfigErrors> {
        let ini = self.ini_with("xclient.ini", XCLIENT_INI)?;
        ini.warn_unknown(&[("main", &["enabled", "forward", "destination"])], false);
        Ok(ini)
    }

    /// Whether smtp_forward sends XCLIENT upstream when the backend offers it: the
    /// seed's `xclient.ini` `forward` (seed-layout §5 #7); true when unset, which is
    /// Haraka's behaviour. Read errors are logged and give the default.
    pub fn xclient_forward(&self) -> bool {
        match self.xclient_ini() {
            Ok(ini) => {
                let forward = ini.get_bool("main", "forward", true);
                if let Some(v) = ini.entry("main", "forward").filter(|v| v.line > 0) {
                    self.alias(format!(
                        "seed-compat: using {}:{} forward={forward} for XCLIENT to the smtp_forward backend",
                        v.file.display(),
                        v.line
                    ));
                }
                forward
            }
            Err(e) => {
                tracing::error!("{e}");
                true
            }
        }
    }

    /// Aliases that rewrite an ini file after reading.
    pub(crate) fn apply_ini_aliases(&self, name: &str, ini: &mut Ini) {
        match name {
            "smtp.ini" => self.merge_seed_server(ini),
            "relay.ini" => self.relay_force_route(ini),
            "smtp_forward.ini" => self.xclient_destination(ini),
            _ => {}
        }
    }

    /// Seed-layout §5 #2: `ROOT/config` `[server]` keys fill `smtp.ini [main]`.
    fn merge_seed_server(&self, ini: &mut Ini) {
        let Some(server) = self.seed_config().and_then(|c| c.section("server")) else {
            return;
        };
        let smtp_path = ini.file.clone();
        let main = ini.section_mut("main");
        for (k, v) in &server.entries {
            match main.get(k) {
                Some(have) => {
                    if have.value != v.value {
                        tracing::warn!(
                            "{}:{}: {k} ignored, {}:{} wins",
                            v.file.display(),
                            v.line,
                            have.file.display(),
                            have.line
                        );
                    }
                }
                None => {
                    main.set(k, v.clone());
                    self.alias(format!(
                        "seed-compat: using {}:{} [server] {k} as {} [main] {k}",
                        v.file.display(),
                        v.line,
                        smtp_path.display()
                    ));
                }
            }
        }
        for (k, a) in &server.arrays {
            if main.get(k).is_none() && main.array(k).is_none() {
                for v in a {
                    main.push(k, v.clone());
                }
            }
        }
    }

    /// Seed-layout §5 #11: `[relay] force_route` is `force_routing`.
    fn relay_force_route(&self, ini: &mut Ini) {
        let Some(v) = ini.entry("relay", "force_route").cloned() else {
            return;
        };
        let relay = ini.section_mut("relay");
        relay.remove("force_route");
        if relay.get("force_routing").is_some() {
            tracing::warn!(
                "{}:{}: force_route ignored, force_routing is set",
                v.file.display(),
                v.line
            );
        } else {
            relay.set("force_routing", v.clone());
            self.alias(format!(
                "seed-compat: using {}:{} [relay] force_route as force_routing",
                v.file.display(),
                v.line
            ));
        }
    }

    /// Seed-layout §5 #8: `xclient.ini` `destination=host:port` supplies smtp_forward's
    /// `host`/`port` when neither is configured.
    fn xclient_destination(&self, ini: &mut Ini) {
        let Ok(xc) = self.raw_ini("xclient.ini") else {
            return;
        };
        let Some(dest) = xc.entry("main", "destination").filter(|v| v.line > 0) else {
            return;
        };
        let Some((host, port)) = split_host_port(dest.text()) else {
            tracing::warn!(
                "{}:{}: destination '{}' is not host:port; ignored",
                dest.file.display(),
                dest.line,
                dest.text()
            );
            return;
        };
        let host_v = ini.entry("main", "host").cloned();
        let port_v = ini.entry("main", "port").cloned();
        if host_v.is_none() && port_v.is_none() {
            let main = ini.section_mut("main");
            main.set(
                "host",
                IniValue {
                    value: Some(host),
                    ..dest.clone()
                },
            );
            main.set(
                "port",
                IniValue {
                    value: Some(port),
                    ..dest.clone()
                },
            );
            self.alias(format!(
                "seed-compat: using {}:{} destination as {} host/port",
                dest.file.display(),
                dest.line,
                ini.file.display()
            ));
        } else if host_v.as_ref().is_some_and(|h| h.text() != host)
            || port_v.as_ref().is_some_and(|p| p.text() != port)
        {
            tracing::warn!(
                "{}:{}: destination {} differs from {} host/port; smtp_forward.ini wins",
                dest.file.display(),
                dest.line,
                dest.text(),
                ini.file.display()
            );
        }
    }

    /// The file a list name is read from: `name` in the config dir, except that a
    /// missing `host_list` may come from the seed's
    /// `rcpt_to.in_host_list.ini [main] host_list=PATH` (seed-layout §5 #9).
    pub(crate) fn resolve_list(&self, name: &str) -> PathBuf {
        let real = self.path(name);
        if name != "host_list" {
            return real;
        }
        let Some(alias) = self.host_list_alias() else {
            return real;
        };
        let target = self.path(alias.text());
        if real.is_file() {
            if !same_file(&real, &target) {
                tracing::warn!(
                    "{}:{}: host_list={} ignored, {} exists",
                    alias.file.display(),
                    alias.line,
                    alias.text(),
                    real.display()
                );
            }
            return real;
        }
        self.alias(format!(
            "seed-compat: using {} (from {}:{}) as {}",
            target.display(),
            alias.file.display(),
            alias.line,
            real.display()
        ));
        target
    }

    /// The seed's `rcpt_to.in_host_list.ini` `[main] host_list` value, if set.
    pub(crate) fn host_list_alias(&self) -> Option<IniValue> {
        let ini = match self.raw_ini("rcpt_to.in_host_list.ini") {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("{e}");
                return None;
            }
        };
        ini.warn_unknown(&[("main", &["host_list"])], false);
        ini.entry("main", "host_list")
            .filter(|v| !v.text().is_empty())
            .cloned()
    }
}

/// Bare keys of a `[plugins]` section, in order; `name=<false word>` leaves it out.
fn plugins_from_section(sect: &crate::ini::Section) -> Vec<IniValue> {
    for (k, a) in &sect.arrays {
        if let Some(v) = a.first() {
            tracing::warn!(
                "{}:{}: {k}[] in [plugins] ignored",
                v.file.display(),
                v.line
            );
        }
    }
    sect.entries
        .iter()
        .filter(|(_, v)| v.value.is_none() || v.is_true())
        .map(|(k, v)| IniValue {
            value: Some(k.clone()),
            file: v.file.clone(),
            line: v.line,
        })
        .collect()
}

/// `host:port`, `[v6]:port` or `host` (port 25).
pub(crate) fn split_host_port(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        let port = match p.strip_prefix(':') {
            Some(port) => port,
            None if p.is_empty() => "25",
            None => return None,
        };
        return valid_port(port).then(|| (h.to_owned(), port.to_owned()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.is_empty() => {
            valid_port(p).then(|| (h.to_owned(), p.to_owned()))
        }
        Some(_) => None,
        None if !s.is_empty() => Some((s.to_owned(), "25".to_owned())),
        None => None,
    }
}

fn valid_port(p: &str) -> bool {
    p.parse::<u16>().is_ok()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("10.0.0.2:25", Some(("10.0.0.2", "25"))),
            ("mail.example.com", Some(("mail.example.com", "25"))),
            ("[::1]:2525", Some(("::1", "2525"))),
            ("[::1]", Some(("::1", "25"))),
            ("::1", None),
            ("h:99999", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = split_host_port(input);
            let want = want.map(|(h, p)| (h.to_owned(), p.to_owned()));
            assert_eq!(got, want, "{input}");
        }
        assert_eq!(normalize_plugin_name("haraka-plugin-relay_acl"), "relay");
        assert_eq!(
            normalize_plugin_name("queue/smtp_forward"),
            "queue/smtp_forward"
        );
    }
}
