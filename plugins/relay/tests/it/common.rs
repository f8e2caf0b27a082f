//! Helpers shared by the relay tests.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use haraka_config::ConfigDir;
use haraka_plugin_api::{
    Address, Connection, Hook, HookArgs, Local, Notes, OutboundArgs, OutboundMail, Outcome, Plugin,
    PluginInit, Remote, Transaction,
};

/// The plugin's hooks never wait; poll once.
pub fn now<T>(fut: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("hook future was not ready"),
    }
}

/// A root whose `config/` holds `files` (name, content).
pub fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("config").join(name), text).unwrap();
    }
    dir
}

pub fn plugin(root: &Path) -> Arc<dyn Plugin> {
    let cfg = ConfigDir::open(root).unwrap();
    haraka_plugin_relay::factory(&PluginInit {
        name: "relay",
        config: &cfg,
    })
    .unwrap()
}

pub fn hooks(p: &dyn Plugin) -> Vec<Hook> {
    p.hooks().iter().map(|r| r.hook).collect()
}

/// A connection from `ip` after `connect_init` ran (the ACL decision).
pub fn connected(p: &dyn Plugin, ip: &str) -> (Connection, Outcome) {
    let mut c = Connection::new(
        "UUID".into(),
        Remote::new(ip.parse().unwrap(), 40000),
        Local {
            ip: "10.0.0.1".parse().unwrap(),
            port: 2526,
            host: "mailrelay.test".into(),
        },
    );
    let out = now(p.hook(Hook::ConnectInit, &mut c, &HookArgs::None));
    (c, out)
}

/// An address as the parser leaves it: the domain after the last `@`, lower-cased.
pub fn addr(text: &str) -> Address {
    match text.rsplit_once('@') {
        Some((user, host)) => Address {
            user: user.into(),
            host: Some(host.to_ascii_lowercase()),
            original_host: Some(host.into()),
            original: text.into(),
        },
        None => Address {
            user: text.into(),
            host: None,
            original_host: None,
            original: text.into(),
        },
    }
}

/// Run `rcpt` in a fresh transaction of `c`.
pub fn rcpt(p: &dyn Plugin, c: &mut Connection, to: Address) -> Outcome {
    c.transaction = Some(Transaction::new("UUID.1".into()));
    let args = HookArgs::Rcpt { to, params: vec![] };
    now(p.hook(Hook::Rcpt, c, &args))
}

/// What the core does with a `rcpt` outcome: accepted when OK, or CONT while
/// relaying.
pub fn core_accepts(c: &Connection, out: &Outcome) -> bool {
    *out == Outcome::accept() || (*out == Outcome::cont() && c.relaying())
}

pub fn get_mx(p: &dyn Plugin, domain: &str) -> (Outcome, OutboundMail) {
    let mut mail = OutboundMail {
        id: "Q.1".into(),
        domain: domain.into(),
        mail_from: None,
        rcpt_to: vec![],
        notes: Notes::new(),
        attempts: 0,
        mx: None,
    };
    let args = OutboundArgs::GetMx {
        domain: domain.into(),
    };
    let out = now(p.outbound_hook(Hook::GetMx, &mut mail, &args));
    (out, mail)
}
