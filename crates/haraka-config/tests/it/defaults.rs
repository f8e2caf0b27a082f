//! Haraka's shipped values of the core files.

use haraka_config::ConfigDir;

use crate::root;

#[test]
fn databytes_absent_is_haraka_shipped_value() {
    let cases: &[(Option<&str>, u64)] =
        &[(None, 26_214_400), (Some("1000\n"), 1000), (Some("0\n"), 0)];
    for (file, want) in cases {
        let files: Vec<(&str, &str)> = match file {
            Some(f) => vec![("config/databytes", f)],
            None => vec![("config/smtp.ini", "")],
        };
        let dir = root(&files);
        assert_eq!(
            ConfigDir::open(dir.path())
                .unwrap()
                .core()
                .unwrap()
                .databytes,
            *want,
            "{file:?}"
        );
    }
}
