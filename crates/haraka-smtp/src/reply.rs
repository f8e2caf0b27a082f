//! SMTP replies as Haraka's `Connection.respond` writes them.
//!
//! A reply is a code and its lines. When written, every line is split at `\n`
//! (Haraka splits message strings there), CR characters are removed (a reply line can
//! never carry a line break of its own), lines without a non-whitespace character are
//! dropped, all lines but the last are written `CODE-text` and the last `CODE text`,
//! each ending in CRLF.

use std::fmt;

/// A reply: a code and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply of one or more lines.
    pub fn new<I, S>(code: u16, lines: I) -> Reply
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Reply {
            code,
            lines: lines.into_iter().map(Into::into).collect(),
        }
    }

    /// A one-line reply.
    pub fn line(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// The lines that are written: split at `\n`, CRs removed, blank lines dropped.
    pub fn written_lines(&self) -> Vec<String> {
        self.lines
            .iter()
            .flat_map(|l| l.split('\n'))
            .map(|l| l.replace('\r', ""))
            .filter(|l| l.chars().any(|c| !c.is_whitespace()))
            .collect()
    }

    /// The wire form. `tag` (Haraka's `deny_includes_uuid`, e.g. `[CE8F08@vm] `) is
    /// put in front of every line's text when given. A reply whose lines are all
    /// blank is written as the bare code (Haraka would write nothing and leave the
    /// client waiting).
    pub fn to_bytes_tagged(&self, tag: Option<&str>) -> Vec<u8> {
        let lines = self.written_lines();
        let tag = tag.unwrap_or("");
        let mut out = String::new();
        if lines.is_empty() {
            out.push_str(&format!("{}\r\n", self.code));
        }
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.push_str(&format!("{}{sep}{tag}{line}\r\n", self.code));
        }
        out.into_bytes()
    }

    /// The wire form without a tag.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_tagged(None)
    }

    /// The lines joined with a space (for logs and single-line uses).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The reply on one line: `code text`, or the bare code when there is no text.
    pub fn one_line(&self) -> String {
        let text = self.text();
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {text}", self.code)
        }
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// Haraka's `deny_includes_uuid` tag for a reply of `code`: `[<uuid>@<host>] ` for
/// codes ≥ 400 when `chars` is not 0; `chars` > 1 truncates the uuid to that many
/// characters.
pub fn deny_tag(code: u16, chars: usize, uuid: &str, short_hostname: &str) -> Option<String> {
    if code < 400 || chars == 0 {
        return None;
    }
    let uuid: String = if chars > 1 {
        uuid.chars().take(chars).collect()
    } else {
        uuid.to_owned()
    };
    Some(format!("[{uuid}@{short_hostname}] "))
}

/// Why a connection is refused before its session starts (a connection cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// The server holds `max_connections` open connections.
    Server,
    /// The client's address holds `max_connections_per_ip` of them (Haraka's
    /// `limit` plugin, `[concurrency]`, answers `421 Too many concurrent connections`).
    ClientAddress,
}

impl Overload {
    /// The reply sent, instead of a greeting, before the connection is closed.
    pub fn reply(self, me: &str) -> Reply {
        match self {
            Overload::Server => Reply::line(
                421,
                format!("4.3.2 {me} Too many connections, try again later"),
            ),
            Overload::ClientAddress => {
                Reply::line(421, format!("4.7.0 {me} Too many concurrent connections"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_replies() {
        assert_eq!(
            Overload::Server.reply("mx.test").to_bytes(),
            b"421 4.3.2 mx.test Too many connections, try again later\r\n"
        );
        assert_eq!(
            Overload::ClientAddress.reply("mx.test").to_bytes(),
            b"421 4.7.0 mx.test Too many concurrent connections\r\n"
        );
    }

    #[test]
    fn multi_line_and_blank_lines() {
        let r = Reply::new(250, ["a", "", "  ", "b\nc"]);
        assert_eq!(r.to_bytes(), b"250-a\r\n250-b\r\n250 c\r\n");
    }

    #[test]
    fn cr_is_removed() {
        let r = Reply::line(550, "x\r\n550 injected");
        assert_eq!(r.to_bytes(), b"550-x\r\n550 550 injected\r\n");
    }

    #[test]
    fn tag() {
        let t = deny_tag(550, 6, "CE8F089B-CD9D", "vm");
        let r = Reply::line(550, "no");
        assert_eq!(r.to_bytes_tagged(t.as_deref()), b"550 [CE8F08@vm] no\r\n");
        assert_eq!(deny_tag(250, 6, "x", "vm"), None);
        assert_eq!(deny_tag(450, 1, "ABC", "vm").as_deref(), Some("[ABC@vm] "));
    }

    #[test]
    fn empty_reply_is_bare_code() {
        assert_eq!(Reply::line(451, " ").to_bytes(), b"451\r\n");
    }

    #[test]
    fn one_line() {
        assert_eq!(Reply::new(550, ["a", "b"]).one_line(), "550 a b");
        assert_eq!(Reply::new(421, Vec::<String>::new()).one_line(), "421");
    }
}
