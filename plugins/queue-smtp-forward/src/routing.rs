//! The routing hooks: `check_sender` (mail), `check_recipient` (rcpt, split-route
//! deferral), the route of a transaction, and `get_mx` for Haraka's outbound queue.

use haraka_plugin_api::{Address, Connection, MxHost, Notes, OutboundMail, Outcome, Transaction};
use serde_json::Value;

use crate::SmtpForward;
use crate::config::{Config, Route, Selector};

/// The name results are recorded under.
pub const RESULTS: &str = "queue/smtp_forward";

/// `notes.get('a.b')` with haraka-notes' dotted paths.
pub fn note_path<'a>(notes: &'a Notes, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = notes.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    Some(cur)
}

/// `notes.set('a.b', value)`, creating the intermediate objects.
pub fn set_note_path(notes: &mut Notes, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = notes;
    for p in parts {
        let entry = cur
            .entry(p.to_owned())
            .or_insert_with(|| Value::Object(Notes::new()));
        if !entry.is_object() {
            *entry = Value::Object(Notes::new());
        }
        let Value::Object(map) = entry else { return };
        cur = map;
    }
    cur.insert(last.to_owned(), value);
}

/// `get_config`: the section picked by the domain selector, else `[main]`.
pub fn route_for<'a>(cfg: &'a Config, txn: &Transaction) -> &'a Route {
    let domain = match cfg.selector {
        Selector::MailFrom => txn.mail_from.as_ref().and_then(|a| a.host.as_deref()),
        Selector::RcptTo => txn.rcpt_to.first().and_then(|a| a.host.as_deref()),
    };
    domain
        .and_then(|d| cfg.domain(&d.to_ascii_lowercase()))
        .unwrap_or(&cfg.main)
}

/// `forward_enabled`: another queue was chosen, or relayed mail is not ours.
pub fn forward_enabled(cfg: &Config, conn: &Connection, route: &Route) -> bool {
    let Some(txn) = conn.transaction.as_ref() else {
        return false;
    };
    if let Some(wants) = note_path(&txn.notes, "queue.wants").and_then(Value::as_str)
        && wants != "smtp_forward"
    {
        tracing::debug!(uuid = %txn.uuid, "smtp_forward: skipping, queue.wants={wants}");
        return false;
    }
    if conn.relaying() && !cfg.outbound_enabled(route) {
        tracing::debug!(uuid = %txn.uuid, "smtp_forward: skipping, outbound disabled");
        return false;
    }
    true
}

/// `mail` hook with `check_sender`: a sender in a configured domain must be relaying.
pub fn check_sender(fwd: &SmtpForward, conn: &mut Connection, from: Option<&Address>) -> Outcome {
    let cfg = &fwd.cfg;
    let relaying = conn.relaying();
    let Some(txn) = conn.transaction.as_mut() else {
        return Outcome::cont();
    };
    let Some(host) = from.and_then(|a| a.host.as_deref()) else {
        txn.results.add(RESULTS, "skip", "mail_from.null");
        return Outcome::cont();
    };
    if cfg.domain(&host.to_ascii_lowercase()).is_none() {
        return Outcome::cont();
    }
    txn.notes.insert("local_sender".into(), Value::Bool(true));
    if !relaying {
        txn.results.add(RESULTS, "fail", "mail_from!spoof");
        return Outcome::deny("Spoofed MAIL FROM");
    }
    txn.results.add(RESULTS, "pass", "mail_from");
    Outcome::cont()
}

/// `rcpt` hook with `check_recipient`: accept recipients of configured domains,
/// defer those whose route differs from the transaction's first one.
pub fn check_recipient(fwd: &SmtpForward, conn: &mut Connection, to: &Address) -> Outcome {
    let cfg = &fwd.cfg;
    let relaying = conn.relaying();
    let Some(txn) = conn.transaction.as_mut() else {
        return Outcome::cont();
    };
    let Some(host) = to.host.as_deref() else {
        txn.results.add(RESULTS, "skip", "rcpt!domain");
        return Outcome::cont();
    };
    let local_sender = txn.notes.get("local_sender").is_some_and(Value::is_truthy);
    if relaying && local_sender {
        set_queue(cfg, txn, Some("outbound"), None);
        txn.results.add(RESULTS, "pass", "relaying local_sender");
        return Outcome::accept();
    }
    let domain = host.to_ascii_lowercase();
    if cfg.domain(&domain).is_some() {
        if set_queue(cfg, txn, Some("smtp_forward"), Some(&domain)) {
            txn.results.add(RESULTS, "pass", "rcpt_to");
            return Outcome::accept();
        }
        txn.results.add(RESULTS, "pass", "rcpt_to.split");
        return Outcome::deny_soft("Split transaction, retry soon");
    }
    txn.results.add(RESULTS, "msg", "rcpt!local");
    Outcome::cont()
}

trait Truthy {
    fn is_truthy(&self) -> bool;
}

impl Truthy for Value {
    fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }
}

/// `set_queue`: record the wanted queue and next hop; false when this recipient's
/// route differs from the one already recorded.
fn set_queue(
    cfg: &Config,
    txn: &mut Transaction,
    wanted: Option<&str>,
    domain: Option<&str>,
) -> bool {
    let dom = domain.and_then(|d| cfg.domain(d));
    let wanted = wanted
        .map(str::to_owned)
        .or_else(|| dom.and_then(|d| d.queue.clone()))
        .or_else(|| cfg.main.queue.clone());
    let Some(wanted) = wanted else {
        return true;
    };
    let dst = dom
        .and_then(|d| d.host.clone())
        .or_else(|| cfg.main.host.clone())
        .map(|h| format!("smtp://{h}"));
    let notes = &mut txn.notes;
    let Some(current) = note_path(notes, "queue.wants").and_then(Value::as_str) else {
        set_note_path(notes, "queue.wants", Value::String(wanted));
        if let Some(dst) = dst {
            set_note_path(notes, "queue.next_hop", Value::String(dst));
        }
        return true;
    };
    if current != wanted {
        return false;
    }
    let Some(dst) = dst else { return true };
    match note_path(notes, "queue.next_hop").and_then(Value::as_str) {
        None => true,
        Some(hop) => hop == dst,
    }
}

/// `get_mx`: a `next_hop` note, else the section of the destination domain.
pub fn get_mx(fwd: &SmtpForward, mail: &mut OutboundMail, domain: &str) -> Outcome {
    let cfg = &fwd.cfg;
    if let Some(hop) = mail.notes.get("next_hop").and_then(Value::as_str) {
        if let Some(mx) = parse_next_hop(hop) {
            mail.mx = Some(vec![mx]);
            return Outcome::accept();
        }
        tracing::warn!("smtp_forward: unusable next_hop note '{hop}'");
    }
    let domain = match cfg.selector {
        Selector::MailFrom => mail.mail_from.as_ref().and_then(|a| a.host.clone()),
        Selector::RcptTo => Some(domain.to_owned()),
    };
    let Some(route) = domain.and_then(|d| cfg.domain(&d.to_ascii_lowercase())) else {
        return Outcome::cont();
    };
    let Some(exchange) = route.host.clone().or_else(|| cfg.main.host.clone()) else {
        return Outcome::cont();
    };
    if let Some(ip) = &route.bind {
        mail.notes
            .insert("outbound_ip".into(), Value::String(ip.clone()));
    }
    if let Some(helo) = &route.bind_helo {
        mail.notes
            .insert("outbound_helo".into(), Value::String(helo.clone()));
    }
    mail.mx = Some(vec![MxHost {
        exchange,
        priority: 0,
        port: cfg.port_of(route),
        ip: None,
    }]);
    Outcome::accept()
}

/// `smtp://[user:pass@]host[:port]` → an MX (port 25 by default).
pub fn parse_next_hop(hop: &str) -> Option<MxHost> {
    let rest = hop.split_once("://").map_or(hop, |(_, r)| r);
    let rest = rest.split(['/', '?', '#']).next()?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        (h, tail.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok().filter(|p| *p > 0)?,
        None => 25,
    };
    (!host.is_empty()).then(|| MxHost {
        exchange: host.to_owned(),
        priority: 0,
        port,
        ip: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn next_hops() {
        for (hop, want) in [
            ("smtp://10.0.0.2", Some(("10.0.0.2", 25))),
            ("smtp://mx.example.com:2525", Some(("mx.example.com", 2525))),
            (
                "smtp://user:pass@relay.test:587/",
                Some(("relay.test", 587)),
            ),
            ("smtp://[2001:db8::1]:26", Some(("2001:db8::1", 26))),
            ("smtp://host:notaport", None),
            ("smtp://", None),
        ] {
            let got = parse_next_hop(hop).map(|m| (m.exchange, m.port));
            assert_eq!(got, want.map(|(h, p)| (h.to_owned(), p)), "{hop}");
        }
    }

    #[test]
    fn dotted_notes() {
        let mut notes = Notes::new();
        set_note_path(&mut notes, "queue.wants", Value::from("smtp_forward"));
        set_note_path(&mut notes, "queue.next_hop", Value::from("smtp://h"));
        assert_eq!(
            note_path(&notes, "queue.wants").and_then(Value::as_str),
            Some("smtp_forward")
        );
        assert_eq!(notes["queue"]["next_hop"], "smtp://h");
        assert!(note_path(&notes, "queue.missing").is_none());
    }
}
