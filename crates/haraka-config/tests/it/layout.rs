//! Layout detection and each compatibility alias of the core files (see
//! `docs/configuration.md`, "Aliases").

use haraka_config::{ConfigDir, Layout};

use crate::{root, write};

fn names(cd: &ConfigDir) -> Vec<String> {
    cd.plugins().unwrap().into_iter().map(|p| p.name).collect()
}

fn has_alias(cd: &ConfigDir, needle: &str) -> bool {
    cd.aliases_used()
        .iter()
        .any(|a| a.starts_with("compatibility alias: ") && a.contains(needle))
}

#[test]
fn layout_detection() {
    // (files, expected layout, expected config dir relative to the root)
    type Case<'a> = (&'a [(&'a str, &'a str)], Layout, &'a str);
    let cases: &[Case<'_>] = &[
        (&[("config/smtp.ini", "")], Layout::Real, "config"),
        (&[("config/.keep", "")], Layout::Real, "config"),
        (&[], Layout::Real, "config"),
        (&[("smtp.ini", "")], Layout::Flat, ""),
        (&[("config", "")], Layout::Flat, ""),
        (&[("plugins", "tls\n")], Layout::Flat, ""),
        (&[("relay.ini", "")], Layout::Flat, ""),
        (&[("plugins/x.js", "")], Layout::Real, "config"),
        // A real config/ directory always wins.
        (
            &[("config/plugins", "tls\n"), ("smtp.ini", "")],
            Layout::Real,
            "config",
        ),
    ];
    for (files, layout, sub) in cases {
        let dir = root(files);
        let cd = ConfigDir::open(dir.path()).unwrap();
        assert_eq!(cd.layout(), *layout, "{files:?}");
        assert_eq!(cd.config_dir(), dir.path().join(sub).as_path(), "{files:?}");
        assert_eq!(
            has_alias(&cd, "(flat layout)"),
            *layout == Layout::Flat,
            "{files:?}"
        );
    }
}

#[test]
fn open_rejects_a_missing_root() {
    let dir = root(&[("file", "")]);
    for p in [dir.path().join("nope"), dir.path().join("file")] {
        let e = ConfigDir::open(&p).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(e.to_string().contains("No such directory"));
    }
}

#[test]
fn plugin_list_sources_in_order() {
    // config/plugins (real) beats everything.
    let dir = root(&[
        ("config/plugins", "# c\ntls\n ; x\n relay \n"),
        ("config/x", ""),
    ]);
    write(dir.path(), "plugins/tls.ini", "");
    let cd = ConfigDir::open(dir.path()).unwrap();
    let p = cd.plugins().unwrap();
    let got: Vec<(&str, usize)> = p.iter().map(|p| (p.name.as_str(), p.line)).collect();
    assert_eq!(got, [("tls", 2), ("relay", 4)]);
    assert!(cd.aliases_used().is_empty());

    // Flat: a plugins file in the root beats the config file's [plugins].
    let dir = root(&[("config", "[plugins]\nxclient\n"), ("plugins", "relay\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(names(&cd), ["relay"]);

    // Flat: [plugins] keeps order; `name=false` leaves a plugin out.
    let dir = root(&[("config", "[plugins]\nb\na\nc=false\nd=yes\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(names(&cd), ["b", "a", "d"]);
    assert!(has_alias(&cd, "[plugins] as"));

    // Real layout without config/plugins: a regular file ROOT/plugins (#4).
    let dir = root(&[("config/smtp.ini", ""), ("plugins", "relay\ntls\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(names(&cd), ["relay", "tls"]);
    assert!(has_alias(&cd, "/plugins as "));

    // Nothing anywhere: no plugins.
    let dir = root(&[("config/smtp.ini", "")]);
    assert!(names(&ConfigDir::open(dir.path()).unwrap()).is_empty());
}

#[test]
fn plugin_names_are_normalised() {
    let dir = root(&[(
        "config/plugins",
        "haraka-plugin-relay\nrelay_acl\ndata.headers\ntls # note\n",
    )]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(names(&cd), ["relay", "relay", "headers", "tls # note"]);
}

#[test]
fn plugins_dir_ini_is_an_alias_and_the_real_file_wins() {
    let dir = root(&[
        ("config/smtp.ini", ""),
        ("plugins/tls.ini", "key=a.pem\n"),
        ("plugins/x.js", ""),
    ]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let tls = cd.ini("tls.ini").unwrap();
    assert_eq!(tls.get("main", "key"), Some("a.pem"));
    assert_eq!(tls.file, dir.path().join("plugins/tls.ini"));
    assert!(has_alias(&cd, "plugins/tls.ini as "));

    write(dir.path(), "config/tls.ini", "key=b.pem\n");
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(cd.ini("tls.ini").unwrap().get("main", "key"), Some("b.pem"));
    assert!(cd.aliases_used().is_empty());
    cd.smtp_ini().unwrap();
    // The shadowed file is read by nothing and reported.
    assert_eq!(cd.unread_files(), [dir.path().join("plugins/tls.ini")]);
}

#[test]
fn server_section_fills_smtp_ini() {
    let dir = root(&[(
        "config",
        "[server]\nlisten=127.0.0.1:2525\ninactivity_timeout=5\n",
    )]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let smtp = cd.smtp_ini().unwrap();
    assert_eq!(smtp.listen[0].to_string(), "127.0.0.1:2525");
    assert_eq!(smtp.inactivity_timeout.as_secs(), 5);
    assert!(has_alias(&cd, "[server] listen as "));
    let raw = cd.ini("smtp.ini").unwrap();
    assert_eq!(
        raw.entry("main", "listen").unwrap().file,
        dir.path().join("config")
    );
    assert_eq!(raw.entry("main", "listen").unwrap().line, 2);
}

#[test]
fn reads_are_tracked_and_aliases_logged_once() {
    let dir = root(&[
        ("config/a", "1\n"),
        ("config/b.ini", "k=v\n"),
        ("config/.hidden", ""),
        ("config/c~", ""),
        ("config/sub/d", ""),
        ("plugins/tls.ini", ""),
    ]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let clone = cd.clone();
    let unread = |cd: &ConfigDir| -> Vec<String> {
        cd.unread_files()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(unread(&cd), ["config/a", "config/b.ini", "plugins/tls.ini"]);
    assert_eq!(clone.value("a").as_deref(), Some("1"));
    clone.ini("b.ini").unwrap();
    assert_eq!(unread(&cd), ["plugins/tls.ini"]);
    for _ in 0..3 {
        cd.ini("tls.ini").unwrap();
    }
    assert!(unread(&cd).is_empty());
    assert_eq!(cd.aliases_used().len(), 1);
    // Files read outside the crate can be marked.
    write(dir.path(), "config/e.pem", "x");
    assert_eq!(unread(&cd), ["config/e.pem"]);
    cd.mark_read(&dir.path().join("config/e.pem"));
    assert!(unread(&cd).is_empty());
}

#[test]
fn paths_flat_files_and_me() {
    let dir = root(&[
        ("config/list", "\u{feff}# c\n  one  \r\n;two\r\n\n three\n"),
        ("config/data", "a\n# b\n\n"),
        ("config/queue/smtp_forward.timeout", "12\n"),
        ("config/bin.pem", "\u{0}\u{1}"),
        ("config/me", "# only a comment\n"),
    ]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(cd.path("x"), dir.path().join("config/x"));
    assert_eq!(cd.path("/etc/abs"), std::path::Path::new("/etc/abs"));
    assert_eq!(cd.list("list"), ["one", "three"]);
    assert_eq!(cd.value("list").as_deref(), Some("one"));
    assert_eq!(cd.data("data"), ["a", "# b", ""]);
    assert!(cd.list("missing").is_empty());
    assert_eq!(cd.value("missing"), None);
    assert_eq!(
        cd.value("queue/smtp_forward.timeout").as_deref(),
        Some("12")
    );
    assert_eq!(cd.read_bytes("bin.pem").unwrap(), Some(vec![0, 1]));
    assert_eq!(cd.read_bytes("nope.pem").unwrap(), None);
    // `me` with no content is the OS host name.
    assert_eq!(cd.value("me"), Some(haraka_config::hostname()));
    // A directory where a file is expected reads as missing.
    let dir = root(&[("config/host_list/x", "")]);
    assert!(
        ConfigDir::open(dir.path())
            .unwrap()
            .list("host_list")
            .is_empty()
    );
}

#[test]
fn config_dir_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<ConfigDir>();
    let dir = root(&[("config/a", "1\n"), ("config/b", "2\n")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|n| {
            let cd = cd.clone();
            std::thread::spawn(move || cd.value(n))
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().is_some());
    }
    assert!(cd.unread_files().is_empty());
}
