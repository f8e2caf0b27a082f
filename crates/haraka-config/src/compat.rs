//! The flat layout's compatibility aliases that belong to the core files, and the
//! plugin list (with the aliases plugins declare for it).
//!
//! Every alias is consulted only where real Haraka would find nothing, and is logged
//! once through [`ConfigDir::alias`].

use std::path::{Path, PathBuf};

use crate::ConfigErrors;
use crate::dir::{ConfigDir, Layout, PluginEntry};
use crate::ini::{Ini, IniValue};
use crate::plugin::ListSpec;

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
    /// The plugin list, in order: `config/plugins`; else the `[plugins]` section of
    /// the flat layout's `config` file; else a regular file `ROOT/plugins`. A plugin
    /// whose declared switch (see [`crate::PluginLayout`]) is off is left out.
    pub fn plugins(&self) -> Result<Vec<PluginEntry>, ConfigErrors> {
        let real = self.path("plugins");
        let raw: Vec<IniValue> = if let Some(list) = self.read_list_at(&real) {
            if self.layout() == Layout::Flat {
                self.alias(format!(
                    "using {} as {}",
                    real.display(),
                    self.root().join("config").join("plugins").display()
                ));
            }
            list
        } else if let Some(sect) = self.flat_config().and_then(|c| c.section("plugins")) {
            self.alias(format!(
                "using {} [plugins] as {}",
                self.root().join("config").display(),
                self.root().join("config").join("plugins").display()
            ));
            plugins_from_section(sect)
        } else {
            let alt = self.root().join("plugins");
            match self.read_list_at(&alt) {
                Some(list) => {
                    self.alias(format!("using {} as {}", alt.display(), real.display()));
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
        for switch in self.switches() {
            let ini = self.plugin_ini(switch.ini)?;
            if !ini.get_bool("main", switch.key, true)
                && out.iter().any(|p| p.name == switch.plugin)
            {
                out.retain(|p| p.name != switch.plugin);
                self.alias(format!(
                    "{} {}=false removes {} from the plugin list",
                    ini.file.display(),
                    switch.key,
                    switch.plugin
                ));
            }
        }
        Ok(out)
    }

    /// The flat layout's `ROOT/config` `[server]` keys fill `smtp.ini [main]`.
    pub(crate) fn merge_flat_server(&self, ini: &mut Ini) {
        let Some(server) = self.flat_config().and_then(|c| c.section("server")) else {
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
                        "using {}:{} [server] {k} as {} [main] {k}",
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

    /// The file a list is read from: `spec.name` in the config dir, except that a
    /// missing list may come from the file its declared alias names.
    pub(crate) fn resolve_list(&self, spec: &ListSpec) -> PathBuf {
        let real = self.path(spec.name);
        let Some(alias) = spec.alias.and_then(|f| f(self)) else {
            return real;
        };
        let target = self.path(alias.text());
        if real.is_file() {
            if !same_file(&real, &target) {
                tracing::warn!(
                    "{}:{}: {}={} ignored, {} exists",
                    alias.file.display(),
                    alias.line,
                    spec.name,
                    alias.text(),
                    real.display()
                );
            }
            return real;
        }
        self.alias(format!(
            "using {} (from {}:{}) as {}",
            target.display(),
            alias.file.display(),
            alias.line,
            real.display()
        ));
        target
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

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        assert_eq!(normalize_plugin_name("haraka-plugin-relay_acl"), "relay");
        assert_eq!(
            normalize_plugin_name("queue/smtp_forward"),
            "queue/smtp_forward"
        );
    }
}
