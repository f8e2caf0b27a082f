//! The hook runner: order, priorities, the deny hook, timeouts and panics.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haraka_plugin_api::{
    Action, BoxFuture, Connection, Hook, HookArgs, Local, Outcome, Plugin, Registration, Remote,
};
use haraka_server::{LoadedPlugin, Pipeline};

type Log = Arc<Mutex<Vec<String>>>;

/// A plugin that logs its calls and answers a fixed outcome, slowly or by panicking.
struct Probe {
    name: &'static str,
    regs: Vec<Registration>,
    answer: Outcome,
    delay: Option<Duration>,
    panic: bool,
    log: Log,
}

impl Plugin for Probe {
    fn name(&self) -> &str {
        self.name
    }
    fn hooks(&self) -> Vec<Registration> {
        self.regs.clone()
    }
    fn hook<'a>(
        &'a self,
        hook: Hook,
        _c: &'a mut Connection,
        _a: &'a HookArgs,
    ) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            self.log
                .lock()
                .unwrap()
                .push(format!("{}:{}", self.name, hook));
            if let Some(d) = self.delay {
                tokio::time::sleep(d).await;
            }
            if self.panic {
                panic!("probe {} panics on purpose", self.name);
            }
            self.answer.clone()
        })
    }
}

fn probe(name: &'static str, hook: Hook, prio: i32, answer: Outcome, log: &Log) -> Probe {
    Probe {
        name,
        regs: vec![Registration::with_priority(hook, prio)],
        answer,
        delay: None,
        panic: false,
        log: log.clone(),
    }
}

fn loaded(p: Probe) -> LoadedPlugin {
    LoadedPlugin {
        plugin: Arc::new(p),
        timeout: Some(Duration::from_millis(200)),
    }
}

fn conn() -> Connection {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    Connection::new(
        "U".into(),
        Remote::new(ip, 1),
        Local {
            ip,
            port: 25,
            host: "me".into(),
        },
    )
}

fn calls(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn plugin_order_then_priority_first_non_cont_wins() {
    let log = Log::default();
    let p = Pipeline::new(vec![
        loaded(probe("a", Hook::Rcpt, 0, Outcome::cont(), &log)),
        loaded(probe("b", Hook::Rcpt, 0, Outcome::accept(), &log)),
        loaded(probe("c", Hook::Rcpt, -5, Outcome::cont(), &log)),
        loaded(probe("d", Hook::Rcpt, 10, Outcome::deny("never"), &log)),
    ]);
    let out = p.run(Hook::Rcpt, &mut conn(), &HookArgs::None).await;
    assert_eq!(out.action, Action::Accept);
    assert_eq!(calls(&log), ["c:rcpt", "a:rcpt", "b:rcpt"]);
    assert_eq!(
        p.order(Hook::Rcpt)
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["c", "a", "b", "d"]
    );
}

#[tokio::test]
async fn connect_init_and_disconnect_run_every_plugin() {
    let log = Log::default();
    let p = Pipeline::new(vec![
        loaded(probe("a", Hook::Disconnect, 0, Outcome::deny("x"), &log)),
        loaded(probe("b", Hook::Disconnect, 0, Outcome::accept(), &log)),
    ]);
    let out = p.run(Hook::Disconnect, &mut conn(), &HookArgs::None).await;
    assert_eq!(out.action, Action::Cont);
    assert_eq!(calls(&log), ["a:disconnect", "b:disconnect"]);
}

#[tokio::test]
async fn a_deny_plugin_can_cancel_a_rejection() {
    let log = Log::default();
    let mut canceller = probe("guard", Hook::Deny, 0, Outcome::accept(), &log);
    canceller.regs = vec![Registration::new(Hook::Deny)];
    let p = Pipeline::new(vec![
        loaded(probe("a", Hook::Mail, 0, Outcome::deny("no"), &log)),
        loaded(probe("b", Hook::Mail, 0, Outcome::deny_soft("later"), &log)),
        loaded(canceller),
    ]);
    let out = p.run(Hook::Mail, &mut conn(), &HookArgs::None).await;
    // Both rejections were cancelled; the hook ends as CONT.
    assert_eq!(out.action, Action::Cont);
    assert_eq!(
        calls(&log),
        ["a:mail", "guard:deny", "b:mail", "guard:deny"]
    );

    let log2 = Log::default();
    let p = Pipeline::new(vec![loaded(probe(
        "a",
        Hook::Mail,
        0,
        Outcome::deny("no"),
        &log2,
    ))]);
    let out = p.run(Hook::Mail, &mut conn(), &HookArgs::None).await;
    assert_eq!(out, Outcome::deny("no"));
}

#[tokio::test]
async fn a_slow_plugin_times_out_as_denysoft() {
    let log = Log::default();
    let mut slow = probe("slow", Hook::Queue, 0, Outcome::accept(), &log);
    slow.delay = Some(Duration::from_secs(30));
    let p = Pipeline::new(vec![loaded(slow)]);
    let started = std::time::Instant::now();
    let out = p.run(Hook::Queue, &mut conn(), &HookArgs::None).await;
    assert_eq!(out, Outcome::deny_soft("plugin timeout"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_panicking_plugin_becomes_a_4xx_and_later_calls_still_work() {
    let log = Log::default();
    let mut bad = probe("bad", Hook::Rcpt, 0, Outcome::accept(), &log);
    bad.panic = true;
    let p = Pipeline::new(vec![loaded(bad)]);
    let out = p.run(Hook::Rcpt, &mut conn(), &HookArgs::None).await;
    assert_eq!(out.action, Action::DenySoft);
    let again = p.run(Hook::Rcpt, &mut conn(), &HookArgs::None).await;
    assert_eq!(again.action, Action::DenySoft);
    assert_eq!(calls(&log).len(), 2);
}

#[tokio::test]
async fn skipped_plugins_are_not_called() {
    let log = Log::default();
    let p = Pipeline::new(vec![
        loaded(probe("a", Hook::Rcpt, 0, Outcome::deny("x"), &log)),
        loaded(probe("b", Hook::Rcpt, 0, Outcome::accept(), &log)),
    ]);
    let mut c = conn();
    c.transaction = Some(haraka_plugin_api::Transaction::new("U.1".into()));
    if let Some(t) = c.transaction.as_mut() {
        t.skip_plugins.push("a".into());
    }
    let out = p.run(Hook::Rcpt, &mut c, &HookArgs::None).await;
    assert_eq!(out.action, Action::Accept);
    assert_eq!(calls(&log), ["b:rcpt"]);
}
