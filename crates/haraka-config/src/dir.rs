//! Locating and reading config files under a `-c ROOT`.
//!
//! The real layout is `ROOT/config/`. The flat layout (`ROOT` itself, when
//! `ROOT/config` is not a directory and `ROOT` holds config files) and the other
//! compatibility aliases (see `docs/configuration.md`) are consulted only where real
//! Haraka finds nothing; each alias used is logged once and listed by
//! [`ConfigDir::aliases_used`].

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::booleans::Booleans;
use crate::flat::{parse_data, parse_list};
use crate::ini::{Ini, IniValue};
use crate::plugin::{PluginLayout, PluginSwitch};
use crate::text::decode;
use crate::{ConfigErrors, Diag};

/// One line of the plugin list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEntry {
    /// The plugin's name after Haraka's normalisation (`haraka-plugin-` stripped,
    /// deprecated names mapped).
    pub name: String,
    pub file: PathBuf,
    pub line: usize,
}

/// Which layout a root uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `ROOT/config/` (Haraka's).
    Real,
    /// `ROOT` itself (the flat layout).
    Flat,
}

/// A Haraka root's config directory. Cheap to clone; clones share the record of
/// which files were read and which aliases were used.
#[derive(Debug, Clone)]
pub struct ConfigDir {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    dir: PathBuf,
    layout: Layout,
    /// `ROOT/config` when it is a regular file (the flat layout's `[server]` and
    /// `[plugins]`).
    flat_config: Option<Ini>,
    /// The plugins' declared switches (see [`PluginLayout`]).
    switches: Vec<PluginSwitch>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    read: BTreeSet<PathBuf>,
    aliases: Vec<String>,
}

/// Core names whose presence directly in `ROOT` marks the flat layout (plugins
/// declare theirs in [`PluginLayout::flat_markers`]).
const FLAT_MARKERS: &[&str] = &[
    "smtp.ini",
    "smtp.json",
    "smtp.yaml",
    "plugins",
    "me",
    "databytes",
];

impl ConfigDir {
    /// Open `root` (the `-c` argument), with no plugin declarations.
    pub fn open(root: &Path) -> Result<ConfigDir, ConfigErrors> {
        ConfigDir::open_with(root, &[])
    }

    /// Open `root` with the declarations of the plugins that may be listed: their
    /// files mark the flat layout, their switches apply to [`ConfigDir::plugins`].
    pub fn open_with(root: &Path, plugins: &[PluginLayout]) -> Result<ConfigDir, ConfigErrors> {
        if !root.is_dir() {
            return Err(ConfigErrors(vec![Diag {
                file: root.to_owned(),
                line: 0,
                message: "No such directory".into(),
            }]));
        }
        let real = root.join("config");
        let markers = FLAT_MARKERS
            .iter()
            .chain(plugins.iter().flat_map(|p| p.flat_markers));
        let layout = if real.is_dir() || !looks_flat(root, markers) {
            Layout::Real
        } else {
            Layout::Flat
        };
        let dir = match layout {
            Layout::Real => real.clone(),
            Layout::Flat => root.to_owned(),
        };
        let mut diags = Vec::new();
        let flat_config = if real.is_file() {
            let ini = match std::fs::read(&real) {
                Ok(bytes) => Ini::parse(&real, &decode(&bytes).0, &mut diags),
                Err(e) => {
                    diags.push(Diag {
                        file: real.clone(),
                        line: 0,
                        message: format!("cannot read: {e}"),
                    });
                    Ini::empty(&real)
                }
            };
            ini.warn_unknown(
                &[("main", &[]), ("server", &["*"]), ("plugins", &["*"])],
                false,
            );
            Some(ini)
        } else {
            None
        };
        let cd = ConfigDir {
            inner: Arc::new(Inner {
                root: root.to_owned(),
                dir,
                layout,
                flat_config,
                switches: plugins.iter().filter_map(|p| p.switch).collect(),
                state: Mutex::new(State::default()),
            }),
        };
        if layout == Layout::Flat {
            cd.alias(format!(
                "using {} as {} (flat layout)",
                root.display(),
                real.display()
            ));
        }
        if cd.inner.flat_config.is_some() {
            cd.mark_read(&real);
        }
        if diags.is_empty() {
            Ok(cd)
        } else {
            Err(ConfigErrors(diags))
        }
    }

    /// The `-c` root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The directory config names are resolved against.
    pub fn config_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Real Haraka layout or the flat one.
    pub fn layout(&self) -> Layout {
        self.inner.layout
    }

    /// Where `name` lives (absolute names are used as they are). The path counts as
    /// read for [`ConfigDir::unread_files`].
    pub fn path(&self, name: &str) -> PathBuf {
        let p = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            self.inner.dir.join(name)
        };
        self.mark_read(&p);
        p
    }

    /// Whether Haraka's start-up check would find `smtp.ini` (or `.json`/`.yaml`).
    pub fn has_smtp_ini(&self) -> bool {
        ["smtp.ini", "smtp.json", "smtp.yaml"]
            .iter()
            .any(|n| self.inner.dir.join(n).is_file())
    }

    /// Record that `path` was read (for files read outside this crate).
    pub fn mark_read(&self, path: &Path) {
        let mut st = self.state();
        if let Ok(c) = path.canonicalize() {
            st.read.insert(c);
        }
        st.read.insert(path.to_owned());
    }

    /// Every alias used so far, as logged ("compatibility alias: using X as Y").
    pub fn aliases_used(&self) -> Vec<String> {
        self.state().aliases.clone()
    }

    /// Files present in the config directory (and `.ini` files in `ROOT/plugins/`)
    /// that nothing has read. Dot files and `~` backups are left out.
    pub fn unread_files(&self) -> Vec<PathBuf> {
        let mut candidates = regular_files(&self.inner.dir);
        let pdir = self.inner.root.join("plugins");
        if pdir.is_dir() {
            candidates.extend(
                regular_files(&pdir)
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "ini")),
            );
        }
        let st = self.state();
        candidates
            .into_iter()
            .filter(|p| {
                let c = p.canonicalize().unwrap_or_else(|_| p.clone());
                !st.read.contains(p) && !st.read.contains(&c)
            })
            .collect()
    }

    /// An ini file; a missing file is an empty one with a `main` section. Invalid
    /// lines are errors with file:line.
    pub fn ini(&self, name: &str) -> Result<Ini, ConfigErrors> {
        let path = self.resolve_ini(name);
        let mut diags = Vec::new();
        let mut ini = match self.read_text(&path) {
            Ok(Some(t)) => Ini::parse(&path, &t, &mut diags),
            Ok(None) => Ini::empty(&path),
            Err(d) => {
                diags.push(d);
                Ini::empty(&path)
            }
        };
        if name == "smtp.ini" {
            self.merge_flat_server(&mut ini);
        }
        if diags.is_empty() {
            Ok(ini)
        } else {
            Err(ConfigErrors(diags))
        }
    }

    /// An ini file with declared booleans (`["+main.x", "-main.y", "*.z"]`, see
    /// [`Booleans`]): declared keys read as `true`/`false` and are always present.
    pub fn ini_with(&self, name: &str, booleans: &[&str]) -> Result<Ini, ConfigErrors> {
        let mut ini = self.ini(name)?;
        Booleans::new(booleans).apply(&mut ini);
        Ok(ini)
    }

    /// A list file: one entry per line, `#`/`;` comment lines and blank lines
    /// dropped, entries trimmed. A missing file is empty.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.list_entries(name)
            .into_iter()
            .filter_map(|v| v.value)
            .collect()
    }

    /// A list file with the file and line of each entry.
    pub fn list_entries(&self, name: &str) -> Vec<IniValue> {
        self.list_entries_at(self.path(name))
    }

    /// The entries of the list file at `path` (`me` falls back to the OS hostname).
    pub(crate) fn list_entries_at(&self, path: PathBuf) -> Vec<IniValue> {
        let mut out = self.read_list_at(&path).unwrap_or_default();
        if out.is_empty() && is_me(&path) {
            out.push(IniValue {
                value: Some(crate::core::hostname()),
                file: path,
                line: 0,
            });
        }
        out
    }

    /// A value file: its first kept line (`me` falls back to the OS hostname).
    pub fn value(&self, name: &str) -> Option<String> {
        self.value_entry(name).and_then(|v| v.value)
    }

    /// [`ConfigDir::value`] with the file and line.
    pub fn value_entry(&self, name: &str) -> Option<IniValue> {
        self.list_entries(name).into_iter().next()
    }

    /// A data file: every line as written, comments included.
    pub fn data(&self, name: &str) -> Vec<String> {
        let path = self.path(name);
        match self.read_text(&path) {
            Ok(t) => parse_data(&t.unwrap_or_default()),
            Err(d) => {
                tracing::error!("{d}");
                Vec::new()
            }
        }
    }

    /// A binary file (certificates, keys); `None` when missing.
    pub fn read_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, ConfigErrors> {
        let path = self.path(name);
        read_file(&path).map_err(|d| ConfigErrors(vec![d]))
    }

    pub(crate) fn flat_config(&self) -> Option<&Ini> {
        self.inner.flat_config.as_ref()
    }

    pub(crate) fn switches(&self) -> &[PluginSwitch] {
        &self.inner.switches
    }

    /// Log a compatibility alias once and remember it for
    /// [`ConfigDir::aliases_used`]; `message` says what was used as what
    /// ("using X as Y").
    pub fn alias(&self, message: String) {
        let message = format!("compatibility alias: {message}");
        let mut st = self.state();
        if !st.aliases.contains(&message) {
            tracing::info!("{message}");
            st.aliases.push(message);
        }
    }

    /// `name` in the config dir, else (for a plain `*.ini` name) `ROOT/plugins/name`,
    /// the flat layout's home for plugin ini files.
    fn resolve_ini(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        if p.is_file() || !is_plain_name(name) || !name.ends_with(".ini") {
            return p;
        }
        let alt = self.inner.root.join("plugins").join(name);
        if alt.is_file() {
            self.mark_read(&alt);
            self.alias(format!("using {} as {}", alt.display(), p.display()));
            return alt;
        }
        p
    }

    /// Read a file as text; `Ok(None)` when it is missing or not a regular file.
    pub(crate) fn read_text(&self, path: &Path) -> Result<Option<String>, Diag> {
        self.mark_read(path);
        let Some(bytes) = read_file(path)? else {
            return Ok(None);
        };
        let (text, valid) = decode(&bytes);
        if !valid {
            tracing::warn!(
                "{}: not valid UTF-8; invalid bytes read as U+FFFD",
                path.display()
            );
        }
        Ok(Some(text))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Read a list or value file; `None` when it is missing or not a regular file.
    pub(crate) fn read_list_at(&self, path: &Path) -> Option<Vec<IniValue>> {
        let text = match self.read_text(path) {
            Ok(Some(t)) => t,
            Ok(None) => return None,
            Err(d) => {
                tracing::error!("{d}");
                return None;
            }
        };
        Some(
            parse_list(&text)
                .into_iter()
                .map(|l| IniValue {
                    value: Some(l.text),
                    file: path.to_owned(),
                    line: l.line,
                })
                .collect(),
        )
    }
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, Diag> {
    if !path.is_file() {
        return Ok(None);
    }
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Diag {
            file: path.to_owned(),
            line: 0,
            message: format!("cannot read: {e}"),
        }),
    }
}

fn is_me(path: &Path) -> bool {
    path.file_name().is_some_and(|f| f == "me")
}

/// A single normal path component (no `/`, no `..`).
pub(crate) fn is_plain_name(name: &str) -> bool {
    let mut c = Path::new(name).components();
    matches!((c.next(), c.next()), (Some(Component::Normal(_)), None))
}

fn looks_flat<'a>(root: &Path, mut markers: impl Iterator<Item = &'a &'a str>) -> bool {
    if root.join("config").is_file() {
        return true;
    }
    if markers.any(|n| root.join(n).is_file()) {
        return true;
    }
    regular_files(root)
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "ini"))
}

fn regular_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            !n.starts_with('.') && !n.ends_with('~')
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}
