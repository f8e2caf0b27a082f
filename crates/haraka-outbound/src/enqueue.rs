//! Turning an accepted message into queue items (Haraka's `send_trans_email`):
//! missing `Message-Id` / `Date` appended, `Received: (Haraka outbound)` prepended,
//! one delivery per recipient domain (or per recipient with `always_split`).

use std::sync::Arc;

use haraka_client::MailParams;
use haraka_queue::{Envelope, NewItem};
use haraka_smtp::{Address, Notes};

use crate::config::OutboundConfig;
use crate::util::{parse_message, rfc2822_date};

/// Does a header field list contain `name`?
fn has_field<T: AsRef<[u8]>>(fields: &[T], name: &str) -> bool {
    fields.iter().any(|f| {
        let f = f.as_ref();
        f.iter()
            .position(|&b| b == b':')
            .is_some_and(|p| f[..p].trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    })
}

/// The message as queued: `fields` (each without its CRLF) plus what Haraka adds,
/// the empty line, and `body`.
pub fn compose<T: AsRef<[u8]>>(
    fields: &[T],
    body: &[u8],
    cfg: &OutboundConfig,
    tuuid: &str,
    now_ms: u64,
) -> Vec<u8> {
    let date = rfc2822_date(now_ms);
    let mut out = Vec::with_capacity(body.len() + 1024);
    if let Some(text) = &cfg.received_header {
        out.extend_from_slice(format!("Received: ({text}); {date}\r\n").as_bytes());
    }
    for f in fields {
        out.extend_from_slice(f.as_ref());
        out.extend_from_slice(b"\r\n");
    }
    if !has_field(fields, "Message-Id") {
        out.extend_from_slice(format!("Message-Id: <{tuuid}@{}>\r\n", cfg.me).as_bytes());
    }
    if !has_field(fields, "Date") {
        out.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// [`compose`] for a complete message given as bytes (internal mail such as bounces).
pub fn compose_raw(message: &[u8], cfg: &OutboundConfig, tuuid: &str, now_ms: u64) -> Vec<u8> {
    let m = parse_message(message);
    compose(&m.headers, &m.body, cfg, tuuid, now_ms)
}

/// The deliveries of one message: recipient domain and its recipients, in the order
/// the domains first appear.
pub fn split(rcpts: &[Address], always_split: bool) -> Vec<(String, Vec<Address>)> {
    let domain = |a: &Address| a.host.clone().unwrap_or_default();
    if always_split {
        return rcpts.iter().map(|a| (domain(a), vec![a.clone()])).collect();
    }
    let mut out: Vec<(String, Vec<Address>)> = Vec::new();
    for a in rcpts {
        let d = domain(a);
        match out.iter_mut().find(|(k, _)| *k == d) {
            Some((_, list)) => list.push(a.clone()),
            None => out.push((d, vec![a.clone()])),
        }
    }
    out
}

/// Queue items for `message` from `from` to `rcpts`, ids `<tuuid>.<k>`; each keeps
/// the sender's MAIL parameters for delivery.
#[allow(clippy::too_many_arguments, reason = "one plain call per message")]
pub fn items(
    tuuid: &str,
    from: Option<&Address>,
    params: MailParams,
    rcpts: &[Address],
    notes: &Notes,
    message: Arc<[u8]>,
    always_split: bool,
    now_ms: u64,
) -> Vec<NewItem> {
    split(rcpts, always_split)
        .into_iter()
        .enumerate()
        .map(|(k, (domain, rcpt_to))| NewItem {
            envelope: Envelope {
                uuid: format!("{tuuid}.{}", k + 1),
                queue_time: now_ms,
                domain,
                mail_from: from.cloned(),
                rcpt_to,
                notes: notes.clone(),
                force_tls: false,
                smtputf8: params.smtputf8,
                body_8bitmime: params.eight_bit,
            },
            message: Arc::clone(&message),
            attempts: 0,
            next_attempt: None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn adds_missing_headers_in_haraka_s_places() {
        let cfg = OutboundConfig::new("relay.test");
        let fields = vec![b"Received: from x".to_vec(), b"Subject: hi".to_vec()];
        let m = compose(&fields, b"body\r\n", &cfg, "T-1.1", 1_795_708_801_000);
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "Received: (Haraka outbound); Thu, 26 Nov 2026 16:00:01 +0000\r\n\
             Received: from x\r\nSubject: hi\r\n\
             Message-Id: <T-1.1@relay.test>\r\n\
             Date: Thu, 26 Nov 2026 16:00:01 +0000\r\n\r\nbody\r\n"
        );
        let mut cfg = cfg;
        cfg.received_header = None;
        let fields = vec![b"message-id: <a@b>".to_vec(), b"DATE : x".to_vec()];
        let m = compose(&fields, b"", &cfg, "T", 0);
        assert_eq!(m, b"message-id: <a@b>\r\nDATE : x\r\n\r\n");
    }

    #[test]
    fn splits_by_domain_or_recipient() {
        let r = vec![a("x@A.test"), a("y@b.test"), a("z@a.test")];
        let s = split(&r, false);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "a.test");
        assert_eq!(s[0].1.len(), 2);
        assert_eq!(split(&r, true).len(), 3);
        let it = items(
            "U",
            None,
            MailParams::default(),
            &r,
            &Notes::new(),
            Arc::from(&b"m"[..]),
            false,
            5,
        );
        assert_eq!(it[1].envelope.uuid, "U.2");
        assert_eq!(it[1].envelope.domain, "b.test");
    }

    #[test]
    fn raw_messages() {
        let cfg = OutboundConfig::new("me.test");
        let m = compose_raw(
            b"Subject: x\r\nDate: d\r\nMessage-Id: <m@x>\r\n\r\nhi\r\n",
            &cfg,
            "U",
            0,
        );
        let s = String::from_utf8(m).unwrap();
        assert!(s.starts_with("Received: (Haraka outbound); "));
        assert!(s.ends_with("Subject: x\r\nDate: d\r\nMessage-Id: <m@x>\r\n\r\nhi\r\n"));
    }
}
