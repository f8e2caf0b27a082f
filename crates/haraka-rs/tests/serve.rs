//! The real binary on a socket: the quickstart root, and a cdylib plugin.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::time::{Duration, Instant};

use common::{Server, copy_dir, free_port, workspace};

fn quickstart_copy(port: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("config-examples/quickstart"), dir.path());
    std::fs::write(
        dir.path().join("config/smtp.ini"),
        format!("listen=127.0.0.1:{port}\n"),
    )
    .unwrap();
    dir
}

#[test]
fn quickstart_accepts_and_stores_a_message() {
    let port = free_port();
    let dir = quickstart_copy(port);
    let server = Server::start(dir.path(), port);
    let mut c = server.smtp();
    assert_eq!(
        c.reply(),
        ["220 mx.quickstart.test ESMTP Haraka/3.0.0 ready"]
    );
    c.send("EHLO client.example");
    let ehlo = c.reply();
    assert_eq!(
        ehlo.last().map(String::as_str),
        Some("250 SIZE 26214400"),
        "{ehlo:?}"
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "250 sender <a@b.example> OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<nobody@elsewhere.test>"),
        "550 I cannot deliver mail for <nobody@elsewhere.test>"
    );
    assert_eq!(
        c.cmd("RCPT TO:<User@Quickstart.Test>"),
        "250 recipient <User@Quickstart.Test> OK"
    );
    assert_eq!(c.cmd("DATA"), "354 go ahead, make my day");
    c.send("Subject: hello\r\n\r\n..dot\r\nbody\r\n.");
    let queued = c.reply().pop().unwrap();
    assert!(queued.starts_with("250 Message Queued ("), "{queued}");
    let tuuid = queued
        .trim_start_matches("250 Message Queued (")
        .trim_end_matches(')');
    assert_eq!(
        c.cmd("QUIT"),
        "221 mx.quickstart.test closing connection. Have a jolly good day."
    );

    let stored =
        std::fs::read_to_string(dir.path().join("queue-file").join(format!("{tuuid}.eml")))
            .unwrap();
    assert!(
        stored.starts_with("Received: from client.example (localhost [127.0.0.1])\r\n"),
        "{stored}"
    );
    assert!(
        stored.ends_with("Subject: hello\r\n\r\n.dot\r\nbody\r\n"),
        "{stored}"
    );
    server.stop();
}

#[test]
fn sessions_in_progress_finish_after_sigterm() {
    let port = free_port();
    let dir = quickstart_copy(port);
    let server = Server::start(dir.path(), port);
    let mut c = server.smtp();
    c.reply();
    assert!(c.cmd("HELO x").starts_with("250 "));
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    // The open session keeps being served while the server winds down.
    assert_eq!(c.cmd("NOOP"), "250 OK");
    assert!(c.cmd("QUIT").starts_with("221 "));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = server;
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_cdylib_plugin_answers_on_the_wire() {
    let port = free_port();
    let dir = quickstart_copy(port);
    haraka_plugin_host::testing::install("rcpt_allow", dir.path())
        .expect("install the example plugin");
    std::fs::write(
        dir.path().join("config/plugins"),
        "rcpt_allow\nrcpt_to.in_host_list\nqueue/file\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config/rcpt_allow.ini"),
        "[main]\nreject=deny\nmessage=No mailbox {rcpt} here\n[recipients]\nalice@quickstart.test\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), port);
    let mut c = server.smtp();
    c.reply();
    assert!(c.cmd("HELO x").starts_with("250 "));
    assert_eq!(
        c.cmd("MAIL FROM:<a@b.example>"),
        "250 sender <a@b.example> OK"
    );
    assert_eq!(
        c.cmd("RCPT TO:<bob@quickstart.test>"),
        "550 No mailbox <bob@quickstart.test> here"
    );
    assert_eq!(
        c.cmd("RCPT TO:<alice@quickstart.test>"),
        "250 recipient <alice@quickstart.test> OK"
    );
    assert!(c.cmd("QUIT").starts_with("221 "));
    server.stop();
}

#[test]
fn smtps_port_speaks_tls_from_the_first_byte() {
    let port = free_port();
    let dir = quickstart_copy(port);
    let pem = workspace().join("config-examples/haraka-in/tls/mail.example.com.pem");
    std::fs::write(
        dir.path().join("config/smtp.ini"),
        format!("listen=127.0.0.1:{port}\nsmtps_port={port}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config/tls.ini"),
        format!("key={0}\ncert={0}\n", pem.display()),
    )
    .unwrap();
    let server = Server::start(dir.path(), port);
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(b"EHLO tls.example\r\nQUIT\r\n")?;
            }
            child.wait_with_output()
        })
        .expect("openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("220 mx.quickstart.test ESMTP"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Already encrypted: STARTTLS is not offered again.
    assert!(
        text.contains("250 SIZE 26214400") && !text.contains("STARTTLS"),
        "{text}"
    );
    assert!(text.contains("221 "), "{text}");
    server.stop();
}
