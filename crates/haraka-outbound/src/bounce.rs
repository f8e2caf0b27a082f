//! RFC 3464 bounces built like Haraka's `populate_bounce_message_with_headers`, from
//! `config/outbound.bounce_message` (+ `_html`, `_image`), with a built-in template
//! when the file is missing (Haraka then sends a bounce without From/To/Subject).

use haraka_config::ConfigDir;
use haraka_smtp::Address;

use crate::dsn::RcptDsn;
use crate::util::{parse_message, rfc2822_date};

/// Used when `config/outbound.bounce_message` does not exist.
pub const DEFAULT_TEMPLATE: &str = "\
Received: (Haraka {pid} invoked for bounce); {date}
Date: {date}
From: MAILER-DAEMON@{me}
To: {to}
Auto-Submitted: auto-replied
Subject: failure notice
Message-Id: {msgid}

This is the mail system at {me}.

Your message
    \"{subject}\"
could not be delivered to the following recipients.
This is a permanent error; delivery will not be tried again.

Recipients: {recipients}
Reason: {reason}

{extended_reason}
";

/// The bounce templates, as lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceTemplates {
    pub text: Vec<String>,
    pub html: Vec<String>,
    pub image: Vec<String>,
}

impl Default for BounceTemplates {
    fn default() -> BounceTemplates {
        BounceTemplates {
            text: lines(DEFAULT_TEMPLATE),
            html: Vec::new(),
            image: Vec::new(),
        }
    }
}

impl BounceTemplates {
    /// Read the templates from the config directory; a missing text template is the
    /// built-in one.
    pub fn load(cfg: &ConfigDir) -> BounceTemplates {
        let read = |name: &str| {
            cfg.read_bytes(name)
                .ok()
                .flatten()
                .map(|b| lines(&String::from_utf8_lossy(&b)))
        };
        BounceTemplates {
            text: read("outbound.bounce_message").unwrap_or_else(|| lines(DEFAULT_TEMPLATE)),
            html: read("outbound.bounce_message_html").unwrap_or_default(),
            image: read("outbound.bounce_message_image").unwrap_or_default(),
        }
    }
}

fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

/// What a bounce is about.
pub struct BounceInput<'a> {
    pub me: &'a str,
    /// The original sender (the bounce's recipient).
    pub sender: &'a Address,
    /// The failed recipients with their status.
    pub rcpts: &'a [(Address, RcptDsn)],
    /// The error (`Some recipients failed: …`, `Too many failures (…)`).
    pub reason: &'a str,
    /// When the original was queued (epoch ms; 0 = unknown).
    pub queue_time: u64,
    /// The original message.
    pub original: &'a [u8],
    pub now_ms: u64,
}

/// The complete bounce message (CRLF line ends).
pub fn build(t: &BounceTemplates, input: &BounceInput<'_>) -> Vec<u8> {
    const CRLF: &str = "\r\n";
    let original = parse_message(input.original);
    let first = |name: &str| original.get_header(name).into_iter().next();
    let orig_msgid = first("Message-Id").unwrap_or_default();
    let subject = first("Subject").unwrap_or_default();
    let uuid = || haraka_smtp::ids::uuid_from_bytes(rand::random());
    let date = rfc2822_date(input.now_ms);
    let recipients: Vec<String> = input.rcpts.iter().map(|(a, _)| a.format()).collect();
    let extended: Vec<String> = input
        .rcpts
        .iter()
        .map(|(a, d)| match &d.reason {
            Some(r) => format!("{}: {r}", a.format()),
            None => String::new(),
        })
        .collect();
    let value = |word: &str| -> Option<String> {
        Some(match word {
            "date" => date.clone(),
            "me" => input.me.to_owned(),
            "from" => "<>".to_owned(),
            "to" => input.sender.format(),
            "subject" => subject.clone(),
            "recipients" => recipients.join(", "),
            "reason" => format!("Error: {}", input.reason),
            "extended_reason" => extended.join("\n"),
            "pid" => std::process::id().to_string(),
            "msgid" => format!("<{}@{}>", uuid(), input.me),
            _ => return None,
        })
    };

    let mut head = Vec::new();
    let mut body = Vec::new();
    let mut in_body = false;
    for line in &t.text {
        let line = substitute(line, |w| value(w).filter(|v| !v.is_empty()));
        if !in_body && line.is_empty() {
            in_body = true;
        } else if in_body {
            body.push(line);
        } else {
            head.push(line);
        }
    }
    let html: Vec<String> = t
        .html
        .iter()
        .map(|l| substitute(l, |w| value(w).map(|v| html_escape(&v))))
        .collect();

    let boundary = format!("boundary_{}", uuid());
    let mut out = String::new();
    for h in &head {
        out.push_str(h);
        out.push_str(CRLF);
    }
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;{CRLF}    boundary=\"{boundary}\"{CRLF}"
    ));
    if !orig_msgid.is_empty() {
        out.push_str(&format!("References: {orig_msgid}{CRLF}"));
    }
    out.push_str(&format!(
        "{CRLF}This is a MIME-encapsulated message.{CRLF}{CRLF}"
    ));

    let mut incr = "";
    if html.len() > 1 {
        out.push_str(&format!(
            "--{boundary}{CRLF}Content-Type: multipart/related; boundary=\"{boundary}a\"{CRLF}{CRLF}"
        ));
        out.push_str(&format!(
            "--{boundary}a{CRLF}Content-Type: multipart/alternative; boundary=\"{boundary}b\"{CRLF}{CRLF}"
        ));
        incr = "b";
    }
    out.push_str(&format!(
        "--{boundary}{incr}{CRLF}Content-Type: text/plain; charset=us-ascii{CRLF}{CRLF}"
    ));
    for l in &body {
        out.push_str(&to_crlf(l));
        out.push_str(CRLF);
    }
    out.push_str(CRLF);
    if html.len() > 1 {
        out.push_str(&format!(
            "--{boundary}b{CRLF}Content-Type: text/html; charset=us-ascii{CRLF}{CRLF}"
        ));
        for l in &html {
            out.push_str(l);
            out.push_str(CRLF);
        }
        out.push_str(&format!("{CRLF}--{boundary}b--{CRLF}"));
        if t.image.len() > 1 {
            out.push_str(&format!("--{boundary}a{CRLF}"));
            for l in &t.image {
                out.push_str(l);
                out.push_str(CRLF);
            }
            out.push_str(&format!("{CRLF}--{boundary}a--{CRLF}"));
        }
    }

    out.push_str(&format!(
        "--{boundary}{CRLF}Content-type: message/delivery-status{CRLF}{CRLF}"
    ));
    if !orig_msgid.is_empty() {
        out.push_str(&format!("Original-Envelope-Id: {orig_msgid}{CRLF}"));
    }
    out.push_str(&format!("Reporting-MTA: dns;{}{CRLF}", input.me));
    if input.queue_time > 0 {
        out.push_str(&format!(
            "Arrival-Date: {}{CRLF}",
            rfc2822_date(input.queue_time)
        ));
    }
    for (a, d) in input.rcpts {
        out.push_str(CRLF);
        out.push_str(&per_recipient(a, d));
    }
    out.push_str(CRLF);
    out.push_str(&format!(
        "--{boundary}{CRLF}Content-Description: Undelivered Message Headers{CRLF}Content-Type: text/rfc822-headers{CRLF}{CRLF}"
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&original.header_bytes());
    bytes.extend_from_slice(format!("{CRLF}--{boundary}--{CRLF}").as_bytes());
    bytes
}

/// The per-recipient fields of the `message/delivery-status` part.
fn per_recipient(a: &Address, d: &RcptDsn) -> String {
    const CRLF: &str = "\r\n";
    let mut s = format!("Final-Recipient: rfc822;{}{CRLF}", a.address());
    let action = d.action.clone().or_else(|| {
        let code = d.code.or(d.smtp_code)?;
        match code / 100 {
            5 => Some("failed".to_owned()),
            4 => Some("delayed".to_owned()),
            2 => Some("delivered".to_owned()),
            _ => None,
        }
    });
    if let Some(action) = action {
        s.push_str(&format!("Action: {action}{CRLF}"));
    }
    // RFC 3464 requires a Status; when the server gave no enhanced code, use its class.
    let status = d.status.clone().or_else(|| {
        let class = d.smtp_code.or(d.code)? / 100;
        Some(format!("{class}.0.0"))
    });
    if let Some(mut status) = status {
        if d.code.is_some() || d.msg.is_some() {
            status.push_str(" (");
            if let Some(c) = d.code {
                status.push_str(&c.to_string());
            }
            status.push(' ');
            if let Some(m) = &d.msg {
                status.push_str(m);
            }
            status.push(')');
        }
        s.push_str(&format!("Status: {status}{CRLF}"));
    }
    if let Some(mta) = &d.remote_mta {
        s.push_str(&format!("Remote-MTA: {mta}{CRLF}"));
    }
    if d.smtp_code.is_some() || d.smtp_extc.is_some() || d.smtp_response.is_some() {
        let mut diag = "smtp;".to_owned();
        if let Some(c) = d.smtp_code {
            diag.push_str(&format!("{c} "));
        }
        if let Some(x) = &d.smtp_extc {
            diag.push_str(&format!("{x} "));
        }
        if let Some(r) = &d.smtp_response {
            diag.push_str(&format!("{r} "));
        }
        s.push_str(&format!("Diagnostic-Code: {diag}{CRLF}"));
    }
    s
}

/// Replace `{word}` with `value(word)`, or `?` when there is none.
fn substitute(line: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let word_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if word_len > 0 && after[word_len..].starts_with('}') {
            out.push_str(&value(&after[..word_len]).unwrap_or_else(|| "?".to_owned()));
            rest = &after[word_len + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn to_crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#10;"),
            '\n' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;
    use haraka_smtp::Reply;

    fn input_with<'a>(sender: &'a Address, rcpts: &'a [(Address, RcptDsn)]) -> BounceInput<'a> {
        BounceInput {
            me: "relay.test",
            sender,
            rcpts,
            reason: "Some recipients failed: <x@gmail.com>",
            queue_time: 1_795_708_801_000,
            original: b"Subject: Hello\r\nMessage-Id: <orig@example.com>\r\n\r\nsecret body\r\n",
            now_ms: 1_795_708_802_000,
        }
    }

    #[test]
    fn default_template_has_headers_and_report() {
        let sender = Address::parse("u@example.com").unwrap();
        let reply = Reply {
            code: 550,
            lines: vec!["5.1.1 <x@gmail.com>: User unknown".into()],
        };
        let rcpts = vec![(
            Address::parse("x@gmail.com").unwrap(),
            RcptDsn::from_reply(&reply, "127.0.0.1", true),
        )];
        let msg = build(&BounceTemplates::default(), &input_with(&sender, &rcpts));
        let text = String::from_utf8(msg).unwrap();
        for want in [
            "From: MAILER-DAEMON@relay.test\r\n",
            "To: <u@example.com>\r\n",
            "Subject: failure notice\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "Content-Type: multipart/report; report-type=delivery-status;\r\n    boundary=\"boundary_",
            "References: <orig@example.com>\r\n",
            "    \"Hello\"\r\n",
            "Reason: Error: Some recipients failed: <x@gmail.com>\r\n",
            "<x@gmail.com>: 550 5.1.1 <x@gmail.com>: User unknown\r\n",
            "Content-type: message/delivery-status\r\n\r\nOriginal-Envelope-Id: <orig@example.com>\r\nReporting-MTA: dns;relay.test\r\nArrival-Date: Thu, 26 Nov 2026 16:00:01 +0000\r\n",
            "\r\nFinal-Recipient: rfc822;x@gmail.com\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: 127.0.0.1\r\nDiagnostic-Code: smtp;550 5.1.1 <x@gmail.com>: User unknown \r\n",
            "Content-Type: text/rfc822-headers\r\n\r\nSubject: Hello\r\nMessage-Id: <orig@example.com>\r\n\r\n--boundary_",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("secret body"));
        assert!(text.ends_with("--\r\n"));
        assert!(text.lines().all(|l| !l.contains('{')), "{text}");
    }

    #[test]
    fn internal_status_and_placeholders() {
        let d = RcptDsn::internal(550, 1, 2, "No MX for x.test");
        let a = Address::parse("x@x.test").unwrap();
        let s = per_recipient(&a, &d);
        assert_eq!(
            s,
            "Final-Recipient: rfc822;x@x.test\r\nAction: failed\r\nStatus: 5.1.2 (550 No MX for x.test)\r\n"
        );
        assert_eq!(
            substitute("a {me} {nope} {} {x", |w| (w == "me").then(|| "M".into())),
            "a M ? {} {x"
        );
        assert_eq!(html_escape("<a&b>"), "&lt;a&amp;b&gt;");
    }

    #[test]
    fn custom_template_and_html_part() {
        let t = BounceTemplates {
            text: lines("From: bounces@{me}\nSubject: oops {nope}\n\nBody {recipients}\n"),
            html: lines("<p>{to}</p>\n<p>bye</p>\n"),
            image: Vec::new(),
        };
        let sender = Address::parse("u@example.com").unwrap();
        let rcpts = vec![(Address::parse("x@y.test").unwrap(), RcptDsn::default())];
        let text = String::from_utf8(build(&t, &input_with(&sender, &rcpts))).unwrap();
        assert!(text.starts_with(
            "From: bounces@relay.test\r\nSubject: oops ?\r\nContent-Type: multipart/report"
        ));
        assert!(text.contains("Body <x@y.test>\r\n"));
        assert!(text.contains("<p>&lt;u@example.com&gt;</p>"));
        assert!(text.contains("Content-Type: multipart/alternative"));
    }
}
