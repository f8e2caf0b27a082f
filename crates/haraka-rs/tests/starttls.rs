//! STARTTLS through the real binary and the tls plugin: plaintext pipelined after
//! STARTTLS is discarded (CVE-2011-0411), and the session starts over inside TLS.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::{Server, copy_dir, free_port, workspace};

fn reply<R: BufRead>(r: &mut R) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap() == 0 {
            return lines;
        }
        let l = l.trim_end().to_owned();
        let last = l.as_bytes().get(3) != Some(&b'-');
        lines.push(l);
        if last {
            return lines;
        }
    }
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&workspace().join("config-examples/quickstart"), dir.path());
    let pem = workspace().join("config-examples/haraka-in/tls/mail.example.com.pem");
    std::fs::write(
        dir.path().join("config/smtp.ini"),
        format!("listen=127.0.0.1:{port}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config/tls.ini"),
        format!("key={0}\ncert={0}\n", pem.display()),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config/plugins"),
        "tls\nrcpt_to.in_host_list\nqueue/file\n",
    )
    .unwrap();
    let server = Server::start(dir.path(), port);

    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut plain = BufReader::new(tcp.try_clone().unwrap());
    let mut w = tcp.try_clone().unwrap();
    reply(&mut plain);
    w.write_all(b"EHLO attacker.example\r\n").unwrap();
    assert_eq!(
        reply(&mut plain).last().map(String::as_str),
        Some("250 STARTTLS")
    );
    // The injection: commands in the same packet as STARTTLS.
    w.write_all(
        b"STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@quickstart.test>\r\n",
    )
    .unwrap();
    assert_eq!(reply(&mut plain), ["220 Go ahead."]);
    assert!(
        plain.buffer().is_empty(),
        "nothing else was answered in plaintext"
    );

    // A client config that accepts the example's self-signed certificate.
    let cfg = haraka_config::ConfigDir::open(dir.path()).unwrap();
    let client_cfg = haraka_tls::outbound_client_config(&cfg).unwrap();
    let name = rustls::pki_types::ServerName::try_from("mail.example.com").unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(&client_cfg), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Inside TLS the injected MAIL was never seen: the session starts from scratch.
    tls.write_all(b"MAIL FROM:<a@b.example>\r\n").unwrap();
    let mut tls_r = BufReader::new(tls);
    assert_eq!(reply(&mut tls_r), ["503 Use EHLO/HELO before MAIL"]);
    tls_r
        .get_mut()
        .write_all(b"EHLO client.example\r\n")
        .unwrap();
    let ehlo = reply(&mut tls_r);
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    tls_r
        .get_mut()
        .write_all(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<victim@quickstart.test>\r\nDATA\r\n")
        .unwrap();
    assert_eq!(reply(&mut tls_r), ["250 sender <a@b.example> OK"]);
    assert_eq!(
        reply(&mut tls_r),
        ["250 recipient <victim@quickstart.test> OK"]
    );
    assert_eq!(reply(&mut tls_r), ["354 go ahead, make my day"]);
    tls_r
        .get_mut()
        .write_all(b"Subject: over tls\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        .unwrap();
    let queued = reply(&mut tls_r).pop().unwrap();
    assert!(queued.starts_with("250 Message Queued"), "{queued}");
    assert!(reply(&mut tls_r)[0].starts_with("221 "));
    let mut rest = Vec::new();
    let _ = tls_r.read_to_end(&mut rest);

    let tuuid = queued
        .trim_start_matches("250 Message Queued (")
        .trim_end_matches(')');
    let stored =
        std::fs::read_to_string(dir.path().join("queue-file").join(format!("{tuuid}.eml")))
            .unwrap();
    assert!(stored.contains("with ESMTPS id"), "{stored}");
    // Haraka's form: the IANA name of the suite.
    assert!(
        stored.contains("\ttls TLS_AES_") || stored.contains("\ttls TLS_CHACHA20_"),
        "{stored}"
    );
    assert!(!stored.contains("evil@attacker.example"), "{stored}");
    server.stop();
}
