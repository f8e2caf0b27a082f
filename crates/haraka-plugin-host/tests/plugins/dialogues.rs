//! Well-behaved plugins: what they see and what their edits do.

use haraka_plugin_api::{
    Action, ConnAction, Hook, HookArgs, OutboundArgs, OutboundMail, Registration,
};
use haraka_plugin_host::{library_file_name, load, plugin_name};
use serde_json::json;

use crate::support::{addr, logs, rcpt, root, run, session};

const ALLOW: &str =
    "[main]\nreject=deny\n[recipients]\nalice@example.com\n[domains]\nexample.org\n";

#[tokio::test]
async fn the_allow_list_answers_at_rcpt() {
    let root = root(&["rcpt_allow"], &[("rcpt_allow.ini", ALLOW)]);
    let plugin = root.load("rcpt_allow");
    assert_eq!(plugin.name(), "rcpt_allow");
    assert_eq!(plugin.hooks(), vec![Registration::new(Hook::Rcpt)]);
    let mut conn = session();
    let table = [
        ("alice@example.com", Action::Accept, None),
        ("Alice@EXAMPLE.com", Action::Accept, None),
        ("someone@example.org", Action::Accept, None),
        (
            "bob@example.com",
            Action::Deny,
            Some("I cannot deliver mail for <bob@example.com>"),
        ),
    ];
    for (to, action, text) in table {
        let out = run(&*plugin, Hook::Rcpt, &mut conn, &rcpt(to)).await;
        assert_eq!(out.action, action, "{to}");
        assert_eq!(out.msg.map(|m| m.joined()).as_deref(), text, "{to}");
    }
    let t = conn.transaction.as_ref().unwrap();
    assert!(t.results.has("rcpt_allow", "pass", "alice@example.com"));
    assert!(t.results.has("rcpt_allow", "fail", "bob@example.com"));
}

#[tokio::test]
async fn the_allow_list_rereads_its_config_when_it_changes() {
    let root = root(&["rcpt_allow"], &[("rcpt_allow.ini", ALLOW)]);
    let plugin = root.load("rcpt_allow");
    let mut conn = session();
    let carol = rcpt("carol@example.com");
    assert_eq!(
        run(&*plugin, Hook::Rcpt, &mut conn, &carol).await.action,
        Action::Deny
    );
    // A different size, so the change is seen even within one timestamp tick.
    root.write(
        "rcpt_allow.ini",
        "[main]\nreject=denysoft\n[recipients]\ncarol@example.com\n",
    );
    assert_eq!(
        run(&*plugin, Hook::Rcpt, &mut conn, &carol).await.action,
        Action::Accept
    );
    let bob = rcpt("bob@example.org");
    assert_eq!(
        run(&*plugin, Hook::Rcpt, &mut conn, &bob).await.action,
        Action::DenySoft
    );
}

#[tokio::test]
async fn a_library_may_be_named_by_path_and_is_loaded_once_for_many_instances() {
    let root = root(&["rcpt_allow"], &[("rcpt_allow.ini", ALLOW)]);
    let entry = format!("plugins/{}", library_file_name("rcpt_allow"));
    assert_eq!(plugin_name(&entry), "rcpt_allow");
    let by_path = load(&entry, root.path(), &root.config).unwrap();
    let by_name = root.load("rcpt_allow");
    assert_eq!(by_path.name(), "rcpt_allow");
    let mut conn = session();
    for plugin in [&by_path, &by_name] {
        let out = run(&**plugin, Hook::Rcpt, &mut conn, &rcpt("alice@example.com")).await;
        assert_eq!(out.action, Action::Accept);
    }
    drop(by_path);
    let out = run(&*by_name, Hook::Rcpt, &mut conn, &rcpt("x@example.org")).await;
    assert_eq!(
        out.action,
        Action::Accept,
        "one instance going away leaves the other"
    );
}

#[tokio::test]
async fn data_post_reads_the_body_and_edits_headers() {
    let ini = "[main]\nheader=X-Body-Stats\n[reject]\nphrase[]=buy cheap pills\n";
    let root = root(&["body_stamp"], &[("body_stamp.ini", ini)]);
    let plugin = root.load("body_stamp");
    let mut conn = session();
    {
        let m = &mut conn.transaction.as_mut().unwrap().message;
        m.headers = vec![b"Subject: hi".to_vec(), b"X-Body-Stats: forged".to_vec()];
        m.body = b"line one\r\nline two\r\n".to_vec();
    }
    let out = run(&*plugin, Hook::DataPost, &mut conn, &HookArgs::None).await;
    assert_eq!(out.action, Action::Cont);
    let t = conn.transaction.as_ref().unwrap();
    assert_eq!(
        t.message.get_header("X-Body-Stats"),
        vec!["lines=2; bytes=20".to_owned()]
    );
    assert_eq!(t.message.get_header("Subject"), vec!["hi".to_owned()]);
    assert_eq!(
        t.message.body, b"line one\r\nline two\r\n",
        "the body is untouched"
    );
    assert!(t.results.has("body_stamp", "pass", "stamped"));

    conn.transaction.as_mut().unwrap().message.body = b"Buy CHEAP pills now\r\n".to_vec();
    let out = run(&*plugin, Hook::DataPost, &mut conn, &HookArgs::None).await;
    assert_eq!(out.action, Action::Deny);
    assert_eq!(out.msg.unwrap().joined(), "Message content rejected");
}

#[tokio::test]
async fn a_plugin_sees_the_session_and_its_edits_come_back() {
    let root = root(&["fixture_inspect"], &[]);
    let plugin = root.load("fixture_inspect");
    assert!(
        plugin
            .hooks()
            .contains(&Registration::with_priority(Hook::Rcpt, -10))
    );
    let mut conn = session();

    run(&*plugin, Hook::Capabilities, &mut conn, &HookArgs::None).await;
    assert_eq!(conn.capabilities, vec!["X-INSPECT".to_owned()]);

    let mail = HookArgs::Mail {
        from: Some(addr("sender@example.net")),
        params: vec![],
    };
    run(&*plugin, Hook::Mail, &mut conn, &mail).await;
    assert!(conn.relaying(), "relaying set for the transaction");
    assert_eq!(
        conn.transaction.as_ref().unwrap().notes.get("inspected"),
        Some(&json!(true))
    );

    let out = run(&*plugin, Hook::Rcpt, &mut conn, &rcpt("later@example.com")).await;
    assert_eq!(out.action, Action::DenySoft);
    let msg = out.msg.unwrap();
    assert_eq!(
        (msg.code, msg.lines),
        (Some(451), vec!["4.7.1 try later".to_owned()])
    );
    let out = run(&*plugin, Hook::Rcpt, &mut conn, &rcpt("multi@example.com")).await;
    assert_eq!(
        out.msg.unwrap().lines,
        vec!["line one".to_owned(), "line two".to_owned()]
    );
    let out = run(&*plugin, Hook::Rcpt, &mut conn, &rcpt("a@example.com")).await;
    assert_eq!(out.action, Action::Accept);
    let seen = &conn.notes["seen_rcpt"];
    assert_eq!(seen["remote_ip"], json!("192.0.2.10"));
    assert_eq!(seen["remote_host"], json!("client.example"));
    assert_eq!(seen["helo"], json!("client.example"));
    assert_eq!(seen["mail_from"], json!("<sender@example.net>"));
    assert_eq!(seen["relaying"], json!(true));
    assert!(
        seen["conn_notes"]
            .as_array()
            .unwrap()
            .contains(&json!("seen_mail"))
    );
    let t = conn.transaction.as_ref().unwrap();
    assert_eq!(t.rcpt_to, vec![addr("a@example.com")]);
    assert!(conn.results.has("fixture_inspect", "pass", "rcpt"));

    {
        let m = &mut conn.transaction.as_mut().unwrap().message;
        m.headers = vec![
            b"Subject: test".to_vec(),
            b"X-Remove-Me: 1".to_vec(),
            b"X-Replace-Body: yes".to_vec(),
        ];
        m.body = b"original\r\n".to_vec();
    }
    run(&*plugin, Hook::DataPost, &mut conn, &HookArgs::None).await;
    let m = &conn.transaction.as_ref().unwrap().message;
    assert!(m.get_header("X-Remove-Me").is_empty());
    assert_eq!(m.get_header("X-Inspected"), vec!["yes".to_owned()]);
    assert_eq!(m.body, b"replaced\r\n");
    assert_eq!(
        conn.notes["seen_data_post"]["subject"],
        json!(["test"]),
        "headers are visible"
    );
    assert_eq!(conn.notes["seen_data_post"]["body_len"], json!(10));

    let xrestart = HookArgs::Unrecognized {
        verb: "XRESTART".into(),
        rest: String::new(),
    };
    let out = run(&*plugin, Hook::UnrecognizedCommand, &mut conn, &xrestart).await;
    assert_eq!(out.action, Action::Accept);
    assert!(matches!(
        conn.take_requests().as_slice(),
        [ConnAction::Restart]
    ));
}

#[tokio::test]
async fn outbound_hooks_cross_too() {
    let root = root(&["fixture_inspect"], &[]);
    let plugin = root.load("fixture_inspect");
    let mut mail = OutboundMail {
        id: "Q1.1".into(),
        domain: "example.org".into(),
        mail_from: None,
        rcpt_to: vec![addr("a@example.org")],
        notes: Default::default(),
        attempts: 0,
        mx: None,
    };
    let args = OutboundArgs::GetMx {
        domain: "example.org".into(),
    };
    let out = tokio::time::timeout(
        crate::support::NO_HANG,
        plugin.outbound_hook(Hook::GetMx, &mut mail, &args),
    )
    .await
    .unwrap();
    assert_eq!(out.action, Action::Accept);
    let mx = mail.mx.unwrap();
    assert_eq!(mx[0].exchange, "smarthost.example.org");
    assert_eq!(mx[0].port, 2525);
    assert_eq!(mail.notes.get("asked_for"), Some(&json!("example.org")));
}

#[tokio::test]
async fn a_plugins_tracing_reaches_the_hosts_log() {
    let root = root(&[], &[]);
    let dir = root.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let built = haraka_plugin_host::testing::built_library("fixture_inspect").unwrap();
    std::fs::copy(built, dir.join(library_file_name("inspect_logged"))).unwrap();
    let plugin = root.load("inspect_logged");
    let mut conn = session();
    run(&*plugin, Hook::Rcpt, &mut conn, &rcpt("a@example.com")).await;
    let logs = logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("plugin=inspect_logged") && l.contains("inspect saw a hook")),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_each_get_their_own_answer() {
    let root = root(&["fixture_inspect"], &[]);
    let plugin = root.load("fixture_inspect");
    let mut tasks = Vec::new();
    for i in 0..64 {
        let plugin = plugin.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = session();
            let user = if i % 2 == 0 {
                format!("async{i}")
            } else {
                "later".to_owned()
            };
            let to = rcpt(&format!("{user}@example.com"));
            let out = run(&*plugin, Hook::Rcpt, &mut conn, &to).await;
            (i, user, out, conn.notes.get("async_user").cloned())
        }));
    }
    for task in tasks {
        let (i, user, out, note) = task.await.unwrap();
        if i % 2 == 0 {
            assert_eq!(out.action, Action::Accept, "{user}");
            assert_eq!(out.msg.unwrap().joined(), format!("async {user}"));
            assert_eq!(
                note,
                Some(json!(user)),
                "an edit made on another thread came back"
            );
        } else {
            assert_eq!(out.action, Action::DenySoft, "{user}");
            assert_eq!(out.msg.unwrap().code, Some(451));
            assert_eq!(note, None);
        }
    }
}
