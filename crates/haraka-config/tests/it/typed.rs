//! The typed core config: `smtp.ini` and the core flat files (see
//! `docs/configuration.md`, "Core").

use std::net::SocketAddr;
use std::time::Duration;

use haraka_config::{ConfigDir, CoreConfig, ListenAddr, Nodes, SmtpIni, parse_listen};

use crate::root;

fn tcp(s: &str) -> ListenAddr {
    ListenAddr::Tcp(s.parse::<SocketAddr>().unwrap())
}

#[test]
fn smtp_ini_defaults_match_haraka() {
    let dir = root(&[("config/smtp.ini", "; nothing set\n[headers]\n")]);
    let got = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert_eq!(got, SmtpIni::default());
    assert_eq!(got.listen, [tcp("[::]:25")]);
    assert!(got.listen_is_default);
    assert_eq!(got.inactivity_timeout, Duration::from_secs(300));
    assert_eq!(got.force_shutdown_timeout, Duration::from_secs(30));
    assert_eq!(
        (got.smtps_port, got.nodes, got.spool_after),
        (465, Nodes::Count(1), -1)
    );
    assert_eq!(
        (
            got.max_connections,
            got.max_connections_per_ip,
            got.write_timeout
        ),
        (None, 50, None)
    );
    assert_eq!(got.message_memory_budget, None);
    assert!(got.smtputf8 && !got.strict_rfc1869 && !got.daemonize && !got.graceful_shutdown);
    let h = &got.headers;
    assert!(h.add_received && h.show_version && h.clean_auth_results);
    assert_eq!((h.max_lines, h.max_received), (1000, 100));
}

#[test]
fn smtp_ini_every_key() {
    let text = "port=2500
listen_host=127.0.0.2
listen=127.0.0.1:2525 , [::1]:2526,localhost,/run/h.sock:660
public_ip=192.0.2.1
inactivity_timeout=2.5
user=smtp
group=mail
ignore_bad_plugins=1
nodes=cpus
daemonize=yes
daemon_log_file=/l
daemon_pid_file=/p
spool_dir=/s
spool_after=0
graceful_shutdown=on
force_shutdown_timeout=3
smtputf8=false
strict_rfc1869=true
smtps_port=4650
max_connections=0
max_connections_per_ip=3
write_timeout=0.5
message_memory_budget=1048576
[headers]
add_received=false
clean_auth_results=no
show_version=0
max_lines=50
max_received=0
";
    let dir = root(&[
        ("config/smtp.ini", text),
        ("config/max_received_count", "7\n"),
    ]);
    let c = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert_eq!(
        c.listen,
        [
            tcp("127.0.0.2:2500"),
            tcp("127.0.0.1:2525"),
            tcp("[::1]:2526"),
            ListenAddr::Host {
                host: "localhost".into(),
                port: 25
            },
            ListenAddr::Unix {
                path: "/run/h.sock".into(),
                mode: Some(0o660)
            },
        ]
    );
    assert_eq!(c.public_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(c.inactivity_timeout, Duration::from_millis(2500));
    assert_eq!(
        (c.user.as_deref(), c.group.as_deref()),
        (Some("smtp"), Some("mail"))
    );
    assert!(c.ignore_bad_plugins && c.daemonize && c.graceful_shutdown && c.strict_rfc1869);
    assert!(!c.smtputf8);
    assert_eq!(c.nodes, Nodes::Cpus);
    assert_eq!(
        (
            c.daemon_log_file.to_str(),
            c.daemon_pid_file.to_str(),
            c.spool_dir.to_str()
        ),
        (Some("/l"), Some("/p"), Some("/s"))
    );
    assert_eq!((c.spool_after, c.smtps_port), (0, 4650));
    assert_eq!(c.force_shutdown_timeout, Duration::from_secs(3));
    assert_eq!(
        (c.max_connections, c.max_connections_per_ip, c.write_timeout),
        (Some(0), 3, Some(Duration::from_millis(500)))
    );
    assert_eq!(c.message_memory_budget, Some(1_048_576));
    assert!(!c.headers.add_received && !c.headers.clean_auth_results && !c.headers.show_version);
    // max_received=0 falls through to the legacy file, as parseInt(…) || … does.
    assert_eq!((c.headers.max_lines, c.headers.max_received), (50, 7));
}

#[test]
fn smtp_ini_legacy_flat_files() {
    let dir = root(&[
        ("config/smtp.ini", ""),
        ("config/strict_rfc1869", "1\n"),
        ("config/header_hide_version", "0\n"),
        ("config/max_header_lines", "9\n"),
    ]);
    let c = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert!(c.strict_rfc1869);
    assert!(!c.headers.show_version);
    assert_eq!(c.headers.max_lines, 9);
    let dir = root(&[("config/header_hide_version", "1\n")]);
    assert!(
        ConfigDir::open(dir.path())
            .unwrap()
            .smtp_ini()
            .unwrap()
            .headers
            .show_version
    );
}

#[test]
fn listen_entries() {
    let ok: &[(&str, &str)] = &[
        ("[::]:25", "[::]:25"),
        ("[::0]:25", "[::]:25"),
        ("[::1]", "[::1]:25"),
        ("0.0.0.0:25", "0.0.0.0:25"),
        ("10.0.0.1:2526", "10.0.0.1:2526"),
        ("10.0.0.1", "10.0.0.1:25"),
        ("2525", "[::]:2525"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("Mail.Example.com:587", "mail.example.com:587"),
        ("/run/haraka.sock", "/run/haraka.sock"),
        ("/run/haraka.sock:600", "/run/haraka.sock:600"),
        ("./rel/sock:9999", "./rel/sock:9999"),
    ];
    for (input, want) in ok {
        assert_eq!(
            parse_listen(input, 25).map(|a| a.to_string()).as_deref(),
            Ok(*want),
            "{input}"
        );
    }
    for bad in [
        "",
        "[::1",
        "[zz]:25",
        "999.1.1.1:25",
        "1.2.3.4:99999",
        "host:abc",
        "-bad-:25",
        "a b",
        ":25",
    ] {
        assert!(parse_listen(bad, 25).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn core_defaults_and_values() {
    let dir = root(&[("config/smtp.ini", "")]);
    let c = ConfigDir::open(dir.path()).unwrap().core().unwrap();
    assert_eq!(c, CoreConfig::defaults(dir.path()));
    assert_eq!(c.me, haraka_config::hostname());
    assert_eq!(c.ehlo_hello_message, "Haraka is at your service.");
    assert_eq!(
        c.connection_close_message,
        "closing connection. Have a jolly good day."
    );
    assert_eq!(
        (c.max_line_length, c.max_data_line_length, c.max_mime_parts),
        (512, 992, 1000)
    );
    assert_eq!(c.plugin_timeout, Some(Duration::from_secs(30)));
    assert_eq!(c.queue_dir, dir.path().join("queue"));

    let dir = root(&[
        ("config/me", "mx.example.com\n"),
        ("config/smtpgreeting", "line one\n# c\nline two\n"),
        ("config/ehlo_hello_message", "hi there\n"),
        ("config/connection_close_message", "bye\n"),
        ("config/databytes", "1048576\n"),
        ("config/max_line_length", "0\n"),
        ("config/max_data_line_length", "2000\n"),
        ("config/banner_includes_uuid", "1\n"),
        ("config/deny_includes_uuid", "8\n"),
        ("config/haproxy_hosts", "10.0.0.0/8\n"),
        ("config/internalcmd_key", "abc\n"),
        ("config/plugin_timeout", "0\n"),
        ("config/queue_dir", "/var/q\n"),
    ]);
    let c = ConfigDir::open(dir.path()).unwrap().core().unwrap();
    assert_eq!(c.me, "mx.example.com");
    assert_eq!(c.smtpgreeting, ["line one", "line two"]);
    assert_eq!(
        (
            c.ehlo_hello_message.as_str(),
            c.connection_close_message.as_str()
        ),
        ("hi there", "bye")
    );
    assert_eq!(c.databytes, 1_048_576);
    assert_eq!((c.max_line_length, c.max_data_line_length), (512, 2000));
    assert!(c.banner_includes_uuid);
    assert_eq!(c.deny_includes_uuid, 8);
    assert_eq!(c.haproxy_hosts, ["10.0.0.0/8"]);
    assert_eq!(c.internalcmd_key.as_deref(), Some("abc"));
    assert_eq!(c.plugin_timeout, None);
    assert_eq!(c.queue_dir, std::path::Path::new("/var/q"));
}

#[test]
fn per_plugin_timeouts() {
    let dir = root(&[
        ("config/plugin_timeout", "20\n"),
        ("config/queue/smtp_forward.timeout", "45\n"),
        ("config/tls.timeout", "0\n"),
        ("config/relay.timeout", "soon\n"),
    ]);
    let cd = ConfigDir::open(dir.path()).unwrap();
    let cases: &[(&str, Option<Duration>)] = &[
        ("queue/smtp_forward", Some(Duration::from_secs(45))),
        ("tls", None),
        ("relay", Some(Duration::from_secs(20))),
        ("xclient", Some(Duration::from_secs(20))),
    ];
    for (name, want) in cases {
        assert_eq!(cd.plugin_timeout(name), *want, "{name}");
    }
    let dir = root(&[("config/smtp.ini", "")]);
    assert_eq!(
        ConfigDir::open(dir.path()).unwrap().plugin_timeout("x"),
        Some(Duration::from_secs(30))
    );
}

#[test]
fn smtp_ini_time_limits() {
    let dir = root(&[("config/smtp.ini", "\n")]);
    let got = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert_eq!(
        (got.command_timeout, got.data_timeout),
        (Duration::ZERO, Duration::ZERO),
        "zero: inactivity_timeout / no overall limit"
    );
    assert_eq!(
        (got.data_min_rate, got.data_rate_period),
        (1024, Duration::from_secs(60))
    );

    let text = "command_timeout=20\ndata_timeout=600.5\ndata_min_rate=0\ndata_rate_period=0\n";
    let dir = root(&[("config/smtp.ini", text)]);
    let c = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert_eq!(c.command_timeout, Duration::from_secs(20));
    assert_eq!(c.data_timeout, Duration::from_millis(600_500));
    assert_eq!(c.data_min_rate, 0);
    assert_eq!(
        c.data_rate_period,
        Duration::from_secs(60),
        "0 means the default"
    );

    let text = "command_timeout=soon\ndata_min_rate=-1\ndata_rate_period=x\n";
    let dir = root(&[("config/smtp.ini", text)]);
    let err = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap_err();
    let lines: Vec<usize> = err.0.iter().map(|d| d.line).collect();
    assert_eq!(lines, [1, 2, 3], "{err:?}");
}

#[test]
fn write_timeout_zero_means_inactivity_timeout() {
    let dir = root(&[("config/smtp.ini", "write_timeout=0\nmax_connections=7\n")]);
    let c = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert_eq!((c.write_timeout, c.max_connections), (None, Some(7)));
}

#[test]
fn message_memory_budget_zero_means_unlimited() {
    let dir = root(&[("config/smtp.ini", "message_memory_budget=0\n")]);
    let c = ConfigDir::open(dir.path()).unwrap().smtp_ini().unwrap();
    assert_eq!(c.message_memory_budget, Some(0));
}

#[test]
fn inactivity_timeout_zero_is_the_default_and_a_tiny_one_is_refused() {
    let smtp = |text: &str| {
        let dir = root(&[("config/smtp.ini", text)]);
        ConfigDir::open(dir.path()).unwrap().smtp_ini()
    };
    for (text, want) in [
        ("inactivity_timeout=0\n", 300_000),
        ("inactivity_timeout=0.0\n", 300_000),
        ("inactivity_timeout=1\n", 1000),
        ("inactivity_timeout=\n", 300_000),
    ] {
        let c = smtp(text).unwrap();
        assert_eq!(c.inactivity_timeout, Duration::from_millis(want), "{text}");
    }
    // 0.001 would time every session out 1 ms after its first reply.
    for text in ["inactivity_timeout=0.001\n", "inactivity_timeout=0.5\n"] {
        let e = smtp(text).unwrap_err();
        assert_eq!(e.0.len(), 1, "{text}");
        assert_eq!(e.0[0].line, 1);
        assert!(e.0[0].message.contains("at least 1 second"), "{}", e.0[0]);
    }
}
