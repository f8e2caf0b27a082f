//! Reading the local-domain lists: `host_list`, `host_list_regex` and
//! `host_list.anti_spoof`.

use std::collections::HashSet;
use std::path::PathBuf;

use haraka_config::{ConfigDir, ConfigErrors, Diag, IniValue, ListSpec, PluginLayout};
use regex::{Regex, RegexBuilder};

/// The list of local domains.
pub const HOST_LIST: &str = "host_list";
/// Regular expressions for local domains, one per line.
pub const HOST_LIST_REGEX: &str = "host_list_regex";
/// A value file: reject local senders from non-relaying clients when on.
pub const ANTI_SPOOF: &str = "host_list.anti_spoof";
/// The flat layout's ini file (`[main] host_list=PATH`), a compatibility alias.
pub const ALIAS_INI: &str = "rcpt_to.in_host_list.ini";

/// `host_list`: Haraka's shipped `haraka.local` (real layout only), or the file
/// `rcpt_to.in_host_list.ini [main] host_list=PATH` names when `host_list` is
/// missing (then without the shipped default).
pub const HOST_LIST_SPEC: ListSpec = ListSpec {
    name: HOST_LIST,
    shipped: &["haraka.local"],
    shipped_in_flat: false,
    alias: Some(host_list_alias),
};
/// `host_list` directly in `ROOT` marks the flat layout.
pub const LAYOUT: PluginLayout = PluginLayout {
    flat_markers: &[HOST_LIST],
    switch: None,
};

/// What the plugin decides with.
#[derive(Debug, Default)]
pub struct HostLists {
    domains: HashSet<String>,
    regex: Option<Regex>,
    anti_spoof: bool,
}

impl HostLists {
    /// Whether `domain` is local: listed (case-insensitively, whole domain only) or
    /// matching one of the regular expressions (anchored at both ends).
    pub fn is_local(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.domains.contains(&domain) || self.regex.as_ref().is_some_and(|re| re.is_match(&domain))
    }

    /// `host_list.anti_spoof` is on.
    pub fn anti_spoof(&self) -> bool {
        self.anti_spoof
    }
}

/// Read the three files and say which files to watch. A regular expression that
/// does not compile is an error naming its line.
///
/// `host_list` comes with Haraka's shipped default and the flat layout's alias
/// ([`HOST_LIST_SPEC`]).
pub(crate) fn load(cfg: &ConfigDir) -> Result<(HostLists, Vec<PathBuf>), ConfigErrors> {
    let domains = cfg
        .plugin_list(&HOST_LIST_SPEC)
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .collect();
    let regex = host_list_regex(&cfg.list_entries(HOST_LIST_REGEX))?;
    let anti_spoof = cfg.value(ANTI_SPOOF).is_some_and(|v| anti_spoof_on(&v));
    let mut files = vec![
        cfg.path(HOST_LIST),
        cfg.path(HOST_LIST_REGEX),
        cfg.path(ANTI_SPOOF),
    ];
    let alias_ini = cfg.ini(ALIAS_INI)?;
    if let Some(alias) = alias_ini.get("main", "host_list").map(str::trim)
        && !alias.is_empty()
    {
        files.push(cfg.path(alias));
    }
    files.push(alias_ini.file);
    Ok((
        HostLists {
            domains,
            regex,
            anti_spoof,
        },
        files,
    ))
}

/// The flat layout's `rcpt_to.in_host_list.ini` `[main] host_list` value, if set.
fn host_list_alias(cfg: &ConfigDir) -> Option<IniValue> {
    let ini = match cfg.ini(ALIAS_INI) {
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

/// All lines joined as `^(?:l1|l2|…)$`, case-insensitive, as Haraka builds it.
/// Each line is compiled on its own first so that an error names its line.
fn host_list_regex(lines: &[IniValue]) -> Result<Option<Regex>, ConfigErrors> {
    let Some(first) = lines.first() else {
        return Ok(None);
    };
    let diags: Vec<Diag> = lines
        .iter()
        .filter_map(|l| {
            Regex::new(l.text())
                .err()
                .map(|e| l.diag(format!("invalid regular expression {:?}: {e}", l.text())))
        })
        .collect();
    if !diags.is_empty() {
        return Err(ConfigErrors(diags));
    }
    let joined: Vec<&str> = lines.iter().map(IniValue::text).collect();
    RegexBuilder::new(&format!("^(?:{})$", joined.join("|")))
        .case_insensitive(true)
        .build()
        .map(Some)
        .map_err(|e| {
            let mut whole = first.diag(format!("the joined regular expression is invalid: {e}"));
            whole.line = 0;
            ConfigErrors(vec![whole])
        })
}

/// `host_list.anti_spoof`: a number is on unless zero (Haraka's value coercion);
/// any other text is on, except the words `false`, `no`, `off` and `disabled`
/// (Haraka treats those as on, because they are non-empty strings).
pub fn anti_spoof_on(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return false;
    }
    if let Ok(n) = value.parse::<f64>() {
        return n != 0.0;
    }
    !matches!(
        value.to_ascii_lowercase().as_str(),
        "false" | "no" | "off" | "disabled"
    )
}
