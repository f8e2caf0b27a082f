//! Plugins that panic, never answer, or answer twice: the caller always gets an
//! answer (a 4xx, or the timeout's), and other sessions go on being served.

use std::time::Duration;

use haraka_plugin_api::{Action, Hook, HookArgs, Outcome};
use haraka_plugin_host::{PLUGIN_ERROR_TEXT, ignored_completions};

use crate::support::{logs, rcpt, root, run, run_with_timeout, session, timeout_for};

const ALLOW: &str = "[recipients]\nalice@example.com\n";

fn helo() -> HookArgs {
    HookArgs::Hello("client.example".into())
}

#[tokio::test]
async fn a_panic_is_a_4xx_and_the_plugin_keeps_serving() {
    let root = root(
        &["fixture_panics", "rcpt_allow"],
        &[("rcpt_allow.ini", ALLOW)],
    );
    let panics = root.load("fixture_panics");
    let allow = root.load("rcpt_allow");
    let mut conn = session();

    let out = run(&*panics, Hook::Rcpt, &mut conn, &rcpt("a@example.com")).await;
    assert_eq!(
        out,
        Outcome::deny_soft(PLUGIN_ERROR_TEXT),
        "a panic at once"
    );
    let out = run(&*panics, Hook::DataPost, &mut conn, &HookArgs::None).await;
    assert_eq!(
        out,
        Outcome::deny_soft(PLUGIN_ERROR_TEXT),
        "a panic after waiting"
    );

    let out = run(&*panics, Hook::Helo, &mut conn, &helo()).await;
    assert_eq!(out, Outcome::accept_with("still here"));
    let mut other = session();
    let out = run(&*allow, Hook::Rcpt, &mut other, &rcpt("alice@example.com")).await;
    assert_eq!(out.action, Action::Accept);

    let logs = logs();
    assert!(logs.contains("fixture panics at rcpt"), "{logs}");
    assert!(
        logs.contains("fixture panics at data_post, later"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_never_answers_gets_the_configured_timeout_and_blocks_no_one() {
    let root = root(
        &["fixture_never_completes", "rcpt_allow"],
        &[
            ("rcpt_allow.ini", ALLOW),
            ("plugin_timeout", "30\n"),
            ("fixture_never_completes.timeout", "0.3\n"),
        ],
    );
    let stuck = root.load("fixture_never_completes");
    let allow = root.load("rcpt_allow");

    let limit = timeout_for(&root, &*stuck);
    assert_eq!(limit, Duration::from_millis(300));
    let waiting = {
        let stuck = stuck.clone();
        tokio::spawn(async move {
            let mut conn = session();
            run_with_timeout(
                limit,
                &*stuck,
                Hook::Rcpt,
                &mut conn,
                &rcpt("a@example.com"),
            )
            .await
        })
    };
    // While that session waits, others (and the same plugin's other hooks) answer.
    for _ in 0..20 {
        let mut conn = session();
        let out = run(&*allow, Hook::Rcpt, &mut conn, &rcpt("alice@example.com")).await;
        assert_eq!(out.action, Action::Accept);
        let out = run(&*stuck, Hook::Helo, &mut conn, &helo()).await;
        assert_eq!(out, Outcome::accept_with("still here"));
    }
    let started = std::time::Instant::now();
    let out = waiting.await.unwrap();
    assert_eq!(out, Outcome::plugin_timeout());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the plugin's own timeout applied"
    );
}

#[tokio::test]
async fn a_second_answer_is_ignored_and_the_first_wins() {
    let root = root(&["fixture_completes_twice"], &[]);
    let plugin = root.load("fixture_completes_twice");
    let mut conn = session();
    let before = ignored_completions();
    let out = run(&*plugin, Hook::Rcpt, &mut conn, &rcpt("a@example.com")).await;
    assert_eq!(out, Outcome::deny("first answer"));
    assert!(
        ignored_completions() > before,
        "the second answer was counted and ignored"
    );
}

#[tokio::test]
async fn an_answer_after_the_timeout_is_ignored() {
    let root = root(&["fixture_completes_twice"], &[("plugin_timeout", "0.1\n")]);
    let plugin = root.load("fixture_completes_twice");
    let mut conn = session();
    let limit = timeout_for(&root, &*plugin);
    let out = run_with_timeout(limit, &*plugin, Hook::Helo, &mut conn, &helo()).await;
    assert_eq!(out, Outcome::plugin_timeout());
    let hello_before = conn.hello.clone();
    let before = ignored_completions();
    // `quit` first answers the abandoned `helo` call, then its own.
    let out = run(&*plugin, Hook::Quit, &mut conn, &HookArgs::None).await;
    assert_eq!(out, Outcome::accept_with("bye"));
    assert!(
        ignored_completions() > before,
        "the late answer was counted and ignored"
    );
    assert_eq!(conn.hello, hello_before);
}
