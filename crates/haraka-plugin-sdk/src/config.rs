//! Config files that reload when they change on disk.
//!
//! Read with the same reader as the built-in plugins (`haraka-config`, compiled into
//! the plugin) and watched by the same [`Watched`]: [`Watched::get`] looks at the
//! file's modification time, size and inode and reads it again when any of them
//! changed; a reload that fails keeps the previous value and logs why. A plugin's
//! files are checked on every `get` (one `stat`), so an edit is seen by the next hook.

use std::path::PathBuf;
use std::time::Duration;

pub use haraka_config::Watched;
use haraka_config::{Booleans, ConfigDir, ConfigErrors, Ini};

/// An ini file under the config directory (`<name>` with its `.ini`).
pub fn ini(dir: &ConfigDir, name: &str) -> Result<Watched<Ini>, ConfigErrors> {
    ini_with_booleans(dir, name, &[])
}

/// An ini file with Haraka's `booleans` option (`this.config.get(name, {booleans:
/// [...]})`): each declaration is `[+|-][SECTION.]KEY`; no section means `main`, `*`
/// as the section means the key in any section, a `+` makes the default `true` and a
/// `-` (or nothing) `false`. Declared keys read as `true`/`false` and are always
/// present, e.g. `&["+main.enabled", "-main.strict", "*.tls"]`.
pub fn ini_with_booleans(
    dir: &ConfigDir,
    name: &str,
    booleans: &[&str],
) -> Result<Watched<Ini>, ConfigErrors> {
    let (d, n, booleans) = (dir.clone(), name.to_owned(), Booleans::new(booleans));
    watch(dir.path(name), move || {
        let mut ini = d.ini(&n)?;
        booleans.apply(&mut ini);
        Ok(ini)
    })
}

/// A list file (one entry per line).
pub fn list(dir: &ConfigDir, name: &str) -> Result<Watched<Vec<String>>, ConfigErrors> {
    let (d, n) = (dir.clone(), name.to_owned());
    watch(dir.path(name), move || Ok(d.list(&n)))
}

fn watch<T: Send + Sync + 'static>(
    path: PathBuf,
    load: impl Fn() -> Result<T, ConfigErrors> + Send + Sync + 'static,
) -> Result<Watched<T>, ConfigErrors> {
    Ok(Watched::new(vec![path], load)?.with_interval(Duration::ZERO))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use std::sync::Arc;

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

    #[test]
    fn declared_booleans_as_haraka_config_get_has_them() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("config")).unwrap();
        std::fs::write(
            root.path().join("config/x.ini"),
            "strict=yes\nx=maybe\n[a]\ntls=on\n[b]\ntls=0\n",
        )
        .unwrap();
        let dir = ConfigDir::open(root.path()).unwrap();
        let watched = ini_with_booleans(
            &dir,
            "x.ini",
            &["+main.enabled", "-main.strict", "main.x", "*.tls"],
        )
        .unwrap();
        let ini = watched.get();
        let got: Vec<Option<&str>> = [("main", "enabled"), ("main", "strict"), ("main", "x")]
            .iter()
            .chain(&[("a", "tls"), ("b", "tls")])
            .map(|(s, k)| ini.get(s, k))
            .collect();
        assert_eq!(
            got,
            [
                Some("true"),
                Some("true"),
                Some("false"),
                Some("true"),
                Some("false")
            ]
        );
    }
}
