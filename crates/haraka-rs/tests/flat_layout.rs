//! The flat layout and the compatibility aliases that plugins declare, read through
//! the built-in plugins' declarations: the user's two roots exactly as written, the
//! same intent in Haraka's real layout, and each plugin alias on its own.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::SocketAddr;
use std::path::Path;

use haraka_config::booleans::TLS_INI;
use haraka_config::{ConfigDir, Layout, ListSpec, ListenAddr, PluginLayout};
use haraka_plugin_queue_smtp_forward::{SMTP_FORWARD_INI, xclient_forward};
use haraka_plugin_rcpt_to_in_host_list::lists::HOST_LIST_SPEC;
use haraka_plugin_relay::config::RELAY_INI;
use haraka_plugin_xclient::HOSTS;
use tempfile::TempDir;

/// What the binary passes when it opens a root.
const LAYOUTS: &[PluginLayout] = &[
    haraka_plugin_xclient::LAYOUT,
    haraka_plugin_rcpt_to_in_host_list::lists::LAYOUT,
    haraka_plugin_relay::config::LAYOUT,
];

fn open(root: &Path) -> ConfigDir {
    ConfigDir::open_with(root, LAYOUTS).unwrap()
}

/// A root in a temp dir with `files` (`path`, `content`), parents created.
fn root(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        write(dir.path(), name, content);
    }
    dir
}

fn write(root: &Path, name: &str, content: &str) {
    let p = root.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn names(cd: &ConfigDir) -> Vec<String> {
    cd.plugins().unwrap().into_iter().map(|p| p.name).collect()
}

fn has_alias(cd: &ConfigDir, needle: &str) -> bool {
    cd.aliases_used()
        .iter()
        .any(|a| a.starts_with("compatibility alias: ") && a.contains(needle))
}

/// The declaration of a list file a built-in plugin reads (Haraka ships
/// `host_list_regex` and `relay_acl_allow` empty).
fn spec(name: &'static str) -> ListSpec {
    match name {
        "host_list" => HOST_LIST_SPEC,
        "xclient.hosts" => HOSTS,
        _ => ListSpec {
            name,
            shipped: &[],
            shipped_in_flat: true,
            alias: None,
        },
    }
}

const IN_CONFIG: &str = "[server]
listen=0.0.0.0:25
daemonize=true

[plugins]
xclient
queue/smtp_forward
rcpt_to.in_host_list
tls
";
const IN_SMTP: &str = "; address to listen on (default: all IPv6 and IPv4 addresses, port 25)
; use \"[::0]:25\" to listen on IPv6 and IPv4 (not all OSes)
listen=[::]:25
";
const IN_FORWARD: &str = "; Disable outbound to Internet
enable_outbound=false

; Forward everything to Mailcow via WireGuard
host=10.0.0.2
port=25
";
const IN_XCLIENT: &str = "enabled=true\nforward=true\ndestination=10.0.0.2:25\n";
const IN_TLS: &str = "key=/opt/haraka/config/haraka-in/tls/mail.example.com.pem
cert=/opt/haraka/config/haraka-in/tls/mail.example.com.pem
";
const IN_RCPT: &str = "[main]\nhost_list=/opt/haraka/config/haraka-in/host_list\n";

fn haraka_in() -> tempfile::TempDir {
    root(&[
        ("config", IN_CONFIG),
        ("smtp.ini", IN_SMTP),
        ("plugins/smtp_forward.ini", IN_FORWARD),
        ("plugins/xclient.ini", IN_XCLIENT),
        ("plugins/tls.ini", IN_TLS),
        ("plugins/rcpt_to.in_host_list.ini", IN_RCPT),
        ("host_list", "example.com\n"),
        ("tls/mail.example.com.pem", "-----BEGIN PRIVATE KEY-----\n"),
    ])
}

fn tcp(s: &str) -> ListenAddr {
    ListenAddr::Tcp(s.parse::<SocketAddr>().unwrap())
}

#[test]
fn haraka_in_as_written() {
    let dir = haraka_in();
    let cd = open(dir.path());
    assert_eq!(cd.layout(), Layout::Flat);
    assert_eq!(cd.config_dir(), dir.path());

    let plugins = cd.plugins().unwrap();
    let got: Vec<(&str, usize)> = plugins.iter().map(|p| (p.name.as_str(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("xclient", 6),
            ("queue/smtp_forward", 7),
            ("rcpt_to.in_host_list", 8),
            ("tls", 9)
        ]
    );
    assert!(plugins.iter().all(|p| p.file == dir.path().join("config")));

    let smtp = cd.smtp_ini().unwrap();
    assert_eq!(
        smtp.listen,
        [tcp("[::]:25")],
        "smtp.ini wins over [server] listen"
    );
    assert!(!smtp.listen_is_default);
    assert!(smtp.daemonize, "daemonize comes from [server]");

    let fwd = cd.plugin_ini(&SMTP_FORWARD_INI).unwrap();
    assert_eq!(fwd.get("main", "host"), Some("10.0.0.2"));
    assert_eq!(fwd.get("main", "port"), Some("25"));
    assert!(!fwd.get_bool("main", "enable_outbound", true));
    assert!(!fwd.get_bool("main", "enable_tls", true));
    assert_eq!(fwd.entry("main", "host").unwrap().line, 5);

    assert_eq!(cd.plugin_list(&HOST_LIST_SPEC), ["example.com"]);
    assert!(cd.plugin_list(&spec("host_list_regex")).is_empty());
    assert_eq!(cd.plugin_list(&HOSTS), ["127.0.0.1"]);
    let tls = cd.ini_with("tls.ini", TLS_INI).unwrap();
    assert_eq!(tls.get("main", "key"), tls.get("main", "cert"));
    assert!(tls.get_bool("main", "requestCert", false));
    assert!(xclient_forward(&cd));
    let core = cd.core().unwrap();
    assert_eq!(core.databytes, 26_214_400);

    let aliases = cd.aliases_used().join("\n");
    for needle in [
        "(flat layout)",
        "[plugins] as",
        "[server] daemonize as",
        "plugins/smtp_forward.ini as",
        "plugins/xclient.ini as",
        "plugins/tls.ini as",
        "plugins/rcpt_to.in_host_list.ini as",
    ] {
        assert!(
            aliases.contains(needle),
            "alias {needle:?} missing from:\n{aliases}"
        );
    }
    assert!(!aliases.contains("[server] listen"), "{aliases}");
    assert_eq!(cd.unread_files(), Vec::<std::path::PathBuf>::new());
}

const OUT_RELAY: &str = "[relay]\nforce_routing=true\nacl=true\ndest_domains=false\nall=false\n";
const OUT_TLS: &str = "key=/opt/haraka/config/haraka-out/tls/mailrelay.example.com.pem
cert=/opt/haraka/config/haraka-out/tls/mailrelay.example.com.pem
";

#[test]
fn haraka_out_as_written_in_the_text() {
    let dir = root(&[
        ("plugins", "relay\ntls\n"),
        ("host_list", "mailrelay.example.com\n"),
        ("relay.ini", OUT_RELAY),
        ("relay_acl_allow", "10.0.0.2/32\n"),
        ("smtp.ini", "listen=10.0.0.1:2526\n"),
        ("tls.ini", OUT_TLS),
    ]);
    let cd = open(dir.path());
    assert_eq!(cd.layout(), Layout::Flat);
    let plugins = cd.plugins().unwrap();
    let got: Vec<(&str, usize)> = plugins.iter().map(|p| (p.name.as_str(), p.line)).collect();
    assert_eq!(got, [("relay", 1), ("tls", 2)]);
    assert_eq!(cd.smtp_ini().unwrap().listen, [tcp("10.0.0.1:2526")]);
    let relay = cd.plugin_ini(&RELAY_INI).unwrap();
    let flags: Vec<bool> = ["acl", "force_routing", "dest_domains", "all"]
        .iter()
        .map(|k| relay.get_bool("relay", k, false))
        .collect();
    assert_eq!(flags, [true, true, false, false]);
    assert_eq!(cd.plugin_list(&spec("relay_acl_allow")), ["10.0.0.2/32"]);
    cd.ini_with("tls.ini", TLS_INI).unwrap();
    cd.core().unwrap();
    // host_list is inert on haraka-out: nothing reads it, so it is reported.
    assert_eq!(cd.unread_files(), [dir.path().join("host_list")]);
}

#[test]
fn haraka_out_as_drawn_in_the_tree() {
    let dir = root(&[("config", ""), ("plugins/.keep", "")]);
    let cd = open(dir.path());
    assert_eq!(cd.layout(), Layout::Flat);
    assert!(cd.plugins().unwrap().is_empty());
    assert!(cd.smtp_ini().unwrap().listen_is_default);
}

#[test]
fn the_same_intent_in_real_layout_uses_no_alias() {
    let dir = root(&[
        ("config/smtp.ini", "listen=[::]:25\n"),
        (
            "config/plugins",
            "xclient\ntls\nrcpt_to.in_host_list\nqueue/smtp_forward\n",
        ),
        ("config/host_list", "example.com\n"),
        ("config/me", "mail.example.com\n"),
        (
            "config/smtp_forward.ini",
            "host=10.0.0.2\nport=25\nenable_outbound=false\n",
        ),
        ("config/tls.ini", IN_TLS),
    ]);
    let cd = open(dir.path());
    assert_eq!(cd.layout(), Layout::Real);
    assert!(cd.has_smtp_ini());
    let names: Vec<String> = cd.plugins().unwrap().into_iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "xclient",
            "tls",
            "rcpt_to.in_host_list",
            "queue/smtp_forward"
        ]
    );
    assert_eq!(cd.core().unwrap().me, "mail.example.com");
    assert_eq!(cd.plugin_list(&HOST_LIST_SPEC), ["example.com"]);
    let fwd = cd.plugin_ini(&SMTP_FORWARD_INI).unwrap();
    assert_eq!(
        (fwd.get("main", "host"), fwd.get("main", "port")),
        (Some("10.0.0.2"), Some("25"))
    );
    cd.smtp_ini().unwrap();
    cd.ini("tls.ini").unwrap();
    assert!(cd.aliases_used().is_empty(), "{:?}", cd.aliases_used());
    assert!(cd.unread_files().is_empty(), "{:?}", cd.unread_files());
}

#[test]
fn xclient_enabled_false_drops_xclient() {
    let cases: &[(&str, &[&str])] = &[
        ("enabled=false\n", &["tls", "relay"]),
        ("enabled=no\n", &["tls", "relay"]),
        ("enabled=true\n", &["xclient", "tls", "relay"]),
        ("forward=false\n", &["xclient", "tls", "relay"]),
    ];
    for (xc, want) in cases {
        let dir = root(&[
            ("config", "[plugins]\nxclient\ntls\nrelay\n"),
            ("plugins/xclient.ini", xc),
        ]);
        let cd = open(dir.path());
        assert_eq!(names(&cd), *want, "{xc}");
        assert_eq!(has_alias(&cd, "removes xclient"), want.len() == 2, "{xc}");
        assert_eq!(
            xclient_forward(&cd),
            !xc.starts_with("forward=false"),
            "{xc}"
        );
    }
    // No xclient.ini: forward is Haraka's behaviour (on).
    let dir = root(&[("config/smtp.ini", "")]);
    assert!(xclient_forward(&open(dir.path())));
}

#[test]
fn smtp_forward_host_port_from_xclient_destination() {
    // (smtp_forward.ini, expected host, expected port, alias used)
    let cases: &[(Option<&str>, &str, &str, bool)] = &[
        (None, "10.0.0.9", "2525", true),
        (Some("enable_tls=true\n"), "10.0.0.9", "2525", true),
        (Some("host=10.0.0.2\nport=25\n"), "10.0.0.2", "25", false),
        (Some("port=26\n"), "localhost", "26", false),
    ];
    for (fwd, host, port, alias) in cases {
        let dir = root(&[
            ("smtp.ini", ""),
            ("plugins/xclient.ini", "destination=10.0.0.9:2525\n"),
        ]);
        if let Some(f) = fwd {
            write(dir.path(), "smtp_forward.ini", f);
        }
        let cd = open(dir.path());
        let ini = cd.plugin_ini(&SMTP_FORWARD_INI).unwrap();
        assert_eq!(
            (ini.get("main", "host"), ini.get("main", "port")),
            (Some(*host), Some(*port)),
            "{fwd:?}"
        );
        assert_eq!(has_alias(&cd, "destination as "), *alias, "{fwd:?}");
    }
}

#[test]
fn host_list_from_rcpt_to_in_host_list_ini() {
    let elsewhere = root(&[
        ("domains", "# local\nexample.com\nexample.org\n"),
        ("empty", "# none\n"),
    ]);
    let target = elsewhere.path().join("domains");
    let ini = format!("[main]\nhost_list={}\n", target.display());

    let dir = root(&[
        ("config/smtp.ini", ""),
        ("plugins/rcpt_to.in_host_list.ini", &ini),
    ]);
    let cd = open(dir.path());
    assert_eq!(
        cd.plugin_list(&HOST_LIST_SPEC),
        ["example.com", "example.org"]
    );
    assert_eq!(cd.plugin_list_entries(&HOST_LIST_SPEC)[1].line, 3);
    assert!(has_alias(&cd, "as "));

    // An empty target gives an empty list: no haraka.local when the alias is set.
    let ini = format!("host_list={}\n", elsewhere.path().join("empty").display());
    let dir = root(&[
        ("config/smtp.ini", ""),
        ("config/rcpt_to.in_host_list.ini", &ini),
    ]);
    assert!(open(dir.path()).plugin_list(&HOST_LIST_SPEC).is_empty());

    // A real config/host_list wins over the alias.
    let ini = format!("host_list={}\n", target.display());
    let dir = root(&[
        ("config/host_list", "real.example\n"),
        ("config/rcpt_to.in_host_list.ini", &ini),
    ]);
    let cd = open(dir.path());
    assert_eq!(cd.plugin_list(&HOST_LIST_SPEC), ["real.example"]);
    assert!(cd.aliases_used().is_empty());
}

#[test]
fn relay_force_route_is_force_routing() {
    let cases: &[(&str, bool, bool)] = &[
        ("[relay]\nforce_route=false\n", false, true),
        (
            "[relay]\nforce_route=false\nforce_routing=true\n",
            true,
            false,
        ),
        ("[relay]\n", true, false),
    ];
    for (text, want, alias) in cases {
        let dir = root(&[("config/relay.ini", text)]);
        let cd = open(dir.path());
        let ini = cd.plugin_ini(&RELAY_INI).unwrap();
        assert_eq!(
            ini.get_bool("relay", "force_routing", !want),
            *want,
            "{text}"
        );
        assert!(ini.entry("relay", "force_route").is_none());
        assert_eq!(
            has_alias(&cd, "force_route as force_routing"),
            *alias,
            "{text}"
        );
    }
}

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
        // The flat layout gets no haraka.local.
        (&[("smtp.ini", "")], "host_list", &[], &[]),
        (&[("smtp.ini", "")], "xclient.hosts", &["127.0.0.1"], &[]),
    ];
    for (files, name, plugin, core) in cases {
        let dir = root(files);
        let cd = open(dir.path());
        assert_eq!(cd.plugin_list(&spec(name)), *plugin, "{files:?} {name}");
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
        let cd = open(dir.path());
        let ini = cd.plugin_ini(&SMTP_FORWARD_INI).unwrap();
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
    assert_eq!(HOST_LIST_SPEC.shipped, ["haraka.local"]);
    // tls.ini is core: read without a default layer.
    let dir = root(&[("config/smtp.ini", "")]);
    assert!(
        open(dir.path()).ini("tls.ini").unwrap().sections[0]
            .entries
            .is_empty()
    );
}
