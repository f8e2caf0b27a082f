//! Errors are collected and reported together, each with file:line; nothing panics.

use haraka_config::{ConfigDir, ConfigErrors, Ini, fuzz_parse};

use crate::root;

fn lines(e: &ConfigErrors) -> Vec<(String, usize)> {
    e.0.iter()
        .map(|d| {
            (
                d.file.file_name().unwrap().to_string_lossy().into_owned(),
                d.line,
            )
        })
        .collect()
}

#[test]
fn bad_ini_lines_are_all_reported() {
    let dir = root(&[(
        "config/relay.ini",
        "[relay]\nacl=true\nbad line here\nall=false\n\"x\"=1\n[__proto__]\n",
    )]);
    let e = ConfigDir::open(dir.path())
        .unwrap()
        .ini("relay.ini")
        .unwrap_err();
    assert_eq!(
        lines(&e),
        [
            ("relay.ini".into(), 3),
            ("relay.ini".into(), 5),
            ("relay.ini".into(), 6)
        ]
    );
    let text = e.to_string();
    assert!(
        text.contains("relay.ini:3: invalid line: bad line here"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn bad_smtp_ini_values_are_all_reported() {
    let text = "listen=127.0.0.1:25,nonsense:x,[::1]:99999
inactivity_timeout=soon
nodes=many
smtps_port=-1
unknown_key=1
spool_after=
[headers]
max_lines=lots
[weird]
a=1
[main]
max_connections=-1
max_connections_per_ip=many
write_timeout=never
message_memory_budget=lots
";
    let dir = root(&[("config/smtp.ini", text)]);
    let e = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap_err();
    let got: Vec<usize> = e.0.iter().map(|d| d.line).collect();
    // Two bad listen entries on line 1, then one per bad value; unknown keys and
    // sections only warn, an empty value means "unset".
    assert_eq!(got, [1, 1, 2, 3, 4, 12, 13, 14, 15, 8]);
    assert!(
        e.0.iter()
            .all(|d| d.file == dir.path().join("config/smtp.ini"))
    );
    assert!(e.0[0].message.contains("nonsense:x"), "{}", e.0[0]);
}

#[test]
fn bad_flat_values_are_all_reported() {
    let dir = root(&[
        ("config/databytes", "# size\n25MB\n"),
        ("config/max_line_length", "-1\n"),
        ("config/deny_includes_uuid", "maybe\n"),
        ("config/banner_includes_uuid", "sure\n"),
        ("config/plugin_timeout", "-3\n"),
    ]);
    let e = ConfigDir::open(dir.path()).unwrap().core().unwrap_err();
    let mut got = lines(&e);
    got.sort();
    assert_eq!(
        got,
        [
            ("banner_includes_uuid".into(), 1),
            ("databytes".into(), 2),
            ("deny_includes_uuid".into(), 1),
            ("max_line_length".into(), 1),
            ("plugin_timeout".into(), 1),
        ]
    );
}

#[test]
fn flat_config_file_errors_fail_open() {
    let dir = root(&[("config", "[server]\nlisten 1\n[plugins]\ntls\n!!\n")]);
    let e = ConfigDir::open(dir.path()).unwrap_err();
    assert_eq!(lines(&e), [("config".into(), 2), ("config".into(), 5)]);
}

#[test]
fn non_utf8_files_are_read_lossily() {
    let dir = root(&[]);
    let cfg = dir.path().join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("host_list"), b"ex\xffample.com\n\xfe\n").unwrap();
    std::fs::write(cfg.join("x.ini"), b"k=v\xc3\n[s\xff]\nz=1\n").unwrap();
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(cd.list("host_list"), ["ex\u{fffd}ample.com", "\u{fffd}"]);
    let ini = cd.ini("x.ini").unwrap();
    assert_eq!(ini.get("main", "k"), Some("v\u{fffd}"));
    assert_eq!(ini.get("s\u{fffd}", "z"), Some("1"));
}

/// A small deterministic generator (xorshift) biased towards the bytes the
/// reader cares about.
fn bytes(state: &mut u64, len: usize) -> Vec<u8> {
    const SPECIAL: &[u8] = b"[]=\\;# \t\r\n:/.-+_aZ09\xff\xc3\xe2\x80\xa8\xef\xbb\xbf";
    (0..len)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            if state.is_multiple_of(3) {
                (*state >> 8) as u8
            } else {
                SPECIAL[(*state >> 8) as usize % SPECIAL.len()]
            }
        })
        .collect()
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15;
    for i in 0..3000 {
        let data = bytes(&mut state, i % 300);
        fuzz_parse(&data);
        let text = String::from_utf8_lossy(&data);
        let mut d = Vec::new();
        let ini = Ini::parse(std::path::Path::new("f.ini"), &text, &mut d);
        assert!(!ini.sections.is_empty() && ini.sections[0].name == "main");
    }
}
