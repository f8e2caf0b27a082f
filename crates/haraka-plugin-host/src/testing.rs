//! Helpers for tests that load the workspace's example and fixture plugins.
//!
//! The plugin libraries are ordinary workspace members with `crate-type =
//! ["cdylib"]`, but `cargo test` does not produce cdylib files. So the first call
//! of [`built_library`] in a test process runs `cargo build` for them, into the
//! same target directory as the running test (cargo releases its build lock
//! before it runs tests; a fresh build is a no-op of a second). If cargo cannot be
//! run, libraries already built (`cargo build --workspace`) are used as they are.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The plugin libraries of this workspace: `[lib] name` and package.
pub const PLUGIN_PACKAGES: &[(&str, &str)] = &[
    ("rcpt_allow", "haraka-example-rcpt-allow"),
    ("body_stamp", "haraka-example-body-stamp"),
    ("fixture_wrong_major", "haraka-fixture-wrong-major"),
    ("fixture_short_vtable", "haraka-fixture-short-vtable"),
    ("fixture_no_entry", "haraka-fixture-no-entry"),
    ("fixture_panics", "haraka-fixture-panics"),
    ("fixture_never_completes", "haraka-fixture-never-completes"),
    ("fixture_completes_twice", "haraka-fixture-completes-twice"),
    ("fixture_inspect", "haraka-fixture-inspect"),
];

/// The directory cargo writes this profile's libraries to (`target/debug`).
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent", exe.display()))?
        .to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Why the plugin libraries were not (re)built.
#[derive(Debug, Clone)]
enum NotBuilt {
    /// Cargo could not be run: libraries already there are used as they are.
    NoCargo(String),
    /// The build failed: its errors.
    Failed(String),
}

/// Builds every plugin library once per process.
fn build_all(profile_dir: &Path) -> Result<(), NotBuilt> {
    static BUILT: OnceLock<Result<(), NotBuilt>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let profile = profile_dir
                .file_name()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = profile_dir
                .parent()
                .ok_or_else(|| NotBuilt::NoCargo("the profile directory has no parent".into()))?;
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
            let cargo = std::env::var("CARGO")
                .ok()
                .or_else(|| option_env!("CARGO").map(str::to_owned))
                .unwrap_or_else(|| "cargo".to_owned());
            let mut cmd = Command::new(&cargo);
            cmd.arg("build")
                .arg("--quiet")
                .arg("--manifest-path")
                .arg(&workspace)
                .arg("--target-dir")
                .arg(target);
            if profile != "debug" {
                cmd.args(["--profile", &profile]);
            }
            for (_, package) in PLUGIN_PACKAGES {
                cmd.args(["-p", package]);
            }
            let out = cmd
                .output()
                .map_err(|e| NotBuilt::NoCargo(format!("running {cargo}: {e}")))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(NotBuilt::Failed(format!(
                    "building the plugin libraries failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )))
            }
        })
        .clone()
}

/// The built library of the plugin crate whose `[lib] name` is `lib_name`
/// (one of [`PLUGIN_PACKAGES`], built on first use).
pub fn built_library(lib_name: &str) -> Result<PathBuf, String> {
    let dir = profile_dir()?;
    let built = build_all(&dir);
    let path = dir.join(crate::library_file_name(lib_name));
    match (built, path.is_file()) {
        (Err(NotBuilt::Failed(why)), _) => Err(why),
        (_, true) => Ok(path),
        (Err(NotBuilt::NoCargo(why)), false) => Err(format!(
            "{} is missing and cannot be built ({why}): run `cargo build --workspace` first",
            path.display()
        )),
        (Ok(()), false) => Err(format!(
            "{} is missing: is `{lib_name}` a plugin library of this workspace?",
            path.display()
        )),
    }
}

/// Copies the built library `lib_name` into `root/plugins/`, where
/// [`crate::load`] looks for a plugin of that name, and returns the copy's path.
/// (A test of the real server installs a plugin this way, lists its name in
/// `config/plugins`, and speaks SMTP to the server.)
pub fn install(lib_name: &str, root: &Path) -> Result<PathBuf, String> {
    let from = built_library(lib_name)?;
    let dir = root.join("plugins");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let to = dir.join(crate::library_file_name(lib_name));
    std::fs::copy(&from, &to)
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    Ok(to)
}
