//! The plugin layer: what a plugin declares about its files, and reading them so.
//!
//! Haraka gives every plugin `config.module_config(<Haraka>/config, $HARAKA/config)`:
//! a non-empty user list replaces the shipped list; a user ini file is deep-merged
//! over the shipped one. Core reads (`ConfigDir::list`, `ini`, `value`) have no such
//! layer. Each plugin declares its files ([`IniSpec`], [`ListSpec`]) with Haraka's
//! shipped copy, its `booleans` and its compatibility aliases; this crate names no
//! plugin and no plugin file.

use std::path::PathBuf;

use crate::ConfigErrors;
use crate::booleans::Booleans;
use crate::dir::{ConfigDir, Layout};
use crate::ini::{Ini, IniValue};

/// Run on an ini file as written, before the shipped copy and the booleans: a
/// plugin's compatibility aliases (each recorded with [`ConfigDir::alias`]) and
/// checks of its keys.
pub type IniFixup = fn(&ConfigDir, &mut Ini);

/// A list's compatibility alias: the value (with its file and line) naming the file
/// to read when the list itself is missing.
pub type ListAlias = fn(&ConfigDir) -> Option<IniValue>;

/// How a plugin reads one of its ini files.
#[derive(Debug, Clone, Copy)]
pub struct IniSpec {
    /// The file name in the config directory.
    pub name: &'static str,
    /// Haraka's `booleans` option (see [`Booleans`]).
    pub booleans: &'static [&'static str],
    /// Haraka's shipped copy, under the user's file.
    pub shipped: Option<&'static str>,
    pub fixup: Option<IniFixup>,
}

/// How a plugin reads one of its list files.
#[derive(Debug, Clone, Copy)]
pub struct ListSpec {
    /// The file name in the config directory.
    pub name: &'static str,
    /// Haraka's shipped list, used when the user's list has no entries.
    pub shipped: &'static [&'static str],
    /// Whether the shipped list also applies in the flat layout.
    pub shipped_in_flat: bool,
    /// When it names a file, the shipped list does not apply.
    pub alias: Option<ListAlias>,
}

/// A compatibility alias that takes a plugin off the plugin list: `key` in `[main]`
/// of `ini` (a declared boolean, true when unset) set to false drops `plugin`.
#[derive(Debug, Clone, Copy)]
pub struct PluginSwitch {
    pub plugin: &'static str,
    pub ini: &'static IniSpec,
    pub key: &'static str,
}

/// What a plugin declares to [`ConfigDir::open_with`], before any plugin is created.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginLayout {
    /// The plugin's files whose presence directly in `ROOT` marks the flat layout.
    pub flat_markers: &'static [&'static str],
    pub switch: Option<PluginSwitch>,
}

fn shipped_path(name: &str) -> PathBuf {
    PathBuf::from("(haraka defaults)").join(name)
}

impl ConfigDir {
    /// A list file read the way a Haraka plugin reads it: the user's file (or the
    /// file its alias names) when it has entries, else Haraka's shipped list.
    pub fn plugin_list(&self, spec: &ListSpec) -> Vec<String> {
        self.plugin_list_entries(spec)
            .into_iter()
            .filter_map(|v| v.value)
            .collect()
    }

    /// [`ConfigDir::plugin_list`] with the file and line of each entry.
    pub fn plugin_list_entries(&self, spec: &ListSpec) -> Vec<IniValue> {
        let user = self.list_entries_at(self.resolve_list(spec));
        let no_shipped = !user.is_empty()
            || (!spec.shipped_in_flat && self.layout() == Layout::Flat)
            || spec.alias.and_then(|f| f(self)).is_some();
        if no_shipped {
            return user;
        }
        spec.shipped
            .iter()
            .enumerate()
            .map(|(i, s)| IniValue {
                value: Some((*s).to_owned()),
                file: shipped_path(spec.name),
                line: i + 1,
            })
            .collect()
    }

    /// An ini file read the way a Haraka plugin reads it: the user's file, with the
    /// plugin's fixup, deep-merged over Haraka's shipped one, then the booleans.
    pub fn plugin_ini(&self, spec: &IniSpec) -> Result<Ini, ConfigErrors> {
        let mut user = self.ini(spec.name)?;
        if let Some(fixup) = spec.fixup {
            fixup(self, &mut user);
        }
        let mut ini = match spec.shipped {
            Some(text) => {
                let mut ignored = Vec::new();
                let mut base = Ini::parse(&shipped_path(spec.name), text, &mut ignored);
                base.merge_from(&user);
                base
            }
            None => user,
        };
        Booleans::new(spec.booleans).apply(&mut ini);
        Ok(ini)
    }
}
