//! Integration tests for haraka-config (one test binary).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod defaults;
mod errors;
mod ini_cases;
mod layout;
mod typed;
mod watch;

use std::path::Path;

use tempfile::TempDir;

/// A root in a temp dir with `files` (`path`, `content`), parents created.
pub fn root(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        write(dir.path(), name, content);
    }
    dir
}

pub fn write(root: &Path, name: &str, content: &str) {
    let p = root.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}
