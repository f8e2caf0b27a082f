//! rcpt_to.in_host_list driven through the `Plugin` trait.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use haraka_config::ConfigDir;
use haraka_plugin_api::{
    Address, Connection, Hook, HookArgs, Local, Outcome, Plugin, PluginError, PluginInit, Remote,
    Transaction,
};
use haraka_plugin_rcpt_to_in_host_list::InHostList;
use haraka_plugin_rcpt_to_in_host_list::lists::anti_spoof_on;

fn now<T>(fut: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("hook future was not ready"),
    }
}

/// A root with `config/` holding `files` (name, content).
fn root(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("config").join(name), text).unwrap();
    }
    dir
}

fn try_plugin(root: &Path) -> Result<Arc<dyn Plugin>, PluginError> {
    let cfg = ConfigDir::open(root).unwrap();
    haraka_plugin_rcpt_to_in_host_list::factory(&PluginInit {
        name: "rcpt_to.in_host_list",
        config: &cfg,
    })
}

fn plugin(root: &Path) -> Arc<dyn Plugin> {
    try_plugin(root).unwrap()
}

/// The plugin checking its files on every use.
fn watching(root: &Path) -> Arc<dyn Plugin> {
    let cfg = ConfigDir::open(root).unwrap();
    haraka_plugin_api::plugin(
        "rcpt_to.in_host_list",
        InHostList::new("rcpt_to.in_host_list", &cfg)
            .unwrap()
            .with_reload_interval(Duration::ZERO),
    )
}

/// An address as the parser leaves it: `host` lower-cased, `original_host` as sent.
fn addr(text: &str) -> Address {
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

fn conn(relaying: bool) -> Connection {
    let mut c = Connection::new(
        "UUID".into(),
        Remote::new("192.0.2.1".parse().unwrap(), 4000),
        Local {
            ip: "192.0.2.25".parse().unwrap(),
            port: 25,
            host: "mx.test".into(),
        },
    );
    c.set_relaying(relaying);
    c.transaction = Some(Transaction::new("UUID.1".into()));
    c
}

fn mail(p: &dyn Plugin, c: &mut Connection, from: Option<&str>) -> Outcome {
    let args = HookArgs::Mail {
        from: from.map(addr),
        params: vec![],
    };
    now(p.hook(Hook::Mail, c, &args))
}

fn rcpt(p: &dyn Plugin, c: &mut Connection, to: &str) -> Outcome {
    let args = HookArgs::Rcpt {
        to: addr(to),
        params: vec![],
    };
    now(p.hook(Hook::Rcpt, c, &args))
}

/// `rcpt` outcome for a fresh non-relaying transaction with sender `<>`.
fn accepts(p: &dyn Plugin, to: &str) -> bool {
    let mut c = conn(false);
    match rcpt(p, &mut c, to) {
        o if o == Outcome::accept() => true,
        o if o == Outcome::cont() => false,
        other => panic!("unexpected {other:?} for {to}"),
    }
}

fn local_sender(c: &Connection) -> bool {
    let txn = c.transaction.as_ref().unwrap();
    txn.notes.get("local_sender").and_then(|v| v.as_bool()) == Some(true)
}

#[test]
fn registration() {
    let r = root(&[]);
    let p = plugin(r.path());
    assert_eq!(p.name(), "rcpt_to.in_host_list");
    let hooks: Vec<Hook> = p.hooks().iter().map(|r| r.hook).collect();
    assert_eq!(hooks, [Hook::Mail, Hook::Rcpt]);
}

#[test]
fn shipped_default_is_haraka_local() {
    let r = root(&[]);
    let p = plugin(r.path());
    assert!(accepts(p.as_ref(), "a@haraka.local"));
    assert!(!accepts(p.as_ref(), "a@example.com"));
    // An empty file leaves the default in place.
    let r = root(&[("host_list", "# nothing\n\n")]);
    let p = plugin(r.path());
    assert!(accepts(p.as_ref(), "a@haraka.local"));
}

#[test]
fn host_list_matches_whole_domains_only() {
    let r = root(&[(
        "host_list",
        "# ours\nExample.COM\n  example.org  \n[192.0.2.9]\n",
    )]);
    let p = plugin(r.path());
    let table = [
        ("a@example.com", true),
        ("a@EXAMPLE.com", true),
        ("A.B+tag@Example.Com", true),
        ("a@example.org", true),
        ("a@[192.0.2.9]", true),
        ("a@haraka.local", false),
        ("a@sub.example.com", false),
        ("a@example.com.evil.net", false),
        ("a@evil-example.com", false),
        ("a@xexample.com", false),
        ("a@example.co", false),
        ("a@example.com.", false),
        ("a@[192.0.2.10]", false),
        // address tricks: only the domain after the last @ counts
        ("a%evil.net@example.com", true),
        ("\"a@evil.net\"@example.com", true),
        ("a@example.com@evil.net", false),
        ("evil.net!a@example.com", true),
        ("a@evil.net%example.com", false),
    ];
    for (to, expect) in table {
        assert_eq!(accepts(p.as_ref(), to), expect, "{to}");
    }
}

#[test]
fn regex_list_is_anchored_and_case_insensitive() {
    let r = root(&[
        ("host_list", "example.com\n"),
        (
            "host_list_regex",
            "; comment\n.*\\.example\\.net\nmail\\d+\\.test\n",
        ),
    ]);
    let p = plugin(r.path());
    let table = [
        ("a@host.example.net", true),
        ("a@HOST.Example.NET", true),
        ("a@example.net", false),
        ("a@host.example.net.evil", false),
        ("a@mail12.test", true),
        ("a@MAIL12.TEST", true),
        ("a@mail12.test.org", false),
        ("a@xmail12.test", false),
        ("a@example.com", true),
    ];
    for (to, expect) in table {
        assert_eq!(accepts(p.as_ref(), to), expect, "{to}");
    }
}

#[test]
fn invalid_regex_is_a_startup_error_naming_the_line() {
    let r = root(&[("host_list_regex", "ok\\.test\n# c\nbad(\n")]);
    let err = match try_plugin(r.path()) {
        Err(PluginError::Config(e)) => e,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a broken regex must not load"),
    };
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].line, 3);
    assert!(err.0[0].file.ends_with("host_list_regex"));
    assert!(err.to_string().contains("bad("), "{err}");
}

#[test]
fn postmaster_without_domain_continues() {
    let r = root(&[("host_list", "example.com\n")]);
    let p = plugin(r.path());
    let mut c = conn(true);
    assert_eq!(
        mail(p.as_ref(), &mut c, Some("u@example.com")),
        Outcome::cont()
    );
    assert_eq!(rcpt(p.as_ref(), &mut c, "postmaster"), Outcome::cont());
    let txn = c.transaction.as_ref().unwrap();
    assert!(
        txn.results
            .has("rcpt_to.in_host_list", "fail", "rcpt!domain")
    );
}

#[test]
fn relaying_clients_with_a_local_sender_may_send_anywhere() {
    let r = root(&[("host_list", "example.com\n")]);
    let p = plugin(r.path());
    // (relaying, sender, recipient, accepted)
    let table = [
        (true, Some("me@example.com"), "x@gmail.test", true),
        (true, Some("me@EXAMPLE.COM"), "x@gmail.test", true),
        (true, Some("me@other.test"), "x@gmail.test", false),
        (true, None, "x@gmail.test", false),
        (false, Some("me@example.com"), "x@gmail.test", false),
        (false, Some("me@other.test"), "x@example.com", true),
        (false, None, "x@example.com", true),
    ];
    for (relaying, from, to, expect) in table {
        let mut c = conn(relaying);
        assert_eq!(mail(p.as_ref(), &mut c, from), Outcome::cont(), "{from:?}");
        let out = rcpt(p.as_ref(), &mut c, to);
        let want = if expect {
            Outcome::accept()
        } else {
            Outcome::cont()
        };
        assert_eq!(out, want, "relaying={relaying} from={from:?} to={to}");
    }
}

#[test]
fn mail_hook_marks_local_senders() {
    let r = root(&[("host_list", "example.com\n")]);
    let p = plugin(r.path());
    let mut c = conn(false);
    assert_eq!(mail(p.as_ref(), &mut c, None), Outcome::cont());
    assert!(!local_sender(&c));
    let txn = c.transaction.as_ref().unwrap();
    assert!(
        txn.results
            .has("rcpt_to.in_host_list", "skip", "mail_from.null")
    );

    let mut c = conn(false);
    assert_eq!(
        mail(p.as_ref(), &mut c, Some("u@Example.com")),
        Outcome::cont()
    );
    assert!(local_sender(&c));

    let mut c = conn(false);
    assert_eq!(
        mail(p.as_ref(), &mut c, Some("u@sub.example.com")),
        Outcome::cont()
    );
    assert!(!local_sender(&c));
}

#[test]
fn anti_spoof() {
    // (value file content, relaying, outcome is a denial)
    let table = [
        ("1\n", false, true),
        ("1\n", true, false),
        ("yes\n", false, true),
        ("true\n", false, true),
        ("0\n", false, false),
        ("false\n", false, false),
        ("# only a comment\n", false, false),
    ];
    for (value, relaying, denied) in table {
        let r = root(&[
            ("host_list", "example.com\n"),
            ("host_list.anti_spoof", value),
        ]);
        let p = plugin(r.path());
        let mut c = conn(relaying);
        let out = mail(p.as_ref(), &mut c, Some("boss@EXAMPLE.com"));
        if denied {
            assert_eq!(
                out,
                Outcome::deny("Mail from domain 'example.com' is not allowed from your host"),
                "{value:?}"
            );
            assert!(!local_sender(&c));
        } else {
            assert_eq!(out, Outcome::cont(), "{value:?} relaying={relaying}");
            assert!(local_sender(&c));
        }
        // Non-local senders are never refused.
        let mut c = conn(false);
        assert_eq!(
            mail(p.as_ref(), &mut c, Some("x@other.test")),
            Outcome::cont()
        );
    }
}

#[test]
fn anti_spoof_values() {
    let table = [
        ("1", true),
        ("2", true),
        ("-1", true),
        ("0", false),
        ("0.0", false),
        ("", false),
        ("on", true),
        ("anything", true),
        ("FALSE", false),
        ("no", false),
        ("off", false),
        ("disabled", false),
    ];
    for (v, expect) in table {
        assert_eq!(anti_spoof_on(v), expect, "{v:?}");
    }
}

#[test]
fn lists_are_reloaded_when_they_change() {
    let r = root(&[("host_list", "example.com\n")]);
    let p = watching(r.path());
    assert!(!accepts(p.as_ref(), "a@new.test"));
    std::fs::write(r.path().join("config/host_list"), "example.com\nnew.test\n").unwrap();
    assert!(accepts(p.as_ref(), "a@new.test"));
    std::fs::write(r.path().join("config/host_list_regex"), "r\\d\\.test\n").unwrap();
    assert!(accepts(p.as_ref(), "a@r7.test"));
    // A broken regex keeps the previous lists.
    std::fs::write(r.path().join("config/host_list_regex"), "(\n").unwrap();
    assert!(accepts(p.as_ref(), "a@r7.test"));
    assert!(accepts(p.as_ref(), "a@new.test"));
    // Removing the list falls back to the shipped default.
    std::fs::remove_file(r.path().join("config/host_list")).unwrap();
    std::fs::remove_file(r.path().join("config/host_list_regex")).unwrap();
    assert!(!accepts(p.as_ref(), "a@new.test"));
    assert!(accepts(p.as_ref(), "a@haraka.local"));
    // anti_spoof is re-read too.
    std::fs::write(r.path().join("config/host_list"), "example.com\n").unwrap();
    let mut c = conn(false);
    assert_eq!(
        mail(p.as_ref(), &mut c, Some("a@example.com")),
        Outcome::cont()
    );
    std::fs::write(r.path().join("config/host_list.anti_spoof"), "1\n").unwrap();
    let mut c = conn(false);
    assert!(
        mail(p.as_ref(), &mut c, Some("a@example.com"))
            .action
            .is_deny()
    );
}

#[test]
fn alias_ini_names_the_list() {
    let lists = tempfile::tempdir().unwrap();
    let list = lists.path().join("domains");
    std::fs::write(&list, "example.com\n").unwrap();
    let ini = format!("[main]\nhost_list={}\n", list.display());
    let r = root(&[("rcpt_to.in_host_list.ini", &ini)]);
    let p = watching(r.path());
    assert!(accepts(p.as_ref(), "a@example.com"));
    assert!(!accepts(p.as_ref(), "a@haraka.local"));
    // The named file is watched.
    std::fs::write(&list, "example.com\nexample.org\n").unwrap();
    assert!(accepts(p.as_ref(), "a@example.org"));
    // A real host_list wins.
    std::fs::write(r.path().join("config/host_list"), "real.test\n").unwrap();
    assert!(accepts(p.as_ref(), "a@real.test"));
    assert!(!accepts(p.as_ref(), "a@example.com"));
}

#[test]
fn alias_ini_with_a_missing_list_accepts_nothing() {
    let r = root(&[(
        "rcpt_to.in_host_list.ini",
        "[main]\nhost_list=/nonexistent/host_list\n",
    )]);
    let p = plugin(r.path());
    assert!(!accepts(p.as_ref(), "a@haraka.local"));
    assert!(!accepts(p.as_ref(), "a@example.com"));
}

#[test]
fn flat_layout_reads_host_list_from_the_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("smtp.ini"), "listen=[::]:25\n").unwrap();
    std::fs::write(dir.path().join("host_list"), "example.com\n").unwrap();
    let p = plugin(dir.path());
    assert!(accepts(p.as_ref(), "a@example.com"));
    assert!(!accepts(p.as_ref(), "a@haraka.local"));
}

#[test]
fn without_a_transaction_nothing_happens() {
    let r = root(&[]);
    let p = plugin(r.path());
    let mut c = conn(false);
    c.transaction = None;
    assert_eq!(rcpt(p.as_ref(), &mut c, "a@haraka.local"), Outcome::cont());
    assert_eq!(
        mail(p.as_ref(), &mut c, Some("a@haraka.local")),
        Outcome::cont()
    );
}
