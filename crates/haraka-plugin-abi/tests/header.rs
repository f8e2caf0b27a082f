//! The checked-in C header matches the Rust definitions, and a C compiler agrees
//! with Rust on every size and offset.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::PathBuf;
use std::process::Command;

fn header_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/haraka_plugin.h")
}

#[test]
fn checked_in_header_is_current() {
    let fresh = haraka_plugin_abi::c_header();
    let path = header_path();
    if std::env::var_os("HARAKA_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "{} is stale: run `HARAKA_BLESS=1 cargo test -p haraka-plugin-abi` and commit it",
        path.display()
    );
}

/// Compiles a C file with `_Static_assert`s of every Rust size and offset.
#[test]
fn c_compiler_agrees_on_layout() {
    let mut c = format!("#include \"{}\"\n", header_path().display());
    for layout in haraka_plugin_abi::layouts() {
        let (name, size) = (layout.name, layout.size);
        c.push_str(&format!(
            "_Static_assert(sizeof({name}) == {size}, \"size of {name}\");\n"
        ));
        for (field, offset) in layout.fields {
            c.push_str(&format!(
                "_Static_assert(offsetof({name}, {field}) == {offset}, \"{name}.{field}\");\n"
            ));
        }
    }
    c.push_str("const HkPluginVtable *HARAKA_PLUGIN_ENTRY(void) { return 0; }\n");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("layout.c");
    std::fs::write(&src, c).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror", "-fsyntax-only"])
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler `{cc}` (set CC): {e}"));
    assert!(
        out.status.success(),
        "C compiler rejected the header:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
