//! queue/file driven through the `Plugin` trait.
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use haraka_config::ConfigDir;
use haraka_plugin_api::{
    Action, Connection, Hook, HookArgs, Local, Message, Outcome, Plugin, PluginError, PluginInit,
    Remote, Transaction,
};
use haraka_plugin_queue_file::safe_name;

/// Poll once: without a tokio runtime the plugin writes inline and never waits.
fn now<T>(fut: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("hook future was not ready"),
    }
}

fn root(ini: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    if let Some(text) = ini {
        std::fs::write(dir.path().join("config/queue_file.ini"), text).unwrap();
    }
    dir
}

fn try_plugin(root: &Path) -> Result<Arc<dyn Plugin>, PluginError> {
    let cfg = ConfigDir::open(root).unwrap();
    haraka_plugin_queue_file::factory(&PluginInit {
        name: "queue/file",
        config: &cfg,
    })
}

fn message() -> Message {
    Message {
        headers: vec![
            b"Received: from client.test ([192.0.2.1])\r\n\tby mx.test".to_vec(),
            b"Subject: hello".to_vec(),
        ],
        body: b"line 1\r\n.dot line\r\n".to_vec(),
    }
}

const EXPECTED: &[u8] = b"Received: from client.test ([192.0.2.1])\r\n\tby mx.test\r\nSubject: hello\r\n\r\nline 1\r\n.dot line\r\n";

fn conn(tuuid: &str) -> Connection {
    let mut c = Connection::new(
        "UUID".into(),
        Remote::new("192.0.2.1".parse().unwrap(), 4000),
        Local {
            ip: "192.0.2.25".parse().unwrap(),
            port: 25,
            host: "mx.test".into(),
        },
    );
    let mut txn = Transaction::new(tuuid.into());
    txn.message = message();
    c.transaction = Some(txn);
    c
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn registration() {
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    assert_eq!(p.name(), "queue/file");
    let hooks: Vec<Hook> = p.hooks().iter().map(|r| r.hook).collect();
    assert_eq!(hooks, [Hook::Queue, Hook::QueueOutbound]);
    assert!(r.path().join("queue-file").is_dir());
}

#[test]
fn queue_writes_one_file_per_message_without_a_runtime() {
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    for (hook, tuuid) in [(Hook::Queue, "ABC-1.1"), (Hook::QueueOutbound, "ABC-1.2")] {
        let mut c = conn(tuuid);
        let out = now(p.hook(hook, &mut c, &HookArgs::None));
        assert_eq!(out, Outcome::accept_with("Message Queued"));
    }
    let dir = r.path().join("queue-file");
    assert_eq!(files(&dir), ["ABC-1.1.eml", "ABC-1.2.eml"]);
    assert_eq!(std::fs::read(dir.join("ABC-1.1.eml")).unwrap(), EXPECTED);
}

#[tokio::test]
async fn queue_writes_on_a_blocking_thread_inside_tokio() {
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    let mut c = conn("D0D0.1");
    let out = p.hook(Hook::Queue, &mut c, &HookArgs::None).await;
    assert_eq!(out, Outcome::accept_with("Message Queued"));
    let path = r.path().join("queue-file/D0D0.1.eml");
    assert_eq!(std::fs::read(path).unwrap(), EXPECTED);
}

#[test]
fn configured_directory() {
    let abs = tempfile::tempdir().unwrap();
    let table: [(String, PathBuf); 3] = [
        (
            "[main]\npath=spool/mail\n".into(),
            PathBuf::from("spool/mail"),
        ),
        ("path = mine\n".into(), PathBuf::from("mine")),
        (
            format!("path={}\n", abs.path().join("q").display()),
            abs.path().join("q"),
        ),
    ];
    for (ini, dir) in table {
        let r = root(Some(&ini));
        let p = try_plugin(r.path()).unwrap();
        let mut c = conn("T.1");
        assert_eq!(
            now(p.hook(Hook::Queue, &mut c, &HookArgs::None)),
            Outcome::accept_with("Message Queued"),
            "{ini}"
        );
        let dir = r.path().join(dir);
        assert_eq!(files(&dir), ["T.1.eml"], "{ini}");
    }
}

#[test]
fn io_error_is_a_temporary_failure_and_leaves_nothing() {
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    let dir = r.path().join("queue-file");
    // The directory disappears and a plain file takes its place.
    std::fs::remove_dir(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    let mut c = conn("E.1");
    let out = now(p.hook(Hook::Queue, &mut c, &HookArgs::None));
    assert_eq!(out.action, Action::DenySoft);
    let text = out.msg.unwrap().joined();
    assert!(text.starts_with("Message not queued: "), "{text}");
    assert!(!text.contains(&*r.path().to_string_lossy()), "{text}");
    assert_eq!(std::fs::read(&dir).unwrap(), b"not a directory");
}

#[test]
fn unusable_directory_is_a_startup_error() {
    let r = root(Some("path=blocked/q\n"));
    std::fs::write(r.path().join("blocked"), b"file").unwrap();
    match try_plugin(r.path()) {
        Err(PluginError::Other(text)) => assert!(text.contains("blocked"), "{text}"),
        Err(other) => panic!("unexpected {other}"),
        Ok(_) => panic!("the plugin must not start without its directory"),
    }
}

#[test]
fn no_transaction_is_a_temporary_failure() {
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    let mut c = conn("X.1");
    c.transaction = None;
    let out = now(p.hook(Hook::Queue, &mut c, &HookArgs::None));
    assert_eq!(out.action, Action::DenySoft);
}

#[test]
fn other_hooks_continue() {
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    let mut c = conn("X.1");
    assert_eq!(
        now(p.hook(Hook::DataPost, &mut c, &HookArgs::None)),
        Outcome::cont()
    );
    assert!(files(&r.path().join("queue-file")).is_empty());
}

#[test]
fn file_names_stay_inside_the_directory() {
    let table = [
        ("ABC-DEF.1", "ABC-DEF.1"),
        ("../../etc/passwd", "_.._.._etc_passwd"),
        ("..", "_.."),
        (".hidden", "_.hidden"),
        ("", "_"),
        ("a/b\\c d\r\n", "a_b_c_d__"),
    ];
    for (input, expect) in table {
        assert_eq!(safe_name(input), expect, "{input:?}");
    }
    let r = root(None);
    let p = try_plugin(r.path()).unwrap();
    let mut c = conn("../escape");
    assert_eq!(
        now(p.hook(Hook::Queue, &mut c, &HookArgs::None)),
        Outcome::accept_with("Message Queued")
    );
    assert_eq!(files(&r.path().join("queue-file")), ["_.._escape.eml"]);
}
