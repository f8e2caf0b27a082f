//! Shipped defaults (config.md §2): the plugin layer versus core reads.

use haraka_config::booleans::SMTP_FORWARD_INI;
use haraka_config::{ConfigDir, Shipped, shipped};

use crate::root;

#[test]
fn shipped_lists() {
    // (files, name, plugin_list, core list)
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        &'a str,
        &'a [&'a str],
        &'a [&'a str],
    );
    let cases: &[Case<'_>] = &[
        (
            &[("config/smtp.ini", "")],
            "host_list",
            &["haraka.local"],
            &[],
        ),
        (
            &[("config/host_list", "# empty\n")],
            "host_list",
            &["haraka.local"],
            &[],
        ),
        (
            &[("config/host_list", "Example.com\n")],
            "host_list",
            &["Example.com"],
            &["Example.com"],
        ),
        (
            &[("config/smtp.ini", "")],
            "xclient.hosts",
            &["127.0.0.1"],
            &[],
        ),
        (
            &[("config/xclient.hosts", "::1\n")],
            "xclient.hosts",
            &["::1"],
            &["::1"],
        ),
        (&[("config/smtp.ini", "")], "host_list_regex", &[], &[]),
        (&[("config/smtp.ini", "")], "relay_acl_allow", &[], &[]),
        // The seed's flat layout gets no haraka.local.
        (&[("smtp.ini", "")], "host_list", &[], &[]),
        (&[("smtp.ini", "")], "xclient.hosts", &["127.0.0.1"], &[]),
    ];
    for (files, name, plugin, core) in cases {
        let dir = root(files);
        let cd = ConfigDir::open(dir.path()).unwrap();
        assert_eq!(cd.plugin_list(name), *plugin, "{files:?} {name}");
        assert_eq!(cd.list(name), *core, "{files:?} {name}");
    }
}

#[test]
fn shipped_smtp_forward_ini_is_deep_merged() {
    // (user file, host, port, enable_tls)
    let cases: &[(Option<&str>, &str, &str, bool)] = &[
        (None, "localhost", "2555", false),
        (Some(""), "localhost", "2555", false),
        (Some("port=25\n"), "localhost", "25", false),
        (
            Some("host=10.0.0.2\nenable_tls=yes\n[example.com]\nhost=h\n"),
            "10.0.0.2",
            "2555",
            true,
        ),
    ];
    for (user, host, port, tls) in cases {
        let files: Vec<(&str, &str)> = match user {
            Some(u) => vec![("config/smtp_forward.ini", u)],
            None => vec![("config/smtp.ini", "")],
        };
        let dir = root(&files);
        let cd = ConfigDir::open(dir.path()).unwrap();
        let ini = cd
            .plugin_ini_with("smtp_forward.ini", SMTP_FORWARD_INI)
            .unwrap();
        assert_eq!(ini.get("main", "host"), Some(*host), "{user:?}");
        assert_eq!(ini.get("main", "port"), Some(*port), "{user:?}");
        assert_eq!(ini.get_bool("main", "enable_tls", !tls), *tls, "{user:?}");
        assert!(!ini.get_bool("main", "one_message_per_rcpt", true));
        // The core read has no default layer.
        assert_eq!(
            cd.ini("smtp_forward.ini").unwrap().get("main", "port"),
            user.and_then(|u| u.contains("port").then_some("25"))
        );
    }
    assert_eq!(shipped("host_list"), Some(Shipped::List(&["haraka.local"])));
    assert_eq!(
        shipped("tls.ini"),
        None,
        "tls.ini is core: no default layer"
    );
}

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
