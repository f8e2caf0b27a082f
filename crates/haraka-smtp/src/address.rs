//! RFC 5321 paths as Haraka's address-rfc2821 2.2.1 parses them.
//!
//! Accepted: `<mailbox>` or a bare `mailbox`; quoted local parts (kept with their
//! quotes and escapes, as Haraka keeps them); domain literals (`[1.2.3.4]`,
//! `[IPv6:::1]`, `[tag:content]`); single-label domains; UTF-8 in local parts and
//! domains; source routes (`<@a,@b:u@h>`, dropped); `postmaster` / `<postmaster>`
//! in any case. Refused: a trailing dot, labels that start or end with `-`, paths
//! over 256 octets, local parts over 64 octets, domains over 255 octets.

use std::fmt;

use crate::punycode;

/// A mailbox from a MAIL FROM / RCPT TO path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The local part as sent. A quoted local part keeps its quotes and backslash
    /// escapes (Haraka's `user`); `postmaster` for the bare postmaster path.
    pub user: String,
    /// The domain, punycoded if it had UTF-8, lower-cased (`None` for `<postmaster>`).
    pub host: Option<String>,
    /// The domain as sent.
    pub original_host: Option<String>,
    /// The path as the client sent it, without the outer angle brackets.
    pub original: String,
}

/// Why a path was refused. The text is what follows `Error: ` in the 501 reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressError(pub String);

impl Address {
    /// Parse a path: `<…>` or a bare mailbox. The null path (`<>` or empty) is an
    /// error here; see [`Address::parse_reverse_path`].
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        match Address::parse_reverse_path(text)? {
            Some(a) => Ok(a),
            None => Err(AddressError(
                "Invalid RFC-5321 address: null path".to_owned(),
            )),
        }
    }

    /// Parse a path where the null path is allowed: `Ok(None)` for `<>` or empty.
    pub fn parse_reverse_path(text: &str) -> Result<Option<Address>, AddressError> {
        if text.is_empty() || text == "<>" {
            return Ok(None);
        }
        let original = strip_brackets(text).to_owned();
        let lower = text.to_ascii_lowercase();
        if lower == "postmaster" || lower == "<postmaster>" {
            return Ok(Some(Address {
                user: "postmaster".to_owned(),
                host: None,
                original_host: None,
                original,
            }));
        }
        if text.len() > 256 {
            return Err(AddressError(format!(
                "RFC-5321 path exceeds 256 octets ({} given)",
                text.len()
            )));
        }
        let (local, domain) = parse_main(text)?;
        if local.len() > 64 {
            return Err(AddressError(
                "RFC-5321 local-part exceeds 64 octets".to_owned(),
            ));
        }
        if domain.len() > 255 {
            return Err(AddressError(
                "RFC-5321 domain exceeds 255 octets".to_owned(),
            ));
        }
        Ok(Some(Address {
            host: Some(ascii_host(&domain)),
            user: local,
            original_host: Some(domain),
            original,
        }))
    }

    /// An address from its parts (Haraka's `new Address(user, host)`); no syntax check.
    pub fn new(user: &str, host: &str) -> Address {
        Address {
            user: user.to_owned(),
            host: Some(ascii_host(host)),
            original_host: Some(host.to_owned()),
            original: format!("{user}@{host}"),
        }
    }

    /// `user@host` with the host punycoded and lower-cased (the form sent onward).
    pub fn address(&self) -> String {
        match &self.host {
            Some(h) => format!("{}@{}", self.user, h),
            None => self.user.clone(),
        }
    }

    /// `<user@original_host>`: the mailbox as the client wrote it, source route
    /// dropped (Haraka's `format()`, used in replies and `Received:`).
    pub fn format(&self) -> String {
        match &self.original_host {
            Some(h) => format!("<{}@{}>", self.user, h),
            None => format!("<{}>", self.user),
        }
    }

    /// `<user@host>` with the host lower-cased/punycoded (what smtp_forward sends).
    pub fn forward_path(&self) -> String {
        format!("<{}>", self.address())
    }

    /// The domain had non-ASCII characters.
    pub fn is_utf8(&self) -> bool {
        self.original_host.as_deref().is_some_and(|h| !h.is_ascii())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

fn strip_brackets(text: &str) -> &str {
    text.strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text)
}

fn ascii_host(domain: &str) -> String {
    if domain.is_ascii() {
        domain.to_ascii_lowercase()
    } else {
        punycode::to_ascii(domain).to_lowercase()
    }
}

/// Parse `Mailbox | Path`; returns the flat local part and domain.
fn parse_main(text: &str) -> Result<(String, String), AddressError> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser { s: &chars, far: 0 };
    let result = if chars.first() == Some(&'<') {
        p.path(0)
    } else {
        p.mailbox(0)
            .and_then(|(end, l, d)| p.end(end).map(|_| (l, d)))
    };
    match result {
        Some((local, domain)) => Ok((p.text(local), p.text(domain))),
        None if p.far >= chars.len() => Err(AddressError(format!(
            "Invalid RFC-5321 address: {}",
            json_string(text)
        ))),
        None => Err(AddressError(format!(
            "Invalid RFC-5321 address: Syntax error at line 1 col {}",
            p.far + 1
        ))),
    }
}

type Span = (usize, usize);

/// A small backtracking parser over the grammar of address-rfc2821. `far` is the
/// furthest position at which a character was refused (for the error column).
struct Parser<'a> {
    s: &'a [char],
    far: usize,
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_let_dig_u(c: char) -> bool {
    c.is_ascii_alphanumeric() || !c.is_ascii()
}

impl Parser<'_> {
    fn fail(&mut self, pos: usize) {
        self.far = self.far.max(pos);
    }

    fn text(&self, (a, b): Span) -> String {
        self.s[a..b].iter().collect()
    }

    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn expect(&mut self, i: usize, c: char) -> Option<usize> {
        if self.at(i) == Some(c) {
            Some(i + 1)
        } else {
            self.fail(i);
            None
        }
    }

    fn end(&mut self, i: usize) -> Option<usize> {
        if i == self.s.len() {
            Some(i)
        } else {
            self.fail(i);
            None
        }
    }

    /// `"<" [A-d-l ":"] Mailbox ">"` followed by the end of input.
    fn path(&mut self, i: usize) -> Option<(Span, Span)> {
        let i = self.expect(i, '<')?;
        let start = match self.adl(i) {
            Some(j) => j,
            None => i,
        };
        let (j, local, domain) = self.mailbox(start)?;
        let j = self.expect(j, '>')?;
        self.end(j)?;
        Some((local, domain))
    }

    /// `At-domain *("," At-domain) ":"`; the source route, which is dropped.
    fn adl(&mut self, i: usize) -> Option<usize> {
        let mut j = self.expect(i, '@')?;
        j = self.domain(j)?;
        while self.at(j) == Some(',') {
            j = self.expect(j + 1, '@')?;
            j = self.domain(j)?;
        }
        self.expect(j, ':')
    }

    /// `Local-part "@" (Domain | address-literal)`.
    fn mailbox(&mut self, i: usize) -> Option<(usize, Span, Span)> {
        let lend = if self.at(i) == Some('"') {
            self.quoted(i)?
        } else {
            self.dot_string(i)?
        };
        let d = self.expect(lend, '@')?;
        let dend = if self.at(d) == Some('[') {
            self.literal(d)?
        } else {
            self.domain(d)?
        };
        Some((dend, (i, lend), (d, dend)))
    }

    fn atom(&mut self, i: usize) -> Option<usize> {
        let mut j = i;
        while self.at(j).is_some_and(is_atext) {
            j += 1;
        }
        if j == i {
            self.fail(i);
            return None;
        }
        Some(j)
    }

    fn dot_string(&mut self, i: usize) -> Option<usize> {
        let mut j = self.atom(i)?;
        while self.at(j) == Some('.') {
            j = self.atom(j + 1)?;
        }
        self.fail(j);
        Some(j)
    }

    fn quoted(&mut self, i: usize) -> Option<usize> {
        let mut j = self.expect(i, '"')?;
        loop {
            match self.at(j) {
                Some('"') => return Some(j + 1),
                Some('\\') => match self.at(j + 1) {
                    Some(c) if (' '..='~').contains(&c) => j += 2,
                    _ => {
                        self.fail(j + 1);
                        return None;
                    }
                },
                Some(c) if c == ' ' || c == '!' || ('#'..='[').contains(&c) => j += 1,
                Some(c) if (']'..='~').contains(&c) || !c.is_ascii() => j += 1,
                _ => {
                    self.fail(j);
                    return None;
                }
            }
        }
    }

    /// One label: starts and ends with a letter, digit or non-ASCII character.
    fn label(&mut self, i: usize) -> Option<usize> {
        if !self.at(i).is_some_and(is_let_dig_u) {
            self.fail(i);
            return None;
        }
        let mut j = i + 1;
        while self.at(j).is_some_and(|c| is_let_dig_u(c) || c == '-') {
            j += 1;
        }
        if self.s[j - 1] == '-' {
            self.fail(j);
            return None;
        }
        self.fail(j);
        Some(j)
    }

    fn domain(&mut self, i: usize) -> Option<usize> {
        let mut j = self.label(i)?;
        while self.at(j) == Some('.') {
            j = self.label(j + 1)?;
        }
        Some(j)
    }

    /// `"[" (IPv4 | tag ":" 1*dcontent) "]"`; IPv6 literals are a case of the
    /// general form (`IPv6:` is a tag).
    fn literal(&mut self, i: usize) -> Option<usize> {
        let j = self.expect(i, '[')?;
        let inner = self.ipv4(j).or_else(|| self.general(j))?;
        self.expect(inner, ']')
    }

    fn snum(&mut self, i: usize) -> Option<usize> {
        let mut j = i;
        while j < i + 3 && self.at(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        let digits: String = self.s[i..j].iter().collect();
        let ok = !digits.is_empty()
            && (digits.len() == 1 || !digits.starts_with('0'))
            && digits.parse::<u16>().is_ok_and(|n| n <= 255);
        if ok {
            Some(j)
        } else {
            self.fail(j);
            None
        }
    }

    fn ipv4(&mut self, i: usize) -> Option<usize> {
        let mut j = self.snum(i)?;
        for _ in 0..3 {
            j = self.expect(j, '.')?;
            j = self.snum(j)?;
        }
        if self.at(j) == Some(']') {
            Some(j)
        } else {
            self.fail(j);
            None
        }
    }

    fn general(&mut self, i: usize) -> Option<usize> {
        let mut j = i;
        while self
            .at(j)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            j += 1;
        }
        if j == i || self.s[j - 1] == '-' {
            self.fail(j);
            return None;
        }
        let start = self.expect(j, ':')?;
        let mut k = start;
        while self
            .at(k)
            .is_some_and(|c| ('!'..='Z').contains(&c) || ('^'..='~').contains(&c))
        {
            k += 1;
        }
        if k == start {
            self.fail(k);
            return None;
        }
        Some(k)
    }
}

/// `JSON.stringify` of a string, as Haraka puts it into its error message.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
