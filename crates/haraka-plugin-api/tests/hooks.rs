//! `Register` plugins as the hook runner sees them.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use haraka_plugin_api::{
    Action, Address, Connection, Hook, HookArgs, Hooks, Local, MxHost, OutboundArgs, OutboundMail,
    Outcome, Register, Registration, Remote, Transaction, plugin,
};

fn now<T>(fut: impl Future<Output = T>) -> T {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the hook should answer at once"),
    }
}

fn conn() -> Connection {
    let ip = "127.0.0.1".parse().unwrap();
    let mut c = Connection::new(
        "c".into(),
        Remote::new(ip, 1),
        Local {
            ip,
            port: 25,
            host: "mx".into(),
        },
    );
    c.transaction = Some(Transaction::new("c.1".into()));
    c
}

struct Probe {
    banned: String,
}

impl Probe {
    fn rcpt(&self, conn: &mut Connection, to: &Address) -> Outcome {
        conn.notes.insert("rcpt".into(), to.user.clone().into());
        if to.user == self.banned {
            Outcome::deny("no")
        } else {
            Outcome::cont()
        }
    }

    async fn data_post(&self, conn: &mut Connection) -> Outcome {
        std::future::ready(()).await;
        let txn = conn.transaction.as_mut().unwrap();
        txn.message.add_header("X-Probe", &self.banned);
        Outcome::accept()
    }

    fn get_mx(&self, mail: &mut OutboundMail, domain: &str) -> Outcome {
        mail.mx = Some(vec![MxHost {
            exchange: format!("mx.{domain}"),
            priority: 0,
            port: 25,
            ip: None,
        }]);
        Outcome::accept()
    }
}

impl Register for Probe {
    fn register(&self, hooks: &mut Hooks<Self>) {
        hooks.rcpt(Self::rcpt).priority(-500);
        hooks.data_post(Self::data_post);
        hooks.helo(|_: &Self, _: &mut Connection, _: &str| Outcome::deny("replaced"));
        hooks
            .helo(|_: &Self, _: &mut Connection, host: &str| Outcome::accept_with(host.to_owned()));
        hooks.get_mx(Self::get_mx).priority(5);
    }
}

#[test]
fn registering_and_handling_are_one_line() {
    let p = plugin(
        "probe",
        Probe {
            banned: "bob".into(),
        },
    );
    assert_eq!(p.name(), "probe");
    assert_eq!(
        p.hooks(),
        [
            Registration::with_priority(Hook::Rcpt, -100),
            Registration::new(Hook::DataPost),
            Registration::new(Hook::Helo),
            Registration::with_priority(Hook::GetMx, 5),
        ]
    );

    let mut c = conn();
    let rcpt = |user: &str| HookArgs::Rcpt {
        to: Address::parse(&format!("{user}@example.com")).unwrap(),
        params: vec![],
    };
    assert_eq!(
        now(p.hook(Hook::Rcpt, &mut c, &rcpt("bob"))).action,
        Action::Deny
    );
    assert_eq!(
        now(p.hook(Hook::Rcpt, &mut c, &rcpt("amy"))),
        Outcome::cont()
    );
    assert_eq!(c.notes["rcpt"], "amy");

    let out = now(p.hook(Hook::DataPost, &mut c, &HookArgs::None));
    assert_eq!(out, Outcome::accept());
    let headers = c
        .transaction
        .as_ref()
        .unwrap()
        .message
        .get_header("X-Probe");
    assert_eq!(headers, ["bob"]);

    let hello = HookArgs::Hello("client.example".into());
    let out = now(p.hook(Hook::Helo, &mut c, &hello));
    assert_eq!(out, Outcome::accept_with("client.example"));

    // Hooks that were not registered, or arguments of another shape, continue.
    assert_eq!(
        now(p.hook(Hook::Quit, &mut c, &HookArgs::None)),
        Outcome::cont()
    );
    assert_eq!(
        now(p.hook(Hook::Rcpt, &mut c, &HookArgs::None)),
        Outcome::cont()
    );

    let mut mail = OutboundMail {
        id: "q.1".into(),
        domain: "example.org".into(),
        mail_from: None,
        rcpt_to: vec![],
        notes: Default::default(),
        attempts: 0,
        mx: None,
    };
    let args = OutboundArgs::GetMx {
        domain: "example.org".into(),
    };
    assert_eq!(
        now(p.outbound_hook(Hook::GetMx, &mut mail, &args)),
        Outcome::accept()
    );
    assert_eq!(mail.mx.unwrap()[0].exchange, "mx.example.org");
    let none = OutboundArgs::None;
    let mut other = OutboundMail {
        mx: None,
        ..conn_mail()
    };
    assert_eq!(
        now(p.outbound_hook(Hook::SendEmail, &mut other, &none)),
        Outcome::cont()
    );
}

fn conn_mail() -> OutboundMail {
    OutboundMail {
        id: "q.2".into(),
        domain: "example.net".into(),
        mail_from: None,
        rcpt_to: vec![],
        notes: Default::default(),
        attempts: 0,
        mx: None,
    }
}

#[test]
fn any_hook_by_value_gets_the_raw_arguments() {
    struct Raw;
    impl Register for Raw {
        fn register(&self, hooks: &mut Hooks<Self>) {
            hooks.on(
                Hook::Rcpt,
                |_: &Self, _: &mut Connection, args: &HookArgs| match args {
                    HookArgs::Rcpt { params, .. } if !params.is_empty() => Outcome::deny("params"),
                    _ => Outcome::cont(),
                },
            );
        }
    }
    let p = plugin("raw", Raw);
    let args = HookArgs::Rcpt {
        to: Address::parse("a@example.com").unwrap(),
        params: vec![("NOTIFY".into(), Some("NEVER".into()))],
    };
    assert_eq!(
        now(p.hook(Hook::Rcpt, &mut conn(), &args)).action,
        Action::Deny
    );
}
