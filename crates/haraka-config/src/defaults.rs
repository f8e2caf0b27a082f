//! The plugin layer: Haraka's shipped defaults under the user's files.
//!
//! Haraka gives every plugin `config.module_config(<Haraka>/config, $HARAKA/config)`:
//! a non-empty user list replaces the shipped list; a user ini file is deep-merged
//! over the shipped one. Core reads (`ConfigDir::list`, `ini`, `value`) have no such
//! layer. Only the shipped files that change behaviour for haraka-rs plugins are
//! kept here (their effective lines, comments left out).

use std::path::PathBuf;

use crate::ConfigErrors;
use crate::booleans::Booleans;
use crate::dir::{ConfigDir, Layout};
use crate::ini::{Ini, IniValue};

/// A shipped default file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipped {
    List(&'static [&'static str]),
    Ini(&'static str),
}

/// Haraka 3.0.0 `config/` files inherited by the plugins haraka-rs ships.
pub const SHIPPED: &[(&str, Shipped)] = &[
    ("host_list", Shipped::List(&["haraka.local"])),
    ("host_list_regex", Shipped::List(&[])),
    ("xclient.hosts", Shipped::List(&["127.0.0.1"])),
    (
        "smtp_forward.ini",
        Shipped::Ini("host=localhost\nport=2555\n"),
    ),
];

/// The shipped default of `name`, if Haraka ships one.
pub fn shipped(name: &str) -> Option<Shipped> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

fn shipped_path(name: &str) -> PathBuf {
    PathBuf::from("(haraka defaults)").join(name)
}

impl ConfigDir {
    /// A list file read the way a Haraka plugin reads it: the user's file when it
    /// has entries, else Haraka's shipped list. In the seed's flat layout, or when
    /// the seed's `rcpt_to.in_host_list.ini host_list=` is set, `host_list` has no
    /// shipped default (`haraka.local` is kept only for real layouts).
    pub fn plugin_list(&self, name: &str) -> Vec<String> {
        self.plugin_list_entries(name)
            .into_iter()
            .filter_map(|v| v.value)
            .collect()
    }

    /// [`ConfigDir::plugin_list`] with the file and line of each entry.
    pub fn plugin_list_entries(&self, name: &str) -> Vec<IniValue> {
        let user = self.list_entries(name);
        if !user.is_empty() {
            return user;
        }
        if name == "host_list"
            && (self.layout() == Layout::Flat || self.host_list_alias().is_some())
        {
            return user;
        }
        match shipped(name) {
            Some(Shipped::List(items)) => items
                .iter()
                .enumerate()
                .map(|(i, s)| IniValue {
                    value: Some((*s).to_owned()),
                    file: shipped_path(name),
                    line: i + 1,
                })
                .collect(),
            _ => user,
        }
    }

    /// An ini file read the way a Haraka plugin reads it: the user's file deep-merged
    /// over Haraka's shipped one.
    pub fn plugin_ini(&self, name: &str) -> Result<Ini, ConfigErrors> {
        self.plugin_ini_with(name, &[])
    }

    /// [`ConfigDir::plugin_ini`] with declared booleans.
    pub fn plugin_ini_with(&self, name: &str, booleans: &[&str]) -> Result<Ini, ConfigErrors> {
        let user = self.raw_ini(name)?;
        let mut ini = match shipped(name) {
            Some(Shipped::Ini(text)) => {
                let mut ignored = Vec::new();
                let mut base = Ini::parse(&shipped_path(name), text, &mut ignored);
                base.merge_from(&user);
                base
            }
            _ => user,
        };
        Booleans::new(booleans).apply(&mut ini);
        Ok(ini)
    }
}
