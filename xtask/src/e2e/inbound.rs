//! e2e checks: haraka-rs as the example haraka-in, in front of the Postfix
//! backend.
//!
//! Every check runs twice: on a copy of the example's flat-layout folder
//! (`config-examples/haraka-in`) and on the same setup in Haraka's own layout
//! (`config-examples/haraka-in-real`), each copy with only its addresses, ports
//! and paths rewritten (see `roots.rs`). The backend authorises 127.0.0.1 (the
//! address haraka-rs connects from) for XCLIENT, so it logs and stamps the
//! original client instead of the proxy.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};

use super::proc::{read_lossy, wait_until};
use super::swaks::ID_HEADER;
use super::{Cert, Check, Env, HarakaRs, RawSmtp, Reply, Swaks, net};

/// How long a forwarded message may take to reach the backend's Maildir.
const DELIVERY: Duration = Duration::from_secs(20);
/// "Quickly": the longest a client may wait for the 4xx when the backend is down.
const QUICK_TEMPFAIL: Duration = Duration::from_secs(10);
/// How long a replaced certificate may take to be served (the tls plugin
/// looks at its files at most once per second).
const CERT_RELOAD: Duration = Duration::from_secs(5);
/// The certificate file both example roots name in their tls.ini.
const PEM: &str = "tls/mail.example.com.pem";

/// The two copies of haraka-in every check runs on.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// The example's flat-layout folder (`config` file, `plugins/*.ini`).
    Flat,
    /// Haraka's own layout (`config/…`).
    Real,
}

impl Layout {
    fn example(self) -> &'static str {
        match self {
            Layout::Flat => "haraka-in",
            Layout::Real => "haraka-in-real",
        }
    }
}

/// The same checks for both layouts.
macro_rules! both_layouts {
    ($($what:literal => $check:ident),* $(,)?) => {
        /// The inbound checks, in the order they run.
        pub const CHECKS: &[Check] = &[
            $((concat!("haraka-in: ", $what), |env| $check(env, Layout::Flat)),)*
            $((concat!("haraka-in-real: ", $what), |env| $check(env, Layout::Real)),)*
        ];
    };
}

both_layouts! {
    "local mail reaches the backend with the client's IP and HELO" => forwards_client_identity,
    "a non-local recipient gets Haraka's 550" => refuses_foreign_rcpt,
    "STARTTLS with the combined PEM; a replaced file is served without a restart" => starttls_and_renewal,
    "backend down: a quick 4xx, nothing lost; backend back: the retry is delivered" => backend_down,
    "XCLIENT from an unauthorised address is refused" => xclient_unauthorised,
}

fn ip(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

/// Copy the layout's example root as `<example>-<tag>` and start haraka-rs on it.
fn start(env: &Env, layout: Layout, tag: &str) -> anyhow::Result<(PathBuf, HarakaRs)> {
    let name = format!("{}-{tag}", layout.example());
    let root = env.root(layout.example(), &name, &[])?;
    let haraka = env.haraka(&root, net::HARAKA_IN.into())?;
    Ok((root, haraka))
}

/// Run `body`; a failure gets the end of haraka-rs's log appended.
fn with_log<T>(haraka: &HarakaRs, body: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    body().map_err(|e| anyhow!("{e:#}\n--- haraka-rs log ends:\n{}", haraka.log_tail()))
}

/// A swaks session to haraka-in from `client`.
fn to_haraka(client: Ipv4Addr, rcpt: &str) -> Swaks {
    Swaks::new(net::HARAKA_IN.into(), rcpt).source_ip(ip(client))
}

/// The backend's own `Received:` header (the topmost one).
fn backend_received(msg: &super::Message) -> anyhow::Result<String> {
    msg.header("Received")
        .with_context(|| format!("no Received header in\n{}", msg.raw))
}

/// The backend's `header_checks` INFO line for the message tagged `id`
/// (it names the client and the HELO the backend recorded), and its
/// `client=` line (found through the queue id at the start of the first).
fn backend_lines(env: &Env, mark: usize, id: &str) -> anyhow::Result<(String, String)> {
    let info = env
        .backend
        .wait_log(mark, &format!("header {ID_HEADER}: {id} from "), DELIVERY)?;
    let queue_id = info
        .split(": info: header")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .with_context(|| format!("no queue id in {info:?}"))?;
    let client = env
        .backend
        .wait_log(mark, &format!("{queue_id}: client="), DELIVERY)?;
    Ok((info, client))
}

/// (a) From several client addresses: the backend's Received header and log
/// name the original client address and HELO, never the proxy's.
fn forwards_client_identity(env: &Env, layout: Layout) -> anyhow::Result<()> {
    let (_root, haraka) = start(env, layout, "forward")?;
    with_log(&haraka, || {
        for (i, client) in net::CLIENTS.into_iter().enumerate() {
            let helo = format!("client-{i}.origin.test");
            let id = env.unique("in-forward");
            let mark = env.backend.log_mark();
            let tr = to_haraka(client, &format!("user{i}@{}", net::LOCAL_DOMAIN))
                .ehlo(&helo)
                .id(&id)
                .run()?;
            tr.expect(".", "250")?;
            tr.expect_success()?;
            let msg = env
                .backend
                .wait_for_id(&id, DELIVERY)
                .with_context(|| tr.excerpt())?;
            let received = backend_received(&msg)?;
            ensure!(
                received.starts_with(&format!("from {helo} (")),
                "the backend's Received header lost the client's HELO {helo}: {received}"
            );
            ensure!(
                received.contains(&format!("[{client}])")) && !received.contains("[127.0.0.1]"),
                "the backend's Received header names the proxy, not {client}: {received}"
            );
            let (info, client_line) = backend_lines(env, mark, &id)?;
            ensure!(
                info.contains(&format!("[{client}];")) && info.contains(&format!("helo=<{helo}>")),
                "the backend logged another client or HELO than {client} / {helo}:\n{info}"
            );
            ensure!(
                client_line.contains(&format!("[{client}]")),
                "the backend logged another client than {client}:\n{client_line}"
            );
            if i == 0 {
                println!("     backend log: {client_line}");
                println!("     backend log: {info}");
            }
        }
        Ok(())
    })
}

/// (b) A recipient outside host_list gets Haraka's own 550 at RCPT, and
/// nothing reaches the backend.
fn refuses_foreign_rcpt(env: &Env, layout: Layout) -> anyhow::Result<()> {
    let (_root, haraka) = start(env, layout, "foreign")?;
    with_log(&haraka, || {
        let rcpt = "someone@elsewhere.test";
        let id = env.unique("in-foreign");
        let tr = to_haraka(net::CLIENTS[1], rcpt).id(&id).run()?;
        let reply = tr.expect("RCPT TO", "550")?;
        let want = format!("550 I cannot deliver mail for <{rcpt}>");
        ensure!(
            reply == want,
            "expected Haraka's {want:?}, got {reply:?}\n{}",
            tr.excerpt()
        );
        ensure!(
            tr.reply_to(".").is_none(),
            "the message was sent anyway\n{}",
            tr.excerpt()
        );
        // A local message after it: once that is delivered, the refused one
        // would have been too.
        let later = env.unique("in-foreign-after");
        to_haraka(net::CLIENTS[1], &format!("local@{}", net::LOCAL_DOMAIN))
            .id(&later)
            .run()?
            .expect(".", "250")?;
        env.backend.wait_for_id(&later, DELIVERY)?;
        let leaked = env.backend.count(|m| m.has_id(&id))?;
        ensure!(leaked == 0, "the refused message reached the backend");
        Ok(())
    })
}

/// One STARTTLS session from `client` that stops after the handshake;
/// returns the certificate served.
fn served_cert(client: Ipv4Addr, save: &Path) -> anyhow::Result<String> {
    let tr = to_haraka(client, &format!("tls@{}", net::LOCAL_DOMAIN))
        .starttls()
        .save_peer_cert(save)
        .quit_after("TLS")
        .run()?;
    ensure!(tr.tls_started(), "no TLS session\n{}", tr.excerpt());
    match tr.peer_cert {
        Some(pem) => Ok(pem),
        None => bail!("swaks saved no peer certificate\n{}", tr.excerpt()),
    }
}

/// Poll with STARTTLS sessions until `cert` is served (the tls plugin looks
/// at its files at most once per second, so the first session after the
/// change may still get the old one).
fn wait_for_cert(cert: &Cert, peer: &Path, how: &str) -> anyhow::Result<()> {
    let since = Instant::now();
    let mut sessions = 0;
    let mut last = String::new();
    wait_until(
        &format!("haraka-rs to serve the {how} {PEM}"),
        CERT_RELOAD,
        || {
            last = served_cert(net::CLIENTS[sessions % 3], peer)?;
            sessions += 1;
            Ok(cert.is(&last).then_some(()))
        },
    )
    .with_context(|| {
        format!("after {sessions} STARTTLS session(s) the certificate served was still\n{last}")
    })?;
    println!(
        "     {PEM} {how}: served {:.1}s later, in STARTTLS session {sessions}",
        since.elapsed().as_secs_f64()
    );
    Ok(())
}

/// (c) STARTTLS serves the combined PEM's certificate and the message goes
/// through; after the file is replaced (in place, or by a rename), new
/// sessions get the new certificate without a restart.
fn starttls_and_renewal(env: &Env, layout: Layout) -> anyhow::Result<()> {
    let (root, haraka) = start(env, layout, "tls")?;
    let pem = root.join(PEM);
    let peer = root.with_file_name(format!("{}-tls-peer.pem", layout.example()));
    with_log(&haraka, || {
        let original = read_lossy(&pem)?;
        ensure!(
            original.contains("PRIVATE KEY-----") && original.contains("BEGIN CERTIFICATE"),
            "{} is not a combined key + certificate PEM",
            pem.display()
        );
        let id = env.unique("in-tls");
        let tr = to_haraka(net::CLIENTS[2], &format!("tls@{}", net::LOCAL_DOMAIN))
            .starttls()
            .save_peer_cert(&peer)
            .id(&id)
            .run()?;
        tr.expect("STARTTLS", "220")?;
        tr.expect(".", "250")?;
        ensure!(tr.tls_started(), "no TLS session\n{}", tr.excerpt());
        let served = tr.peer_cert.as_deref().unwrap_or_default();
        ensure!(
            super::tls::same_cert(&original, served),
            "haraka-rs served another certificate than {}:\n{served}",
            pem.display()
        );
        let msg = env.backend.wait_for_id(&id, DELIVERY)?;
        let stamped = msg
            .header_all("Received")
            .into_iter()
            .any(|r| r.contains("ESMTPS"));
        ensure!(
            stamped,
            "no Received header records the TLS session:\n{}",
            msg.raw
        );

        // Renewed as acme.sh does it (`cat key cer > pem`, in place), then
        // as a deploy hook that renames a new file over it.
        for (how, in_place) in [("overwritten in place", true), ("renamed over", false)] {
            let renewed = Cert::self_signed(&["mail.example.com"])?;
            if in_place {
                renewed.overwrite_combined(&pem)?;
            } else {
                renewed.write_combined(&pem)?;
            }
            wait_for_cert(&renewed, &peer, how)?;
        }
        // Mail over TLS keeps flowing with the new certificate.
        let id = env.unique("in-tls-renewed");
        let tr = to_haraka(net::CLIENTS[0], &format!("tls@{}", net::LOCAL_DOMAIN))
            .starttls()
            .id(&id)
            .run()?;
        tr.expect(".", "250")?;
        env.backend.wait_for_id(&id, DELIVERY)?;
        Ok(())
    })
}

/// (d) With the backend stopped the client gets a 4xx at once, so the
/// message stays with the sender; once the backend is back the sender's
/// retry is delivered, exactly once.
fn backend_down(env: &Env, layout: Layout) -> anyhow::Result<()> {
    let (_root, haraka) = start(env, layout, "down")?;
    with_log(&haraka, || {
        let id = env.unique("in-down");
        let rcpt = format!("retry@{}", net::LOCAL_DOMAIN);
        let send = || {
            to_haraka(net::CLIENTS[1], &rcpt)
                .ehlo("retrying.origin.test")
                .id(&id)
                .run()
        };
        env.backend.stop()?;
        let tr = send()?;
        let reply = tr.expect(".", "4")?;
        ensure!(
            tr.elapsed < QUICK_TEMPFAIL,
            "the 4xx ({reply}) took {:?}\n{}",
            tr.elapsed,
            tr.excerpt()
        );
        println!(
            "     backend down: {reply:?} after {:.1}s",
            tr.elapsed.as_secs_f64()
        );
        env.backend.start()?;
        let tr = send()?;
        tr.expect(".", "250")?;
        let msg = env.backend.wait_for_id(&id, DELIVERY)?;
        let received = backend_received(&msg)?;
        ensure!(
            received.contains(&format!("[{}])", net::CLIENTS[1])),
            "the retry lost the client's address: {received}"
        );
        // A barrier: once a later message is in, a duplicate would be too.
        let later = env.unique("in-down-after");
        to_haraka(net::CLIENTS[2], &rcpt)
            .id(&later)
            .run()?
            .expect(".", "250")?;
        env.backend.wait_for_id(&later, DELIVERY)?;
        let copies = env.backend.count(|m| m.has_id(&id))?;
        ensure!(copies == 1, "the retried message arrived {copies} times");
        Ok(())
    })
}

/// Send one message on an open session: MAIL, RCPT, DATA with `X-E2E-Id: id`.
fn raw_message(c: &mut RawSmtp, rcpt: &str, id: &str) -> anyhow::Result<Reply> {
    for (cmd, code) in [
        ("MAIL FROM:<sender@sender.test>".to_owned(), 250),
        (format!("RCPT TO:<{rcpt}>"), 250),
        ("DATA".to_owned(), 354),
    ] {
        let r = c.cmd(&cmd)?;
        if r.code != code {
            bail!("{cmd} answered {}\n{}", r.text(), c.transcript());
        }
    }
    c.send(
        format!(
            "{ID_HEADER}: {id}\r\nSubject: xclient\r\nFrom: <sender@sender.test>\r\n\r\nbody\r\n.\r\n"
        )
        .as_bytes(),
    )?;
    c.read_reply()
}

/// (e) XCLIENT from a client not in xclient.hosts is not offered and is
/// refused with Haraka's `550 5.5.0 Not authorized`; the session goes on as
/// the real client, and the backend sees the real client. The same command
/// from 127.0.0.1 (always trusted) is honoured.
fn xclient_unauthorised(env: &Env, layout: Layout) -> anyhow::Result<()> {
    let (_root, haraka) = start(env, layout, "xclient")?;
    let rcpt = format!("xclient@{}", net::LOCAL_DOMAIN);
    let spoofed = net::CLIENTS[2];
    let xclient = format!("XCLIENT ADDR={spoofed} NAME=[UNAVAILABLE] HELO=spoofed.test");
    with_log(&haraka, || {
        let (mut c, greeting) = RawSmtp::connect(net::STRANGER, net::HARAKA_IN)?;
        ensure!(greeting.code == 220, "greeting {greeting:?}");
        let ehlo = c.cmd("EHLO stranger.origin.test")?;
        ensure!(
            ehlo.code == 250 && !ehlo.text().contains("XCLIENT"),
            "XCLIENT offered to a stranger:\n{}",
            c.transcript()
        );
        let x = c.cmd(&xclient)?;
        ensure!(
            x.text() == "550 5.5.0 Not authorized",
            "XCLIENT from {} was not refused with Haraka's 550:\n{}",
            net::STRANGER,
            c.transcript()
        );
        let id = env.unique("in-xclient-refused");
        let done = raw_message(&mut c, &rcpt, &id)?;
        ensure!(done.code == 250, "message refused:\n{}", c.transcript());
        let _ = c.cmd("QUIT");
        let received = backend_received(&env.backend.wait_for_id(&id, DELIVERY)?)?;
        ensure!(
            received.contains(&format!("[{}])", net::STRANGER))
                && received.starts_with("from stranger.origin.test (")
                && !received.contains(&spoofed.to_string()),
            "after a refused XCLIENT the backend saw another client than {}: {received}",
            net::STRANGER
        );

        // The control: the same command from 127.0.0.1 is honoured.
        let (mut c, _) = RawSmtp::connect(Ipv4Addr::LOCALHOST, net::HARAKA_IN)?;
        let ehlo = c.cmd("EHLO trusted.test")?;
        ensure!(
            ehlo.text().contains("XCLIENT"),
            "XCLIENT not offered to 127.0.0.1:\n{}",
            c.transcript()
        );
        let x = c.cmd(&xclient)?;
        ensure!(
            x.code == 220,
            "XCLIENT from 127.0.0.1 refused:\n{}",
            c.transcript()
        );
        let id = env.unique("in-xclient-trusted");
        let done = raw_message(&mut c, &rcpt, &id)?;
        ensure!(done.code == 250, "message refused:\n{}", c.transcript());
        let _ = c.cmd("QUIT");
        let received = backend_received(&env.backend.wait_for_id(&id, DELIVERY)?)?;
        ensure!(
            received.contains(&format!("[{spoofed}])"))
                && received.starts_with("from spoofed.test ("),
            "the backend did not see the XCLIENT identity {spoofed} / spoofed.test: {received}"
        );
        Ok(())
    })
}
