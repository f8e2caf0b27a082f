//! Libraries that cannot be used are start-up errors naming the file.

use haraka_plugin_host::{LoadError, library_file_name, load};

use crate::support::root;

fn load_error(lib: &str, files: &[(&str, &str)]) -> (LoadError, String) {
    let root = root(&[lib], files);
    let err = load(lib, root.path(), &root.config)
        .err()
        .expect("load must fail");
    let text = err.to_string();
    assert!(
        text.contains(&library_file_name(lib)),
        "the error names the file: {text}"
    );
    (err, text)
}

#[test]
fn a_plugin_for_another_major_version_is_refused() {
    let (err, text) = load_error("fixture_wrong_major", &[]);
    assert!(
        matches!(
            err,
            LoadError::WrongMajor {
                found: 2,
                expected: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("ABI v2"), "{text}");
}

#[test]
fn a_short_vtable_is_refused() {
    let (err, text) = load_error("fixture_short_vtable", &[]);
    assert!(
        matches!(err, LoadError::ShortVtable { size: 24, .. }),
        "{err:?}"
    );
    assert!(text.contains("24 bytes"), "{text}");
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let (err, text) = load_error("fixture_no_entry", &[]);
    assert!(matches!(err, LoadError::MissingSymbol { .. }), "{err:?}");
    assert!(text.contains("haraka_plugin_entry_v1"), "{text}");
}

#[test]
fn a_plugin_that_panics_while_starting_is_a_start_up_error() {
    let (err, text) = load_error(
        "fixture_panics",
        &[("fixture_panics.ini", "[main]\npanic_in_create=true\n")],
    );
    assert!(matches!(err, LoadError::Create { .. }), "{err:?}");
    assert!(text.contains("asked to panic in create"), "{text}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let root = root(&[], &[]);
    std::fs::create_dir_all(root.path().join("plugins")).unwrap();
    let path = root
        .path()
        .join("plugins")
        .join(library_file_name("garbage"));
    std::fs::write(&path, b"#!/bin/sh\necho not a library\n").unwrap();
    let err = load("garbage", root.path(), &root.config).err().unwrap();
    assert!(matches!(err, LoadError::Open { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn an_explicit_path_that_does_not_exist_is_refused() {
    let root = root(&[], &[]);
    let entry = format!("/nonexistent/dir/{}", library_file_name("nothing"));
    let err = load(&entry, root.path(), &root.config).err().unwrap();
    assert!(matches!(err, LoadError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&entry), "{err}");
}
