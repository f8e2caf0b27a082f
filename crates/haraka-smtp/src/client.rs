//! Client-side pieces for talking to another SMTP server (smtp_forward, outbound):
//! an incremental reply parser, EHLO capabilities, and command formatting.
//!
//! No IO: the async client reads bytes into a [`ReplyParser`] and writes the bytes
//! the `*_cmd` functions return.

use crate::reply::Reply;

/// Longest reply line accepted (RFC 5321 says 512; servers send longer texts).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one reply.
pub const MAX_REPLY_LINES: usize = 256;

/// A reply that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("reply has more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line: {0:?}")]
    Malformed(String),
    #[error("reply lines with different codes: {first} then {then}")]
    CodeMismatch { first: u16, then: u16 },
}

/// Parse one reply from the start of `buf`: `Ok(Some((reply, consumed)))` when a
/// complete reply is there, `Ok(None)` when more bytes are needed. Lines may end in
/// CR LF or LF.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code: Option<u16> = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_REPLY_LINE {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(None);
        };
        if lf > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let raw = &rest[..lf];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        pos += lf + 1;
        let line = String::from_utf8_lossy(raw);
        let (c, last, text) = split_reply_line(&line)?;
        match code {
            Some(first) if first != c => return Err(ReplyError::CodeMismatch { first, then: c }),
            _ => code = Some(c),
        }
        lines.push(text.to_owned());
        if last {
            return Ok(Some((Reply { code: c, lines }, pos)));
        }
        if lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
}

fn split_reply_line(line: &str) -> Result<(u16, bool, &str), ReplyError> {
    let b = line.as_bytes();
    let malformed = || ReplyError::Malformed(line.chars().take(80).collect());
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&b[0]) {
        return Err(malformed());
    }
    let code: u16 = line[..3].parse().map_err(|_| malformed())?;
    match b.get(3) {
        None => Ok((code, true, "")),
        Some(b' ') => Ok((code, true, &line[4..])),
        Some(b'-') => Ok((code, false, &line[4..])),
        Some(_) => Err(malformed()),
    }
}

/// Incremental reply reader with its own bounded buffer.
#[derive(Debug, Clone, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Bytes from the server.
    pub fn feed(&mut self, input: &[u8]) {
        self.buf.extend_from_slice(input);
    }

    /// The next complete reply, if any.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        match parse_reply(&self.buf)? {
            Some((reply, used)) => {
                self.buf.drain(..used);
                Ok(Some(reply))
            }
            None if self.buf.len() > MAX_REPLY_LINE * MAX_REPLY_LINES => {
                Err(ReplyError::TooManyLines)
            }
            None => Ok(None),
        }
    }

    /// Bytes received but not yet part of a reply (e.g. to discard after STARTTLS).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Forget buffered bytes.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// The capabilities in an EHLO reply, in the order the server listed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The first line (the server's name and greeting text).
    pub greeting: String,
    /// Each following line split at spaces: keyword (upper-cased) and parameters.
    pub entries: Vec<(String, Vec<String>)>,
}

impl Capabilities {
    /// From a 250 EHLO reply.
    pub fn from_reply(reply: &Reply) -> Capabilities {
        let mut lines = reply.lines.iter();
        let greeting = lines.next().cloned().unwrap_or_default();
        let entries = lines
            .filter_map(|l| {
                let mut words = l.split_ascii_whitespace();
                let kw = words.next()?.to_ascii_uppercase();
                Some((kw, words.map(str::to_owned).collect()))
            })
            .collect();
        Capabilities { greeting, entries }
    }

    /// Whether `keyword` was advertised (case-insensitive).
    pub fn has(&self, keyword: &str) -> bool {
        self.params(keyword).is_some()
    }

    /// The parameters of `keyword` (e.g. `XCLIENT` → `["NAME", "ADDR", …]`).
    pub fn params(&self, keyword: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
            .map(|(_, p)| p.as_slice())
    }

    /// `SIZE n`: `Some(n)` (0 = no limit); `None` if SIZE is not advertised.
    pub fn size(&self) -> Option<u64> {
        self.params("SIZE")
            .map(|p| p.first().and_then(|n| n.parse().ok()).unwrap_or(0))
    }

    /// Whether `param` is one of `keyword`'s parameters (case-insensitive), e.g.
    /// `has_param("XCLIENT", "NAME")` or `has_param("AUTH", "PLAIN")`.
    pub fn has_param(&self, keyword: &str, param: &str) -> bool {
        self.params(keyword)
            .is_some_and(|p| p.iter().any(|x| x.eq_ignore_ascii_case(param)))
    }

    /// Position of `keyword` in the list (to do XCLIENT/STARTTLS in server order).
    pub fn position(&self, keyword: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(keyword))
    }
}

/// A command argument that would break the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument contains CR, LF or NUL: {0:?}")]
pub struct FormatError(pub String);

fn check(arg: &str) -> Result<&str, FormatError> {
    if arg.contains(['\r', '\n', '\0']) {
        Err(FormatError(arg.to_owned()))
    } else {
        Ok(arg)
    }
}

fn with_params(mut line: String, params: &[(&str, Option<&str>)]) -> Result<Vec<u8>, FormatError> {
    for (k, v) in params {
        line.push(' ');
        line.push_str(check(k)?);
        if let Some(v) = v {
            line.push('=');
            line.push_str(check(v)?);
        }
    }
    line.push_str("\r\n");
    Ok(line.into_bytes())
}

/// `EHLO <name>`.
pub fn ehlo_cmd(name: &str) -> Result<Vec<u8>, FormatError> {
    Ok(format!("EHLO {}\r\n", check(name)?).into_bytes())
}

/// `HELO <name>`.
pub fn helo_cmd(name: &str) -> Result<Vec<u8>, FormatError> {
    Ok(format!("HELO {}\r\n", check(name)?).into_bytes())
}

/// `MAIL FROM:<path> [KEY=VALUE …]`; `path` is what goes between the brackets
/// (empty for the null sender).
pub fn mail_cmd(path: &str, params: &[(&str, Option<&str>)]) -> Result<Vec<u8>, FormatError> {
    with_params(format!("MAIL FROM:<{}>", check(path)?), params)
}

/// `RCPT TO:<path> [KEY=VALUE …]`.
pub fn rcpt_cmd(path: &str, params: &[(&str, Option<&str>)]) -> Result<Vec<u8>, FormatError> {
    with_params(format!("RCPT TO:<{}>", check(path)?), params)
}

pub const DATA: &[u8] = b"DATA\r\n";
pub const QUIT: &[u8] = b"QUIT\r\n";
pub const RSET: &[u8] = b"RSET\r\n";
pub const NOOP: &[u8] = b"NOOP\r\n";
pub const STARTTLS: &[u8] = b"STARTTLS\r\n";
