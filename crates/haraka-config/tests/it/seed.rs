//! The user's two roots exactly as the seed document writes them, and the same
//! intent in Haraka's real layout (seed-layout.md §2–§4).

use std::net::SocketAddr;

use haraka_config::booleans::{RELAY_INI, SMTP_FORWARD_INI, TLS_INI};
use haraka_config::{ConfigDir, Layout, ListenAddr};

use crate::root;

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
    let cd = ConfigDir::open(dir.path()).unwrap();
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

    let fwd = cd
        .plugin_ini_with("smtp_forward.ini", SMTP_FORWARD_INI)
        .unwrap();
    assert_eq!(fwd.get("main", "host"), Some("10.0.0.2"));
    assert_eq!(fwd.get("main", "port"), Some("25"));
    assert!(!fwd.get_bool("main", "enable_outbound", true));
    assert!(!fwd.get_bool("main", "enable_tls", true));
    assert_eq!(fwd.entry("main", "host").unwrap().line, 5);

    assert_eq!(cd.plugin_list("host_list"), ["example.com"]);
    assert!(cd.plugin_list("host_list_regex").is_empty());
    assert_eq!(cd.plugin_list("xclient.hosts"), ["127.0.0.1"]);
    let tls = cd.ini_with("tls.ini", TLS_INI).unwrap();
    assert_eq!(tls.get("main", "key"), tls.get("main", "cert"));
    assert!(tls.get_bool("main", "requestCert", false));
    assert!(cd.xclient_forward());
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
    let cd = ConfigDir::open(dir.path()).unwrap();
    assert_eq!(cd.layout(), Layout::Flat);
    let plugins = cd.plugins().unwrap();
    let got: Vec<(&str, usize)> = plugins.iter().map(|p| (p.name.as_str(), p.line)).collect();
    assert_eq!(got, [("relay", 1), ("tls", 2)]);
    assert_eq!(cd.smtp_ini().unwrap().listen, [tcp("10.0.0.1:2526")]);
    let relay = cd.plugin_ini_with("relay.ini", RELAY_INI).unwrap();
    let flags: Vec<bool> = ["acl", "force_routing", "dest_domains", "all"]
        .iter()
        .map(|k| relay.get_bool("relay", k, false))
        .collect();
    assert_eq!(flags, [true, true, false, false]);
    assert_eq!(cd.plugin_list("relay_acl_allow"), ["10.0.0.2/32"]);
    cd.ini_with("tls.ini", TLS_INI).unwrap();
    cd.core().unwrap();
    // host_list is inert on haraka-out: nothing reads it, so it is reported.
    assert_eq!(cd.unread_files(), [dir.path().join("host_list")]);
}

#[test]
fn haraka_out_as_drawn_in_the_tree() {
    let dir = root(&[("config", ""), ("plugins/.keep", "")]);
    let cd = ConfigDir::open(dir.path()).unwrap();
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
    let cd = ConfigDir::open(dir.path()).unwrap();
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
    assert_eq!(cd.plugin_list("host_list"), ["example.com"]);
    let fwd = cd.plugin_ini("smtp_forward.ini").unwrap();
    assert_eq!(
        (fwd.get("main", "host"), fwd.get("main", "port")),
        (Some("10.0.0.2"), Some("25"))
    );
    cd.smtp_ini().unwrap();
    cd.ini("tls.ini").unwrap();
    assert!(cd.aliases_used().is_empty(), "{:?}", cd.aliases_used());
    assert!(cd.unread_files().is_empty(), "{:?}", cd.unread_files());
}
