//! The INI dialect (placeholder reader; see the crate docs for the full dialect).

use std::path::{Path, PathBuf};

/// One value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniValue {
    /// `None` for a key written without `=`.
    pub value: Option<String>,
    pub file: PathBuf,
    pub line: usize,
}

/// A `[section]` (the implicit first one is `main`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// Keys in file order; a repeated key keeps its first position and last value.
    pub entries: Vec<(String, IniValue)>,
    /// `key[]=` arrays.
    pub arrays: Vec<(String, Vec<IniValue>)>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&IniValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn array(&self, key: &str) -> Option<&[IniValue]> {
        self.arrays
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// A parsed ini file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub file: PathBuf,
    pub sections: Vec<Section>,
}

impl Ini {
    /// Parse `text` read from `file`; problems are pushed to `diags`.
    pub fn parse(file: &Path, text: &str, _diags: &mut Vec<crate::Diag>) -> Ini {
        let mut ini = Ini {
            file: file.to_owned(),
            sections: vec![Section {
                name: "main".into(),
                ..Section::default()
            }],
        };
        let mut cur = 0;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                cur = match ini.sections.iter().position(|s| s.name == name) {
                    Some(i) => i,
                    None => {
                        ini.sections.push(Section {
                            name: name.to_owned(),
                            ..Section::default()
                        });
                        ini.sections.len() - 1
                    }
                };
                continue;
            }
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                None => (line.to_owned(), None),
            };
            let val = IniValue {
                value: v,
                file: file.to_owned(),
                line: n + 1,
            };
            if let Some(s) = ini.sections.get_mut(cur) {
                match s.entries.iter_mut().find(|(key, _)| *key == k) {
                    Some(e) => e.1 = val,
                    None => s.entries.push((k, val)),
                }
            }
        }
        ini
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The raw value of `section.key` (`None` when absent or written without `=`).
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?.get(key)?.value.as_deref()
    }

    /// A boolean with Haraka's true words; absent keys give `default`.
    pub fn get_bool(&self, section: &str, key: &str, default: bool) -> bool {
        match self.section(section).and_then(|s| s.get(key)) {
            Some(IniValue { value: None, .. }) => true,
            Some(IniValue { value: Some(v), .. }) => crate::is_true(v),
            None => default,
        }
    }

    /// A number; absent or non-numeric values give `default`.
    pub fn get_u64(&self, section: &str, key: &str, default: u64) -> u64 {
        self.get(section, key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    /// A float (timeouts in seconds); absent or non-numeric values give `default`.
    pub fn get_f64(&self, section: &str, key: &str, default: f64) -> f64 {
        self.get(section, key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }
}
