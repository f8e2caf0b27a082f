//! Locating config files under a `-c ROOT` (placeholder; see crate docs).

use std::path::{Path, PathBuf};

use crate::{ConfigErrors, Diag, Ini};

/// One line of the plugin list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEntry {
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
}

/// A Haraka root's config directory.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    root: PathBuf,
    dir: PathBuf,
}

impl ConfigDir {
    /// Open `root` (the `-c` argument).
    pub fn open(root: &Path) -> Result<ConfigDir, ConfigErrors> {
        if !root.is_dir() {
            return Err(ConfigErrors(vec![Diag {
                file: root.to_owned(),
                line: 0,
                message: "No such directory".into(),
            }]));
        }
        let real = root.join("config");
        let dir = if real.is_dir() { real } else { root.to_owned() };
        Ok(ConfigDir {
            root: root.to_owned(),
            dir,
        })
    }

    /// The `-c` root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory config names are resolved against.
    pub fn config_dir(&self) -> &Path {
        &self.dir
    }

    /// Where `name` lives (absolute names are used as they are).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// An ini file; a missing file is an empty one with a `main` section.
    pub fn ini(&self, name: &str) -> Result<Ini, ConfigErrors> {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut diags = Vec::new();
        let ini = Ini::parse(&path, &text, &mut diags);
        if diags.is_empty() {
            Ok(ini)
        } else {
            Err(ConfigErrors(diags))
        }
    }

    /// A list file: one entry per line, comments and blank lines dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.path(name)).unwrap_or_default();
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }

    /// A value file: its first non-comment line.
    pub fn value(&self, name: &str) -> Option<String> {
        self.list(name).into_iter().next()
    }

    /// The plugin list, in order.
    pub fn plugins(&self) -> Result<Vec<PluginEntry>, ConfigErrors> {
        let file = self.path("plugins");
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
            .map(|(n, l)| PluginEntry {
                name: l.trim().to_owned(),
                file: file.clone(),
                line: n + 1,
            })
            .collect())
    }
}
