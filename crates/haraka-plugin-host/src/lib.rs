//! Loads cdylib plugins into haraka-rs.
//!
//! Owns finding a plugin library for a name in `config/plugins` that is not a
//! built-in (`ROOT/plugins/lib<name>.so`, or an explicit path ending in `.so`),
//! opening it once and never unloading it, checking its entry symbol, ABI version
//! and vtable size, creating the plugin instance, and adapting it into an
//! `Arc<dyn Plugin>` that the server's hook runner drives like a built-in. Each
//! hook call is answered through a completion token that is consumed once; late
//! and repeated answers are logged and ignored.
//!
//! It must never apply a timeout (the server does: a plugin that never answers
//! simply never resolves), never free what a plugin allocated, never unload a
//! library, and never let a plugin's failure become a panic in the server: every
//! problem at start-up is a [`LoadError`] naming the file, every problem during a
//! hook is a 4xx for that command.

mod adapter;
mod completion;
mod library;
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use haraka_plugin_api::{ConfigDir, Plugin};

pub use completion::ignored_completions;
pub use haraka_plugin_wire::PLUGIN_ERROR_TEXT;

/// Why a plugin library could not be used; each names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {name}: not a built-in plugin, and no plugin library at {}", path.display())]
    NotFound { name: String, path: PathBuf },
    #[error("{}: cannot load plugin library: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    #[error("{}: not a haraka-rs plugin library (no `{symbol}` symbol)", path.display())]
    MissingSymbol { path: PathBuf, symbol: String },
    #[error(
        "{}: built for plugin ABI v{found}, this server speaks v{expected}; rebuild it against this server's haraka-plugin-sdk",
        path.display()
    )]
    WrongMajor {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "{}: built for plugin ABI v{major}.{found}, this server provides v{major}.{supported}",
        path.display()
    )]
    NewerMinor {
        path: PathBuf,
        major: u32,
        found: u32,
        supported: u32,
    },
    #[error("{}: plugin vtable is {size} bytes, ABI v{major}.{minor} needs {needed}", path.display())]
    ShortVtable {
        path: PathBuf,
        size: usize,
        needed: usize,
        major: u32,
        minor: u32,
    },
    #[error("{}: plugin vtable has no `{field}` function", path.display())]
    NullEntry { path: PathBuf, field: &'static str },
    #[error("{}: plugin {name} failed to start: {reason}", path.display())]
    Create {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("{}: plugin {name} registered unknown hook `{hook}`", path.display())]
    UnknownHook {
        path: PathBuf,
        name: String,
        hook: String,
    },
}

/// Whether a `config/plugins` entry names a library file rather than a plugin.
fn is_library_path(name: &str) -> bool {
    name.ends_with(std::env::consts::DLL_SUFFIX)
}

/// The file name a plugin named `name` is looked up under: `lib<name>.so`, with
/// `.`, `/` and `-` in the name turned into `_` (Cargo's library names).
pub fn library_file_name(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| if matches!(c, '.' | '/' | '-') { '_' } else { c })
        .collect();
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Where the library for a `config/plugins` entry is: an entry ending in `.so` is
/// a path (relative to `root`) and is returned as is; any other name is looked up
/// as `root/plugins/lib<name>.so` and `None` means there is no such file.
pub fn resolve_library(name: &str, root: &Path) -> Option<PathBuf> {
    if is_library_path(name) {
        return Some(root.join(name));
    }
    let path = root.join("plugins").join(library_file_name(name));
    path.is_file().then_some(path)
}

/// The name a plugin gets (for its config files, results and log lines): the entry
/// itself, or for a path the file name without `lib` and `.so`.
pub fn plugin_name(entry: &str) -> String {
    if !is_library_path(entry) {
        return entry.to_owned();
    }
    let file = Path::new(entry)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file
        .strip_suffix(std::env::consts::DLL_SUFFIX)
        .unwrap_or(&file);
    stem.strip_prefix(std::env::consts::DLL_PREFIX)
        .unwrap_or(stem)
        .to_owned()
}

/// Loads the plugin for a `config/plugins` entry that is not a built-in: finds its
/// library under `root`, opens it (once per file), checks it, and creates an
/// instance that reads its config from `config`.
pub fn load(name: &str, root: &Path, config: &ConfigDir) -> Result<Arc<dyn Plugin>, LoadError> {
    let path = resolve_library(name, root).ok_or_else(|| LoadError::NotFound {
        name: name.to_owned(),
        path: root.join("plugins").join(library_file_name(name)),
    })?;
    load_path(&plugin_name(name), &path, config)
}

/// Loads the library at `path` as plugin `name`.
pub fn load_path(
    name: &str,
    path: &Path,
    config: &ConfigDir,
) -> Result<Arc<dyn Plugin>, LoadError> {
    let library = library::open(path)?;
    let plugin = adapter::LoadedPlugin::create(library, name, config.root())?;
    Ok(Arc::new(plugin))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_library_files() {
        let table = [
            ("rcpt_allow", "rcpt_allow"),
            ("rcpt-allow", "rcpt_allow"),
            ("queue/smtp_forward", "queue_smtp_forward"),
            ("rcpt_to.in_host_list", "rcpt_to_in_host_list"),
        ];
        for (name, stem) in table {
            let want = format!(
                "{}{stem}{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            );
            assert_eq!(library_file_name(name), want, "{name}");
        }
    }

    #[test]
    fn resolve_finds_only_existing_libraries_but_keeps_explicit_paths() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("plugins")).unwrap();
        let lib = root.path().join("plugins").join(library_file_name("mine"));
        std::fs::write(&lib, b"").unwrap();
        assert_eq!(resolve_library("mine", root.path()), Some(lib));
        assert_eq!(resolve_library("other", root.path()), None);
        let explicit = format!("/opt/x/libthing{}", std::env::consts::DLL_SUFFIX);
        assert_eq!(
            resolve_library(&explicit, root.path()),
            Some(PathBuf::from(&explicit))
        );
        let relative = format!("lib/libthing{}", std::env::consts::DLL_SUFFIX);
        assert_eq!(
            resolve_library(&relative, root.path()),
            Some(root.path().join(&relative))
        );
        assert_eq!(plugin_name(&explicit), "thing");
        assert_eq!(plugin_name("queue/smtp_forward"), "queue/smtp_forward");
    }

    #[test]
    fn a_missing_plugin_is_a_start_up_error_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path()).unwrap();
        let err = load("nothing-here", root.path(), &config).err().unwrap();
        let text = err.to_string();
        assert!(text.contains("nothing-here"), "{text}");
        assert!(text.contains(&library_file_name("nothing-here")), "{text}");
    }
}
