//! Checks of the test infrastructure itself, against the real peers: if
//! these pass, a failing haraka-rs check is haraka-rs's fault.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use super::proc::{Daemon, port_open, wait_port_closed};
use super::raw::RawSmtp;
use super::{Check, Env, Swaks, Verdict, copy_root, net, roots};

/// How long a delivery may take.
const DELIVERY: Duration = Duration::from_secs(20);

/// The self-checks, in order.
pub const CHECKS: &[Check] = &[
    ("infra: dns serves the test zone only", dns_serves_test_zone),
    (
        "infra: postfix backend delivers from swaks",
        backend_delivers,
    ),
    (
        "infra: postfix backend honours XCLIENT from the proxy address",
        backend_honours_xclient,
    ),
    (
        "infra: postfix backend takes XCLIENT pipelined with the EHLO after it",
        backend_takes_pipelined_xclient,
    ),
    (
        "infra: postfix backend refuses a second XCLIENT on one connection",
        backend_refuses_second_xclient,
    ),
    (
        "infra: postfix backend refuses XCLIENT from a stranger",
        backend_refuses_xclient,
    ),
    (
        "infra: postfix backend stops, refuses, restarts, delivers",
        backend_restarts,
    ),
    (
        "infra: postfix backend defers on demand, then accepts",
        backend_defers_on_demand,
    ),
    (
        "infra: postfix mx offers STARTTLS with its certificate",
        mx_starttls,
    ),
    (
        "infra: sink answers 4xx, 5xx, then 2xx on demand",
        sink_scripts,
    ),
    (
        "infra: daemon control starts, kills and SIGTERMs a server",
        daemon_control,
    ),
    (
        "infra: example roots are rewritten to loopback",
        roots_rewritten,
    ),
];

fn ip(a: std::net::Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

fn dns_serves_test_zone(env: &Env) -> anyhow::Result<()> {
    let mx = env.dns.dig("mx-ok.test", "MX")?;
    ensure!(mx.status == "NOERROR", "mx-ok.test MX: {mx:?}");
    ensure!(mx.data() == ["10 mx.mx-ok.test."], "mx-ok.test MX: {mx:?}");
    let a = env.dns.dig("mx.mx-ok.test", "A")?;
    ensure!(
        a.data() == [net::MX.ip().to_string()],
        "mx.mx-ok.test A: {a:?}"
    );
    let null = env.dns.dig("null-mx.test", "MX")?;
    ensure!(null.data() == ["0 ."], "null-mx.test MX: {null:?}");
    let implicit = env.dns.dig("a-only.test", "MX")?;
    ensure!(
        implicit.status == "NOERROR" && implicit.records.is_empty(),
        "a-only.test must have no MX: {implicit:?}"
    );
    let down = env.dns.dig("mx.mx-down.test", "A")?;
    ensure!(
        down.data() == [net::DOWN.to_string()],
        "mx.mx-down.test A: {down:?}"
    );
    let missing = env.dns.dig("nosuch.test", "MX")?;
    ensure!(missing.status == "NXDOMAIN", "nosuch.test: {missing:?}");
    // Anything outside the zone is refused at once: nothing is forwarded.
    let t = Instant::now();
    let outside = env.dns.dig("example.org", "MX")?;
    ensure!(outside.status == "REFUSED", "example.org: {outside:?}");
    ensure!(
        t.elapsed() < Duration::from_secs(2),
        "REFUSED took {:?}",
        t.elapsed()
    );
    Ok(())
}

fn backend_delivers(env: &Env) -> anyhow::Result<()> {
    let id = env.unique("plain");
    let client = net::CLIENTS[0];
    let mark = env.backend.log_mark();
    let tr = Swaks::new(net::BACKEND.into(), "bob@example.com")
        .source_ip(ip(client))
        .ehlo("plain-client.test")
        .id(&id)
        .run()?;
    tr.expect_success()?;
    tr.expect(".", "250")?;
    let msg = env.backend.wait_for_id(&id, DELIVERY)?;
    let received = msg.header("Received").context("no Received header")?;
    ensure!(
        received.contains(&format!("[{client}]")) && received.contains("plain-client.test"),
        "Received does not name the client: {received}"
    );
    let queue_id = tr.queued_as().context("no queue id")?;
    env.backend.wait_log(
        mark,
        &format!("{queue_id}: client=unknown[{client}]"),
        DELIVERY,
    )?;
    Ok(())
}

fn backend_honours_xclient(env: &Env) -> anyhow::Result<()> {
    let id = env.unique("xclient");
    let proxy = net::XCLIENT_HOSTS[1];
    let original = net::CLIENTS[1];
    let mark = env.backend.log_mark();
    let tr = Swaks::new(net::BACKEND.into(), "carol@example.com")
        .source_ip(ip(proxy))
        .ehlo("original-helo.test")
        .xclient(ip(original), Some("original-helo.test"), true)
        .id(&id)
        .run()?;
    tr.expect_success()?;
    tr.expect("XCLIENT", "220")?;
    let msg = env.backend.wait_for_id(&id, DELIVERY)?;
    let received = msg.header("Received").context("no Received header")?;
    ensure!(
        received.contains(&format!("[{original}]")) && !received.contains(&format!("[{proxy}]")),
        "Received must show the XCLIENT address {original}, not {proxy}: {received}"
    );
    ensure!(
        received.contains("original-helo.test"),
        "Received lost the HELO: {received}"
    );
    let queue_id = tr.queued_as().context("no queue id")?;
    env.backend.wait_log(
        mark,
        &format!("{queue_id}: client=unknown[{original}]"),
        DELIVERY,
    )?;
    Ok(())
}

/// What smtp_forward sends when the backend offers PIPELINING: EHLO, then
/// XCLIENT and the EHLO that must follow it in one write, then MAIL, RCPT and
/// DATA in one write, then the message with QUIT after the final dot.
fn backend_takes_pipelined_xclient(env: &Env) -> anyhow::Result<()> {
    let proxy = net::XCLIENT_HOSTS[1];
    let client = net::CLIENTS[2];
    let mark = env.backend.log_mark();
    let (mut c, greeting) = RawSmtp::connect(proxy, net::BACKEND)?;
    ensure!(greeting.code == 220, "greeting {greeting:?}");
    let ehlo = c.cmd("EHLO proxy.test")?;
    ensure!(
        ehlo.text().contains("PIPELINING"),
        "no PIPELINING:\n{}",
        c.transcript()
    );
    c.send(
        format!("XCLIENT ADDR={client} NAME=[UNAVAILABLE] HELO=early.test\r\nEHLO early.test\r\n")
            .as_bytes(),
    )?;
    let x = c.read_reply()?;
    ensure!(x.code == 220, "pipelined XCLIENT:\n{}", c.transcript());
    let e = c.read_reply()?;
    ensure!(e.code == 250, "pipelined EHLO:\n{}", c.transcript());
    let id = env.unique("early-xclient");
    c.send(b"MAIL FROM:<s@sender.test>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n")?;
    for what in ["MAIL", "RCPT", "DATA"] {
        let r = c.read_reply()?;
        ensure!(
            r.code == 250 || r.code == 354,
            "{what}:\n{}",
            c.transcript()
        );
    }
    c.send(
        format!(
            "{}: {id}\r\nSubject: early\r\n\r\nbody\r\n.\r\nQUIT\r\n",
            super::swaks::ID_HEADER
        )
        .as_bytes(),
    )?;
    let done = c.read_reply()?;
    ensure!(done.code == 250, "end of DATA:\n{}", c.transcript());
    let msg = env.backend.wait_for_id(&id, DELIVERY)?;
    let received = msg.header("Received").context("no Received header")?;
    ensure!(
        received.contains(&format!("[{client}]")) && received.contains("early.test"),
        "not attributed to {client}: {received}"
    );
    let qid = done
        .text()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    env.backend
        .wait_log(mark, &format!("{qid}: client=unknown[{client}]"), DELIVERY)?;
    Ok(())
}

/// Why smtp_forward never reuses a backend connection that carried XCLIENT:
/// Postfix checks `smtpd_authorized_xclient_hosts` against the client that
/// XCLIENT installed, so a second XCLIENT on the same connection is refused
/// (a client that carried on after that refusal, as Haraka 3.0.0's
/// smtp_client does, would hand the next message in under the previous
/// client's address).
fn backend_refuses_second_xclient(_env: &Env) -> anyhow::Result<()> {
    let proxy = net::XCLIENT_HOSTS[1];
    let (mut c, greeting) = RawSmtp::connect(proxy, net::BACKEND)?;
    ensure!(greeting.code == 220, "greeting {greeting:?}");
    c.cmd("EHLO proxy.test")?;
    let first = c.cmd(&format!(
        "XCLIENT ADDR={} NAME=[UNAVAILABLE]",
        net::CLIENTS[0]
    ))?;
    ensure!(first.code == 220, "first XCLIENT:\n{}", c.transcript());
    c.cmd("EHLO client-0.test")?;
    let second = c.cmd(&format!(
        "XCLIENT ADDR={} NAME=[UNAVAILABLE]",
        net::CLIENTS[1]
    ))?;
    ensure!(
        second.code >= 500,
        "a second XCLIENT was accepted; smtp_forward could reuse connections:\n{}",
        c.transcript()
    );
    c.cmd("QUIT")?;
    Ok(())
}

fn backend_refuses_xclient(_env: &Env) -> anyhow::Result<()> {
    // swaks sends XCLIENT only when it is offered, so speak SMTP by hand.
    let (mut c, greeting) = RawSmtp::connect(net::STRANGER, net::BACKEND)?;
    ensure!(greeting.code == 220, "greeting {greeting:?}");
    let ehlo = c.cmd("EHLO stranger.test")?;
    ensure!(
        ehlo.code == 250 && !ehlo.text().contains("XCLIENT"),
        "XCLIENT offered to a stranger:\n{}",
        c.transcript()
    );
    let x = c.cmd(&format!(
        "XCLIENT ADDR={} NAME=[UNAVAILABLE]",
        net::CLIENTS[2]
    ))?;
    ensure!(
        x.code >= 500,
        "XCLIENT from a stranger answered:\n{}",
        c.transcript()
    );
    c.cmd("QUIT")?;
    Ok(())
}

fn backend_restarts(env: &Env) -> anyhow::Result<()> {
    env.backend.stop()?;
    let tr = Swaks::new(net::BACKEND.into(), "erin@example.com")
        .source_ip(ip(net::CLIENTS[0]))
        .timeout(Duration::from_secs(5))
        .run()?;
    ensure!(
        tr.status != Some(0),
        "delivered to a stopped backend\n{}",
        tr.excerpt()
    );
    ensure!(
        tr.code_of("CONNECT").is_none(),
        "a stopped backend greeted\n{}",
        tr.excerpt()
    );
    env.backend.start()?;
    let id = env.unique("restart");
    let tr = Swaks::new(net::BACKEND.into(), "erin@example.com")
        .source_ip(ip(net::CLIENTS[0]))
        .id(&id)
        .run()?;
    tr.expect_success()?;
    env.backend.wait_for_id(&id, DELIVERY)?;
    Ok(())
}

fn backend_defers_on_demand(env: &Env) -> anyhow::Result<()> {
    let send = |id: &str| {
        Swaks::new(net::BACKEND.into(), "grace@example.com")
            .source_ip(ip(net::CLIENTS[1]))
            .id(id)
            .run()
    };
    env.backend
        .set(&[("smtpd_recipient_restrictions", "defer")])?;
    let result = send("deferred").and_then(|tr| tr.expect("RCPT TO", "450"));
    env.backend
        .set(&[("smtpd_recipient_restrictions", "permit")])?;
    result?;
    env.backend.flush()?;
    let id = env.unique("after-defer");
    send(&id)?.expect(".", "250")?;
    env.backend.wait_for_id(&id, DELIVERY)?;
    Ok(())
}

fn mx_starttls(env: &Env) -> anyhow::Result<()> {
    let id = env.unique("tls");
    let cert_file = env.dir.join("mx-peer.pem");
    let tr = Swaks::new(net::MX.into(), "frank@mx-ok.test")
        .source_ip(ip(net::CLIENTS[0]))
        .starttls()
        .save_peer_cert(&cert_file)
        .id(&id)
        .run()?;
    tr.expect_success()?;
    ensure!(tr.tls_started(), "no TLS\n{}", tr.excerpt());
    let served = tr
        .peer_cert
        .as_deref()
        .context("swaks saved no peer certificate")?;
    ensure!(
        env.mx_cert.is(served),
        "the MX served another certificate:\n{served}"
    );
    let msg = env.mx.wait_for_id(&id, DELIVERY)?;
    let received = msg.header("Received").context("no Received header")?;
    ensure!(
        received.contains("using TLS"),
        "Received does not record TLS: {received}"
    );
    Ok(())
}

fn sink_scripts(env: &Env) -> anyhow::Result<()> {
    let sink = &env.sink;
    sink.clear();
    sink.set_default(Verdict::TempFail);
    sink.add_rule("never", Verdict::Reject);
    let send = |rcpt: &str, id: &str| {
        Swaks::new(sink.addr(), rcpt)
            .source_ip(ip(net::CLIENTS[2]))
            .id(id)
            .run()
    };
    let tr = send("later@scripted.test", "s1")?;
    tr.expect("RCPT TO", "451")?;
    let tr = send("never@scripted.test", "s2")?;
    tr.expect("RCPT TO", "550")?;
    sink.reset();
    let id = env.unique("sink");
    let tr = send("later@scripted.test", &id)?;
    tr.expect_success()?;
    let s = sink.wait_for_message(&id, DELIVERY)?;
    ensure!(
        s.peer.map(|p| p.ip()) == Some(ip(net::CLIENTS[2])),
        "sink saw peer {:?}",
        s.peer
    );
    ensure!(s.helo == "e2e-client.test", "sink saw HELO {:?}", s.helo);
    let attempts = sink
        .sessions()
        .iter()
        .filter(|s| s.rcpts.iter().any(|(r, _)| r == "later@scripted.test"))
        .count();
    ensure!(
        attempts == 2,
        "expected 2 sessions for later@, saw {attempts}"
    );
    sink.clear();
    Ok(())
}

/// The generic process control that `HarakaRs` is built on, exercised with
/// Postfix's `smtp-sink` as a stand-in server.
fn daemon_control(env: &Env) -> anyhow::Result<()> {
    let addr = SocketAddr::from((net::STRANGER, 2599));
    let dump = env.dir.join("smtp-sink");
    std::fs::create_dir_all(&dump)?;
    // smtp-sink writes its dumps as nobody.
    super::install::set_mode(&dump, 0o1777)?;
    let args: Vec<String> = [
        "-u",
        "nobody",
        "-d",
        &format!("{}/%H%M%S.", dump.display()),
        &addr.to_string(),
        "10",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut d = Daemon::new(
        "smtp-sink",
        Path::new("smtp-sink"),
        &args,
        &env.dir.join("smtp-sink.log"),
    );
    d.start_and_wait(addr, Duration::from_secs(10))?;
    let first = d.pid();
    d.kill9()?;
    wait_port_closed(addr, Duration::from_secs(10))?;
    ensure!(!d.is_running(), "still running after kill -9");
    d.start_and_wait(addr, Duration::from_secs(10))?;
    ensure!(d.pid() != first, "restart kept the old pid");
    let tr = Swaks::new(addr, "x@y.test")
        .source_ip(ip(net::CLIENTS[0]))
        .run()?;
    tr.expect(".", "250")?;
    d.stop(Duration::from_secs(10))?;
    ensure!(!port_open(addr), "{addr} still open after SIGTERM");
    // A server that dies at once is reported with its log, not a timeout.
    let mut bad = Daemon::new(
        "smtp-sink (bad args)",
        Path::new("smtp-sink"),
        &["--no-such-flag".to_owned()],
        &env.dir.join("smtp-sink-bad.log"),
    );
    let t = Instant::now();
    match bad.start_and_wait(addr, Duration::from_secs(10)) {
        Ok(()) => bail!("a failing server was reported as listening"),
        Err(e) if t.elapsed() < Duration::from_secs(5) && format!("{e:#}").contains("exited") => {
            Ok(())
        }
        Err(e) => bail!("a failing server was not reported promptly: {e:#}"),
    }
}

fn roots_rewritten(env: &Env) -> anyhow::Result<()> {
    for example in [
        "haraka-in",
        "haraka-in-real",
        "haraka-out",
        "haraka-out-real",
    ] {
        let root = env.root(example, &format!("rewrite-{example}"), &[])?;
        for (path, text) in read_tree(&root)? {
            for bad in ["10.0.0.", "/opt/haraka", ":25\n", "[::]", "0.0.0.0"] {
                ensure!(!text.contains(bad), "{} still has {bad:?}", path.display());
            }
        }
        let pem = root.join(if example.starts_with("haraka-in") {
            "tls/mail.example.com.pem"
        } else {
            "tls/mailrelay.example.com.pem"
        });
        ensure!(pem.is_file(), "{} missing", pem.display());
    }
    // A rule that matches nothing is an error, not a silent no-op.
    let dest = env.dir.join("roots").join("rewrite-bogus");
    let bogus = vec![("no such text".to_owned(), "x".to_owned())];
    ensure!(
        copy_root("haraka-in", &dest, &bogus).is_err(),
        "an unused rule was accepted"
    );
    ensure!(
        roots::rules_for("nope", &dest).is_none(),
        "rules for an unknown example"
    );
    Ok(())
}

fn read_tree(root: &Path) -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), super::proc::read_lossy(&p)?));
            }
        }
    }
    Ok(out)
}
