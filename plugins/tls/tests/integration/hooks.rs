//! The capabilities and unrecognized_command hooks through the `Plugin` trait.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use haraka_plugin_api::{
    Action, ConnAction, Connection, Hook, HookArgs, Local, Plugin, PluginInit, Remote,
};
use haraka_plugin_tls::{TlsPlugin, factory, handshake_timeout};

use crate::common::{Ca, Root, client, echo_server, handshake};

fn conn(remote: &str, local_port: u16) -> Connection {
    let ip: IpAddr = remote.parse().unwrap();
    Connection::new(
        "4D1E3C1A-0000-4000-8000-000000000000".to_owned(),
        Remote::new(ip, 40000),
        Local {
            ip: "127.0.0.1".parse().unwrap(),
            port: local_port,
            host: "mx.test.local".to_owned(),
        },
    )
}

fn plugin_with(root: &Root) -> Arc<dyn Plugin> {
    let cfg = root.cfg();
    factory(&PluginInit {
        name: "tls",
        config: &cfg,
    })
    .unwrap()
}

fn tls_root(ini: &str) -> (Ca, Root) {
    let ca = Ca::new("Test CA");
    let root = Root::new();
    root.write("mail.pem", &ca.leaf(None, &["mx.test.local"]).combined());
    root.write("tls.ini", &format!("key=mail.pem\ncert=mail.pem\n{ini}"));
    (ca, root)
}

async fn capabilities(p: &Arc<dyn Plugin>, c: &mut Connection) -> bool {
    let out = p.hook(Hook::Capabilities, c, &HookArgs::None).await;
    assert_eq!(out.action, Action::Cont);
    c.capabilities.iter().any(|k| k == "STARTTLS")
}

async fn command(
    p: &Arc<dyn Plugin>,
    c: &mut Connection,
    verb: &str,
    rest: &str,
) -> haraka_plugin_api::Outcome {
    let args = HookArgs::Unrecognized {
        verb: verb.to_owned(),
        rest: rest.to_owned(),
    };
    p.hook(Hook::UnrecognizedCommand, c, &args).await
}

#[test]
fn name_and_hooks() {
    let (_ca, root) = tls_root("");
    let p = plugin_with(&root);
    assert_eq!(p.name(), "tls");
    let hooks: Vec<Hook> = p.hooks().iter().map(|r| r.hook).collect();
    assert_eq!(hooks, [Hook::Capabilities, Hook::UnrecognizedCommand]);
}

#[tokio::test]
async fn advertise_rules() {
    let (_ca, root) =
        tls_root("no_starttls_ports[]=2525\n[no_tls_hosts]\n192.0.2.7\n198.51.100.0/24\n");
    let p = plugin_with(&root);
    // (remote ip, local port, already TLS, expect STARTTLS)
    let table = [
        ("203.0.113.5", 25, false, true),
        ("203.0.113.5", 587, false, true),
        ("203.0.113.5", 2525, false, false),
        ("192.0.2.7", 25, false, false),
        ("198.51.100.99", 25, false, false),
        ("::ffff:198.51.100.99", 25, false, false),
        ("2001:db8::1", 25, false, true),
        ("203.0.113.5", 25, true, false),
    ];
    for (ip, port, enabled, want) in table {
        let mut c = conn(ip, port);
        c.tls.enabled = enabled;
        assert_eq!(
            capabilities(&p, &mut c).await,
            want,
            "{ip} :{port} tls={enabled}"
        );
        assert_eq!(c.tls.advertised, want);
    }
}

#[tokio::test]
async fn no_certificate_no_starttls() {
    let root = Root::new();
    let p = plugin_with(&root);
    let mut c = conn("203.0.113.5", 25);
    assert!(!capabilities(&p, &mut c).await);
    let out = command(&p, &mut c, "STARTTLS", "").await;
    assert_eq!(out.action, Action::Cont);
    assert!(c.take_requests().is_empty());
}

#[tokio::test]
async fn starttls_command() {
    let (ca, root) = tls_root("");
    let p = plugin_with(&root);

    // not advertised (no EHLO yet, or HELO): left to the core's 500
    let mut c = conn("203.0.113.5", 25);
    let out = command(&p, &mut c, "STARTTLS", "").await;
    assert_eq!(out.action, Action::Cont);
    assert!(c.take_requests().is_empty());

    // (verb, rest, upgrades)
    let table = [
        ("STARTTLS", "", true),
        ("starttls", "", true),
        ("StartTls", "", true),
        ("STARTTLS", "now please", true),
        ("XCLIENT", "ADDR=1.2.3.4", false),
        ("STARTTLSX", "", false),
    ];
    for (verb, rest, upgrades) in table {
        let mut c = conn("203.0.113.5", 25);
        assert!(capabilities(&p, &mut c).await);
        let out = command(&p, &mut c, verb, rest).await;
        let requests = c.take_requests();
        if !upgrades {
            assert_eq!(out.action, Action::Cont, "{verb}");
            assert!(requests.is_empty());
            continue;
        }
        assert_eq!(out.action, Action::Accept, "{verb}");
        let msg = out.msg.unwrap();
        assert_eq!(msg.code, Some(220));
        assert_eq!(msg.lines, ["Go ahead."]);
        assert_eq!(requests.len(), 1);
        let ConnAction::StartTls(upgrade) = &requests[0] else {
            panic!("expected StartTls, got {:?}", requests[0]);
        };
        // the documented payload: a rustls::ServerConfig, usable for a handshake
        let config = upgrade
            .0
            .clone()
            .downcast::<rustls::ServerConfig>()
            .unwrap();
        let addr = echo_server(config).await;
        assert!(
            handshake(addr, client(ca.roots(), None), "mx.test.local")
                .await
                .is_ok()
        );
    }

    // once TLS is active a second STARTTLS is not answered with 220
    let mut c = conn("203.0.113.5", 25);
    assert!(capabilities(&p, &mut c).await);
    c.tls.enabled = true;
    let out = command(&p, &mut c, "STARTTLS", "").await;
    assert_eq!(out.action, Action::Cont);
    assert!(c.take_requests().is_empty());
}

#[test]
fn plugin_exposes_inbound_state() {
    let (_ca, root) = tls_root("");
    let p = TlsPlugin::new(&root.cfg()).unwrap();
    assert!(p.inbound().is_usable());
    assert!(p.inbound().server_config(465).is_some());
}

#[test]
fn handshake_timeouts() {
    // (tls.timeout, plugin_timeout, expected)
    let table: [(Option<&str>, Option<&str>, Option<Duration>); 6] = [
        (None, None, Some(Duration::from_secs(29))),
        (Some("45"), None, Some(Duration::from_secs(44))),
        (None, Some("10"), Some(Duration::from_secs(9))),
        (Some("5"), Some("10"), Some(Duration::from_secs(4))),
        (Some("1"), None, None),
        (Some("soon"), None, Some(Duration::from_secs(29))),
    ];
    for (tls, plugin, want) in table {
        let root = Root::new();
        if let Some(t) = tls {
            root.write("tls.timeout", t);
        }
        if let Some(t) = plugin {
            root.write("plugin_timeout", t);
        }
        assert_eq!(handshake_timeout(&root.cfg()), want, "{tls:?} {plugin:?}");
    }
}
