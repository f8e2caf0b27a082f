//! Per-recipient delivery status, as Haraka records it on `hmail.todo.rcpt_to`
//! (`dsn_action`, `dsn_status`, `dsn_smtp_code`, …), and the reply parsing it needs.

use haraka_smtp::Reply;

/// What is known about one recipient's failure, for the bounce's
/// `message/delivery-status` part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptDsn {
    /// `failed`, `delayed`.
    pub action: Option<String>,
    /// `x.y.z`.
    pub status: Option<String>,
    /// Code of an internally generated status (`550` for "No MX for …").
    pub code: Option<u16>,
    /// Text of an internally generated status.
    pub msg: Option<String>,
    /// The MX host that answered.
    pub remote_mta: Option<String>,
    /// The remote server's reply.
    pub smtp_code: Option<u16>,
    pub smtp_extc: Option<String>,
    pub smtp_response: Option<String>,
    /// `<code> <x.y.z> <text>` for `{extended_reason}` (RCPT rejections only).
    pub reason: Option<String>,
}

impl RcptDsn {
    /// An internally generated status (haraka-dsn's `new DSN(code, msg, …, sub, det)`):
    /// the class comes from the code.
    pub fn internal(code: u16, sub: u16, det: u16, msg: &str) -> RcptDsn {
        let class = code / 100;
        RcptDsn {
            action: action_for(class).map(str::to_owned),
            status: Some(format!("{class}.{sub}.{det}")),
            code: Some(code),
            msg: Some(msg.to_owned()),
            ..RcptDsn::default()
        }
    }

    /// The remote server's reply to a recipient or to the whole message.
    pub fn from_reply(reply: &Reply, remote_mta: &str, with_reason: bool) -> RcptDsn {
        let parsed = ParsedReply::new(reply);
        let class = reply.code / 100;
        RcptDsn {
            action: action_for(class).map(str::to_owned),
            status: parsed.extc.clone(),
            code: None,
            msg: None,
            remote_mta: Some(remote_mta.to_owned()),
            smtp_code: Some(reply.code),
            smtp_extc: parsed.extc.clone(),
            smtp_response: Some(parsed.text.clone()),
            reason: with_reason.then(|| parsed.reason()),
        }
    }

    /// A temporary status becomes permanent (the retries ran out).
    pub fn make_permanent(&mut self) {
        self.action = Some("failed".to_owned());
        if let Some(s) = &self.status
            && let Some(rest) = s.strip_prefix('4')
        {
            self.status = Some(format!("5{rest}"));
        }
    }
}

fn action_for(class: u16) -> Option<&'static str> {
    match class {
        5 => Some("failed"),
        4 => Some("delayed"),
        2 => Some("delivered"),
        _ => None,
    }
}

/// A reply split as Haraka does: the enhanced status code of the last line (if any)
/// and the text of every line without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    pub code: u16,
    pub extc: Option<String>,
    pub text: String,
}

impl ParsedReply {
    pub fn new(reply: &Reply) -> ParsedReply {
        let mut extc = None;
        let mut texts = Vec::with_capacity(reply.lines.len());
        for line in &reply.lines {
            let line = line.strip_prefix('#').unwrap_or(line);
            match split_extc(line) {
                Some((code, rest)) => {
                    extc = Some(code.to_owned());
                    texts.push(rest.to_owned());
                }
                None => {
                    extc = None;
                    texts.push(line.to_owned());
                }
            }
        }
        ParsedReply {
            code: reply.code,
            extc,
            text: texts.join(" "),
        }
    }

    /// `<code> [<x.y.z> ]<text>`.
    pub fn reason(&self) -> String {
        match &self.extc {
            Some(x) => format!("{} {} {}", self.code, x, self.text),
            None => format!("{} {}", self.code, self.text),
        }
    }
}

/// `4.7.1 text` → (`4.7.1`, `text`).
fn split_extc(line: &str) -> Option<(&str, &str)> {
    let (first, rest) = line.split_once(char::is_whitespace)?;
    let mut parts = first.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let ok = parts.next().is_none()
        && class.len() == 1
        && matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit());
    ok.then_some((first, rest.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Reply {
        Reply {
            code,
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reply_parsing_table() {
        let cases = [
            (
                reply(550, &["5.1.1 <x@y>: User unknown"]),
                Some("5.1.1"),
                "<x@y>: User unknown",
            ),
            (
                reply(451, &["4.7.1 try", "4.7.1 later"]),
                Some("4.7.1"),
                "try later",
            ),
            (reply(250, &["Ok"]), None, "Ok"),
            (reply(452, &["4.5.10 too many"]), Some("4.5.10"), "too many"),
            (reply(554, &["5.x.1 odd"]), None, "5.x.1 odd"),
            (reply(550, &[]), None, ""),
        ];
        for (r, extc, text) in cases {
            let p = ParsedReply::new(&r);
            assert_eq!(p.extc.as_deref(), extc, "{r:?}");
            assert_eq!(p.text, text, "{r:?}");
        }
        assert_eq!(
            ParsedReply::new(&reply(550, &["5.1.1 gone"])).reason(),
            "550 5.1.1 gone"
        );
    }

    #[test]
    fn statuses() {
        let d = RcptDsn::internal(550, 1, 2, "No MX for x.test");
        assert_eq!(d.status.as_deref(), Some("5.1.2"));
        assert_eq!(d.action.as_deref(), Some("failed"));
        let mut t = RcptDsn::from_reply(&reply(451, &["4.7.1 later"]), "mx.test", true);
        assert_eq!(t.action.as_deref(), Some("delayed"));
        assert_eq!(t.reason.as_deref(), Some("451 4.7.1 later"));
        t.make_permanent();
        assert_eq!(t.status.as_deref(), Some("5.7.1"));
        assert_eq!(t.action.as_deref(), Some("failed"));
    }
}
