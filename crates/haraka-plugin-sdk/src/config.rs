//! Config files that reload when they change on disk.
//!
//! Read with the same reader as the built-in plugins (`haraka-config`, compiled into
//! the plugin). [`Watched::get`] looks at the file's modification time, size and
//! inode and reads it again when any of them changed; a reload that fails keeps the
//! previous value and logs why.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use haraka_config::{ConfigDir, ConfigErrors, Ini};

/// What identifies one version of a file (`None`: the file does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &std::path::Path) -> Stamp {
    Stamp(std::fs::metadata(path).ok().map(|m| {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let ino = 0;
        (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len(), ino)
    }))
}

type Loader<T> = fn(&ConfigDir, &str) -> Result<T, ConfigErrors>;

/// A config file and its last good value.
pub struct Watched<T> {
    dir: ConfigDir,
    name: String,
    path: PathBuf,
    load: Loader<T>,
    state: Mutex<(Stamp, Arc<T>)>,
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("path", &self.path).finish()
    }
}

impl<T> Watched<T> {
    /// Reads `name` now with `load`; an error here is a start-up error.
    pub fn new(dir: &ConfigDir, name: &str, load: Loader<T>) -> Result<Watched<T>, ConfigErrors> {
        let path = dir.path(name);
        let first = stamp(&path);
        let value = load(dir, name)?;
        Ok(Watched {
            dir: dir.clone(),
            name: name.to_owned(),
            path,
            load,
            state: Mutex::new((first, Arc::new(value))),
        })
    }

    /// The current value, re-read first if the file changed.
    pub fn get(&self) -> Arc<T> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.path);
        if now != state.0 {
            match (self.load)(&self.dir, &self.name) {
                Ok(value) => {
                    tracing::info!("reloaded {}", self.path.display());
                    *state = (now, Arc::new(value));
                }
                Err(e) => {
                    tracing::warn!("keeping the previous {}: {e}", self.path.display());
                    state.0 = now;
                }
            }
        }
        state.1.clone()
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

fn load_ini(dir: &ConfigDir, name: &str) -> Result<Ini, ConfigErrors> {
    dir.ini(name)
}

fn load_list(dir: &ConfigDir, name: &str) -> Result<Vec<String>, ConfigErrors> {
    Ok(dir.list(name))
}

/// An ini file under the config directory (`<name>` with its `.ini`).
pub fn ini(dir: &ConfigDir, name: &str) -> Result<Watched<Ini>, ConfigErrors> {
    Watched::new(dir, name, load_ini)
}

/// A list file (one entry per line).
pub fn list(dir: &ConfigDir, name: &str) -> Result<Watched<Vec<String>>, ConfigErrors> {
    Watched::new(dir, name, load_list)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn rereads_when_the_file_changes_and_keeps_the_value_otherwise() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("config")).unwrap();
        let file = root.path().join("config/allow");
        std::fs::write(&file, "a@example.com\n").unwrap();
        let dir = ConfigDir::open(root.path()).unwrap();
        let watched = list(&dir, "allow").unwrap();
        let first = watched.get();
        assert_eq!(*first, vec!["a@example.com".to_owned()]);
        assert!(
            Arc::ptr_eq(&first, &watched.get()),
            "unchanged file is not re-read"
        );

        std::fs::write(&file, "a@example.com\nb@example.com\n").unwrap();
        assert_eq!(watched.get().len(), 2);

        std::fs::remove_file(&file).unwrap();
        assert!(watched.get().is_empty(), "a removed list is an empty list");
    }

    #[test]
    fn ini_values_are_read_by_the_shared_reader() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("config")).unwrap();
        std::fs::write(root.path().join("config/x.ini"), "[main]\nreject=false\n").unwrap();
        let dir = ConfigDir::open(root.path()).unwrap();
        let watched = ini(&dir, "x.ini").unwrap();
        assert!(!watched.get().get_bool("main", "reject", true));
        assert_eq!(watched.path(), dir.path("x.ini"));
    }
}
