//! Helpers shared by the limit tests.
#![allow(dead_code, reason = "each test file uses a subset")]

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use haraka_config::ConfigDir;
use haraka_plugin_api::{
    Address, Connection, Hook, HookArgs, Local, Outcome, Plugin, PluginInit, Remote, Transaction,
};

/// A hook that does not tarpit answers on its first poll.
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

/// The plugin for a `limit.ini` of `ini` (no tarpit unless `ini` sets one).
pub fn plugin_for(ini: &str) -> (tempfile::TempDir, Arc<dyn Plugin>) {
    let text = format!("tarpit_delay=0\n{ini}");
    let r = root(&[("limit.ini", &text)]);
    let p = plugin(r.path());
    (r, p)
}

pub fn plugin(root: &Path) -> Arc<dyn Plugin> {
    let cfg = ConfigDir::open(root).unwrap();
    haraka_plugin_limit::factory(&PluginInit {
        name: "limit",
        config: &cfg,
    })
    .unwrap()
}

pub fn hooks(p: &dyn Plugin) -> Vec<Hook> {
    p.hooks().iter().map(|r| r.hook).collect()
}

pub fn conn(ip: &str) -> Connection {
    Connection::new(
        "UUID".into(),
        Remote::new(ip.parse().unwrap(), 40000),
        Local {
            ip: "192.0.2.1".parse().unwrap(),
            port: 25,
            host: "mx.test".into(),
        },
    )
}

pub fn run(p: &dyn Plugin, hook: Hook, c: &mut Connection, args: &HookArgs) -> Outcome {
    now(p.hook(hook, c, args))
}

/// connect_init then connect, as the session runs them.
pub fn connect(p: &dyn Plugin, c: &mut Connection) -> Outcome {
    let init = run(p, Hook::ConnectInit, c, &HookArgs::None);
    assert_eq!(init, Outcome::cont());
    run(p, Hook::Connect, c, &HookArgs::None)
}

pub fn addr(text: &str) -> Address {
    Address::parse(&format!("<{text}>")).unwrap()
}

/// Open a transaction from `from` (`None`: `<>`).
pub fn mail(c: &mut Connection, from: Option<&str>) {
    let mut t = Transaction::new("UUID.1".into());
    t.mail_from = from.map(addr);
    c.transaction = Some(t);
}

pub fn rcpt(p: &dyn Plugin, c: &mut Connection, to: &str) -> Outcome {
    let args = HookArgs::Rcpt {
        to: addr(to),
        params: vec![],
    };
    run(p, Hook::Rcpt, c, &args)
}
