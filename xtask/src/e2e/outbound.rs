//! e2e checks: haraka-rs as haraka-out. A copy of the example
//! `config-examples/haraka-out` (listen address and relay ACL rewritten to
//! loopback) plus an `outbound.ini` that points the outbound engine at the
//! private unbound and allows MX hosts on 127.0.0.x. The backend address
//! relays; MX hosts come from DNS (see `records()` in mod.rs):
//! `scripted.test` is the scripted sink, `mx-ok.test` / `sender.test` the
//! Postfix MX with STARTTLS (where bounces to `sender@sender.test` land),
//! `a-only.test` has only an A record, `null-mx.test` a null MX, and
//! `backup-mx.test` a dead preferred MX with the sink as its backup.
//!
//! Each check starts its own haraka-rs on a fresh root (an empty queue) and
//! stops it at the end; the delivered message of the first check and each
//! bounce are saved in the run directory (`outbound-*.eml`, see `--keep`).
//! The checks where something fails live in `outbound/failures.rs`.

mod failures;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};

use super::proc::{tail, wait_until};
use super::swaks::ID_HEADER;
use super::{Check, Env, HarakaRs, Message, RawSmtp, Session, Swaks, Transcript, net};

use failures::{
    double_bounce_dropped, kill9_loses_nothing, mixed_recipients, null_mx_bounces,
    perm_failure_bounces, retries_exhausted, sighup_retries_now, temp_failure_retried,
};

/// The outbound checks, in the order they run.
pub const CHECKS: &[Check] = &[
    (
        "outbound: the backend relays to an external domain, delivered at its MX",
        backend_relays,
    ),
    (
        "outbound: another address cannot relay (550 at RCPT)",
        stranger_cannot_relay,
    ),
    (
        "outbound: a 4xx from the MX defers, the retry delivers",
        temp_failure_retried,
    ),
    (
        "outbound: a 5xx from the MX bounces to the sender's MX",
        perm_failure_bounces,
    ),
    (
        "outbound: a null MX bounces without a delivery attempt",
        null_mx_bounces,
    ),
    (
        "outbound: kill -9 with queued mail, restart: every message delivered",
        kill9_loses_nothing,
    ),
    ("outbound: STARTTLS to an MX that offers it", starttls_to_mx),
    (
        "outbound: a domain without MX is delivered to its address record",
        implicit_mx,
    ),
    (
        "outbound: the preferred MX refuses connections, the backup MX delivers",
        backup_mx,
    ),
    (
        "outbound: one message, recipients accepted, deferred and rejected",
        mixed_recipients,
    ),
    (
        "outbound: retries run out: the sender gets a bounce",
        retries_exhausted,
    ),
    (
        "outbound: recipients in two domains, one delivery to each MX",
        two_domains,
    ),
    (
        "outbound: the body arrives byte for byte (dots, 8-bit, 1 MB)",
        body_transparent,
    ),
    (
        "outbound: SIGHUP retries deferred mail at once",
        sighup_retries_now,
    ),
    (
        "outbound: a bounce that bounces is dropped, not looped",
        double_bounce_dropped,
    ),
];

/// How long a first delivery (or a bounce) may take.
const DELIVERY: Duration = Duration::from_secs(20);
/// How long a delivery after a deferral may take: the retry is due 5 s after
/// the failure (the shortest interval haraka-rs accepts), plus slack.
const RETRY: Duration = Duration::from_secs(40);
/// The retry schedule of the test roots.
const TEMP_FAIL_INTERVALS: &str = "5s*6";

/// The backend (a Mailcow suite in the example setup): the only address haraka-out relays for.
fn backend_ip() -> Ipv4Addr {
    *net::BACKEND.ip()
}

/// The `outbound.ini` every test root gets: the loopback DNS server (never the
/// system resolver), MX hosts on 127.0.0.x allowed, port 25 for MX hosts (the
/// sink and the Postfix MX listen there), short retries.
fn outbound_ini() -> String {
    format!(
        "; added by cargo xtask e2e: outbound towards the loopback test network\n\
         [main]\n\
         nameservers={dns}\n\
         local_mx_ok=true\n\
         smtp_port={port}\n\
         temp_fail_intervals={TEMP_FAIL_INTERVALS}\n\
         connect_timeout=10\n",
        dns = net::DNS,
        port = net::SINK.port(),
    )
}

/// A fresh haraka-out root named `name` with [`outbound_ini`], and haraka-rs
/// running on it. Fails if the engine reports a problem with `outbound.ini`
/// (an ignored `nameservers` would mean the system resolver).
fn start_out(env: &Env, name: &str) -> anyhow::Result<HarakaRs> {
    start_out_with(env, name, "")
}

/// [`start_out`] with `more` appended to `outbound.ini` (a repeated key wins).
fn start_out_with(env: &Env, name: &str, more: &str) -> anyhow::Result<HarakaRs> {
    ensure!(
        net::MX.port() == net::SINK.port(),
        "the sink and the MX must share the MX port"
    );
    let root = env.root("haraka-out", name, &[])?;
    let ini = root.join("outbound.ini");
    std::fs::write(&ini, outbound_ini() + more)
        .with_context(|| format!("writing {}", ini.display()))?;
    let haraka = env.haraka(&root, net::HARAKA_OUT.into())?;
    let log = haraka.log();
    // The engine's own warnings about the file (not the start-up note that
    // lists files read later, outbound.ini among them).
    for bad in [
        "unknown outbound.ini key",
        "nameservers: not",
        "smtp_port: not",
        "temp_fail_intervals syntax",
        "outbound TLS disabled",
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(bad)) {
            bail!(
                "haraka-rs complained at start-up: {line}\nlog ends:\n{}",
                haraka.log_tail()
            );
        }
    }
    Ok(haraka)
}

/// swaks from the backend's address to haraka-out.
fn from_backend(rcpt: &str, id: &str) -> Swaks {
    Swaks::new(net::HARAKA_OUT.into(), rcpt)
        .source_ip(IpAddr::V4(backend_ip()))
        .ehlo("backend.example.com")
        // --header replaces swaks's own Subject (--add-header would add a second).
        .opt("--header", "Subject: e2e outbound")
        .id(id)
}

/// Send and require `250 Message Queued`.
fn queue_one(haraka: &HarakaRs, rcpt: &str, id: &str) -> anyhow::Result<Transcript> {
    let tr = from_backend(rcpt, id).run()?;
    let reply = tr
        .expect(".", "250")
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    ensure!(
        reply.contains("Message Queued"),
        "the dot was not answered as Haraka's outbound queue does: {reply:?}\n{}",
        tr.excerpt()
    );
    Ok(tr)
}

/// The number of queued deliveries (`--qstat`).
fn queue_count(haraka: &HarakaRs) -> anyhow::Result<usize> {
    let out = haraka.cli(&["--qstat"])?;
    out.split("queue_count:")
        .nth(1)
        .and_then(|r| r.trim().trim_end_matches('}').trim().parse().ok())
        .with_context(|| format!("no queue_count in --qstat output {out:?}"))
}

/// A sink session's message, for its header helpers.
fn sink_message(s: &Session) -> Message {
    let raw = s
        .data
        .as_ref()
        .map(|(d, _)| d.replace("\r\n", "\n"))
        .unwrap_or_default();
    Message {
        path: PathBuf::from("(sink)"),
        raw,
    }
}

/// Keep a message in the run directory for the record.
fn save(env: &Env, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = env.dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `X-E2E-Id: id` followed by the end of the line, so `a-1` does not match `a-10`.
fn id_line(id: &str) -> String {
    format!("{ID_HEADER}: {id}\r\n")
}

/// (a) The backend's address relays to an external domain; the message
/// reaches the domain's MX (the sink, found in DNS) with Haraka's headers.
fn backend_relays(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-relay")?;
    let id = env.unique("relay");
    let rcpt = format!("{id}@scripted.test");
    let tr = queue_one(&haraka, &rcpt, &id)?;
    let session = env
        .sink
        .wait_for_message(&id_line(&id), DELIVERY)
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    let msg = sink_message(&session);
    save(env, "outbound-delivered.eml", &msg.raw)?;
    ensure!(
        session.mail_from == "sender@sender.test" && session.rcpts == [(rcpt.clone(), 250)],
        "the sink saw envelope {:?} -> {:?}",
        session.mail_from,
        session.rcpts
    );
    let received = msg.header_all("Received");
    ensure!(
        received.len() == 2,
        "expected Haraka's two Received headers, got {received:#?}\n{}",
        msg.raw
    );
    ensure!(
        received[0].starts_with("(Haraka outbound);"),
        "the first Received is not the outbound one: {:?}",
        received[0]
    );
    let tuuid = tr
        .reply_to(".")
        .and_then(|r| {
            r.rsplit_once('(')
                .map(|(_, t)| t.trim_end_matches(')').to_owned())
        })
        .context("no transaction id in the reply to the dot")?;
    let inbound = &received[1];
    for part in [
        "from backend.example.com (".to_owned(),
        format!("[{}])", backend_ip()),
        "(Haraka/3.0.0) with ESMTP id".to_owned(),
        tuuid.clone(),
        "envelope-from <sender@sender.test>".to_owned(),
    ] {
        ensure!(
            inbound.contains(&part),
            "the session's Received lacks {part:?}: {inbound:?}"
        );
    }
    // swaks writes Date and Message-Id itself, so Haraka adds none of its own.
    for h in ["Message-Id", "Date"] {
        let n = msg.header_all(h).len();
        ensure!(n == 1, "{n} {h} headers in\n{}", msg.raw);
    }
    ensure!(msg.has_id(&id), "the id header was lost:\n{}", msg.raw);
    // Delivered and gone from the queue.
    wait_until("the delivered message to leave the queue", DELIVERY, || {
        Ok((queue_count(&haraka)? == 0).then_some(()))
    })?;
    haraka.stop()
}

/// (b) Any other address gets Haraka's 550 at RCPT; the backend, on the same
/// server, is accepted. Nothing is queued.
fn stranger_cannot_relay(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-acl")?;
    let (mut c, greeting) = RawSmtp::connect(net::STRANGER, net::HARAKA_OUT)?;
    ensure!(greeting.code == 220, "greeting {greeting:?}");
    let steps = [
        ("EHLO stranger.test", 250, ""),
        ("MAIL FROM:<someone@sender.test>", 250, ""),
        (
            "RCPT TO:<victim@mx-ok.test>",
            550,
            "550 I cannot deliver mail for <victim@mx-ok.test>",
        ),
        ("DATA", 503, ""),
        ("QUIT", 221, ""),
    ];
    for (cmd, code, text) in steps {
        let r = c.cmd(cmd)?;
        ensure!(
            r.code == code && r.text().contains(text),
            "{cmd}: expected {code} {text:?}, got {:?}\n{}",
            r.text(),
            c.transcript()
        );
    }
    // The same recipient from the backend's address is accepted.
    let (mut b, _) = RawSmtp::connect(backend_ip(), net::HARAKA_OUT)?;
    for (cmd, code) in [
        ("EHLO backend.example.com", 250),
        ("MAIL FROM:<someone@sender.test>", 250),
        ("RCPT TO:<victim@mx-ok.test>", 250),
        ("QUIT", 221),
    ] {
        let r = b.cmd(cmd)?;
        ensure!(
            r.code == code,
            "backend: {cmd}: got {:?}\n{}",
            r.text(),
            b.transcript()
        );
    }
    let queued = queue_count(&haraka)?;
    ensure!(
        queued == 0,
        "{queued} deliveries queued after refused relaying"
    );
    haraka.stop()
}

/// (g) The Postfix MX offers STARTTLS: haraka-rs uses it, and the MX records
/// the TLS session in its log and its Received header.
fn starttls_to_mx(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-tls")?;
    let id = env.unique("tls");
    let rcpt = format!("{id}@mx-ok.test");
    let mx_mark = env.mx.log_mark();
    let mark = haraka.log_mark();
    queue_one(&haraka, &rcpt, &id)?;
    let msg = env
        .mx
        .wait_for_id(&id, DELIVERY)
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    save(env, "outbound-delivered-tls.eml", &msg.raw)?;
    let by_mx = msg.header("Received").context("no Received header")?;
    for part in ["using TLS", "by mx.mx-ok.test (Postfix) with ESMTPS"] {
        ensure!(
            by_mx.contains(part),
            "the MX's Received lacks {part:?}: {by_mx}"
        );
    }
    env.mx
        .wait_log(mx_mark, "TLS connection established from", DELIVERY)?;
    let line = haraka.wait_log(mark, "delivered", DELIVERY)?;
    ensure!(
        line.contains("tls=true") && line.contains("host=mx.mx-ok.test"),
        "haraka-rs logged the delivery as {line}"
    );
    let received = msg.header_all("Received");
    ensure!(
        received.iter().any(|r| r.starts_with("(Haraka outbound);")),
        "Haraka's outbound Received is missing: {received:#?}"
    );
    haraka.stop()
}

/// A domain with an A record and no MX (`a-only.test`, the Postfix MX's
/// address): the A record is the implicit MX (RFC 5321 5.1).
fn implicit_mx(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-implicit-mx")?;
    let id = env.unique("implicit");
    let rcpt = format!("{id}@a-only.test");
    let mark = haraka.log_mark();
    queue_one(&haraka, &rcpt, &id)?;
    let msg = env
        .mx
        .wait_for_id(&id, DELIVERY)
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    ensure!(
        msg.header("Delivered-To").as_deref() == Some(rcpt.as_str()),
        "delivered as\n{}",
        msg.raw
    );
    let line = haraka.wait_log(mark, "delivered", DELIVERY)?;
    ensure!(
        line.contains(&format!("host={}", net::MX.ip())),
        "haraka-rs logged the delivery as {line}"
    );
    haraka.stop()
}

/// `backup-mx.test`: MX 10 is an address where nothing listens, MX 20 the
/// sink. The refused connection moves on to the next MX at once.
fn backup_mx(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-backup-mx")?;
    let id = env.unique("backup");
    let rcpt = format!("{id}@backup-mx.test");
    let mark = haraka.log_mark();
    queue_one(&haraka, &rcpt, &id)?;
    let session = env
        .sink
        .wait_for_message(&id_line(&id), DELIVERY)
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    ensure!(
        session.rcpts == [(rcpt.clone(), 250)],
        "the backup MX saw {:?}",
        session.rcpts
    );
    let line = haraka.wait_log(mark, "delivered", DELIVERY)?;
    ensure!(
        line.contains("host=mx2.backup-mx.test"),
        "haraka-rs logged the delivery as {line}"
    );
    let log = haraka.log();
    let since = log.get(mark..).unwrap_or("");
    ensure!(
        since.contains("trying the next address"),
        "no sign of the refused first MX in the log:\n{}",
        tail(since, 20)
    );
    ensure!(
        !since.contains("deferred"),
        "the message was deferred before the backup MX was tried:\n{}",
        tail(since, 20)
    );
    haraka.stop()
}

/// One message to `mx-ok.test` (the Postfix MX) and `scripted.test` (the
/// sink): split per domain, each MX gets its own recipient only.
fn two_domains(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-two-domains")?;
    let id = env.unique("split");
    let to_mx = format!("{id}@mx-ok.test");
    let to_sink = format!("{id}@scripted.test");
    let tr = from_backend(&to_mx, &id)
        .opt("--to", &format!("{to_mx},{to_sink}"))
        .run()?;
    tr.expect(".", "250")?;
    let at_sink = env
        .sink
        .wait_for_message(&id_line(&id), DELIVERY)
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    ensure!(
        at_sink.rcpts == [(to_sink.clone(), 250)],
        "the sink was offered {:?}",
        at_sink.rcpts
    );
    let at_mx = env.mx.wait_for_id(&id, DELIVERY)?;
    ensure!(
        at_mx.header("Delivered-To").as_deref() == Some(to_mx.as_str()),
        "the MX delivered\n{}",
        at_mx.raw
    );
    let sink_copy = sink_message(&at_sink);
    ensure!(
        sink_copy.header("Message-Id") == at_mx.header("Message-Id"),
        "the two copies differ in Message-Id: {:?} / {:?}",
        sink_copy.header("Message-Id"),
        at_mx.header("Message-Id")
    );
    wait_until("the queue to empty", DELIVERY, || {
        Ok((queue_count(&haraka)? == 0).then_some(()))
    })?;
    haraka.stop()
}

/// `text` dot-stuffed for DATA (every line starting with "." gets another).
fn dot_stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out
}

/// A body with lines that need dot-stuffing, 8-bit text and about 1 MB in
/// all: what the MX receives after the headers is exactly what was sent.
fn body_transparent(env: &Env) -> anyhow::Result<()> {
    let mut haraka = start_out(env, "out-body")?;
    let id = env.unique("body");
    let rcpt = format!("{id}@scripted.test");
    let mut body = String::from(
        ".leading dot\r\n..two dots\r\n.\r\n . space dot\r\n\r\n\
         Gr\u{fc}\u{df}e, \u{fc}n\u{ef}c\u{f6}d\u{e9} \u{2603}\r\n\tTAB\r\n",
    );
    let filler = "x".repeat(960);
    for i in 0..1000 {
        body.push_str(&format!(".{i:04} {filler}\r\n"));
    }
    body.push_str("last line\r\n");
    let head = format!(
        "From: sender@sender.test\r\nTo: <{rcpt}>\r\nSubject: e2e outbound\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n{ID_HEADER}: {id}\r\n"
    );
    let (mut c, _) = RawSmtp::connect(backend_ip(), net::HARAKA_OUT)?;
    for (cmd, code) in [
        ("EHLO backend.example.com".to_owned(), 250),
        (
            "MAIL FROM:<sender@sender.test> BODY=8BITMIME".to_owned(),
            250,
        ),
        (format!("RCPT TO:<{rcpt}>"), 250),
        ("DATA".to_owned(), 354),
    ] {
        let r = c.cmd(&cmd)?;
        ensure!(r.code == code, "{cmd}: {:?}\n{}", r.text(), c.transcript());
    }
    c.send(format!("{head}\r\n{}.\r\n", dot_stuff(&body)).as_bytes())?;
    let r = c.read_reply()?;
    ensure!(
        r.code == 250,
        "the dot: {:?}\nharaka-rs log ends:\n{}",
        r.text(),
        haraka.log_tail()
    );
    c.cmd("QUIT")?;
    let session = env
        .sink
        .wait_for_message(&id_line(&id), DELIVERY)
        .with_context(|| format!("haraka-rs log ends:\n{}", haraka.log_tail()))?;
    let data = session.data.map(|(d, _)| d).unwrap_or_default();
    let (got_head, got_body) = data
        .split_once("\r\n\r\n")
        .context("no empty line in the delivered message")?;
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        ensure!(
            got_head.split("\r\n").any(|g| g == line),
            "header line {line:?} lost; delivered head:\n{got_head}"
        );
    }
    if got_body != body {
        let at = got_body
            .bytes()
            .zip(body.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(got_body.len().min(body.len()));
        let from = at.saturating_sub(40);
        bail!(
            "the body changed at byte {at} (sent {} bytes, got {}): sent {:?}, got {:?}",
            body.len(),
            got_body.len(),
            body.get(from..(at + 40).min(body.len())).unwrap_or(""),
            got_body
                .get(from..(at + 40).min(got_body.len()))
                .unwrap_or("")
        );
    }
    haraka.stop()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn outbound_ini_points_at_the_loopback_resolver() {
        let ini = outbound_ini();
        assert!(ini.contains("nameservers=127.0.0.153:5353\n"), "{ini}");
        assert!(ini.contains("local_mx_ok=true\n"), "{ini}");
        assert!(ini.contains("smtp_port=25\n"), "{ini}");
        assert!(ini.contains("temp_fail_intervals=5s*6\n"), "{ini}");
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(".a\r\nb.\r\n..\r\n"), "..a\r\nb.\r\n...\r\n");
        assert_eq!(dot_stuff(""), "");
    }

    #[test]
    fn id_lines_do_not_match_longer_ids() {
        let data = format!("{}x\r\n", id_line("a-10"));
        assert!(!data.contains(&id_line("a-1")));
        assert!(data.contains(&id_line("a-10")));
    }
}
